//! What the benchmarks share: the database and its key, the `casecast` processes they start,
//! the child processes of this program that measure one part alone, and the readings of
//! memory and CPU from `/proc` (Linux).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use casecast_core::{CountryCode, ProjectSlug, TimeZoneName};
use casecast_store::case_import::ImportReport;
use casecast_store::projects::{NewProject, Project};
use casecast_store::sealed::{self, SecretKey};
use casecast_store::Db;

/// What every benchmark is given: the database, the key that seals its gateway credentials,
/// and, for those that start it, the `casecast` binary.
pub struct Bench {
    url: String,
    key: SecretKey,
    casecast: Option<PathBuf>,
}

impl Bench {
    /// The key is `secret_key` (64 hex digits) when given, else the one in `key_file` (by
    /// default `casecast.key` beside a SQLite database file), created when missing, as
    /// `casecast` does. The processes started get this key. `casecast` is the binary's path (see
    /// [`casecast_binary`]), for benchmarks that start it.
    pub fn new(
        url: String,
        secret_key: Option<&str>,
        key_file: Option<PathBuf>,
        casecast: Option<PathBuf>,
    ) -> anyhow::Result<Bench> {
        let key = match secret_key {
            Some(hex) => SecretKey::from_hex(hex)
                .map_err(|e| anyhow!("--secret-key (CASECAST_SECRET_KEY): {e}"))?,
            None => {
                let path = key_file.unwrap_or_else(|| sealed::default_key_file(&url));
                let (key, created) =
                    sealed::read_or_create_key_file(&path).map_err(|e| anyhow!(e))?;
                if created {
                    eprintln!(
                        "created a new secret key for gateway credentials in {} (keep it with the database)",
                        path.display()
                    );
                }
                key
            }
        };
        Ok(Bench { url, key, casecast })
    }

    /// Opens (and migrates) the database with the key; refuses one sealed with another key.
    pub async fn open(&self) -> anyhow::Result<Db> {
        let db = Db::open(&self.url)
            .await
            .map_err(|e| anyhow!("cannot open the database: {e}"))?
            .with_secret_key(self.key.clone());
        db.check_secret_key().await?;
        Ok(db)
    }

    /// `casecast --db URL ARGS…` with this benchmark's key, logging `log` on stderr, its
    /// stdout piped.
    fn casecast(&self, args: &[&str], log: &str) -> anyhow::Result<Command> {
        self.casecast_limited(None, args, log)
    }

    /// [`Bench::casecast`], run under `ulimit -n NOFILE` when given.
    fn casecast_limited(
        &self,
        nofile: Option<u32>,
        args: &[&str],
        log: &str,
    ) -> anyhow::Result<Command> {
        let casecast = self
            .casecast
            .as_ref()
            .context("this benchmark was not given the casecast binary")?;
        let mut cmd = match nofile {
            None => Command::new(casecast),
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(casecast);
                sh
            }
        };
        cmd.arg("--db")
            .arg(&self.url)
            .args(args)
            .env("CASECAST_SECRET_KEY", self.key.to_hex())
            .env("CASECAST_LOG", log)
            .stdout(Stdio::piped());
        Ok(cmd)
    }

    /// `casecast --db URL ARGS…` with this benchmark's key, for a command that runs and ends
    /// (its output captured by the caller).
    pub fn casecast_command(&self, args: &[&str]) -> anyhow::Result<Command> {
        self.casecast(args, "warn")
    }

    /// Starts `casecast serve` on a free loopback port; returns it and its base URL.
    pub fn start_server(&self) -> anyhow::Result<(Process, String)> {
        self.start_server_with(None, &[])
    }

    /// [`Bench::start_server`] with the server's open files limited to `nofile` when given,
    /// and these flags of `serve` besides.
    pub fn start_server_with(
        &self,
        nofile: Option<u32>,
        flags: &[String],
    ) -> anyhow::Result<(Process, String)> {
        // The benchmarks' gateways are sinks on loopback.
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--allow-gateway-host",
            "127.0.0.1",
        ];
        args.extend(flags.iter().map(String::as_str));
        let mut cmd = self.casecast_limited(nofile, &args, "warn")?;
        cmd.stderr(Stdio::inherit());
        let (server, ready) = Process::start(cmd, "casecast serve")?;
        let base = ready
            .split("http://")
            .nth(1)
            .and_then(|s| s.split('/').next())
            .with_context(|| format!("no address in casecast serve's {ready:?}"))?;
        Ok((server, format!("http://{base}")))
    }

    /// Starts `casecast worker`, its log (a line per message handed over) written to `log`.
    pub fn start_worker(&self, log: &Path) -> anyhow::Result<Process> {
        let mut cmd = self.casecast(
            &["worker", "--allow-gateway-host", "127.0.0.1"],
            "warn,casecast_gateways=info",
        )?;
        cmd.stderr(std::fs::File::create(log)?);
        let (worker, ready) = Process::start(cmd, "casecast worker")?;
        if !ready.contains("ready") {
            bail!("the worker said {ready:?}");
        }
        Ok(worker)
    }

    /// Runs a measured part (a hidden subcommand of this program, `args`) in a child process,
    /// so that the peak memory it reports is its own; returns what it printed.
    pub fn measure(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(std::env::current_exe().context("finding this program")?)
            .arg("--db")
            .arg(&self.url)
            .args(args)
            .env("CASECAST_SECRET_KEY", self.key.to_hex())
            .output()
            .with_context(|| format!("running {}", args[0]))?;
        if !out.status.success() {
            bail!(
                "{} failed: {}",
                args[0],
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// `--casecast PATH`, else `casecast` in this program's folder (the same target folder); an
/// error when there is no such file.
pub fn casecast_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(path) => path,
        None => std::env::current_exe()
            .context("finding this program")?
            .with_file_name(format!("casecast{}", std::env::consts::EXE_SUFFIX)),
    };
    if !path.is_file() {
        bail!(
            "no casecast binary at {}: build it (`cargo build --release -p casecast`) or give its \
             path with --casecast",
            path.display()
        );
    }
    Ok(path)
}

/// A child process that is stopped (SIGTERM, by its process id) and waited for when dropped.
pub struct Process {
    child: Child,
}

impl Process {
    /// Starts `cmd` (its stdout piped) and waits for the first line it prints, which says that
    /// it is ready.
    fn start(mut cmd: Command, what: &str) -> anyhow::Result<(Process, String)> {
        let mut child = cmd.spawn().with_context(|| format!("starting {what}"))?;
        let stdout = child.stdout.take().context("the child's output")?;
        // From here on, dropping the value stops the process.
        let process = Process { child };
        let ready = BufReader::new(stdout)
            .lines()
            .next()
            .with_context(|| format!("{what} printed no ready line"))??;
        Ok((process, ready))
    }

    /// The process's peak resident memory so far, in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        vm_hwm_mib(&format!("/proc/{}/status", self.child.id()))
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// A new project `bench-…` (time zone Africa/Kampala, country UG).
pub async fn new_project(db: &Db) -> anyhow::Result<Project> {
    let slug = format!("bench-{}", casecast_store::secrets::random_hex(4));
    Ok(db
        .create_project(&NewProject {
            slug: ProjectSlug::parse(&slug)?,
            name: "Benchmark".into(),
            time_zone: TimeZoneName::parse("Africa/Kampala")?,
            country: Some(CountryCode::parse("UG")?),
        })
        .await?)
}

/// Imports a sheet of cases into the project `slug`, as `casecast cases import` does (streamed
/// from the file).
pub async fn import_sheet(db: &Db, slug: &str, file: &Path) -> anyhow::Result<ImportReport> {
    use casecast_engine::import::{import_source, Source, FILE_LIMITS};
    let project = db
        .project_by_slug(slug)
        .await
        .with_context(|| format!("project '{slug}'"))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    import_source(
        db,
        project.id,
        project.country_code(),
        Source::File(file.to_path_buf()),
        &name,
        FILE_LIMITS,
        &|_| {},
    )
    .await
    .map_err(|e| anyhow!("{e}"))
}

/// Imports the sheets into the project `slug`, as the `import` benchmark does; returns the
/// seconds and CPU seconds it took.
pub async fn import_files(
    db: &Db,
    slug: &str,
    files: &[PathBuf],
    rows: usize,
) -> anyhow::Result<(f64, f64)> {
    let watch = Stopwatch::start();
    let mut created = 0;
    for file in files {
        let report = import_sheet(db, slug, file).await?;
        if !report.errors.is_empty() || report.created != report.rows {
            bail!(
                "{}: expected {} created cases, got {} ({} errors)",
                file.display(),
                report.rows,
                report.created,
                report.errors.len()
            );
        }
        created += report.created;
    }
    let secs = (watch.secs(), watch.cpu_secs());
    if created != rows {
        bail!("{rows} rows were to be imported into {slug}, {created} were");
    }
    Ok(secs)
}

/// Wall-clock and CPU time of this process since [`Stopwatch::start`].
pub struct Stopwatch {
    started: Instant,
    cpu: Option<f64>,
}

impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch {
            started: Instant::now(),
            cpu: cpu_seconds(),
        }
    }

    /// Seconds since the start.
    pub fn secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// CPU seconds (user and system) this process used since the start; NaN when unknown.
    pub fn cpu_secs(&self) -> f64 {
        cpu_seconds().zip(self.cpu).map_or(f64::NAN, |(b, a)| b - a)
    }
}

/// Peak resident memory of this process, in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    vm_hwm_mib("/proc/self/status")
}

/// `VmHWM` of a `/proc/…/status` file, in MiB.
fn vm_hwm_mib(status: &str) -> Option<f64> {
    status_mib(status, "VmHWM:")
}

/// A field of a `/proc/…/status` file given in kB (`VmRSS:`, `VmHWM:`), in MiB.
pub fn status_mib(status: &str, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(status).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Restarts the peak-memory count of this process (Linux 4.0+), so that a peak read later
/// covers only what follows.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU time (user and system) this process has used, in seconds.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    stat_cpu_seconds(&stat).map(|(_, secs)| secs)
}

/// The command name and CPU seconds (user and system) in a `/proc/PID/stat` text. Clock ticks
/// are taken as 100 a second, as on Linux.
pub fn stat_cpu_seconds(stat: &str) -> Option<(&str, f64)> {
    // `PID (COMM) STATE …`: the name, which may hold spaces, is between the first `(` and the
    // last `)`.
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((&stat[open + 1..close], (utime + stime) / 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_name_and_cpu_of_a_stat_line() {
        let stat =
            "4242 (casecast (x) y) S 1 4242 4242 0 -1 4194560 2019 0 0 0 250 75 0 0 20 0 9 0 1234 \
                    1000000 500 18446744073709551615";
        assert_eq!(stat_cpu_seconds(stat), Some(("casecast (x) y", 3.25)));
        assert_eq!(stat_cpu_seconds("4242 (cut"), None);
        assert!(cpu_seconds().is_some_and(|s| s >= 0.0));
        assert!(peak_rss_mib().is_some_and(|m| m > 0.0));
    }

    #[test]
    fn the_casecast_binary_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("casecast");
        let err = casecast_binary(Some(missing.clone())).unwrap_err();
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
        std::fs::write(&missing, "").unwrap();
        assert_eq!(casecast_binary(Some(missing.clone())).unwrap(), missing);
    }
}
