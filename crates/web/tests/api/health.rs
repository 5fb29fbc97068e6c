//! `/healthz` names a background task that keeps failing: a real server on port 0 whose
//! state reports the health of a supervised task that panics each time it starts.

use std::time::Duration;

use casecast_engine::supervise::{supervise, Health, UNHEALTHY_AFTER};
use casecast_testkit::{eventually, on_both_engines, serve_state, Dialect, TestDb};
use casecast_web::{AppState, WebConfig};
use serde_json::Value;

on_both_engines!(healthz_names_a_task_that_keeps_failing);

async fn healthz_names_a_task_that_keeps_failing(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let health = Health::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let state = AppState::new(t.db.clone(), WebConfig::default()).with_health(health.clone());
    let url = format!("{}/healthz", serve_state(state).await);
    let http = reqwest::Client::new();

    // Healthy while the task has not failed yet.
    let ok = http.get(&url).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "ok\n");

    let task = supervise("flaky", health, stopped, || async {
        panic!("the flaky task cannot start");
    });
    // Backoffs of 0.5, 1 and 2 s: the third failure comes after about 3.5 s.
    let body: Value = eventually(
        "healthz reports the failing task",
        Duration::from_secs(30),
        || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let r = http.get(&url).send().await.unwrap();
                (r.status() == 503).then_some(())?;
                r.json::<Value>().await.ok()
            }
        },
    )
    .await;
    assert_eq!(body["status"], "unhealthy", "{body}");
    let flaky = &body["failing_tasks"]["flaky"];
    assert!(
        flaky["restarts"].as_u64().unwrap() >= u64::from(UNHEALTHY_AFTER),
        "{body}"
    );
    assert_eq!(
        flaky["last_error"], "panicked: the flaky task cannot start",
        "{body}"
    );
    stop.send(true).unwrap();
    task.abort();
}
