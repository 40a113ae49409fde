package dev.ensemble.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.ZooDefs.Ids;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.Stat;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Several sessions at once: optimistic concurrency with versions loses no update, concurrent
 * sequential creates get distinct consecutive numbers, and one session's pipelined requests are
 * answered in order (ZooKeeper's FIFO client order).
 */
class ZooKeeperConcurrencyTest {

    @RegisterExtension
    final CompatServer server = new CompatServer();

    private final List<ZooKeeper> sessions = new ArrayList<>();
    private ExecutorService executor;

    @BeforeEach
    void connect() throws Exception {
        for (int i = 0; i < 4; i++) {
            sessions.add(Zk.connect(server.connectString()));
        }
        executor = Executors.newFixedThreadPool(4);
    }

    @AfterEach
    void close() throws Exception {
        if (executor != null) {
            executor.shutdownNow();
        }
        for (ZooKeeper zk : sessions) {
            zk.close();
        }
    }

    @Test
    void compareAndSetWithVersionsLosesNoUpdate() throws Exception {
        ZooKeeper first = sessions.get(0);
        first.create("/counter", ByteBuffer.allocate(8).putLong(0).array(), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        for (ZooKeeper zk : sessions) {
            Zk.sync(zk); // each reads the counter first session created: see Zk
        }
        int perSession = 25;
        List<Future<Integer>> workers = new ArrayList<>();
        for (ZooKeeper zk : sessions) {
            workers.add(executor.submit(() -> {
                int conflicts = 0;
                for (int done = 0; done < perSession; ) {
                    Stat stat = new Stat();
                    long value = ByteBuffer.wrap(zk.getData("/counter", false, stat)).getLong();
                    try {
                        zk.setData("/counter", ByteBuffer.allocate(8).putLong(value + 1).array(), stat.getVersion());
                        done++;
                    } catch (KeeperException.BadVersionException e) {
                        conflicts++;
                    }
                }
                return conflicts;
            }));
        }
        for (Future<Integer> w : workers) {
            w.get(60, TimeUnit.SECONDS);
        }
        Stat stat = new Stat();
        Zk.sync(first);
        long value = ByteBuffer.wrap(first.getData("/counter", false, stat)).getLong();
        assertEquals(sessions.size() * perSession, value, "every successful conditional setData counted once");
        assertEquals(sessions.size() * perSession, stat.getVersion(), "one version per successful setData");
    }

    @Test
    void concurrentSequentialCreatesGetDistinctConsecutiveNumbers() throws Exception {
        sessions.get(0).create("/q", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        int perSession = 50;
        ConcurrentLinkedQueue<String> created = new ConcurrentLinkedQueue<>();
        List<Future<?>> workers = new ArrayList<>();
        for (int i = 0; i < sessions.size(); i++) {
            ZooKeeper zk = sessions.get(i);
            CreateMode mode = i % 2 == 0 ? CreateMode.PERSISTENT_SEQUENTIAL : CreateMode.EPHEMERAL_SEQUENTIAL;
            workers.add(executor.submit(() -> {
                for (int n = 0; n < perSession; n++) {
                    created.add(zk.create("/q/item-", null, Ids.OPEN_ACL_UNSAFE, mode));
                }
                return null;
            }));
        }
        for (Future<?> w : workers) {
            w.get(60, TimeUnit.SECONDS);
        }
        int total = sessions.size() * perSession;
        Set<String> expected = new TreeSet<>();
        for (int n = 0; n < total; n++) {
            expected.add(String.format("/q/item-%010d", n));
        }
        assertEquals(expected, new TreeSet<>(created));
        assertEquals(total, created.size());
        Zk.sync(sessions.get(0));
        assertEquals(total, sessions.get(0).getChildren("/q", false).size());
    }

    @Test
    void pipelinedRequestsOfOneSessionAreAnsweredInOrder() throws Exception {
        ZooKeeper zk = sessions.get(0);
        zk.create("/fifo", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        int n = 500;
        List<String> answers = Collections.synchronizedList(new ArrayList<>());
        CountDownLatch done = new CountDownLatch(n);
        for (int i = 0; i < n; i++) {
            if (i % 5 == 4) {
                zk.getData("/fifo", false, (rc, path, ctx, data, stat) -> {
                    answers.add("get " + rc + " v" + (stat == null ? "?" : stat.getVersion()));
                    done.countDown();
                }, null);
            } else {
                zk.setData("/fifo", new byte[] {(byte) i}, i - i / 5, (rc, path, ctx, stat) -> {
                    answers.add("set " + rc + " v" + (stat == null ? "?" : stat.getVersion()));
                    done.countDown();
                }, null);
            }
        }
        assertTrue(done.await(30, TimeUnit.SECONDS), "all pipelined requests answered");
        // Sets carry the exact expected version, so they only succeed if applied in order; gets
        // see every set sent before them and none after.
        int version = 0;
        for (int i = 0; i < n; i++) {
            String answer = answers.get(i);
            if (i % 5 == 4) {
                assertEquals("get 0 v" + version, answer, "answer " + i);
            } else {
                version++;
                assertEquals("set 0 v" + version, answer, "answer " + i);
            }
        }
    }
}
