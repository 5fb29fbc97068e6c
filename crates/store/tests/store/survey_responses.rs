//! Following a survey on the store: its sessions by status and case with a keyset cursor,
//! counts and completion rate (only the project's), responses read a page at a time in id
//! order, and a session as a row of the responses export.

use casecast_core::gateway::InboundSms;
use casecast_core::survey::session::SessionStatus;
use casecast_core::survey::Survey;
use casecast_store::survey_responses::{ResponseColumns, SessionFilter};
use casecast_testkit::Workflows;
use casecast_testkit::{on_both_engines, Dialect, TestDb};
use serde_json::json;

use crate::gateways::log;
use crate::{case_with, project};

on_both_engines!(sessions_list_count_and_page_for_export);

async fn sessions_list_count_and_page_for_export(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "alpha", Some("UG")).await;
    let other = project(db, "beta", Some("UG")).await;
    let g = db.create_gateway(p.id, &log("L", &[])).await.unwrap();
    let survey = Survey::parse(&json!({
        "name": "Check",
        "expire_after_minutes": 60,
        "questions": [
            {"key": "visits", "type": "number", "text": "How many?"},
            {"key": "ok", "type": "yes_no", "text": "Well?"}
        ]
    }))
    .unwrap();
    let stored = db.create_survey(p.id, &survey, None).await.unwrap();
    let mut cases = Vec::new();
    for i in 0..5 {
        let c = case_with(
            db,
            p.id,
            None,
            &format!("Case {i}"),
            Some(&format!("E-{i}")),
            Some(&format!("077200000{i}")),
        )
        .await;
        db.start_survey(&p, stored.id, c.case_id.as_str())
            .await
            .unwrap();
        cases.push(c);
    }
    // Case 0 completes; case 1 answers one question; case 2 gets the survey again (its first
    // session is cancelled).
    for (phone, text) in [
        ("+256772000000", "3"),
        ("+256772000000", "yes"),
        ("+256772000001", "2.5"),
    ] {
        let sms = InboundSms {
            from: phone.into(),
            to: "1".into(),
            text: text.into(),
            gateway_message_id: None,
        };
        db.record_inbound(&g, &sms).await.unwrap();
    }
    db.start_survey(&p, stored.id, cases[2].case_id.as_str())
        .await
        .unwrap();

    let progress = db.survey_progress(p.id, stored.id).await.unwrap();
    assert_eq!(progress.total, 6);
    assert_eq!(
        progress.counts,
        [
            ("active", 4),
            ("cancelled", 1),
            ("completed", 1),
            ("expired", 0)
        ]
        .map(|(k, v)| (k.to_string(), v))
        .into()
    );
    assert_eq!(progress.completed(), 1);
    assert_eq!(progress.completion_percent(), "16.7%");
    let none = db.survey_progress(other.id, stored.id).await.unwrap();
    assert_eq!((none.total, none.completion_rate()), (0, None));
    assert_eq!(none.completion_percent(), "–");

    // Every session, newest first, two a page.
    let all = SessionFilter::default();
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = db
            .list_survey_sessions(p.id, stored.id, &all, 2, cursor)
            .await
            .unwrap();
        assert!(page.len() <= 2);
        ids.extend(page.iter().map(|s| s.id));
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(ids.len(), 6);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    let by = |status: Option<SessionStatus>, case: Option<usize>| SessionFilter {
        status,
        case_id: case.map(|i| cases[i].case_id.as_str().to_string()),
    };
    let (active, _) = db
        .list_survey_sessions(
            p.id,
            stored.id,
            &by(Some(SessionStatus::Active), None),
            50,
            None,
        )
        .await
        .unwrap();
    assert_eq!(active.len(), 4);
    let (of_two, _) = db
        .list_survey_sessions(p.id, stored.id, &by(None, Some(2)), 50, None)
        .await
        .unwrap();
    assert_eq!(
        of_two.iter().map(|s| s.status).collect::<Vec<_>>(),
        vec![SessionStatus::Active, SessionStatus::Cancelled]
    );
    let (both, _) = db
        .list_survey_sessions(
            p.id,
            stored.id,
            &by(Some(SessionStatus::Completed), Some(0)),
            50,
            None,
        )
        .await
        .unwrap();
    assert_eq!(both.len(), 1);
    let (nothing, next) = db
        .list_survey_sessions(other.id, stored.id, &all, 50, None)
        .await
        .unwrap();
    assert!(
        nothing.is_empty() && next.is_none(),
        "another project's survey lists nothing"
    );

    // Responses in id order, a page at a time.
    let mut read = Vec::new();
    let mut after = 0;
    loop {
        let (page, next) = db.responses_page(p.id, stored.id, after, 4).await.unwrap();
        read.extend(page);
        match next {
            Some(n) => after = n,
            None => break,
        }
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(read.iter().map(|s| s.id).collect::<Vec<_>>(), sorted);
    let columns = ResponseColumns::new(&stored.survey, p.zone());
    assert_eq!(
        columns.headers(),
        vec![
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
    assert_eq!(columns.number_columns(), vec![7]);
    assert_eq!(columns.text_columns(), vec![0, 1, 2, 3, 4, 5, 6, 8]);
    let first = columns.row(&read[0]);
    let done = read[0].completed_at.unwrap();
    assert_eq!(
        first,
        vec![
            cases[0].case_id.as_str().to_string(),
            "E-0".to_string(),
            "Case 0".to_string(),
            "+256772000000".to_string(),
            "completed".to_string(),
            columns.time(read[0].started_at),
            columns.time(done),
            "3".to_string(),
            "yes".to_string(),
        ]
    );
    let kampala = jiff::Timestamp::from_millisecond(done)
        .unwrap()
        .to_zoned(p.zone())
        .strftime("%Y-%m-%dT%H:%M:%S+03:00")
        .to_string();
    assert_eq!(first[6], kampala, "times in the project's zone");
    assert_eq!(
        columns.row(&read[1])[7..],
        ["2.5".to_string(), String::new()]
    );
}
