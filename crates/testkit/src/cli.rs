//! Running the `casecast` binary in tests: a clean environment, one-shot commands with what
//! they printed, and `serve` and `worker` processes that are killed when dropped. The binary's
//! path comes from the calling test crate (`env!("CARGO_BIN_EXE_casecast")`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The binary with `--db URL` (when given), none of the caller's `CASECAST_*` settings, and a
/// temporary working folder (a stray default `casecast.db` must not land in the repository).
pub fn command(bin: &str, url: Option<&str>) -> Command {
    let mut cmd = Command::new(bin);
    for var in [
        "CASECAST_DB",
        "CASECAST_LISTEN",
        "CASECAST_LOG",
        "CASECAST_LOG_FORMAT",
        "CASECAST_SECURE_COOKIES",
        "CASECAST_ALLOW_GATEWAY_HOSTS",
        "NO_COLOR",
    ] {
        cmd.env_remove(var);
    }
    cmd.current_dir(std::env::temp_dir());
    cmd.env_remove("CASECAST_KEY_FILE");
    cmd.env_remove("CASECAST_PUBLIC_URL");
    cmd.env("CASECAST_SECRET_KEY", crate::TEST_SECRET_KEY);
    if let Some(url) = url {
        cmd.arg("--db").arg(url);
    }
    cmd
}

/// What `serve` and `worker` are given in tests unless a test says otherwise: the fake
/// gateways listen on loopback, which gateways may not reach without it.
pub const ALLOW_LOOPBACK: [&str; 2] = ["--allow-gateway-host", "127.0.0.1"];

/// What a finished command left behind.
pub struct Run {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "casecast {}\n  status: {}\n  stdout: {:?}\n  stderr: {:?}",
            self.args.join(" "),
            self.status,
            self.stdout,
            self.stderr
        )
    }
}

impl Run {
    /// Asserts exit 0; returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert!(self.status.success(), "expected success:\n{self:?}");
        &self.stdout
    }

    /// Asserts a non-zero exit, nothing on stdout, and exactly one stderr line that starts with
    /// `error: ` and contains every needle; returns that line.
    #[track_caller]
    pub fn fails(&self, needles: &[&str]) -> &str {
        assert!(
            self.status.code().is_some_and(|c| c != 0),
            "expected a non-zero exit code:\n{self:?}"
        );
        assert!(self.stdout.is_empty(), "expected no stdout:\n{self:?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one stderr line:\n{self:?}");
        let line = lines[0];
        assert!(line.starts_with("error: "), "expected 'error: ':\n{self:?}");
        for needle in needles {
            assert!(
                line.contains(needle),
                "expected {needle:?} in the error:\n{self:?}"
            );
        }
        line
    }
}

/// Runs a command to its end off the async runtime, writing `stdin` (then closing it) if given.
pub async fn run(mut cmd: Command, args: &[&str], stdin: Option<&str>) -> Run {
    cmd.args(args);
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let stdin = stdin.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starting casecast");
        if let Some(text) = stdin {
            // The command may refuse its arguments before it reads: a broken pipe is fine.
            let _ = child.stdin.take().unwrap().write_all(text.as_bytes());
        }
        let out = child.wait_with_output().expect("waiting for casecast");
        Run {
            args,
            status: out.status,
            stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
            stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
        }
    })
    .await
    .unwrap()
}

/// A running `casecast serve`; killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: tempfile::NamedTempFile,
}

impl Server {
    /// Starts `casecast --db URL serve --listen 127.0.0.1:0 EXTRA…` and waits (up to a minute)
    /// for its ready line.
    pub async fn start(bin: &str, url: &str, extra: &[&str]) -> Server {
        Server::start_with_env(bin, url, extra, &[]).await
    }

    /// [`Server::start`] with these environment variables set for the server.
    pub async fn start_with_env(
        bin: &str,
        url: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let args: Vec<&str> = ALLOW_LOOPBACK.iter().chain(extra).copied().collect();
        Server::start_exactly(bin, url, &args, env).await
    }

    /// Starts `casecast --db URL serve --listen 127.0.0.1:0 ARGS…` with these environment
    /// variables, without [`ALLOW_LOOPBACK`].
    pub async fn start_exactly(
        bin: &str,
        url: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let mut child = command(bin, Some(url))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .expect("starting casecast serve");
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        // Keeps reading, so that the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut server = Server {
            child,
            base: String::new(),
            lines,
            stderr,
        };
        let ready = server
            .wait_for_line(|l| l.contains("is ready at http://"))
            .await;
        let addr = ready
            .split("http://")
            .nth(1)
            .and_then(|s| s.split('/').next())
            .unwrap()
            .to_string();
        server.base = format!("http://{addr}");
        server
    }

    /// Waits up to a minute for a stdout line that satisfies `ok`.
    pub async fn wait_for_line(&mut self, ok: impl Fn(&str) -> bool) -> String {
        for _ in 0..600 {
            if let Some(line) = self.lines.lock().unwrap().iter().find(|l| ok(l)) {
                return line.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("serve exited ({status}): {}", self.stderr());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "serve printed no such line; stdout: {:?}; stderr: {}",
            self.lines.lock().unwrap(),
            self.stderr()
        );
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as `kill -9` does; waits for the process to be gone.
    pub fn kill(&mut self) {
        self.child.kill().expect("killing serve");
        self.child.wait().unwrap();
    }

    /// SIGTERM; waits up to 30 s for the process to end and returns how it ended.
    pub async fn terminate(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("serve did not stop within 30 s of SIGTERM");
    }

    /// What it wrote on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A running `casecast worker`; killed when dropped.
pub struct Worker {
    child: Child,
    stderr: tempfile::NamedTempFile,
}

impl Worker {
    /// Starts `casecast --db URL worker` with these environment variables (logging at `warn`
    /// unless `CASECAST_LOG` is among them).
    pub fn start(bin: &str, url: &str, env: &[(&str, &str)]) -> Worker {
        Worker::start_with(bin, url, &[], env)
    }

    /// [`Worker::start`] with these arguments after `worker` (and [`ALLOW_LOOPBACK`]).
    pub fn start_with(bin: &str, url: &str, args: &[&str], env: &[(&str, &str)]) -> Worker {
        let args: Vec<&str> = ALLOW_LOOPBACK.iter().chain(args).copied().collect();
        Worker::start_exactly(bin, url, &args, env)
    }

    /// `casecast --db URL worker ARGS…` with these environment variables, without
    /// [`ALLOW_LOOPBACK`].
    pub fn start_exactly(bin: &str, url: &str, args: &[&str], env: &[(&str, &str)]) -> Worker {
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let child = command(bin, Some(url))
            .arg("worker")
            .args(args)
            .env("CASECAST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .expect("starting casecast worker");
        Worker { child, stderr }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as `kill -9` does; waits for the process to be gone.
    pub fn kill(&mut self) {
        self.child.kill().expect("killing the worker");
        self.child.wait().unwrap();
    }

    /// Panics, with what it logged, if the worker has exited.
    pub fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the worker exited ({status}): {}", self.stderr());
        }
    }

    /// What it wrote on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
