package dev.ensemble.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.ZooDefs.Ids;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.Stat;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.parallel.Execution;
import org.junit.jupiter.api.parallel.ExecutionMode;

/**
 * The server deletes containers that had children and are empty again, as ZooKeeper's
 * ContainerManager does (by default every 60 s, {@code znode.container.checkIntervalMs}), and
 * leaves alone containers that never had a child and containers that still have one. Curator's
 * {@code creatingParentContainersIfNeeded} parents and lock directories rely on this.
 *
 * <p>One test that mostly waits for the sweep, so it runs beside the other classes.
 */
@Execution(ExecutionMode.CONCURRENT)
class ContainerSweepTest {

    @RegisterExtension
    final CompatServer server = new CompatServer();

    private static final List<ACL> OPEN = Ids.OPEN_ACL_UNSAFE;
    /** ZooKeeper's default sweep interval is 60 s: allow one full interval and some. */
    private static final long SWEEP_BOUND_MS = 75_000;

    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void emptiedContainersAreDeletedOthersStay() throws Exception {
        Zk.Events events = new Zk.Events("container watcher");
        ZooKeeper zk = Zk.connect(server.connectString(), events);
        try (CuratorFramework curator = Curators.start(server.connectString())) {
            // Emptied by a delete.
            zk.create("/emptied", null, OPEN, CreateMode.CONTAINER);
            zk.create("/emptied/child", null, OPEN, CreateMode.PERSISTENT);
            // Emptied by its only child's session closing (a lock directory).
            zk.create("/locks", null, OPEN, CreateMode.CONTAINER);
            ZooKeeper holder = Zk.connect(server.connectString());
            holder.create("/locks/lock-", null, OPEN, CreateMode.EPHEMERAL_SEQUENTIAL);
            // Curator's parent containers.
            curator.create().creatingParentContainersIfNeeded().forPath("/app/dir/leaf");
            Stat dirStat = new Stat();
            curator.getData().storingStatIn(dirStat).forPath("/app/dir");
            assertEquals(0, dirStat.getEphemeralOwner());
            // Must stay: never had a child; still has a child.
            zk.create("/fresh", null, OPEN, CreateMode.CONTAINER);
            zk.create("/busy", null, OPEN, CreateMode.CONTAINER);
            zk.create("/busy/a", null, OPEN, CreateMode.PERSISTENT);
            zk.create("/busy/b", null, OPEN, CreateMode.PERSISTENT);
            zk.create("/plain", null, OPEN, CreateMode.PERSISTENT);
            zk.create("/plain/x", null, OPEN, CreateMode.PERSISTENT);

            zk.exists("/emptied", true);
            zk.delete("/emptied/child", -1);
            holder.close();
            curator.delete().forPath("/app/dir/leaf");
            zk.delete("/busy/a", -1);
            zk.delete("/plain/x", -1);

            long start = System.nanoTime();
            WatchedEvent reaped = events.next(SWEEP_BOUND_MS);
            if (reaped == null) {
                fail("the empty container /emptied (it had a child) was not deleted within " + SWEEP_BOUND_MS
                        + " ms; still there: " + (zk.exists("/emptied", false) != null));
            }
            assertEquals("NodeDeleted /emptied", reaped.getType() + " " + reaped.getPath());
            // The same sweep (or the next few seconds) takes the other emptied ones.
            Zk.await("/locks and /app/dir to be deleted as well", 15_000, () -> {
                try {
                    return zk.exists("/locks", false) == null && zk.exists("/app/dir", false) == null;
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            long sweptAfterMs = (System.nanoTime() - start) / 1_000_000;
            assertNotNull(zk.exists("/fresh", false), "a container that never had children stays");
            assertNotNull(zk.exists("/busy", false), "a container with a child stays");
            assertNotNull(zk.exists("/plain", false), "an empty persistent node stays");
            assertNull(zk.exists("/emptied/child", false));
            System.err.println("containers swept after " + sweptAfterMs + " ms");
        } finally {
            zk.close();
        }
    }
}
