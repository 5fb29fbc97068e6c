//! The dispatcher end to end on both engines: a message queued for a case goes through a
//! gateway and its status follows.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use casecast_testkit::Workflows;
use std::time::Duration;

use casecast_core::case::CaseChanges;
use casecast_core::gateway::config::GatewayKind;
use casecast_core::{CountryCode, PhoneNumber, ProjectSlug, TimeZoneName};
use casecast_store::gateways::NewGateway;
use casecast_store::projects::{NewProject, Project};
use casecast_store::settings::MessagingSettings;
use casecast_store::Db;
use casecast_testkit::{on_both_engines, test_dispatch_options, Dialect, TestDb};

async fn project(db: &Db) -> Project {
    project_named(db, "pp").await
}

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

async fn wait_status(db: &Db, project_id: i64, id: i64, status: &str) {
    for _ in 0..200 {
        if db.message(project_id, id).await.unwrap().status == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "message {id} is {:?}, not {status}",
        db.message(project_id, id).await.unwrap()
    );
}

async fn a_message_to_a_case_goes_through_the_log_gateway(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = t.db.clone();
    let p = project(&db).await;
    let g = db
        .create_gateway(
            p.id,
            &NewGateway {
                name: "Log".into(),
                kind: GatewayKind::Log,
                config: serde_json::json!({}),
                callback_base_url: "http://127.0.0.1:1".into(),
                max_segments_per_second: None,
                max_attempts: None,
                prefixes: vec![],
                is_default: false,
            },
        )
        .await
        .unwrap();
    assert!(g.is_default, "the first gateway becomes the default");
    let case = db
        .create_case(
            p.id,
            None,
            &CaseChanges {
                name: Some("Amina".into()),
                phone_number: Some(Some(PhoneNumber::parse("+256772000001", None).unwrap())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let m = db
        .send_to_case(&p, case.case_id.as_str(), "Hello Amina", None, None)
        .await
        .unwrap();
    assert_eq!(m.status, "queued");
    assert_eq!(m.gateway_id, Some(g.id));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(casecast_engine::run_dispatcher(
        db.clone(),
        "t".into(),
        test_dispatch_options(),
        stopped,
    ));
    wait_status(&db, p.id, m.id, "sent").await;
    let _ = stop.send(true);
    task.await.unwrap();
}

/// A log gateway for the project and a case with a phone number; returns the case ID.
async fn gateway_and_case(db: &Db, p: &Project, phone: &str) -> String {
    db.create_gateway(
        p.id,
        &NewGateway {
            name: "Log".into(),
            kind: GatewayKind::Log,
            config: serde_json::json!({}),
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

async fn nothing_is_handed_over_during_quiet_hours(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = t.db.clone();
    let quiet = project_named(&db, "quiet").await;
    let open = project_named(&db, "open").await;
    // A window around the current local time, whatever the time of day the test runs.
    let now = jiff::Zoned::now().with_time_zone(quiet.zone());
    let hm = |t: jiff::Zoned| format!("{:02}:{:02}", t.hour(), t.minute());
    let settings = MessagingSettings {
        quiet_hours_start: Some(hm(now.checked_sub(jiff::Span::new().hours(1)).unwrap())),
        quiet_hours_end: Some(hm(now.checked_add(jiff::Span::new().hours(1)).unwrap())),
        ..Default::default()
    };
    db.set_messaging_settings(quiet.id, &settings)
        .await
        .unwrap();
    let quiet = db.project_by_id(quiet.id).await.unwrap();
    let held_case = gateway_and_case(&db, &quiet, "+256772000001").await;
    let open_case = gateway_and_case(&db, &open, "+256772000002").await;
    let held = db
        .send_to_case(&quiet, &held_case, "wait", None, None)
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(casecast_engine::run_dispatcher(
        db.clone(),
        "t".into(),
        test_dispatch_options(),
        stopped,
    ));
    // The other project's message, queued later, goes out: the dispatcher has passed over the
    // quiet project's gateway (more than once, by the time two of these have been sent).
    for text in ["first", "second"] {
        let m = db
            .send_to_case(&open, &open_case, text, None, None)
            .await
            .unwrap();
        wait_status(&db, open.id, m.id, "sent").await;
    }
    assert_eq!(
        db.message(quiet.id, held.id).await.unwrap().status,
        "queued"
    );
    // The window ends (here: the admin clears it): the message goes.
    db.set_messaging_settings(quiet.id, &MessagingSettings::default())
        .await
        .unwrap();
    wait_status(&db, quiet.id, held.id, "sent").await;
    let _ = stop.send(true);
    task.await.unwrap();
}

/// Runs a dispatcher until the returned sender is told to stop.
fn start_dispatcher(
    db: &Db,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(casecast_engine::run_dispatcher(
        db.clone(),
        "t".into(),
        test_dispatch_options(),
        stopped,
    ));
    (stop, task)
}

/// Stored settings that cannot be used (written past the checks: a hand edit, damage) hold
/// the project's messages until an admin saves settings again: their quiet hours are not
/// known, and must not be taken to be none.
async fn nothing_is_handed_over_while_the_stored_settings_cannot_be_used(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = t.db.clone();
    let broken = project_named(&db, "broken").await;
    let open = project_named(&db, "open").await;
    let held_case = gateway_and_case(&db, &broken, "+256772000001").await;
    let open_case = gateway_and_case(&db, &open, "+256772000002").await;
    let mut held = Vec::new();
    for stored in [
        // Quiet hours whose end is no time of day.
        r#"{"quiet_hours_start": "21:00", "quiet_hours_end": "25:00"}"#,
        // Not JSON at all.
        r#"{"quiet_hours_start": "21:00", "#,
    ] {
        t.store_messaging_settings_unchecked(broken.id, stored)
            .await;
        let project = db.project_by_id(broken.id).await.unwrap();
        assert!(project.messaging.is_err(), "{stored}");
        held.push(
            db.send_to_case(&project, &held_case, "wait", None, None)
                .await
                .unwrap(),
        );
        let (stop, task) = start_dispatcher(&db);
        // The other project's messages, queued later, go out: the dispatcher has passed over
        // the broken project's gateway (more than once, by the time two of these are sent).
        for text in ["first", "second"] {
            let m = db
                .send_to_case(&open, &open_case, text, None, None)
                .await
                .unwrap();
            wait_status(&db, open.id, m.id, "sent").await;
        }
        let _ = stop.send(true);
        task.await.unwrap();
        for m in &held {
            assert_eq!(
                db.message(broken.id, m.id).await.unwrap().status,
                "queued",
                "{stored}"
            );
        }
    }
    // An admin saves settings again: the messages go.
    db.set_messaging_settings(broken.id, &MessagingSettings::default())
        .await
        .unwrap();
    let (stop, task) = start_dispatcher(&db);
    for m in &held {
        wait_status(&db, broken.id, m.id, "sent").await;
    }
    let _ = stop.send(true);
    task.await.unwrap();
}

on_both_engines!(
    a_message_to_a_case_goes_through_the_log_gateway,
    nothing_is_handed_over_during_quiet_hours,
    nothing_is_handed_over_while_the_stored_settings_cannot_be_used,
);
