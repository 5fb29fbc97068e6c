//! Surveys and quiet hours, with the dispatcher, on both engines (issue 13): a survey started
//! during the project's quiet hours waits in the outbox for the window, and its reminder and
//! expiry count from when the question actually went out, not from when it was queued; a
//! reminder that falls due in quiet hours waits too, and the expiry then counts from it.
//!
//! The dispatcher reads the real clock for quiet hours: the window is set around the current
//! local time, and "the window ends" is the admin clearing it (with the dispatcher restarted, so
//! that it reads the settings at once). The survey's timers run on a `ManualClock`.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use casecast_testkit::Workflows;
use std::time::Duration;

use casecast_core::case::CaseChanges;
use casecast_core::gateway::config::GatewayKind;
use casecast_core::survey::session::SessionStatus;
use casecast_core::survey::Survey;
use casecast_core::{CountryCode, PhoneNumber, ProjectSlug, TimeZoneName};
use casecast_engine::clock::ManualClock;
use casecast_store::gateways::NewGateway;
use casecast_store::messages::Message;
use casecast_store::projects::{NewProject, Project};
use casecast_store::settings::MessagingSettings;
use casecast_store::survey_sessions::SurveySession;
use casecast_store::Db;
use casecast_testkit::{on_both_engines, test_dispatch_options, Dialect, TestDb};
use serde_json::json;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

on_both_engines!(a_survey_in_quiet_hours_waits_and_its_timers_count_from_the_send);

async fn project_named(db: &Db, slug: &str) -> Project {
    db.create_project(&NewProject {
        slug: ProjectSlug::parse(slug).unwrap(),
        name: "P".into(),
        time_zone: TimeZoneName::parse("Africa/Kampala").unwrap(),
        country: Some(CountryCode::parse("UG").unwrap()),
    })
    .await
    .unwrap()
}

/// A log gateway for the project and a case with a phone number; returns the case ID.
async fn gateway_and_case(db: &Db, p: &Project, phone: &str) -> String {
    db.create_gateway(
        p.id,
        &NewGateway {
            name: "Log".into(),
            kind: GatewayKind::Log,
            config: json!({}),
            callback_base_url: "http://127.0.0.1:1".into(),
            max_segments_per_second: None,
            max_attempts: None,
            prefixes: vec![],
            is_default: true,
        },
    )
    .await
    .unwrap();
    db.create_case(
        p.id,
        None,
        &CaseChanges {
            name: Some("Amina".into()),
            phone_number: Some(Some(PhoneNumber::parse(phone, None).unwrap())),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .case_id
    .as_str()
    .to_string()
}

/// Quiet hours from an hour ago to an hour from now, local time.
async fn quiet_now(db: &Db, p: &Project) {
    let now = jiff::Zoned::now().with_time_zone(p.zone());
    let hm = |t: jiff::Zoned| format!("{:02}:{:02}", t.hour(), t.minute());
    let settings = MessagingSettings {
        quiet_hours_start: Some(hm(now.checked_sub(jiff::Span::new().hours(1)).unwrap())),
        quiet_hours_end: Some(hm(now.checked_add(jiff::Span::new().hours(1)).unwrap())),
        ..Default::default()
    };
    db.set_messaging_settings(p.id, &settings).await.unwrap();
}

async fn no_quiet_hours(db: &Db, p: &Project) {
    db.set_messaging_settings(p.id, &MessagingSettings::default())
        .await
        .unwrap();
}

/// A dispatcher running until [`Dispatcher::stop`].
struct Dispatcher(
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
);

impl Dispatcher {
    /// Starts one; it reads the gateways and the projects' settings as it starts.
    fn start(db: &Db) -> Dispatcher {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(casecast_engine::run_dispatcher(
            db.clone(),
            "t".into(),
            test_dispatch_options(),
            stopped,
        ));
        Dispatcher(stop, task)
    }

    async fn stop(self) {
        let _ = self.0.send(true);
        self.1.await.unwrap();
    }
}

async fn wait_status(db: &Db, project_id: i64, id: i64, status: &str) -> Message {
    casecast_testkit::eventually(
        &format!("message {id} {status}"),
        Duration::from_secs(30),
        || async {
            let m = db.message(project_id, id).await.unwrap();
            (m.status.as_str() == status).then_some(m)
        },
    )
    .await
}

/// Sends two messages in the open project and waits until both went: by then the dispatcher
/// has passed over every gateway, the quiet project's too, more than once.
async fn dispatcher_passed(db: &Db, open: &Project, case_id: &str) {
    for text in ["first", "second"] {
        let m = db
            .send_to_case(open, case_id, text, None, None)
            .await
            .unwrap();
        wait_status(db, open.id, m.id, "sent").await;
    }
}

/// The session's latest outbound message.
async fn latest(db: &Db, p: &Project, session_id: i64) -> Message {
    let mut all = db.messages_of_session(p.id, session_id).await.unwrap();
    all.retain(|m| m.direction.as_str() == "outbound");
    all.pop().unwrap()
}

async fn session(db: &Db, p: &Project, id: i64) -> SurveySession {
    db.survey_session(p.id, id).await.unwrap()
}

async fn fire(db: &Db, clock: &ManualClock) -> usize {
    casecast_engine::surveys::fire_due_timers(db, clock)
        .await
        .unwrap()
}

async fn a_survey_in_quiet_hours_waits_and_its_timers_count_from_the_send(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = t.db.clone();
    let quiet = project_named(&db, "quiet").await;
    let open = project_named(&db, "open").await;
    quiet_now(&db, &quiet).await;
    let quiet = db.project_by_id(quiet.id).await.unwrap();
    let case_id = gateway_and_case(&db, &quiet, "+256772000001").await;
    let open_case = gateway_and_case(&db, &open, "+256772000002").await;
    let survey = Survey::parse(&json!({
        "name": "Check",
        "max_attempts": 3,
        "reminders": {"every_minutes": 60, "times": 1},
        "expire_after_minutes": 300,
        "questions": [{"key": "visits", "type": "number", "text": "How many visits?"}]
    }))
    .unwrap();
    let survey_id = db.create_survey(quiet.id, &survey, None).await.unwrap().id;
    let started = db.start_survey(&quiet, survey_id, &case_id).await.unwrap();
    let question = latest(&db, &quiet, started.id).await;
    assert_eq!(
        (question.text.as_str(), question.status.as_str()),
        ("How many visits?", "queued")
    );

    // Quiet hours: the question waits, and no timer runs however late it gets.
    let dispatcher = Dispatcher::start(&db);
    dispatcher_passed(&db, &open, &open_case).await;
    let held = db.message(quiet.id, question.id).await.unwrap();
    assert_eq!(held.status.as_str(), "queued");
    let s = session(&db, &quiet, started.id).await;
    assert_eq!((s.reminder_due, s.expiry_due), (None, None), "{s:?}");
    let clock = ManualClock::new(question.created_at + 10 * HOUR);
    assert_eq!(fire(&db, &clock).await, 0);
    assert_eq!(
        session(&db, &quiet, started.id).await.status,
        SessionStatus::Active
    );
    dispatcher.stop().await;

    // The window opens: the question goes, and the timers count from then.
    no_quiet_hours(&db, &quiet).await;
    let dispatcher = Dispatcher::start(&db);
    let sent = wait_status(&db, quiet.id, question.id, "sent").await;
    let sent_at = sent.sent_at.unwrap();
    assert!(sent_at > question.created_at, "{sent:?}");
    let s = session(&db, &quiet, started.id).await;
    assert_eq!(
        (s.reminder_due, s.expiry_due),
        (Some(sent_at + HOUR), Some(sent_at + 300 * MINUTE)),
        "{s:?}"
    );
    dispatcher.stop().await;

    // Quiet hours again when the reminder falls due: it is queued and waits; the first
    // question's expiry is gone with its step, so nothing expires meanwhile.
    quiet_now(&db, &quiet).await;
    clock.set(question.created_at + HOUR);
    assert_eq!(fire(&db, &clock).await, 0, "counted from the queueing");
    clock.set(sent_at + HOUR);
    assert_eq!(fire(&db, &clock).await, 1, "the reminder");
    let reminder = latest(&db, &quiet, started.id).await;
    assert_ne!(reminder.id, question.id);
    assert_eq!(reminder.text, "How many visits?");
    let dispatcher = Dispatcher::start(&db);
    dispatcher_passed(&db, &open, &open_case).await;
    assert_eq!(
        db.message(quiet.id, reminder.id)
            .await
            .unwrap()
            .status
            .as_str(),
        "queued"
    );
    let s = session(&db, &quiet, started.id).await;
    assert_eq!((s.reminder_due, s.expiry_due), (None, None), "{s:?}");
    clock.set(sent_at + 10 * HOUR);
    assert_eq!(
        fire(&db, &clock).await,
        0,
        "expired while the reminder waited"
    );
    dispatcher.stop().await;

    // The window opens: the reminder goes; the expiry counts from it (no second reminder).
    no_quiet_hours(&db, &quiet).await;
    let dispatcher = Dispatcher::start(&db);
    let reminded = wait_status(&db, quiet.id, reminder.id, "sent").await;
    let reminded_at = reminded.sent_at.unwrap();
    let s = session(&db, &quiet, started.id).await;
    assert_eq!(
        (s.reminder_due, s.expiry_due),
        (None, Some(reminded_at + 300 * MINUTE)),
        "{s:?}"
    );
    dispatcher.stop().await;
    clock.set(reminded_at + 300 * MINUTE - 1);
    assert_eq!(fire(&db, &clock).await, 0);
    clock.set(reminded_at + 300 * MINUTE);
    assert_eq!(fire(&db, &clock).await, 1);
    let s = session(&db, &quiet, started.id).await;
    assert_eq!(s.status, SessionStatus::Expired, "{s:?}");
    assert_eq!(s.reason.as_deref(), Some("no reply for 300 minutes"));
    let all = db.messages_of_session(quiet.id, started.id).await.unwrap();
    assert_eq!(all.len(), 2, "the question and one reminder: {all:#?}");
}
