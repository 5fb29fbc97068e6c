//! The evaluator: the semantics table of the module's documentation, case by case.

use std::collections::BTreeMap;

use jiff::civil::date;
use jiff::tz::TimeZone;

use super::super::{
    compare_text, day_bounds, CaseQuery, Comparison, Context, Evaluation, GroupRef, Op, Value,
};
use crate::case::Case;
use crate::ids::CaseId;
use crate::phone::PhoneNumber;

fn case(props: &[(&str, &str)]) -> Case {
    Case {
        case_id: CaseId::from_stored("c-1".into()),
        case_type: "mother".into(),
        name: "Achieng Grace".into(),
        external_id: Some("EXT-007".into()),
        phone_number: Some(PhoneNumber::from_stored("+256772123456".into())),
        language_code: None,
        owner_id: None,
        closed: false,
        deleted: false,
        properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        created_at: 0,
        modified_at: 0,
    }
}

fn kampala() -> TimeZone {
    TimeZone::get("Africa/Kampala").expect("zone")
}

/// Member of group 1 and of the group named "Gulu mothers" (names compare ignoring case).
fn ctx() -> Context<impl Fn(&GroupRef) -> bool> {
    Context {
        time_zone: kampala(),
        is_member: |g: &GroupRef| match g {
            GroupRef::Id(id) => *id == 1,
            GroupRef::Name(n) => n.eq_ignore_ascii_case("gulu mothers"),
        },
    }
}

fn eval(query: &str, c: &Case) -> Evaluation {
    let q = CaseQuery::parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    let e = q.evaluate(c, &ctx());
    assert_eq!(
        q.matches(c, &ctx()),
        e.matched,
        "{query}: matches and evaluate differ"
    );
    e
}

const MATCH: (bool, bool) = (true, false);
const NO: (bool, bool) = (false, false);
const UNCOMPARABLE: (bool, bool) = (false, true);

#[test]
fn property_semantics() {
    // (query, the case's `age`/`visit`/`district`/... or None for missing, matched, uncomparable)
    let table: &[(&str, Option<&str>, (bool, bool))] = &[
        // Numbers compare as numbers when both sides are numbers.
        ("v = 18", Some("18"), MATCH),
        ("v = 18", Some("18.0"), MATCH),
        ("v = 18.00", Some("18"), MATCH),
        ("v = 0", Some("-0"), MATCH),
        ("v = 18", Some("018"), NO),
        ("v = 18", Some("eighteen"), NO),
        ("v = 007", Some("007"), MATCH),
        ("v = 7", Some("007"), NO),
        ("v != 18", Some("18.0"), NO),
        ("v != 18", Some("19"), MATCH),
        ("v > 17.5", Some("18"), MATCH),
        ("v >= 18", Some("18"), MATCH),
        ("v > 18", Some("18"), NO),
        ("v < 18", Some("9"), MATCH),
        ("v <= 18", Some("18.0"), MATCH),
        ("v < -1", Some("-2.5"), MATCH),
        ("v > 18", Some("100"), MATCH),
        ("v > 18", Some("eighteen"), UNCOMPARABLE),
        ("v > 18", Some("018"), UNCOMPARABLE),
        ("v > 18", Some("1e3"), UNCOMPARABLE),
        ("v < 18", Some("2026-01-05"), UNCOMPARABLE),
        ("v > 18", None, NO),
        ("v > 18", Some(""), NO),
        // Dates compare as dates (YYYY-MM-DD), by their text.
        ("v >= 2026-01-05", Some("2026-01-05"), MATCH),
        ("v > 2026-01-05", Some("2026-01-10"), MATCH),
        ("v > 2026-01-05", Some("2025-12-31"), NO),
        ("v <= 2026-01-05", Some("2025-12-31"), MATCH),
        ("v < 2026-03-01", Some("2026-02-30"), MATCH),
        ("v = 2026-01-05", Some("2026-01-05"), MATCH),
        ("v > 2026-01-05", Some("2026-1-10"), UNCOMPARABLE),
        ("v > 2026-01-05", Some("10 Jan 2026"), UNCOMPARABLE),
        ("v > 2026-01-05", Some("20260110"), UNCOMPARABLE),
        ("v > 2026-01-05", None, NO),
        // Text compares ignoring case (ASCII letters).
        ("v = gulu", Some("Gulu"), MATCH),
        ("v = GULU", Some("gulu"), MATCH),
        ("v = Gulu", Some("Gulu East"), NO),
        ("v = \"gulu east\"", Some("Gulu East"), MATCH),
        ("v = émile", Some("Émile"), NO),
        ("v = Émile", Some("Émile"), MATCH),
        ("v != Gulu", Some("gulu"), NO),
        ("v != Gulu", Some("Lira"), MATCH),
        // `!=` is the opposite of `=`, so a missing value is "not Gulu".
        ("v != Gulu", None, MATCH),
        ("v = Gulu", None, NO),
        // "" is "has no value"; an empty stored text is no value.
        ("v = \"\"", None, MATCH),
        ("v = \"\"", Some(""), MATCH),
        ("v = \"\"", Some("x"), NO),
        ("v != \"\"", None, NO),
        ("v != \"\"", Some("x"), MATCH),
        ("v != \"\"", Some("0"), MATCH),
        // `~` contains, ignoring case, on the text even of numbers.
        ("v ~ ulu", Some("GULU East"), MATCH),
        ("v ~ \"U E\"", Some("Gulu East"), MATCH),
        ("v ~ 1", Some("218"), MATCH),
        ("v ~ 8.0", Some("18"), NO),
        ("v ~ 2026-01", Some("2026-01-05"), MATCH),
        ("v ~ ulu", None, NO),
        ("v ~ \"\\\"\"", Some("say \"hi\""), MATCH),
    ];
    for (query, stored, expected) in table {
        let c = match stored {
            Some(s) => case(&[("v", s)]),
            None => case(&[("other", "x")]),
        };
        let e = eval(query, &c);
        assert_eq!(
            (e.matched, e.uncomparable),
            *expected,
            "{query} on {stored:?}"
        );
    }
}

#[test]
fn built_in_fields() {
    let mut c = case(&[]);
    let table: &[(&str, bool)] = &[
        ("name = \"achieng grace\"", true),
        ("name ~ grace", true),
        ("case_type = MOTHER", true),
        ("case_id = c-1", true),
        ("external_id = ext-007", true),
        ("external_id = 7", false),
        ("external_id != \"\"", true),
        ("phone_number = +256772123456", true),
        ("phone_number ~ 77212", true),
        ("language_code = \"\"", true),
        ("owner_id != \"\"", false),
        ("closed = false", true),
        ("closed != true", true),
        ("closed = true", false),
    ];
    for (query, expected) in table {
        assert_eq!(eval(query, &c).matched, *expected, "{query}");
    }
    c.closed = true;
    c.language_code = Some("lg".into());
    assert!(eval("closed = TRUE AND language_code = LG", &c).matched);
    assert!(!eval("closed = false", &c).matched);
}

#[test]
fn created_and_modified_at_compare_with_a_local_day() {
    // Kampala is UTC+3: 2026-03-01 there is [2026-02-28T21:00Z, 2026-03-01T21:00Z).
    let ms = |s: &str| s.parse::<jiff::Timestamp>().expect("ts").as_millisecond();
    let (start, end) = (ms("2026-02-28T21:00:00Z"), ms("2026-03-01T21:00:00Z"));
    assert_eq!(day_bounds(date(2026, 3, 1), &kampala()), (start, end));
    let at = |t: i64| {
        let mut c = case(&[]);
        c.created_at = t;
        c.modified_at = t;
        c
    };
    let table: &[(&str, i64, bool)] = &[
        ("created_at = 2026-03-01", start, true),
        ("created_at = 2026-03-01", start - 1, false),
        ("created_at = 2026-03-01", end - 1, true),
        ("created_at = 2026-03-01", end, false),
        ("created_at != 2026-03-01", end, true),
        ("created_at < 2026-03-01", start - 1, true),
        ("created_at < 2026-03-01", start, false),
        ("created_at <= 2026-03-01", end - 1, true),
        ("created_at <= 2026-03-01", end, false),
        ("created_at > 2026-03-01", end - 1, false),
        ("created_at > 2026-03-01", end, true),
        ("created_at >= 2026-03-01", start, true),
        ("created_at >= 2026-03-01", start - 1, false),
        ("modified_at >= 2026-03-01", start, true),
        ("modified_at < 2026-03-01", start, false),
    ];
    for (query, t, expected) in table {
        assert_eq!(eval(query, &at(*t)).matched, *expected, "{query} at {t}");
    }
    // The same instant is another day in another zone.
    let utc = Context {
        time_zone: TimeZone::UTC,
        is_member: |_: &GroupRef| false,
    };
    let q = CaseQuery::parse("created_at = 2026-03-01").expect("parses");
    assert!(!q.matches(&at(start), &utc));
    assert!(q.matches(&at(end - 1), &utc));
}

#[test]
fn a_day_that_does_not_start_at_midnight() {
    // São Paulo moved its clocks from 00:00 to 01:00 on 2018-11-04: that day began at
    // 01:00 -02 (03:00 UTC) and had 23 hours.
    let zone = TimeZone::get("America/Sao_Paulo").expect("zone");
    let ms = |s: &str| s.parse::<jiff::Timestamp>().expect("ts").as_millisecond();
    assert_eq!(
        day_bounds(date(2018, 11, 4), &zone),
        (ms("2018-11-04T03:00:00Z"), ms("2018-11-05T02:00:00Z"))
    );
    // The ends of the calendar do not fail.
    let (_, end) = day_bounds(date(9999, 12, 31), &zone);
    assert_eq!(end, i64::MAX);
}

#[test]
fn groups_come_from_the_context() {
    let c = case(&[]);
    assert!(eval("group = 1", &c).matched);
    assert!(!eval("group = 2", &c).matched);
    assert!(eval("group != 2", &c).matched);
    assert!(eval("group = \"GULU MOTHERS\"", &c).matched);
    assert!(!eval("group != \"Gulu mothers\"", &c).matched);
    assert!(
        !eval("group = \"1\"", &c).matched,
        "a quoted number is a name"
    );
}

#[test]
fn a_deleted_case_matches_nothing() {
    let mut c = case(&[("district", "Gulu")]);
    assert!(eval("district != Lira", &c).matched);
    c.deleted = true;
    assert_eq!(eval("district != Lira", &c), Evaluation::default());
    assert_eq!(eval("age > 1", &c), Evaluation::default());
}

#[test]
fn uncomparable_is_reported_whatever_decided_the_outcome() {
    let c = case(&[("age", "eighteen"), ("district", "Gulu")]);
    let both = |q: &str| {
        let e = eval(q, &c);
        (e.matched, e.uncomparable)
    };
    assert_eq!(both("age > 18 OR district = Gulu"), (true, true));
    assert_eq!(both("district = Gulu OR age > 18"), (true, true));
    assert_eq!(both("district = Lira AND age > 18"), (false, true));
    assert_eq!(
        both("district = Gulu AND (age >= 18 OR age < 18)"),
        (false, true)
    );
    assert_eq!(both("district = Gulu AND age != 18"), (true, false));
    assert_eq!(both("weight > 3 OR district = Gulu"), (true, false));
}

#[test]
fn compare_text_is_the_rule() {
    let v = Value::new;
    assert_eq!(compare_text("18.0", Op::Eq, &v("18")), Comparison::Match);
    assert_eq!(
        compare_text("x", Op::Gt, &v("18")),
        Comparison::Uncomparable
    );
    assert_eq!(compare_text("", Op::Gt, &v("18")), Comparison::NoMatch);
    assert_eq!(compare_text("", Op::Ne, &v("Gulu")), Comparison::Match);
    assert_eq!(
        compare_text("GULU", Op::Contains, &v("ul")),
        Comparison::Match
    );
}
