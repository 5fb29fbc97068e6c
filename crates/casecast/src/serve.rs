//! `serve` and `worker`: the long-running processes.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use casecast_core::gateway::address::{AddressPolicy, AllowEntry, BadAllowEntry};
use casecast_engine::clock::{ScaledClock, SharedClock};
use casecast_engine::faults::{Fault, Faults};
use casecast_engine::permits::Permits;
use casecast_engine::supervise::{supervise, Health};
use casecast_engine::worker::{run_worker, WorkerContext};
use casecast_engine::{run_dispatcher, DispatchOptions};
use casecast_store::Db;
use casecast_web::{AppState, ServerLimits, WebConfig};
use clap::Args;
use tokio::sync::watch;

use crate::admin::open;
use crate::config::Config;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CASECAST_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Create (idempotently) the demo project, an admin login, 500 demo cases.
    #[arg(long)]
    demo: bool,
    /// Mark cookies Secure: set this when users reach Casecast over HTTPS.
    #[arg(long, env = "CASECAST_SECURE_COOKIES")]
    secure_cookies: bool,
    /// The address at which SMS gateways reach this server, for their delivery-report and
    /// inbound URLs (default: http:// and the host a request to add a gateway came in by; the
    /// demo's gateway: http:// and the listen address).
    #[arg(long, env = "CASECAST_PUBLIC_URL")]
    public_url: Option<String>,
    /// Require this token (as `Authorization: Bearer TOKEN`) on `GET /metrics`.
    #[arg(long, env = "CASECAST_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Connections served at once; more wait until one closes (default: 1024, or the
    /// process's open-file limit less 64 when that is lower).
    #[arg(long, env = "CASECAST_MAX_CONNECTIONS", value_parser = positive::<usize>("CASECAST_MAX_CONNECTIONS"))]
    max_connections: Option<usize>,
    /// Seconds a connection may take to send a request's headers, counted from when it opened
    /// or its last response was sent: idle connections are closed after it.
    #[arg(long, env = "CASECAST_HEADER_TIMEOUT", default_value_t = 30, value_parser = positive::<u64>("CASECAST_HEADER_TIMEOUT"))]
    header_timeout: u64,
    /// Seconds a request's body may take to arrive in full (uploads included); then 408.
    #[arg(long, env = "CASECAST_BODY_TIMEOUT", default_value_t = 600, value_parser = positive::<u64>("CASECAST_BODY_TIMEOUT"))]
    body_timeout: u64,
    /// Sheets (uploads, case imports) parsed at once; an import beyond it waits a few
    /// seconds, then is answered 503.
    #[arg(long, env = "CASECAST_MAX_SHEET_PARSES", default_value_t = 2, value_parser = positive::<usize>("CASECAST_MAX_SHEET_PARSES"))]
    max_sheet_parses: usize,
    /// Passwords checked at once (each takes 19 MiB); a login beyond it waits a few seconds,
    /// then is answered 503 (default: twice the processor cores).
    #[arg(long, env = "CASECAST_MAX_PASSWORD_CHECKS", value_parser = positive::<usize>("CASECAST_MAX_PASSWORD_CHECKS"))]
    max_password_checks: Option<usize>,
    #[command(flatten)]
    run: RunArgs,
}

impl ServeArgs {
    /// The server's limits: the flags, else the defaults.
    fn limits(&self) -> ServerLimits {
        let defaults = ServerLimits::default();
        ServerLimits {
            max_connections: self.max_connections.unwrap_or_else(default_max_connections),
            header_timeout: Duration::from_secs(self.header_timeout),
            body_timeout: Duration::from_secs(self.body_timeout),
            max_sheet_parses: self.max_sheet_parses,
            max_password_checks: self
                .max_password_checks
                .unwrap_or(defaults.max_password_checks),
            busy_wait: defaults.busy_wait,
        }
    }
}

/// 1024 connections, or fewer when the process may not open that many files: its limit less
/// 64, left for the database, its own files and the gateways' connections (at least 16).
fn default_max_connections() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    limit.saturating_sub(64).clamp(16, 1024)
}

/// What `worker` takes.
#[derive(Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    run: RunArgs,
}

/// Settings of the background tasks that `serve` and `worker` share. None is advertised: the
/// dispatcher's tuning is for tests and experts (each also read from its `CASECAST_DISPATCH_*`
/// variable), and the test clock and fault points are for tests only.
#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// How long a claim holds its messages before another dispatcher may take them back (ms).
    #[arg(long, hide = true, env = "CASECAST_DISPATCH_LEASE_MS", value_parser = positive::<i64>("CASECAST_DISPATCH_LEASE_MS"))]
    dispatch_lease_ms: Option<i64>,
    /// How often the sweeper runs (ms).
    #[arg(long, hide = true, env = "CASECAST_DISPATCH_SWEEP_MS", value_parser = positive::<u64>("CASECAST_DISPATCH_SWEEP_MS"))]
    dispatch_sweep_ms: Option<u64>,
    /// The wait before the first retry (ms).
    #[arg(long, hide = true, env = "CASECAST_DISPATCH_RETRY_BASE_MS", value_parser = positive::<i64>("CASECAST_DISPATCH_RETRY_BASE_MS"))]
    dispatch_retry_base_ms: Option<i64>,
    /// The longest wait between attempts (ms).
    #[arg(long, hide = true, env = "CASECAST_DISPATCH_RETRY_MAX_MS", value_parser = positive::<i64>("CASECAST_DISPATCH_RETRY_MAX_MS"))]
    dispatch_retry_max_ms: Option<i64>,
    /// How often the gateway list is read again (ms).
    #[arg(long, hide = true, env = "CASECAST_DISPATCH_REFRESH_MS", value_parser = positive::<u64>("CASECAST_DISPATCH_REFRESH_MS"))]
    dispatch_refresh_ms: Option<u64>,
    /// Claim-send-record loops per process.
    #[arg(long, hide = true, env = "CASECAST_DISPATCH_LANES", value_parser = positive::<u64>("CASECAST_DISPATCH_LANES"))]
    dispatch_lanes: Option<u64>,
    /// Most messages per claim.
    #[arg(long, hide = true, env = "CASECAST_DISPATCH_BATCH", value_parser = positive::<u64>("CASECAST_DISPATCH_BATCH"))]
    dispatch_batch: Option<u64>,
    /// Let gateways reach this host, address or network (CIDR) although it is loopback,
    /// link-local or private, e.g. 127.0.0.1 for a Kannel smsbox on this machine; repeatable,
    /// or comma-separated in the variable. Every other such address is refused.
    #[arg(
        long = "allow-gateway-host",
        env = "CASECAST_ALLOW_GATEWAY_HOSTS",
        value_name = "HOST_OR_CIDR",
        value_delimiter = ',',
        value_parser = allow_entry
    )]
    allow_gateway_host: Vec<AllowEntry>,
    /// Tests only: the scheduler's clock, ANCHOR_MS:START_MS:SPEED (from the real instant
    /// ANCHOR_MS it shows START_MS and runs SPEED times faster), shared by several processes.
    #[arg(long, hide = true, value_name = "ANCHOR_MS:START_MS:SPEED")]
    test_clock: Option<ScaledClock>,
    /// Tests only: hold at this fault point (fanout-batch=N, upload-batch=N,
    /// survey-reply=N); repeatable.
    #[arg(long, hide = true, value_name = "POINT")]
    test_fault: Vec<Fault>,
}

/// A parser of a positive whole number whose error names the variable, as operators set these
/// through the environment.
fn positive<T>(var: &'static str) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync
where
    T: std::str::FromStr + PartialOrd + From<u8>,
{
    move |text: &str| {
        text.trim()
            .parse()
            .ok()
            .filter(|v: &T| *v >= T::from(1))
            .ok_or_else(|| format!("{var}: {text:?} is not a positive whole number"))
    }
}

/// One `--allow-gateway-host` value.
fn allow_entry(text: &str) -> Result<AllowEntry, String> {
    text.parse().map_err(|e: BadAllowEntry| e.to_string())
}

impl RunArgs {
    /// The addresses gateways may be reached at.
    fn gateway_addresses(&self) -> AddressPolicy {
        AddressPolicy::allowing(self.allow_gateway_host.iter().cloned())
    }

    /// The dispatcher's settings: the defaults, each replaced by its flag or variable.
    fn dispatch_options(&self) -> DispatchOptions {
        let mut o = DispatchOptions {
            gateway_addresses: self.gateway_addresses(),
            ..DispatchOptions::default()
        };
        if let Some(v) = self.dispatch_lease_ms {
            o.lease_ms = v;
        }
        if let Some(v) = self.dispatch_sweep_ms {
            o.sweep_ms = v;
        }
        if let Some(v) = self.dispatch_retry_base_ms {
            o.retry_base_ms = v;
        }
        if let Some(v) = self.dispatch_retry_max_ms {
            o.retry_max_ms = v;
        }
        if let Some(v) = self.dispatch_refresh_ms {
            o.refresh_ms = v;
        }
        if let Some(v) = self.dispatch_lanes {
            o.lanes = v as usize;
        }
        if let Some(v) = self.dispatch_batch {
            o.batch = v as usize;
        }
        o
    }

    /// The scheduler's clock: the system clock unless a test gave one.
    fn clock(&self) -> SharedClock {
        match self.test_clock {
            Some(c) => std::sync::Arc::new(c),
            None => casecast_engine::clock::system(),
        }
    }
}

/// The background tasks of a process, each supervised (restarted when it fails).
struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    health: Health,
}

impl Background {
    /// Starts the worker loop and the dispatcher on `db`.
    fn start(db: &Db, role: &str, run: &RunArgs, sheets: Permits) -> Background {
        let (stop, stopped) = watch::channel(false);
        let health = Health::default();
        let cx = WorkerContext {
            name: worker_name(role),
            clock: run.clock(),
            faults: Faults::hold_at(run.test_fault.clone()),
            sheets,
        };
        let options = run.dispatch_options();
        let worker = {
            let (db, cx, stopped) = (db.clone(), cx.clone(), stopped.clone());
            supervise("worker", health.clone(), stopped.clone(), move || {
                run_worker(db.clone(), cx.clone(), stopped.clone())
            })
        };
        let dispatcher = {
            let (db, name, stopped) = (db.clone(), cx.name.clone(), stopped.clone());
            supervise("dispatcher", health.clone(), stopped.clone(), move || {
                run_dispatcher(db.clone(), name.clone(), options.clone(), stopped.clone())
            })
        };
        Background {
            stop,
            tasks: vec![worker, dispatcher],
            health,
        }
    }

    /// Tells every task to stop and waits for them.
    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Completes on SIGTERM or Ctrl-C. The handlers are installed when this is called, not when
/// the future is first polled: call it before printing the ready line, so that a SIGTERM sent
/// right after "ready" stops the process cleanly instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            async fn recv(s: Option<&mut tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! { () = recv(term.as_mut()) => {}, () = recv(int.as_mut()) => {} }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down");
    }
}

pub async fn serve(cfg: &Config, args: ServeArgs) -> anyhow::Result<()> {
    let db = open(cfg).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let public_url = match args.public_url.as_deref() {
        Some(u) => {
            let u = u.trim().trim_end_matches('/');
            let ok = (u.starts_with("http://") || u.starts_with("https://"))
                && reqwest::Url::parse(u).is_ok()
                && !u.contains('?')
                && !u.contains('#');
            anyhow::ensure!(
                ok,
                "--public-url {u:?} is not an http:// or https:// address without query, e.g. https://casecast.example.org"
            );
            Some(u.to_string())
        }
        None => None,
    };
    let login = if args.demo {
        let base = public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        Some(
            crate::demo::seed(&db, &base)
                .await
                .context("creating the demo data")?,
        )
    } else {
        None
    };
    let shutdown = shutdown_signal();
    let limits = args.limits();
    let sheets = Permits::new(limits.max_sheet_parses, limits.busy_wait);
    let background = Background::start(&db, "serve", &args.run, sheets.clone());
    let state = AppState::new(
        db.clone(),
        WebConfig {
            secure_cookies: args.secure_cookies,
            public_url,
            metrics_token: args.metrics_token.filter(|t| !t.trim().is_empty()),
            limits,
            gateway_addresses: args.run.gateway_addresses(),
        },
    )
    .with_health(background.health.clone())
    .with_sheet_permits(sheets);
    println!(
        "Casecast is ready at http://{addr}/ (database: {})",
        db.dialect().name()
    );
    if let Some(login) = login {
        println!(
            "Demo: log in at http://{addr}/login as {} with password {}",
            login.email, login.password
        );
    }
    casecast_web::serve(listener, state, shutdown)
        .await
        .context("serving HTTP")?;
    background.stop().await;
    db.close().await;
    Ok(())
}

/// A name for this process's worker in job leases: role, host and process id.
fn worker_name(role: &str) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    format!("{role}@{host}:{}", std::process::id())
}

pub async fn worker(cfg: &Config, args: WorkerArgs) -> anyhow::Result<()> {
    let db = open(cfg).await?;
    let shutdown = shutdown_signal();
    let background = Background::start(&db, "worker", &args.run, Permits::sheets());
    println!(
        "Casecast worker is ready (database: {})",
        db.dialect().name()
    );
    shutdown.await;
    background.stop().await;
    db.close().await;
    Ok(())
}
