package dev.ensemble.compat;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.apache.zookeeper.Watcher.Event.EventType.ChildWatchRemoved;
import static org.apache.zookeeper.Watcher.Event.EventType.DataWatchRemoved;
import static org.apache.zookeeper.Watcher.Event.EventType.NodeChildrenChanged;
import static org.apache.zookeeper.Watcher.Event.EventType.NodeCreated;
import static org.apache.zookeeper.Watcher.Event.EventType.NodeDataChanged;
import static org.apache.zookeeper.Watcher.Event.EventType.NodeDeleted;
import static org.apache.zookeeper.Watcher.Event.EventType.PersistentWatchRemoved;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException.Code;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher.Event.KeeperState;
import org.apache.zookeeper.Watcher.WatcherType;
import org.apache.zookeeper.ZooDefs.Ids;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.Stat;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Watches: one-shot data, exists and child watches, persistent and persistent-recursive watches
 * (addWatch), removeWatches, ordering, and re-registration after a reconnect (setWatches).
 * {@code zk} watches (its default watcher is {@code events}); {@code writer}, another session,
 * makes the changes. A session that sets a watch on what {@code writer} created syncs first
 * ({@link Zk#sync}): its member may not have the node yet.
 */
class ZooKeeperWatchTest {

    @RegisterExtension
    final CompatServer server = new CompatServer();

    private static final List<ACL> OPEN = Ids.OPEN_ACL_UNSAFE;
    /** How long "no further event" is waited for. */
    private static final long QUIET_MS = 300;

    private final Zk.Events events = new Zk.Events("default watcher");
    private ZooKeeper zk;
    private ZooKeeper writer;

    @BeforeEach
    void connect() throws Exception {
        zk = Zk.connect(server.connectString(), events);
        writer = Zk.connect(server.connectString());
    }

    @AfterEach
    void close() throws Exception {
        if (zk != null) {
            zk.close();
        }
        if (writer != null) {
            writer.close();
        }
    }

    @Test
    void dataWatchFiresOnceOnChange() throws Exception {
        writer.create("/w", "0".getBytes(UTF_8), OPEN, CreateMode.PERSISTENT);
        Zk.sync(zk);
        zk.getData("/w", true, null);
        writer.setData("/w", "1".getBytes(UTF_8), -1);
        events.expect(NodeDataChanged, "/w");
        assertArrayEquals("1".getBytes(UTF_8), zk.getData("/w", false, null), "new data after the event");
        writer.setData("/w", "2".getBytes(UTF_8), -1);
        events.expectNone(QUIET_MS); // one-shot
    }

    @Test
    void dataWatchFiresOnDelete() throws Exception {
        writer.create("/w", null, OPEN, CreateMode.PERSISTENT);
        Zk.sync(zk);
        zk.getData("/w", true, null);
        writer.delete("/w", -1);
        events.expect(NodeDeleted, "/w");
        events.expectNone(QUIET_MS);
    }

    @Test
    void existsWatchOnMissingNodeFiresOnCreate() throws Exception {
        assertNull(zk.exists("/later", true));
        writer.create("/later", null, OPEN, CreateMode.EPHEMERAL);
        events.expect(NodeCreated, "/later");
        writer.delete("/later", -1);
        events.expectNone(QUIET_MS);
    }

    @Test
    void existsWatchOnExistingNodeFiresOnChangeAndDelete() throws Exception {
        writer.create("/x", null, OPEN, CreateMode.PERSISTENT);
        Zk.sync(zk);
        assertNotNull(zk.exists("/x", true));
        writer.setData("/x", new byte[1], -1);
        events.expect(NodeDataChanged, "/x");
        assertNotNull(zk.exists("/x", true));
        writer.delete("/x", -1);
        events.expect(NodeDeleted, "/x");
        events.expectNone(QUIET_MS);
    }

    @Test
    void childWatchFiresOnChildCreateAndDeleteOnly() throws Exception {
        writer.create("/p", null, OPEN, CreateMode.PERSISTENT);
        Zk.sync(zk);
        assertEquals(List.of(), zk.getChildren("/p", true));
        writer.setData("/p", new byte[1], -1); // data changes don't fire child watches
        writer.create("/p/a", null, OPEN, CreateMode.PERSISTENT);
        events.expect(NodeChildrenChanged, "/p");

        zk.getChildren("/p", true);
        writer.setData("/p/a", new byte[1], -1);
        writer.create("/p/a/grandchild", null, OPEN, CreateMode.PERSISTENT);
        writer.delete("/p/a/grandchild", -1);
        events.expectNone(QUIET_MS);
        writer.delete("/p/a", -1);
        events.expect(NodeChildrenChanged, "/p");

        zk.getChildren("/p", true);
        writer.delete("/p", -1);
        events.expect(NodeDeleted, "/p");
        events.expectNone(QUIET_MS);
    }

    @Test
    void watchEventsCarryTheTriggeringZxid() throws Exception {
        // ZooKeeper 3.9 puts the zxid of the transaction that fired a watch in the notification
        // header (WatchedEvent.getZxid()).
        zk.exists("/z", true);
        Stat created = new Stat();
        writer.create("/z", null, OPEN, CreateMode.PERSISTENT, created);
        WatchedEvent e = events.next(Zk.EVENT_TIMEOUT_MS);
        assertNotNull(e, "NodeCreated");
        assertEquals(created.getCzxid(), e.getZxid(), "NodeCreated's zxid is the node's czxid");

        zk.getData("/z", true, null);
        zk.getChildren("/z", true);
        Stat changed = writer.setData("/z", new byte[1], -1);
        e = events.next(Zk.EVENT_TIMEOUT_MS);
        assertNotNull(e, "NodeDataChanged");
        assertEquals(changed.getMzxid(), e.getZxid(), "NodeDataChanged's zxid is the new mzxid");

        writer.create("/z/c", null, OPEN, CreateMode.PERSISTENT);
        e = events.next(Zk.EVENT_TIMEOUT_MS);
        assertNotNull(e, "NodeChildrenChanged");
        assertEquals(Zk.stat(zk, "/z").getPzxid(), e.getZxid(), "NodeChildrenChanged's zxid is the parent's new pzxid");
    }

    @Test
    void ownWritesFireOwnWatches() throws Exception {
        zk.create("/own", null, OPEN, CreateMode.PERSISTENT);
        zk.getData("/own", true, null);
        zk.getChildren("/own", true);
        zk.create("/own/c", null, OPEN, CreateMode.EPHEMERAL);
        events.expect(NodeChildrenChanged, "/own");
        zk.setData("/own", new byte[2], -1);
        events.expect(NodeDataChanged, "/own");
    }

    @Test
    void everyWatchingSessionAndWatcherObjectIsNotified() throws Exception {
        writer.create("/shared", null, OPEN, CreateMode.PERSISTENT);
        Zk.Events second = new Zk.Events("second session");
        ZooKeeper other = Zk.connect(server.connectString(), second);
        try {
            Zk.Events a = new Zk.Events("watcher a");
            Zk.Events b = new Zk.Events("watcher b");
            Zk.sync(zk);
            Zk.sync(other);
            zk.getData("/shared", a, null);
            zk.exists("/shared", b);
            zk.getData("/shared", true, null);
            zk.exists("/shared", true); // the same (default) watcher twice: notified once
            other.getData("/shared", true, null);
            writer.setData("/shared", new byte[1], -1);
            a.expect(NodeDataChanged, "/shared");
            b.expect(NodeDataChanged, "/shared");
            events.expect(NodeDataChanged, "/shared");
            second.expect(NodeDataChanged, "/shared");
            a.expectNone(QUIET_MS);
            b.expectNone(0);
            events.expectNone(0);
            second.expectNone(0);
        } finally {
            other.close();
        }
    }

    @Test
    void eventsArriveInTheOrderOfTheUpdates() throws Exception {
        for (String p : List.of("/o1", "/o2", "/o3", "/o4")) {
            writer.create(p, null, OPEN, CreateMode.PERSISTENT);
        }
        Zk.sync(zk);
        for (String p : List.of("/o1", "/o2", "/o3", "/o4")) {
            zk.exists(p, true);
        }
        writer.delete("/o3", -1);
        writer.setData("/o1", new byte[1], -1);
        writer.delete("/o4", -1);
        writer.setData("/o2", new byte[1], -1);
        events.expect(NodeDeleted, "/o3");
        events.expect(NodeDataChanged, "/o1");
        events.expect(NodeDeleted, "/o4");
        events.expect(NodeDataChanged, "/o2");
    }

    @Test
    void persistentWatchSurvivesFiringAndIsNotRecursive() throws Exception {
        zk.addWatch("/pw", AddWatchMode.PERSISTENT);
        writer.create("/pw", null, OPEN, CreateMode.PERSISTENT);
        events.expect(NodeCreated, "/pw");
        writer.setData("/pw", new byte[1], -1);
        events.expect(NodeDataChanged, "/pw");
        writer.setData("/pw", new byte[2], -1);
        events.expect(NodeDataChanged, "/pw");
        writer.create("/pw/c", null, OPEN, CreateMode.PERSISTENT);
        events.expect(NodeChildrenChanged, "/pw");
        writer.create("/pw/c/d", null, OPEN, CreateMode.PERSISTENT);
        writer.setData("/pw/c", new byte[1], -1);
        writer.delete("/pw/c/d", -1);
        events.expectNone(QUIET_MS);
        writer.delete("/pw/c", -1);
        events.expect(NodeChildrenChanged, "/pw");
        writer.delete("/pw", -1);
        events.expect(NodeDeleted, "/pw");
        writer.create("/pw", null, OPEN, CreateMode.PERSISTENT);
        events.expect(NodeCreated, "/pw");
        events.expectNone(QUIET_MS);
    }

    @Test
    void persistentRecursiveWatchSeesTheWholeSubtree() throws Exception {
        zk.addWatch("/rw", AddWatchMode.PERSISTENT_RECURSIVE);
        writer.create("/rw", null, OPEN, CreateMode.PERSISTENT);
        events.expect(NodeCreated, "/rw");
        writer.create("/rw/a", null, OPEN, CreateMode.PERSISTENT);
        events.expect(NodeCreated, "/rw/a"); // no NodeChildrenChanged with recursive watches
        writer.create("/rw/a/b", null, OPEN, CreateMode.EPHEMERAL);
        events.expect(NodeCreated, "/rw/a/b");
        writer.setData("/rw/a/b", new byte[1], -1);
        events.expect(NodeDataChanged, "/rw/a/b");
        writer.delete("/rw/a/b", -1);
        events.expect(NodeDeleted, "/rw/a/b");
        writer.create("/rwx", null, OPEN, CreateMode.PERSISTENT); // a sibling sharing the prefix
        writer.create("/other", null, OPEN, CreateMode.PERSISTENT);
        events.expectNone(QUIET_MS);
        writer.setData("/rw", new byte[1], -1);
        events.expect(NodeDataChanged, "/rw");
        writer.multi(List.of(
                org.apache.zookeeper.Op.create("/rw/m1", null, OPEN, CreateMode.PERSISTENT),
                org.apache.zookeeper.Op.create("/rw/m1/m2", null, OPEN, CreateMode.PERSISTENT),
                org.apache.zookeeper.Op.delete("/rw/a", -1)));
        events.expect(NodeCreated, "/rw/m1");
        events.expect(NodeCreated, "/rw/m1/m2");
        events.expect(NodeDeleted, "/rw/a");
        events.expectNone(QUIET_MS);
    }

    @Test
    void persistentRecursiveWatchAtTheRoot() throws Exception {
        zk.addWatch("/", AddWatchMode.PERSISTENT_RECURSIVE);
        writer.create("/top", null, OPEN, CreateMode.PERSISTENT);
        events.expect(NodeCreated, "/top");
        writer.create("/top/deep", null, OPEN, CreateMode.PERSISTENT);
        events.expect(NodeCreated, "/top/deep");
    }

    @Test
    void removingAPersistentWatchNotifiesAndStopsIt() throws Exception {
        Zk.Events pw = new Zk.Events("persistent watcher");
        zk.addWatch("/x", pw, AddWatchMode.PERSISTENT);
        writer.create("/x", null, OPEN, CreateMode.PERSISTENT);
        pw.expect(NodeCreated, "/x");
        zk.removeWatches("/x", pw, WatcherType.Persistent, false);
        pw.expect(PersistentWatchRemoved, "/x");
        writer.setData("/x", new byte[1], -1);
        pw.expectNone(QUIET_MS);

        Zk.Events rw = new Zk.Events("recursive watcher");
        zk.addWatch("/x", rw, AddWatchMode.PERSISTENT_RECURSIVE);
        writer.create("/x/y", null, OPEN, CreateMode.PERSISTENT);
        rw.expect(NodeCreated, "/x/y");
        zk.removeWatches("/x", rw, WatcherType.PersistentRecursive, false);
        rw.expect(PersistentWatchRemoved, "/x");
        writer.create("/x/z", null, OPEN, CreateMode.PERSISTENT);
        rw.expectNone(QUIET_MS);
    }

    @Test
    void removeWatchesRemovesDataAndChildWatches() throws Exception {
        writer.create("/n", null, OPEN, CreateMode.PERSISTENT);
        Zk.Events data = new Zk.Events("data watcher");
        Zk.Events child = new Zk.Events("child watcher");
        Zk.sync(zk);
        zk.getData("/n", data, null);
        zk.getChildren("/n", child);
        zk.removeWatches("/n", data, WatcherType.Data, false);
        data.expect(DataWatchRemoved, "/n");
        zk.removeWatches("/n", child, WatcherType.Children, false);
        child.expect(ChildWatchRemoved, "/n");
        writer.setData("/n", new byte[1], -1);
        writer.create("/n/c", null, OPEN, CreateMode.PERSISTENT);
        data.expectNone(QUIET_MS);
        child.expectNone(0);

        // removeAllWatches(Any) takes both kinds from the default watcher.
        zk.getData("/n", true, null);
        zk.getChildren("/n", true);
        zk.removeAllWatches("/n", WatcherType.Any, false);
        Set<String> removed = new TreeSet<>();
        for (int i = 0; i < 2; i++) {
            WatchedEvent e = events.next(Zk.EVENT_TIMEOUT_MS);
            assertNotNull(e, "removeAllWatches(Any) notifies once per removed watch kind, got " + removed);
            removed.add(e.getType() + " " + e.getPath());
        }
        assertEquals(new TreeSet<>(Set.of("DataWatchRemoved /n", "ChildWatchRemoved /n")), removed);
        writer.setData("/n", new byte[2], -1);
        writer.delete("/n/c", -1);
        events.expectNone(QUIET_MS);
    }

    @Test
    void removingAWatchThatIsNotThereIsNoWatcher() throws Exception {
        writer.create("/nw", null, OPEN, CreateMode.PERSISTENT);
        Zk.Events never = new Zk.Events("never registered");
        Zk.assertCode(Code.NOWATCHER, () -> zk.removeWatches("/nw", never, WatcherType.Any, false));
        Zk.assertCode(Code.NOWATCHER, () -> zk.removeAllWatches("/nw", WatcherType.Data, false));
        Zk.sync(zk);
        zk.getData("/nw", never, null);
        Zk.assertCode(Code.NOWATCHER, () -> zk.removeWatches("/nw", never, WatcherType.Children, false));
    }

    @Test
    void watchesAreReRegisteredAfterReconnectAndMissedChangesReported() throws Exception {
        writer.create("/sw", null, OPEN, CreateMode.PERSISTENT);
        writer.create("/gone", null, OPEN, CreateMode.PERSISTENT);
        writer.create("/quiet", null, OPEN, CreateMode.PERSISTENT);
        writer.create("/pr", null, OPEN, CreateMode.PERSISTENT);
        Zk.Events proxied = new Zk.Events("client behind proxy");
        try (TcpProxy proxy = new TcpProxy(server.connectString())) {
            ZooKeeper client = Zk.connect(proxy.connectString(), proxied);
            try {
                Zk.sync(client);
                client.getData("/sw", true, null);
                assertNull(client.exists("/sw-missing", true));
                client.getChildren("/sw", true);
                client.getData("/gone", true, null);
                client.getData("/quiet", true, null);
                client.addWatch("/pr", AddWatchMode.PERSISTENT_RECURSIVE);

                proxy.cut();
                proxied.expectState(KeeperState.Disconnected, 10_000);
                // Changes the client misses while it is away.
                writer.setData("/sw", new byte[1], -1);
                writer.create("/sw-missing", null, OPEN, CreateMode.PERSISTENT);
                writer.create("/sw/child", null, OPEN, CreateMode.PERSISTENT);
                writer.delete("/gone", -1);
                writer.create("/pr/missed", null, OPEN, CreateMode.PERSISTENT);
                // The client comes back to the proxy's member: it must have applied these, or
                // their events would come as it applies them rather than at the reconnection
                // (the persistent watch would fire for /pr/missed then).
                Zk.syncMember(proxy.target());
                proxy.restore();
                proxied.expectState(KeeperState.SyncConnected, 15_000);

                // On reconnect the server compares each one-shot watch with the client's last
                // zxid and fires at once for what changed. Persistent watches are only restored.
                Set<String> fired = new TreeSet<>();
                for (int i = 0; i < 4; i++) {
                    WatchedEvent e = proxied.next(Zk.EVENT_TIMEOUT_MS);
                    assertNotNull(e, "missed-change events after reconnect, so far " + fired);
                    fired.add(e.getType() + " " + e.getPath());
                }
                assertEquals(new TreeSet<>(Set.of("NodeDataChanged /sw", "NodeCreated /sw-missing",
                        "NodeChildrenChanged /sw", "NodeDeleted /gone")), fired);
                proxied.expectNone(QUIET_MS);

                // The untouched one-shot watch and the persistent watch still work.
                writer.setData("/quiet", new byte[1], -1);
                proxied.expect(NodeDataChanged, "/quiet");
                writer.create("/pr/after", null, OPEN, CreateMode.PERSISTENT);
                proxied.expect(NodeCreated, "/pr/after");
                proxied.expectNone(QUIET_MS);
            } finally {
                client.close();
            }
        }
    }
}
