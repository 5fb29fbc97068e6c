//! `serve` and `worker`: the long-running processes.

use std::net::SocketAddr;

use anyhow::Context;
use casecast_engine::{run_dispatcher, DispatchOptions};
use casecast_store::worker::run_worker;
use casecast_web::{AppState, WebConfig};
use clap::Args;

use crate::admin::open;

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
    /// inbound URLs (default: http:// and the listen address).
    #[arg(long, env = "CASECAST_PUBLIC_URL")]
    public_url: Option<String>,
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

pub async fn serve(url: &str, args: ServeArgs) -> anyhow::Result<()> {
    let options = dispatch_options()?;
    let db = open(url).await?;
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
    let state = AppState::new(
        db.clone(),
        WebConfig {
            secure_cookies: args.secure_cookies,
            public_url,
        },
    );
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
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let name = worker_name("serve");
    let jobs = tokio::spawn(run_worker(db.clone(), name.clone(), stopped.clone()));
    let dispatcher = tokio::spawn(run_dispatcher(db.clone(), name, options, stopped));
    casecast_web::serve(listener, state, shutdown)
        .await
        .context("serving HTTP")?;
    let _ = stop.send(true);
    let _ = jobs.await;
    let _ = dispatcher.await;
    db.close().await;
    Ok(())
}

/// The dispatcher's settings: the defaults, each replaceable by an environment variable
/// (`CASECAST_DISPATCH_LEASE_MS`, `…_SWEEP_MS`, `…_RETRY_BASE_MS`, `…_RETRY_MAX_MS`,
/// `…_REFRESH_MS`, `…_LANES`, `…_BATCH`). Tests shorten the lease so that a killed worker's
/// messages are taken back in seconds; operators rarely need them.
fn dispatch_options() -> anyhow::Result<DispatchOptions> {
    fn knob<T: std::str::FromStr + PartialOrd + From<u8>>(
        name: &str,
        value: &mut T,
    ) -> anyhow::Result<()> {
        let var = format!("CASECAST_DISPATCH_{name}");
        if let Ok(text) = std::env::var(&var) {
            *value = text
                .trim()
                .parse()
                .ok()
                .filter(|v| *v >= T::from(1))
                .ok_or_else(|| anyhow::anyhow!("{var}: {text:?} is not a positive whole number"))?;
        }
        Ok(())
    }
    let mut o = DispatchOptions::default();
    knob("LEASE_MS", &mut o.lease_ms)?;
    knob("SWEEP_MS", &mut o.sweep_ms)?;
    knob("RETRY_BASE_MS", &mut o.retry_base_ms)?;
    knob("RETRY_MAX_MS", &mut o.retry_max_ms)?;
    knob("REFRESH_MS", &mut o.refresh_ms)?;
    knob("LANES", &mut o.lanes)?;
    knob("BATCH", &mut o.batch)?;
    Ok(o)
}

/// A name for this process's worker in job leases: role, host and process id.
fn worker_name(role: &str) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    format!("{role}@{host}:{}", std::process::id())
}

pub async fn worker(url: &str) -> anyhow::Result<()> {
    let options = dispatch_options()?;
    let db = open(url).await?;
    let shutdown = shutdown_signal();
    println!(
        "Casecast worker is ready (database: {})",
        db.dialect().name()
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let name = worker_name("worker");
    let jobs = tokio::spawn(run_worker(db.clone(), name.clone(), stopped.clone()));
    let dispatcher = tokio::spawn(run_dispatcher(db.clone(), name, options, stopped));
    shutdown.await;
    let _ = stop.send(true);
    let _ = jobs.await;
    let _ = dispatcher.await;
    db.close().await;
    Ok(())
}
