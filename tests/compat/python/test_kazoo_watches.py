"""Watches through kazoo: data, child and exists watches, their event types and paths,
one-shot semantics, which operations trigger which watch, and watches fired by other
sessions, by transactions and by ephemeral cleanup.

"No further event" is checked without sleeping: kazoo delivers a session's watch events in
order on one thread, so once a later watch's event has arrived, any event an earlier change
would have caused has arrived too.

A session that sets a watch on what another session wrote syncs first: its member may not
have applied the write yet, and the watch would then be set on the older state (an exists
watch on a node not there yet fires CREATED, not CHANGED). See compat_helpers."""

import queue

from kazoo.protocol.states import EventType, KazooState

TIMEOUT = 5


class Recorder:
    def __init__(self):
        self.events = queue.Queue()

    def __call__(self, event):
        self.events.put(event)

    def next(self, timeout=TIMEOUT):
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no watch event within %ss" % timeout)

    def empty(self):
        return self.events.empty()


def fence(zk, path):
    """Returns once every watch event caused by writes acknowledged before the call has been
    delivered on `zk`'s event thread."""
    marker = Recorder()
    zk.exists(path + "-fence", watch=marker)
    zk.create(path + "-fence")
    assert marker.next().type == EventType.CREATED
    zk.delete(path + "-fence")


def test_data_watch_fires_once_on_change(zk, clients, path):
    zk.create(path, b"0")
    watcher = Recorder()
    data, _ = zk.get(path, watch=watcher)
    assert data == b"0"
    writer = clients()
    writer.set(path, b"1")
    event = watcher.next()
    assert event.type == EventType.CHANGED
    assert event.path == path
    assert event.state == KazooState.CONNECTED
    writer.set(path, b"2")  # the watch was one-shot: no second event
    fence(zk, path)
    assert watcher.empty()


def test_data_watch_fires_on_own_write(zk, path):
    zk.create(path, b"0")
    watcher = Recorder()
    zk.get(path, watch=watcher)
    zk.set(path, b"1")
    assert watcher.next().type == EventType.CHANGED


def test_data_watch_fires_deleted(zk, clients, path):
    zk.create(path)
    watcher = Recorder()
    zk.get(path, watch=watcher)
    clients().delete(path)
    event = watcher.next()
    assert (event.type, event.path) == (EventType.DELETED, path)


def test_data_watch_ignores_children(zk, path):
    zk.create(path)
    watcher = Recorder()
    zk.get(path, watch=watcher)
    zk.create(path + "/child")
    zk.delete(path + "/child")
    fence(zk, path)
    assert watcher.empty()
    zk.set(path, b"x")
    assert watcher.next().type == EventType.CHANGED


def test_exists_watch_on_missing_node_fires_created(zk, clients, path):
    watcher = Recorder()
    assert zk.exists(path, watch=watcher) is None
    clients().create(path, b"new")
    event = watcher.next()
    assert (event.type, event.path) == (EventType.CREATED, path)
    zk.set(path, b"again")  # consumed: no CHANGED
    fence(zk, path)
    assert watcher.empty()


def test_exists_watch_on_existing_node(zk, path):
    zk.create(path)
    changed = Recorder()
    assert zk.exists(path, watch=changed) is not None
    zk.set(path, b"x")
    assert changed.next().type == EventType.CHANGED
    deleted = Recorder()
    zk.exists(path, watch=deleted)
    zk.delete(path)
    assert deleted.next().type == EventType.DELETED


def test_child_watch_fires_on_create_and_delete(zk, clients, path):
    zk.create(path)
    writer = clients()
    watcher = Recorder()
    assert zk.get_children(path, watch=watcher) == []
    writer.create(path + "/a")
    event = watcher.next()
    assert (event.type, event.path) == (EventType.CHILD, path)
    writer.create(path + "/b")  # one-shot
    fence(zk, path)
    assert watcher.empty()

    again = Recorder()
    assert sorted(zk.get_children(path, watch=again)) == ["a", "b"]
    writer.set(path + "/a", b"data")  # a child's data is not the child list
    writer.set(path, b"data")  # nor is the parent's own data
    fence(zk, path)
    assert again.empty()
    writer.delete(path + "/a")
    event = again.next()
    assert (event.type, event.path) == (EventType.CHILD, path)


def test_child_watch_on_deleted_node_fires_deleted(zk, path):
    zk.create(path)
    watcher = Recorder()
    zk.get_children(path, watch=watcher)
    zk.delete(path)
    event = watcher.next()
    assert (event.type, event.path) == (EventType.DELETED, path)


def test_grandchildren_do_not_fire_child_watch(zk, path):
    zk.create(path + "/a", makepath=True)
    watcher = Recorder()
    zk.get_children(path, watch=watcher)
    zk.create(path + "/a/deep")
    fence(zk, path)
    assert watcher.empty()


def test_sequential_create_fires_parent_child_watch(zk, path):
    zk.create(path)
    watcher = Recorder()
    zk.get_children(path, watch=watcher)
    zk.create(path + "/n-", sequence=True)
    assert watcher.next().type == EventType.CHILD


def test_watches_of_several_sessions_fire(clients, path):
    a, b, c = clients(), clients(), clients()
    a.create(path)
    wa, wb = Recorder(), Recorder()
    a.get(path, watch=wa)
    b.sync(path)
    b.exists(path, watch=wb)
    c.set(path, b"x")
    assert wa.next().type == EventType.CHANGED
    assert wb.next().type == EventType.CHANGED


def test_data_and_child_watch_on_same_node_both_fire_on_delete(zk, path):
    zk.create(path)
    data_w, child_w = Recorder(), Recorder()
    zk.get(path, watch=data_w)
    zk.get_children(path, watch=child_w)
    zk.delete(path)
    assert data_w.next().type == EventType.DELETED
    assert child_w.next().type == EventType.DELETED


def test_transaction_fires_watches(zk, clients, path):
    zk.create(path)
    zk.create(path + "/x")
    data_w, child_w, created_w = Recorder(), Recorder(), Recorder()
    zk.get(path, watch=data_w)
    zk.get_children(path, watch=child_w)
    zk.exists(path + "/y", watch=created_w)
    t = clients().transaction()
    t.set_data(path, b"new")
    t.create(path + "/y")
    t.delete(path + "/x")
    results = t.commit()
    assert results[1:] == [path + "/y", True]
    assert data_w.next().type == EventType.CHANGED
    assert child_w.next().type == EventType.CHILD
    assert created_w.next().type == EventType.CREATED


def test_failed_transaction_fires_nothing(zk, path):
    zk.create(path)
    watcher, child_w = Recorder(), Recorder()
    zk.get(path, watch=watcher)
    zk.get_children(path, watch=child_w)
    t = zk.transaction()
    t.set_data(path, b"x")
    t.create(path + "/c")
    t.check(path, 42)
    t.commit()
    fence(zk, path)
    assert watcher.empty() and child_w.empty()


def test_ephemeral_cleanup_fires_watches(zk, clients, path):
    zk.create(path)
    owner = clients()
    owner.create(path + "/eph", ephemeral=True)
    gone, children = Recorder(), Recorder()
    zk.sync(path)
    zk.exists(path + "/eph", watch=gone)
    zk.get_children(path, watch=children)
    owner.stop()
    assert gone.next().type == EventType.DELETED
    assert children.next().type == EventType.CHILD


def test_watch_sees_new_data_when_it_reads(zk, clients, path):
    # A client sees the watch event before it can read the data that caused it.
    zk.create(path, b"0")
    writer = clients()
    for i in range(1, 20):
        seen = Recorder()
        zk.get(path, watch=seen)
        writer.set(path, str(i).encode())
        assert seen.next().type == EventType.CHANGED
        assert zk.get(path)[0] == str(i).encode()
