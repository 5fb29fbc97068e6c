//! `casecast surveys list` and `surveys show` as an operator runs them, on SQLite and on
//! PostgreSQL (`CASECAST_TEST_PG`).

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use casecast_core::survey::Survey;
use casecast_testkit::cli::{self, Run};
use casecast_testkit::{on_both_engines, Dialect, TestDb};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_casecast");

/// `casecast --db URL ARGS…`.
async fn run(url: &str, args: &[&str]) -> Run {
    cli::run(cli::command(BIN, Some(url)), args, None).await
}

on_both_engines!(surveys_are_listed_and_shown_as_the_api_answers);

fn survey(name: &str) -> Survey {
    Survey::parse(&json!({
        "name": name,
        "intro": {"*": "Hello", "sw": "Habari"},
        "questions": [
            {"key": "age", "type": "number", "text": "Your age?", "min": 0, "max": 120},
            {"key": "visited", "type": "yes_no", "text": "Visited?"}
        ],
        "reminders": {"every_minutes": 30, "times": 2}
    }))
    .unwrap()
}

async fn surveys_are_listed_and_shown_as_the_api_answers(engine: Dialect) {
    let t = TestDb::new(engine).await;
    run(&t.url, &["project", "create", "clinic"]).await.ok();
    run(&t.url, &["project", "create", "other"]).await.ok();
    let clinic = t.db.project_by_slug("clinic").await.unwrap();
    let other = t.db.project_by_slug("other").await.unwrap();
    let run_ = run(&t.url, &["surveys", "list", "--project", "clinic"]).await;
    assert_eq!(run_.ok(), "", "no surveys yet");
    let first =
        t.db.create_survey(clinic.id, &survey("Follow-up visit"), None)
            .await
            .unwrap();
    let second =
        t.db.create_survey(clinic.id, &survey("Second"), None)
            .await
            .unwrap();
    let elsewhere =
        t.db.create_survey(other.id, &survey("Elsewhere"), None)
            .await
            .unwrap();
    let run_ = run(&t.url, &["surveys", "list", "--project", "clinic"]).await;
    let lines: Vec<Vec<String>> = run_
        .ok()
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    assert_eq!(
        lines,
        vec![
            vec![
                second.id.to_string(),
                "Second".into(),
                "2".into(),
                "0".into(),
                "0".into(),
                "0".into(),
                "0".into()
            ],
            vec![
                first.id.to_string(),
                "Follow-up visit".into(),
                "2".into(),
                "0".into(),
                "0".into(),
                "0".into(),
                "0".into()
            ],
        ],
        "newest first"
    );
    let run_ = run(
        &t.url,
        &[
            "surveys",
            "show",
            "--project",
            "clinic",
            &second.id.to_string(),
        ],
    )
    .await;
    let shown: Value = serde_json::from_str(run_.ok()).unwrap();
    assert_eq!(shown["id"], second.id);
    assert_eq!(shown["name"], "Second");
    assert_eq!(shown["intro"], json!({"*": "Hello", "sw": "Habari"}));
    assert_eq!(shown["questions"][0]["max"], 120);
    assert_eq!(shown["reminders"], json!({"every_minutes": 30, "times": 2}));
    assert_eq!(shown["sessions"]["active"], 0);
    assert!(shown["created_at"].as_str().unwrap().ends_with('Z'));
    // Another project's survey, a missing one, a word and a missing project fail in one line.
    let id = elsewhere.id.to_string();
    run(&t.url, &["surveys", "show", "--project", "clinic", &id])
        .await
        .fails(&[&format!("survey {id} not found in project 'clinic'")]);
    run(
        &t.url,
        &["surveys", "show", "--project", "clinic", "999999"],
    )
    .await
    .fails(&["survey 999999 not found"]);
    run(&t.url, &["surveys", "show", "--project", "clinic", "first"])
        .await
        .fails(&["'first' is not a survey ID"]);
    run(&t.url, &["surveys", "list", "--project", "nowhere"])
        .await
        .fails(&["nowhere"]);
}
