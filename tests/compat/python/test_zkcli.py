"""Apache ZooKeeper's own CLI (Debian's zkCli.sh, 3.8) against ensemble: commands given as
arguments or piped in, their output as zkCli prints it, and their effects checked with kazoo.
The expected texts are what zkCli prints against Apache ZooKeeper 3.8.

zkCli is given every member and picks one, which may not have applied what kazoo just wrote:
a piped session syncs first (`script`), a single command runs after `sync_members`; kazoo
syncs before reading what zkCli wrote (see compat_helpers)."""

import re

import pytest
from kazoo.protocol.states import EventType
from kazoo.security import READ_ACL_UNSAFE, make_digest_acl

from compat_helpers import sync_members, wait_until, zkcli

NOISE = {
    "Welcome to ZooKeeper!",
    "JLine support is disabled",
    "WATCHER::",
    "WatchedEvent state:SyncConnected type:None path:null",
    "WatchedEvent state:Closed type:None path:null",
    "",
}


def body(output):
    return [l for l in output.splitlines() if l.strip() not in NOISE and not l.startswith("Connecting to ")]


def cli(server, *args):
    """One command as arguments; returns (exit code, meaningful output lines)."""
    code, out = zkcli(server, *args)
    return code, body(out)


def script(server, *commands):
    """Several commands in one session, piped to stdin, after a `sync /` (its "Sync is OK"
    left out); returns the meaningful lines. (The exit code is that of the last command, so
    it is not checked here.)"""
    _, out = zkcli(server, stdin="\n".join(["sync /"] + list(commands) + ["quit"]) + "\n")
    assert "Connecting to" in out and "WatchedEvent state:SyncConnected" in out, out
    lines = body(out)
    assert lines[:1] == ["Sync is OK"], out
    return lines[1:]


def parse_stat(lines):
    stat = {}
    for line in lines:
        m = re.match(r"^(\w+) = (.*)$", line)
        if m:
            stat[m.group(1)] = m.group(2)
    return stat


def assert_stat_matches(printed, stat):
    assert printed["cZxid"] == hex(stat.czxid)
    assert printed["mZxid"] == hex(stat.mzxid)
    assert printed["pZxid"] == hex(stat.pzxid)
    assert printed["cversion"] == str(stat.cversion)
    assert printed["dataVersion"] == str(stat.version)
    assert printed["aclVersion"] == str(stat.aversion)
    assert printed["ephemeralOwner"] == hex(stat.ephemeralOwner)
    assert printed["dataLength"] == str(stat.dataLength)
    assert printed["numChildren"] == str(stat.numChildren)
    assert re.match(r"^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \w+ \d{4}$", printed["ctime"]), printed["ctime"]


@pytest.fixture
def node(path):
    return "/zkcli" + path


# Each zkCli run costs about a second (a JVM), so most tests pipe several commands into one.


def test_create_and_get_as_arguments(server, zk, node):
    zk.ensure_path("/zkcli")
    assert cli(server, "create", node, "hello") == (0, ["Created " + node])
    zk.sync(node)
    assert zk.get(node)[0] == b"hello"
    zk.set(node, b"from kazoo")
    sync_members(server, node)
    assert cli(server, "get", node) == (0, ["from kazoo"])


def test_failing_command_exits_non_zero(server, node):
    code, out = cli(server, "get", node)
    assert out == ["Node does not exist: " + node]
    assert code != 0


def test_create_variants(server, zk, node):
    zk.create(node + "/first", b"1", makepath=True)
    created = []
    zk.exists(node + "/eph", watch=created.append)
    out = script(
        server,
        "create %s/first again" % node,
        "create %s/no/parent x" % node,
        "create %s/null" % node,
        "get %s/null" % node,
        "create -s %s/s- a" % node,
        "create -s %s/s- b" % node,
        "create -e -s %s/e- c" % node,
        "create -e %s/eph eph" % node,
        "stat %s/eph" % node,
    )
    assert out[:8] == [
        "Node already exists: %s/first" % node,
        "Node does not exist: %s/no/parent" % node,
        "Created %s/null" % node,
        "null",
        "Created %s/s-0000000002" % node,
        "Created %s/s-0000000003" % node,
        "Created %s/e-0000000004" % node,
        "Created %s/eph" % node,
    ]
    owner = parse_stat(out[8:])["ephemeralOwner"]
    assert owner != "0x0"
    zk.sync(node)
    assert zk.get(node + "/first")[0] == b"1"
    assert zk.exists(node + "/no") is None
    data, stat = zk.get(node + "/null")
    assert not data and stat.dataLength == 0
    assert zk.get(node + "/s-0000000003")[0] == b"b"
    wait_until(lambda: created, timeout=5, message="the exists watch's event")
    assert created[0].type == EventType.CREATED
    # zkCli closed its session on quit: its ephemerals went with it.
    assert sorted(zk.get_children(node)) == ["first", "null", "s-0000000002", "s-0000000003"]


def test_get_set_stat(server, zk, node):
    zk.create(node, b"payload", makepath=True)
    zk.set(node, b"payload2")
    zk.create(node + "/kid")
    before = zk.exists(node)
    out = script(
        server,
        "get -s " + node,
        "set %s v2" % node,
        "set -v 2 %s v3" % node,
        "set -v 2 %s stale" % node,
        "set %s/missing x" % node,
        "get " + node,
        "stat %s/missing" % node,
        "set -s %s v4" % node,
    )
    assert out[0] == "payload2"
    assert [l.split(" = ")[0] for l in out[1:12]] == [
        "cZxid", "ctime", "mZxid", "mtime", "pZxid", "cversion",
        "dataVersion", "aclVersion", "ephemeralOwner", "dataLength", "numChildren",
    ]
    assert_stat_matches(parse_stat(out[1:12]), before)
    assert out[12:16] == [
        "version No is not valid : " + node,
        "Node does not exist: %s/missing" % node,
        "v3",
        "Node does not exist: %s/missing" % node,
    ]
    zk.sync(node)
    after = zk.exists(node)
    assert after.version == 4
    assert zk.get(node)[0] == b"v4"
    assert_stat_matches(parse_stat(out[16:]), after)


def test_ls_and_stat(server, zk, node):
    for child in ("b", "a", "c/deep"):
        zk.create(node + "/" + child, makepath=True)
    zk.create(node + "/k-eph", ephemeral=True)
    out = script(
        server,
        "ls " + node,
        "ls -s " + node,
        "ls -R " + node,
        "ls %s/missing" % node,
        "ls %s/a" % node,
        "ls /zookeeper",
        "stat %s/k-eph" % node,
    )
    assert out[0] == "[a, b, c, k-eph]"
    assert out[1] == "[a, b, c, k-eph]"
    assert_stat_matches(parse_stat(out[2:13]), zk.exists(node))
    # ls -R walks breadth first, in whatever order the server lists children.
    walk = out[13:19]
    assert walk[0] == node
    assert sorted(walk) == sorted([node] + [node + "/" + c for c in ("a", "b", "c", "k-eph", "c/deep")])
    assert walk.index(node + "/c") < walk.index(node + "/c/deep")
    assert out[19:22] == ["Node does not exist: %s/missing" % node, "[]", "[config, quota]"]
    printed = parse_stat(out[22:])
    assert printed["ephemeralOwner"] == hex(zk.client_id[0])
    assert_stat_matches(printed, zk.exists(node + "/k-eph"))


def test_delete(server, zk, node):
    zk.create(node + "/child", makepath=True)
    zk.set(node, b"x")
    out = script(
        server,
        "delete " + node,
        "delete %s/child" % node,
        "delete %s/child" % node,
        "delete -v 0 " + node,
        "stat " + node,
        "delete -v 1 " + node,
    )
    assert out[:3] == [
        "Node not empty: " + node,
        "Node does not exist: %s/child" % node,
        "version No is not valid : " + node,
    ]
    assert len(out) == 3 + 11
    assert parse_stat(out[3:])["numChildren"] == "0"
    assert parse_stat(out[3:])["dataVersion"] == "1"
    zk.sync(node)
    assert zk.exists(node) is None


def test_deleteall(server, zk, node):
    for child in ("a/b/c", "a/d", "e"):
        zk.create(node + "/" + child, makepath=True)
    sync_members(server, node)  # deleteall lists the children before it deletes them
    assert cli(server, "deleteall", node) == (0, [])
    zk.sync(node)
    assert zk.exists(node) is None
    assert zk.exists("/zkcli") is not None


def test_acl_commands(server, zk, clients, node):
    zk.ensure_path("/zkcli")
    zk.create(node + "-open")
    zk.add_auth("digest", "u:p")
    zk.create(node, b"secret", acl=[make_digest_acl("u", "p", read=True, write=True, admin=True)])
    out = script(
        server,
        "getAcl %s-open" % node,
        "get " + node,
        "addauth digest u:p",
        "get " + node,
        "getAcl " + node,
        "whoami",
        "setAcl %s world:anyone:r" % node,
        "set %s nope" % node,
    )
    assert out == [
        "'world,'anyone",
        ": cdrwa",
        "Insufficient permission : " + node,
        "secret",
        "'digest,'u:Jq7wMyA/w2Vd5WIDAKdu4OIIFEQ=",
        ": rwa",
        "Auth scheme: User",
        "ip: 127.0.0.1",
        "digest: u",
        "Insufficient permission : " + node,
    ]
    anonymous = clients()
    anonymous.sync(node)
    assert anonymous.get(node)[0] == b"secret"
    assert anonymous.get_acls(node)[0] == READ_ACL_UNSAFE


def test_watch_event_printed(server, zk, node):
    zk.create(node, b"0", makepath=True)
    out = script(server, "get -w " + node, "set %s 1" % node, "ls -w " + node, "create %s/kid" % node)
    data_event = "WatchedEvent state:SyncConnected type:NodeDataChanged path:" + node
    child_event = "WatchedEvent state:SyncConnected type:NodeChildrenChanged path:" + node
    # The event is printed by zkCli's event thread, so it may come just before or after the
    # next command's output.
    assert out[0] == "0"
    assert sorted(out[1:3]) == sorted([data_event, "[]"])
    assert sorted(out[3:]) == sorted([child_event, "Created %s/kid" % node])
    zk.sync(node)
    assert zk.get(node)[0] == b"1"


def test_newer_commands(server, zk, node):
    zk.create(node + "/a/b", makepath=True)
    zk.create(node + "/c")
    out = script(
        server,
        "getAllChildrenNumber " + node,
        "create -e %s/a/eph x" % node,
        "getEphemerals " + node,
        "sync " + node,
    )
    assert out == ["3", "Created %s/a/eph" % node, "[%s/a/eph]" % node, "Sync is OK"]
