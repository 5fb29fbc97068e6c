//! How many requests the dispatcher keeps in flight to one gateway, on both engines:
//! - never more than `DispatchOptions::max_in_flight`, whatever the lanes and batch size;
//! - a request that takes long holds up only its own message: the others are sent and
//!   recorded meanwhile.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::Form;
use casecast_core::gateway::config::GatewayKind;
use casecast_core::{CountryCode, PhoneNumber, ProjectSlug, TimeZoneName};
use casecast_engine::{run_dispatcher, DispatchOptions};
use casecast_store::gateways::{Gateway, NewGateway};
use casecast_store::projects::{NewProject, Project};
use casecast_store::Db;
use casecast_testkit::{on_both_engines, test_dispatch_options, Dialect, TestDb};
use serde_json::json;
use tokio::sync::watch;

on_both_engines!(
    requests_in_flight_stay_within_the_limit,
    a_slow_answer_holds_up_only_its_own_message,
);

const WITHIN: Duration = Duration::from_secs(60);

/// Polls `check` until it gives a value, within [`WITHIN`].
async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    casecast_testkit::eventually(what, WITHIN, check).await
}

/// A gateway's receiving end: counts requests in flight (and the most at once), and holds
/// every request whose text contains "slow" until `release` turns true.
#[derive(Clone)]
struct Sink {
    counts: Arc<Mutex<(usize, usize)>>,
    release: watch::Receiver<bool>,
}

async fn receive(
    State(sink): State<Sink>,
    Form(fields): Form<HashMap<String, String>>,
) -> &'static str {
    {
        let mut c = sink.counts.lock().unwrap();
        c.0 += 1;
        c.1 = c.1.max(c.0);
    }
    let mut release = sink.release.clone();
    if fields["text"].contains("slow") {
        let _ = release.wait_for(|r| *r).await;
    } else {
        // Long enough for requests to overlap when the dispatcher lets them.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sink.counts.lock().unwrap().0 -= 1;
    "ACCEPTED"
}

impl Sink {
    async fn start() -> (Sink, String, watch::Sender<bool>) {
        let (release, released) = watch::channel(false);
        let sink = Sink {
            counts: Arc::default(),
            release: released,
        };
        let app = axum::Router::new()
            .route("/send", axum::routing::post(receive))
            .with_state(sink.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/send", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (sink, url, release)
    }

    /// The most requests that were in flight at once.
    fn most_at_once(&self) -> usize {
        self.counts.lock().unwrap().1
    }
}

async fn project_and_gateway(db: &Db, url: &str) -> (Project, Gateway) {
    let project = db
        .create_project(&NewProject {
            slug: ProjectSlug::parse("alpha").unwrap(),
            name: "Alpha".into(),
            time_zone: TimeZoneName::parse("Africa/Kampala").unwrap(),
            country: Some(CountryCode::parse("UG").unwrap()),
        })
        .await
        .unwrap();
    let gateway = db
        .create_gateway(
            project.id,
            &NewGateway {
                name: "Sink".into(),
                kind: GatewayKind::Http,
                config: json!({"url": url, "method": "POST",
                    "params": [["to", "{to}"], ["text", "{text}"], ["id", "{id}"]]}),
                callback_base_url: "http://127.0.0.1:9".into(),
                max_segments_per_second: None,
                max_attempts: None,
                prefixes: vec![],
                is_default: true,
            },
        )
        .await
        .unwrap();
    (project, gateway)
}

/// Queues one message per text, to distinct numbers; their ids in the order of the texts.
async fn queue(db: &Db, project: &Project, gateway: &Gateway, texts: &[String]) -> Vec<i64> {
    let items: Vec<_> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let phone = PhoneNumber::parse(&format!("+256772{i:06}"), None).unwrap();
            (None, phone, text.clone())
        })
        .collect();
    db.queue_outbound_bulk(project, gateway.id, &items)
        .await
        .unwrap();
    let (all, _) = db
        .list_messages(project.id, &Default::default(), 1000, None)
        .await
        .unwrap();
    texts
        .iter()
        .map(|text| all.iter().find(|m| &m.text == text).unwrap().id)
        .collect()
}

async fn statuses(db: &Db, project: &Project) -> HashMap<i64, String> {
    let (all, _) = db
        .list_messages(project.id, &Default::default(), 1000, None)
        .await
        .unwrap();
    all.into_iter()
        .map(|m| (m.id, m.status.to_string()))
        .collect()
}

fn start_dispatcher(db: &Db, options: DispatchOptions) -> watch::Sender<bool> {
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(run_dispatcher(db.clone(), "test".into(), options, stopped));
    stop
}

async fn requests_in_flight_stay_within_the_limit(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let (sink, url, _release) = Sink::start().await;
    let (project, gateway) = project_and_gateway(&t.db, &url).await;
    let texts: Vec<String> = (0..40).map(|i| format!("Reminder {i}")).collect();
    let ids = queue(&t.db, &project, &gateway, &texts).await;
    // Four lanes claiming batches of 100 could have 40 requests in flight at once.
    let options = DispatchOptions {
        max_in_flight: 3,
        ..test_dispatch_options()
    };
    let stop = start_dispatcher(&t.db, options);
    eventually("every message sent", || async {
        let s = statuses(&t.db, &project).await;
        ids.iter().all(|id| s[id] == "sent").then_some(())
    })
    .await;
    let _ = stop.send(true);
    let most = sink.most_at_once();
    assert!((1..=3).contains(&most), "{most} requests at once");
}

async fn a_slow_answer_holds_up_only_its_own_message(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let (_sink, url, release) = Sink::start().await;
    let (project, gateway) = project_and_gateway(&t.db, &url).await;
    let mut texts: Vec<String> = (0..9).map(|i| format!("Reminder {i}")).collect();
    texts.insert(0, "Reminder, slow to answer".into());
    let ids = queue(&t.db, &project, &gateway, &texts).await;
    let slow = ids[0];
    let stop = start_dispatcher(&t.db, test_dispatch_options());
    // All claimed together, yet the others are sent and recorded while the first hangs.
    eventually(
        "the quick messages sent while the slow one is in flight",
        || async {
            let s = statuses(&t.db, &project).await;
            (s[&slow] == "sending" && ids[1..].iter().all(|id| s[id] == "sent")).then_some(())
        },
    )
    .await;
    let _ = release.send(true);
    eventually("the slow message sent once answered", || async {
        (statuses(&t.db, &project).await[&slow] == "sent").then_some(())
    })
    .await;
    let _ = stop.send(true);
}
