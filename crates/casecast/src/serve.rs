//! `serve` and `worker`: the long-running processes.

use std::net::SocketAddr;

use anyhow::Context;
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
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down");
}

pub async fn serve(url: &str, args: ServeArgs) -> anyhow::Result<()> {
    let db = open(url).await?;
    let login = if args.demo {
        Some(
            crate::demo::seed(&db)
                .await
                .context("creating the demo data")?,
        )
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let state = AppState::new(
        db.clone(),
        WebConfig {
            secure_cookies: args.secure_cookies,
        },
    );
    println!(
        "Casecast is ready at http://{addr}/ (database: {})",
        db.engine().name()
    );
    if let Some(login) = login {
        println!(
            "Demo: log in at http://{addr}/login as {} with password {}",
            login.email, login.password
        );
    }
    casecast_web::serve(listener, state, shutdown_signal())
        .await
        .context("serving HTTP")?;
    db.close().await;
    Ok(())
}

pub async fn worker(url: &str) -> anyhow::Result<()> {
    let db = open(url).await?;
    // The background jobs (uploads, fan-out, dispatch) arrive with the case-group and gateway
    // work; until then the worker only holds a connection and waits to be stopped.
    println!(
        "Casecast worker is ready (database: {}); no background job kinds exist yet",
        db.engine().name()
    );
    shutdown_signal().await;
    db.close().await;
    Ok(())
}
