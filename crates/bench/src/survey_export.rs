//! `survey-export`: a survey's responses of N sessions (100,000 by default), each with answers
//! to four questions, downloaded as `GET /surveys/{id}/responses.csv` and `.xlsx` through
//! `casecast serve`: time to the first byte, rows/s, and the server's peak memory (a fresh
//! server for each, so that each peak is that download's own). The sessions are written
//! through the store's session statements, 5,000 a transaction (starting them through the
//! engine, one transaction each, is the `surveys` benchmark's to measure).

use std::path::Path;
use std::time::Instant;

use anyhow::bail;
use casecast_core::survey::session::{SessionState, SessionStatus};
use casecast_core::survey::Survey;
use casecast_core::{Email, Role};
use casecast_store::gateways::NewGateway;
use casecast_store::survey_sessions::{NewSession, SessionWrite};
use casecast_store::Db;
use serde_json::json;

use crate::common::{new_project, Bench};
use crate::export::fetch;
use crate::groups::{import_generated, phone_digits};

/// Sessions written per transaction.
const BATCH: usize = 5000;

fn write_cases(path: &Path, from: usize, to: usize) -> anyhow::Result<()> {
    let mut out = String::from("case_id,external_id,name,phone_number\n");
    for i in from..to {
        out.push_str(&format!(
            "sv-{i:07},SV-{i:07},Respondent {i},+256{}\n",
            phone_digits(i)
        ));
    }
    std::fs::write(path, out)?;
    Ok(())
}

fn survey() -> anyhow::Result<Survey> {
    Survey::parse(&json!({
        "name": "Bench survey",
        "expire_after_minutes": 600,
        "questions": [
            {"key": "visits", "type": "number", "text": "How many visits?"},
            {"key": "feeling", "type": "choice", "text": "How do you feel?",
             "choices": [{"value": "good", "text": "Good"}, {"value": "bad", "text": "Bad"}]},
            {"key": "due", "type": "date", "text": "Due date?"},
            {"key": "note", "type": "text", "text": "Anything else?"}
        ]
    }))
    .map_err(|e| anyhow::anyhow!("the bench survey: {e:?}"))
}

/// Writes a session for each of the `cases` generated cases: three of four completed with
/// every answer, the others active after one.
async fn write_sessions(
    db: &Db,
    project_id: i64,
    survey_id: i64,
    gateway_id: i64,
    cases: usize,
) -> anyhow::Result<usize> {
    let now = casecast_core::time::now_ms();
    let mut written = 0;
    for start in (0..cases).step_by(BATCH) {
        let mut keys = Vec::new();
        for i in start..(start + BATCH).min(cases) {
            let case_id = format!("sv-{i:07}");
            let Some(case) = db.case_recipient(project_id, &case_id).await? else {
                bail!("case {case_id} was not imported");
            };
            keys.push((i, case.case_pk, case.phone.unwrap_or_default()));
        }
        let mut tx = db.begin_write().await?;
        for (i, case_pk, phone) in &keys {
            let id = Db::insert_session(
                &mut tx,
                &NewSession {
                    project_id,
                    survey_id,
                    case_pk: *case_pk,
                    phone,
                    language_code: None,
                    gateway_id,
                    occurrence_id: None,
                    started_by: None,
                    now,
                },
            )
            .await?;
            let done = i % 4 != 0;
            let mut answers = serde_json::Map::new();
            answers.insert("visits".into(), json!(i % 20));
            if done {
                answers.insert("feeling".into(), json!("good"));
                answers.insert("due".into(), json!("2026-12-31"));
                answers.insert("note".into(), json!(format!("note {i}")));
            }
            let state = SessionState {
                status: if done {
                    SessionStatus::Completed
                } else {
                    SessionStatus::Active
                },
                current_question: (!done).then_some(1),
                answers,
                step: if done { 4 } else { 1 },
                ..Default::default()
            };
            Db::write_session(
                &mut tx,
                id,
                &state,
                &SessionWrite {
                    now,
                    ..Default::default()
                },
            )
            .await?;
        }
        tx.commit().await?;
        written += keys.len();
    }
    Ok(written)
}

pub async fn run(bench: &Bench, sessions: usize) -> anyhow::Result<()> {
    let db = bench.open().await?;
    let engine = db.dialect().name();
    let project = new_project(&db).await?;
    let started = Instant::now();
    let created = import_generated(&db, &project.slug, sessions, write_cases).await?;
    let gateway = db
        .create_gateway(
            project.id,
            &NewGateway {
                name: "Log".into(),
                kind: casecast_core::gateway::config::GatewayKind::Log,
                config: json!({}),
                callback_base_url: "http://127.0.0.1:8080".into(),
                max_segments_per_second: None,
                max_attempts: None,
                prefixes: Vec::new(),
                is_default: true,
            },
        )
        .await?;
    let survey = db.create_survey(project.id, &survey()?, None).await?;
    let written = write_sessions(&db, project.id, survey.id, gateway.id, created).await?;
    println!(
        "[{engine}] setup: {created} cases and {written} survey sessions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let password = casecast_store::secrets::random_hex(12);
    let user = db
        .upsert_user(
            &Email::parse("bench@bench.example.org")?,
            &password,
            project.id,
            Role::Viewer,
        )
        .await?;
    let (_, token) = db.create_token(project.id, user.id, "bench").await?;
    db.close().await;
    let http = reqwest::Client::new();
    for ext in ["csv", "xlsx"] {
        let (server, base) = bench.start_server()?;
        let got = fetch(
            &http,
            &format!(
                "{base}/api/v1/projects/{}/surveys/{}/responses.{ext}",
                project.slug, survey.id
            ),
            &token,
        )
        .await;
        let peak = server.peak_rss_mib().unwrap_or(f64::NAN);
        drop(server);
        let got = got?;
        if ext == "csv" && got.lines != written as u64 + 1 {
            bail!("the CSV has {} lines for {written} sessions", got.lines);
        }
        println!(
            "[{engine}] GET /surveys/{{id}}/responses.{ext} of {written} sessions through `casecast serve`: \
             first byte after {:.2} s, all {:.1} MB in {:.1} s ({:.0} rows/s), server peak RSS {peak:.0} MiB",
            got.first_byte,
            got.bytes as f64 / 1e6,
            got.total,
            written as f64 / got.total,
        );
    }
    Ok(())
}
