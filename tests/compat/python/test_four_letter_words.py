"""Four-letter words on the client port, as monitoring tools use them. The server's
documented default whitelist is ruok, srvr, mntr, conf, isro (README, `server.fourLetterWords`);
the texts are Apache ZooKeeper 3.8's (ZooKeeper's FourLetterCommands and the commands in
org.apache.zookeeper.server.command)."""

import re
import struct
import zlib

from compat_helpers import (
    MEMBERS,
    four_letter_word,
    make_client,
    member_addresses,
    sync_members,
    wait_until,
)

# ZooKeeper's mode: a server alone is standalone; in an ensemble, leader or follower.
MODES = {"standalone"} if MEMBERS == 1 else {"leader", "follower"}


def srvr_fields(server):
    return dict(l.split(": ", 1) for l in four_letter_word(server, "srvr").strip().splitlines())


def summed(server, word, key, sep):
    """`key` of `word`'s reply added up over every member (a client may use any of them)."""
    total = 0
    for member in member_addresses(server):
        lines = four_letter_word(server, word, member=member).strip().splitlines()
        total += int(dict(l.split(sep, 1) for l in lines if sep in l)[key])
    return total


def test_ruok(server):
    assert four_letter_word(server, "ruok") == "imok"


def test_isro_on_a_writable_server(server):
    assert four_letter_word(server, "isro") == "rw"


def test_srvr_fields(server, zk):
    zk.ensure_path("/srvr")
    reply = four_letter_word(server, "srvr")
    assert ": " in reply, reply
    fields = dict(l.split(": ", 1) for l in reply.strip().splitlines())
    assert list(fields) == [
        "Zookeeper version",
        "Latency min/avg/max",
        "Received",
        "Sent",
        "Connections",
        "Outstanding",
        "Zxid",
        "Mode",
        "Node count",
    ]
    assert fields["Mode"] in MODES
    assert re.match(r"^0x[0-9a-f]+$", fields["Zxid"])
    # Another member may have taken the write; the first one applies it soon after.
    czxid = zk.exists("/srvr").czxid
    wait_until(
        lambda: int(srvr_fields(server)["Zxid"], 16) >= czxid,
        message="the first member to apply zxid 0x%x" % czxid,
    )
    assert summed(server, "srvr", "Connections", ": ") >= 1
    assert re.match(r"^\d+/[\d.]+/\d+$", fields["Latency min/avg/max"])


def test_mntr(server, zk, path):
    zk.create(path)
    zk.create(path + "/e1", ephemeral=True)
    zk.create(path + "/e2", ephemeral=True)
    zk.get(path, watch=lambda e: None)
    # mntr reports the first member's tree, which zk's writes may not have reached yet.
    sync_members(server, path, [(server.host, server.port)])
    reply = four_letter_word(server, "mntr")
    lines = reply.strip().splitlines()
    assert all("\t" in l for l in lines), "not mntr's key<TAB>value lines: %r" % reply
    values = dict(l.split("\t", 1) for l in lines)
    for key in (
        "zk_version",
        "zk_avg_latency",
        "zk_max_latency",
        "zk_min_latency",
        "zk_packets_received",
        "zk_packets_sent",
        "zk_num_alive_connections",
        "zk_outstanding_requests",
        "zk_server_state",
        "zk_znode_count",
        "zk_watch_count",
        "zk_ephemerals_count",
        "zk_approximate_data_size",
    ):
        assert key in values, "mntr lacks %s" % key
    assert values["zk_server_state"] in MODES
    assert int(values["zk_znode_count"]) >= 4
    assert int(values["zk_ephemerals_count"]) >= 2
    assert summed(server, "mntr", "zk_watch_count", "\t") >= 1
    assert summed(server, "mntr", "zk_num_alive_connections", "\t") >= 1


def test_conf(server):
    reply = four_letter_word(server, "conf")
    assert "=" in reply, "not conf's key=value lines: %r" % reply
    values = dict(l.split("=", 1) for l in reply.strip().splitlines() if "=" in l)
    assert values.get("clientPort") == str(server.port)
    assert values.get("tickTime") == "2000"
    assert values.get("minSessionTimeout") == "4000"
    assert values.get("maxSessionTimeout") == "40000"


def test_word_outside_the_whitelist_is_refused(server):
    assert four_letter_word(server, "stat") == "stat is not executed because it is not in the whitelist.\n"
    assert four_letter_word(server, "envi") == "envi is not executed because it is not in the whitelist.\n"
    # The words that reset statistics or dump sessions are not in the default whitelist either.
    assert four_letter_word(server, "srst") == "srst is not executed because it is not in the whitelist.\n"
    assert four_letter_word(server, "dump") == "dump is not executed because it is not in the whitelist.\n"


def digest_as_read(zk):
    """The tree digest of ZooKeeper 3.6+ (DataTree's, `DigestCalculator` version 2) over the
    tree as `zk` reads it: the sum of a CRC-32 per node outside /zookeeper/ of its path ("" for
    the root), its data and its stored stat packed big-endian (czxid, mzxid, pzxid, ctime,
    mtime as longs; version, cversion, aversion as ints; ephemeralOwner). The stored cversion
    counts creations; clients see creations plus deletions."""
    total = 0
    paths = ["/"]
    while paths:
        path = paths.pop()
        data, stat = zk.get(path)
        children = zk.get_children(path)
        if not path.startswith("/zookeeper/"):
            packed = struct.pack(
                ">qqqqqiiiq",
                stat.czxid, stat.mzxid, stat.pzxid, stat.ctime, stat.mtime,
                stat.version, (stat.cversion + stat.numChildren) // 2, stat.aversion,
                stat.ephemeralOwner,
            )
            total += zlib.crc32(("" if path == "/" else path).encode() + (data or b"") + packed)
        paths += [path.rstrip("/") + "/" + child for child in children]
    return total


def test_hash_lists_the_tree_digest_every_128_zxids(every_word_server):
    server = every_word_server
    zk = make_client(server.address)
    zk.start(timeout=15)
    try:
        zk.create("/h")
        logged = []
        # Writes until the second zxid that logs a digest; then nothing changes the tree.
        while len(logged) < 2:
            zxid = zk.create("/h/n%d" % len(zk.get_children("/h")), b"data", include_data=True)[1].czxid
            if zxid % 128 == 0:
                logged.append(zxid)
        expected = digest_as_read(zk)
    finally:
        zk.stop()
        zk.close()
    line = "%x: %d" % (logged[-1], expected)
    for member in member_addresses(server):
        wait_until(
            lambda: line in four_letter_word(server, "hash", member=member).splitlines(),
            message="member %s:%d to log %r" % (member + (line,)),
        )
        lines = four_letter_word(server, "hash", member=member).splitlines()
        zxids = [int(l.split(": ")[0], 16) for l in lines]
        assert zxids == sorted(zxids) and all(z % 128 == 0 for z in zxids), lines
        assert "%x" % logged[0] in [l.split(": ")[0] for l in lines], lines
