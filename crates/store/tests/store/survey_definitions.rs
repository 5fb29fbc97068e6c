//! Survey definitions: create, list with session counts, names unique ignoring case, the
//! editing rule (questions frozen while sessions are active), deletion (refused while sessions
//! are active or a live broadcast sends it; otherwise sessions go and messages are unlinked),
//! and isolation between projects.

use casecast_core::survey::Survey;
use casecast_store::survey_sessions::NewSession;
use casecast_store::surveys::SurveyEditError;
use casecast_store::{Db, StoreError};
use casecast_testkit::{on_both_engines, Dialect, TestDb};
use serde_json::json;
use sqlx::Row;

use crate::{case_with, project, raw_pool};

on_both_engines!(
    surveys_are_created_listed_with_counts_and_read,
    survey_names_are_unique_ignoring_case,
    questions_cannot_change_while_sessions_are_active,
    a_change_is_checked_whole_and_reports_every_problem,
    delete_is_refused_while_sessions_are_active,
    delete_is_refused_while_a_live_broadcast_sends_the_survey,
    delete_removes_sessions_and_unlinks_their_messages,
    surveys_of_another_project_are_not_found,
    concurrent_changes_are_each_applied_to_the_latest_survey,
);

pub fn survey(name: &str) -> Survey {
    Survey::parse(&json!({
        "name": name,
        "intro": "Hello",
        "questions": [
            {"key": "age", "type": "number", "text": "Your age?", "min": 0, "max": 120},
            {"key": "visited", "type": "yes_no", "text": {"*": "Visited?", "sw": "Ulitembelewa?"}}
        ]
    }))
    .unwrap()
}

/// The internal id of a case.
async fn case_pk(url: &str, case_id: &str) -> i64 {
    let pool = raw_pool(url).await;
    let row = sqlx::query("SELECT id FROM cases WHERE case_id = $1")
        .bind(case_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    row.try_get("id").unwrap()
}

/// An active session of the survey for a new case, as the engine starts one.
pub async fn active_session(db: &Db, url: &str, project_id: i64, survey_id: i64, n: u32) -> i64 {
    let phone = format!("+2567720000{n:02}");
    let case = case_with(
        db,
        project_id,
        None,
        &format!("Case {n}"),
        None,
        Some(&phone),
    )
    .await;
    let case_pk = case_pk(url, case.case_id.as_str()).await;
    let mut tx = db.begin_write().await.unwrap();
    let id = Db::insert_session(
        &mut tx,
        &NewSession {
            project_id,
            survey_id,
            case_pk,
            phone: &phone,
            language_code: None,
            gateway_id: 0,
            occurrence_id: None,
            started_by: None,
            now: 1_000,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn set_status(url: &str, session_id: i64, status: &str) {
    let pool = raw_pool(url).await;
    sqlx::query("UPDATE survey_sessions SET status = $1 WHERE id = $2")
        .bind(status)
        .bind(session_id)
        .execute(&pool)
        .await
        .unwrap();
}

fn conflict_code<T: std::fmt::Debug>(r: Result<T, StoreError>) -> (&'static str, String) {
    match r {
        Err(StoreError::Conflict { code, message }) => (code, message),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn edit_conflict<T: std::fmt::Debug>(r: Result<T, SurveyEditError>) -> (&'static str, String) {
    match r {
        Err(SurveyEditError::Store(StoreError::Conflict { code, message })) => (code, message),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

async fn surveys_are_created_listed_with_counts_and_read(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let a = db
        .create_survey(p.id, &survey("  First "), None)
        .await
        .unwrap();
    let b = db
        .create_survey(p.id, &survey("Second"), None)
        .await
        .unwrap();
    assert_eq!(a.survey.name, "First", "stored trimmed");
    let s1 = active_session(db, &t.url, p.id, b.id, 1).await;
    let s2 = active_session(db, &t.url, p.id, b.id, 2).await;
    active_session(db, &t.url, p.id, b.id, 3).await;
    set_status(&t.url, s1, "completed").await;
    set_status(&t.url, s2, "expired").await;
    let page = db.survey_overviews(p.id, 10, None).await.unwrap();
    let ids: Vec<i64> = page.items.iter().map(|o| o.stored.id).collect();
    assert_eq!(ids, vec![b.id, a.id], "newest first");
    assert!(page.next_cursor.is_none());
    let counts = &page.items[0].sessions;
    assert_eq!(
        (
            counts["active"],
            counts["completed"],
            counts["expired"],
            counts["cancelled"]
        ),
        (1, 1, 1, 0)
    );
    assert_eq!(
        page.items[1].sessions["active"], 0,
        "every status, zeros included"
    );
    // Pages of one.
    let first = db.survey_overviews(p.id, 1, None).await.unwrap();
    assert_eq!(first.items[0].stored.id, b.id);
    let cursor = first.next_cursor.unwrap().parse::<i64>().unwrap();
    let second = db.survey_overviews(p.id, 1, Some(cursor)).await.unwrap();
    assert_eq!(second.items[0].stored.id, a.id);
    assert!(second.next_cursor.is_none());
    let one = db.survey_overview(p.id, b.id).await.unwrap();
    assert_eq!(one.stored.survey, survey("Second"));
    assert_eq!(one.sessions["active"], 1);
}

async fn survey_names_are_unique_ignoring_case(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let other = project(db, "other", None).await;
    let a = db
        .create_survey(p.id, &survey("Follow-up"), None)
        .await
        .unwrap();
    let (code, message) = conflict_code(db.create_survey(p.id, &survey(" FOLLOW-UP "), None).await);
    assert_eq!(code, "name_taken");
    assert!(message.contains("FOLLOW-UP"), "{message}");
    // Another project may use the name.
    db.create_survey(other.id, &survey("follow-up"), None)
        .await
        .unwrap();
    // A rename onto another survey's name is refused; onto its own (other case) is fine.
    let b = db
        .create_survey(p.id, &survey("Second"), None)
        .await
        .unwrap();
    let (code, _) = edit_conflict(
        db.update_survey(p.id, b.id, |_| Ok(survey("follow-UP")))
            .await,
    );
    assert_eq!(code, "name_taken");
    let renamed = db
        .update_survey(p.id, a.id, |_| Ok(survey("FOLLOW-UP")))
        .await
        .unwrap();
    assert_eq!(renamed.survey.name, "FOLLOW-UP");
}

async fn questions_cannot_change_while_sessions_are_active(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let s = db
        .create_survey(p.id, &survey("Follow-up"), None)
        .await
        .unwrap();
    let one = active_session(db, &t.url, p.id, s.id, 1).await;
    let two = active_session(db, &t.url, p.id, s.id, 2).await;
    let mut changed = survey("Follow-up");
    changed.questions[0].max = Some(99.into());
    let (code, message) =
        edit_conflict(db.update_survey(p.id, s.id, |_| Ok(changed.clone())).await);
    assert_eq!(code, "survey_in_use");
    assert!(message.contains("2 active sessions"), "{message}");
    assert!(
        message.contains("completing, expiring, or being cancelled"),
        "{message}"
    );
    assert_eq!(
        db.survey(p.id, s.id).await.unwrap().survey,
        survey("Follow-up"),
        "unchanged"
    );
    // Everything else may change while they run.
    let renamed = db
        .update_survey(p.id, s.id, |old| {
            let mut new = old.clone();
            new.name = "Renamed".into();
            new.max_attempts = 5;
            new.end_text = Some(casecast_core::survey::Texts::from_default("Thanks"));
            Ok(new)
        })
        .await
        .unwrap();
    assert_eq!(renamed.survey.name, "Renamed");
    assert_eq!(renamed.survey.max_attempts, 5);
    assert!(renamed.updated_at >= s.updated_at);
    // Once they have ended, the questions may change.
    set_status(&t.url, one, "completed").await;
    let (_, message) = edit_conflict(db.update_survey(p.id, s.id, |_| Ok(changed.clone())).await);
    assert!(message.contains("1 active session;"), "{message}");
    set_status(&t.url, two, "cancelled").await;
    let done = db
        .update_survey(p.id, s.id, |_| Ok(changed.clone()))
        .await
        .unwrap();
    assert_eq!(done.survey.questions[0].max, Some(99.into()));
}

async fn a_change_is_checked_whole_and_reports_every_problem(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let s = db
        .create_survey(p.id, &survey("Follow-up"), None)
        .await
        .unwrap();
    let r = db
        .update_survey(p.id, s.id, |old| {
            let mut body = serde_json::to_value(old).unwrap();
            body["max_attempts"] = json!(0);
            body["questions"][1]["key"] = json!("age");
            Survey::parse(&body)
        })
        .await;
    match r {
        Err(SurveyEditError::Invalid(errors)) => {
            let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, vec!["max_attempts", "questions[1].key"]);
        }
        other => panic!("expected invalid, got {other:?}"),
    }
    assert_eq!(
        db.survey(p.id, s.id).await.unwrap().survey,
        survey("Follow-up")
    );
}

async fn delete_is_refused_while_sessions_are_active(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let s = db
        .create_survey(p.id, &survey("Follow-up"), None)
        .await
        .unwrap();
    let one = active_session(db, &t.url, p.id, s.id, 1).await;
    let (code, message) = conflict_code(db.delete_survey(p.id, s.id).await);
    assert_eq!(code, "survey_in_use");
    assert!(message.contains("1 active session"), "{message}");
    assert!(db.survey(p.id, s.id).await.is_ok());
    set_status(&t.url, one, "expired").await;
    db.delete_survey(p.id, s.id).await.unwrap();
    assert!(matches!(
        db.survey(p.id, s.id).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn insert_broadcast(url: &str, project_id: i64, content: &str, state: &str) -> i64 {
    let pool = raw_pool(url).await;
    let row = sqlx::query(
        "INSERT INTO broadcasts (project_id, name, recipients, content, schedule, state, created_at, updated_at)
         VALUES ($1, 'Survey send', '{\"case_groups\": [], \"cases\": []}', $2, '{\"kind\": \"immediate\"}', $3, 1, 1)
         RETURNING id",
    )
    .bind(project_id)
    .bind(content)
    .bind(state)
    .fetch_one(&pool)
    .await
    .unwrap();
    row.try_get("id").unwrap()
}

async fn delete_is_refused_while_a_live_broadcast_sends_the_survey(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let s = db
        .create_survey(p.id, &survey("Follow-up"), None)
        .await
        .unwrap();
    let other = db
        .create_survey(p.id, &survey("Other"), None)
        .await
        .unwrap();
    // Finished and cancelled broadcasts, and live ones of another survey, do not hold it.
    insert_broadcast(
        &t.url,
        p.id,
        &json!({"survey": s.id}).to_string(),
        "finished",
    )
    .await;
    insert_broadcast(
        &t.url,
        p.id,
        &json!({"survey": s.id.to_string()}).to_string(),
        "cancelled",
    )
    .await;
    insert_broadcast(
        &t.url,
        p.id,
        &json!({"survey": other.id}).to_string(),
        "active",
    )
    .await;
    insert_broadcast(
        &t.url,
        p.id,
        &json!({"sms": {"*": "the survey"}}).to_string(),
        "active",
    )
    .await;
    let paused = insert_broadcast(
        &t.url,
        p.id,
        &json!({"survey": s.id.to_string()}).to_string(),
        "paused",
    )
    .await;
    let (code, message) = conflict_code(db.delete_survey(p.id, s.id).await);
    assert_eq!(code, "survey_in_use");
    assert!(message.contains(&format!("(id {paused})")), "{message}");
    let pool = raw_pool(&t.url).await;
    sqlx::query("UPDATE broadcasts SET state = 'cancelled' WHERE id = $1")
        .bind(paused)
        .execute(&pool)
        .await
        .unwrap();
    let active =
        insert_broadcast(&t.url, p.id, &json!({"survey": s.id}).to_string(), "active").await;
    let (_, message) = conflict_code(db.delete_survey(p.id, s.id).await);
    assert!(message.contains(&format!("(id {active})")), "{message}");
    sqlx::query("UPDATE broadcasts SET state = 'finished' WHERE id = $1")
        .bind(active)
        .execute(&pool)
        .await
        .unwrap();
    db.delete_survey(p.id, s.id).await.unwrap();
    // The other survey is untouched.
    assert!(db.survey(p.id, other.id).await.is_ok());
}

async fn delete_removes_sessions_and_unlinks_their_messages(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let s = db
        .create_survey(p.id, &survey("Follow-up"), None)
        .await
        .unwrap();
    let kept = db.create_survey(p.id, &survey("Kept"), None).await.unwrap();
    let gone = active_session(db, &t.url, p.id, s.id, 1).await;
    let other = active_session(db, &t.url, p.id, kept.id, 2).await;
    set_status(&t.url, gone, "completed").await;
    let pool = raw_pool(&t.url).await;
    for session in [gone, other] {
        sqlx::query(
            "INSERT INTO messages (project_id, direction, phone, text, status, encoding, segments,
                next_attempt_at, created_at, expires_at, updated_at, survey_session_id, survey_step)
             VALUES ($1, 'outbound', '+256772000001', 'Your age?', 'sent', 'gsm7', 1, 0, 0, 0, 0, $2, 1)",
        )
        .bind(p.id)
        .bind(session)
        .execute(&pool)
        .await
        .unwrap();
    }
    db.delete_survey(p.id, s.id).await.unwrap();
    let sessions: Vec<i64> = sqlx::query("SELECT id FROM survey_sessions ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get("id").unwrap())
        .collect();
    assert_eq!(sessions, vec![other]);
    let links: Vec<Option<i64>> = sqlx::query("SELECT survey_session_id FROM messages ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get("survey_session_id").unwrap())
        .collect();
    assert_eq!(
        links,
        vec![None, Some(other)],
        "the message stays, unlinked"
    );
}

async fn surveys_of_another_project_are_not_found(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let q = project(db, "other", None).await;
    let s = db
        .create_survey(p.id, &survey("Follow-up"), None)
        .await
        .unwrap();
    assert!(matches!(
        db.survey(q.id, s.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.survey_overview(q.id, s.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.update_survey(q.id, s.id, |_| Ok(survey("Stolen"))).await,
        Err(SurveyEditError::Store(StoreError::NotFound(_)))
    ));
    assert!(matches!(
        db.delete_survey(q.id, s.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(db
        .survey_overviews(q.id, 10, None)
        .await
        .unwrap()
        .items
        .is_empty());
    assert_eq!(
        db.survey(p.id, s.id).await.unwrap().survey.name,
        "Follow-up"
    );
}

/// Each change reads the survey with its row locked, in the transaction that writes it: ten
/// changes at once, each adding its number to the name, leave all ten numbers (none is lost to
/// another that read the survey before it was written).
async fn concurrent_changes_are_each_applied_to_the_latest_survey(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let s = db.create_survey(p.id, &survey("S"), None).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            db.update_survey(p.id, s.id, |old| {
                let mut new = old.clone();
                new.name = format!("{} {i}", old.name);
                Ok(new)
            })
            .await
            .unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let name = db.survey(p.id, s.id).await.unwrap().survey.name;
    let mut numbers: Vec<u32> = name
        .split(' ')
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(numbers, (0..10).collect::<Vec<_>>(), "{name}");
}
