package dev.ensemble.compat;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.stream.Collectors;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.KeeperException.Code;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.ZooDefs.Ids;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.Stat;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** multi / transactions: atomicity and the per-op results, on success and on failure. */
class ZooKeeperMultiTest {

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
    void successfulMultiReturnsOneResultPerOp() throws Exception {
        zk.create("/m", "0".getBytes(UTF_8), OPEN, CreateMode.PERSISTENT);
        zk.create("/m/old", null, OPEN, CreateMode.PERSISTENT);
        List<OpResult> results = zk.multi(List.of(
                Op.create("/m/a", "a".getBytes(UTF_8), OPEN, CreateMode.PERSISTENT),
                Op.create("/m/a/child", null, OPEN, CreateMode.EPHEMERAL),
                Op.create("/m/s-", null, OPEN, CreateMode.PERSISTENT_SEQUENTIAL),
                Op.setData("/m", "1".getBytes(UTF_8), 0),
                Op.check("/m", 1),
                Op.delete("/m/old", 0)));
        assertEquals(6, results.size());
        assertEquals("/m/a", assertInstanceOf(OpResult.CreateResult.class, results.get(0)).getPath());
        assertEquals("/m/a/child", assertInstanceOf(OpResult.CreateResult.class, results.get(1)).getPath());
        // /m had one child creation (old) and now a and s-: the sequence is 2.
        assertEquals("/m/s-0000000002", assertInstanceOf(OpResult.CreateResult.class, results.get(2)).getPath());
        Stat setStat = assertInstanceOf(OpResult.SetDataResult.class, results.get(3)).getStat();
        assertEquals(1, setStat.getVersion());
        assertInstanceOf(OpResult.CheckResult.class, results.get(4));
        assertInstanceOf(OpResult.DeleteResult.class, results.get(5));

        assertArrayEquals("1".getBytes(UTF_8), zk.getData("/m", false, null));
        assertEquals(List.of("a", "s-0000000002"), sortedChildren("/m"));
        assertEquals(zk.getSessionId(), Zk.stat(zk, "/m/a/child").getEphemeralOwner());

        // Everything in one multi shares one zxid.
        Stat a = Zk.stat(zk, "/m/a");
        Stat child = Zk.stat(zk, "/m/a/child");
        Stat m = Zk.stat(zk, "/m");
        assertEquals(a.getCzxid(), child.getCzxid(), "one zxid per multi");
        assertEquals(a.getCzxid(), m.getMzxid(), "one zxid per multi");
        assertEquals(a.getCzxid(), m.getPzxid(), "one zxid per multi");
        assertEquals(m.getMzxid(), setStat.getMzxid(), "SetDataResult's stat");
        assertEquals(3, setStat.getNumChildren(), "SetDataResult's stat is as of that op (before the delete)");
    }

    @Test
    void failedMultiAppliesNothingAndReportsEachOp() throws Exception {
        zk.create("/f", null, OPEN, CreateMode.PERSISTENT);
        Stat before = Zk.stat(zk, "/f");
        KeeperException e = expectMultiFailure(List.of(
                Op.create("/f/a", null, OPEN, CreateMode.PERSISTENT),
                Op.setData("/f", new byte[1], 0),
                Op.setData("/f/missing", new byte[1], -1),
                Op.create("/f/b", null, OPEN, CreateMode.PERSISTENT)));
        assertEquals(Code.NONODE, e.code());
        // Ops before the failure: OK (0); the failing op: its code; ops after: RuntimeInconsistency.
        assertEquals(List.of(0, 0, Code.NONODE.intValue(), Code.RUNTIMEINCONSISTENCY.intValue()), errorCodes(e));
        assertNull(zk.exists("/f/a", false), "multi is atomic");
        assertEquals(before, Zk.stat(zk, "/f"), "nothing changed the parent");
    }

    @Test
    void failedMultiErrorCodes() throws Exception {
        zk.create("/g", null, OPEN, CreateMode.PERSISTENT);
        zk.create("/g/child", null, OPEN, CreateMode.PERSISTENT);
        zk.create("/g/eph", null, OPEN, CreateMode.EPHEMERAL);

        KeeperException e = expectMultiFailure(List.of(Op.check("/g", 3)));
        assertEquals(Code.BADVERSION, e.code());
        assertEquals(List.of(Code.BADVERSION.intValue()), errorCodes(e));

        e = expectMultiFailure(List.of(Op.check("/g", 0), Op.create("/g/child", null, OPEN, CreateMode.PERSISTENT)));
        assertEquals(Code.NODEEXISTS, e.code());
        assertEquals(List.of(0, Code.NODEEXISTS.intValue()), errorCodes(e));

        e = expectMultiFailure(List.of(Op.delete("/g", -1)));
        assertEquals(Code.NOTEMPTY, e.code());

        e = expectMultiFailure(List.of(Op.create("/g/eph/x", null, OPEN, CreateMode.PERSISTENT), Op.check("/g", 0)));
        assertEquals(Code.NOCHILDRENFOREPHEMERALS, e.code());
        assertEquals(List.of(Code.NOCHILDRENFOREPHEMERALS.intValue(), Code.RUNTIMEINCONSISTENCY.intValue()), errorCodes(e));

        e = expectMultiFailure(List.of(Op.delete("/g/child", 5)));
        assertEquals(Code.BADVERSION, e.code());

        e = expectMultiFailure(List.of(Op.create("/g/x", null, OPEN, CreateMode.PERSISTENT),
                Op.setData("/g", null, -1), Op.check("/g/x", 1)));
        assertEquals(Code.BADVERSION, e.code());
        assertEquals(List.of(0, 0, Code.BADVERSION.intValue()), errorCodes(e));
        assertNull(zk.exists("/g/x", false));
        assertEquals(0, Zk.stat(zk, "/g").getVersion());

        // Ops later in a multi see the effects of earlier ones.
        List<OpResult> ok = zk.multi(List.of(
                Op.delete("/g/child", -1),
                Op.create("/g/child", "again".getBytes(UTF_8), OPEN, CreateMode.PERSISTENT),
                Op.check("/g/child", 0),
                Op.setData("/g/child", null, 0),
                Op.check("/g/child", 1)));
        assertEquals(5, ok.size());
        assertEquals(1, Zk.stat(zk, "/g/child").getVersion());
    }

    @Test
    void emptyMultiSucceeds() throws Exception {
        assertEquals(List.of(), zk.multi(List.of()));
    }

    @Test
    void transactionApiCommits() throws Exception {
        zk.create("/t", null, OPEN, CreateMode.PERSISTENT);
        List<OpResult> results = zk.transaction()
                .create("/t/one", "1".getBytes(UTF_8), OPEN, CreateMode.PERSISTENT)
                .setData("/t", "x".getBytes(UTF_8), 0)
                .check("/t/one", 0)
                .commit();
        assertEquals(3, results.size());
        assertNotNull(zk.exists("/t/one", false));

        try {
            zk.transaction().delete("/t/one", 0).delete("/t/one", 0).commit();
            fail("deleting twice must fail");
        } catch (KeeperException.NoNodeException expected) {
            assertEquals(List.of(0, Code.NONODE.intValue()), errorCodes(expected));
        }
        assertNotNull(zk.exists("/t/one", false));
    }

    @Test
    void multiReadReturnsPerOpResultsAndErrors() throws Exception {
        zk.create("/r", "root".getBytes(UTF_8), OPEN, CreateMode.PERSISTENT);
        zk.create("/r/x", "x".getBytes(UTF_8), OPEN, CreateMode.PERSISTENT);
        zk.create("/r/y", null, OPEN, CreateMode.PERSISTENT);
        List<OpResult> results = zk.multi(List.of(
                Op.getData("/r"),
                Op.getChildren("/r"),
                Op.getData("/r/missing"),
                Op.getChildren("/r/missing"),
                Op.getData("/r/x")));
        assertEquals(5, results.size());
        OpResult.GetDataResult data = assertInstanceOf(OpResult.GetDataResult.class, results.get(0));
        assertArrayEquals("root".getBytes(UTF_8), data.getData());
        assertEquals(Zk.stat(zk, "/r"), data.getStat());
        List<String> children = new ArrayList<>(assertInstanceOf(OpResult.GetChildrenResult.class, results.get(1)).getChildren());
        Collections.sort(children);
        assertEquals(List.of("x", "y"), children);
        assertEquals(Code.NONODE.intValue(), assertInstanceOf(OpResult.ErrorResult.class, results.get(2)).getErr());
        assertEquals(Code.NONODE.intValue(), assertInstanceOf(OpResult.ErrorResult.class, results.get(3)).getErr());
        assertArrayEquals("x".getBytes(UTF_8), assertInstanceOf(OpResult.GetDataResult.class, results.get(4)).getData());
    }

    @Test
    void multiCreateResultsFollowTheOpcode() throws Exception {
        // Op.create is opcode `create` (path only); a container create is `createContainer`,
        // whose result is create2-style (path and stat).
        List<OpResult> results = zk.multi(List.of(
                Op.create("/plain", "abc".getBytes(UTF_8), OPEN, CreateMode.PERSISTENT),
                Op.create("/box", "de".getBytes(UTF_8), OPEN, CreateMode.CONTAINER)));
        OpResult.CreateResult plain = assertInstanceOf(OpResult.CreateResult.class, results.get(0));
        assertEquals("/plain", plain.getPath());
        assertNull(plain.getStat(), "a create result has no stat");
        OpResult.CreateResult box = assertInstanceOf(OpResult.CreateResult.class, results.get(1));
        assertEquals("/box", box.getPath());
        assertNotNull(box.getStat(), "a createContainer result carries the new node's stat");
        assertEquals(Zk.stat(zk, "/box"), box.getStat());
    }

    private KeeperException expectMultiFailure(List<Op> ops) throws InterruptedException {
        try {
            List<OpResult> results = zk.multi(ops);
            fail("multi should have failed, got " + results);
            return null;
        } catch (KeeperException e) {
            assertNotNull(e.getResults(), "a failed multi carries per-op results");
            assertEquals(ops.size(), e.getResults().size(), "one result per op");
            return e;
        }
    }

    private static List<Integer> errorCodes(KeeperException e) {
        return e.getResults().stream()
                .map(r -> assertInstanceOf(OpResult.ErrorResult.class, r, "every result of a failed multi is an ErrorResult").getErr())
                .collect(Collectors.toList());
    }

    private List<String> sortedChildren(String path) throws Exception {
        List<String> children = new ArrayList<>(zk.getChildren(path, false));
        Collections.sort(children);
        return children;
    }
}
