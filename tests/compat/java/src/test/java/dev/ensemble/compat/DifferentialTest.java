package dev.ensemble.compat;

import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import java.util.stream.Stream;
import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.Watcher.WatcherType;
import org.apache.zookeeper.ZooDefs.Ids;
import org.apache.zookeeper.ZooDefs.Perms;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.Stat;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Differential test: the same random operation sequence (from a seed) against Apache ZooKeeper
 * (embedded in this JVM, the oracle) and against the server under test, one synchronous
 * operation at a time, with several sessions. After every step it compares:
 *
 * <ul>
 *   <li>the result: error code (per op for multi), returned data, created paths (so sequential
 *       suffixes), children as sorted lists, ACLs;</li>
 *   <li>every returned Stat's deterministic fields: version, cversion, aversion, dataLength,
 *       numChildren, and ephemeralOwner as "which of our sessions" (0 / session slot and
 *       generation);</li>
 *   <li>czxid/mzxid/pzxid by their ORDER within each run: each run keeps the set of zxids it has
 *       observed, and a zxid is shown as its rank in that set (and whether it was already in it).
 *       Both servers apply the same writes in the same order, one zxid per write transaction, so
 *       the observed sets must be order-isomorphic: equal labels in both runs, step after step;
 *       absolute values differ (ZooKeeper also spends zxids on sessions and failed writes);</li>
 *   <li>the watch events (type and path) each session received, in order. An event for a change
 *       is delivered before the reply to any later request of the same session, so after each
 *       step every session syncs (the sync's reply comes once its member has applied the step's
 *       writes, wherever they were made, and its callback runs on the client's event thread after
 *       all earlier events) and its queue is drained. A session close deletes its
 *       ephemerals in one transaction in an unspecified order, so those events are compared
 *       sorted.</li>
 * </ul>
 *
 * The first divergence fails the seed with the whole history so far (also written to
 * target/compat-logs). Seeds and length: system properties {@code compat.seeds} (comma
 * separated) and {@code compat.ops}; scripts/compat-java.sh maps COMPAT_SEEDS and COMPAT_OPS.
 * With {@code -Dcompat.target=zookeeper} the subject is a second Apache ZooKeeper, which checks
 * the harness itself: it must never report a divergence then.
 */
class DifferentialTest {

    private static final int SESSIONS = 3;
    private static final String ROOT = "/d";
    private static final String[] NAMES = {"a", "b", "c"};
    private static final long[] DEFAULT_SEEDS = {1, 2, 3, 4, 5, 6};
    private static final int DEFAULT_OPS = 400;

    static Stream<Long> seeds() {
        String property = System.getProperty("compat.seeds", "").trim();
        if (property.isEmpty()) {
            return LongStream.of(DEFAULT_SEEDS).boxed();
        }
        return Arrays.stream(property.split("[,\\s]+")).filter(s -> !s.isEmpty()).map(Long::parseLong);
    }

    static int opsPerSeed() {
        String property = System.getProperty("compat.ops", "").trim();
        return property.isEmpty() ? DEFAULT_OPS : Integer.parseInt(property);
    }

    @ParameterizedTest(name = "seed {0}")
    @MethodSource("seeds")
    @Timeout(value = 240, unit = TimeUnit.SECONDS)
    void sameOperationsSameResults(long seed) throws Exception {
        int ops = opsPerSeed();
        String name = "DifferentialTest.seed-" + seed;
        try (Side reference = new Side("Apache ZooKeeper", EmbeddedZooKeeper.start(name + "-reference"));
                Side subject = new Side(CompatTarget.targetKind(), CompatTarget.start(name))) {
            Generator generator = new Generator(seed);
            List<String> history = new ArrayList<>();
            Map<String, Integer> tally = new java.util.TreeMap<>();
            for (int i = 0; i < ops; i++) {
                Step step = i == 0 ? new Create(0, ROOT, bytes("root"), CreateMode.PERSISTENT, true) : generator.next();
                Result expected = reference.run(step);
                Result actual = subject.run(step);
                String divergence = expected.compare(actual);
                if (divergence != null) {
                    // Events that came late (after the sync) are worth knowing about.
                    Thread.sleep(500);
                    String lateReference = reference.lateEvents();
                    String lateSubject = subject.lateEvents();
                    fail(report(seed, ops, i, step, expected, actual, divergence, lateReference, lateSubject,
                            history, subject));
                }
                history.add(String.format("%4d  %s%n      -> %s", i, step, expected.summary()));
                generator.learn(step, expected);
                String kind = step.getClass().getSimpleName() + " "
                        + (expected.outcome.startsWith("OK") ? "OK" : expected.outcome.split(" ")[0] + " " + expected.outcome.split(" ")[1]);
                tally.merge(kind, 1, Integer::sum);
                tally.merge("watch events", expected.events.values().stream().mapToInt(List::size).sum(), Integer::sum);
            }
            // Coverage of the sequence (in the surefire output file): which ops and outcomes occurred.
            System.out.println("seed " + seed + ": " + ops + " steps agree; " + tally);
        }
    }

    private static String report(long seed, int ops, int index, Step step, Result expected, Result actual,
            String divergence, String lateReference, String lateSubject, List<String> history, Side subject) {
        StringBuilder text = new StringBuilder();
        text.append("DIVERGENCE at step ").append(index).append(" of seed ").append(seed).append(" (").append(divergence)
                .append(")\n");
        text.append("reproduce: COMPAT_SEEDS=").append(seed).append(" COMPAT_OPS=").append(ops)
                .append(" scripts/compat-java.sh -Dtest=DifferentialTest\n");
        text.append("step:              ").append(step).append('\n');
        text.append("Apache ZooKeeper:  ").append(expected.summary()).append('\n');
        text.append(String.format("%-19s", subject.name + ":")).append(actual.summary()).append('\n');
        text.append("events arriving within 500 ms after the step: ZooKeeper ").append(lateReference)
                .append(", ").append(subject.name).append(' ').append(lateSubject).append('\n');
        text.append("server: ").append(subject.target.describe()).append('\n');
        subject.target.problem().ifPresent(p -> text.append(p).append('\n'));
        text.append("history (step, op, Apache ZooKeeper's result and events; zxids as ranks, sessions as s<slot>.<generation>):\n");
        for (String line : history) {
            text.append(line).append('\n');
        }
        text.append(String.format("%4d  %s  <== diverges%n", index, step));
        text.append(subject.target.recentLog()).append('\n');
        try {
            Path file = CompatTarget.logDir().resolve("differential-seed-" + seed + ".txt");
            Files.writeString(file, text, StandardCharsets.UTF_8);
            text.insert(0, "(also in " + file + ")\n");
        } catch (Exception e) {
            text.append("(could not write the report file: ").append(e).append(")\n");
        }
        return text.toString();
    }

    static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String show(byte[] data) {
        if (data == null) {
            return "null";
        }
        StringBuilder out = new StringBuilder("'");
        for (byte b : data) {
            out.append(b >= 0x20 && b < 0x7f ? Character.toString((char) b) : String.format("\\x%02x", b & 0xff));
        }
        return out.append('\'').toString();
    }

    // ---------------------------------------------------------------------------------------
    // One run: a server, its sessions, and how its zxids and session ids are labelled.

    static final class Side implements AutoCloseable {
        final String name;
        final CompatTarget target;
        final ZooKeeper[] sessions = new ZooKeeper[SESSIONS];
        final Zk.Events[] events = new Zk.Events[SESSIONS];
        final int[] generation = new int[SESSIONS];
        final Map<Long, String> sessionLabels = new HashMap<>();
        final TreeSet<Long> zxids = new TreeSet<>();
        /** Paths the current step created, with the slot owning each if ephemeral (else -1). */
        final Map<String, Integer> created = new LinkedHashMap<>();

        Side(String name, CompatTarget target) throws Exception {
            this.name = name;
            this.target = target;
            try {
                for (int slot = 0; slot < SESSIONS; slot++) {
                    open(slot);
                }
            } catch (Exception | AssertionError e) {
                close();
                throw e;
            }
        }

        void open(int slot) throws Exception {
            events[slot] = new Zk.Events(name + " session " + slot);
            sessions[slot] = Zk.connect(target.connectString(), Zk.SESSION_TIMEOUT_MS, events[slot]);
            if (slot == AUTH_SLOT) {
                sessions[slot].addAuthInfo("digest", bytes(USER2));
            }
            sessionLabels.put(sessions[slot].getSessionId(), "s" + slot + "." + generation[slot]);
        }

        void reopen(int slot) throws Exception {
            sessions[slot].close();
            generation[slot]++;
            open(slot);
        }

        String session(long id) {
            if (id == 0) {
                return "0";
            }
            String label = sessionLabels.get(id);
            return label != null ? label : "unknown-session:0x" + Long.toHexString(id);
        }

        /** A zxid as its rank among the zxids this run has observed so far. */
        String zxid(long z) {
            if (z <= 0) {
                return Long.toString(z);
            }
            int below = zxids.headSet(z).size();
            if (zxids.contains(z)) {
                return "#" + below;
            }
            zxids.add(z);
            return "new#" + below;
        }

        String stat(Stat s) {
            if (s == null) {
                return "null";
            }
            return "{v=" + s.getVersion() + " cv=" + s.getCversion() + " av=" + s.getAversion()
                    + " len=" + s.getDataLength() + " kids=" + s.getNumChildren()
                    + " owner=" + session(s.getEphemeralOwner())
                    + " cz=" + zxid(s.getCzxid()) + " mz=" + zxid(s.getMzxid()) + " pz=" + zxid(s.getPzxid()) + "}";
        }

        Result run(Step step) throws Exception {
            created.clear();
            String outcome;
            try {
                outcome = step.apply(this);
            } catch (KeeperException e) {
                outcome = "ERR " + e.code();
                if (e.getResults() != null) {
                    outcome += " results=" + e.getResults().stream().map(this::opResult).collect(Collectors.toList());
                }
            } catch (IllegalArgumentException e) {
                outcome = "CLIENT-REFUSED " + e.getClass().getSimpleName();
            }
            Map<Integer, List<String>> seen = new LinkedHashMap<>();
            for (int slot = 0; slot < SESSIONS; slot++) {
                List<String> got = drain(slot);
                if (step.unorderedEvents()) {
                    Collections.sort(got);
                }
                seen.put(slot, got);
            }
            return new Result(outcome, seen, new LinkedHashMap<>(created));
        }

        /**
         * Events session {@code slot} has received, after a sync on it: its reply comes once the
         * session's member has applied every write acknowledged before (with several members, it
         * may lag behind the member that took the step's write) and after the events they fired.
         * It also lets the next step's reads on any session see this step's writes.
         */
        List<String> drain(int slot) throws InterruptedException {
            CountDownLatch done = new CountDownLatch(1);
            sessions[slot].sync("/", (rc, path, ctx) -> done.countDown(), null);
            List<String> got = new ArrayList<>();
            if (!done.await(Zk.SESSION_TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
                got.add("<no reply to the sync within " + Zk.SESSION_TIMEOUT_MS + " ms>");
            }
            got.addAll(events[slot].drain());
            return got;
        }

        String lateEvents() {
            Map<Integer, List<String>> late = new LinkedHashMap<>();
            for (int slot = 0; slot < SESSIONS; slot++) {
                List<String> got = events[slot].drain();
                if (!got.isEmpty()) {
                    late.put(slot, got);
                }
            }
            return late.isEmpty() ? "none" : late.toString();
        }

        String opResult(OpResult r) {
            if (r instanceof OpResult.CreateResult) {
                OpResult.CreateResult c = (OpResult.CreateResult) r;
                return "create " + c.getPath() + (c.getStat() != null ? " " + stat(c.getStat()) : "");
            } else if (r instanceof OpResult.SetDataResult) {
                return "setData " + stat(((OpResult.SetDataResult) r).getStat());
            } else if (r instanceof OpResult.DeleteResult) {
                return "delete";
            } else if (r instanceof OpResult.CheckResult) {
                return "check";
            } else if (r instanceof OpResult.GetDataResult) {
                OpResult.GetDataResult g = (OpResult.GetDataResult) r;
                return "getData " + show(g.getData()) + " " + stat(g.getStat());
            } else if (r instanceof OpResult.GetChildrenResult) {
                List<String> children = new ArrayList<>(((OpResult.GetChildrenResult) r).getChildren());
                Collections.sort(children);
                return "getChildren " + children;
            } else if (r instanceof OpResult.ErrorResult) {
                return "error " + KeeperException.Code.get(((OpResult.ErrorResult) r).getErr());
            }
            return "unknown result " + r.getClass().getSimpleName();
        }

        @Override
        public void close() {
            for (ZooKeeper zk : sessions) {
                if (zk != null) {
                    try {
                        zk.close();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
            }
            target.close();
        }
    }

    /** What one step did on one side: its outcome and, per session, the events received. */
    static final class Result {
        final String outcome;
        final Map<Integer, List<String>> events;
        final Map<String, Integer> created;

        Result(String outcome, Map<Integer, List<String>> events, Map<String, Integer> created) {
            this.outcome = outcome;
            this.events = events;
            this.created = created;
        }

        /** Null if equal, else what differs. */
        String compare(Result other) {
            if (!outcome.equals(other.outcome)) {
                return "different result";
            }
            for (int slot = 0; slot < SESSIONS; slot++) {
                List<String> mine = events.get(slot);
                List<String> theirs = other.events.get(slot);
                if (!mine.equals(theirs)) {
                    boolean sameSet = new TreeSet<>(mine).equals(new TreeSet<>(theirs)) && mine.size() == theirs.size();
                    return "different watch events on session " + slot + (sameSet ? " (same events, different order)" : "");
                }
            }
            return null;
        }

        String summary() {
            StringBuilder out = new StringBuilder(outcome);
            events.forEach((slot, list) -> {
                if (!list.isEmpty()) {
                    out.append("  events s").append(slot).append('=').append(list);
                }
            });
            return out.toString();
        }
    }

    // ---------------------------------------------------------------------------------------
    // Steps. Each runs on one session slot of a side and returns its canonical outcome.

    interface Step {
        String apply(Side side) throws KeeperException, Exception;

        default boolean unorderedEvents() {
            return false;
        }
    }

    static final class Create implements Step {
        final int slot;
        final String path;
        final byte[] data;
        final CreateMode mode;
        final boolean withStat;
        final Acls acl;

        Create(int slot, String path, byte[] data, CreateMode mode, boolean withStat) {
            this(slot, path, data, mode, withStat, Acls.OPEN);
        }

        Create(int slot, String path, byte[] data, CreateMode mode, boolean withStat, Acls acl) {
            this.slot = slot;
            this.path = path;
            this.data = data;
            this.mode = mode;
            this.withStat = withStat;
            this.acl = acl;
        }

        @Override
        public String apply(Side side) throws Exception {
            Stat stat = withStat ? new Stat() : null;
            String created = withStat
                    ? side.sessions[slot].create(path, data, acl.list(), mode, stat)
                    : side.sessions[slot].create(path, data, acl.list(), mode);
            side.created.put(created, mode.isEphemeral() ? slot : -1);
            return "OK " + created + (withStat ? " " + side.stat(stat) : "");
        }

        @Override
        public String toString() {
            return "s" + slot + " create" + (withStat ? "2 " : " ") + path + " " + show(data) + " " + mode
                    + (acl == Acls.OPEN ? "" : " acl=" + acl);
        }
    }

    static final class Delete implements Step {
        final int slot;
        final String path;
        final int version;

        Delete(int slot, String path, int version) {
            this.slot = slot;
            this.path = path;
            this.version = version;
        }

        @Override
        public String apply(Side side) throws Exception {
            side.sessions[slot].delete(path, version);
            return "OK";
        }

        @Override
        public String toString() {
            return "s" + slot + " delete " + path + " version=" + version;
        }
    }

    static final class SetData implements Step {
        final int slot;
        final String path;
        final byte[] data;
        final int version;

        SetData(int slot, String path, byte[] data, int version) {
            this.slot = slot;
            this.path = path;
            this.data = data;
            this.version = version;
        }

        @Override
        public String apply(Side side) throws Exception {
            return "OK " + side.stat(side.sessions[slot].setData(path, data, version));
        }

        @Override
        public String toString() {
            return "s" + slot + " setData " + path + " " + show(data) + " version=" + version;
        }
    }

    static final class GetData implements Step {
        final int slot;
        final String path;
        final boolean watch;

        GetData(int slot, String path, boolean watch) {
            this.slot = slot;
            this.path = path;
            this.watch = watch;
        }

        @Override
        public String apply(Side side) throws Exception {
            Stat stat = new Stat();
            byte[] data = side.sessions[slot].getData(path, watch, stat);
            return "OK " + show(data) + " " + side.stat(stat);
        }

        @Override
        public String toString() {
            return "s" + slot + " getData " + path + (watch ? " watch" : "");
        }
    }

    static final class Exists implements Step {
        final int slot;
        final String path;
        final boolean watch;

        Exists(int slot, String path, boolean watch) {
            this.slot = slot;
            this.path = path;
            this.watch = watch;
        }

        @Override
        public String apply(Side side) throws Exception {
            return "OK " + side.stat(side.sessions[slot].exists(path, watch));
        }

        @Override
        public String toString() {
            return "s" + slot + " exists " + path + (watch ? " watch" : "");
        }
    }

    static final class GetChildren implements Step {
        final int slot;
        final String path;
        final boolean watch;
        final boolean withStat;

        GetChildren(int slot, String path, boolean watch, boolean withStat) {
            this.slot = slot;
            this.path = path;
            this.watch = watch;
            this.withStat = withStat;
        }

        @Override
        public String apply(Side side) throws Exception {
            Stat stat = withStat ? new Stat() : null;
            List<String> children = new ArrayList<>(side.sessions[slot].getChildren(path, watch, stat));
            Collections.sort(children);
            return "OK " + children + (withStat ? " " + side.stat(stat) : "");
        }

        @Override
        public String toString() {
            return "s" + slot + " getChildren" + (withStat ? "2 " : " ") + path + (watch ? " watch" : "");
        }
    }

    static final class Multi implements Step {
        final int slot;
        final List<Op> ops;
        final List<String> descriptions;

        Multi(int slot, List<Op> ops, List<String> descriptions) {
            this.slot = slot;
            this.ops = ops;
            this.descriptions = descriptions;
        }

        @Override
        public String apply(Side side) throws Exception {
            List<OpResult> results = side.sessions[slot].multi(ops);
            for (int i = 0; i < results.size() && i < ops.size(); i++) {
                if (results.get(i) instanceof OpResult.CreateResult) {
                    String d = descriptions.get(i);
                    boolean ephemeral = d.endsWith(" EPHEMERAL") || d.endsWith(" EPHEMERAL_SEQUENTIAL");
                    side.created.put(((OpResult.CreateResult) results.get(i)).getPath(), ephemeral ? slot : -1);
                }
            }
            return "OK " + results.stream().map(side::opResult).collect(Collectors.toList());
        }

        @Override
        public String toString() {
            return "s" + slot + " multi " + descriptions;
        }
    }

    static final class AddWatch implements Step {
        final int slot;
        final String path;
        final AddWatchMode mode;

        AddWatch(int slot, String path, AddWatchMode mode) {
            this.slot = slot;
            this.path = path;
            this.mode = mode;
        }

        @Override
        public String apply(Side side) throws Exception {
            side.sessions[slot].addWatch(path, mode);
            return "OK";
        }

        @Override
        public String toString() {
            return "s" + slot + " addWatch " + path + " " + mode;
        }
    }

    static final class RemoveAllWatches implements Step {
        final int slot;
        final String path;
        final WatcherType type;

        RemoveAllWatches(int slot, String path, WatcherType type) {
            this.slot = slot;
            this.path = path;
            this.type = type;
        }

        @Override
        public String apply(Side side) throws Exception {
            side.sessions[slot].removeAllWatches(path, type, false);
            return "OK";
        }

        @Override
        public String toString() {
            return "s" + slot + " removeAllWatches " + path + " " + type;
        }
    }

    static final class SetAcl implements Step {
        final int slot;
        final String path;
        final Acls acl;
        final int version;

        SetAcl(int slot, String path, Acls acl, int version) {
            this.slot = slot;
            this.path = path;
            this.acl = acl;
            this.version = version;
        }

        @Override
        public String apply(Side side) throws Exception {
            return "OK " + side.stat(side.sessions[slot].setACL(path, acl.list(), version));
        }

        @Override
        public String toString() {
            return "s" + slot + " setACL " + path + " " + acl + " version=" + version;
        }
    }

    /**
     * The ACLs steps use. Sessions in slot {@link #AUTH_SLOT} authenticate as digest
     * {@code user2:pw} when they open, so digest ACLs and the "auth" scheme make permissions
     * differ between sessions.
     */
    enum Acls {
        OPEN,
        READ_ONLY,
        NO_WRITE_NO_DELETE_CHILD,
        NO_CREATE_NO_DELETE_CHILD,
        /** The "auth" scheme: the creator's identities (InvalidACL for a session with none). */
        CREATOR_ALL,
        /** ALL for digest user2, READ for anyone. */
        USER2_ALL_ANYONE_READ;

        List<ACL> list() {
            switch (this) {
                case OPEN:
                    return new ArrayList<>(Ids.OPEN_ACL_UNSAFE);
                case READ_ONLY:
                    return new ArrayList<>(Ids.READ_ACL_UNSAFE);
                case NO_WRITE_NO_DELETE_CHILD:
                    return new ArrayList<>(List.of(new ACL(Perms.READ | Perms.CREATE | Perms.ADMIN, Ids.ANYONE_ID_UNSAFE)));
                case NO_CREATE_NO_DELETE_CHILD:
                    return new ArrayList<>(List.of(new ACL(Perms.READ | Perms.WRITE | Perms.ADMIN, Ids.ANYONE_ID_UNSAFE)));
                case CREATOR_ALL:
                    return new ArrayList<>(Ids.CREATOR_ALL_ACL);
                case USER2_ALL_ANYONE_READ:
                    try {
                        return new ArrayList<>(List.of(
                                new ACL(Perms.ALL, new org.apache.zookeeper.data.Id("digest",
                                        org.apache.zookeeper.server.auth.DigestAuthenticationProvider.generateDigest(USER2))),
                                new ACL(Perms.READ, Ids.ANYONE_ID_UNSAFE)));
                    } catch (java.security.NoSuchAlgorithmException e) {
                        throw new IllegalStateException(e);
                    }
                default:
                    throw new IllegalStateException(name());
            }
        }
    }

    static final int AUTH_SLOT = 2;
    static final String USER2 = "user2:pw";

    static final class GetAcl implements Step {
        final int slot;
        final String path;

        GetAcl(int slot, String path) {
            this.slot = slot;
            this.path = path;
        }

        @Override
        public String apply(Side side) throws Exception {
            Stat stat = new Stat();
            List<ACL> acl = side.sessions[slot].getACL(path, stat);
            return "OK " + acl.stream().map(a -> a.getId().getScheme() + ":" + a.getId().getId() + "=" + a.getPerms())
                    .collect(Collectors.toList()) + " " + side.stat(stat);
        }

        @Override
        public String toString() {
            return "s" + slot + " getACL " + path;
        }
    }

    static final class GetEphemerals implements Step {
        final int slot;
        final String prefix;

        GetEphemerals(int slot, String prefix) {
            this.slot = slot;
            this.prefix = prefix;
        }

        @Override
        public String apply(Side side) throws Exception {
            List<String> paths = new ArrayList<>(side.sessions[slot].getEphemerals(prefix));
            Collections.sort(paths);
            return "OK " + paths;
        }

        @Override
        public String toString() {
            return "s" + slot + " getEphemerals " + prefix;
        }
    }

    static final class GetAllChildrenNumber implements Step {
        final int slot;
        final String path;

        GetAllChildrenNumber(int slot, String path) {
            this.slot = slot;
            this.path = path;
        }

        @Override
        public String apply(Side side) throws Exception {
            return "OK " + side.sessions[slot].getAllChildrenNumber(path);
        }

        @Override
        public String toString() {
            return "s" + slot + " getAllChildrenNumber " + path;
        }
    }

    static final class CloseSession implements Step {
        final int slot;

        CloseSession(int slot) {
            this.slot = slot;
        }

        @Override
        public String apply(Side side) throws Exception {
            String old = side.session(side.sessions[slot].getSessionId());
            side.reopen(slot);
            return "OK closed " + old + ", new session " + side.session(side.sessions[slot].getSessionId());
        }

        @Override
        public boolean unorderedEvents() {
            return true;
        }

        @Override
        public String toString() {
            return "s" + slot + " close session (and open a new one in its slot)";
        }
    }

    // ---------------------------------------------------------------------------------------
    // The generator: random steps over a small namespace under /d, biased towards paths that
    // exist (as Apache ZooKeeper's results tell), so that most kinds of success and failure occur.

    static final class Generator {
        private final Random random;
        /** Paths believed to exist, in creation order (a list, for deterministic choice). */
        private final List<String> known = new ArrayList<>();
        /** Slot of the session owning each ephemeral in {@link #known}. */
        private final Map<String, Integer> ephemeralOwner = new HashMap<>();
        /** Per slot, paths it asked to watch (so removeWatches sometimes finds one). */
        private final List<List<String>> watched = new ArrayList<>();

        Generator(long seed) {
            random = new Random(seed);
            for (int i = 0; i < SESSIONS; i++) {
                watched.add(new ArrayList<>());
            }
        }

        private boolean watch(int slot, String path) {
            if (random.nextInt(4) == 0) {
                return false;
            }
            watched.get(slot).add(path);
            return true;
        }

        private int slot() {
            return random.nextInt(SESSIONS);
        }

        private String universePath() {
            int depth = 1 + (random.nextInt(10) < 5 ? 0 : (random.nextInt(10) < 7 ? 1 : 2));
            StringBuilder path = new StringBuilder(ROOT);
            for (int i = 0; i < depth; i++) {
                path.append('/').append(NAMES[random.nextInt(NAMES.length)]);
            }
            return path.toString();
        }

        /** A path for reading, changing or deleting. */
        private String path() {
            int r = random.nextInt(100);
            if (r < 60 && !known.isEmpty()) {
                return known.get(random.nextInt(known.size()));
            }
            if (r < 65) {
                return ROOT;
            }
            return universePath();
        }

        /** A path for a create (a prefix, for sequential modes). */
        private String createPath(CreateMode mode) {
            String parent;
            int r = random.nextInt(100);
            if (r < 60 && !known.isEmpty()) {
                parent = known.get(random.nextInt(known.size()));
            } else if (r < 80) {
                parent = ROOT;
            } else {
                String p = universePath();
                parent = p.substring(0, p.lastIndexOf('/'));
            }
            if (mode.isSequential()) {
                return parent + "/" + (random.nextInt(4) == 0 ? "" : "s-");
            }
            return parent + "/" + NAMES[random.nextInt(NAMES.length)];
        }

        private byte[] data() {
            int r = random.nextInt(10);
            if (r == 0) {
                return null;
            }
            byte[] data = new byte[random.nextInt(7)];
            random.nextBytes(data);
            return data;
        }

        private int version() {
            return random.nextInt(10) < 4 ? -1 : random.nextInt(3);
        }

        /** In multi, mostly -1: one stale version fails the whole multi. */
        private int multiVersion() {
            return random.nextInt(10) < 7 ? -1 : random.nextInt(3);
        }

        private CreateMode createMode() {
            int r = random.nextInt(100);
            if (r < 45) {
                return CreateMode.PERSISTENT;
            } else if (r < 65) {
                return CreateMode.EPHEMERAL;
            } else if (r < 85) {
                return CreateMode.PERSISTENT_SEQUENTIAL;
            }
            return CreateMode.EPHEMERAL_SEQUENTIAL;
        }

        Step next() {
            if (!known.contains(ROOT)) {
                // Everything happens under /d: once it is gone (deleted, or an ephemeral /d whose
                // session closed), bring it back, sometimes as an ephemeral again.
                return new Create(slot(), ROOT, data(), random.nextInt(5) == 0 ? CreateMode.EPHEMERAL
                        : CreateMode.PERSISTENT, random.nextBoolean());
            }
            int r = random.nextInt(103);
            if (r < 25) {
                CreateMode mode = createMode();
                return new Create(slot(), createPath(mode), data(), mode, random.nextBoolean(),
                        random.nextInt(10) == 0 ? acl() : Acls.OPEN);
            } else if (r < 37) {
                return new Delete(slot(), path(), version());
            } else if (r < 49) {
                return new SetData(slot(), path(), data(), version());
            } else if (r < 57) {
                int slot = slot();
                String path = path();
                return new GetData(slot, path, watch(slot, path));
            } else if (r < 65) {
                int slot = slot();
                String path = path();
                return new Exists(slot, path, watch(slot, path));
            } else if (r < 73) {
                int slot = slot();
                String path = path();
                return new GetChildren(slot, path, watch(slot, path), random.nextBoolean());
            } else if (r < 83) {
                return multi();
            } else if (r < 85) {
                return multiRead();
            } else if (r < 87) {
                int slot = slot();
                String path = random.nextInt(3) == 0 ? ROOT : path();
                watched.get(slot).add(path);
                return new AddWatch(slot, path,
                        random.nextBoolean() ? AddWatchMode.PERSISTENT : AddWatchMode.PERSISTENT_RECURSIVE);
            } else if (r < 89) {
                int slot = slot();
                List<String> mine = watched.get(slot);
                String path = !mine.isEmpty() && random.nextInt(4) != 0 ? mine.get(random.nextInt(mine.size())) : path();
                WatcherType[] types = WatcherType.values();
                return new RemoveAllWatches(slot, path, types[random.nextInt(types.length)]);
            } else if (r < 92) {
                return setAcl();
            } else if (r < 94) {
                return new GetAcl(slot(), path());
            } else if (r < 96) {
                int p = random.nextInt(3);
                return new GetEphemerals(slot(), p == 0 ? "/" : p == 1 ? ROOT : path());
            } else if (r < 98) {
                return new GetAllChildrenNumber(slot(), path());
            } else if (r < 101) {
                int slot = slot();
                String path = random.nextInt(3) == 0 ? ROOT : path();
                watched.get(slot).add(path);
                return new AddWatch(slot, path,
                        random.nextBoolean() ? AddWatchMode.PERSISTENT : AddWatchMode.PERSISTENT_RECURSIVE);
            } else {
                return new CloseSession(slot());
            }
        }

        private Step multi() {
            int n = 1 + random.nextInt(5);
            List<Op> ops = new ArrayList<>();
            List<String> descriptions = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                int r = random.nextInt(4);
                if (r == 0) {
                    CreateMode mode = createMode();
                    String path = createPath(mode);
                    byte[] data = data();
                    ops.add(Op.create(path, data, Ids.OPEN_ACL_UNSAFE, mode));
                    descriptions.add("create " + path + " " + show(data) + " " + mode);
                } else if (r == 1) {
                    String path = path();
                    int version = multiVersion();
                    ops.add(Op.delete(path, version));
                    descriptions.add("delete " + path + " version=" + version);
                } else if (r == 2) {
                    String path = path();
                    byte[] data = data();
                    int version = multiVersion();
                    ops.add(Op.setData(path, data, version));
                    descriptions.add("setData " + path + " " + show(data) + " version=" + version);
                } else {
                    String path = path();
                    int version = multiVersion();
                    ops.add(Op.check(path, version));
                    descriptions.add("check " + path + " version=" + version);
                }
            }
            return new Multi(slot(), ops, descriptions);
        }

        private Step multiRead() {
            int n = 1 + random.nextInt(3);
            List<Op> ops = new ArrayList<>();
            List<String> descriptions = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                String path = path();
                if (random.nextBoolean()) {
                    ops.add(Op.getData(path));
                    descriptions.add("getData " + path);
                } else {
                    ops.add(Op.getChildren(path));
                    descriptions.add("getChildren " + path);
                }
            }
            return new Multi(slot(), ops, descriptions);
        }

        private Acls acl() {
            int r = random.nextInt(20);
            if (r < 14) {
                return Acls.OPEN;
            }
            Acls[] all = Acls.values();
            return all[random.nextInt(all.length)];
        }

        private Step setAcl() {
            return new SetAcl(slot(), path(), acl(), random.nextInt(10) < 5 ? -1 : random.nextInt(2));
        }

        /** Updates what is believed to exist from the reference server's result. */
        void learn(Step step, Result result) {
            if (!result.outcome.startsWith("OK")) {
                return;
            }
            result.created.forEach(this::add);
            if (step instanceof Delete) {
                remove(((Delete) step).path);
            } else if (step instanceof Multi) {
                for (Op op : ((Multi) step).ops) {
                    if (op instanceof Op.Delete) {
                        remove(op.getPath());
                    }
                }
            } else if (step instanceof CloseSession) {
                int slot = ((CloseSession) step).slot;
                List<String> gone = ephemeralOwner.entrySet().stream().filter(e -> e.getValue() == slot)
                        .map(Map.Entry::getKey).collect(Collectors.toList());
                for (String path : gone) {
                    remove(path);
                }
            }
        }

        private void add(String path, int ephemeralSlot) {
            if (!known.contains(path)) {
                known.add(path);
            }
            if (ephemeralSlot >= 0) {
                ephemeralOwner.put(path, ephemeralSlot);
            }
        }

        private void remove(String path) {
            known.remove(path);
            ephemeralOwner.remove(path);
        }
    }
}
