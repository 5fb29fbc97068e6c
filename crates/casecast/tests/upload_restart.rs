//! A large sheet upload survives the server being killed halfway: against the real binary,
//! `casecast serve` is killed with SIGKILL while its worker is applying a 30,000-row upload,
//! a new `serve` on the same database takes the job over once the dead worker's lease runs
//! out, and the upload ends with exactly one result per input row and every case added once.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::Duration;

use casecast_core::sheet::{read_table, Limits};
use casecast_testkit::cli::{self, Server};
use casecast_testkit::{fresh_url, Dialect};
use serde_json::Value;

casecast_testkit::on_both_engines!(upload_resumes_after_the_server_is_killed);

/// Cases in the project and rows in the upload.
const ROWS: usize = 30_000;
/// The upload batch after which the first server is held, then killed.
const HELD_AFTER: i64 = 5;
/// How long the new server may take to finish the upload (a dead worker's lease lasts 30 s).
const RESUME_WITHIN: Duration = Duration::from_secs(120);

const BIN: &str = env!("CARGO_BIN_EXE_casecast");

/// `casecast --db URL ARGS…`, which must succeed; returns its stdout.
async fn run(url: &str, args: &[&str], stdin: Option<&str>) -> String {
    cli::run(cli::command(BIN, Some(url)), args, stdin)
        .await
        .ok()
        .to_string()
}

/// GET a JSON document with the token; asserts 200.
async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> Value {
    let resp = http.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    resp.json().await.unwrap()
}

/// GET a file with the token; asserts 200.
async fn get_bytes(http: &reqwest::Client, url: &str, token: &str) -> Vec<u8> {
    let resp = http.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    resp.bytes().await.unwrap().to_vec()
}

fn external_id(i: usize) -> String {
    format!("EXT-{i:06}")
}

async fn upload_resumes_after_the_server_is_killed(engine: Dialect) {
    let (url, _db_dir) = fresh_url(engine).await;
    let dir = tempfile::tempdir().unwrap();
    run(
        &url,
        &["project", "create", "gulu", "--country", "UG"],
        None,
    )
    .await;

    // The cases, imported from CSV files of 10,000 rows each (far under the 50 MB limit).
    for part in 0..ROWS.div_ceil(10_000) {
        let mut csv = String::from("case_id,external_id,name\n");
        for i in part * 10_000..((part + 1) * 10_000).min(ROWS) {
            csv.push_str(&format!("case-{i:06},{},Person {i}\n", external_id(i)));
        }
        let file = dir.path().join(format!("cases-{part}.csv"));
        std::fs::write(&file, csv).unwrap();
        run(
            &url,
            &[
                "cases",
                "import",
                "--project",
                "gulu",
                file.to_str().unwrap(),
            ],
            None,
        )
        .await;
    }
    let created = run(
        &url,
        &["groups", "create", "--project", "gulu", "Everyone"],
        None,
    )
    .await;
    let group: i64 = created
        .trim()
        .strip_prefix("created case group ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("{created:?}"));
    run(
        &url,
        &[
            "user",
            "create",
            "pm@gulu.example.org",
            "--project",
            "gulu",
            "--role",
            "editor",
            "--password-stdin",
        ],
        Some("programme manager\n"),
    )
    .await;
    let token = run(
        &url,
        &[
            "token",
            "create",
            "--project",
            "gulu",
            "--user",
            "pm@gulu.example.org",
        ],
        None,
    )
    .await
    .trim()
    .to_string();
    assert!(!token.is_empty() && !token.contains(char::is_whitespace));

    // Row n + 2 of the sheet names case n, by external ID or by case ID in turn.
    let identifiers: Vec<String> = (0..ROWS)
        .map(|i| {
            if i % 2 == 0 {
                external_id(i)
            } else {
                format!("case-{i:06}")
            }
        })
        .collect();
    let mut sheet = String::from("case_identifier\n");
    for id in &identifiers {
        sheet.push_str(id);
        sheet.push('\n');
    }

    let http = reqwest::Client::new();
    // The server holds right after the upload's fifth batch (2,000 rows each) is committed,
    // and is killed there: the same point on a fast machine and a slow one.
    let fault = format!("upload-batch={HELD_AFTER}");
    let mut server = Server::start(BIN, &url, &["--test-fault", &fault]).await;
    let api = |base: &str, path: &str| format!("{base}/api/v1/projects/gulu{path}");
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(sheet.into_bytes()).file_name("everyone.csv"),
    );
    let resp = http
        .post(api(&server.base, &format!("/case-groups/{group}/uploads")))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let upload_id = resp.json::<Value>().await.unwrap()["upload_id"]
        .as_i64()
        .unwrap();

    // Kill the server while the worker is partway through.
    let status_path = format!("/uploads/{upload_id}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let seen = loop {
        let held = server
            .stderr()
            .contains("held at fault point upload-batch=");
        // The server still answers while held: only the upload's task waits.
        let s = get_json(&http, &api(&server.base, &status_path), &token).await;
        if held {
            server.kill();
            break s;
        }
        assert!(
            s["status"] != "done" && s["status"] != "failed",
            "the upload went past its fault point: {s}\n{}",
            server.stderr()
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upload made no progress: {s}\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(seen["status"], "running", "{seen}");
    assert_eq!(seen["processed_rows"], HELD_AFTER * 2000, "{seen}");
    assert_eq!(seen["total_rows"], ROWS, "{seen}");

    // A new server on the same database finishes it.
    let server = Server::start(BIN, &url, &[]).await;
    let first = get_json(&http, &api(&server.base, &status_path), &token).await;
    assert_ne!(
        first["status"], "done",
        "the kill interrupted the upload: {first}"
    );
    assert!(
        first["processed_rows"].as_i64().unwrap() < ROWS as i64,
        "{first}"
    );
    let deadline = tokio::time::Instant::now() + RESUME_WITHIN;
    let done = loop {
        let s = get_json(&http, &api(&server.base, &status_path), &token).await;
        match s["status"].as_str().unwrap() {
            "done" => break s,
            "queued" | "running" => {}
            _ => panic!("the upload did not resume: {s}\n{}", server.stderr()),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upload was not finished within {RESUME_WITHIN:?}: {s}\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(done["total_rows"], ROWS, "{done}");
    assert_eq!(done["processed_rows"], ROWS, "{done}");
    assert_eq!(done["error"], Value::Null, "{done}");
    assert_eq!(
        done["counts"],
        serde_json::json!({ "added": ROWS }),
        "every case was added exactly once: {done}"
    );

    // One result per input row: rows 2..=30001, each once, each naming its own case.
    let csv = get_bytes(
        &http,
        &api(&server.base, &format!("/uploads/{upload_id}/results.csv")),
        &token,
    )
    .await;
    let results = read_table(&csv, "results.csv", &Limits::default()).unwrap();
    assert_eq!(
        results.headers.0,
        ["row", "identifier", "outcome", "case_id", "message"]
    );
    assert_eq!(results.rows.len(), ROWS, "one result per input row");
    let mut rows_seen = HashSet::new();
    for (i, r) in results.rows.iter().enumerate() {
        let row: usize = r.get(0).parse().unwrap();
        assert!(rows_seen.insert(row), "row {row} appears twice");
        assert_eq!(row, i + 2, "results are in row order without gaps");
        let n = row - 2;
        assert_eq!(
            [r.get(1), r.get(2), r.get(3)],
            [
                identifiers[n].as_str(),
                "added",
                format!("case-{n:06}").as_str()
            ],
            "row {row}"
        );
    }
    assert_eq!(rows_seen.len(), ROWS);

    // The group holds exactly the 30,000 cases.
    let g = get_json(
        &http,
        &api(&server.base, &format!("/case-groups/{group}")),
        &token,
    )
    .await;
    assert_eq!(g["case_count"], ROWS, "{g}");
    let export = get_bytes(
        &http,
        &api(&server.base, &format!("/case-groups/{group}/export.csv")),
        &token,
    )
    .await;
    let members = read_table(&export, "export.csv", &Limits::default()).unwrap();
    let id_col = members.headers.find("case_id").expect("a case_id column");
    let ids: HashSet<String> = members
        .rows
        .iter()
        .map(|r| r.get(id_col).to_string())
        .collect();
    assert_eq!(members.rows.len(), ROWS, "one export row per member");
    let expected: HashSet<String> = (0..ROWS).map(|i| format!("case-{i:06}")).collect();
    assert_eq!(ids, expected, "the members are exactly the project's cases");
}
