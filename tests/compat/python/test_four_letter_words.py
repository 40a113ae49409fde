"""Four-letter words on the client port, as monitoring tools use them. The server's
documented default whitelist is ruok, srvr, mntr, conf, isro (README, `server.fourLetterWords`);
the texts are Apache ZooKeeper 3.8's (ZooKeeper's FourLetterCommands and the commands in
org.apache.zookeeper.server.command)."""

import re

from compat_helpers import four_letter_word


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
    assert fields["Mode"] == "standalone"
    assert re.match(r"^0x[0-9a-f]+$", fields["Zxid"])
    assert int(fields["Zxid"], 16) >= zk.exists("/srvr").czxid
    assert int(fields["Connections"]) >= 1
    assert re.match(r"^\d+/[\d.]+/\d+$", fields["Latency min/avg/max"])


def test_mntr(server, zk, path):
    zk.create(path)
    zk.create(path + "/e1", ephemeral=True)
    zk.create(path + "/e2", ephemeral=True)
    zk.get(path, watch=lambda e: None)
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
    assert values["zk_server_state"] == "standalone"
    assert int(values["zk_znode_count"]) >= 4
    assert int(values["zk_ephemerals_count"]) >= 2
    assert int(values["zk_watch_count"]) >= 1
    assert int(values["zk_num_alive_connections"]) >= 1


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
