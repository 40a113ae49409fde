package dev.ensemble.compat;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Optional;
import java.util.Properties;
import java.util.stream.Stream;
import org.apache.zookeeper.server.embedded.ExitHandler;
import org.apache.zookeeper.server.embedded.ZooKeeperServerEmbedded;

/**
 * Apache ZooKeeper (the Maven artifact this suite pins) running standalone inside the test JVM,
 * with a temporary data directory and a free port on 127.0.0.1. It is the oracle of the
 * differential test, and with {@code -Dcompat.target=zookeeper} the server the client tests run
 * against, to check the tests themselves.
 *
 * <p>Configured like {@code ensemble local}: tickTime 2000 ms (so sessions negotiate the same
 * timeouts), no admin server. Containers are checked every second rather than every minute
 * ({@code znode.container.checkIntervalMs}) so that the container tests run quickly here.
 */
final class EmbeddedZooKeeper implements CompatTarget {

    static {
        // Read when the server starts; global to the JVM.
        System.setProperty("zookeeper.forceSync", "no");
        System.setProperty("znode.container.checkIntervalMs", "1000");
        System.setProperty("zookeeper.admin.enableServer", "false");
        System.setProperty("zookeeper.jmx.log4j.disable", "true");
    }

    private final ZooKeeperServerEmbedded server;
    private final Path baseDir;
    private final String connectString;

    private EmbeddedZooKeeper(ZooKeeperServerEmbedded server, Path baseDir, String connectString) {
        this.server = server;
        this.baseDir = baseDir;
        this.connectString = connectString;
    }

    static EmbeddedZooKeeper start(String name) throws Exception {
        Path baseDir = Files.createTempDirectory(CompatTarget.logDir(), CompatTarget.safeName(name) + "-zk-");
        Exception last = null;
        for (int attempt = 0; attempt < 3; attempt++) {
            int port = freePort();
            Properties config = new Properties();
            config.setProperty("clientPort", Integer.toString(port));
            config.setProperty("clientPortAddress", "127.0.0.1");
            config.setProperty("tickTime", "2000");
            config.setProperty("initLimit", "10");
            config.setProperty("syncLimit", "5");
            config.setProperty("dataDir", baseDir.resolve("data").toString());
            config.setProperty("admin.enableServer", "false");
            config.setProperty("4lw.commands.whitelist", "*");
            ZooKeeperServerEmbedded server = ZooKeeperServerEmbedded.builder()
                    .baseDir(baseDir)
                    .configuration(config)
                    .exitHandler(ExitHandler.LOG_ONLY)
                    .build();
            try {
                server.start(15_000);
                return new EmbeddedZooKeeper(server, baseDir, "127.0.0.1:" + port);
            } catch (Exception e) {
                // Most likely the free port was taken in between; try another one.
                last = e;
                server.close();
            }
        }
        throw new IllegalStateException("cannot start embedded ZooKeeper", last);
    }

    static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            socket.setReuseAddress(true);
            return socket.getLocalPort();
        }
    }

    @Override
    public String connectString() {
        return connectString;
    }

    @Override
    public String describe() {
        return "embedded Apache ZooKeeper (" + connectString + "), dataDir " + baseDir;
    }

    @Override
    public Optional<String> problem() {
        return Optional.empty();
    }

    @Override
    public String recentLog() {
        return "(embedded ZooKeeper logs through slf4j; raise -Dorg.slf4j.simpleLogger.defaultLogLevel)";
    }

    @Override
    public void close() {
        server.close();
        try (Stream<Path> files = Files.walk(baseDir)) {
            files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // Best effort: it is under target/.
        }
    }
}
