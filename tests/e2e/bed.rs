//! The test bed as the tests see it: `scripts/testbed env` read once, `kubectl` and `helm` run
//! as a user would run them, a kube client, and a way to run code inside the test bed's network
//! namespace (where pod and Service addresses are reachable).

use std::ffi::OsStr;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

pub struct Bed {
    pub repo: PathBuf,
    pub kubeconfig: PathBuf,
    /// `PATH` with the test bed's kubectl and helm first.
    pub path: String,
    pub netns: String,
}

/// The running test bed; panics with what to do when it is not up.
pub fn bed() -> &'static Bed {
    static BED: OnceLock<Bed> = OnceLock::new();
    BED.get_or_init(|| {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(repo.join("scripts/testbed"))
            .arg("env")
            .output()
            .expect("running scripts/testbed env");
        assert!(
            out.status.success(),
            "the test bed is not up: run these tests with scripts/e2e, or start it with \
             `scripts/testbed up` first ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let env = String::from_utf8_lossy(&out.stdout);
        let value = |name: &str| -> String {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .map(|v| {
                    // `'/a:/b:'"$PATH"` or `'/x'`: the quoted part, then the inherited PATH.
                    let v = v.trim_start_matches('\'');
                    let (quoted, rest) = v.split_once('\'').unwrap_or((v, ""));
                    let inherit = if rest.contains("$PATH") {
                        std::env::var("PATH").unwrap_or_default()
                    } else {
                        String::new()
                    };
                    format!("{quoted}{inherit}")
                })
                .unwrap_or_else(|| panic!("scripts/testbed env printed no {name}: {env}"))
        };
        Bed {
            kubeconfig: PathBuf::from(value("KUBECONFIG")),
            path: value("PATH"),
            netns: value("TESTBED_NETNS"),
            repo,
        }
    })
}

impl Bed {
    pub fn repo_path(&self, relative: &str) -> PathBuf {
        self.repo.join(relative)
    }

    /// A command with the test bed's PATH and KUBECONFIG, run from the repository's root.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("PATH", &self.path)
            .env("KUBECONFIG", &self.kubeconfig)
            .current_dir(&self.repo);
        cmd
    }

    /// Runs `kubectl ARGS` (with STDIN if given) and returns its output, whatever its exit status.
    pub fn kubectl_output<S: AsRef<OsStr>>(&self, args: &[S], stdin: Option<&str>) -> Ran {
        run(self.command("kubectl"), args, stdin)
    }

    /// Runs `kubectl ARGS` and panics with its stderr unless it succeeds; returns stdout.
    pub fn kubectl<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        self.kubectl_output(args, None).success()
    }

    /// `kubectl ARGS` with YAML on stdin (`-f -` is the caller's to pass).
    pub fn kubectl_stdin<S: AsRef<OsStr>>(&self, args: &[S], input: &str) -> Ran {
        self.kubectl_output(args, Some(input))
    }

    pub fn helm<S: AsRef<OsStr>>(&self, args: &[S]) -> Ran {
        run(self.command("helm"), args, None)
    }

    pub async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.kubeconfig.display()));
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("a client configuration from the test bed's kubeconfig");
        Client::try_from(config).expect("a kube client")
    }

    /// Runs the future made by `make` on a thread that has joined the test bed's network
    /// namespace, with a runtime of its own, so every socket it opens is inside: pod IPs and
    /// Service ClusterIPs are reachable as from the node. Needs root, as the test bed does.
    pub fn in_netns<F, Fut, T>(&self, make: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        self.spawn_in_netns(make)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// [`Bed::in_netns`] on a thread of its own, without waiting for it.
    pub fn spawn_in_netns<F, Fut, T>(&self, make: F) -> std::thread::JoinHandle<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        let path = Path::new("/var/run/netns").join(&self.netns);
        std::thread::spawn(move || {
            join_netns(&path);
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime inside the network namespace")
                .block_on(make())
        })
    }
}

fn join_netns(path: &Path) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e} (is the test bed up?)", path.display()));
    // SAFETY: setns on a valid namespace file descriptor changes only this thread's namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "setns into {}: {} (the e2e tests need root)",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// A finished command: what it was, and what it printed.
pub struct Ran {
    pub what: String,
    pub output: Output,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.output.status.success()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    /// stdout, or a panic that shows the command and its stderr.
    pub fn success(self) -> String {
        assert!(
            self.ok(),
            "`{}` failed ({}):\n{}{}",
            self.what,
            self.output.status,
            self.stderr(),
            self.stdout()
        );
        self.stdout()
    }
    /// stderr of a command that must fail, or a panic showing that it succeeded.
    pub fn failure(self) -> String {
        assert!(
            !self.ok(),
            "`{}` succeeded but should have failed:\n{}",
            self.what,
            self.stdout()
        );
        self.stderr()
    }
}

fn run<S: AsRef<OsStr>>(mut cmd: Command, args: &[S], stdin: Option<&str>) -> Ran {
    cmd.args(args);
    let what = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        args.iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting `{what}`: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .unwrap_or_else(|e| panic!("writing to `{what}`: {e}"));
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for `{what}`: {e}"));
    Ran { what, output }
}
