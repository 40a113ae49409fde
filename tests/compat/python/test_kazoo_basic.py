"""kazoo against ensemble: every basic operation and its results, as Apache ZooKeeper gives
them. Each test works under its own path on the module's server, unless it needs a fresh one.
A session that reads what another wrote syncs first (see compat_helpers)."""

import time

import pytest
from kazoo.exceptions import (
    BadVersionError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.protocol.states import ZnodeStat
from kazoo.security import make_digest_acl

from compat_helpers import make_client, wait_until


def test_create_returns_path_and_stores_data(zk, path):
    assert zk.create(path, b"hello") == path
    data, stat = zk.get(path)
    assert data == b"hello"
    assert stat.version == 0
    assert stat.cversion == 0
    assert stat.aversion == 0
    assert stat.dataLength == 5
    assert stat.numChildren == 0
    assert stat.ephemeralOwner == 0
    assert stat.czxid == stat.mzxid == stat.pzxid
    assert stat.ctime == stat.mtime
    assert abs(stat.ctime / 1000.0 - time.time()) < 120


def test_create_default_value_is_empty(zk, path):
    zk.create(path)
    assert zk.get(path)[0] == b""
    assert zk.exists(path).dataLength == 0


def test_binary_and_large_data_round_trip(zk, path):
    blob = bytes(range(256)) * 2048  # 512 KiB, every byte value
    zk.create(path, blob)
    data, stat = zk.get(path)
    assert data == blob
    assert stat.dataLength == len(blob)


def test_create_existing_fails(zk, path):
    zk.create(path, b"1")
    with pytest.raises(NodeExistsError):
        zk.create(path, b"2")
    assert zk.get(path)[0] == b"1"


def test_create_without_parent_fails(zk, path):
    with pytest.raises(NoNodeError):
        zk.create(path + "/a/b")
    assert zk.exists(path) is None


def test_create_makepath(zk, path):
    assert zk.create(path + "/a/b/c", b"leaf", makepath=True) == path + "/a/b/c"
    assert zk.get(path + "/a/b/c")[0] == b"leaf"
    assert zk.get_children(path) == ["a"]
    assert zk.get_children(path + "/a") == ["b"]


def test_create2_returns_stat_of_new_node(zk, path):
    created, stat = zk.create(path, b"abc", include_data=True)
    assert created == path
    assert isinstance(stat, ZnodeStat)
    assert stat == zk.exists(path)
    assert stat.dataLength == 3 and stat.version == 0


def test_ephemeral_owner_and_no_children(zk, path):
    zk.create(path, b"e", ephemeral=True)
    stat = zk.exists(path)
    assert stat.ephemeralOwner == zk.client_id[0]
    assert stat.ephemeralOwner != 0
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(path + "/child")


def test_ephemeral_removed_when_session_closes(server, clients, path):
    owner = clients()
    observer = clients()
    owner.create(path, ephemeral=True)
    observer.sync(path)
    assert observer.exists(path) is not None
    owner.stop()
    # A clean close removes ephemerals at once, not after the session timeout.
    wait_until(lambda: observer.exists(path) is None, timeout=3, message="ephemeral gone after close")


def test_sequential_suffix_counts_child_creations(zk, path):
    zk.create(path)
    zk.create(path + "/plain")
    zk.delete(path + "/plain")
    # Ten zero-padded digits. Apache ZooKeeper 3.8 takes the number from the parent's
    # cversion as its request pipeline tracks it, which counts child creations but not
    # deletions (a delete does bump the cversion that a stat shows): after one create and one
    # delete (stat cversion 2) the next number is 1. Checked against the Debian package's
    # server with tests/compat/python/apache-zookeeper-local.sh.
    assert zk.exists(path).cversion == 2
    first = zk.create(path + "/s-", b"", sequence=True)
    second = zk.create(path + "/s-", b"", sequence=True)
    zk.delete(second)
    third = zk.create(path + "/", b"", sequence=True)
    assert first == path + "/s-0000000001"
    assert second == path + "/s-0000000002"
    assert third == path + "/0000000003"
    assert sorted(zk.get_children(path)) == ["0000000003", "s-0000000001"]
    assert zk.exists(path).cversion == 6


def test_ephemeral_sequential(zk, path):
    zk.create(path)
    name = zk.create(path + "/lock-", b"x", ephemeral=True, sequence=True)
    assert name == path + "/lock-0000000000"
    assert zk.exists(name).ephemeralOwner == zk.client_id[0]


def test_get_missing_fails(zk, path):
    with pytest.raises(NoNodeError):
        zk.get(path)
    with pytest.raises(NoNodeError):
        zk.get_children(path)


def test_exists(zk, path):
    assert zk.exists(path) is None
    zk.create(path, b"x")
    stat = zk.exists(path)
    assert isinstance(stat, ZnodeStat)
    assert stat == zk.get(path)[1]


def test_set_with_versions(zk, path):
    zk.create(path, b"v0")
    created = zk.exists(path)
    stat = zk.set(path, b"v1", version=0)
    assert stat.version == 1
    assert stat.czxid == created.czxid
    assert stat.mzxid > created.mzxid
    assert stat.mtime >= created.ctime
    assert stat.dataLength == 2
    with pytest.raises(BadVersionError):
        zk.set(path, b"stale", version=0)
    assert zk.get(path)[0] == b"v1"
    stat = zk.set(path, b"v2")  # version -1: unconditional
    assert stat.version == 2
    assert stat == zk.exists(path)
    with pytest.raises(NoNodeError):
        zk.set(path + "/missing", b"x")


def test_set_does_not_touch_children_counters(zk, path):
    zk.create(path)
    zk.create(path + "/c")
    before = zk.exists(path)
    zk.set(path + "/c", b"data")
    after = zk.exists(path)
    assert (after.cversion, after.pzxid, after.numChildren) == (before.cversion, before.pzxid, 1)


def test_zxids_increase_with_every_write(zk, path):
    zk.create(path)
    seen = []
    for i in range(5):
        seen.append(zk.set(path, str(i).encode()).mzxid)
    assert seen == sorted(seen) and len(set(seen)) == 5


def test_delete(zk, path):
    zk.create(path, b"x")
    zk.set(path, b"y")
    with pytest.raises(BadVersionError):
        zk.delete(path, version=0)
    zk.delete(path, version=1)
    assert zk.exists(path) is None
    with pytest.raises(NoNodeError):
        zk.delete(path)


def test_delete_non_empty_fails_and_recursive_succeeds(zk, path):
    zk.create(path + "/a/b/c", makepath=True)
    zk.create(path + "/a/d")
    with pytest.raises(NotEmptyError):
        zk.delete(path + "/a")
    zk.delete(path, recursive=True)
    assert zk.exists(path) is None
    assert zk.exists(path + "/a/b/c") is None


def test_parent_stat_tracks_children(zk, path):
    zk.create(path)
    start = zk.exists(path)
    assert start.cversion == 0 and start.numChildren == 0
    zk.create(path + "/a")
    created_b, b_stat = zk.create(path + "/b", include_data=True)
    mid = zk.exists(path)
    assert mid.cversion == 2
    assert mid.numChildren == 2
    assert mid.pzxid == b_stat.czxid
    assert mid.version == 0 and mid.mzxid == start.mzxid  # children do not change the data
    zk.delete(path + "/a")
    end = zk.exists(path)
    assert end.cversion == 3
    assert end.numChildren == 1
    assert end.pzxid > mid.pzxid


def test_get_children_and_include_data(zk, path):
    zk.create(path, b"parent")
    for name in ["x", "a", "m"]:
        zk.create(path + "/" + name)
    assert sorted(zk.get_children(path)) == ["a", "m", "x"]
    children, stat = zk.get_children(path, include_data=True)
    assert sorted(children) == ["a", "m", "x"]
    assert isinstance(stat, ZnodeStat)
    assert stat == zk.exists(path)
    assert stat.numChildren == 3
    assert zk.get_children(path + "/a") == []


def test_ensure_path(zk, path):
    assert zk.ensure_path(path + "/x/y/z")
    assert zk.exists(path + "/x/y/z") is not None
    zk.set(path + "/x", b"keep")
    assert zk.ensure_path(path + "/x/y/z")  # idempotent
    assert zk.get(path + "/x")[0] == b"keep"


def test_sync(zk, clients, path):
    other = clients()
    other.create(path, b"written elsewhere")
    assert zk.sync(path) == path
    assert zk.get(path)[0] == b"written elsewhere"
    # ZooKeeper does not require the node to exist for sync.
    assert zk.sync(path + "/never-created") == path + "/never-created"


def test_transaction_success_results(zk, path):
    zk.create(path, b"p")
    zk.create(path + "/old")
    t = zk.transaction()
    t.create(path + "/new", b"n")
    t.create(path + "/seq-", b"s", sequence=True)
    t.set_data(path, b"p2")
    t.check(path, 1)
    t.delete(path + "/old")
    results = t.commit()
    assert len(results) == 5
    assert results[0] == path + "/new"
    assert results[1] == path + "/seq-0000000002"
    assert isinstance(results[2], ZnodeStat) and results[2].version == 1
    assert results[3] is True
    assert results[4] is True
    assert sorted(zk.get_children(path)) == ["new", "seq-0000000002"]
    # One transaction is one zxid.
    assert zk.exists(path + "/new").czxid == results[2].mzxid == zk.exists(path).pzxid


def test_transaction_ops_see_earlier_ops(zk, path):
    zk.create(path)
    t = zk.transaction()
    t.create(path + "/a", b"1")
    t.create(path + "/a/b", b"2")
    t.set_data(path + "/a", b"3", version=0)
    t.create(path + "/gone")
    t.delete(path + "/gone")
    results = t.commit()
    assert results[0] == path + "/a"
    assert results[1] == path + "/a/b"
    assert results[2].version == 1
    assert results[3:] == [path + "/gone", True]
    assert zk.get(path + "/a")[0] == b"3"
    assert zk.exists(path + "/gone") is None


def test_transaction_failure_reports_each_op_and_applies_nothing(zk, path):
    zk.create(path, b"orig")
    before = zk.exists(path)
    t = zk.transaction()
    t.create(path + "/new", b"n")
    t.set_data(path, b"changed")
    t.check(path, 7)  # fails: version is 1 by then
    t.delete(path)
    t.create(path + "/other")
    results = t.commit()
    assert [type(r) for r in results] == [
        RolledBackError,
        RolledBackError,
        BadVersionError,
        RuntimeInconsistency,
        RuntimeInconsistency,
    ]
    assert zk.get(path)[0] == b"orig"
    assert zk.exists(path + "/new") is None
    after = zk.exists(path)
    assert after == before


def test_transaction_failure_on_first_op(zk, path):
    zk.create(path)
    t = zk.transaction()
    t.delete(path + "/missing")
    t.create(path + "/x")
    results = t.commit()
    assert [type(r) for r in results] == [NoNodeError, RuntimeInconsistency]
    assert zk.exists(path + "/x") is None


def test_transaction_node_exists_in_middle(zk, path):
    zk.create(path)
    zk.create(path + "/taken")
    t = zk.transaction()
    t.create(path + "/free")
    t.create(path + "/taken")
    results = t.commit()
    assert [type(r) for r in results] == [RolledBackError, NodeExistsError]
    assert zk.get_children(path) == ["taken"]


def test_failed_transaction_consumes_no_sequence_number(zk, path):
    zk.create(path)
    t = zk.transaction()
    t.create(path + "/s-", sequence=True)
    t.check(path, 99)
    assert [type(r) for r in t.commit()] == [RolledBackError, BadVersionError]
    assert zk.exists(path).cversion == 0
    assert zk.create(path + "/s-", sequence=True) == path + "/s-0000000000"


def test_fresh_tree_root_and_zookeeper_nodes(fresh_server):
    zk = make_client(fresh_server.address)
    zk.start()
    try:
        assert zk.get_children("/") == ["zookeeper"]
        assert sorted(zk.get_children("/zookeeper")) == ["config", "quota"]
        root = zk.exists("/")
        assert root.numChildren == 1
        # Apache ZooKeeper's root starts at cversion -1 (checked against the Debian package).
        assert root.cversion == -1
        assert root.ephemeralOwner == 0
    finally:
        zk.stop()
        zk.close()


def test_root_stat_counts_children_changes(fresh_server):
    zk = make_client(fresh_server.address)
    zk.start()
    try:
        zk.create("/a")
        zk.create("/b")
        zk.create("/c", ephemeral=True)
        t = zk.transaction()
        t.delete("/a")
        t.set_data("/b", b"x")
        _, set_stat = t.commit()
        root = zk.exists("/")
        assert root.numChildren == 3  # zookeeper, b, c
        assert root.cversion == -1 + 4
        assert root.pzxid == set_stat.mzxid  # the zxid of the delete
    finally:
        zk.stop()
        zk.close()


def test_transaction_error_kinds(zk, clients, path):
    zk.create(path + "/full/k", makepath=True)

    def run(*ops, client=zk):
        t = client.transaction()
        for name, *args in ops:
            getattr(t, name)(*args)
        return [type(r) if isinstance(r, Exception) else r for r in t.commit()]

    assert run(("check", path + "/nope", 0)) == [NoNodeError]
    assert run(("delete", path + "/full")) == [NotEmptyError]
    assert run(("delete", path + "/full/k", 5)) == [BadVersionError]
    assert run(("set_data", path + "/nope", b"x")) == [NoNodeError]
    assert run(("create", path + "/e", b"", None, True), ("create", path + "/e/c")) == [
        RolledBackError,
        NoChildrenForEphemeralsError,
    ]
    assert run(("create", path + "/full"), ("check", path, 0)) == [NodeExistsError, RuntimeInconsistency]
    zk.add_auth("digest", "txn:pw")
    zk.create(path + "/locked", acl=[make_digest_acl("txn", "pw", read=True)])
    assert run(("set_data", path + "/locked", b"x")) == [NoAuthError]
    assert run(("create", path + "/locked/c")) == [NoAuthError]
    assert run() == []
    assert sorted(zk.get_children(path)) == ["full", "locked"]


def test_chroot(server, zk, clients, path):
    zk.create(path)
    rooted = clients(hosts=server.address + path)
    assert rooted.create("/x", b"in chroot") == "/x"
    assert rooted.get_children("/") == ["x"]
    zk.sync(path)
    assert zk.get(path + "/x")[0] == b"in chroot"
    events = []
    rooted.get("/x", watch=events.append)
    zk.set(path + "/x", b"changed")
    wait_until(lambda: events, timeout=5, message="watch in chroot")
    assert events[0].path == "/x"
    seq = rooted.create("/s-", sequence=True)
    assert seq == "/s-0000000001"
