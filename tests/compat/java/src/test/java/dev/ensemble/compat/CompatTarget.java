package dev.ensemble.compat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Optional;

/**
 * A running ZooKeeper-compatible server the tests connect to: an {@code ensemble local} child
 * process ({@link EnsembleProcess}) or, for checking the tests themselves against the reference
 * implementation, Apache ZooKeeper embedded in this JVM ({@link EmbeddedZooKeeper}).
 */
interface CompatTarget extends AutoCloseable {

    /** {@code host:port} for ZooKeeper clients. */
    String connectString();

    /** One line naming the server and where its logs are. */
    String describe();

    /** Why the server is no longer healthy (for example, the process exited), if it is not. */
    Optional<String> problem();

    /** The server's recent log output, for failure reports. */
    String recentLog();

    @Override
    void close();

    /** Which server the client tests run against: system property {@code compat.target}. */
    static String targetKind() {
        String kind = System.getProperty("compat.target", "ensemble").trim().toLowerCase(Locale.ROOT);
        return kind.isEmpty() ? "ensemble" : kind;
    }

    /** Starts the server the suite targets; {@code name} keys its log files. */
    static CompatTarget start(String name) throws Exception {
        switch (targetKind()) {
            case "ensemble":
                return EnsembleProcess.start(name);
            case "zookeeper":
                return EmbeddedZooKeeper.start(name);
            default:
                throw new IllegalArgumentException(
                        "compat.target must be 'ensemble' or 'zookeeper', not '" + targetKind() + "'");
        }
    }

    /** Directory for server logs and data: system property {@code compat.logdir}. */
    static Path logDir() throws IOException {
        String dir = System.getProperty("compat.logdir");
        Path path = Path.of(dir == null || dir.isBlank() ? "target/compat-logs" : dir);
        Files.createDirectories(path);
        return path.toAbsolutePath();
    }

    /** A file-name-safe form of a test name. */
    static String safeName(String name) {
        return name.replaceAll("[^A-Za-z0-9._-]", "_");
    }
}
