//! Case queries compiled to SQL agree with the Rust evaluator (issue 16), on both engines: on
//! random cases (property values drawn to meet the queries' values often: numbers in several
//! spellings, dates, words in several cases, the empty text, any text) and random queries,
//! which cases match and which meet a value they cannot compare.

use std::collections::{BTreeSet, HashMap};

use casecast_core::case::{Case, CaseChanges};
use casecast_core::case_query::{strategies, CaseQuery, Context, GroupRef};
use casecast_core::PhoneNumber;
use casecast_store::membership::Change;
use casecast_store::projects::Project;
use casecast_store::Db;
use casecast_testkit::{on_both_engines, Dialect, TestDb};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};

use crate::{group, project, PAGE};

on_both_engines!(
    sql_and_rust_agree_on_random_cases_and_queries,
    queries_written_by_hand_pick_the_cases_they_say,
);

/// Cases made from random values; those the store refuses (a value it does not keep) are left
/// out. Returns the live cases as stored, with their groups.
async fn random_cases(
    db: &Db,
    p: &Project,
    runner: &mut TestRunner,
    n: usize,
) -> Vec<(Case, Vec<(i64, String)>)> {
    let names = ["Gulu", "gulu east", "12", "Lira"];
    let mut groups = Vec::new();
    for name in names {
        groups.push(group(db, p.id, name).await);
    }
    let props = strategies::property_name();
    let text = strategies::text();
    for i in 0..n {
        let mut properties = std::collections::BTreeMap::new();
        for _ in 0..4 {
            let name = props.new_tree(runner).unwrap().current();
            let value = text.new_tree(runner).unwrap().current();
            properties.insert(name, Some(value));
        }
        let changes = CaseChanges {
            name: Some(text.new_tree(runner).unwrap().current())
                .filter(|t| !t.trim().is_empty())
                .or(Some(format!("Case {i}"))),
            external_id: Some(
                Some(text.new_tree(runner).unwrap().current()).filter(|t| !t.trim().is_empty()),
            ),
            phone_number: Some(
                (i % 3 != 0)
                    .then(|| PhoneNumber::parse(&format!("+2567720{i:05}"), None).ok())
                    .flatten(),
            ),
            closed: Some(i % 4 == 0),
            properties,
            ..Default::default()
        };
        let mut tx = db.begin_write().await.unwrap();
        let made = db
            .create_cases_tx(&mut tx, p.id, std::slice::from_ref(&changes), 0)
            .await;
        match made {
            Ok(v) if v.iter().all(Result::is_ok) => tx.commit().await.unwrap(),
            _ => tx.rollback().await.unwrap(),
        }
    }
    let cases = db
        .list_cases(p.id, &Default::default(), 10_000, None)
        .await
        .unwrap()
        .items;
    // Memberships, kept on the Rust side too.
    let mut member_of: HashMap<String, Vec<(i64, String)>> = HashMap::new();
    for (k, g) in groups.iter().enumerate() {
        let ids: Vec<String> = cases
            .iter()
            .enumerate()
            .filter(|(i, _)| (i + k) % (k + 2) == 0)
            .map(|(_, c)| c.case_id.to_string())
            .collect();
        db.change_members(p.id, g.id, Change::Add, &ids, PAGE)
            .await
            .unwrap();
        for id in ids {
            member_of
                .entry(id)
                .or_default()
                .push((g.id, g.name.to_string()));
        }
    }
    let out: Vec<(Case, Vec<(i64, String)>)> = cases
        .into_iter()
        .map(|c| {
            let groups = member_of.remove(c.case_id.as_str()).unwrap_or_default();
            (c, groups)
        })
        .collect();
    out
}

fn rust_answer(
    query: &CaseQuery,
    cases: &[(Case, Vec<(i64, String)>)],
    zone: &jiff::tz::TimeZone,
) -> (BTreeSet<String>, i64) {
    let mut matched = BTreeSet::new();
    let mut uncomparable = 0;
    for (case, groups) in cases {
        let ctx = Context {
            time_zone: zone.clone(),
            is_member: |g: &GroupRef| match g {
                GroupRef::Id(id) => groups.iter().any(|(gid, _)| gid == id),
                GroupRef::Name(name) => groups
                    .iter()
                    .any(|(_, n)| n.trim().eq_ignore_ascii_case(name.trim())),
            },
        };
        let e = query.evaluate(case, &ctx);
        if e.matched {
            matched.insert(case.case_id.to_string());
        }
        uncomparable += i64::from(e.uncomparable);
    }
    (matched, uncomparable)
}

async fn sql_and_rust_agree_on_random_cases_and_queries(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "alpha", Some("UG")).await;
    let zone = p.zone();
    let mut runner = TestRunner::new(Config::default());
    let cases = random_cases(db, &p, &mut runner, 80).await;
    assert!(cases.len() >= 40, "most random cases are kept");
    let queries = strategies::query();
    for _ in 0..300 {
        let query = queries.new_tree(&mut runner).unwrap().current();
        let (want, want_unc) = rust_answer(&query, &cases, &zone);
        let got: BTreeSet<String> = db
            .case_ids_matching(p.id, &query, &zone, 10_000)
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"))
            .into_iter()
            .collect();
        assert_eq!(got, want, "the cases matching {query}");
        let counts = db.count_matching(p.id, &query, &zone).await.unwrap();
        assert_eq!(counts.matched, want.len() as i64, "{query}");
        assert_eq!(counts.uncomparable, want_unc, "uncomparable under {query}");
    }
}

async fn queries_written_by_hand_pick_the_cases_they_say(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "alpha", Some("UG")).await;
    let zone = p.zone();
    let rows: [(&str, &[(&str, &str)]); 5] = [
        (
            "Amina",
            &[("district", "Gulu"), ("age", "18"), ("visit", "2026-03-05")],
        ),
        (
            "Bea",
            &[
                ("district", "gulu"),
                ("age", "18.0"),
                ("visit", "2026-12-31"),
            ],
        ),
        (
            "Cleo",
            &[("district", "Lira"), ("age", "eighteen"), ("visit", "soon")],
        ),
        ("Dora", &[("district", "Gulu East"), ("age", "007")]),
        ("Eve", &[]),
    ];
    let mut tx = db.begin_write().await.unwrap();
    let changes: Vec<CaseChanges> = rows
        .iter()
        .map(|(name, props)| CaseChanges {
            name: Some(name.to_string()),
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .collect(),
            ..Default::default()
        })
        .collect();
    db.create_cases_tx(&mut tx, p.id, &changes, 0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let names: HashMap<String, String> = db
        .list_cases(p.id, &Default::default(), 100, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| (c.case_id.to_string(), c.name))
        .collect();
    let pick = |q: &'static str| {
        let names = names.clone();
        let zone = zone.clone();
        async move {
            let query = CaseQuery::parse(q).unwrap();
            let mut got: Vec<String> = db
                .case_ids_matching(p.id, &query, &zone, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|id| names[&id].clone())
                .collect();
            got.sort();
            let counts = db.count_matching(p.id, &query, &zone).await.unwrap();
            (got, counts.uncomparable)
        }
    };
    assert_eq!(pick("district = gulu").await.0, ["Amina", "Bea"]);
    assert_eq!(pick("district != Gulu").await.0, ["Cleo", "Dora", "Eve"]);
    assert_eq!(pick("district ~ GULU").await.0, ["Amina", "Bea", "Dora"]);
    assert_eq!(pick("age = 18").await.0, ["Amina", "Bea"]);
    assert_eq!(pick("age = 7").await.0, [] as [&str; 0], "007 is a code");
    assert_eq!(
        pick("age >= 18").await,
        (vec!["Amina".into(), "Bea".into()], 2)
    );
    assert_eq!(pick("visit > 2026-03-05").await, (vec!["Bea".into()], 1));
    assert_eq!(pick("visit = \"\"").await.0, ["Dora", "Eve"]);
    assert_eq!(
        pick("(district = Lira OR age = 18) AND name != Bea")
            .await
            .0,
        ["Amina", "Cleo"]
    );
}
