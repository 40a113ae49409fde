package dev.ensemble.compat;

import static dev.ensemble.compat.Zk.assertCode;
import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException.Code;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.Watcher.Event.KeeperState;
import org.apache.zookeeper.ZooDefs.Ids;
import org.apache.zookeeper.ZooDefs.Perms;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.data.Stat;
import org.apache.zookeeper.server.auth.DigestAuthenticationProvider;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** ACLs: digest authentication, the "auth" scheme, ip ACLs and the permission each op needs. */
class ZooKeeperAclTest {

    @RegisterExtension
    final CompatServer server = new CompatServer();

    private static final List<ACL> OPEN = Ids.OPEN_ACL_UNSAFE;

    private ZooKeeper alice;
    private ZooKeeper anonymous;

    @BeforeEach
    void connect() throws Exception {
        alice = Zk.connect(server.connectString());
        alice.addAuthInfo("digest", "alice:secret".getBytes(UTF_8));
        anonymous = Zk.connect(server.connectString());
    }

    @AfterEach
    void close() throws Exception {
        for (ZooKeeper zk : new ZooKeeper[] {alice, anonymous}) {
            if (zk != null) {
                zk.close();
            }
        }
    }

    private static Id digest(String userPassword) throws Exception {
        return new Id("digest", DigestAuthenticationProvider.generateDigest(userPassword));
    }

    private static List<ACL> acls(ACL... acls) {
        return new ArrayList<>(Arrays.asList(acls));
    }

    @Test
    void creatorAclIsTheAuthenticatedDigest() throws Exception {
        alice.create("/secret", "s".getBytes(UTF_8), Ids.CREATOR_ALL_ACL, CreateMode.PERSISTENT);
        assertEquals(acls(new ACL(Perms.ALL, digest("alice:secret"))), alice.getACL("/secret", new Stat()));

        Zk.sync(anonymous); // it reads what alice wrote: see Zk
        assertCode(Code.NOAUTH, () -> anonymous.getData("/secret", false, null));
        assertCode(Code.NOAUTH, () -> anonymous.setData("/secret", new byte[1], -1));
        assertCode(Code.NOAUTH, () -> anonymous.getChildren("/secret", false));
        assertCode(Code.NOAUTH, () -> anonymous.create("/secret/child", null, OPEN, CreateMode.PERSISTENT));
        assertCode(Code.NOAUTH, () -> anonymous.setACL("/secret", OPEN, -1));
        assertCode(Code.NOAUTH, () -> anonymous.multi(List.of(Op.setData("/secret", new byte[1], -1))));

        ZooKeeper wrong = Zk.connect(server.connectString());
        ZooKeeper right = Zk.connect(server.connectString());
        try {
            wrong.addAuthInfo("digest", "alice:wrong".getBytes(UTF_8));
            Zk.sync(wrong);
            assertCode(Code.NOAUTH, () -> wrong.getData("/secret", false, null));
            right.addAuthInfo("digest", "alice:secret".getBytes(UTF_8));
            Zk.sync(right);
            assertArrayEquals("s".getBytes(UTF_8), right.getData("/secret", false, null));
            right.setData("/secret", "t".getBytes(UTF_8), 0);
        } finally {
            wrong.close();
            right.close();
        }
    }

    @Test
    void existsAndGetAclNeedReadPermission() throws Exception {
        // ZooKeeper 3.9 checks READ for exists (on a node that exists) and READ or ADMIN for getACL.
        alice.create("/hidden", null, Ids.CREATOR_ALL_ACL, CreateMode.PERSISTENT);
        Zk.sync(anonymous);
        assertCode(Code.NOAUTH, () -> anonymous.exists("/hidden", false));
        assertCode(Code.NOAUTH, () -> anonymous.getACL("/hidden", new Stat()));
        assertNotNull(alice.exists("/hidden", false));
        assertEquals(null, anonymous.exists("/hidden/none", false), "exists on a missing node needs no permission");
    }

    @Test
    void authSchemeWithoutIdentityIsInvalidAcl() throws Exception {
        assertCode(Code.INVALIDACL, () -> anonymous.create("/mine", null, Ids.CREATOR_ALL_ACL, CreateMode.PERSISTENT));
    }

    @Test
    void explicitDigestAclsGrantPerIdentityPermissions() throws Exception {
        Id bob = digest("bob:pw");
        alice.create("/shared", "v".getBytes(UTF_8),
                acls(new ACL(Perms.READ, bob), new ACL(Perms.ALL, digest("alice:secret"))), CreateMode.PERSISTENT);
        ZooKeeper bobClient = Zk.connect(server.connectString());
        try {
            bobClient.addAuthInfo("digest", "bob:pw".getBytes(UTF_8));
            Zk.sync(bobClient);
            assertArrayEquals("v".getBytes(UTF_8), bobClient.getData("/shared", false, null));
            assertCode(Code.NOAUTH, () -> bobClient.setData("/shared", new byte[1], -1));
            // READ without ADMIN: getACL answers with digest hashes redacted.
            List<ACL> seen = bobClient.getACL("/shared", new Stat());
            assertEquals(acls(new ACL(Perms.READ, new Id("digest", "bob:x")),
                    new ACL(Perms.ALL, new Id("digest", "alice:x"))), seen);
            // A second identity on the same session adds to the first.
            bobClient.addAuthInfo("digest", "alice:secret".getBytes(UTF_8));
            bobClient.setData("/shared", new byte[1], -1);
        } finally {
            bobClient.close();
        }
    }

    @Test
    void eachOperationNeedsItsPermission() throws Exception {
        alice.create("/perm", null, OPEN, CreateMode.PERSISTENT);
        alice.create("/perm/child", null, OPEN, CreateMode.PERSISTENT);
        // CREATE and READ only: no DELETE (of children), WRITE or ADMIN.
        alice.setACL("/perm", acls(new ACL(Perms.CREATE | Perms.READ, Ids.ANYONE_ID_UNSAFE)), -1);
        anonymous.create("/perm/new", null, OPEN, CreateMode.PERSISTENT);
        assertCode(Code.NOAUTH, () -> anonymous.delete("/perm/child", -1));
        assertCode(Code.NOAUTH, () -> anonymous.setData("/perm", new byte[1], -1));
        assertCode(Code.NOAUTH, () -> anonymous.setACL("/perm", OPEN, -1));
        assertEquals(2, anonymous.getChildren("/perm", false).size());

        // DELETE only: children can go, nothing can be read.
        alice.create("/del", null, OPEN, CreateMode.PERSISTENT);
        alice.create("/del/child", null, OPEN, CreateMode.PERSISTENT);
        alice.setACL("/del", acls(new ACL(Perms.DELETE, Ids.ANYONE_ID_UNSAFE)), -1);
        Zk.sync(anonymous);
        assertCode(Code.NOAUTH, () -> anonymous.getData("/del", false, null));
        assertCode(Code.NOAUTH, () -> anonymous.create("/del/other", null, OPEN, CreateMode.PERSISTENT));
        anonymous.delete("/del/child", -1);
        // Deleting a node needs DELETE on its parent, not on itself.
        alice.create("/open", null, OPEN, CreateMode.PERSISTENT);
        alice.create("/open/locked", null, acls(new ACL(0, Ids.ANYONE_ID_UNSAFE)), CreateMode.PERSISTENT);
        anonymous.delete("/open/locked", -1);

        // WRITE and ADMIN without READ.
        alice.create("/wa", null, acls(new ACL(Perms.WRITE | Perms.ADMIN, Ids.ANYONE_ID_UNSAFE)), CreateMode.PERSISTENT);
        anonymous.setData("/wa", new byte[1], -1);
        assertNotNull(anonymous.getACL("/wa", new Stat()), "ADMIN is enough for getACL");
        assertCode(Code.NOAUTH, () -> anonymous.getData("/wa", false, null));
        anonymous.setACL("/wa", OPEN, -1);
        anonymous.getData("/wa", false, null);
    }

    @Test
    void ipAclsMatchTheClientAddress() throws Exception {
        alice.create("/local", null, acls(new ACL(Perms.ALL, new Id("ip", "127.0.0.1"))), CreateMode.PERSISTENT);
        alice.create("/subnet", null, acls(new ACL(Perms.ALL, new Id("ip", "127.0.0.0/8"))), CreateMode.PERSISTENT);
        alice.create("/elsewhere", null, acls(new ACL(Perms.ALL, new Id("ip", "10.1.2.3"))), CreateMode.PERSISTENT);
        Zk.sync(anonymous);
        anonymous.getData("/local", false, null);
        anonymous.getData("/subnet", false, null);
        assertCode(Code.NOAUTH, () -> anonymous.getData("/elsewhere", false, null));
    }

    @Test
    void unknownAuthSchemeFailsTheSession() throws Exception {
        Zk.Events events = new Zk.Events("bad auth");
        ZooKeeper client = Zk.connect(server.connectString(), events);
        try {
            client.addAuthInfo("no-such-scheme", "x".getBytes(UTF_8));
            events.expectState(KeeperState.AuthFailed, 10_000);
            assertCode(Code.AUTHFAILED, () -> client.exists("/", false));
        } finally {
            client.close();
        }
    }
}
