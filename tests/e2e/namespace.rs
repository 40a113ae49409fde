//! One namespace per test, deleted when the test ends. When the test fails (the guard is dropped
//! while panicking), what is needed to understand why is kept first: the namespace's objects,
//! events, pod descriptions and logs, and the operator's logs, in
//! `$E2E_LOG_DIR/<namespace>/` (default `target/e2e-logs/`), and a summary on stderr.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use super::bed::{bed, Bed};
use super::operator::OPERATOR_NAMESPACES;

pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    /// A new namespace `e2e-<purpose>-<suffix>`.
    pub fn create(purpose: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("a clock after 1970")
            .subsec_nanos();
        let name = format!("e2e-{purpose}-{:05x}", nanos & 0xfffff);
        bed().kubectl(&["create", "namespace", &name]);
        Self { name }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let bed = bed();
        if std::thread::panicking() {
            dump_diagnostics(bed, &self.name);
        }
        if std::env::var_os("E2E_KEEP_NAMESPACES").is_none() {
            // Not waited for: the next test does not need it gone, and `scripts/e2e` tears the
            // whole test bed down at the end.
            let _ = bed.kubectl_output(&["delete", "namespace", &self.name, "--wait=false"], None);
        }
    }
}

pub fn log_dir() -> PathBuf {
    std::env::var_os("E2E_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| bed().repo_path("target/e2e-logs"))
}

/// Writes what a person needs to see why a test failed in this namespace.
pub fn dump_diagnostics(bed: &Bed, namespace: &str) {
    let dir = log_dir().join(namespace);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("e2e: cannot create {}: {e}", dir.display());
        return;
    }
    let save = |file: &str, args: &[&str]| {
        let ran = bed.kubectl_output(args, None);
        let text = format!("$ {}\n{}{}", ran.what, ran.stdout(), ran.stderr());
        let _ = std::fs::write(dir.join(file), &text);
        text
    };
    let objects = save(
        "objects.txt",
        &[
            "get",
            "coordinationclusters,statefulsets,pods,services,poddisruptionbudgets,configmaps,secrets,persistentvolumeclaims,persistentvolumes",
            "-n",
            namespace,
            "-o",
            "wide",
        ],
    );
    let events = save(
        "events.txt",
        &["get", "events", "-n", namespace, "--sort-by=.lastTimestamp"],
    );
    save(
        "clusters.yaml",
        &["get", "coordinationclusters", "-n", namespace, "-o", "yaml"],
    );
    save("pods.txt", &["describe", "pods", "-n", namespace]);
    save(
        "pod-logs.txt",
        &[
            "logs",
            "-n",
            namespace,
            "--all-containers",
            "--prefix",
            "--tail=500",
            "-l",
            "app.kubernetes.io/name=ensemble",
        ],
    );
    save(
        "pod-logs-previous.txt",
        &[
            "logs",
            "-n",
            namespace,
            "--all-containers",
            "--prefix",
            "--previous",
            "--tail=500",
            "-l",
            "app.kubernetes.io/name=ensemble",
        ],
    );
    for operator_ns in OPERATOR_NAMESPACES {
        save(
            &format!("operator-{operator_ns}.txt"),
            &[
                "logs",
                "-n",
                operator_ns,
                "--all-containers",
                "--prefix",
                "--tail=500",
                "-l",
                "app.kubernetes.io/name=ensemble-operator",
            ],
        );
    }
    eprintln!(
        "e2e: the test failed in namespace {namespace}; objects, events, pod and operator logs are in {}\n{objects}\n{events}",
        dir.display()
    );
}
