//! A `casecast serve` killed with SIGKILL while it handles a burst of keyword messages (issue
//! 14: a crash between the claim and the actions), on both engines.
//!
//! REG from numbers with no case (the case made, its properties set, a reply naming it, the
//! case added to a group) and JOIN from known cases (a reply, the case added to another group)
//! are posted to the server's Kannel MO webhook in two waves. The first is handled and
//! answered. Before the second, the test takes the group members' table for itself
//! (`LOCK TABLE … IN SHARE MODE`): the handler of the second wave's first message stops at its
//! last action, inside the message's transaction, holding the number's lock, with the case,
//! its properties and the reply written and not committed; the rest of the wave (stored with
//! it, in one batch, as far as it reached the server) waits behind it. The server is killed
//! there. Then:
//! - nothing of the second wave shows: no case, no reply, no member; its stored messages wait
//!   unhandled;
//! - a new server's sweep (messages unhandled for 5 s) handles each stored message once;
//! - the second wave is posted again, as a gateway that got no answer does: the messages
//!   stored already are not stored twice, the others are stored and handled;
//! - in the end every number has one message, handled; one case per REG number, none made for
//!   a JOIN; each case in its group once; one reply each, sent once.
//!
//! The table lock is PostgreSQL's: on SQLite (`…::sqlite`) the server is killed as soon as the
//! first message of a burst is stored, wherever the rest then is, with the same checks at the
//! end (a reply being sent at the kill may reach the operator twice there: the dispatcher's
//! delivery is at least once).

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use casecast_core::case::CaseChanges;
use casecast_core::gateway::config::GatewayKind;
use casecast_core::identifier::GroupName;
use casecast_core::keyword::Keyword;
use casecast_core::{CountryCode, PhoneNumber, ProjectSlug, TimeZoneName};
use casecast_store::case_groups::{Actor, CaseGroup};
use casecast_store::cases::CaseFilter;
use casecast_store::gateways::NewGateway;
use casecast_store::messages::{Message, MessageFilter};
use casecast_store::projects::{NewProject, Project};
use casecast_store::Db;
use casecast_testkit::capture::Capture;
use casecast_testkit::cli::Server;
use casecast_testkit::kannel::url_decode;
use casecast_testkit::{eventually, Dialect, TestDb};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_casecast");
const WITHIN: Duration = Duration::from_secs(120);
/// Numbers in the first wave (handled before the kill), then in the second.
const FIRST: usize = 8;
const SECOND: usize = 16;
const ALL: usize = FIRST + SECOND;
const SENDSMS: &str = "/cgi-bin/sendsms";
/// What a message leased by a killed dispatcher waits before another sends it.
const SHORT_LEASE: &[&str] = &["--dispatch-lease-ms", "2000", "--dispatch-sweep-ms", "500"];
/// A number with no case that sends no keyword, just before the second wave.
const HELLO: usize = ALL;

const ACTOR: Actor = Actor {
    user_id: None,
    via: "page",
};

mod a_server_killed_during_a_burst_of_keywords_leaves_each_message_to_be_acted_on_once {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::a_server_killed_during_a_burst_of_keywords_leaves_each_message_to_be_acted_on_once()
            .await
    }
}

mod a_server_killed_inside_keyword_actions_leaves_each_message_to_be_acted_on_once {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::a_server_killed_inside_keyword_actions_leaves_each_message_to_be_acted_on_once()
            .await
    }
}

/// Even numbers send REG (no case has them), odd ones JOIN (a case has them).
fn is_reg(n: usize) -> bool {
    n.is_multiple_of(2)
}

fn phone(n: usize) -> String {
    format!("+2567721{n:05}")
}

fn name(n: usize) -> String {
    if is_reg(n) {
        format!("Mama{n}")
    } else {
        format!("Known{n}")
    }
}

fn birth_date(n: usize) -> String {
    format!("1990-03-{:02}", n % 28 + 1)
}

/// What number `n` sends ([`HELLO`]: no keyword).
fn text(n: usize) -> String {
    if n == HELLO {
        "Hello?".into()
    } else if is_reg(n) {
        format!("REG {} {}", name(n), birth_date(n))
    } else {
        "JOIN ANC".into()
    }
}

/// The one reply number `n` gets.
fn reply(n: usize) -> String {
    if is_reg(n) {
        format!("Welcome {}.", name(n))
    } else {
        format!("{}, you joined ANC.", name(n))
    }
}

/// One query parameter of a raw query string, decoded.
fn param(query: &str, name: &str) -> String {
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {query}"));
    String::from_utf8(url_decode(raw)).unwrap()
}

async fn project(db: &Db) -> Project {
    db.create_project(&NewProject {
        slug: ProjectSlug::parse("gulu").unwrap(),
        name: "Gulu".into(),
        time_zone: TimeZoneName::parse("Africa/Kampala").unwrap(),
        country: Some(CountryCode::parse("UG").unwrap()),
    })
    .await
    .unwrap()
}

async fn keyword(db: &Db, p: &Project, body: serde_json::Value) {
    let k = Keyword::parse(&body, &["STOP", "START"]).unwrap();
    db.create_keyword(p.id, &k, None).await.unwrap();
}

/// Posts number `n`'s message to the MO webhook at `url`, as Kannel does (the same gateway
/// message id each time); whether the server answered it.
async fn post(http: reqwest::Client, url: String, n: usize) -> bool {
    let query = [
        ("from", phone(n)),
        ("to", "1234".to_string()),
        ("text", text(n)),
        ("coding", "0".to_string()),
        ("charset", "UTF-8".to_string()),
        ("id", format!("mo-{n}")),
    ];
    match http.get(url).query(&query).send().await {
        Ok(answer) => answer.status().is_success(),
        Err(_) => false,
    }
}

/// Posts the messages of `numbers` to `server` at once; how many were answered.
async fn post_all(server: &Server, path: &str, numbers: std::ops::Range<usize>) -> usize {
    let tasks = spawn_posts(server, path, numbers);
    let mut answered = 0;
    for task in tasks {
        answered += usize::from(task.await.unwrap());
    }
    answered
}

fn spawn_posts(
    server: &Server,
    path: &str,
    numbers: std::ops::Range<usize>,
) -> Vec<tokio::task::JoinHandle<bool>> {
    let http = reqwest::Client::new();
    numbers
        .map(|n| tokio::spawn(post(http.clone(), format!("{}{path}", server.base), n)))
        .collect()
}

/// The project's messages with `n`'s number, oldest first.
async fn messages(db: &Db, p: &Project, n: usize) -> Vec<Message> {
    let filter = MessageFilter {
        phone_number: Some(phone(n)),
        ..Default::default()
    };
    let mut all = db.list_messages(p.id, &filter, 100, None).await.unwrap().0;
    all.sort_by_key(|m| m.id);
    all
}

fn outbound(all: &[Message]) -> Vec<&Message> {
    all.iter()
        .filter(|m| m.direction.as_str() == "outbound")
        .collect()
}

/// The number's inbound messages that wait to be handled.
async fn unhandled(db: &Db, p: &Project, n: usize) -> usize {
    let mut tx = db.begin_write().await.unwrap();
    let waiting = Db::unhandled_inbound(&mut tx, p.id, &phone(n), 100)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    waiting.len()
}

/// The live cases with `n`'s number.
async fn cases_of(db: &Db, p: &Project, n: usize) -> Vec<casecast_core::case::Case> {
    let filter = CaseFilter {
        phone_number: Some(PhoneNumber::parse(&phone(n), None).unwrap()),
        ..Default::default()
    };
    db.list_cases(p.id, &filter, 10, None).await.unwrap().items
}

/// Asserts what number `n` has once its message was acted on: one inbound message, handled;
/// for REG one case made from it; the case in its group; one reply, with its text.
async fn assert_acted_once(db: &Db, p: &Project, n: usize, group_members: &BTreeSet<String>) {
    let all = messages(db, p, n).await;
    let inbound: Vec<&Message> = all
        .iter()
        .filter(|m| m.direction.as_str() == "inbound")
        .collect();
    assert_eq!(inbound.len(), 1, "number {n}: {all:#?}");
    assert_eq!(inbound[0].text, text(n));
    assert_eq!(unhandled(db, p, n).await, 0, "number {n}");
    let cases = cases_of(db, p, n).await;
    assert_eq!(cases.len(), 1, "number {n}: {cases:#?}");
    assert_eq!(cases[0].name, name(n));
    if is_reg(n) {
        assert_eq!(
            cases[0].properties.get("birth_date"),
            Some(&birth_date(n)),
            "number {n}"
        );
    }
    assert!(
        group_members.contains(cases[0].case_id.as_str()),
        "number {n}: its case is not in its group"
    );
    let replies: Vec<&str> = outbound(&all).iter().map(|m| m.text.as_str()).collect();
    assert_eq!(replies, [reply(n)], "number {n}");
}

/// The cases a group's history says were added to it, each once.
async fn added(db: &Db, p: &Project, group_id: i64) -> BTreeSet<String> {
    let history = db.group_history(p.id, group_id, 1000).await.unwrap();
    let mut cases = BTreeSet::new();
    for h in history.iter().filter(|h| h.action == "add") {
        assert_eq!((h.via.as_str(), h.added), ("keyword", 1), "{h:?}");
        let case = h.case.as_ref().unwrap().0.clone();
        assert!(cases.insert(case), "added twice: {history:#?}");
    }
    cases
}

/// What both tests start from: the project, its Kannel gateway (its sendsms a capture), the
/// two groups, the keywords, the JOIN numbers' cases, and the MO webhook's path.
struct Setup {
    p: Project,
    registered: CaseGroup,
    anc: CaseGroup,
    path: String,
    sendsms: Capture,
}

async fn setup(db: &Db) -> Setup {
    let p = &project(db).await;
    let sendsms = Capture::start();
    let config = json!({
        "sendsms_url": format!("{}{SENDSMS}", sendsms.base),
        "username": "u", "password": "p", "from": "1234",
    });
    let g = db
        .create_gateway(
            p.id,
            &NewGateway {
                name: "Kannel".into(),
                kind: GatewayKind::Kannel,
                config,
                callback_base_url: "http://127.0.0.1:9".into(),
                max_segments_per_second: None,
                max_attempts: None,
                prefixes: vec![],
                is_default: true,
            },
        )
        .await
        .unwrap();
    let registered = db
        .create_group(p.id, &GroupName::parse("Registered").unwrap(), ACTOR)
        .await
        .unwrap();
    let anc = db
        .create_group(p.id, &GroupName::parse("ANC").unwrap(), ACTOR)
        .await
        .unwrap();
    // Each keyword's last action writes `case_group_members` (where the PostgreSQL test stops it).
    keyword(
        db,
        p,
        json!({"keyword": "REG", "fields": ["name", "birth_date"], "unknown_sender": "create_case",
               "actions": [{"type": "set_properties"},
                           {"type": "reply", "text": "Welcome {case.name}."},
                           {"type": "add_to_group", "case_group_id": registered.id}]}),
    )
    .await;
    keyword(
        db,
        p,
        json!({"keyword": "JOIN",
               "actions": [{"type": "reply", "text": "{case.name}, you joined ANC."},
                           {"type": "add_to_group", "case_group_id": anc.id}]}),
    )
    .await;
    for n in (0..ALL).filter(|n| !is_reg(*n)) {
        let changes = CaseChanges {
            name: Some(name(n)),
            phone_number: Some(Some(PhoneNumber::parse(&phone(n), None).unwrap())),
            ..Default::default()
        };
        db.create_case(p.id, None, &changes).await.unwrap();
    }
    let path = g
        .callbacks()
        .url("mo")
        .strip_prefix("http://127.0.0.1:9")
        .unwrap()
        .to_string();

    Setup {
        p: p.clone(),
        registered,
        anc,
        path,
        sendsms,
    }
}

/// Asserts that every number's message was acted on once and its one reply recorded sent;
/// and, when `hello` was sent, that it is stored once and handled. Returns what the operator
/// got, as (to, text) sorted.
async fn assert_every_number_acted_on_once(
    db: &Db,
    s: &Setup,
    hello: bool,
) -> Vec<(String, String)> {
    let Setup {
        p,
        registered,
        anc,
        sendsms,
        ..
    } = s;
    let reg_members = added(db, p, registered.id).await;
    let anc_members = added(db, p, anc.id).await;
    assert_eq!((reg_members.len(), anc_members.len()), (ALL / 2, ALL / 2));
    for n in 0..ALL {
        let members = if is_reg(n) {
            &reg_members
        } else {
            &anc_members
        };
        assert_acted_once(db, p, n, members).await;
    }
    assert_eq!(db.count_cases(p.id).await.unwrap(), ALL as i64);
    if hello {
        let hello = messages(db, p, HELLO).await;
        assert_eq!(hello.len(), 1, "{hello:#?}");
        assert_eq!(unhandled(db, p, HELLO).await, 0);
    }
    for group in [&registered, &anc] {
        let now = db.get_group(p.id, group.id).await.unwrap().case_count;
        assert_eq!(now, ALL as i64 / 2, "group {}", group.id);
    }

    // Every reply sent, and the operator got each once.
    for n in 0..ALL {
        eventually("every reply sent", WITHIN, || async move {
            let all = messages(db, p, n).await;
            outbound(&all)
                .iter()
                .all(|m| m.sent_at.is_some())
                .then_some(())
        })
        .await;
    }
    let got = sendsms.wait_for(SENDSMS, ALL).await;
    let mut to: Vec<(String, String)> = got
        .iter()
        .map(|q| (param(q, "to"), param(q, "text")))
        .collect();
    to.sort();
    to
}

/// Each number's reply, sorted as [`assert_every_number_acted_on_once`] returns them.
fn every_reply() -> Vec<(String, String)> {
    let mut expected: Vec<(String, String)> = (0..ALL).map(|n| (phone(n), reply(n))).collect();
    expected.sort();
    expected
}

async fn a_server_killed_inside_keyword_actions_leaves_each_message_to_be_acted_on_once() {
    let t = TestDb::new(Dialect::Postgres).await;
    let db = &t.db;
    let s = setup(db).await;
    let Setup {
        p,
        registered,
        anc,
        path,
        ..
    } = &s;

    // The first wave: handled, answered, and its replies sent, before anything goes wrong.
    let mut server = Server::start(BIN, &t.url, &[]).await;
    assert_eq!(post_all(&server, path, 0..FIRST).await, FIRST);
    let pid = p.id;
    for n in 0..FIRST {
        eventually("the first wave's replies sent", WITHIN, || async move {
            let filter = MessageFilter {
                phone_number: Some(phone(n)),
                ..Default::default()
            };
            let all = db.list_messages(pid, &filter, 10, None).await.unwrap().0;
            let out: Vec<&Message> = all
                .iter()
                .filter(|m| m.direction.as_str() == "outbound")
                .collect();
            (out.len() == 1 && out[0].sent_at.is_some()).then_some(())
        })
        .await;
    }

    // The second wave meets the locked table: the handler of its first message stops inside
    // the message's transaction. So that most of the wave is stored before that, the server's
    // inbound batches are held first behind a message whose number the test locks: the wave
    // waits in the server's next batch meanwhile.
    let mut number = t.lock_number(p.id, &phone(HELLO)).await;
    let hello = spawn_posts(&server, path, HELLO..HELLO + 1);
    number.wait_for_a_waiter(WITHIN).await;
    let mut table = t.lock_table_for_writes("case_group_members").await;
    let posts = spawn_posts(&server, path, FIRST..ALL);
    // Time for the posts to reach the server: how many of them are stored before the kill
    // depends on it, what the test checks does not.
    tokio::time::sleep(Duration::from_millis(500)).await;
    number.release().await;
    table.wait_for_a_waiter(WITHIN).await;
    server.kill();
    let mut answered = 0;
    for task in posts {
        answered += usize::from(task.await.unwrap());
    }
    assert_eq!(answered, 0, "no message of the second wave was handled");
    for task in hello {
        assert!(
            task.await.unwrap(),
            "the message before the wave was handled"
        );
    }

    // Nothing of what the killed handler wrote shows; what was stored waits.
    let mut stored = Vec::new();
    for n in FIRST..ALL {
        let all = messages(db, p, n).await;
        assert!(outbound(&all).is_empty(), "number {n}: {all:#?}");
        assert!(all.len() <= 1, "number {n}: {all:#?}");
        if !all.is_empty() {
            assert_eq!(unhandled(db, p, n).await, 1, "number {n}");
            stored.push(n);
        }
        let made = cases_of(db, p, n).await.len();
        assert_eq!(made, usize::from(!is_reg(n)), "number {n}");
    }
    assert!(
        !stored.is_empty(),
        "the handler that stopped had its message stored"
    );
    eprintln!(
        "stored before the kill: {} of the second wave's {SECOND} messages",
        stored.len()
    );
    for group in [&registered, &anc] {
        let now = db.get_group(p.id, group.id).await.unwrap().case_count;
        assert_eq!(now, FIRST as i64 / 2, "group {}", group.id);
    }
    table.release().await;

    // A new server: its sweep handles each stored message once.
    let mut server = Server::start(BIN, &t.url, &[]).await;
    let (reg_members, anc_members) = eventually("the sweep handled them", WITHIN, || async {
        for &n in &stored {
            if unhandled(db, p, n).await > 0 {
                return None;
            }
        }
        Some((
            added(db, p, registered.id).await,
            added(db, p, anc.id).await,
        ))
    })
    .await;
    for &n in &stored {
        let members = if is_reg(n) {
            &reg_members
        } else {
            &anc_members
        };
        assert_acted_once(db, p, n, members).await;
    }

    // The gateway posts again what got no answer: stored once, handled once.
    assert_eq!(post_all(&server, path, FIRST..ALL).await, SECOND);
    let got = assert_every_number_acted_on_once(db, &s, true).await;
    assert_eq!(got, every_reply(), "each reply sent once");
    server.kill();
}

/// The same on SQLite, where nothing can hold the handler at a step (a SQLite write is one
/// process's at a time): the burst of both waves is posted at once and the server is killed as
/// soon as one message of it is stored, wherever the others are then (not yet stored, stored,
/// being handled, handled). A new server's sweep and the gateway posting again what got no
/// answer leave each message acted on once.
async fn a_server_killed_during_a_burst_of_keywords_leaves_each_message_to_be_acted_on_once() {
    let t = TestDb::new(Dialect::Sqlite).await;
    let db = &t.db;
    let s = setup(db).await;
    let (p, path) = (&s.p, s.path.as_str());

    let mut server = Server::start(BIN, &t.url, SHORT_LEASE).await;
    let posts = spawn_posts(&server, path, 0..ALL);
    let pid = p.id;
    eventually("a message stored", WITHIN, || async move {
        let filter = MessageFilter {
            direction: casecast_core::states::Direction::parse("inbound"),
            ..Default::default()
        };
        let page = db.list_messages(pid, &filter, 1, None).await.unwrap().0;
        (!page.is_empty()).then_some(())
    })
    .await;
    server.kill();
    let mut unanswered = Vec::new();
    for (n, task) in posts.into_iter().enumerate() {
        if !task.await.unwrap() {
            unanswered.push(n);
        }
    }
    let mut stored = Vec::new();
    for n in 0..ALL {
        let all = messages(db, p, n).await;
        assert!(
            all.iter()
                .filter(|m| m.direction.as_str() == "inbound")
                .count()
                <= 1
        );
        if unhandled(db, p, n).await > 0 {
            stored.push(n);
        }
    }
    eprintln!(
        "at the kill: {} of {ALL} messages answered, {} stored and not handled",
        ALL - unanswered.len(),
        stored.len()
    );

    let server = Server::start(BIN, &t.url, SHORT_LEASE).await;
    eventually("the sweep handled them", WITHIN, || async {
        for &n in &stored {
            if unhandled(db, p, n).await > 0 {
                return None;
            }
        }
        Some(())
    })
    .await;
    // The gateway posts again what got no answer: stored once, handled once.
    let http = reqwest::Client::new();
    for &n in &unanswered {
        let url = format!("{}{path}", server.base);
        assert!(post(http.clone(), url, n).await, "number {n}");
    }
    let mut got = assert_every_number_acted_on_once(db, &s, false).await;
    // A reply the killed server was sending may go out again (the dispatcher's delivery is at
    // least once, its lease shortened here); the keyword queued it once.
    got.dedup();
    assert_eq!(got, every_reply());
}
