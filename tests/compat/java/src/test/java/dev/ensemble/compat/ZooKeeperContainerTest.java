package dev.ensemble.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.util.List;
import org.apache.zookeeper.CreateMode;
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

/** Container nodes as a client sees them; their removal is in {@link ContainerSweepTest}. */
class ZooKeeperContainerTest {

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
    void containerLooksLikeAPersistentNodeToClients() throws Exception {
        Stat created = new Stat();
        assertEquals("/c", zk.create("/c", new byte[] {1, 2}, OPEN, CreateMode.CONTAINER, created));
        // ZooKeeper keeps a marker in ephemeralOwner internally but shows clients 0.
        assertEquals(0, created.getEphemeralOwner(), "create2 stat of a container");
        assertEquals(0, Zk.stat(zk, "/c").getEphemeralOwner(), "exists stat of a container");
        assertEquals(2, created.getDataLength());
        zk.create("/c/persistent", null, OPEN, CreateMode.PERSISTENT);
        zk.create("/c/eph", null, OPEN, CreateMode.EPHEMERAL);
        zk.create("/c/nested", null, OPEN, CreateMode.CONTAINER);
        assertEquals(3, Zk.stat(zk, "/c").getNumChildren());
        assertEquals(List.of(), zk.getEphemerals("/c/nested"), "containers are not ephemerals");
        zk.setData("/c", new byte[1], 0);
        assertEquals(1, Zk.stat(zk, "/c").getVersion());
    }

    @Test
    void containerInMultiAndExplicitDelete() throws Exception {
        List<OpResult> results = zk.multi(List.of(
                Op.create("/mc", null, OPEN, CreateMode.CONTAINER),
                Op.create("/mc/child", null, OPEN, CreateMode.PERSISTENT)));
        assertEquals("/mc", assertInstanceOf(OpResult.CreateResult.class, results.get(0)).getPath());
        assertEquals(0, Zk.stat(zk, "/mc").getEphemeralOwner());
        zk.delete("/mc/child", -1);
        // Clients may delete a container themselves at any time.
        zk.delete("/mc", -1);
        assertEquals(null, zk.exists("/mc", false));
        zk.create("/again", null, OPEN, CreateMode.CONTAINER);
        assertNotNull(zk.exists("/again", false));
    }
}
