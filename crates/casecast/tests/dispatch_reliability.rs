//! kill -9 of a `casecast worker` while 10,000 messages go through a real Kannel, then a restart
//! (issue 4, "Reliability"), on both engines: every message reaches the fake operator at least
//! once and ends `sent` or `delivered`; the only messages sent twice are ones that were in
//! flight (`sending`) when the worker died, which the restarted worker takes back once their
//! lease runs out (at-least-once delivery: Kannel may have taken them already).

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::future::Future;
use std::process::{Child, Stdio};
use std::time::Duration;

use casecast_core::gateway::config::GatewayKind;
use casecast_core::{CountryCode, PhoneNumber, ProjectSlug, TimeZoneName};
use casecast_store::gateways::{Gateway, NewGateway};
use casecast_store::projects::{NewProject, Project};
use casecast_store::Db;
use casecast_testkit::kannel::Kannel;
use casecast_testkit::{cli, on_both_engines, Dialect, TestDb};
use casecast_web::{AppState, WebConfig};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_casecast");
const MESSAGES: usize = 10_000;
/// When the worker is killed: after this many messages reached the operator.
const KILL_AFTER: usize = 3_000;
/// The workers' lease: long enough never to run out while a live worker waits for Kannel,
/// short enough that the restarted worker takes back the dead one's messages soon.
const LEASE_MS: &str = "8000";
const WITHIN: Duration = Duration::from_secs(600);

/// Polls `check` until it gives a value, within [`WITHIN`].
async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    casecast_testkit::eventually(what, WITHIN, check).await
}

/// A `casecast worker` on the test database; killed when dropped.
struct Worker {
    child: Child,
    stderr: tempfile::NamedTempFile,
}

impl Worker {
    fn start(url: &str) -> Worker {
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let child = cli::command(BIN, Some(url))
            .arg("worker")
            .args(cli::ALLOW_LOOPBACK)
            .env("CASECAST_DISPATCH_LEASE_MS", LEASE_MS)
            .env("CASECAST_DISPATCH_SWEEP_MS", "500")
            .env("CASECAST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .expect("starting casecast worker");
        Worker { child, stderr }
    }

    /// SIGKILL, as `kill -9` does; waits until the process is gone.
    fn kill(&mut self) {
        self.child.kill().expect("killing the worker");
        self.child.wait().unwrap();
    }

    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = std::fs::read_to_string(self.stderr.path()).unwrap_or_default();
            panic!("the worker exited ({status}): {log}");
        }
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

/// The webhooks (delivery reports) served from this process, with no dispatcher of its own.
async fn serve_webhooks(db: &Db) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = WebConfig {
        public_url: Some(base.clone()),
        ..WebConfig::default()
    };
    let state = AppState::new(db.clone(), config);
    tokio::spawn(casecast_web::serve(listener, state, std::future::pending()));
    base
}

/// A project, a Kannel, and a Kannel gateway whose reports reach `base`.
async fn setup(db: &Db, base: &str) -> (Project, Kannel, Gateway) {
    let project = db
        .create_project(&NewProject {
            slug: ProjectSlug::parse("reliable").unwrap(),
            name: "Reliable".into(),
            time_zone: TimeZoneName::parse("Africa/Kampala").unwrap(),
            country: Some(CountryCode::parse("UG").unwrap()),
        })
        .await
        .unwrap();
    let kannel = Kannel::start("http://127.0.0.1:9/mo").await;
    let config = json!({"sendsms_url": kannel.sendsms_url, "username": kannel.username,
        "password": kannel.password, "from": "1234"});
    let new = NewGateway {
        name: "Kannel".into(),
        kind: GatewayKind::Kannel,
        config,
        callback_base_url: base.into(),
        max_segments_per_second: None,
        max_attempts: None,
        prefixes: vec![],
        is_default: true,
    };
    let g = db.create_gateway(project.id, &new).await.unwrap();
    (project, kannel, g)
}

fn text(i: usize) -> String {
    format!("Reliability check {i:05}: your visit is due")
}

/// Messages per status.
async fn counts(db: &Db) -> HashMap<String, i64> {
    db.outbox_counts().await.unwrap().into_iter().collect()
}

/// Kannel's count of MT messages handed to the operator and how many still wait, from the
/// `SMS: received … sent N (M queued)` line of bearerbox's status.
async fn kannel_sent(kannel: &Kannel) -> (usize, usize) {
    let status = kannel.status().await;
    let line = status
        .lines()
        .find(|l| l.trim_start().starts_with("SMS: received"))
        .unwrap_or_else(|| panic!("no SMS line in {status}"));
    let sent = line.split("sent ").nth(1).unwrap();
    let (n, rest) = sent.split_once(" (").unwrap();
    let queued = rest.split_once(' ').unwrap().0;
    (n.trim().parse().unwrap(), queued.parse().unwrap())
}

async fn a_killed_worker_loses_no_message(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = t.db.clone();
    let base = serve_webhooks(&db).await;
    let (project, kannel, g) = setup(&db, &base).await;
    let items: Vec<_> = (0..MESSAGES)
        .map(|i| {
            let phone = PhoneNumber::parse(&format!("+256772{i:06}"), None).unwrap();
            (None, phone, text(i))
        })
        .collect();
    let queued = db
        .queue_outbound_bulk(&project, g.id, &items)
        .await
        .unwrap();
    assert_eq!(queued, MESSAGES as u64);

    let mut worker = Worker::start(&t.url);
    eventually("a few thousand messages at the operator", || {
        worker.check_alive();
        let n = kannel.received().len();
        async move { (n >= KILL_AFTER).then_some(()) }
    })
    .await;
    worker.kill();
    let at_kill = counts(&db).await;
    let in_flight = at_kill.get("sending").copied().unwrap_or(0) as usize;
    let arrived_at_kill = kannel.received().len();
    assert!(arrived_at_kill < MESSAGES, "killed too late: {at_kill:?}");

    let mut restarted = Worker::start(&t.url);
    eventually("no message queued or sending", || {
        restarted.check_alive();
        let db = db.clone();
        async move {
            let c = counts(&db).await;
            let open = c.get("queued").unwrap_or(&0) + c.get("sending").unwrap_or(&0);
            (open == 0).then_some(())
        }
    })
    .await;
    // Every message Kannel took has reached the operator.
    eventually("Kannel's queue drained to the operator", || async {
        let (sent, waiting) = kannel_sent(&kannel).await;
        (waiting == 0 && sent == kannel.received().len()).then_some(())
    })
    .await;

    let mut arrivals: HashMap<String, usize> = HashMap::new();
    for mt in kannel.received() {
        *arrivals.entry(mt.text).or_default() += 1;
    }
    let missing: Vec<usize> = (0..MESSAGES)
        .filter(|i| !arrivals.contains_key(&text(*i)))
        .collect();
    assert!(
        missing.is_empty(),
        "never reached the operator: {missing:?}"
    );
    assert_eq!(arrivals.len(), MESSAGES, "texts nobody sent arrived");
    let duplicates: usize = arrivals.values().map(|n| n - 1).sum();
    let end = counts(&db).await;
    eprintln!(
        "{engine:?}: killed after {arrived_at_kill} arrivals with {in_flight} in flight; \
         {duplicates} arrived twice; final statuses {end:?}"
    );
    assert!(
        duplicates <= in_flight,
        "{duplicates} duplicates, but only {in_flight} were in flight at the kill"
    );
    let finished = end.get("sent").unwrap_or(&0) + end.get("delivered").unwrap_or(&0);
    assert_eq!(finished, MESSAGES as i64, "{end:?}");
}

on_both_engines!(a_killed_worker_loses_no_message);

#[tokio::test]
async fn dispatch_knobs_must_be_positive_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("casecast.db").to_string_lossy().to_string();
    for bad in ["soon", "0", "-5"] {
        let mut cmd = cli::command(BIN, Some(&url));
        cmd.env("CASECAST_DISPATCH_LEASE_MS", bad);
        let run = cli::run(cmd, &["worker"], None).await;
        run.fails(&["CASECAST_DISPATCH_LEASE_MS", "positive whole number"]);
    }
}
