//! `/metrics` stays bounded whatever requests come in, and asks for a token when one is set.

use casecast_testkit::{on_both_engines, serve_state, Dialect, TestApp, TestDb};
use casecast_web::{AppState, WebConfig};
use reqwest::Method;

on_both_engines!(made_up_methods_add_no_metrics_labels);

async fn made_up_methods_add_no_metrics_labels(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let scrape = || async {
        let r = app.http.get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    };
    for i in 0..50 {
        let method =
            Method::from_bytes(format!("MADEUP{i}{}", "X".repeat(500)).as_bytes()).unwrap();
        let r = app
            .http
            .request(method, app.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
    }
    let after = scrape().await;
    assert!(!after.contains("MADEUP"), "a made-up method became a label");
    assert!(
        after.contains(r#"method="other""#),
        "made-up methods are counted as other"
    );
    // Fifty requests with fifty method names are one series, counted fifty times.
    let healthz: Vec<&str> = after
        .lines()
        .filter(|l| l.starts_with("casecast_http_requests") && l.contains(r#"route="/healthz""#))
        .collect();
    assert_eq!(healthz.len(), 1, "{healthz:?}");
    assert!(healthz[0].contains(r#"method="other""#), "{healthz:?}");
    assert!(healthz[0].ends_with(" 50"), "{healthz:?}");
}

on_both_engines!(a_metrics_token_is_required_when_set);

async fn a_metrics_token_is_required_when_set(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let state = AppState::new(
        t.db.clone(),
        WebConfig {
            metrics_token: Some("s3cret-scrape".into()),
            ..WebConfig::default()
        },
    );
    let url = format!("{}/metrics", serve_state(state).await);
    let http = reqwest::Client::new();
    let none = http.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let wrong = http.get(&url).bearer_auth("guess").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let right = http
        .get(&url)
        .bearer_auth("s3cret-scrape")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert!(right
        .text()
        .await
        .unwrap()
        .contains("casecast_http_requests"));
}
