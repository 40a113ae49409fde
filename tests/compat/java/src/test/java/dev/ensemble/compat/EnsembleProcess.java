package dev.ensemble.compat;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * {@code $ENSEMBLE_BIN local} as a child process: with {@code COMPAT_MEMBERS} unset or 1, a single
 * in-memory member on a free port of 127.0.0.1; with N > 1, N member processes on consecutive free
 * ports, the connection string naming all of them. Its first stdout line is the connection string;
 * its stderr goes to a file under {@code compat.logdir} that failure reports quote.
 */
final class EnsembleProcess implements CompatTarget {

    private static final long STARTUP_TIMEOUT_MS = 20_000;
    private static final long STOP_TIMEOUT_MS = 5_000;

    private final Process process;
    private final String connectString;
    private final Path stderr;
    private final Path stdout;
    private volatile boolean closing;

    private EnsembleProcess(Process process, String connectString, Path stderr, Path stdout) {
        this.process = process;
        this.connectString = connectString;
        this.stderr = stderr;
        this.stdout = stdout;
    }

    /** The binary under test: system property {@code ensemble.bin}, else env {@code ENSEMBLE_BIN}. */
    static Path binary() {
        String bin = System.getProperty("ensemble.bin");
        if (bin == null || bin.isBlank() || bin.startsWith("${")) {
            bin = System.getenv("ENSEMBLE_BIN");
        }
        if (bin == null || bin.isBlank()) {
            throw new IllegalStateException(
                    "ENSEMBLE_BIN is not set: run scripts/compat-java.sh with ENSEMBLE_BIN=/path/to/ensemble"
                            + " (or pass -Densemble.bin=...)");
        }
        Path path = Path.of(bin).toAbsolutePath();
        if (!Files.isRegularFile(path) || !Files.isExecutable(path)) {
            throw new IllegalStateException("ENSEMBLE_BIN=" + bin + " is not an executable file");
        }
        return path;
    }

    /** The ensemble size under test: env {@code COMPAT_MEMBERS}, default 1. */
    static int members() {
        String members = System.getenv("COMPAT_MEMBERS");
        return members == null || members.isBlank() ? 1 : Integer.parseInt(members.trim());
    }

    private static List<String> command() throws IOException {
        int members = members();
        if (members == 1) {
            return List.of(binary().toString(), "local", "--members", "1", "--client-port", "0");
        }
        // One block for both: two blocks probed one after the other can overlap, since the
        // first is free again once probed (a CI run lost a member to that).
        int block = freePortBlock(2 * members);
        return List.of(binary().toString(), "local", "--members", Integer.toString(members),
                "--client-port", Integer.toString(block),
                "--peer-port", Integer.toString(block + members));
    }

    /**
     * The first of {@code n} consecutive ports that were all free on every address a moment ago,
     * chosen below the kernel's range of ephemeral ports: a port there is never handed to an
     * outgoing connection (such as one member dialling another) between the probe and the
     * member's bind, which a CI run lost a member to.
     */
    private static int freePortBlock(int n) throws IOException {
        int below = ephemeralPortsFrom();
        java.util.Random random = new java.util.Random();
        while (true) {
            int first = LOWEST_PROBED_PORT + random.nextInt(below - LOWEST_PROBED_PORT - n);
            List<java.net.ServerSocket> held = new java.util.ArrayList<>();
            try {
                for (int port = first; port < first + n; port++) {
                    held.add(new java.net.ServerSocket(port, 1));
                }
                return first;
            } catch (IOException taken) {
                // try another block
            } finally {
                for (java.net.ServerSocket socket : held) {
                    socket.close();
                }
            }
        }
    }

    /** Where {@link #freePortBlock} starts looking. */
    private static final int LOWEST_PROBED_PORT = 10000;

    /**
     * The first port of the kernel's ephemeral range, or Linux's default when it cannot be read
     * or leaves no room below. (Read by lines: {@code Files.readString} returned one stray
     * character for this procfs file on JDK 17.)
     */
    private static int ephemeralPortsFrom() {
        try {
            String range = Files.readAllLines(Path.of("/proc/sys/net/ipv4/ip_local_port_range")).get(0);
            int first = Integer.parseInt(range.trim().split("\\s+")[0]);
            return first > LOWEST_PROBED_PORT + 1000 ? first : 32768;
        } catch (IOException | RuntimeException unreadable) {
            return 32768;
        }
    }

    static EnsembleProcess start(String name) throws IOException, InterruptedException {
        Path dir = CompatTarget.logDir();
        String base = CompatTarget.safeName(name) + "-" + System.nanoTime();
        Path stderr = dir.resolve(base + ".ensemble.stderr.log");
        Path stdout = dir.resolve(base + ".ensemble.stdout.log");
        ProcessBuilder builder = new ProcessBuilder(command());
        builder.environment().putIfAbsent("RUST_BACKTRACE", "1");
        builder.redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
        builder.redirectError(stderr.toFile());
        builder.redirectOutput(ProcessBuilder.Redirect.PIPE);
        Process process = builder.start();

        BufferedReader reader = new BufferedReader(
                new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
        CompletableFuture<String> firstLine = new CompletableFuture<>();
        Thread pump = new Thread(() -> {
            try (OutputStream out = Files.newOutputStream(stdout)) {
                String line = reader.readLine();
                firstLine.complete(line);
                if (line == null) {
                    return;
                }
                out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
                while ((line = reader.readLine()) != null) {
                    out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
                    out.flush();
                }
            } catch (IOException e) {
                firstLine.completeExceptionally(e);
            }
        }, "ensemble-stdout-" + process.pid());
        pump.setDaemon(true);
        pump.start();

        String line;
        try {
            line = firstLine.get(STARTUP_TIMEOUT_MS, TimeUnit.MILLISECONDS);
        } catch (TimeoutException | ExecutionException e) {
            line = null;
        }
        EnsembleProcess ensemble = new EnsembleProcess(process, line == null ? "" : line.trim(), stderr, stdout);
        if (line == null || !line.trim().matches("[^\\s,]+:\\d+(,[^\\s,]+:\\d+)*")) {
            String why = process.isAlive()
                    ? "printed no connection string within " + STARTUP_TIMEOUT_MS + " ms"
                    : "exited with status " + process.exitValue() + " before printing a connection string";
            ensemble.close();
            throw new IllegalStateException("ensemble local " + why + " (first stdout line: " + line + ")\n"
                    + ensemble.recentLog());
        }
        return ensemble;
    }

    @Override
    public String connectString() {
        return connectString;
    }

    long pid() {
        return process.pid();
    }

    @Override
    public String describe() {
        return "ensemble local (pid " + process.pid() + ", " + connectString + "), stderr: " + stderr;
    }

    @Override
    public Optional<String> problem() {
        if (!closing && !process.isAlive()) {
            return Optional.of("the ensemble process (pid " + process.pid() + ") exited with status "
                    + process.exitValue() + " while the test ran");
        }
        return Optional.empty();
    }

    @Override
    public String recentLog() {
        String text = "--- " + stderr + " (last lines) ---\n" + tail(stderr, 60);
        try {
            List<String> out = Files.readAllLines(stdout, StandardCharsets.UTF_8);
            if (out.size() > 1) {
                text += "\n--- " + stdout + " (last lines) ---\n" + tail(stdout, 30);
            }
        } catch (IOException ignored) {
            // Only stderr, then.
        }
        return text;
    }

    static String tail(Path file, int lines) {
        try {
            List<String> all = Files.readAllLines(file, StandardCharsets.UTF_8);
            List<String> last = all.subList(Math.max(0, all.size() - lines), all.size());
            return last.isEmpty() ? "(empty)" : String.join("\n", last);
        } catch (IOException e) {
            return "(cannot read " + file + ": " + e + ")";
        }
    }

    /** SIGTERM, then SIGKILL if the process has not exited within a few seconds. */
    @Override
    public void close() {
        closing = true;
        if (!process.isAlive()) {
            return;
        }
        process.destroy();
        try {
            if (!process.waitFor(STOP_TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
                process.destroyForcibly();
                process.waitFor(STOP_TIMEOUT_MS, TimeUnit.MILLISECONDS);
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }
}
