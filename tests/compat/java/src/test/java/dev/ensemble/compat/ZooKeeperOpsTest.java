package dev.ensemble.compat;

import static dev.ensemble.compat.Zk.assertCode;
import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException.Code;
import org.apache.zookeeper.ZooDefs.Ids;
import org.apache.zookeeper.ZooDefs.Perms;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.ClientInfo;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.data.Stat;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Every basic operation of the plain ZooKeeper client, its Stat and its error codes. */
class ZooKeeperOpsTest {

    @RegisterExtension
    final CompatServer server = new CompatServer();

    private static final List<ACL> OPEN = Ids.OPEN_ACL_UNSAFE;

    private ZooKeeper zk;

    @BeforeEach
    void connect() throws Exception {
        zk = Zk.connect(server.connectString());
    }

    @AfterEach
    void close() throws Exception {
        if (zk != null) {
            zk.close();
        }
    }

    @Test
    void createReturnsStatEqualToGetDataAndExists() throws Exception {
        byte[] data = "hello".getBytes(UTF_8);
        long before = System.currentTimeMillis();
        Stat created = new Stat();
        assertEquals("/node", zk.create("/node", data, OPEN, CreateMode.PERSISTENT, created));

        Stat read = new Stat();
        assertArrayEquals(data, zk.getData("/node", false, read));
        assertEquals(created, read, "create2 stat vs getData stat");
        assertEquals(read, zk.exists("/node", false), "exists stat vs getData stat");

        assertEquals(0, read.getVersion(), "version");
        assertEquals(0, read.getCversion(), "cversion");
        assertEquals(0, read.getAversion(), "aversion");
        assertEquals(5, read.getDataLength(), "dataLength");
        assertEquals(0, read.getNumChildren(), "numChildren");
        assertEquals(0, read.getEphemeralOwner(), "ephemeralOwner");
        assertEquals(read.getCzxid(), read.getMzxid(), "a new node has mzxid == czxid");
        assertEquals(read.getCzxid(), read.getPzxid(), "a new node has pzxid == czxid");
        assertTrue(read.getCzxid() > 0, "czxid > 0");
        assertEquals(read.getCtime(), read.getMtime(), "a new node has mtime == ctime");
        assertTrue(Math.abs(read.getCtime() - before) < 60_000,
                "ctime is wall-clock milliseconds: " + read.getCtime() + " vs client's " + before);

        Stat aclStat = new Stat();
        assertEquals(OPEN, zk.getACL("/node", aclStat));
        assertEquals(read, aclStat, "getACL stat");
    }

    @Test
    void dataRoundTripsExactly() throws Exception {
        zk.create("/null", null, OPEN, CreateMode.PERSISTENT);
        Stat stat = new Stat();
        assertNull(zk.getData("/null", false, stat), "a node created with null data reads back null");
        assertEquals(0, stat.getDataLength());

        zk.create("/empty", new byte[0], OPEN, CreateMode.PERSISTENT);
        byte[] empty = zk.getData("/empty", false, stat);
        assertNotNull(empty, "a node created with empty data reads back non-null");
        assertEquals(0, empty.length);

        byte[] binary = new byte[256];
        for (int i = 0; i < binary.length; i++) {
            binary[i] = (byte) i;
        }
        zk.create("/binary", binary, OPEN, CreateMode.PERSISTENT);
        assertArrayEquals(binary, zk.getData("/binary", false, null));

        zk.setData("/binary", null, -1);
        assertNull(zk.getData("/binary", false, stat), "setData(null) reads back null");
        assertEquals(0, stat.getDataLength());
    }

    @Test
    void largeDataUpToTheDefaultLimitRoundTrips() throws Exception {
        byte[] big = new byte[1_000_000];
        new java.util.Random(7).nextBytes(big);
        zk.create("/big", big, OPEN, CreateMode.PERSISTENT);
        Stat stat = new Stat();
        assertArrayEquals(big, zk.getData("/big", false, stat));
        assertEquals(big.length, stat.getDataLength());
    }

    @Test
    void requestLargerThanJuteMaxBufferIsRefusedAndSessionSurvives() throws Exception {
        // Above ZooKeeper's default jute.maxbuffer (0xfffff bytes): the server drops the
        // connection; the client reconnects to the same session.
        Zk.Events events = new Zk.Events("oversized");
        ZooKeeper client = Zk.connect(server.connectString(), events);
        try {
            long session = client.getSessionId();
            byte[] tooBig = new byte[1_100_000];
            assertCode(Code.CONNECTIONLOSS, () -> client.create("/huge", tooBig, OPEN, CreateMode.PERSISTENT));
            events.expectState(org.apache.zookeeper.Watcher.Event.KeeperState.Disconnected, 5_000);
            events.expectState(org.apache.zookeeper.Watcher.Event.KeeperState.SyncConnected, 15_000);
            assertNull(client.exists("/huge", false), "the oversized create must not have been applied");
            assertEquals(session, client.getSessionId());
            client.create("/after", null, OPEN, CreateMode.EPHEMERAL);
        } finally {
            client.close();
        }
    }

    @Test
    void createErrors() throws Exception {
        zk.create("/a", null, OPEN, CreateMode.PERSISTENT);
        for (CreateMode mode : CreateMode.values()) {
            if (mode.isTTL()) {
                continue;
            }
            assertCode(Code.NONODE, () -> zk.create("/missing/child", null, OPEN, mode));
        }
        assertCode(Code.NODEEXISTS, () -> zk.create("/a", null, OPEN, CreateMode.PERSISTENT));
        assertCode(Code.NODEEXISTS, () -> zk.create("/a", null, OPEN, CreateMode.EPHEMERAL));
        assertCode(Code.NODEEXISTS, () -> zk.create("/a", null, OPEN, CreateMode.CONTAINER));
        assertCode(Code.NODEEXISTS, () -> zk.create("/zookeeper", null, OPEN, CreateMode.PERSISTENT));

        zk.create("/eph", null, OPEN, CreateMode.EPHEMERAL);
        for (CreateMode mode : List.of(CreateMode.PERSISTENT, CreateMode.EPHEMERAL,
                CreateMode.PERSISTENT_SEQUENTIAL, CreateMode.EPHEMERAL_SEQUENTIAL, CreateMode.CONTAINER)) {
            assertCode(Code.NOCHILDRENFOREPHEMERALS, () -> zk.create("/eph/child", null, OPEN, mode));
        }
    }

    @Test
    void invalidAclsAreRefusedByTheServer() throws Exception {
        Id malformedDigest = new Id("digest", "no-colon-here");
        assertCode(Code.INVALIDACL, () -> zk.create("/x", null,
                acls(new ACL(Perms.ALL, malformedDigest)), CreateMode.PERSISTENT));
        assertCode(Code.INVALIDACL, () -> zk.create("/x", null,
                acls(new ACL(Perms.ALL, new Id("no-such-scheme", "whatever"))), CreateMode.PERSISTENT));
        // "auth" with no authenticated identity on the session.
        assertCode(Code.INVALIDACL, () -> zk.create("/x", null, Ids.CREATOR_ALL_ACL, CreateMode.PERSISTENT));
        assertNull(zk.exists("/x", false));

        zk.create("/y", null, OPEN, CreateMode.PERSISTENT);
        assertCode(Code.INVALIDACL, () -> zk.setACL("/y", acls(new ACL(Perms.ALL, malformedDigest)), -1));
        assertEquals(OPEN, zk.getACL("/y", new Stat()));
    }

    @Test
    void ttlNodesAreUnimplementedWithoutExtendedTypes() throws Exception {
        // Neither ensemble local nor a default ZooKeeper enables extendedTypesEnabled.
        assertCode(Code.UNIMPLEMENTED, () -> zk.create("/ttl", null, OPEN, CreateMode.PERSISTENT_WITH_TTL, new Stat(), 5000));
        assertNull(zk.exists("/ttl", false));
    }

    @Test
    void sequentialNamesFollowTheParentsCversion() throws Exception {
        zk.create("/seq", null, OPEN, CreateMode.PERSISTENT);
        assertEquals("/seq/n-0000000000", zk.create("/seq/n-", null, OPEN, CreateMode.PERSISTENT_SEQUENTIAL));
        assertEquals("/seq/n-0000000001", zk.create("/seq/n-", null, OPEN, CreateMode.PERSISTENT_SEQUENTIAL));
        zk.create("/seq/plain", null, OPEN, CreateMode.PERSISTENT);
        zk.delete("/seq/n-0000000001", -1);
        // The visible cversion counts child creations and deletions ...
        assertEquals(4, Zk.stat(zk, "/seq").getCversion());
        // ... but the sequence number is the number of child creations so far (ZooKeeper stores
        // only that and reports cversion as 2 * creations - numChildren).
        assertEquals("/seq/e-0000000003", zk.create("/seq/e-", null, OPEN, CreateMode.EPHEMERAL_SEQUENTIAL));
        assertEquals("/seq/0000000004", zk.create("/seq/", null, OPEN, CreateMode.PERSISTENT_SEQUENTIAL));
        Stat stat = new Stat();
        String path = zk.create("/seq/s-", "d".getBytes(UTF_8), OPEN, CreateMode.PERSISTENT_SEQUENTIAL, stat);
        assertEquals("/seq/s-0000000005", path);
        assertEquals(stat, Zk.stat(zk, path));
        assertEquals(7, Zk.stat(zk, "/seq").getCversion());
        assertEquals(new TreeSet<>(Set.of("n-0000000000", "plain", "e-0000000003", "0000000004", "s-0000000005")),
                new TreeSet<>(zk.getChildren("/seq", false)));
    }

    @Test
    void ephemeralNodesBelongToTheirSession() throws Exception {
        Stat stat = new Stat();
        zk.create("/e", "x".getBytes(UTF_8), OPEN, CreateMode.EPHEMERAL, stat);
        assertEquals(zk.getSessionId(), stat.getEphemeralOwner());
        assertEquals(zk.getSessionId(), Zk.stat(zk, "/e").getEphemeralOwner());
        zk.create("/p", null, OPEN, CreateMode.PERSISTENT);
        String seq = zk.create("/p/e-", null, OPEN, CreateMode.EPHEMERAL_SEQUENTIAL);
        assertEquals(zk.getSessionId(), Zk.stat(zk, seq).getEphemeralOwner());

        ZooKeeper other = Zk.connect(server.connectString());
        try {
            assertNotEquals(zk.getSessionId(), other.getSessionId());
            Zk.sync(other); // another session: see Zk
            assertEquals(zk.getSessionId(), Zk.stat(other, "/e").getEphemeralOwner());
            other.delete("/e", 0); // any session may delete it
            Zk.sync(zk);
            assertNull(zk.exists("/e", false));
        } finally {
            other.close();
        }
        zk.close();
        ZooKeeper again = Zk.connect(server.connectString());
        try {
            Zk.sync(again);
            assertNull(again.exists(seq, false), "ephemerals go when their session closes");
            assertEquals(List.of(), again.getChildren("/p", false));
        } finally {
            again.close();
        }
    }

    @Test
    void deleteChecksVersionChildrenAndExistence() throws Exception {
        zk.create("/d", null, OPEN, CreateMode.PERSISTENT);
        zk.create("/d/c", null, OPEN, CreateMode.PERSISTENT);
        assertCode(Code.NOTEMPTY, () -> zk.delete("/d", -1));
        assertCode(Code.NONODE, () -> zk.delete("/nope", -1));
        assertCode(Code.NONODE, () -> zk.delete("/nope/deeper", 0));
        zk.setData("/d/c", new byte[1], -1);
        assertCode(Code.BADVERSION, () -> zk.delete("/d/c", 0));
        assertCode(Code.BADVERSION, () -> zk.delete("/d/c", 7));
        zk.delete("/d/c", 1);
        assertNull(zk.exists("/d/c", false));
        zk.delete("/d", -1);
        assertNull(zk.exists("/d", false));
    }

    @Test
    void deletingTheRootIsRefused() throws Exception {
        Code code = Zk.codeOf(() -> zk.delete("/", -1));
        // ZooKeeper answers BadArguments; anything but success keeps the tree whole.
        assertEquals(Code.BADARGUMENTS, code);
        assertNotNull(zk.exists("/", false));
    }

    @Test
    void setDataVersionsAndStat() throws Exception {
        Stat created = new Stat();
        zk.create("/s", "0".getBytes(UTF_8), OPEN, CreateMode.PERSISTENT, created);
        Stat s1 = zk.setData("/s", "one".getBytes(UTF_8), 0);
        assertEquals(1, s1.getVersion());
        assertEquals(3, s1.getDataLength());
        assertEquals(created.getCzxid(), s1.getCzxid());
        assertTrue(s1.getMzxid() > created.getMzxid(), "mzxid grows");
        assertEquals(created.getPzxid(), s1.getPzxid(), "setData leaves pzxid");
        assertEquals(created.getCtime(), s1.getCtime());
        assertTrue(s1.getMtime() >= created.getMtime());
        assertEquals(s1, Zk.stat(zk, "/s"), "setData's returned stat is the node's stat");

        assertCode(Code.BADVERSION, () -> zk.setData("/s", new byte[0], 0));
        assertCode(Code.BADVERSION, () -> zk.setData("/s", new byte[0], 5));
        assertCode(Code.NONODE, () -> zk.setData("/none", new byte[0], -1));
        assertArrayEquals("one".getBytes(UTF_8), zk.getData("/s", false, null), "failed setData changes nothing");

        Stat s2 = zk.setData("/s", "two".getBytes(UTF_8), -1);
        assertEquals(2, s2.getVersion());
        Stat s3 = zk.setData("/s", "two".getBytes(UTF_8), 2);
        assertEquals(3, s3.getVersion(), "setting the same bytes is still a new version");
        assertTrue(s3.getMzxid() > s2.getMzxid());
    }

    @Test
    void childrenAndParentStat() throws Exception {
        Stat created = new Stat();
        zk.create("/p", null, OPEN, CreateMode.PERSISTENT, created);
        assertEquals(List.of(), zk.getChildren("/p", false));
        Stat childA = new Stat();
        zk.create("/p/a", null, OPEN, CreateMode.PERSISTENT, childA);
        zk.create("/p/b", null, OPEN, CreateMode.EPHEMERAL);
        Stat childC = new Stat();
        zk.create("/p/c", null, OPEN, CreateMode.PERSISTENT, childC);
        zk.create("/p/a/deep", null, OPEN, CreateMode.PERSISTENT);

        Stat parent = new Stat();
        List<String> children = new ArrayList<>(zk.getChildren("/p", false, parent));
        Collections.sort(children);
        assertEquals(List.of("a", "b", "c"), children);
        assertEquals(3, parent.getNumChildren());
        assertEquals(3, parent.getCversion());
        assertEquals(0, parent.getVersion(), "children don't change the parent's data version");
        assertEquals(childC.getCzxid(), parent.getPzxid(), "pzxid is the last child change");
        assertEquals(created.getMzxid(), parent.getMzxid(), "children don't change the parent's mzxid");
        assertEquals(parent, Zk.stat(zk, "/p"));

        zk.setData("/p/a", new byte[3], -1);
        assertEquals(parent, Zk.stat(zk, "/p"), "a child's setData leaves the parent's stat");

        zk.delete("/p/c", -1);
        Stat afterDelete = Zk.stat(zk, "/p");
        assertEquals(4, afterDelete.getCversion());
        assertEquals(2, afterDelete.getNumChildren());
        assertTrue(afterDelete.getPzxid() > parent.getPzxid(), "deleting a child moves pzxid");

        assertEquals(List.of(), zk.getChildren("/p/b", false), "a leaf has no children");
        Zk.assertCode(Code.NONODE, () -> zk.getChildren("/nope", false));
        Zk.assertCode(Code.NONODE, () -> zk.getData("/nope", false, null));
        Zk.assertCode(Code.NONODE, () -> zk.getACL("/nope", new Stat()));
        assertNull(zk.exists("/nope", false));
        assertNull(zk.exists("/nope/deeper", false));
        assertTrue(zk.getChildren("/", false).containsAll(List.of("p", "zookeeper")));
    }

    @Test
    void setAclVersionsAndAversion() throws Exception {
        zk.create("/acl", null, OPEN, CreateMode.PERSISTENT);
        List<ACL> readOnly = Ids.READ_ACL_UNSAFE;
        Stat s = zk.setACL("/acl", acls(new ACL(Perms.ALL, Ids.ANYONE_ID_UNSAFE)), 0);
        assertEquals(1, s.getAversion());
        assertEquals(0, s.getVersion());
        assertCode(Code.BADVERSION, () -> zk.setACL("/acl", readOnly, 0));
        assertCode(Code.NONODE, () -> zk.setACL("/missing", readOnly, -1));
        Stat s2 = zk.setACL("/acl", readOnly, 1);
        assertEquals(2, s2.getAversion());
        Stat got = new Stat();
        assertEquals(readOnly, zk.getACL("/acl", got));
        assertEquals(s2, got);
        assertCode(Code.NOAUTH, () -> zk.setData("/acl", new byte[1], -1));
    }

    @Test
    void getEphemeralsListsOnlyThisSessionsEphemerals() throws Exception {
        zk.create("/e", null, OPEN, CreateMode.PERSISTENT);
        zk.create("/f", null, OPEN, CreateMode.PERSISTENT);
        zk.create("/e/a1", null, OPEN, CreateMode.EPHEMERAL);
        zk.create("/e/a2", null, OPEN, CreateMode.EPHEMERAL);
        zk.create("/e/persistent", null, OPEN, CreateMode.PERSISTENT);
        zk.create("/f/x", null, OPEN, CreateMode.EPHEMERAL);
        String seq = zk.create("/f/s-", null, OPEN, CreateMode.EPHEMERAL_SEQUENTIAL);
        ZooKeeper other = Zk.connect(server.connectString());
        try {
            other.create("/e/b1", null, OPEN, CreateMode.EPHEMERAL);
            assertEquals(sorted("/e/a1", "/e/a2", "/f/x", seq), sorted(zk.getEphemerals()));
            assertEquals(sorted("/e/a1", "/e/a2"), sorted(zk.getEphemerals("/e")));
            assertEquals(sorted("/e/a1", "/e/a2"), sorted(zk.getEphemerals("/e/a")), "prefix match on the path string");
            assertEquals(sorted("/e/a1"), sorted(zk.getEphemerals("/e/a1")));
            assertEquals(sorted("/e/a1", "/e/a2", "/f/x", seq), sorted(zk.getEphemerals("/")));
            assertEquals(List.of(), zk.getEphemerals("/nothing"));
            assertEquals(sorted("/e/b1"), sorted(other.getEphemerals()));
        } finally {
            other.close();
        }
    }

    @Test
    void getAllChildrenNumberCountsDescendants() throws Exception {
        zk.create("/c", null, OPEN, CreateMode.PERSISTENT);
        zk.create("/c/a", null, OPEN, CreateMode.PERSISTENT);
        zk.create("/c/a/x", null, OPEN, CreateMode.PERSISTENT);
        zk.create("/c/a/y", null, OPEN, CreateMode.EPHEMERAL);
        zk.create("/c/b", null, OPEN, CreateMode.PERSISTENT);
        zk.create("/cc", null, OPEN, CreateMode.PERSISTENT); // a sibling sharing the prefix
        assertEquals(4, zk.getAllChildrenNumber("/c"));
        assertEquals(2, zk.getAllChildrenNumber("/c/a"));
        assertEquals(0, zk.getAllChildrenNumber("/c/b"));
        assertCode(Code.NONODE, () -> zk.getAllChildrenNumber("/nope"));
    }

    @Test
    void whoAmIReportsIpAndDigestIdentities() throws Exception {
        assertEquals(List.of("ip:127.0.0.1"), identities(zk.whoAmI()));
        zk.addAuthInfo("digest", "alice:secret".getBytes(UTF_8));
        assertEquals(List.of("digest:alice", "ip:127.0.0.1"), identities(zk.whoAmI()));
    }

    @Test
    void systemNodesAreThereAndProtected() throws Exception {
        assertTrue(zk.getChildren("/zookeeper", false).containsAll(List.of("config", "quota")));
        Stat stat = new Stat();
        byte[] config = zk.getConfig(false, stat);
        assertNotNull(config, "getConfig answers");
        if (config.length > 0) {
            // Tools and Curator's EnsembleTracker turn it into a connection string: it must name
            // the server this client reached.
            String clientConfig = org.apache.zookeeper.server.util.ConfigUtils.getClientConfigStr(new String(config, UTF_8));
            String port = server.connectString().substring(server.connectString().lastIndexOf(':') + 1);
            assertTrue(clientConfig.contains(":" + port), "/zookeeper/config as a client config: " + clientConfig);
        }
        assertEquals(Ids.READ_ACL_UNSAFE, zk.getACL("/zookeeper/config", new Stat()));
        assertCode(Code.NOAUTH, () -> zk.setData("/zookeeper/config", new byte[1], -1));
        assertCode(Code.BADARGUMENTS, () -> zk.delete("/zookeeper", -1));
    }

    @Test
    void syncCompletesWithThePath() throws Exception {
        zk.create("/synced", null, OPEN, CreateMode.PERSISTENT);
        CompletableFuture<String> done = new CompletableFuture<>();
        zk.sync("/synced", (rc, path, ctx) -> done.complete(Code.get(rc) + " " + path), null);
        assertEquals("OK /synced", done.get(10, TimeUnit.SECONDS));
    }

    @Test
    void chrootedClientSeesItsSubtree() throws Exception {
        zk.create("/app", null, OPEN, CreateMode.PERSISTENT);
        Zk.Events events = new Zk.Events("chroot");
        ZooKeeper chrooted = Zk.connect(server.connectString() + "/app", events);
        try {
            assertNull(chrooted.exists("/x", true));
            assertEquals("/x", chrooted.create("/x", null, OPEN, CreateMode.PERSISTENT));
            events.expect(org.apache.zookeeper.Watcher.Event.EventType.NodeCreated, "/x");
            Zk.sync(zk); // another session: see Zk
            assertNotNull(zk.exists("/app/x", false));
            assertEquals("/s-0000000001", chrooted.create("/s-", null, OPEN, CreateMode.PERSISTENT_SEQUENTIAL));
            assertEquals(sorted("s-0000000001", "x"), sorted(chrooted.getChildren("/", false)));
            // (The 3.9 client does not strip the chroot from multi's CreateResult paths, so
            // only the node itself is checked.)
            chrooted.multi(List.of(org.apache.zookeeper.Op.create("/m-", null, OPEN, CreateMode.PERSISTENT_SEQUENTIAL)));
            Zk.sync(zk);
            assertNotNull(zk.exists("/app/m-0000000002", false));
            chrooted.create("/eph", null, OPEN, CreateMode.EPHEMERAL);
            // The client does not strip the chroot from getEphemerals' answer either.
            assertEquals(List.of("/app/eph"), chrooted.getEphemerals());
        } finally {
            chrooted.close();
        }
    }

    /** A mutable list: the client's validateACL calls contains(null), which List.of refuses. */
    static List<ACL> acls(ACL... acls) {
        return new ArrayList<>(Arrays.asList(acls));
    }

    private static List<String> identities(List<ClientInfo> infos) {
        return infos.stream().map(i -> i.getAuthScheme() + ":" + i.getUser()).sorted().collect(Collectors.toList());
    }

    private static List<String> sorted(String... items) {
        List<String> list = new ArrayList<>(Arrays.asList(items));
        Collections.sort(list);
        return list;
    }

    private static List<String> sorted(List<String> items) {
        List<String> list = new ArrayList<>(items);
        Collections.sort(list);
        return list;
    }
}
