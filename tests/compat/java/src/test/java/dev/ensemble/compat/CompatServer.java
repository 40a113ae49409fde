package dev.ensemble.compat;

import java.util.Optional;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.LifecycleMethodExecutionExceptionHandler;
import org.junit.jupiter.api.extension.TestExecutionExceptionHandler;

/**
 * JUnit 5 extension: a fresh server for every test (an {@code ensemble local} child process, or
 * embedded Apache ZooKeeper with {@code -Dcompat.target=zookeeper}), stopped after it.
 *
 * <pre>
 * &#64;RegisterExtension final CompatServer server = new CompatServer();
 * ... Zk.connect(server.connectString()) ...
 * </pre>
 *
 * A failing test gets the server's recent stderr attached (as a suppressed exception, so it shows
 * in the surefire report). A server that dies during a test fails that test even if its
 * assertions passed.
 */
public final class CompatServer implements BeforeEachCallback, AfterEachCallback,
        TestExecutionExceptionHandler, LifecycleMethodExecutionExceptionHandler {

    private CompatTarget target;

    public String connectString() {
        if (target == null) {
            throw new IllegalStateException("the server is started before each test, not before");
        }
        return target.connectString();
    }

    /** The server's process id, when it is an {@code ensemble} process. */
    public Optional<Long> pid() {
        return target instanceof EnsembleProcess ? Optional.of(((EnsembleProcess) target).pid()) : Optional.empty();
    }

    public boolean isEnsemble() {
        return target instanceof EnsembleProcess;
    }

    @Override
    public void beforeEach(ExtensionContext context) throws Exception {
        String name = context.getRequiredTestClass().getSimpleName() + "." + context.getRequiredTestMethod().getName();
        target = CompatTarget.start(name);
    }

    @Override
    public void afterEach(ExtensionContext context) {
        CompatTarget running = target;
        target = null;
        if (running == null) {
            return;
        }
        Optional<String> problem = running.problem();
        String log = problem.isPresent() ? running.recentLog() : "";
        running.close();
        if (problem.isPresent()) {
            throw new AssertionError(problem.get() + "\n" + running.describe() + "\n" + log);
        }
    }

    @Override
    public void handleTestExecutionException(ExtensionContext context, Throwable failure) throws Throwable {
        throw attachDiagnostics(failure);
    }

    @Override
    public void handleBeforeEachMethodExecutionException(ExtensionContext context, Throwable failure)
            throws Throwable {
        throw attachDiagnostics(failure);
    }

    @Override
    public void handleAfterEachMethodExecutionException(ExtensionContext context, Throwable failure)
            throws Throwable {
        throw attachDiagnostics(failure);
    }

    private Throwable attachDiagnostics(Throwable failure) {
        if (target != null) {
            StringBuilder text = new StringBuilder("server: ").append(target.describe());
            target.problem().ifPresent(p -> text.append("\n").append(p));
            text.append("\n").append(target.recentLog());
            failure.addSuppressed(new ServerDiagnostics(text.toString()));
        }
        return failure;
    }

    /** Carries the server's log into a failure report; its own stack trace says nothing. */
    static final class ServerDiagnostics extends RuntimeException {
        private static final long serialVersionUID = 1L;

        ServerDiagnostics(String message) {
            super(message, null, false, false);
        }
    }
}
