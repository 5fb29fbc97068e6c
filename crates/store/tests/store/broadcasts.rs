//! Broadcasts, store side: what a fan-out writes (the excluded counted by reason, one message
//! per phone number, each case's text in its language) and what the preview says beforehand;
//! the helpers the other broadcast test modules share.

use casecast_testkit::Workflows;
use std::collections::{BTreeMap, HashSet};

use casecast_core::broadcast::Draft;
use casecast_core::case::CaseChanges;
use casecast_core::{CaseId, CountryCode, PhoneNumber, ProjectSlug, TimeZoneName};
use casecast_store::broadcasts::{Excluded, Occurrence};
use casecast_store::membership::Change;
use casecast_store::messages::{Message, MessageFilter};
use casecast_store::projects::{NewProject, Project};
use casecast_store::Db;
use casecast_testkit::{on_both_engines, Dialect, TestDb};
use serde_json::{json, Value};

use crate::gateways::log;
use crate::{case_with, change, csv, group, import, upload_and_process};

on_both_engines!(
    preview_and_fan_out_agree_on_exclusions_languages_and_numbers,
    a_case_met_in_several_sources_gets_one_message_and_counts_as_a_duplicate,
);

/// Recipients in the large group: more than two fan-out batches of 5,000.
pub const CROWD: usize = 12_000;

/// A project in `zone` (phone country UG) with a default log gateway.
pub async fn project_in(db: &Db, slug: &str, zone: &str) -> Project {
    let p = db
        .create_project(&NewProject {
            slug: ProjectSlug::parse(slug).unwrap(),
            name: format!("Project {slug}"),
            time_zone: TimeZoneName::parse(zone).unwrap(),
            country: Some(CountryCode::parse("UG").unwrap()),
        })
        .await
        .unwrap();
    let mut g = log("Log", &[]);
    g.is_default = true;
    db.create_gateway(p.id, &g).await.unwrap();
    db.project_by_id(p.id).await.unwrap()
}

/// A checked broadcast body to these groups and cases.
pub fn draft(groups: &[i64], cases: &[&str], sms: Value, schedule: Value) -> Draft {
    Draft::parse(&json!({
        "name": "Notice",
        "recipients": {"case_groups": groups, "cases": cases},
        "content": {"sms": sms},
        "schedule": schedule,
    }))
    .unwrap()
}

/// Runs an occurrence's fan-out job to its end, as a worker would.
pub async fn fan_out(db: &Db, occurrence_id: i64) {
    let job = db
        .claim_job_for(casecast_store::jobs::JobKind::Fanout, occurrence_id, "t")
        .await
        .unwrap();
    let job = job.expect("the occurrence's fan-out job");
    db.process_fanout(occurrence_id, job.id, "t").await.unwrap();
    db.finish_job(job.id).await.unwrap();
}

/// A broadcast's occurrences, first first.
pub async fn occurrences(db: &Db, project_id: i64, broadcast_id: i64) -> Vec<Occurrence> {
    let mut all = db
        .broadcast_occurrences(project_id, broadcast_id, 100_000)
        .await
        .unwrap();
    all.reverse();
    all
}

/// Every message of an occurrence.
pub async fn outbox(db: &Db, project_id: i64, occurrence_id: i64) -> Vec<Message> {
    let filter = MessageFilter {
        occurrence_id: Some(occurrence_id),
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = db
            .list_messages(project_id, &filter, 1000, cursor)
            .await
            .unwrap();
        out.extend(page);
        match next {
            Some(n) => cursor = Some(n),
            None => return out,
        }
    }
}

/// Asserts one message per number; returns the numbers.
pub fn distinct_phones(messages: &[Message]) -> HashSet<String> {
    let phones: HashSet<String> = messages.iter().map(|m| m.phone_number.clone()).collect();
    assert_eq!(phones.len(), messages.len(), "a number got two messages");
    phones
}

/// `n` cases (`crowd-00000`…, numbers `+25677000000`…) in a new group; returns the group id.
pub async fn crowd(db: &Db, p: &Project, n: usize) -> i64 {
    let lines: Vec<String> = (0..n)
        .map(|i| format!("crowd-{i:05},Person {i},+25677{i:07}"))
        .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let report = import(db, p, &csv("case_id,name,phone_number", &lines), "c.csv").await;
    assert_eq!(report.unwrap().created, n);
    let g = group(db, p.id, "Crowd").await;
    let ids = csv(
        "case_id",
        &lines.iter().map(|l| &l[..11]).collect::<Vec<_>>(),
    );
    upload_and_process(db, p.id, g.id, Change::Add, "ids.csv", ids, None).await;
    g.id
}

/// An immediate broadcast to one group; returns (broadcast id, occurrence id).
pub async fn send_now(db: &Db, p: &Project, group_id: i64) -> (i64, i64) {
    let d = draft(
        &[group_id],
        &[],
        json!({"*": "Hello {case.name}"}),
        json!(null),
    );
    let b = db.create_broadcast(p, &d, None).await.unwrap();
    let o = occurrences(db, p.id, b.id).await;
    assert_eq!(o.len(), 1, "an immediate broadcast fires when created");
    assert_eq!((o[0].index, o[0].status.as_str()), (1, "fanning_out"));
    (b.id, o[0].id)
}

/// A case to create: case ID, phone, language, district.
type Person = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

async fn preview_and_fan_out_agree_on_exclusions_languages_and_numbers(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project_in(db, "alpha", "Africa/Kampala").await;
    let ug = CountryCode::parse("UG").unwrap();
    // (case ID, phone, language, district): created in this order.
    let people: [Person; 14] = [
        ("amina", Some("0772000001"), Some("sw"), Some("Gulu")),
        ("baraka", Some("0772000002"), Some("SW-ke"), Some("Lira")),
        ("chloe", Some("0772000003"), Some("pt-BR"), None),
        ("duarte", Some("0772000004"), Some("pt"), None),
        ("eve", Some("0772000005"), Some("en"), Some("Kitgum")),
        ("fred", Some("0772000006"), None, Some("Gulu")),
        ("gloria", Some("0772000007"), None, Some("Gulu")),
        ("hassan", None, Some("sw"), Some("Gulu")),
        ("ivy", Some("0772000009"), None, Some("Gulu")),
        ("jon", Some("0772000001"), None, Some("Gulu")),
        ("kofi", Some("0772000011"), None, Some("Arua")),
        ("lena", Some("0772000012"), None, None),
        ("mo", Some("0772000013"), Some("sw"), None),
        ("nia", Some("0772000012"), Some("sw"), Some("Jinja")),
    ];
    for (id, phone, language, district) in people {
        let mut c = CaseChanges {
            name: Some(format!("{}{}", id[..1].to_uppercase(), &id[1..])),
            phone_number: phone.map(|n| Some(PhoneNumber::parse(n, Some(&ug)).unwrap())),
            language_code: language.map(|l| Some(l.to_string())),
            ..Default::default()
        };
        if let Some(d) = district {
            c.properties.insert("district".into(), Some(d.into()));
        }
        let id = CaseId::parse(id).unwrap();
        db.create_case(p.id, Some(id), &c).await.unwrap();
    }
    let g1 = group(db, p.id, "Clinic A").await;
    let g2 = group(db, p.id, "Clinic B").await;
    let first = [
        "amina", "baraka", "chloe", "duarte", "eve", "fred", "gloria", "hassan", "ivy", "jon",
        "kofi",
    ];
    change(db, p.id, g1.id, Change::Add, &first).await;
    change(db, p.id, g2.id, Change::Add, &["lena"]).await;
    db.delete_case(p.id, "fred").await.unwrap();
    db.close_case(p.id, "gloria").await.unwrap();
    db.add_opt_out(p.id, "+256772000009", "api").await.unwrap();
    let sms = json!({
        "*": "Hello {case.name}, clinic in {case.district}",
        "sw": "Habari {case.name}, kliniki {case.district}",
        "pt-BR": "Olá {case.name}",
    });
    let d = draft(&[g1.id, g2.id], &["mo", "nia"], sms, json!(null));

    let preview = db.preview_broadcast(&p, &d).await.unwrap();
    let b = db.create_broadcast(&p, &d, None).await.unwrap();
    let o = occurrences(db, p.id, b.id).await.remove(0);
    fan_out(db, o.id).await;
    let o = db.occurrence(p.id, o.id).await.unwrap();
    let messages = outbox(db, p.id, o.id).await;

    // What each eligible number got: the first case to claim it, in its own language.
    let got: BTreeMap<String, (String, String)> = messages
        .iter()
        .map(|m| {
            let case = m.case_id.clone().unwrap();
            (case, (m.phone_number.clone(), m.text.clone()))
        })
        .collect();
    let expected: BTreeMap<String, (String, String)> = [
        ("amina", "+256772000001", "Habari Amina, kliniki Gulu"),
        ("baraka", "+256772000002", "Habari Baraka, kliniki Lira"),
        ("chloe", "+256772000003", "Olá Chloe"),
        ("duarte", "+256772000004", "Hello Duarte, clinic in "),
        ("eve", "+256772000005", "Hello Eve, clinic in Kitgum"),
        ("kofi", "+256772000011", "Hello Kofi, clinic in Arua"),
        ("lena", "+256772000012", "Hello Lena, clinic in "),
        ("mo", "+256772000013", "Habari Mo, kliniki "),
    ]
    .into_iter()
    .map(|(c, n, s)| (c.to_string(), (n.to_string(), s.to_string())))
    .collect();
    assert_eq!(got, expected);
    assert_eq!(distinct_phones(&messages).len(), 8);
    assert!(messages
        .iter()
        .all(|m| m.status == "queued" && m.broadcast_id == Some(b.id) && m.segments == 1));

    // Deleted, closed, no phone and opted out, each once; jon shares amina's number and nia
    // lena's (across sources).
    let excluded = Excluded {
        no_phone: 1,
        opted_out: 1,
        closed: 1,
        deleted: 1,
        duplicate_phone: 2,
        no_gateway: 0,
    };
    assert_eq!(o.excluded, excluded, "{o:?}");
    assert_eq!((o.status.as_str(), o.queued, o.segments), ("done", 8, 8));
    assert_eq!(o.missing_values, 3, "duarte, lena and mo lack a district");
    assert_eq!(o.counts["queued"], 8);

    // The preview said the same beforehand.
    assert_eq!(preview.recipients, o.queued);
    assert_eq!(preview.excluded, o.excluded);
    assert_eq!(preview.segments, o.segments);
    assert_eq!(preview.encoding, "ucs2", "Olá is not GSM-7… {preview:?}");
    assert_eq!(
        preview.missing,
        BTreeMap::from([("{case.district}".to_string(), 3)])
    );
    let languages: Vec<(&str, i64)> = (preview.languages.iter())
        .map(|l| (l.language.as_str(), l.recipients))
        .collect();
    assert_eq!(languages, [("*", 4), ("pt-BR", 1), ("sw", 3)]);
    for s in &preview.samples {
        assert_eq!(got[&s.case_id], (s.phone_number.clone(), s.text.clone()));
    }
    assert_eq!(preview.samples.len(), 7, "up to three per language");

    let b = db.broadcast(p.id, b.id).await.unwrap();
    assert_eq!(
        (b.status.as_str(), b.occurrences, b.counts["queued"]),
        ("sending", 1, 8)
    );
}

/// Issue 5: "two cases sharing a number, or a case in two groups, get one SMS; the rest are
/// counted as `duplicate_phone`" (and `Excluded::duplicate_phone` says the same).
async fn a_case_met_in_several_sources_gets_one_message_and_counts_as_a_duplicate(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project_in(db, "alpha", "Africa/Kampala").await;
    case_with(db, p.id, Some("kofi"), "Kofi", None, Some("0772000011")).await;
    case_with(db, p.id, Some("lena"), "Lena", None, Some("0772000012")).await;
    let g1 = group(db, p.id, "Clinic A").await;
    let g2 = group(db, p.id, "Clinic B").await;
    change(db, p.id, g1.id, Change::Add, &["kofi"]).await;
    change(db, p.id, g2.id, Change::Add, &["kofi", "lena"]).await;
    let d = draft(
        &[g1.id, g2.id],
        &["kofi"],
        json!({"*": "Hi {case.name}"}),
        json!(null),
    );
    let preview = db.preview_broadcast(&p, &d).await.unwrap();
    let b = db.create_broadcast(&p, &d, None).await.unwrap();
    let o = occurrences(db, p.id, b.id).await.remove(0);
    fan_out(db, o.id).await;
    let o = db.occurrence(p.id, o.id).await.unwrap();
    let mut texts: Vec<String> = (outbox(db, p.id, o.id).await.into_iter())
        .map(|m| m.text)
        .collect();
    texts.sort();
    assert_eq!(texts, ["Hi Kofi", "Hi Lena"]);
    assert_eq!((o.queued, preview.recipients), (2, 2));
    assert_eq!(preview.excluded, o.excluded);
    assert_eq!(
        o.excluded.duplicate_phone, 2,
        "kofi's second group and listing are duplicates: {o:?}"
    );
}
