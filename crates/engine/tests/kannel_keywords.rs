//! Keywords through a real Kannel (bearerbox + smsbox with the fake operator), on both engines
//! (issue 14, acceptance). The MO messages come from the fake operator through Kannel to the
//! server's webhook; the replies go from the server's dispatcher through Kannel to the operator:
//! - "REG Amina 1990-03-01" from a number with no case makes the case (name, case type, the
//!   birth date a property) and the reply, which uses `{case.name}`, reaches that number;
//! - "JOIN ANC" from a known case adds it to the group once (a second JOIN changes nothing but
//!   is answered), recorded in the group's history as done by a keyword;
//! - a keyword that starts a survey, answered through Kannel to the end: the answers land on
//!   the session and the case, the end text reaches the number.
//!
//! Nothing else reaches the operator.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::time::Duration;

use casecast_core::case::CaseChanges;
use casecast_core::gateway::config::GatewayKind;
use casecast_core::identifier::GroupName;
use casecast_core::keyword::Keyword;
use casecast_core::survey::session::SessionStatus;
use casecast_core::survey::Survey;
use casecast_core::PhoneNumber;
use casecast_store::case_groups::Actor;
use casecast_store::cases::CaseFilter;
use casecast_store::gateways::{Gateway, GatewayPatch, NewGateway};
use casecast_store::messages::{Message, MessageFilter};
use casecast_testkit::kannel::{Kannel, LineKind};
use casecast_testkit::{on_both_engines, Dialect, TestApp};
use serde_json::{json, Value};

const SENDER: &str = "1234";
const WITHIN: Duration = Duration::from_secs(60);
/// Amina (no case yet), Bea (a case), Cleo (a case).
const PHONES: [&str; 3] = ["+256772000201", "+256772000202", "+256772000203"];

const WELCOME: &str = "Welcome Amina, you are registered.";
const JOINED: &str = "Bea, you joined ANC reminders.";
const FIRST: &str = "A short check: 3 questions.\nHow many visits?";
const FEELING: &str = "How do you feel?\n1. Good 2. Bad";
const DUE: &str = "When is the baby due?";
const END: &str = "Thank you, see you soon.";

const TEST_ACTOR: Actor = Actor {
    user_id: None,
    via: "page",
};

on_both_engines!(register_join_and_answer_a_survey_through_kannel);

/// Polls `check` until it gives a value, within [`WITHIN`].
async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    casecast_testkit::eventually(what, WITHIN, check).await
}

/// A server, a Kannel whose MO goes to the server's webhook, and a Kannel gateway for alpha.
async fn setup(engine: Dialect) -> (TestApp, Kannel, Gateway) {
    let app = TestApp::spawn(engine).await;
    let placeholder = json!({"sendsms_url": "http://127.0.0.1:9/cgi-bin/sendsms", "username": "u", "password": "p"});
    let new = NewGateway {
        name: "Kannel".into(),
        kind: GatewayKind::Kannel,
        config: placeholder,
        callback_base_url: app.base.clone(),
        max_segments_per_second: None,
        max_attempts: None,
        prefixes: vec![],
        is_default: true,
    };
    let g = app.db.create_gateway(app.alpha.id, &new).await.unwrap();
    let kannel = Kannel::start(&g.callbacks().url("mo")).await;
    let config = json!({
        "sendsms_url": kannel.sendsms_url,
        "username": kannel.username,
        "password": kannel.password,
        "from": SENDER,
    });
    let patch = GatewayPatch {
        config: Some(config),
        ..Default::default()
    };
    let g = app.db.update_gateway(app.alpha.id, g.id, &patch).await;
    (app, kannel, g.unwrap())
}

async fn keyword(app: &TestApp, body: Value) -> i64 {
    let k = Keyword::parse(&body, &["STOP", "START"]).unwrap();
    app.db
        .create_keyword(app.alpha.id, &k, None)
        .await
        .unwrap()
        .id
}

async fn case(app: &TestApp, name: &str, phone: &str) -> String {
    let changes = CaseChanges {
        name: Some(name.into()),
        phone_number: Some(Some(PhoneNumber::parse(phone, None).unwrap())),
        ..Default::default()
    };
    let case = app.db.create_case(app.alpha.id, None, &changes).await;
    case.unwrap().case_id.as_str().to_string()
}

/// The live cases with this number.
async fn cases_of(app: &TestApp, phone: &str) -> Vec<casecast_core::case::Case> {
    let filter = CaseFilter {
        phone_number: Some(PhoneNumber::parse(phone, None).unwrap()),
        ..Default::default()
    };
    let page = app.db.list_cases(app.alpha.id, &filter, 10, None).await;
    page.unwrap().items
}

/// The texts the operator received for `phone` so far, in order (each a single `text` line
/// from the gateway's sender).
fn texts_to(kannel: &Kannel, phone: &str) -> Vec<String> {
    let got: Vec<_> = kannel
        .received()
        .into_iter()
        .filter(|m| m.receiver == phone)
        .collect();
    for m in &got {
        assert_eq!(
            (m.kind, m.sender.as_str()),
            (LineKind::Text, SENDER),
            "{m:?}"
        );
    }
    got.into_iter().map(|m| m.text).collect()
}

/// Sends `text` from `phone` through Kannel, then waits for the operator's next message to it,
/// which must be `expected` (the `n`th message it receives).
async fn exchange(kannel: &Kannel, phone: &str, text: &str, n: usize, expected: &str) {
    kannel.send_mo(phone, SENDER, text).await;
    let got = eventually(&format!("{n} messages to {phone}"), || async {
        let got = texts_to(kannel, phone);
        (got.len() >= n).then_some(got)
    })
    .await;
    assert_eq!(got.len(), n, "{got:#?}");
    assert_eq!(
        got[n - 1],
        expected,
        "after {text:?} from {phone}: {got:#?}"
    );
}

/// The project's messages with this number, oldest first, as (direction, text).
async fn conversation(app: &TestApp, phone: &str) -> Vec<(String, String)> {
    let filter = MessageFilter {
        phone_number: Some(phone.into()),
        ..Default::default()
    };
    let page = app.db.list_messages(app.alpha.id, &filter, 100, None).await;
    let mut all: Vec<Message> = page.unwrap().0;
    all.sort_by_key(|m| m.id);
    all.into_iter()
        .map(|m| (m.direction.as_str().to_string(), m.text))
        .collect()
}

fn out(text: &str) -> (String, String) {
    ("outbound".into(), text.into())
}

fn inb(text: &str) -> (String, String) {
    ("inbound".into(), text.into())
}

/// Waits until every message to `phone` was sent: the dispatcher recorded that Kannel took it
/// (or a delivery report came first).
async fn all_sent(app: &TestApp, phone: &str) {
    eventually(&format!("every message to {phone} sent"), || async {
        let filter = MessageFilter {
            phone_number: Some(phone.into()),
            direction: casecast_core::states::Direction::parse("outbound"),
            ..Default::default()
        };
        let page = app.db.list_messages(app.alpha.id, &filter, 100, None).await;
        let page = page.unwrap().0;
        page.iter().all(|m| m.sent_at.is_some()).then_some(())
    })
    .await;
}

fn survey_body() -> Value {
    json!({
        "name": "ANC check",
        "intro": "A short check: 3 questions.",
        "end_text": END,
        "max_attempts": 3,
        "expire_after_minutes": 300,
        "questions": [
            {"key": "visits", "type": "number", "text": "How many visits?", "min": 0, "max": 20,
             "case_property": "anc_visits"},
            {"key": "feeling", "type": "choice", "text": "How do you feel?",
             "choices": [
                {"value": "good", "text": "Good", "synonyms": ["fine"]},
                {"value": "bad", "text": "Bad"}
             ], "case_property": "feeling"},
            {"key": "due", "type": "date", "text": DUE, "case_property": "edd"}
        ]
    })
}

async fn register_join_and_answer_a_survey_through_kannel(engine: Dialect) {
    let (app, kannel, _g) = setup(engine).await;
    let db = &app.db;
    let p = &app.alpha;
    let anc = db
        .create_group(p.id, &GroupName::parse("ANC").unwrap(), TEST_ACTOR)
        .await
        .unwrap();
    let survey = Survey::parse(&survey_body()).unwrap();
    let survey_id = db.create_survey(p.id, &survey, None).await.unwrap().id;
    keyword(
        &app,
        json!({"keyword": "REG", "fields": ["name", "birth_date"],
               "unknown_sender": "create_case", "case_type": "mother",
               "actions": [{"type": "set_properties"},
                           {"type": "reply", "text": "Welcome {case.name}, you are registered."}]}),
    )
    .await;
    keyword(
        &app,
        json!({"keyword": "JOIN",
               "actions": [{"type": "add_to_group", "case_group_id": anc.id},
                           {"type": "reply", "text": "{case.name}, you joined ANC reminders."}]}),
    )
    .await;
    keyword(
        &app,
        json!({"keyword": "CHECK",
               "actions": [{"type": "start_survey", "survey_id": survey_id}]}),
    )
    .await;
    let [amina, bea, cleo] = PHONES;
    let bea_case = case(&app, "Bea", bea).await;
    let cleo_case = case(&app, "Cleo", cleo).await;

    // REG from a number no case has: the case is made, and the reply names it.
    assert!(cases_of(&app, amina).await.is_empty());
    exchange(&kannel, amina, "REG Amina 1990-03-01", 1, WELCOME).await;
    let made = cases_of(&app, amina).await;
    assert_eq!(made.len(), 1, "one case made: {made:#?}");
    assert_eq!(
        (made[0].name.as_str(), made[0].case_type.as_str()),
        ("Amina", "mother")
    );
    assert_eq!(
        made[0].properties.get("birth_date").map(String::as_str),
        Some("1990-03-01")
    );
    assert_eq!(
        conversation(&app, amina).await,
        [inb("REG Amina 1990-03-01"), out(WELCOME)]
    );
    let logged = db
        .list_messages(
            p.id,
            &MessageFilter {
                case_id: Some(made[0].case_id.as_str().to_string()),
                ..Default::default()
            },
            10,
            None,
        )
        .await
        .unwrap()
        .0;
    assert_eq!(logged.len(), 2, "both on the case made: {logged:#?}");

    // JOIN ANC from a known case: joined once, each JOIN answered.
    exchange(&kannel, bea, "JOIN ANC", 1, JOINED).await;
    let group = db.get_group(p.id, anc.id).await.unwrap();
    assert_eq!(group.case_count, 1);
    exchange(&kannel, bea, "join anc", 2, JOINED).await;
    let group = db.get_group(p.id, anc.id).await.unwrap();
    assert_eq!(group.case_count, 1, "joined once");
    let history = db.group_history(p.id, anc.id, 10).await.unwrap();
    let adds: Vec<_> = history.iter().filter(|h| h.action == "add").collect();
    assert_eq!(adds.len(), 1, "{history:#?}");
    assert_eq!((adds[0].via.as_str(), adds[0].added), ("keyword", 1));
    assert_eq!(
        adds[0].case.as_ref().map(|c| c.0.as_str()),
        Some(bea_case.as_str())
    );
    assert_eq!(cases_of(&app, bea).await.len(), 1, "no case made for Bea");

    // CHECK starts the survey for Cleo's case; answered through Kannel to the end.
    exchange(&kannel, cleo, "check", 1, FIRST).await;
    exchange(&kannel, cleo, "4", 2, FEELING).await;
    exchange(&kannel, cleo, "fine", 3, DUE).await;
    exchange(&kannel, cleo, "2027-01-15", 4, END).await;
    let case_pk = db
        .case_recipient(p.id, &cleo_case)
        .await
        .unwrap()
        .unwrap()
        .case_pk;
    let sessions = db.sessions_of_case(p.id, case_pk, 10).await.unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:#?}");
    let s = &sessions[0];
    assert_eq!(
        (s.survey_id, s.status, s.current_question),
        (survey_id, SessionStatus::Completed, None)
    );
    assert_eq!(
        Value::Object(s.answers.clone()),
        json!({"visits": 4, "feeling": "good", "due": "2027-01-15"})
    );
    let cleo_now = db.get_case(p.id, &cleo_case).await.unwrap();
    let props: Vec<(&str, &str)> = ["anc_visits", "feeling", "edd"]
        .iter()
        .filter_map(|k| cleo_now.properties.get(*k).map(|v| (*k, v.as_str())))
        .collect();
    assert_eq!(
        props,
        [
            ("anc_visits", "4"),
            ("feeling", "good"),
            ("edd", "2027-01-15")
        ]
    );
    let texts: Vec<(String, String)> = db
        .messages_of_session(p.id, s.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.direction.as_str().to_string(), m.text))
        .collect();
    // The keyword message that started the session is the case's, not the session's.
    assert_eq!(
        texts,
        [
            out(FIRST),
            inb("4"),
            out(FEELING),
            inb("fine"),
            out(DUE),
            inb("2027-01-15"),
            out(END)
        ]
    );

    // Everything the operator got, per number: nothing more, nothing twice, all recorded sent.
    for phone in PHONES {
        all_sent(&app, phone).await;
    }
    assert_eq!(texts_to(&kannel, amina), [WELCOME]);
    assert_eq!(texts_to(&kannel, bea), [JOINED, JOINED]);
    assert_eq!(texts_to(&kannel, cleo), [FIRST, FEELING, DUE, END]);
    assert_eq!(kannel.received().len(), 1 + 2 + 4);
}
