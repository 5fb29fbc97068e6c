//! Broadcasts whose content is a survey (issue 13): the preview counts the first message per
//! language, the fan-out starts one session per message written (ending the case's active
//! session first, and only when its new message is written), a resumed fan-out starts no
//! session twice, and a survey that is gone fails the occurrence.

use casecast_testkit::Workflows;

use casecast_core::broadcast::Draft;
use casecast_core::case::CaseChanges;
use casecast_core::sms;
use casecast_core::survey::session::{self, Event, SessionState, SessionStatus};
use casecast_core::survey::Survey;
use casecast_core::{CaseId, CountryCode, PhoneNumber};
use casecast_store::broadcasts::Excluded;
use casecast_store::projects::Project;
use casecast_store::survey_sessions::{NewSession, SessionWrite, Timers};
use casecast_store::surveys::StoredSurvey;
use casecast_store::{Db, StoreError};
use casecast_testkit::{on_both_engines, Dialect, TestDb};
use serde_json::{json, Value};
use sqlx::Row;

use crate::broadcast_reruns::interrupted;
use crate::broadcasts::{crowd, fan_out, occurrences, outbox, project_in, CROWD};
use crate::{change, group, raw_pool};

on_both_engines!(
    a_survey_broadcast_starts_a_session_per_message_written,
    a_resumed_survey_fan_out_starts_no_session_twice,
    a_survey_of_another_project_or_none_is_refused_and_a_deleted_one_fails_the_occurrence,
);

/// A three-question survey with a Swahili translation, reminders and an expiry.
pub fn survey_body(name: &str) -> Value {
    json!({
        "name": name,
        "intro": {"*": "Hello from the clinic.", "sw": "Habari kutoka kliniki."},
        "reminders": {"every_minutes": 60, "times": 2},
        "expire_after_minutes": 1440,
        "questions": [
            {"key": "visits", "type": "number", "text": {"*": "How many visits?", "sw": "Mara ngapi?"},
             "min": 0, "max": 20},
            {"key": "feeling", "type": "choice", "text": "How do you feel?",
             "choices": [{"value": "good", "text": "Good"}, {"value": "bad", "text": "Bad"}]},
            {"key": "due", "type": "date", "text": "Due date?"}
        ]
    })
}

pub async fn stored_survey(db: &Db, project_id: i64, name: &str) -> StoredSurvey {
    let survey = Survey::parse(&survey_body(name)).unwrap();
    db.create_survey(project_id, &survey, None).await.unwrap()
}

/// A broadcast of survey `survey_id` to these groups, sent now.
pub fn survey_draft(groups: &[i64], survey_id: i64) -> Draft {
    Draft::parse(&json!({
        "name": "Survey round",
        "recipients": {"case_groups": groups, "cases": []},
        "content": {"survey": survey_id},
    }))
    .unwrap()
}

/// Starts `survey` for a case as the engine would (a session at its first question), without
/// any message: the active session a new survey must end.
async fn active_session(
    db: &Db,
    pool: &sqlx::AnyPool,
    p: &Project,
    survey: &StoredSurvey,
    case_id: &str,
) -> i64 {
    let case = db.get_case(p.id, case_id).await.unwrap();
    let phone = case.phone_number.as_ref().unwrap().as_str().to_string();
    let case_pk: i64 =
        sqlx::query_scalar("SELECT id FROM cases WHERE project_id = $1 AND case_id = $2")
            .bind(p.id)
            .bind(case_id)
            .fetch_one(pool)
            .await
            .unwrap();
    let gateway = db.list_gateways(p.id).await.unwrap()[0].id;
    let mut tx = db.begin_write().await.unwrap();
    let id = Db::insert_session(
        &mut tx,
        &NewSession {
            project_id: p.id,
            survey_id: survey.id,
            case_pk,
            phone: &phone,
            language_code: case.language_code.as_deref(),
            gateway_id: gateway,
            occurrence_id: None,
            started_by: None,
            now: 1_000,
        },
    )
    .await
    .unwrap();
    let (state, _) = session::step(&survey.survey, None, &SessionState::new(), Event::Start);
    let write = SessionWrite {
        timers: Some(Timers {
            reminder_in_ms: Some(60_000),
            expiry_in_ms: 120_000,
        }),
        asked_at: Some(1_000),
        gateway_id: Some(gateway),
        now: 1_000,
    };
    Db::write_session(&mut tx, id, &state, &write)
        .await
        .unwrap();
    // Its message was sent: the timers run.
    sqlx::query(
        "UPDATE survey_sessions SET reminder_due = 61000, expiry_due = 121000 WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

/// A session row's columns the fan-out writes.
#[derive(Debug, PartialEq)]
struct SessionRow {
    id: i64,
    survey_id: i64,
    case_pk: i64,
    phone: String,
    language_code: Option<String>,
    gateway_id: Option<i64>,
    occurrence_id: Option<i64>,
    status: String,
    current_question: Option<i64>,
    step: i64,
    attempts: i64,
    reminders_sent: i64,
    answers: String,
    reason: Option<String>,
    reminder_in_ms: Option<i64>,
    expiry_in_ms: Option<i64>,
    reminder_due: Option<i64>,
    expiry_due: Option<i64>,
    asked_at: i64,
    started_at: i64,
    completed_at: Option<i64>,
}

async fn session_rows(pool: &sqlx::AnyPool, project_id: i64) -> Vec<SessionRow> {
    let rows = sqlx::query(
        "SELECT id, survey_id, case_pk, phone, language_code, gateway_id, occurrence_id, status,
            current_question, step, attempts, reminders_sent, answers, reason, reminder_in_ms,
            expiry_in_ms, reminder_due, expiry_due, asked_at, started_at, completed_at
         FROM survey_sessions WHERE project_id = $1 ORDER BY id",
    )
    .bind(project_id)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.iter()
        .map(|r| SessionRow {
            id: r.get("id"),
            survey_id: r.get("survey_id"),
            case_pk: r.get("case_pk"),
            phone: r.get("phone"),
            language_code: r.get("language_code"),
            gateway_id: r.get("gateway_id"),
            occurrence_id: r.get("occurrence_id"),
            status: r.get("status"),
            current_question: r.get("current_question"),
            step: r.get("step"),
            attempts: r.get("attempts"),
            reminders_sent: r.get("reminders_sent"),
            answers: r.get("answers"),
            reason: r.get("reason"),
            reminder_in_ms: r.get("reminder_in_ms"),
            expiry_in_ms: r.get("expiry_in_ms"),
            reminder_due: r.get("reminder_due"),
            expiry_due: r.get("expiry_due"),
            asked_at: r.get("asked_at"),
            started_at: r.get("started_at"),
            completed_at: r.get("completed_at"),
        })
        .collect()
}

/// (message id, case row, phone, text, gateway, survey_session_id, survey_step) of an
/// occurrence's messages.
type MessageRow = (i64, i64, String, String, i64, Option<i64>, Option<i64>);

async fn message_rows(pool: &sqlx::AnyPool, occurrence_id: i64) -> Vec<MessageRow> {
    let rows = sqlx::query(
        "SELECT id, case_pk, phone, text, gateway_id, survey_session_id, survey_step
         FROM messages WHERE occurrence_id = $1 ORDER BY id",
    )
    .bind(occurrence_id)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.get("id"),
                r.get("case_pk"),
                r.get("phone"),
                r.get("text"),
                r.get("gateway_id"),
                r.get("survey_session_id"),
                r.get("survey_step"),
            )
        })
        .collect()
}

async fn a_survey_broadcast_starts_a_session_per_message_written(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let pool = raw_pool(&t.url).await;
    let p = project_in(db, "alpha", "Africa/Kampala").await;
    let ug = CountryCode::parse("UG").unwrap();
    // (case ID, phone, language)
    let people: [(&str, Option<&str>, Option<&str>); 7] = [
        ("amina", Some("0772000001"), Some("sw")),
        ("baraka", Some("0772000002"), None),
        ("chloe", Some("0772000003"), Some("SW-ke")),
        // Shares amina's number: amina's message takes it, jon gets none.
        ("jon", Some("0772000001"), None),
        ("ivy", Some("0772000009"), None),
        ("hassan", None, Some("sw")),
        // Not a recipient.
        ("zed", Some("0772000010"), None),
    ];
    for (id, phone, language) in people {
        let c = CaseChanges {
            name: Some(id.to_string()),
            phone_number: phone.map(|n| Some(PhoneNumber::parse(n, Some(&ug)).unwrap())),
            language_code: language.map(|l| Some(l.to_string())),
            ..Default::default()
        };
        db.create_case(p.id, Some(CaseId::parse(id).unwrap()), &c)
            .await
            .unwrap();
    }
    db.add_opt_out(p.id, "+256772000009", "api").await.unwrap();
    let g = group(db, p.id, "Mothers").await;
    change(
        db,
        p.id,
        g.id,
        casecast_store::membership::Change::Add,
        &["amina", "baraka", "chloe", "jon", "ivy", "hassan"],
    )
    .await;
    let old = stored_survey(db, p.id, "Old survey").await;
    let survey = stored_survey(db, p.id, "ANC check").await;
    let chloe_old = active_session(db, &pool, &p, &old, "chloe").await;
    let jon_old = active_session(db, &pool, &p, &old, "jon").await;
    let zed_old = active_session(db, &pool, &p, &old, "zed").await;
    let before = db.survey_session(p.id, chloe_old).await.unwrap();

    // The preview: the first message (intro and first question) per language.
    let d = survey_draft(&[g.id], survey.id);
    let preview = db.preview_broadcast(&p, &d).await.unwrap();
    let first = survey.survey.first_message(None);
    let first_sw = survey.survey.first_message(Some("sw"));
    assert_eq!(first, "Hello from the clinic.\nHow many visits?");
    assert!(first_sw.starts_with("Habari kutoka kliniki."), "{first_sw}");
    let segments = |t: &str| sms::analyse(t).segments as i64;
    assert_eq!(preview.recipients, 3);
    assert_eq!(
        preview.excluded,
        Excluded {
            no_phone: 1,
            opted_out: 1,
            duplicate_phone: 1,
            ..Default::default()
        }
    );
    let languages: Vec<(String, i64, i64)> = (preview.languages.iter())
        .map(|l| (l.language.clone(), l.recipients, l.segments))
        .collect();
    assert_eq!(
        languages,
        vec![
            ("*".to_string(), 1, segments(&first)),
            ("sw".to_string(), 2, 2 * segments(&first_sw)),
        ]
    );
    assert_eq!(preview.segments, segments(&first) + 2 * segments(&first_sw));
    assert!(preview.missing.is_empty());
    let amina = preview
        .samples
        .iter()
        .find(|s| s.case_id == "amina")
        .unwrap();
    assert_eq!(amina.text, first_sw);

    // The fan-out.
    let b = db.create_broadcast(&p, &d, None).await.unwrap();
    let occurrence = occurrences(db, p.id, b.id).await.remove(0).id;
    fan_out(db, occurrence).await;
    let o = db.occurrence(p.id, occurrence).await.unwrap();
    assert_eq!((o.status.as_str(), o.queued), ("done", 3), "{o:?}");
    assert_eq!(o.excluded, preview.excluded);
    assert_eq!(o.segments, preview.segments);

    let messages = message_rows(&pool, occurrence).await;
    let sessions = session_rows(&pool, p.id).await;
    let pk = |id: &str| {
        let id = id.to_string();
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT id FROM cases WHERE project_id = $1 AND case_id = $2",
            )
            .bind(p.id)
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let new: Vec<&SessionRow> = sessions
        .iter()
        .filter(|s| s.survey_id == survey.id)
        .collect();
    assert_eq!(new.len(), 3, "{sessions:?}");
    let (reminder_in, expiry_in) = (Some(60 * 60_000), Some(1440 * 60_000));
    for (case_id, language, text) in [
        ("amina", Some("sw"), &first_sw),
        ("baraka", None, &first),
        ("chloe", Some("SW-ke"), &first_sw),
    ] {
        let case_pk = pk(case_id).await;
        let m = (messages.iter())
            .find(|m| m.1 == case_pk)
            .unwrap_or_else(|| panic!("{case_id} has no message"));
        let s = (new.iter())
            .find(|s| s.case_pk == case_pk)
            .unwrap_or_else(|| panic!("{case_id} has no session"));
        assert_eq!(&m.3, text, "{case_id}");
        assert_eq!((m.5, m.6), (Some(s.id), Some(1)), "{case_id}'s message");
        let expected = SessionRow {
            id: s.id,
            survey_id: survey.id,
            case_pk,
            phone: m.2.clone(),
            language_code: language.map(str::to_string),
            gateway_id: Some(m.4),
            occurrence_id: Some(occurrence),
            status: "active".into(),
            current_question: Some(0),
            step: 1,
            attempts: 0,
            reminders_sent: 0,
            answers: "{}".into(),
            reason: None,
            reminder_in_ms: reminder_in,
            expiry_in_ms: expiry_in,
            reminder_due: None,
            expiry_due: None,
            asked_at: s.started_at,
            started_at: s.started_at,
            completed_at: None,
        };
        assert_eq!(**s, expected, "{case_id}");
        assert!(s.started_at >= b.created_at, "{case_id}");
        // The store reads it back at the step function's state after Start.
        let read = db.survey_session(p.id, s.id).await.unwrap();
        let (started, _) =
            session::step(&survey.survey, language, &SessionState::new(), Event::Start);
        assert_eq!(read.state, started, "{case_id}");
    }

    // Chloe's old session ended as Event::Cancel leaves it; jon (no message: amina took the
    // number) and zed (not a recipient) keep theirs.
    let reason = format!("a new survey was started for the case (broadcast {})", b.id);
    let after = db.survey_session(p.id, chloe_old).await.unwrap();
    let (cancelled, _) = session::step(
        &old.survey,
        Some("SW-ke"),
        &before.state,
        Event::Cancel(reason.clone()),
    );
    assert_eq!(after.state, cancelled);
    assert_eq!(after.status, SessionStatus::Cancelled);
    assert_eq!(after.reason.as_deref(), Some(reason.as_str()));
    let row = sessions.iter().find(|s| s.id == chloe_old).unwrap();
    assert_eq!(
        (
            row.current_question,
            row.reminder_in_ms,
            row.expiry_in_ms,
            row.reminder_due,
            row.expiry_due
        ),
        (None, None, None, None, None)
    );
    assert!(row.completed_at.is_some());
    for (id, who) in [(jon_old, "jon"), (zed_old, "zed")] {
        let s = db.survey_session(p.id, id).await.unwrap();
        assert_eq!(
            (s.status, s.state.step, s.expiry_due),
            (SessionStatus::Active, 1, Some(121_000)),
            "{who}'s session was touched"
        );
    }
    // Nothing for the excluded.
    for case_id in ["jon", "ivy", "hassan"] {
        let case_pk = pk(case_id).await;
        assert!(
            !new.iter().any(|s| s.case_pk == case_pk),
            "{case_id} got a session"
        );
    }
    assert_eq!(outbox(db, p.id, occurrence).await.len(), 3);
}

/// A survey fan-out whose worker died between batches resumes: every recipient gets one
/// session, linked to its one message.
async fn a_resumed_survey_fan_out_starts_no_session_twice(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let pool = raw_pool(&t.url).await;
    let p = project_in(db, "alpha", "Africa/Kampala").await;
    let g = crowd(db, &p, CROWD).await;
    let survey = stored_survey(db, p.id, "ANC check").await;
    let b = db
        .create_broadcast(&p, &survey_draft(&[g], survey.id), None)
        .await
        .unwrap();
    let occurrence = occurrences(db, p.id, b.id).await.remove(0).id;
    let (job, written) = interrupted(db, &p, occurrence).await;
    let sessions: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM survey_sessions WHERE occurrence_id = $1")
            .bind(occurrence)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        sessions, written,
        "a session per message of the first batch"
    );

    // The dead worker's lease runs out; the job runs again, and once more after it finished.
    sqlx::query("UPDATE jobs SET locked_until = 0 WHERE id = $1")
        .bind(job)
        .execute(&pool)
        .await
        .unwrap();
    let taken = db
        .claim_job_for(casecast_store::jobs::JobKind::Fanout, occurrence, "b")
        .await
        .unwrap();
    assert_eq!(taken.map(|j| j.id), Some(job));
    db.process_fanout(occurrence, job, "b").await.unwrap();
    db.process_fanout(occurrence, 0, "late").await.unwrap();
    let o = db.occurrence(p.id, occurrence).await.unwrap();
    assert_eq!((o.status.as_str(), o.queued), ("done", CROWD as i64));

    let (sessions, cases, active): (i64, i64, i64) = {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n, COUNT(DISTINCT case_pk) AS cases,
                SUM(CASE WHEN status = 'active' AND step = 1 THEN 1 ELSE 0 END) AS active
             FROM survey_sessions WHERE occurrence_id = $1",
        )
        .bind(occurrence)
        .fetch_one(&pool)
        .await
        .unwrap();
        (r.get("n"), r.get("cases"), r.get("active"))
    };
    assert_eq!(
        (sessions, cases, active),
        (CROWD as i64, CROWD as i64, CROWD as i64)
    );
    // Every message points at the session of its own case, at step 1.
    let linked: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM messages m JOIN survey_sessions s ON s.id = m.survey_session_id
         WHERE m.occurrence_id = $1 AND s.case_pk = m.case_pk AND s.phone = m.phone
           AND m.survey_step = 1",
    )
    .bind(occurrence)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(linked, CROWD as i64);
}

async fn a_survey_of_another_project_or_none_is_refused_and_a_deleted_one_fails_the_occurrence(
    engine: Dialect,
) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let pool = raw_pool(&t.url).await;
    let p = project_in(db, "alpha", "Africa/Kampala").await;
    let other = project_in(db, "beta", "Africa/Kampala").await;
    let theirs = stored_survey(db, other.id, "Theirs").await;
    let ours = stored_survey(db, p.id, "Ours").await;
    let g = group(db, p.id, "G").await;
    crate::case_with(db, p.id, Some("c1"), "C1", None, Some("0772000001")).await;
    change(
        db,
        p.id,
        g.id,
        casecast_store::membership::Change::Add,
        &["c1"],
    )
    .await;
    for id in [theirs.id, ours.id + 1000] {
        let d = survey_draft(&[g.id], id);
        for e in [
            db.create_broadcast(&p, &d, None).await.unwrap_err(),
            db.preview_broadcast(&p, &d).await.unwrap_err(),
        ] {
            match e {
                StoreError::Invalid(e) => {
                    assert_eq!(e.field, "content.survey");
                    assert!(
                        e.message.contains(&format!("no survey {id}")),
                        "{}",
                        e.message
                    );
                }
                other => panic!("survey {id}: {other:?}"),
            }
        }
    }
    assert!(db
        .list_broadcasts(p.id, 10, None)
        .await
        .unwrap()
        .0
        .is_empty());

    // Deleted after the broadcast was saved, before its occurrence's fan-out ran.
    let b = db
        .create_broadcast(&p, &survey_draft(&[g.id], ours.id), None)
        .await
        .unwrap();
    let occurrence = occurrences(db, p.id, b.id).await.remove(0).id;
    sqlx::query("DELETE FROM surveys WHERE id = $1")
        .bind(ours.id)
        .execute(&pool)
        .await
        .unwrap();
    fan_out(db, occurrence).await;
    let o = db.occurrence(p.id, occurrence).await.unwrap();
    assert_eq!((o.status.as_str(), o.queued), ("failed", 0));
    let error = o.error.unwrap_or_default();
    assert!(
        error.contains("survey") && error.contains("deleted"),
        "{error}"
    );
    assert!(outbox(db, p.id, occurrence).await.is_empty());
}
