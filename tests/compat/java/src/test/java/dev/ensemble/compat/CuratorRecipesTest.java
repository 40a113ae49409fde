package dev.ensemble.compat;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.api.transaction.CuratorTransactionResult;
import org.apache.curator.framework.api.transaction.OperationType;
import org.apache.curator.framework.recipes.barriers.DistributedBarrier;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderSelector;
import org.apache.curator.framework.recipes.leader.LeaderSelectorListenerAdapter;
import org.apache.curator.framework.recipes.shared.SharedCount;
import org.apache.curator.framework.recipes.shared.VersionedValue;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.data.Stat;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Curator 5 recipes, each with two or more clients (separate sessions). The recipes work whichever
 * member each client is on; a test that checks through one client what others did syncs it first
 * ({@link #sync}; see {@link Zk}).
 */
class CuratorRecipesTest {

    @RegisterExtension
    final CompatServer server = new CompatServer();

    private final List<CuratorFramework> clients = new ArrayList<>();
    private ExecutorService executor;

    @BeforeEach
    void setUp() {
        executor = Executors.newCachedThreadPool();
    }

    @AfterEach
    void tearDown() {
        executor.shutdownNow();
        for (CuratorFramework client : clients) {
            client.close();
        }
    }

    /** ZooKeeper's sync on the client's session, waited for (Curator's own sync() is asynchronous). */
    private static void sync(CuratorFramework client) throws Exception {
        Zk.sync(client.getZookeeperClient().getZooKeeper());
    }

    private CuratorFramework client() throws InterruptedException {
        CuratorFramework client = Curators.start(server.connectString());
        clients.add(client);
        return client;
    }

    @Test
    void interProcessMutexGivesMutualExclusion() throws Exception {
        CuratorFramework c1 = client();
        CuratorFramework c2 = client();
        InterProcessMutex m1 = new InterProcessMutex(c1, "/locks/m");
        InterProcessMutex m2 = new InterProcessMutex(c2, "/locks/m");

        m1.acquire();
        assertTrue(m1.isAcquiredInThisProcess());
        assertFalse(m2.acquire(300, TimeUnit.MILLISECONDS), "a second client must not get a held lock");

        // The waiting client gets the lock when the holder releases it, not before.
        Future<Boolean> waiter = executor.submit(() -> {
            if (!m2.acquire(15, TimeUnit.SECONDS)) {
                return false;
            }
            m2.release();
            return true;
        });
        Thread.sleep(300);
        assertFalse(waiter.isDone(), "the waiter must block while the lock is held");
        m1.release();
        assertTrue(waiter.get(20, TimeUnit.SECONDS), "the waiter gets the lock after release");

        // Contention: 2 clients x 2 threads; a non-atomic read-modify-write inside the lock.
        AtomicInteger holders = new AtomicInteger();
        AtomicInteger maxHolders = new AtomicInteger();
        int[] counter = {0};
        int rounds = 8;
        List<Future<?>> workers = new ArrayList<>();
        for (CuratorFramework c : List.of(c1, c2)) {
            for (int t = 0; t < 2; t++) {
                InterProcessMutex mutex = new InterProcessMutex(c, "/locks/counter");
                workers.add(executor.submit(() -> {
                    for (int i = 0; i < rounds; i++) {
                        if (!mutex.acquire(20, TimeUnit.SECONDS)) {
                            throw new AssertionError("could not acquire the lock within 20 s");
                        }
                        try {
                            maxHolders.accumulateAndGet(holders.incrementAndGet(), Math::max);
                            int seen = counter[0];
                            Thread.sleep(3);
                            counter[0] = seen + 1;
                            holders.decrementAndGet();
                        } finally {
                            mutex.release();
                        }
                    }
                    return null;
                }));
            }
        }
        for (Future<?> w : workers) {
            w.get(60, TimeUnit.SECONDS);
        }
        assertEquals(1, maxHolders.get(), "at most one holder at a time");
        assertEquals(4 * rounds, counter[0], "no lost update");
        sync(c1);
        assertEquals(List.of(), c1.getChildren().forPath("/locks/counter"), "no lock nodes left");
    }

    @Test
    void leaderLatchElectsExactlyOneAndMovesLeadership() throws Exception {
        List<LeaderLatch> latches = new ArrayList<>();
        for (String id : List.of("a", "b", "c")) {
            LeaderLatch latch = new LeaderLatch(client(), "/leader", id);
            latch.start();
            latches.add(latch);
        }
        try {
            LeaderLatch first = awaitSingleLeader(latches);
            for (CuratorFramework c : clients) {
                sync(c);
            }
            for (LeaderLatch l : latches) {
                assertEquals(first.getId(), l.getLeader().getId(), l.getId() + "'s view of the leader");
            }
            first.close();
            List<LeaderLatch> rest = latches.stream().filter(l -> l != first).collect(Collectors.toList());
            LeaderLatch second = awaitSingleLeader(rest);
            assertTrue(second != first);
            for (CuratorFramework c : clients) {
                sync(c);
            }
            for (LeaderLatch l : rest) {
                assertEquals(second.getId(), l.getLeader().getId(), l.getId() + "'s view of the leader");
            }
            assertEquals(2, second.getParticipants().size());
        } finally {
            for (LeaderLatch l : latches) {
                if (l.getState() == LeaderLatch.State.STARTED) {
                    l.close();
                }
            }
        }
    }

    /** Waits until exactly one latch leads, checks it stays so for a moment, returns it. */
    private static LeaderLatch awaitSingleLeader(List<LeaderLatch> latches) throws InterruptedException {
        Zk.await("exactly one leader among " + latches.size(), 20_000,
                () -> latches.stream().filter(LeaderLatch::hasLeadership).count() == 1);
        LeaderLatch leader = latches.stream().filter(LeaderLatch::hasLeadership).findFirst().orElseThrow();
        for (int i = 0; i < 5; i++) {
            Thread.sleep(100);
            long leaders = latches.stream().filter(LeaderLatch::hasLeadership).count();
            assertEquals(1, leaders, "leaders at once");
            assertTrue(leader.hasLeadership(), "leadership must not move without a reason");
        }
        return leader;
    }

    @Test
    void leaderSelectorGivesLeadershipToOneAtATime() throws Exception {
        AtomicInteger leaders = new AtomicInteger();
        AtomicInteger maxLeaders = new AtomicInteger();
        LinkedBlockingQueue<String> turns = new LinkedBlockingQueue<>();
        List<LeaderSelector> selectors = new ArrayList<>();
        for (String id : List.of("a", "b", "c")) {
            LeaderSelector selector = new LeaderSelector(client(), "/selector", new LeaderSelectorListenerAdapter() {
                @Override
                public void takeLeadership(CuratorFramework c) throws Exception {
                    maxLeaders.accumulateAndGet(leaders.incrementAndGet(), Math::max);
                    Thread.sleep(150);
                    leaders.decrementAndGet();
                    turns.add(id);
                }
            });
            selector.setId(id);
            selectors.add(selector);
        }
        try {
            selectors.forEach(LeaderSelector::start);
            Set<String> led = new TreeSet<>();
            for (int i = 0; i < 3; i++) {
                String id = turns.poll(20, TimeUnit.SECONDS);
                assertNotNull(id, "a leadership turn within 20 s, so far " + led);
                led.add(id);
            }
            assertEquals(Set.of("a", "b", "c"), led, "each selector leads once");
            assertEquals(1, maxLeaders.get(), "one leader at a time");
        } finally {
            selectors.forEach(LeaderSelector::close);
        }
    }

    @Test
    void sharedCountAgreesAcrossClients() throws Exception {
        try (SharedCount one = new SharedCount(client(), "/count", 10);
                SharedCount two = new SharedCount(client(), "/count", 99)) {
            one.start();
            two.start();
            assertEquals(10, two.getCount(), "the first seed wins");
            VersionedValue<Integer> seen = one.getVersionedValue();
            assertTrue(one.trySetCount(seen, 11));
            assertFalse(one.trySetCount(seen, 12), "a stale version is refused");
            Zk.await("the second client to see 11", 10_000, () -> two.getCount() == 11);
            two.setCount(20);
            Zk.await("the first client to see 20", 10_000, () -> one.getCount() == 20);
        }
    }

    @Test
    void distributedBarrierBlocksUntilRemoved() throws Exception {
        DistributedBarrier owner = new DistributedBarrier(client(), "/barrier");
        CuratorFramework otherClient = client();
        DistributedBarrier other = new DistributedBarrier(otherClient, "/barrier");
        assertTrue(other.waitOnBarrier(1, TimeUnit.SECONDS), "no barrier set: no wait");
        owner.setBarrier();
        sync(otherClient); // else its member may not know the barrier yet, and it passes
        assertFalse(other.waitOnBarrier(300, TimeUnit.MILLISECONDS), "a set barrier blocks");
        Future<Boolean> waiting = executor.submit(() -> other.waitOnBarrier(20, TimeUnit.SECONDS));
        Thread.sleep(300);
        assertFalse(waiting.isDone(), "still blocked while the barrier is set");
        owner.removeBarrier();
        assertTrue(waiting.get(20, TimeUnit.SECONDS), "released when the barrier is removed");
    }

    @Test
    void curatorCacheSeesCreatesUpdatesAndDeletes() throws Exception {
        CuratorFramework reader = client();
        CuratorFramework writer = client();
        writer.create().forPath("/cache", "root".getBytes(UTF_8));
        writer.create().forPath("/cache/pre", "p".getBytes(UTF_8));
        sync(reader); // the initial load reads what the reader's member has
        LinkedBlockingQueue<String> events = new LinkedBlockingQueue<>();
        CuratorCacheListener listener = CuratorCacheListener.builder()
                .forCreates(n -> events.add("create " + n.getPath() + " " + text(n)))
                .forChanges((before, after) -> events.add("change " + after.getPath() + " " + text(before) + "->" + text(after)))
                .forDeletes(n -> events.add("delete " + n.getPath()))
                .forInitialized(() -> events.add("initialized"))
                .build();
        try (CuratorCache cache = CuratorCache.build(reader, "/cache")) {
            cache.listenable().addListener(listener);
            cache.start();
            Set<String> initial = new TreeSet<>();
            initial.add(next(events));
            initial.add(next(events));
            assertEquals(new TreeSet<>(Set.of("create /cache root", "create /cache/pre p")), initial);
            assertEquals("initialized", next(events));

            writer.create().forPath("/cache/a", "x".getBytes(UTF_8));
            assertEquals("create /cache/a x", next(events));
            writer.setData().forPath("/cache/a", "y".getBytes(UTF_8));
            assertEquals("change /cache/a x->y", next(events));
            writer.create().forPath("/cache/a/b", "deep".getBytes(UTF_8));
            assertEquals("create /cache/a/b deep", next(events));
            writer.delete().forPath("/cache/a/b");
            assertEquals("delete /cache/a/b", next(events));
            writer.setData().forPath("/cache", "root2".getBytes(UTF_8));
            assertEquals("change /cache root->root2", next(events));
            writer.delete().forPath("/cache/pre");
            assertEquals("delete /cache/pre", next(events));
            writer.create().forPath("/cacheless", "sibling".getBytes(UTF_8));
            assertNull(events.poll(300, TimeUnit.MILLISECONDS), "a sibling sharing the prefix is outside the cache");

            assertArrayEquals("y".getBytes(UTF_8), cache.get("/cache/a").map(ChildData::getData).orElseThrow());
            assertEquals(new TreeSet<>(Set.of("/cache", "/cache/a")),
                    cache.stream().map(ChildData::getPath).collect(Collectors.toCollection(TreeSet::new)));
        }
    }

    private static String text(ChildData node) {
        return node.getData() == null ? "null" : new String(node.getData(), UTF_8);
    }

    private static String next(LinkedBlockingQueue<String> events) throws InterruptedException {
        String event = events.poll(Zk.EVENT_TIMEOUT_MS, TimeUnit.MILLISECONDS);
        if (event == null) {
            fail("no cache event within " + Zk.EVENT_TIMEOUT_MS + " ms");
        }
        return event;
    }

    @Test
    void transactionsCommitAtomically() throws Exception {
        CuratorFramework c = client();
        c.create().forPath("/tx", "0".getBytes(UTF_8));
        List<CuratorTransactionResult> results = c.transaction().forOperations(
                c.transactionOp().create().forPath("/tx/a", "a".getBytes(UTF_8)),
                c.transactionOp().setData().withVersion(0).forPath("/tx", "1".getBytes(UTF_8)),
                c.transactionOp().check().withVersion(1).forPath("/tx"),
                c.transactionOp().create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath("/tx/s-"),
                c.transactionOp().delete().forPath("/tx/a"));
        assertEquals(List.of(OperationType.CREATE, OperationType.SET_DATA, OperationType.CHECK,
                OperationType.CREATE, OperationType.DELETE),
                results.stream().map(CuratorTransactionResult::getType).collect(Collectors.toList()));
        assertEquals("/tx/a", results.get(0).getResultPath());
        assertEquals("/tx/s-0000000001", results.get(3).getResultPath());
        assertEquals(1, results.get(1).getResultStat().getVersion());
        assertEquals(List.of("s-0000000001"), c.getChildren().forPath("/tx"));

        try {
            c.transaction().forOperations(
                    c.transactionOp().create().forPath("/tx/b"),
                    c.transactionOp().setData().withVersion(0).forPath("/tx", new byte[0]));
            fail("a stale version must fail the transaction");
        } catch (KeeperException.BadVersionException expected) {
            // the whole transaction is rejected
        }
        assertNull(c.checkExists().forPath("/tx/b"), "nothing of a failed transaction is applied");
        assertArrayEquals("1".getBytes(UTF_8), c.getData().forPath("/tx"));
    }

    @Test
    void creatingParentContainersIfNeededCreatesContainerParents() throws Exception {
        CuratorFramework c = client();
        String created = c.create().creatingParentContainersIfNeeded().withMode(CreateMode.EPHEMERAL)
                .forPath("/x/y/z", "leaf".getBytes(UTF_8));
        assertEquals("/x/y/z", created);
        long session = c.getZookeeperClient().getZooKeeper().getSessionId();
        for (String parent : List.of("/x", "/x/y")) {
            Stat stat = new Stat();
            c.getData().storingStatIn(stat).forPath(parent);
            assertEquals(0, stat.getEphemeralOwner(), parent + " is not ephemeral");
            assertEquals(1, stat.getNumChildren(), parent + " numChildren");
        }
        Stat leaf = new Stat();
        assertArrayEquals("leaf".getBytes(UTF_8), c.getData().storingStatIn(leaf).forPath("/x/y/z"));
        assertEquals(session, leaf.getEphemeralOwner());

        // Parents already there are fine; a second branch reuses /x.
        c.create().creatingParentContainersIfNeeded().forPath("/x/w/v");
        assertEquals(new TreeSet<>(Set.of("y", "w")), new TreeSet<>(c.getChildren().forPath("/x")));
        assertNotNull(c.checkExists().forPath("/x/w"));
        // The same with plain persistent parents.
        c.create().creatingParentsIfNeeded().forPath("/p/q/r");
        assertEquals(0, c.checkExists().forPath("/p/q").getEphemeralOwner());
    }
}
