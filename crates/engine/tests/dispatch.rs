//! The dispatcher end to end on both engines: a message queued for a case goes through a
//! gateway and its status follows.

use std::time::Duration;

use casecast_core::case::CaseChanges;
use casecast_core::{CountryCode, PhoneNumber, ProjectSlug, TimeZoneName};
use casecast_gateways::config::GatewayKind;
use casecast_store::gateways::NewGateway;
use casecast_store::projects::{NewProject, Project};
use casecast_store::Db;
use casecast_testkit::{on_both_engines, test_dispatch_options, Engine, TestDb};

async fn project(db: &Db) -> Project {
    db.create_project(&NewProject {
        slug: ProjectSlug::parse("pp").unwrap(),
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

async fn a_message_to_a_case_goes_through_the_log_gateway(engine: Engine) {
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

on_both_engines!(a_message_to_a_case_goes_through_the_log_gateway);
