"""Sessions: negotiated timeouts, expiry (of a silent session, and of a kazoo client cut off
by a proxy), reconnecting to the same session (ephemerals kept, watches re-registered and
fired for what changed meanwhile), session takeover, and wrong credentials.

The server's session timeout bounds are 4000..40000 ms and it checks sessions once per
2000 ms tick, like ZooKeeper's defaults: a session expires between its timeout and one tick
after it.

A session that reads what another wrote syncs first (see compat_helpers): a client given a
session id and password of another (`thief`) or reconnecting through the proxy (to the first
member) may be on a member that has not applied the other's writes yet."""

import queue
import threading
import time

from kazoo.protocol.states import EventType, KazooState, KeeperState

from compat_helpers import RawSession, make_client, wait_until


class States:
    """Records a client's state changes (KazooState) and the KeeperState at each change."""

    def __init__(self, client):
        self.client = client
        self.changes = []
        self.cond = threading.Condition()
        client.add_listener(self)

    def __call__(self, state):
        with self.cond:
            self.changes.append((state, self.client.client_state))
            self.cond.notify_all()

    def wait_for(self, state, timeout=15):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not any(s == state for s, _ in self.changes):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("state %s not reached in %ss; saw %s" % (state, timeout, self.changes))
                self.cond.wait(left)

    def kazoo_states(self):
        with self.cond:
            return [s for s, _ in self.changes]


def test_negotiated_timeouts_are_clamped(server):
    low = RawSession(server.host, server.port, 1000)
    high = RawSession(server.host, server.port, 100000)
    mid = RawSession(server.host, server.port, 10000)
    try:
        assert low.negotiated_timeout == 4000
        assert high.negotiated_timeout == 40000
        assert mid.negotiated_timeout == 10000
        ids = {low.session_id, high.session_id, mid.session_id}
        assert len(ids) == 3 and 0 not in ids
        assert len(low.passwd) == 16
    finally:
        for s in (low, high, mid):
            s.close()


def test_silent_session_expires_and_pinging_one_survives(server, clients, path):
    observer = clients()
    observer.create(path)
    silent = RawSession(server.host, server.port, 4000)
    alive = RawSession(server.host, server.port, 4000)
    assert silent.create_ephemeral(path + "/silent")[1] == 0
    assert alive.create_ephemeral(path + "/alive")[1] == 0
    last_contact = time.monotonic()
    observer.sync(path)
    assert observer.exists(path + "/silent").ephemeralOwner == silent.session_id

    gone = queue.Queue()
    observer.exists(path + "/silent", watch=lambda e: gone.put((time.monotonic(), e)))
    stop = threading.Event()
    ping_errors = []

    def keep_alive():
        try:
            while not stop.wait(1.0):
                alive.ping()
        except Exception as e:  # reported below
            ping_errors.append(e)

    pinger = threading.Thread(target=keep_alive, daemon=True)
    pinger.start()
    try:
        try:
            at, event = gone.get(timeout=15)
        except queue.Empty:
            raise AssertionError("ephemeral of a silent 4 s session still there after 15 s")
        assert event.type == EventType.DELETED
        elapsed = at - last_contact
        assert 3.5 <= elapsed <= 9.0, "expired after %.2fs of silence (timeout 4 s)" % elapsed
        # The server closes the expired session's connection...
        assert silent.wait_closed_by_server(5), "connection of the expired session left open"
        # ...and refuses to resume it.
        retry = RawSession(server.host, server.port, 4000, silent.session_id, silent.passwd)
        assert retry.negotiated_timeout == 0
        retry.close()
        # The session that kept pinging for as long is still there.
        assert not ping_errors, ping_errors
        assert observer.exists(path + "/alive").ephemeralOwner == alive.session_id
    finally:
        stop.set()
        pinger.join()
        silent.close()
        alive.close()


def test_cut_off_client_expires_lost_then_new_session(server, clients, proxy, path):
    observer = clients(timeout=4)  # idle all along: its pings must keep it alive
    observer_states = States(observer)
    observer_session = observer.client_id
    observer.create(path)
    observer.create(path + "/observer", ephemeral=True)

    zk = clients(hosts=proxy.address, timeout=4)
    states = States(zk)
    old_session = zk.client_id
    zk.create(path + "/eph", b"mine", ephemeral=True)
    gone = queue.Queue()
    observer.sync(path)
    observer.exists(path + "/eph", watch=gone.put)

    cut_at = time.monotonic()
    proxy.block()
    states.wait_for(KazooState.SUSPENDED, timeout=10)
    try:
        event = gone.get(timeout=15)
    except queue.Empty:
        raise AssertionError("ephemeral of the cut-off 4 s session still there after 15 s")
    assert event.type == EventType.DELETED
    assert time.monotonic() - cut_at >= 3.5
    assert observer.exists(path + "/eph") is None

    proxy.unblock()
    states.wait_for(KazooState.LOST, timeout=15)
    wait_until(lambda: zk.state == KazooState.CONNECTED, timeout=15, message="reconnected with a new session")
    assert (KazooState.LOST, KeeperState.EXPIRED_SESSION) in states.changes
    kinds = states.kazoo_states()
    assert kinds.index(KazooState.SUSPENDED) < kinds.index(KazooState.LOST)
    assert zk.client_id[0] != old_session[0]
    zk.sync(path)
    assert zk.exists(path + "/eph") is None
    zk.create(path + "/eph", b"again", ephemeral=True)
    observer.sync(path)
    assert observer.exists(path + "/eph").ephemeralOwner == zk.client_id[0]

    assert observer.client_id == observer_session
    assert observer_states.kazoo_states() == []
    assert observer.exists(path + "/observer").ephemeralOwner == observer_session[0]


def test_reconnect_keeps_session_and_ephemerals(server, clients, proxy, path):
    direct = clients()
    direct.create(path + "/data", b"0", makepath=True)

    zk = clients(hosts=proxy.address, timeout=10)
    states = States(zk)
    session = zk.client_id
    zk.create(path + "/eph", b"e", ephemeral=True)
    lost_watch = queue.Queue()
    zk.get(path + "/data", watch=lost_watch.put)

    proxy.block()
    states.wait_for(KazooState.SUSPENDED, timeout=10)
    direct.set(path + "/data", b"1")
    # kazoo itself (not the server) tells every outstanding watch that the connection was
    # lost, with a NONE event, and forgets them; it does not send SetWatches on reconnect.
    assert lost_watch.get(timeout=5).type == EventType.NONE
    time.sleep(1.0)  # well within the 10 s session timeout
    proxy.unblock()
    states.wait_for(KazooState.CONNECTED, timeout=15)

    assert zk.client_id == session
    assert KazooState.LOST not in states.kazoo_states()
    direct.sync(path)
    assert direct.exists(path + "/eph").ephemeralOwner == session[0]
    zk.sync(path)
    assert zk.get(path + "/data")[0] == b"1"
    # The resumed session works as before: its ephemerals are its own, its watches fire.
    watch = queue.Queue()
    zk.get(path + "/eph", watch=watch.put)
    direct.set(path + "/eph", b"touched")
    assert watch.get(timeout=5).type == EventType.CHANGED
    zk.delete(path + "/eph")
    direct.sync(path)
    assert direct.exists(path + "/eph") is None


def test_set_watches_fires_for_changes_since_relative_zxid(server, clients, path):
    """What the Java client (and others) send on reconnect: SetWatches (opcode 101) with the
    last zxid the client saw. ZooKeeper's DataTree.setWatches fires at once the watches
    whose nodes changed after that zxid and registers the others."""
    zk = clients()
    zk.create(path)
    for name in ("data", "untouched", "deleted", "parent"):
        zk.create(path + "/" + name)
    last_seen = zk.set(path + "/untouched", b"seen").mzxid
    zk.set(path + "/data", b"changed")
    zk.delete(path + "/deleted")
    zk.create(path + "/later")
    zk.create(path + "/parent/child")

    raw = RawSession(server.host, server.port, 10000)
    try:
        # A client reconnecting with SetWatches has seen its last zxid on the member it
        # connects to (ZooKeeper refuses it otherwise); the raw session syncs instead.
        raw.sync(path)
        err = raw.set_watches(
            last_seen,
            data=[path + "/data", path + "/untouched", path + "/deleted"],
            exist=[path + "/later", path + "/never"],
            child=[path + "/parent", path + "/untouched"],
        )
        assert err == 0
        fired = set()
        raw.sock.settimeout(5)
        while len(fired) < 4:
            fired.add(raw.read_event())
        assert fired == {
            (3, path + "/data"),  # NodeDataChanged: mzxid > relative zxid
            (2, path + "/deleted"),  # NodeDeleted: gone
            (1, path + "/later"),  # NodeCreated: exists now
            (4, path + "/parent"),  # NodeChildrenChanged: pzxid > relative zxid
        }
        # The unchanged ones were registered: the next changes fire them.
        zk.set(path + "/untouched", b"now")
        assert raw.read_event() == (3, path + "/untouched")
        zk.create(path + "/untouched/kid")
        assert raw.read_event() == (4, path + "/untouched")
        zk.create(path + "/never")
        assert raw.read_event() == (1, path + "/never")
    finally:
        raw.close()


def test_drop_and_resume_many_times(server, clients, proxy, path):
    zk = clients(hosts=proxy.address, timeout=10)
    session = zk.client_id
    zk.create(path, b"0")
    for i in range(1, 6):
        proxy.drop()
        # The next request goes out once kazoo has reconnected the same session.
        wait_until(lambda: zk.state == KazooState.CONNECTED and proxy.accepted > i, timeout=10,
                   message="reconnect %d" % i)
        zk.retry(zk.set, path, str(i).encode())
        assert zk.client_id == session
    assert zk.get(path)[0] == b"5"


def test_session_takeover_then_close(server, clients, proxy, path):
    observer = clients()
    observer.create(path)
    zk = clients(hosts=proxy.address, timeout=10)
    states = States(zk)
    session_id, passwd = zk.client_id
    zk.create(path + "/eph", ephemeral=True)

    proxy.block()
    states.wait_for(KazooState.SUSPENDED, timeout=10)
    # Another client resumes the session with its id and password.
    thief = make_client(server.address, timeout=10, client_id=(session_id, passwd))
    thief.start(timeout=10)
    try:
        assert thief.client_id[0] == session_id
        thief.sync(path)  # a new client object: it sent no last zxid seen
        assert thief.exists(path + "/eph").ephemeralOwner == session_id
        closed_at = time.monotonic()
        thief.stop()  # closes the session, for both
        wait_until(lambda: observer.exists(path + "/eph") is None, timeout=3,
                   message="ephemeral removed when the session is closed")
        assert time.monotonic() - closed_at < 3
    finally:
        thief.close()
    proxy.unblock()
    states.wait_for(KazooState.LOST, timeout=15)
    wait_until(lambda: zk.state == KazooState.CONNECTED, timeout=15, message="new session")
    assert zk.client_id[0] != session_id


def test_resume_with_credentials(server):
    first = RawSession(server.host, server.port, 10000)
    try:
        wrong = RawSession(server.host, server.port, 10000, first.session_id, b"\x01" * 16)
        assert wrong.negotiated_timeout == 0, "a wrong password must be refused as expired"
        assert wrong.wait_closed_by_server(5)
        wrong.close()

        unknown = RawSession(server.host, server.port, 10000, 0x7A7A7A7A7A7A, b"\x00" * 16)
        assert unknown.negotiated_timeout == 0
        unknown.close()

        # The right password resumes the session on a new connection; ZooKeeper closes the
        # old connection of that session.
        second = RawSession(server.host, server.port, 10000, first.session_id, first.passwd)
        assert second.session_id == first.session_id
        assert second.negotiated_timeout == 10000
        assert first.wait_closed_by_server(5), "old connection of a resumed session left open"
        assert second.ping()[2] == 0
        second.close()
    finally:
        first.close()
