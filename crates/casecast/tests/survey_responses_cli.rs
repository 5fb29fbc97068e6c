//! `casecast surveys responses` as an operator runs it: a survey's responses written to `.csv`
//! (format from the name, or `--format`) and `.xlsx` (`--output`), the same rows as the API's
//! download; an unknown survey, or another project's, fails with one line and leaves no file.
//! On SQLite and on PostgreSQL (`CASECAST_TEST_PG`).

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use casecast_core::gateway::config::GatewayKind;
use casecast_core::gateway::InboundSms;
use casecast_core::sheet::{read_table, Limits};
use casecast_core::survey::Survey;
use casecast_store::gateways::NewGateway;
use casecast_testkit::cli::{self, Run};
use casecast_testkit::{on_both_engines, Dialect, TestDb, Workflows};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_casecast");

on_both_engines!(responses_are_written_as_csv_and_xlsx);

async fn run(url: &str, args: &[&str]) -> Run {
    cli::run(cli::command(BIN, Some(url)), args, None).await
}

async fn responses_are_written_as_csv_and_xlsx(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    for project in ["clinic", "other"] {
        run(
            &t.url,
            &[
                "project",
                "create",
                project,
                "--country",
                "UG",
                "--time-zone",
                "Africa/Kampala",
            ],
        )
        .await
        .ok();
    }
    std::fs::write(
        path("cases.csv"),
        "case_id,external_id,name,phone_number\nc-1,007,\"Akello, Zoë\",0772 100001\nc-2,,@Okot,0772 100002\n",
    )
    .unwrap();
    run(
        &t.url,
        &["cases", "import", "--project", "clinic", &path("cases.csv")],
    )
    .await
    .ok();
    let db = &t.db;
    let clinic = db.project_by_slug("clinic").await.unwrap();
    let other = db.project_by_slug("other").await.unwrap();
    let gateway = db
        .create_gateway(
            clinic.id,
            &NewGateway {
                name: "Log".into(),
                kind: GatewayKind::Log,
                config: json!({}),
                callback_base_url: "http://127.0.0.1:8080".into(),
                max_segments_per_second: None,
                max_attempts: None,
                prefixes: Vec::new(),
                is_default: false,
            },
        )
        .await
        .unwrap();
    let body = json!({
        "name": "Check",
        "expire_after_minutes": 60,
        "questions": [
            {"key": "visits", "type": "number", "text": "How many?"},
            {"key": "ok", "type": "yes_no", "text": "Well?"}
        ]
    });
    let survey = Survey::parse(&body).unwrap();
    let id = db.create_survey(clinic.id, &survey, None).await.unwrap().id;
    let other_id = db.create_survey(other.id, &survey, None).await.unwrap().id;
    for case in ["c-1", "c-2"] {
        db.start_survey(&clinic, id, case).await.unwrap();
    }
    for text in ["12.5", "y"] {
        let sms = InboundSms {
            from: "+256772100001".into(),
            to: "1".into(),
            text: text.into(),
            gateway_message_id: None,
        };
        db.record_inbound(&gateway, &sms).await.unwrap();
    }
    let id_text = id.to_string();
    let csv = path("responses.csv");
    let out = run(
        &t.url,
        &[
            "surveys",
            "responses",
            "--project",
            "clinic",
            &id_text,
            &csv,
        ],
    )
    .await;
    assert_eq!(
        out.ok(),
        format!("wrote the responses of 2 sessions of survey {id} 'Check' to '{csv}'\n")
    );
    let xlsx = path("responses.xlsx");
    let out = run(
        &t.url,
        &[
            "surveys",
            "responses",
            "--project",
            "clinic",
            &id_text,
            "--output",
            &xlsx,
        ],
    )
    .await;
    out.ok();
    let named_csv = path("as-csv.data");
    run(
        &t.url,
        &[
            "surveys",
            "responses",
            "--project",
            "clinic",
            &id_text,
            "--format",
            "csv",
            "--output",
            &named_csv,
        ],
    )
    .await
    .ok();
    assert_eq!(
        std::fs::read(&named_csv).unwrap(),
        std::fs::read(&csv).unwrap()
    );
    let raw = std::fs::read_to_string(&csv).unwrap();
    assert!(
        raw.contains(",'@Okot,"),
        "a formula start is guarded: {raw}"
    );
    for (file, name) in [(&csv, "responses.csv"), (&xlsx, "responses.xlsx")] {
        let table = read_table(&std::fs::read(file).unwrap(), name, &Limits::default()).unwrap();
        assert_eq!(
            table.headers.0,
            [
                "case_id",
                "external_id",
                "name",
                "phone_number",
                "status",
                "started_at",
                "completed_at",
                "visits",
                "ok"
            ]
        );
        let rows: Vec<Vec<String>> = table
            .rows
            .iter()
            .map(|r| (0..9).map(|c| r.get(c).to_string()).collect())
            .collect();
        assert_eq!(rows.len(), 2, "{name}");
        let row = |i: usize, cols: &[usize]| -> Vec<String> {
            cols.iter().map(|c| rows[i][*c].clone()).collect()
        };
        let cols = [0, 1, 2, 3, 4, 7, 8];
        assert_eq!(
            row(0, &cols),
            [
                "c-1",
                "007",
                "Akello, Zoë",
                "+256772100001",
                "completed",
                "12.5",
                "yes"
            ],
            "{name}"
        );
        assert_eq!(
            row(1, &cols),
            ["c-2", "", "@Okot", "+256772100002", "active", "", ""],
            "{name}"
        );
        assert!(rows[0][6].ends_with("+03:00"), "{name}: {:?}", rows[0]);
        assert_eq!(rows[1][6], "", "{name}: an active session has not ended");
    }
    // Unknown, another project's, or no number: one line, no file.
    for bad in [
        other_id.to_string(),
        "999999".to_string(),
        "abc".to_string(),
    ] {
        let file = path(&format!("bad-{bad}.csv"));
        let out = run(
            &t.url,
            &["surveys", "responses", "--project", "clinic", &bad, &file],
        )
        .await;
        out.fails(&[&format!("survey {bad} not found in project 'clinic'")]);
        assert!(!std::path::Path::new(&file).exists());
    }
    run(
        &t.url,
        &[
            "surveys",
            "responses",
            "--project",
            "nowhere",
            &id_text,
            &csv,
        ],
    )
    .await
    .fails(&["nowhere"]);
    run(
        &t.url,
        &["surveys", "responses", "--project", "clinic", &id_text],
    )
    .await
    .fails(&["--output FILE"]);
}
