//! Keywords through the inbound router, on both engines (issue 14): each action, unknown and
//! ambiguous senders, a missing field, a keyword overriding an open survey or not, the
//! per-number reply limit, the default reply, and one message acted on once however many
//! handlers race for it.

use casecast_core::keyword::Keyword;
use casecast_core::survey::session::SessionStatus;
use casecast_engine::clock::ManualClock;
use casecast_store::messages::{Message, MessageFilter, NewInbound};
use casecast_store::projects::Project;
use casecast_store::Db;
use casecast_testkit::Workflows;
use casecast_testkit::{on_both_engines, Dialect, TestDb};
use serde_json::{json, Value};

use crate::surveys::{mo, send_all, session, setup, survey_body, Setup};
use crate::{case_with, raw_pool};

on_both_engines!(
    reg_from_an_unknown_number_creates_the_case_and_replies,
    join_adds_the_sender_to_a_group_and_a_missing_field_is_explained,
    a_shared_number_is_told_so_unless_every_action_fits_every_case,
    a_keyword_is_a_survey_answer_unless_it_overrides_the_survey,
    a_keyword_starts_a_survey,
    replies_to_one_number_stop_at_the_limit,
    the_default_reply_goes_to_unmatched_messages_of_numbers_not_opted_out,
    a_keyword_message_is_acted_on_once_by_racing_handlers,
    keyword_messages_handled_together_each_get_their_own_outcome,
    cases_made_together_are_each_checked_alone,
);

async fn keyword(db: &Db, p: &Project, body: Value) -> i64 {
    let k = Keyword::parse(&body, &["STOP", "START"]).unwrap();
    db.create_keyword(p.id, &k, None).await.unwrap().id
}

/// Outbound messages to a number, oldest first.
async fn outbound_to(db: &Db, p: &Project, phone: &str) -> Vec<Message> {
    let mut m = db
        .list_messages(
            p.id,
            &MessageFilter {
                phone_number: Some(phone.into()),
                ..MessageFilter::default()
            },
            100,
            None,
        )
        .await
        .unwrap()
        .0;
    m.retain(|m| m.direction.as_str() == "outbound");
    m.sort_by_key(|m| m.id);
    m
}

/// (keyword_id, reply_to) of a message, read from the table.
async fn links(url: &str, id: i64) -> (Option<i64>, Option<i64>) {
    let pool = raw_pool(url).await;
    sqlx::query_as("SELECT keyword_id, reply_to FROM messages WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap()
}

async fn reg_from_an_unknown_number_creates_the_case_and_replies(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let Setup { p, g, .. } = setup(db, survey_body()).await;
    let reg = keyword(
        db,
        &p,
        json!({"keyword": "REG", "fields": ["name", "birth_date"],
               "unknown_sender": "create_case", "case_type": "participant",
               "actions": [{"type": "set_properties"},
                           {"type": "reply", "text": "Welcome {case.name}, born {field.birth_date}."}]}),
    )
    .await;
    let r = db
        .record_inbound(&g, &mo("+256772000101", "reg Amina 01/03/1990."))
        .await
        .unwrap();
    let cases = db
        .list_cases(p.id, &Default::default(), 10, None)
        .await
        .unwrap()
        .items;
    let made: Vec<_> = cases
        .iter()
        .filter(|c| c.phone_number.as_ref().map(|n| n.as_str()) == Some("+256772000101"))
        .collect();
    assert_eq!(made.len(), 1, "one case made");
    assert_eq!(made[0].name, "Amina");
    assert_eq!(made[0].case_type, "participant");
    assert_eq!(
        made[0].properties.get("birth_date").map(String::as_str),
        Some("1990-03-01")
    );
    let out = outbound_to(db, &p, "+256772000101").await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].text, "Welcome Amina, born 1990-03-01.");
    assert_eq!(
        links(&t.url, out[0].id).await,
        (Some(reg), Some(r.message.id))
    );
    assert_eq!(links(&t.url, r.message.id).await.0, Some(reg));
    assert_eq!(
        r.message.case_id.as_deref(),
        Some(made[0].case_id.as_str()),
        "the message is logged on the case it made"
    );
    // A second REG from the same number changes that case, and makes no other.
    db.record_inbound(&g, &mo("+256772000101", "REG Aminah 1990-03-02"))
        .await
        .unwrap();
    let case = db.get_case(p.id, made[0].case_id.as_str()).await.unwrap();
    assert_eq!(case.name, "Aminah");
    assert_eq!(
        case.properties.get("birth_date").map(String::as_str),
        Some("1990-03-02")
    );
    // A date that is not one: told which field and the form, nothing changes.
    db.record_inbound(&g, &mo("+256772000101", "REG Amina 31/02/1990"))
        .await
        .unwrap();
    let out = outbound_to(db, &p, "+256772000101").await;
    assert!(
        out.last().unwrap().text.contains("birth date"),
        "{:?}",
        out.last().unwrap().text
    );
    let case = db.get_case(p.id, made[0].case_id.as_str()).await.unwrap();
    assert_eq!(case.name, "Aminah");
}

async fn join_adds_the_sender_to_a_group_and_a_missing_field_is_explained(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let Setup { p, g, .. } = setup(db, survey_body()).await;
    let anc = crate::group(db, p.id, "ANC").await;
    keyword(
        db,
        &p,
        json!({"keyword": "JOIN", "actions": [{"type": "add_to_group", "case_group_id": anc.id},
               {"type": "reply", "text": "You joined ANC reminders."}]}),
    )
    .await;
    keyword(
        db,
        &p,
        json!({"keyword": "REG", "fields": ["name", "birth_date"], "unknown_sender": "create_case",
               "actions": [{"type": "set_properties"}]}),
    )
    .await;
    let c = case_with(db, p.id, None, "Bea", None, Some("0772000102")).await;
    db.record_inbound(&g, &mo("+256772000102", "#join anc!"))
        .await
        .unwrap();
    db.record_inbound(&g, &mo("+256772000102", "JOIN"))
        .await
        .unwrap();
    let group = db.get_group(p.id, anc.id).await.unwrap();
    assert_eq!(group.case_count, 1, "joined once");
    let mut history = db.group_history(p.id, anc.id, 10).await.unwrap();
    history.retain(|h| h.action == "add");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].via, "keyword");
    assert_eq!(
        history[0].case.as_ref().map(|c| c.0.clone()),
        Some(c.case_id.to_string())
    );
    assert_eq!(
        outbound_to(db, &p, "+256772000102").await.len(),
        2,
        "each JOIN is answered"
    );
    // Too few words: the reply says what is missing, and no case is made.
    db.record_inbound(&g, &mo("+256772000999", "REG Amina"))
        .await
        .unwrap();
    let out = outbound_to(db, &p, "+256772000999").await;
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].text,
        "Missing birth date. Send: REG <name> <birth date>"
    );
    assert_eq!(
        db.count_cases(p.id).await.unwrap(),
        1,
        "no case made from a half message"
    );
}

async fn a_shared_number_is_told_so_unless_every_action_fits_every_case(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let Setup { p, g, .. } = setup(db, survey_body()).await;
    let anc = crate::group(db, p.id, "ANC").await;
    keyword(
        db,
        &p,
        json!({"keyword": "JOIN", "actions": [{"type": "add_to_group", "case_group_id": anc.id},
               {"type": "reply", "text": "Joined."}]}),
    )
    .await;
    keyword(
        db,
        &p,
        json!({"keyword": "VISIT", "fields": ["visits"], "actions": [{"type": "set_properties"}]}),
    )
    .await;
    let a = case_with(db, p.id, None, "Mother", None, Some("0772000103")).await;
    let b = case_with(db, p.id, None, "Child", None, Some("0772000103")).await;
    db.record_inbound(&g, &mo("+256772000103", "VISIT 3"))
        .await
        .unwrap();
    for c in [&a, &b] {
        let c = db.get_case(p.id, c.case_id.as_str()).await.unwrap();
        assert_eq!(c.properties.get("visits"), None, "no guessing");
    }
    let out = outbound_to(db, &p, "+256772000103").await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].text, casecast_engine::keywords::AMBIGUOUS_REPLY);
    db.record_inbound(&g, &mo("+256772000103", "JOIN"))
        .await
        .unwrap();
    assert_eq!(
        db.get_group(p.id, anc.id).await.unwrap().case_count,
        2,
        "a group action fits every case"
    );
    let out = outbound_to(db, &p, "+256772000103").await;
    assert_eq!(out.len(), 2, "the reply goes once");
    assert_eq!(out[1].text, "Joined.");
}

async fn a_keyword_is_a_survey_answer_unless_it_overrides_the_survey(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let s = setup(db, survey_body()).await;
    keyword(
        db,
        &s.p,
        json!({"keyword": "HELP", "actions": [{"type": "reply", "text": "Call 0800 100 100."}]}),
    )
    .await;
    let c = case_with(db, s.p.id, None, "Cy", None, Some("0772000104")).await;
    let started = db
        .start_survey(&s.p, s.survey_id, c.case_id.as_str())
        .await
        .unwrap();
    send_all(db, s.g.id).await;
    // HELP is the session's (invalid) answer to "How many visits?".
    let r = db
        .record_inbound(&s.g, &mo("+256772000104", "help"))
        .await
        .unwrap();
    assert_eq!(r.session_id, Some(started.id));
    let now = session(db, &s.p, started.id).await;
    assert_eq!(now.state.attempts, 1);
    assert!(!send_all(db, s.g.id)
        .await
        .iter()
        .any(|t| t.contains("0800")));
    // The same keyword marked to override an open survey cancels the session, then acts.
    let pool = raw_pool(&t.url).await;
    let k = Keyword::parse(
        &json!({"keyword": "HELP", "override_open_survey": true,
                "actions": [{"type": "reply", "text": "Call 0800 100 100."}]}),
        &["STOP"],
    )
    .unwrap();
    sqlx::query("UPDATE keywords SET definition = $1")
        .bind(k.to_json().to_string())
        .execute(&pool)
        .await
        .unwrap();
    db.record_inbound(&s.g, &mo("+256772000104", "HELP"))
        .await
        .unwrap();
    let ended = session(db, &s.p, started.id).await;
    assert_eq!(ended.status, SessionStatus::Cancelled);
    assert_eq!(ended.reason.as_deref(), Some("the keyword HELP was sent"));
    assert_eq!(
        send_all(db, s.g.id).await,
        vec!["Call 0800 100 100.".to_string()]
    );
}

async fn a_keyword_starts_a_survey(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let s = setup(db, survey_body()).await;
    keyword(
        db,
        &s.p,
        json!({"keyword": "ANC", "actions": [{"type": "start_survey", "survey_id": s.survey_id}]}),
    )
    .await;
    let c = case_with(db, s.p.id, None, "Di", None, Some("0772000105")).await;
    let r = db
        .record_inbound(&s.g, &mo("+256772000105", "ANC"))
        .await
        .unwrap();
    let id = r.session_id.expect("a session started");
    let started = session(db, &s.p, id).await;
    assert_eq!(started.case_id, c.case_id.as_str());
    assert_eq!(started.current_question, Some(0));
    assert_eq!(
        send_all(db, s.g.id).await,
        vec!["Hello, 3 questions.\nHow many visits?".to_string()]
    );
    // Its answer goes to the session as any reply does.
    db.record_inbound(&s.g, &mo("+256772000105", "2"))
        .await
        .unwrap();
    assert_eq!(
        Value::Object(session(db, &s.p, id).await.answers),
        json!({"visits": 2})
    );
}

async fn replies_to_one_number_stop_at_the_limit(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let Setup { p, g, .. } = setup(db, survey_body()).await;
    let mut settings = p.inbound_settings().into_owned();
    settings.keyword_reply_limit = "2/10m".into();
    db.set_messaging_settings(p.id, &settings).await.unwrap();
    let anc = crate::group(db, p.id, "ANC").await;
    keyword(
        db,
        &p,
        json!({"keyword": "JOIN", "actions": [{"type": "reply", "text": "Joined."},
               {"type": "add_to_group", "case_group_id": anc.id}]}),
    )
    .await;
    case_with(db, p.id, None, "Ed", None, Some("0772000106")).await;
    for _ in 0..5 {
        db.record_inbound(&g, &mo("+256772000106", "JOIN"))
            .await
            .unwrap();
    }
    assert_eq!(
        outbound_to(db, &p, "+256772000106").await.len(),
        2,
        "at most two replies in ten minutes"
    );
    assert_eq!(
        db.get_group(p.id, anc.id).await.unwrap().case_count,
        1,
        "the other actions still ran"
    );
}

async fn the_default_reply_goes_to_unmatched_messages_of_numbers_not_opted_out(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let Setup { p, g, .. } = setup(db, survey_body()).await;
    db.record_inbound(&g, &mo("+256772000107", "hello?"))
        .await
        .unwrap();
    assert!(
        outbound_to(db, &p, "+256772000107").await.is_empty(),
        "off by default"
    );
    let mut settings = p.inbound_settings().into_owned();
    settings.default_reply = Some("We did not understand. Send HELP.".into());
    db.set_messaging_settings(p.id, &settings).await.unwrap();
    db.add_opt_out(p.id, "+256772000108", "test").await.unwrap();
    // Sent together: the batch leaves them to the one-by-one path, which replies.
    let (m1, m2) = (
        mo("+256772000107", "hello again"),
        mo("+256772000108", "hello"),
    );
    let (a, b) = tokio::join!(db.record_inbound(&g, &m1), db.record_inbound(&g, &m2));
    a.unwrap();
    b.unwrap();
    let out = outbound_to(db, &p, "+256772000107").await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].text, "We did not understand. Send HELP.");
    assert!(outbound_to(db, &p, "+256772000108").await.is_empty());
}

async fn a_keyword_message_is_acted_on_once_by_racing_handlers(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let Setup { p, g, .. } = setup(db, survey_body()).await;
    keyword(
        db,
        &p,
        json!({"keyword": "REG", "fields": ["name"], "unknown_sender": "create_case",
               "actions": [{"type": "reply", "text": "Welcome {case.name}."}]}),
    )
    .await;
    // Stored, then handled by eight handlers (two "processes") at once.
    let mut tx = db.begin_write().await.unwrap();
    db.insert_inbound(
        &mut tx,
        &NewInbound {
            project_id: p.id,
            case_pk: None,
            phone: "+256772000109",
            text: "REG Fay",
            gateway_id: g.id,
            gateway_message_id: None,
            now: casecast_core::time::now_ms(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let other = Db::open(&casecast_store::db::normalise_url(&t.url).1)
        .await
        .unwrap();
    let clock = ManualClock::new(casecast_core::time::now_ms());
    let mut tasks = Vec::new();
    for i in 0..8 {
        let db = if i % 2 == 0 {
            db.clone()
        } else {
            other.clone()
        };
        let (p, clock) = (p.clone(), clock.clone());
        tasks.push(tokio::spawn(async move {
            casecast_engine::inbound::handle_number(&db, &clock, &p, "+256772000109")
                .await
                .unwrap()
                .len()
        }));
    }
    let mut handled = 0;
    for task in tasks {
        handled += task.await.unwrap();
    }
    assert_eq!(handled, 1, "handled once");
    assert_eq!(db.count_cases(p.id).await.unwrap(), 1, "one case made");
    assert_eq!(outbound_to(db, &p, "+256772000109").await.len(), 1);
}

async fn keyword_messages_handled_together_each_get_their_own_outcome(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let Setup { p, g, .. } = setup(db, survey_body()).await;
    let anc = crate::group(db, p.id, "ANC").await;
    let reg = keyword(
        db,
        &p,
        json!({"keyword": "REG", "fields": ["name", "birth_date"], "unknown_sender": "create_case",
               "actions": [{"type": "set_properties"},
                           {"type": "reply", "text": "Welcome {case.name}."}]}),
    )
    .await;
    let join = keyword(
        db,
        &p,
        json!({"keyword": "JOIN", "actions": [{"type": "add_to_group", "case_group_id": anc.id},
               {"type": "reply", "text": "You joined ANC reminders."}]}),
    )
    .await;
    let known: Vec<String> = (0..3).map(|i| format!("+25677200030{i}")).collect();
    let mut known_cases = Vec::new();
    for (i, phone) in known.iter().enumerate() {
        known_cases.push(case_with(db, p.id, None, &format!("K{i}"), None, Some(phone)).await);
    }
    let unknown: Vec<String> = (0..5).map(|i| format!("+25677200040{i}")).collect();
    // Stored together, as a batch of the router is: three REGs from numbers of no case, one
    // REG missing its birth date, a JOIN from a number of no case (ignored), three JOINs.
    let texts: Vec<(&str, String)> = vec![
        (&unknown[0], "REG Amina 1990-03-01".into()),
        (&known[0], "JOIN".into()),
        (&unknown[1], "reg Bea 1991-04-02".into()),
        (&unknown[2], "REG Cleo".into()),
        (&known[1], "join".into()),
        (&unknown[3], "#REG Dora 1992-05-03".into()),
        (&unknown[4], "JOIN".into()),
        (&known[2], "JOIN!".into()),
    ];
    let now = casecast_core::time::now_ms();
    let news: Vec<NewInbound> = texts
        .iter()
        .map(|(phone, text)| NewInbound {
            project_id: p.id,
            case_pk: None,
            phone,
            text,
            gateway_id: g.id,
            gateway_message_id: None,
            now,
        })
        .collect();
    let mut tx = db.begin_write().await.unwrap();
    let ids: Vec<i64> = db
        .insert_inbound_many(&mut tx, &news)
        .await
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    tx.commit().await.unwrap();
    let phones: Vec<&str> = texts.iter().map(|(phone, _)| *phone).collect();
    let handled = casecast_engine::inbound::handle_numbers(db, &p, &phones, now).await;
    let mut got: Vec<i64> = handled.iter().map(|h| h.message_id).collect();
    got.sort();
    assert_eq!(got, ids, "each message handled once");
    for h in &handled {
        let i = ids.iter().position(|id| *id == h.message_id).unwrap();
        let expected = if texts[i].1.to_lowercase().contains("reg") {
            reg
        } else {
            join
        };
        assert_eq!(h.keyword_id, Some(expected), "message {i}");
    }
    // One case a complete REG, with its fields, and the message logged on it.
    assert_eq!(db.count_cases(p.id).await.unwrap(), 6);
    for (n, (phone, name)) in [(0, "Amina"), (1, "Bea"), (3, "Dora")]
        .iter()
        .map(|(i, name)| (&unknown[*i], *name))
        .enumerate()
    {
        let cases = db
            .list_cases(p.id, &Default::default(), 20, None)
            .await
            .unwrap()
            .items;
        let made: Vec<_> = cases
            .iter()
            .filter(|c| c.phone_number.as_ref().map(|n| n.as_str()) == Some(phone.as_str()))
            .collect();
        assert_eq!(made.len(), 1, "{name}: one case");
        assert_eq!(made[0].name, name);
        assert_eq!(
            made[0].properties.get("birth_date").map(String::as_str),
            Some(["1990-03-01", "1991-04-02", "1992-05-03"][n])
        );
        let out = outbound_to(db, &p, phone).await;
        assert_eq!(out.len(), 1, "{name}: one reply");
        assert_eq!(out[0].text, format!("Welcome {name}."));
        assert_eq!(out[0].case_id.as_deref(), Some(made[0].case_id.as_str()));
    }
    let out = outbound_to(db, &p, &unknown[2]).await;
    assert_eq!(out.len(), 1);
    assert!(
        out[0].text.starts_with("Missing birth date"),
        "{}",
        out[0].text
    );
    assert!(outbound_to(db, &p, &unknown[4]).await.is_empty(), "ignored");
    // Every JOIN of a known case joined, with its reply.
    assert_eq!(db.get_group(p.id, anc.id).await.unwrap().case_count, 3);
    for phone in &known {
        let out = outbound_to(db, &p, phone).await;
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, "You joined ANC reminders.");
    }
}

async fn cases_made_together_are_each_checked_alone(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let Setup { p, .. } = setup(db, survey_body()).await;
    let named = |name: &str| casecast_core::case::CaseChanges {
        name: Some(name.into()),
        ..Default::default()
    };
    let changes = vec![
        named("Amina"),
        casecast_core::case::CaseChanges::default(),
        named("Bea"),
    ];
    let mut tx = db.begin_write().await.unwrap();
    let made = db
        .create_cases_tx(&mut tx, p.id, &changes, casecast_core::time::now_ms())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(made.len(), 3);
    let (a, b) = (made[0].as_ref().unwrap(), made[2].as_ref().unwrap());
    assert_eq!(
        made[1].as_ref().unwrap_err().field,
        "name",
        "no name, no case"
    );
    assert_eq!(db.count_cases(p.id).await.unwrap(), 2);
    for (pk, case) in [a, b] {
        let stored = db.get_case(p.id, case.case_id.as_str()).await.unwrap();
        assert_eq!(stored.name, case.name);
        let pool = raw_pool(&t.url).await;
        let row: i64 = sqlx::query_scalar("SELECT id FROM cases WHERE case_id = $1")
            .bind(case.case_id.as_str())
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(row, *pk, "{}: its row id", case.name);
    }
}
