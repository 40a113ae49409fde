package dev.ensemble.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.KeeperException.Code;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.Watcher.Event.EventType;
import org.apache.zookeeper.Watcher.Event.KeeperState;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.Stat;

/**
 * Small helpers around the plain ZooKeeper client.
 *
 * <p>With several members (COMPAT_MEMBERS) a session reads from the member it is connected to,
 * which may not have applied what another session just wrote: ZooKeeper promises each session its
 * own order, not read-after-write across sessions. So a test that reads (or sets a watch on) what
 * another session wrote first calls {@link #sync}, as a correct ZooKeeper application must.
 */
final class Zk {

    static final int SESSION_TIMEOUT_MS = 10_000;
    static final long CONNECT_TIMEOUT_MS = 15_000;
    /** How long a test waits for a watch event that must come. */
    static final long EVENT_TIMEOUT_MS = 5_000;

    private Zk() {
    }

    /**
     * ZooKeeper's sync, waited for: afterwards {@code zk}'s member has applied every write
     * acknowledged (to any session) before the call, and {@code zk} has received the watch events
     * those writes fire.
     */
    static void sync(ZooKeeper zk) throws InterruptedException {
        CompletableFuture<Integer> done = new CompletableFuture<>();
        zk.sync("/", (rc, path, ctx) -> done.complete(rc), null);
        try {
            assertEquals(Code.OK, Code.get(done.get(CONNECT_TIMEOUT_MS, TimeUnit.MILLISECONDS)), "sync");
        } catch (ExecutionException | java.util.concurrent.TimeoutException e) {
            fail("no answer to sync within " + CONNECT_TIMEOUT_MS + " ms", e);
        }
    }

    /**
     * Syncs one member through a client connected to it alone, for a session that cannot sync
     * itself first (one that reconnects to that member and re-registers its watches).
     */
    static void syncMember(String hostPort) throws IOException, InterruptedException {
        ZooKeeper zk = connect(hostPort);
        try {
            sync(zk);
        } finally {
            zk.close();
        }
    }

    /** The first {@code host:port} of a connection string. */
    static String firstMember(String connectString) {
        return connectString.split(",", 2)[0];
    }

    static ZooKeeper connect(String connectString) throws IOException, InterruptedException {
        return connect(connectString, SESSION_TIMEOUT_MS, null);
    }

    static ZooKeeper connect(String connectString, Watcher watcher) throws IOException, InterruptedException {
        return connect(connectString, SESSION_TIMEOUT_MS, watcher);
    }

    /** A connected client; {@code watcher} (may be null) is its default watcher. */
    static ZooKeeper connect(String connectString, int sessionTimeoutMs, Watcher watcher)
            throws IOException, InterruptedException {
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(connectString, sessionTimeoutMs, event -> {
            if (event.getType() == EventType.None && event.getState() == KeeperState.SyncConnected) {
                connected.countDown();
            }
            if (watcher != null) {
                watcher.process(event);
            }
        });
        if (!connected.await(CONNECT_TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
            zk.close();
            fail("no session with " + connectString + " within " + CONNECT_TIMEOUT_MS + " ms");
        }
        return zk;
    }

    /** The code of the KeeperException that {@code op} throws; fails if it throws none. */
    static KeeperException.Code codeOf(ZkCall op) throws InterruptedException {
        try {
            op.run();
        } catch (KeeperException e) {
            return e.code();
        }
        fail("expected a KeeperException");
        return null;
    }

    static void assertCode(KeeperException.Code expected, ZkCall op) throws InterruptedException {
        try {
            op.run();
        } catch (KeeperException e) {
            assertEquals(expected, e.code(), "KeeperException code (" + e.getMessage() + ")");
            return;
        }
        fail("expected KeeperException " + expected + ", the call succeeded");
    }

    static void await(String what, long timeoutMs, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                fail("timed out after " + timeoutMs + " ms waiting for: " + what);
            }
            Thread.sleep(20);
        }
    }

    static Stat stat(ZooKeeper zk, String path) throws KeeperException, InterruptedException {
        Stat stat = zk.exists(path, false);
        assertNotNull(stat, path + " should exist");
        return stat;
    }

    @FunctionalInterface
    interface ZkCall {
        void run() throws KeeperException, InterruptedException;
    }

    /**
     * A watcher that records node events (and, apart, connection states) for assertions in
     * arrival order.
     */
    static final class Events implements Watcher {
        private final LinkedBlockingQueue<WatchedEvent> events = new LinkedBlockingQueue<>();
        private final LinkedBlockingQueue<KeeperState> states = new LinkedBlockingQueue<>();
        private final String name;

        Events(String name) {
            this.name = name;
        }

        @Override
        public void process(WatchedEvent event) {
            if (event.getType() == EventType.None) {
                states.add(event.getState());
            } else {
                events.add(event);
            }
        }

        WatchedEvent next(long timeoutMs) throws InterruptedException {
            return events.poll(timeoutMs, TimeUnit.MILLISECONDS);
        }

        /** The next event is {@code type} on {@code path}. */
        void expect(EventType type, String path) throws InterruptedException {
            WatchedEvent event = next(EVENT_TIMEOUT_MS);
            assertNotNull(event, name + ": no event within " + EVENT_TIMEOUT_MS + " ms, expected " + type + " " + path);
            assertEquals(type + " " + path, event.getType() + " " + event.getPath(), name + ": watch event");
        }

        /** No event arrives within {@code ms}. */
        void expectNone(long ms) throws InterruptedException {
            WatchedEvent event = next(ms);
            if (event != null) {
                fail(name + ": unexpected watch event " + event.getType() + " " + event.getPath()
                        + " (then: " + drain() + ")");
            }
        }

        List<String> drain() {
            List<WatchedEvent> rest = new ArrayList<>();
            events.drainTo(rest);
            List<String> out = new ArrayList<>();
            for (WatchedEvent e : rest) {
                out.add(e.getType() + " " + e.getPath());
            }
            return out;
        }

        /** Connection states seen so far (and not yet consumed by expectState). */
        List<KeeperState> drainStates() {
            List<KeeperState> out = new ArrayList<>();
            states.drainTo(out);
            return out;
        }

        void expectState(KeeperState state, long timeoutMs) throws InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
            List<KeeperState> seen = new ArrayList<>();
            while (true) {
                long left = deadline - System.nanoTime();
                KeeperState s = left > 0 ? states.poll(left, TimeUnit.NANOSECONDS) : null;
                if (s == null) {
                    fail(name + ": no " + state + " connection event within " + timeoutMs + " ms (saw " + seen + ")");
                }
                if (s == state) {
                    return;
                }
                seen.add(s);
            }
        }
    }
}
