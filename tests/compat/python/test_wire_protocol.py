"""What kazoo hides, on a bare socket (the framing and records come from kazoo's own
serializers): the order of replies and watch events, one event per watch however often it
was set, pipelined requests, and what the server does with requests it cannot take.

Event numbers: 1 NodeCreated, 2 NodeDeleted, 3 NodeDataChanged, 4 NodeChildrenChanged.
Error codes: -6 Unimplemented, -101 NoNode."""

import struct

import pytest
from kazoo.exceptions import ConnectionLoss
from kazoo.protocol.serialization import Create, Exists, GetChildren, GetData, SetData
from kazoo.security import OPEN_ACL_UNSAFE

from compat_helpers import RawSession


@pytest.fixture
def raw(server):
    session = RawSession(server.host, server.port, 10000)
    yield session
    session.close()


@pytest.fixture
def zk(clients, server):
    """The kazoo client that writes, on the raw session's member (the first): these tests are
    about the order in which one member sends replies and events. A member acknowledges a
    write once it has applied it, so its other sessions see the write (and its events) from
    then on; a session on another member would have to sync first (see compat_helpers)."""
    return clients(hosts="%s:%d" % (server.host, server.port))


class Unknown:
    type = 77

    def serialize(self):
        return b""


def replies(raw, n):
    got = [raw.receive() for _ in range(n)]
    assert None not in got, "missing replies: %s" % got
    return got


def test_one_event_per_watch_however_often_set(raw, zk, path):
    zk.create(path, b"0")
    raw.send(GetData(path, True), 1)
    raw.send(GetData(path, True), 2)
    raw.send(Exists(path, True), 3)  # exists and getData share the data watch
    assert [r[:3] for r in replies(raw, 3)] == [("reply", 1, 0), ("reply", 2, 0), ("reply", 3, 0)]
    zk.set(path, b"1")
    assert raw.receive() == ("event", 3, path)
    assert raw.receive(timeout=0.5) is None


def test_own_write_event_comes_before_its_reply(raw, path, zk):
    zk.create(path, b"0")
    raw.send(GetData(path, True), 10)
    assert raw.receive()[:3] == ("reply", 10, 0)
    raw.send(SetData(path, b"mine", -1), 11)
    assert raw.receive() == ("event", 3, path)
    assert raw.receive()[:3] == ("reply", 11, 0)


def test_event_comes_before_a_later_read(raw, zk, path):
    zk.create(path, b"0")
    raw.send(GetData(path, True), 20)
    assert raw.receive()[:3] == ("reply", 20, 0)
    zk.set(path, b"1")  # acknowledged to kazoo before the raw session reads again
    raw.send(GetData(path, False), 21)
    assert raw.receive() == ("event", 3, path)
    reply = raw.receive()
    assert reply[:3] == ("reply", 21, 0)
    assert reply[3] >= zk.exists(path).mzxid  # the reply's zxid covers the write


def test_pipelined_requests_answered_in_order(raw, zk, path):
    zk.create(path)
    for i in range(40):
        if i % 2 == 0:
            raw.send(Create("%s/n%02d" % (path, i), b"", OPEN_ACL_UNSAFE, 0), 100 + i)
        else:
            raw.send(GetChildren(path, False), 100 + i)
    got = replies(raw, 40)
    assert [r[1] for r in got] == list(range(100, 140))
    assert all(r[2] == 0 for r in got)
    zxids = [r[3] for r in got]
    assert zxids == sorted(zxids)
    assert len(zk.get_children(path)) == 20


def test_delete_fires_data_and_child_events(raw, zk, path):
    zk.create(path + "/c", makepath=True)
    raw.send(GetChildren(path, True), 1)
    raw.send(GetData(path + "/c", True), 2)
    raw.send(Exists(path + "/c", True), 3)
    replies(raw, 3)
    zk.delete(path + "/c")
    assert {raw.receive(), raw.receive()} == {("event", 2, path + "/c"), ("event", 4, path)}
    assert raw.receive(timeout=0.5) is None


def test_get_data_on_missing_node_sets_no_watch(raw, zk, path):
    raw.send(GetData(path, True), 1)
    assert raw.receive()[:3] == ("reply", 1, -101)
    zk.create(path)
    assert raw.receive(timeout=0.5) is None


def test_unknown_opcode_is_unimplemented_and_closes_connection(raw):
    # ZooKeeperServer.submitRequestNow hands a request of unknown type to
    # UnimplementedRequestProcessor, which replies Unimplemented and closes the connection.
    raw.send(Unknown(), 5)
    assert raw.receive()[:3] == ("reply", 5, -6)
    assert raw.wait_closed_by_server(3), "connection left open after an unknown request type"


def test_oversized_request_drops_connection_and_changes_nothing(clients, path):
    zk = clients()
    zk.create(path, b"small")
    near_limit = b"x" * (1024 * 1024 - 100)
    assert zk.set(path, near_limit).dataLength == len(near_limit)
    with pytest.raises(ConnectionLoss):
        zk.set(path, b"y" * (1024 * 1024 + 10))
    data = zk.retry(zk.get, path)[0]
    assert data == near_limit


class AddWatch:
    """addWatch (opcode 106, ZooKeeper 3.6+): mode 0 persistent, 1 persistent recursive.
    kazoo 2.11 has no API for it; the Java client and Curator do."""

    type = 106

    def __init__(self, path, mode):
        self.path, self.mode = path, mode

    def serialize(self):
        encoded = self.path.encode()
        return struct.pack("!i", len(encoded)) + encoded + struct.pack("!i", self.mode)


def all_events(raw):
    events = []
    while True:
        frame = raw.receive(timeout=0.7)
        if frame is None:
            return events
        events.append(frame)


def test_persistent_watches(raw, zk, path):
    p, r = path + "-p", path + "-r"
    raw.send(AddWatch(p, 0), 1)
    raw.send(AddWatch(r, 1), 2)
    assert [f[:3] for f in replies(raw, 2)] == [("reply", 1, 0), ("reply", 2, 0)]
    zk.create(p)
    zk.set(p, b"1")
    zk.set(p, b"2")
    zk.create(p + "/c")
    zk.set(p + "/c", b"x")  # a child's data: not this watch's business
    zk.delete(p + "/c")
    zk.delete(p)
    zk.create(p)  # still watching after the node went away
    zk.create(r)
    zk.create(r + "/a")
    zk.set(r + "/a", b"1")
    zk.create(r + "/a/b")
    zk.delete(r + "/a/b")
    zk.set(r, b"z")
    assert all_events(raw) == [
        ("event", 1, p),
        ("event", 3, p),
        ("event", 3, p),
        ("event", 4, p),
        ("event", 4, p),
        ("event", 2, p),
        ("event", 1, p),
        # recursive: every node below, and no NodeChildrenChanged
        ("event", 1, r),
        ("event", 1, r + "/a"),
        ("event", 3, r + "/a"),
        ("event", 1, r + "/a/b"),
        ("event", 2, r + "/a/b"),
        ("event", 3, r),
    ]
