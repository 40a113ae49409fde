"""kazoo's recipes, each with several clients (separate sessions) at once and assertions on
what the recipe promises: Lock, Semaphore, Election, Barrier, DoubleBarrier, Counter, Queue,
LockingQueue, Party, ChildrenWatch, DataWatch and TreeCache.

The recipes work whichever member each client is on (they only wait on watches and on their
own writes). A test that checks, through one session, what others did syncs that session
first (see compat_helpers); polling with wait_until needs no sync."""

import queue
import threading
import time

import pytest
from kazoo.exceptions import LockTimeout
from kazoo.recipe.cache import TreeCache, TreeEvent

from compat_helpers import wait_until

TIMEOUT = 10


class Tracker:
    """Counts how many actors are inside a section at once, and the most ever seen."""

    def __init__(self):
        self.lock = threading.Lock()
        self.inside = 0
        self.most = 0
        self.entries = []

    def enter(self, who):
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
            self.entries.append(who)

    def leave(self):
        with self.lock:
            self.inside -= 1


def run_threads(targets, timeout=60):
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # reported below
                errors.append(e)

        return run

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a worker thread is stuck"
    if errors:
        raise errors[0]


def test_lock_mutual_exclusion(clients, path):
    tracker = Tracker()
    rounds = 6

    def worker(name):
        client = clients()
        lock = client.Lock(path, name)

        def run():
            for _ in range(rounds):
                with lock:
                    tracker.enter(name)
                    time.sleep(0.005)
                    tracker.leave()

        return run

    run_threads([worker("w%d" % i) for i in range(3)])
    assert tracker.most == 1
    assert len(tracker.entries) == 3 * rounds
    assert {"w0", "w1", "w2"} == set(tracker.entries)


def test_lock_contention_timeout_and_release_on_session_end(clients, path):
    a, b, c = clients(), clients(), clients()
    lock_a = a.Lock(path, "a")
    assert lock_a.acquire(timeout=TIMEOUT)
    lock_b = b.Lock(path, "b")
    assert lock_b.acquire(blocking=False) is False
    with pytest.raises(LockTimeout):
        lock_b.acquire(timeout=0.3)
    a.sync(path)  # b's node, created and deleted by b
    assert lock_a.contenders() == ["a"]

    got = threading.Event()
    waiter = threading.Thread(target=lambda: lock_b.acquire() and got.set(), daemon=True)
    waiter.start()
    wait_until(lambda: lock_a.contenders() == ["a", "b"], timeout=TIMEOUT, message="b queued behind a")
    assert not got.is_set()
    a.stop()  # the holder's session ends: its ephemeral lock node goes, b gets the lock
    assert got.wait(TIMEOUT), "b never got the lock after a's session closed"
    c.sync(path)
    assert c.Lock(path, "c").contenders() == ["b"]
    lock_b.release()
    waiter.join(TIMEOUT)
    c.sync(path)
    assert c.Lock(path, "c").contenders() == []


def test_semaphore_limits_holders(clients, path):
    tracker = Tracker()

    def worker(name):
        client = clients()
        sem = client.Semaphore(path, identifier=name, max_leases=2)

        def run():
            for _ in range(3):
                with sem:
                    tracker.enter(name)
                    time.sleep(0.05)
                    tracker.leave()

        return run

    run_threads([worker("s%d" % i) for i in range(4)])
    assert tracker.most == 2
    assert len(tracker.entries) == 12


def test_election_one_leader_at_a_time(clients, path):
    guard = threading.Lock()
    leading = set()
    overlaps = []
    leaders = queue.Queue()
    release, cs, elections, threads, errors = {}, {}, {}, {}, {}
    for name in ("e0", "e1", "e2"):
        cs[name] = clients()
        release[name] = threading.Event()
        elections[name] = cs[name].Election(path, name)

        def lead(name=name):
            with guard:
                if leading:
                    overlaps.append((name, set(leading)))
                leading.add(name)
            leaders.put(name)
            release[name].wait(TIMEOUT * 3)
            with guard:
                leading.discard(name)

        def run(name=name, lead=lead):
            try:
                elections[name].run(lead)
            except Exception as e:  # checked below
                errors[name] = e

        threads[name] = threading.Thread(target=run, daemon=True)
        threads[name].start()

    first = leaders.get(timeout=TIMEOUT)
    wait_until(lambda: len(elections[first].contenders()) == 3, timeout=TIMEOUT, message="three contenders")
    assert elections[first].contenders()[0] == first
    assert sorted(elections[first].contenders()) == ["e0", "e1", "e2"]
    assert leaders.empty()

    # The leader steps down: exactly one other takes over.
    release[first].set()
    second = leaders.get(timeout=TIMEOUT)
    assert second != first

    # The new leader's session ends (its function cannot notice, so count it out first):
    # the last candidate takes over.
    with guard:
        leading.discard(second)
    cs[second].stop()
    third = leaders.get(timeout=TIMEOUT)
    assert third not in (first, second)
    assert elections[third].contenders() == [third]
    assert overlaps == [], "two leaders at once: %s" % overlaps
    for name in release:
        release[name].set()
    for t in threads.values():
        t.join(TIMEOUT)
    assert leaders.empty()
    errors.pop(second, None)  # its client was stopped under it
    assert errors == {}


def test_barrier(clients, path):
    owner = clients()
    barrier = owner.Barrier(path)
    barrier.create()
    passed = queue.Queue()
    waiters = []
    for name in ("b1", "b2"):
        client = clients()
        client.sync(path)  # else its member may not know the barrier yet, and it passes
        b = client.Barrier(path)
        assert b.wait(timeout=0.2) is False  # blocked while the barrier stands
        t = threading.Thread(target=lambda b=b, name=name: passed.put((name, b.wait(TIMEOUT))), daemon=True)
        t.start()
        waiters.append(t)
    assert passed.empty()
    barrier.remove()
    results = sorted(passed.get(timeout=TIMEOUT) for _ in waiters)
    assert results == [("b1", True), ("b2", True)]


def test_double_barrier(clients, path):
    observer = clients()
    members = [clients().DoubleBarrier(path, 3, identifier="m%d" % i) for i in range(3)]
    entered = queue.Queue()

    def enter(i):
        members[i].enter()
        entered.put(i)

    threads = [threading.Thread(target=enter, args=(i,), daemon=True) for i in (0, 1)]
    for t in threads:
        t.start()
    wait_until(lambda: observer.exists(path) and len(observer.get_children(path)) == 2,
               timeout=TIMEOUT, message="two members waiting")
    assert entered.empty(), "entered before all three members arrived"
    enter(2)
    assert sorted(entered.get(timeout=TIMEOUT) for _ in range(3)) == [0, 1, 2]
    assert all(m.participating for m in members)

    left = queue.Queue()

    def leave(i):
        members[i].leave()
        left.put(i)

    threads = [threading.Thread(target=leave, args=(i,), daemon=True) for i in (0, 1)]
    for t in threads:
        t.start()
    # The recipe: the lowest node waits for the others to go, the others delete their node
    # and wait for the lowest. Nobody is through while member 2 has not left.
    names = sorted(m.node_name for m in members)
    stays = {members[2].node_name, names[0]}
    wait_until(lambda: set(observer.get_children(path)) == stays, timeout=TIMEOUT,
               message="members 0 and 1 leaving, member 2 inside")
    assert left.empty(), "left before every member had left"
    leave(2)
    assert sorted(left.get(timeout=TIMEOUT) for _ in range(3)) == [0, 1, 2]
    observer.sync(path)
    assert observer.get_children(path) == []


def test_counter_concurrent_increments(clients, path):
    per_client, n = 25, 3

    def worker():
        box = [clients().Counter(path)]

        def run():
            for _ in range(per_client):
                box[0] += 1

        return run

    run_threads([worker() for _ in range(n)])
    reader = clients()
    reader.sync(path)
    counter = reader.Counter(path)
    assert counter.value == per_client * n
    counter -= 5
    assert counter.pre_value == per_client * n
    assert counter.post_value == per_client * n - 5
    assert counter.value == per_client * n - 5


def test_float_counter(clients, path):
    a_client = clients()
    a = a_client.Counter(path, default=0.0)
    b = clients().Counter(path, default=0.0)
    a += 0.5
    b += 1.25
    a_client.sync(path)
    assert a.value == b.value == 1.75


def test_queue_items_taken_once_in_order(clients, path):
    producer_client, consumer_client = clients(), clients()
    producer = producer_client.Queue(path)
    for i in range(10):
        producer.put(b"p%d" % i, priority=(100 if i % 2 else 50))
    consumer_client.sync(path)  # Queue.get takes what is there now: None if nothing
    consumer = consumer_client.Queue(path)
    got = [consumer.get() for _ in range(10)]
    assert got == [b"p0", b"p2", b"p4", b"p6", b"p8", b"p1", b"p3", b"p5", b"p7", b"p9"]
    assert consumer.get() is None
    producer_client.sync(path)
    assert len(producer) == 0


def test_locking_queue_priority_order(clients, path):
    p1_client = clients()
    p1, p2 = p1_client.LockingQueue(path), clients().LockingQueue(path)
    p1.put(b"low-1", priority=900)
    p2.put(b"high-1", priority=1)
    p1.put(b"mid-1", priority=500)
    p2.put_all([b"high-2", b"high-3"], priority=1)
    p1.put(b"top", priority=0)
    p2.put(b"mid-2", priority=500)
    p1_client.sync(path)
    assert len(p1) == 7
    consumer_client = clients()
    consumer_client.sync(path)  # get(timeout) takes the first item it sees
    consumer = consumer_client.LockingQueue(path)
    order = []
    while True:
        item = consumer.get(timeout=0.5)
        if item is None:
            break
        order.append(item)
        assert consumer.consume()
    assert order == [b"top", b"high-1", b"high-2", b"high-3", b"mid-1", b"mid-2", b"low-1"]
    p1_client.sync(path)
    assert len(p1) == 0


def test_locking_queue_consumed_exactly_once(clients, path):
    producer_client = clients()
    producer = producer_client.LockingQueue(path)
    items = [b"item-%02d" % i for i in range(30)]
    producer.put_all(items[:15])
    for item in items[15:]:
        producer.put(item)
    consumed = []
    lock = threading.Lock()

    def worker():
        q = clients().LockingQueue(path)

        def run():
            while True:
                item = q.get(timeout=1.0)
                if item is None:
                    return
                assert q.holds_lock()
                with lock:
                    consumed.append(item)
                assert q.consume()

        return run

    run_threads([worker() for _ in range(3)])
    assert sorted(consumed) == items, "items lost or consumed twice"
    producer_client.sync(path)
    assert len(producer) == 0


def test_locking_queue_item_returns_when_holder_dies(clients, path):
    producer_client = clients()
    producer = producer_client.LockingQueue(path)
    producer.put(b"only")
    holder_client = clients()
    holder = holder_client.LockingQueue(path)
    other = clients().LockingQueue(path)
    assert holder.get(timeout=TIMEOUT) == b"only"
    assert other.get(timeout=0.3) is None  # locked by the holder
    holder_client.stop()  # its ephemeral lock goes with the session
    assert other.get(timeout=TIMEOUT) == b"only"
    assert other.consume()
    producer_client.sync(path)
    assert len(producer) == 0


def test_locking_queue_release_puts_item_back(clients, path):
    producer = clients().LockingQueue(path)
    producer.put(b"x")
    a = clients().LockingQueue(path)
    b = clients().LockingQueue(path)
    assert a.get(timeout=TIMEOUT) == b"x"
    assert a.release()
    assert b.get(timeout=TIMEOUT) == b"x"
    assert not a.holds_lock()
    assert b.consume()


def test_party_membership(clients, path):
    a, b, c = clients(), clients(), clients()
    pa, pb = a.Party(path, "alpha"), b.Party(path, "beta")
    pa.join()
    pb.join()
    view = c.Party(path)
    c.sync(path)
    assert sorted(view) == ["alpha", "beta"]
    assert len(view) == 2
    pa.leave()
    c.sync(path)
    assert list(view) == ["beta"]
    b.stop()  # membership is ephemeral
    wait_until(lambda: len(view) == 0, timeout=TIMEOUT, message="party empty after session end")


def test_children_watch(clients, path):
    watcher_client, writer = clients(), clients()
    writer.create(path)
    writer.create(path + "/a")
    seen = queue.Queue()
    stop_after = {"n": None}

    def on_children(children):
        seen.put(sorted(children))
        if stop_after["n"] is not None and sorted(children) == stop_after["n"]:
            return False  # stops watching

    watcher_client.ChildrenWatch(path, on_children)

    def expect(children):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                got = seen.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            if got == children:
                return
        raise AssertionError("ChildrenWatch never reported %s" % children)

    expect(["a"])
    writer.create(path + "/b")
    expect(["a", "b"])
    writer.create(path + "/c", ephemeral=True)
    expect(["a", "b", "c"])
    stop_after["n"] = ["b", "c"]
    writer.delete(path + "/a")
    expect(["b", "c"])
    writer.create(path + "/d")  # the watch function returned False: no more calls
    observer = clients()
    observer.sync(path)
    time.sleep(0.3)
    assert seen.empty()


def test_data_watch(clients, path):
    watcher_client, writer = clients(), clients()
    seen = queue.Queue()
    watcher_client.DataWatch(path, lambda data, stat: seen.put((data, stat and stat.version)))

    def expect(value):
        try:
            got = seen.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError("DataWatch not called; expected %r" % (value,))
        assert got == value

    expect((None, None))  # missing node
    writer.create(path, b"v0")
    expect((b"v0", 0))
    writer.set(path, b"v1")
    expect((b"v1", 1))
    writer.set(path, b"v2")
    expect((b"v2", 2))
    writer.delete(path)
    expect((None, None))
    writer.create(path, b"back")
    expect((b"back", 0))


def test_tree_cache(clients, path):
    cache_client, writer = clients(), clients()
    writer.create(path + "/pre/x", b"px", makepath=True)
    cache_client.sync(path)  # the initial load reads what the cache's member has
    events = queue.Queue()
    cache = TreeCache(cache_client, path)
    cache.listen(lambda e: events.put(e))
    cache.start()
    try:

        def drain_until(predicate, what):
            got = []
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                try:
                    e = events.get(timeout=max(0.01, deadline - time.monotonic()))
                except queue.Empty:
                    break
                got.append(e)
                if predicate(e):
                    return got
            raise AssertionError("TreeCache: no %s; events seen: %s" % (what, got))

        initial = drain_until(lambda e: e.event_type == TreeEvent.INITIALIZED, "INITIALIZED")
        added = {e.event_data.path for e in initial if e.event_type == TreeEvent.NODE_ADDED}
        assert added == {path, path + "/pre", path + "/pre/x"}
        assert cache.get_data(path + "/pre/x").data == b"px"

        def expect(kind, node, data=None):
            e = drain_until(lambda e: e.event_type == kind and e.event_data.path == node,
                            "%s for %s" % (kind, node))[-1]
            if data is not None:
                assert e.event_data.data == data
            return e

        writer.create(path + "/a", b"1")
        expect(TreeEvent.NODE_ADDED, path + "/a", b"1")
        writer.create(path + "/a/b", b"2")
        expect(TreeEvent.NODE_ADDED, path + "/a/b", b"2")
        writer.set(path + "/a", b"1b")
        e = expect(TreeEvent.NODE_UPDATED, path + "/a", b"1b")
        assert e.event_data.stat.version == 1
        assert sorted(cache.get_children(path)) == ["a", "pre"]
        assert sorted(cache.get_children(path + "/a")) == ["b"]

        writer.delete(path + "/a", recursive=True)
        expect(TreeEvent.NODE_REMOVED, path + "/a/b")
        expect(TreeEvent.NODE_REMOVED, path + "/a")
        wait_until(lambda: cache.get_data(path + "/a") is None, timeout=TIMEOUT, message="cache forgets /a")
        assert sorted(cache.get_children(path)) == ["pre"]
    finally:
        cache.close()
