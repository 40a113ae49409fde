package dev.ensemble.compat;

import static org.apache.zookeeper.Watcher.Event.EventType.NodeDeleted;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.KeeperException.Code;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher.Event.KeeperState;
import org.apache.zookeeper.ZooDefs.Ids;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Sessions: close and expiry remove ephemerals, timeouts are negotiated within the server's
 * bounds (ensemble local: tickTime 2000 ms, so 4000..40000 ms), sessions resume by id and
 * password, a wrong password is an expired session. A session that reads what another wrote
 * syncs first ({@link Zk#sync}).
 */
class ZooKeeperSessionTest {

    @RegisterExtension
    final CompatServer server = new CompatServer();

    private static final List<ACL> OPEN = Ids.OPEN_ACL_UNSAFE;
    private static final int MIN_TIMEOUT_MS = 4_000;
    private static final int MAX_TIMEOUT_MS = 40_000;
    private static final int TICK_MS = 2_000;

    private final Zk.Events watcherEvents = new Zk.Events("watching session");
    private ZooKeeper watcher;

    @BeforeEach
    void connect() throws Exception {
        watcher = Zk.connect(server.connectString(), watcherEvents);
    }

    @AfterEach
    void close() throws Exception {
        if (watcher != null) {
            watcher.close();
        }
    }

    @Test
    void closingASessionRemovesItsEphemeralsAndNotifies() throws Exception {
        watcher.create("/p", null, OPEN, CreateMode.PERSISTENT);
        ZooKeeper owner = Zk.connect(server.connectString());
        owner.create("/eph", null, OPEN, CreateMode.EPHEMERAL);
        owner.create("/p/e1", null, OPEN, CreateMode.EPHEMERAL);
        String seq = owner.create("/p/s-", null, OPEN, CreateMode.EPHEMERAL_SEQUENTIAL);
        owner.create("/p/kept", null, OPEN, CreateMode.PERSISTENT);
        Zk.sync(watcher);
        assertNotNull(watcher.exists("/eph", true));
        watcher.getData(seq, true, null);
        watcher.getChildren("/p", true);

        owner.close();
        Set<String> seen = new TreeSet<>();
        for (int i = 0; i < 3; i++) {
            WatchedEvent e = watcherEvents.next(Zk.EVENT_TIMEOUT_MS);
            assertNotNull(e, "events after the owner closed, so far " + seen);
            seen.add(e.getType() + " " + e.getPath());
        }
        assertEquals(new TreeSet<>(Set.of("NodeDeleted /eph", "NodeDeleted " + seq, "NodeChildrenChanged /p")), seen);
        watcherEvents.expectNone(300);
        assertNull(watcher.exists("/eph", false));
        assertEquals(List.of("kept"), watcher.getChildren("/p", false));
    }

    @Test
    void negotiatedTimeoutIsClampedToTheServersBounds() throws Exception {
        for (int[] c : new int[][] {{1_000, MIN_TIMEOUT_MS}, {4_000, 4_000}, {12_345, 12_345}, {100_000, MAX_TIMEOUT_MS}}) {
            ZooKeeper zk = Zk.connect(server.connectString(), c[0], null);
            try {
                assertEquals(c[1], zk.getSessionTimeout(), "session timeout negotiated for a request of " + c[0] + " ms");
            } finally {
                zk.close();
            }
        }
    }

    @Test
    void idleSessionIsKeptAliveByPings() throws Exception {
        Zk.Events events = new Zk.Events("idle session");
        ZooKeeper idle = Zk.connect(server.connectString(), MIN_TIMEOUT_MS, events);
        try {
            idle.create("/idle", null, OPEN, CreateMode.EPHEMERAL);
            // The client only pings (every third of the timeout) for 1.5 timeouts.
            Thread.sleep(MIN_TIMEOUT_MS * 3L / 2);
            assertEquals(ZooKeeper.States.CONNECTED, idle.getState());
            Zk.sync(watcher);
            assertNotNull(watcher.exists("/idle", false), "an idle but pinging session keeps its ephemerals");
            idle.setData("/idle", new byte[1], 0);
            assertEquals(List.of(KeeperState.SyncConnected), events.drainStates(), "connection states of the idle session");
        } finally {
            idle.close();
        }
    }

    @Test
    void expiredSessionLosesItsEphemeralsAndLearnsItOnReconnect() throws Exception {
        Zk.Events ownerEvents = new Zk.Events("expiring session");
        try (TcpProxy proxy = new TcpProxy(server.connectString())) {
            ZooKeeper owner = Zk.connect(proxy.connectString(), MIN_TIMEOUT_MS, ownerEvents);
            try {
                assertEquals(MIN_TIMEOUT_MS, owner.getSessionTimeout());
                owner.create("/exp", null, OPEN, CreateMode.EPHEMERAL);
                Zk.sync(watcher);
                assertNotNull(watcher.exists("/exp", true));

                long cutAt = System.nanoTime();
                proxy.cut();
                ownerEvents.expectState(KeeperState.Disconnected, 5_000);
                // A disconnection is not an expiry: the server keeps the session for its timeout.
                Thread.sleep(TICK_MS / 2);
                assertNotNull(watcher.exists("/exp", false), "the ephemeral outlives the connection for a while");

                // ZooKeeper expires a silent session between its timeout and one tick later.
                long bound = MIN_TIMEOUT_MS + 2L * TICK_MS + 3_000;
                WatchedEvent gone = watcherEvents.next(bound);
                long elapsedMs = (System.nanoTime() - cutAt) / 1_000_000;
                assertNotNull(gone, "the ephemeral of a silent session must go within " + bound + " ms");
                assertEquals(NodeDeleted + " /exp", gone.getType() + " " + gone.getPath());
                assertTrue(elapsedMs >= MIN_TIMEOUT_MS - TICK_MS,
                        "expired after " + elapsedMs + " ms, before the session timeout of " + MIN_TIMEOUT_MS + " ms");
                assertNull(watcher.exists("/exp", false));

                proxy.restore();
                ownerEvents.expectState(KeeperState.Expired, 15_000);
                Zk.assertCode(Code.SESSIONEXPIRED, () -> owner.exists("/", false));
            } finally {
                owner.close();
            }
        }
    }

    @Test
    void sessionResumesOnAnotherConnectionWithIdAndPassword() throws Exception {
        try (TcpProxy proxy = new TcpProxy(server.connectString())) {
            ZooKeeper first = Zk.connect(proxy.connectString(), 20_000, null);
            long id = first.getSessionId();
            byte[] password = first.getSessionPasswd();
            first.create("/mine", null, OPEN, CreateMode.EPHEMERAL);
            proxy.cut(); // the first handle can no longer reach the server

            Zk.Events events = new Zk.Events("resumed");
            ZooKeeper resumed = new ZooKeeper(server.connectString(), 20_000, events, id, password);
            try {
                events.expectState(KeeperState.SyncConnected, Zk.CONNECT_TIMEOUT_MS);
                assertEquals(id, resumed.getSessionId());
                Zk.sync(resumed); // a new handle: it has seen no zxid of the session
                assertEquals(id, Zk.stat(resumed, "/mine").getEphemeralOwner());
                resumed.create("/mine2", null, OPEN, CreateMode.EPHEMERAL);
                assertEquals(new TreeSet<>(Set.of("/mine", "/mine2")), new TreeSet<>(resumed.getEphemerals()));
            } finally {
                resumed.close();
                first.close();
            }
            Zk.sync(watcher);
            assertNull(watcher.exists("/mine", false), "closing the resumed session removes its ephemerals");
            assertNull(watcher.exists("/mine2", false));
        }
    }

    @Test
    void wrongPasswordMeansExpired() throws Exception {
        ZooKeeper owner = Zk.connect(server.connectString());
        try {
            owner.create("/kept", null, OPEN, CreateMode.EPHEMERAL);
            byte[] wrong = owner.getSessionPasswd().clone();
            wrong[0] ^= 0x5a;
            Zk.Events events = new Zk.Events("wrong password");
            ZooKeeper impostor = new ZooKeeper(server.connectString(), 10_000, events, owner.getSessionId(), wrong);
            try {
                events.expectState(KeeperState.Expired, Zk.CONNECT_TIMEOUT_MS);
            } finally {
                impostor.close();
            }
            Zk.sync(watcher);
            assertNotNull(watcher.exists("/kept", false), "a failed resume leaves the real session alone");
            assertEquals(owner.getSessionId(), Zk.stat(watcher, "/kept").getEphemeralOwner());
            // ZooKeeper drops the real owner's connection when the impostor shows up (before it
            // checks the password); the owner reconnects to its session.
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
            while (true) {
                try {
                    owner.exists("/", false);
                    break;
                } catch (KeeperException.ConnectionLossException e) {
                    if (System.nanoTime() > deadline) {
                        throw e;
                    }
                    Thread.sleep(100);
                }
            }
            owner.create("/still-mine", null, OPEN, CreateMode.EPHEMERAL);
        } finally {
            owner.close();
        }
    }

    @Test
    void readOnlyCapableClientGetsAReadWriteSession() throws Exception {
        // canBeReadOnly=true adds the handshake's readOnly byte; a server with a quorum answers
        // with a normal read-write session.
        Zk.Events events = new Zk.Events("canBeReadOnly");
        ZooKeeper zk = new ZooKeeper(server.connectString(), 10_000, events, true);
        try {
            events.expectState(KeeperState.SyncConnected, Zk.CONNECT_TIMEOUT_MS);
            assertEquals(ZooKeeper.States.CONNECTED, zk.getState());
            zk.create("/rw", null, OPEN, CreateMode.EPHEMERAL);
        } finally {
            zk.close();
        }
    }

    @Test
    void unknownSessionIdMeansExpired() throws Exception {
        Zk.Events events = new Zk.Events("unknown session");
        ZooKeeper ghost = new ZooKeeper(server.connectString(), 10_000, events, 0x1234_5678_9abcL, new byte[16]);
        try {
            events.expectState(KeeperState.Expired, Zk.CONNECT_TIMEOUT_MS);
        } finally {
            ghost.close();
        }
    }
}
