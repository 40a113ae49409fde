"""ACLs and authentication through kazoo: digest and ip schemes, every permission bit,
get_acls/set_acls with versions, the `auth` scheme, add_auth and its failure.

A session that reads what another wrote syncs first: with several members it may be
connected to one that has not applied the write yet (see compat_helpers)."""

import pytest
from kazoo.exceptions import (
    AuthFailedError,
    BadVersionError,
    InvalidACLError,
    NoAuthError,
    NoNodeError,
)
from kazoo.security import (
    ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Id,
    Permissions,
    make_acl,
    make_digest_acl,
    make_digest_acl_credential,
)

from compat_helpers import four_letter_word

ALICE = ("alice", "secret")
BOB = ("bob", "hunter2")


def _auth(client, user):
    client.add_auth("digest", "%s:%s" % user)


def _server_minor_version(server):
    """The y of the x.y.z that `srvr` reports (ensemble reports 3.9.0-ensemble-...)."""
    for line in four_letter_word(server, "srvr").splitlines():
        if line.startswith("Zookeeper version:"):
            return int(line.split(":", 1)[1].strip().split(".")[1])
    raise AssertionError("srvr reported no version")


def test_default_acl_is_open(zk, path):
    zk.create(path)
    acls, stat = zk.get_acls(path)
    assert acls == [ACL(Permissions.ALL, Id("world", "anyone"))]
    assert stat.aversion == 0
    assert stat == zk.exists(path)


def test_digest_acl_denies_others_and_allows_owner(server, zk, clients, path):
    _auth(zk, ALICE)
    zk.create(path, b"private", acl=[make_digest_acl(*ALICE, all=True)])
    zk.create(path + "/child", b"c", acl=OPEN_ACL_UNSAFE)

    anonymous = clients()
    anonymous.sync(path)
    with pytest.raises(NoAuthError):
        anonymous.get(path)
    with pytest.raises(NoAuthError):
        anonymous.get_children(path)
    with pytest.raises(NoAuthError):
        anonymous.set(path, b"x")
    with pytest.raises(NoAuthError):
        anonymous.create(path + "/new")
    with pytest.raises(NoAuthError):
        anonymous.delete(path + "/child")
    # exists on an existing node needs READ from ZooKeeper 3.9 on (3.8 checked nothing);
    # ensemble follows 3.9. A child's own ACL is what guards the child.
    if _server_minor_version(server) >= 9:
        with pytest.raises(NoAuthError):
            anonymous.exists(path)
    else:
        assert anonymous.exists(path) is not None
    assert anonymous.get(path + "/child")[0] == b"c"

    bob = clients()
    _auth(bob, BOB)
    bob.sync(path)
    with pytest.raises(NoAuthError):
        bob.get(path)

    # add_auth on a live session grants access from then on.
    _auth(anonymous, ALICE)
    assert anonymous.get(path)[0] == b"private"
    anonymous.set(path, b"changed")
    zk.sync(path)
    assert zk.get(path)[0] == b"changed"


def test_auth_data_given_at_connect(clients, zk, path):
    _auth(zk, ALICE)
    zk.create(path, b"x", acl=[make_digest_acl(*ALICE, all=True)])
    other = clients(auth_data=[("digest", "%s:%s" % ALICE)])
    other.sync(path)
    assert other.get(path)[0] == b"x"


def test_each_permission_bit(zk, clients, path):
    _auth(zk, ALICE)
    admin = make_digest_acl(*ALICE, all=True)
    zk.create(path, acl=OPEN_ACL_UNSAFE)
    other = clients()

    def node(name, perms):
        p = "%s/%s" % (path, name)
        zk.create(p, b"data", acl=[admin, make_acl("world", "anyone", **perms)])
        return p

    readable = node("read", {"read": True})
    other.sync(path)
    assert other.get(readable)[0] == b"data"
    assert other.get_children(readable) == []
    with pytest.raises(NoAuthError):
        other.set(readable, b"x")
    with pytest.raises(NoAuthError):
        other.create(readable + "/c")

    writable = node("write", {"write": True})
    other.set(writable, b"written")  # a write is checked in log order (ZooKeeper: on the leader)
    with pytest.raises(NoAuthError):
        other.get(writable)  # after its own write, other's member knows the node

    creatable = node("create", {"create": True})
    other.create(creatable + "/c")
    with pytest.raises(NoAuthError):
        other.delete(creatable + "/c")  # needs DELETE on the parent

    deletable = node("delete", {"delete": True})
    zk.create(deletable + "/c", acl=[admin])
    other.delete(deletable + "/c")  # the child's own ACL does not matter
    zk.sync(path)
    assert zk.exists(deletable + "/c") is None

    administrable = node("admin", {"admin": True})
    other.set_acls(administrable, OPEN_ACL_UNSAFE)
    assert other.get(administrable)[0] == b"data"

    for p in (readable, writable, creatable, deletable):
        with pytest.raises(NoAuthError):
            other.set_acls(p, OPEN_ACL_UNSAFE)


def test_read_only_world_acl(zk, clients, path):
    zk.create(path, b"ro", acl=READ_ACL_UNSAFE)
    other = clients()
    other.sync(path)
    assert other.get(path)[0] == b"ro"
    with pytest.raises(NoAuthError):
        other.set(path, b"x")
    with pytest.raises(NoAuthError):
        zk.set(path, b"x")


def test_set_acls_versions(zk, path):
    zk.create(path)
    stat = zk.set_acls(path, READ_ACL_UNSAFE + [make_acl("world", "anyone", admin=True)], version=0)
    assert stat.aversion == 1
    assert stat.version == 0  # data version unchanged
    with pytest.raises(BadVersionError):
        zk.set_acls(path, OPEN_ACL_UNSAFE, version=0)
    acls, stat = zk.get_acls(path)
    assert sorted(acls) == sorted(
        [ACL(Permissions.READ, Id("world", "anyone")), ACL(Permissions.ADMIN, Id("world", "anyone"))]
    )
    assert stat.aversion == 1
    assert zk.set_acls(path, OPEN_ACL_UNSAFE).aversion == 2  # -1: unconditional
    with pytest.raises(NoNodeError):
        zk.set_acls(path + "/missing", OPEN_ACL_UNSAFE)
    with pytest.raises(NoNodeError):
        zk.get_acls(path + "/missing")


def test_digest_id_is_user_and_hash(zk, path):
    _auth(zk, ALICE)
    zk.create(path, acl=[make_digest_acl(*ALICE, read=True, admin=True)])
    acls, _ = zk.get_acls(path)
    assert acls == [
        ACL(Permissions.READ | Permissions.ADMIN, Id("digest", make_digest_acl_credential(*ALICE)))
    ]


def test_get_acls_redacts_digests_without_admin(zk, clients, path):
    # ZooKeeper (since ZOOKEEPER-1392) lets a caller with READ or ADMIN read the ACL, but
    # hides the password hashes of digest ids from one without ADMIN.
    _auth(zk, ALICE)
    zk.create(path, acl=[make_digest_acl(*ALICE, all=True), make_acl("world", "anyone", read=True)])
    other = clients()
    other.sync(path)
    acls, _ = other.get_acls(path)
    assert sorted(acls) == sorted(
        [ACL(Permissions.ALL, Id("digest", "alice:x")), ACL(Permissions.READ, Id("world", "anyone"))]
    )
    full, _ = zk.get_acls(path)
    assert ACL(Permissions.ALL, Id("digest", make_digest_acl_credential(*ALICE))) in full

    zk.create(path + "/closed", acl=[make_digest_acl(*ALICE, all=True)])
    other.sync(path)
    with pytest.raises(NoAuthError):
        other.get_acls(path + "/closed")


def test_auth_scheme_uses_session_identity(zk, clients, path):
    _auth(zk, ALICE)
    zk.create(path, b"mine", acl=[ACL(Permissions.ALL, Id("auth", ""))])
    acls, _ = zk.get_acls(path)
    assert acls == [ACL(Permissions.ALL, Id("digest", make_digest_acl_credential(*ALICE)))]
    other = clients()
    other.sync(path)
    with pytest.raises(NoAuthError):
        other.get(path)


def test_auth_scheme_without_identity_is_invalid(clients, path):
    anonymous = clients()
    with pytest.raises(InvalidACLError):
        anonymous.create(path, acl=[ACL(Permissions.ALL, Id("auth", ""))])
    assert anonymous.exists(path) is None


def test_invalid_acls_rejected(zk, path):
    # (kazoo replaces an empty ACL list by its default on create, so that case is only
    # reachable through set_acls.)
    with pytest.raises(InvalidACLError):
        zk.create(path, acl=[ACL(Permissions.ALL, Id("nosuchscheme", "x"))])
    with pytest.raises(InvalidACLError):
        zk.create(path, acl=[ACL(Permissions.ALL, Id("world", "someone"))])
    assert zk.exists(path) is None
    t = zk.transaction()
    t.create(path, acl=[])
    assert [type(r) for r in t.commit()] == [InvalidACLError]
    assert zk.exists(path) is None
    zk.create(path)
    with pytest.raises(InvalidACLError):
        zk.set_acls(path, [])
    assert zk.get_acls(path)[0] == OPEN_ACL_UNSAFE


def test_ip_acl(zk, clients, path):
    zk.create(path, b"local", acl=[ACL(Permissions.READ, Id("ip", "127.0.0.1"))])
    zk.create(path + "-net", b"net", acl=[ACL(Permissions.READ, Id("ip", "127.0.0.0/8"))])
    zk.create(path + "-far", b"far", acl=[ACL(Permissions.READ, Id("ip", "10.1.2.3"))])
    other = clients()
    other.sync(path)
    assert other.get(path)[0] == b"local"
    assert other.get(path + "-net")[0] == b"net"
    with pytest.raises(NoAuthError):
        other.get(path + "-far")


def test_add_auth_unknown_scheme_fails(clients):
    client = clients()
    with pytest.raises(AuthFailedError):
        client.add_auth("nosuchscheme", "whatever")


def test_zookeeper_config_node_is_read_only(zk):
    acls, _ = zk.get_acls("/zookeeper/config")
    assert acls == READ_ACL_UNSAFE
    with pytest.raises(NoAuthError):
        zk.set("/zookeeper/config", b"server.1=evil:2888:3888")
