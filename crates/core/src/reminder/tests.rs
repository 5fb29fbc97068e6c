use jiff::civil::{date, time, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, ToSpan};
use proptest::prelude::*;
use serde_json::json;

use super::*;

const KAMPALA: &str = "Africa/Kampala";
const SAO_PAULO: &str = "America/Sao_Paulo";
const LONDON: &str = "Europe/London";
const AUCKLAND: &str = "Pacific/Auckland";

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// Accepts every query but `bad`, whose error names a position as the real parser does.
fn validator(text: &str) -> Result<(), String> {
    if text.contains("bad") {
        Err("at 3: expected a value after '='".to_string())
    } else {
        Ok(())
    }
}

/// A valid rule: two days before the visit at 09:00, daily three times, in two languages.
fn body() -> Value {
    json!({
        "name": "Visit in 2 days",
        "active": true,
        "case_type": "mother",
        "query": "study_arm = B",
        "stop_query": "visit_done = yes",
        "start": {"property": "next_visit", "offset_days": -2},
        "time": "09:00",
        "repeat": {"every_days": 1, "times": 3},
        "content": {"sms": {"*": "Visit on {case.next_visit}", "sw": "Kliniki {case.next_visit}"}},
        "late_limit_hours": 12
    })
}

fn parse(body: &Value) -> Result<ReminderRule, Vec<FieldError>> {
    ReminderRule::parse(body, &validator)
}

fn with(change: impl FnOnce(&mut Map<String, Value>)) -> Value {
    let mut b = body();
    change(b.as_object_mut().unwrap());
    b
}

/// The fields at fault, in the order reported.
fn fields(change: impl FnOnce(&mut Map<String, Value>)) -> Vec<String> {
    parse(&with(change))
        .unwrap_err()
        .into_iter()
        .map(|e| e.field)
        .collect()
}

fn message(change: impl FnOnce(&mut Map<String, Value>)) -> String {
    let errors = parse(&with(change)).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors[0].message.clone()
}

#[test]
fn reads_a_whole_rule_and_writes_it_back() {
    let rule = parse(&body()).unwrap();
    assert_eq!(rule.name, "Visit in 2 days");
    assert!(rule.active);
    assert_eq!(rule.case_type, "mother");
    assert_eq!(rule.query, "study_arm = B");
    assert_eq!(rule.stop_query.as_deref(), Some("visit_done = yes"));
    assert_eq!(
        rule.timing,
        Timing {
            start: Start::Date {
                property: "next_visit".into(),
                offset_days: -2,
                time: time(9, 0, 0, 0),
            },
            repeat: Some(Repeat {
                every_days: 1,
                times: 3
            }),
        }
    );
    assert_eq!(rule.timing.times(), 3);
    assert_eq!(rule.late_limit_hours, Some(12));
    assert_eq!(
        rule.content
            .sms()
            .unwrap()
            .for_language(Some("sw"))
            .as_str(),
        "Kliniki {case.next_visit}"
    );
    assert_eq!(rule.to_json(), body());
    assert_eq!(parse(&rule.to_json()).unwrap(), rule);
}

#[test]
fn defaults_and_the_api_s_own_fields() {
    let b = with(|o| {
        for key in [
            "active",
            "query",
            "stop_query",
            "repeat",
            "late_limit_hours",
        ] {
            o.remove(key);
        }
        o.insert("start".into(), json!({"property": "next_visit"}));
        o.insert("id".into(), json!(7));
        o.insert("created_at".into(), json!("2026-01-01T00:00:00Z"));
    });
    let rule = parse(&b).unwrap();
    assert!(rule.active);
    assert_eq!(rule.query, "");
    assert_eq!(rule.stop_query, None);
    assert_eq!(rule.timing.repeat, None);
    assert_eq!(rule.timing.times(), 1);
    assert_eq!(rule.late_limit_hours, None);
    let Start::Date { offset_days, .. } = rule.timing.start else {
        panic!("a date start")
    };
    assert_eq!(offset_days, 0);
    let json = rule.to_json();
    assert_eq!(
        json["start"],
        json!({"property": "next_visit", "offset_days": 0})
    );
    assert_eq!(json["repeat"], Value::Null);
    assert_eq!(json["stop_query"], Value::Null);
    assert_eq!(json["late_limit_hours"], Value::Null);
    assert_eq!(json["query"], json!(""));
    assert!(json.get("id").is_none());
    assert_eq!(parse(&json).unwrap(), rule);
    // Blank queries are none; texts are trimmed; numbers may come as text from a form.
    let rule = parse(&with(|o| {
        o.insert("query".into(), json!("   "));
        o.insert("stop_query".into(), json!(""));
        o.insert("name".into(), json!("  Visit  "));
        o.insert(
            "start".into(),
            json!({"property": " next_visit ", "offset_days": " -3 ", "immediately": false}),
        );
        o.insert("repeat".into(), json!({"every_days": "7", "times": "2"}));
        o.insert("time".into(), json!("9:05"));
        o.insert("late_limit_hours".into(), json!("24"));
    }))
    .unwrap();
    assert_eq!(
        (rule.query.as_str(), rule.stop_query.as_deref()),
        ("", None)
    );
    assert_eq!(rule.name, "Visit");
    assert_eq!(
        rule.timing.start,
        Start::Date {
            property: "next_visit".into(),
            offset_days: -3,
            time: time(9, 5, 0, 0)
        }
    );
    assert_eq!(
        rule.timing.repeat,
        Some(Repeat {
            every_days: 7,
            times: 2
        })
    );
    assert_eq!(rule.late_limit_hours, Some(24));
    assert_eq!(rule.to_json()["time"], json!("09:05"));
}

#[test]
fn an_immediate_start_reads_back_with_or_without_a_time() {
    let rule = parse(&with(|o| {
        o.insert("start".into(), json!({"immediately": true}));
        o.remove("time");
    }))
    .unwrap();
    assert_eq!(rule.timing.start, Start::Immediately { time: None });
    assert_eq!(rule.to_json()["time"], Value::Null);
    assert_eq!(rule.to_json()["start"], json!({"immediately": true}));
    assert_eq!(parse(&rule.to_json()).unwrap(), rule);
    let rule = parse(&with(|o| {
        o.insert(
            "start".into(),
            json!({"immediately": true, "property": null, "offset_days": null}),
        );
    }))
    .unwrap();
    assert_eq!(
        rule.timing.start,
        Start::Immediately {
            time: Some(time(9, 0, 0, 0))
        }
    );
    assert_eq!(parse(&rule.to_json()).unwrap(), rule);
}

#[test]
fn a_survey_is_content_too() {
    let rule = parse(&with(|o| {
        o.insert("content".into(), json!({"survey": 4}));
    }))
    .unwrap();
    assert_eq!(rule.content, BroadcastContent::Survey(4));
    assert_eq!(rule.to_json()["content"], json!({"survey": 4}));
}

#[test]
fn every_problem_is_reported_with_its_field() {
    let all = fields(|o| {
        o.insert("name".into(), json!(" "));
        o.insert("active".into(), json!("yes"));
        o.insert("case_type".into(), json!("a type"));
        o.insert("query".into(), json!("study_arm = bad"));
        o.insert("stop_query".into(), json!(3));
        o.insert(
            "start".into(),
            json!({"property": "name", "offset_days": 400, "when": 1}),
        );
        o.insert("time".into(), json!("25:00"));
        o.insert("repeat".into(), json!({"every_days": 0, "times": 366}));
        o.insert("content".into(), json!({"sms": {"sw": "x"}}));
        o.insert("late_limit_hours".into(), json!(0));
        o.insert("colour".into(), json!("red"));
    });
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "active",
            "case_type",
            "colour",
            "content.sms",
            "late_limit_hours",
            "name",
            "query",
            "repeat.every_days",
            "repeat.times",
            "start.offset_days",
            "start.property",
            "start.when",
            "stop_query",
            "time",
        ]
    );
    assert_eq!(
        parse(&json!([1])).unwrap_err(),
        vec![FieldError::new("body", "send a JSON object")]
    );
}

#[test]
fn each_field_s_rule() {
    let cases: Vec<(Vec<String>, &[&str])> = vec![
        (fields(|o| drop(o.remove("name"))), &["name"]),
        (
            fields(|o| drop(o.insert("name".into(), json!("x".repeat(201))))),
            &["name"],
        ),
        (
            fields(|o| drop(o.insert("name".into(), json!("a\u{7}b")))),
            &["name"],
        ),
        (fields(|o| drop(o.remove("case_type"))), &["case_type"]),
        (fields(|o| drop(o.remove("start"))), &["start"]),
        (
            fields(|o| drop(o.insert("start".into(), json!("next_visit")))),
            &["start"],
        ),
        (
            fields(|o| drop(o.insert("start".into(), json!({"offset_days": -2})))),
            &["start.property"],
        ),
        (
            fields(|o| drop(o.insert("start".into(), json!({"property": "next visit"})))),
            &["start.property"],
        ),
        (
            fields(|o| {
                o.insert(
                    "start".into(),
                    json!({"immediately": true, "property": "next_visit"}),
                );
            }),
            &["start.property"],
        ),
        (
            fields(|o| drop(o.insert("start".into(), json!({"immediately": "yes"})))),
            &["start.immediately"],
        ),
        (
            fields(|o| {
                o.insert(
                    "start".into(),
                    json!({"property": "next_visit", "offset_days": 1.5}),
                );
            }),
            &["start.offset_days"],
        ),
        (
            fields(|o| {
                o.insert(
                    "start".into(),
                    json!({"property": "next_visit", "offset_days": -366}),
                );
            }),
            &["start.offset_days"],
        ),
        // A date start needs its time.
        (fields(|o| drop(o.remove("time"))), &["time"]),
        (
            fields(|o| drop(o.insert("time".into(), json!("09:00:00")))),
            &["time"],
        ),
        (
            fields(|o| drop(o.insert("time".into(), json!("9h")))),
            &["time"],
        ),
        (
            fields(|o| drop(o.insert("time".into(), json!(900)))),
            &["time"],
        ),
        (
            fields(|o| drop(o.insert("repeat".into(), json!({"times": 3})))),
            &["repeat.every_days"],
        ),
        (
            fields(|o| drop(o.insert("repeat".into(), json!({"every_days": 366, "times": 3})))),
            &["repeat.every_days"],
        ),
        (
            fields(|o| drop(o.insert("repeat".into(), json!({"every_days": 1, "times": 0})))),
            &["repeat.times"],
        ),
        (
            fields(|o| {
                o.insert(
                    "repeat".into(),
                    json!({"every_days": 1, "times": 2, "until": "x"}),
                );
            }),
            &["repeat.until"],
        ),
        (
            fields(|o| drop(o.insert("repeat".into(), json!(3)))),
            &["repeat"],
        ),
        (
            fields(|o| drop(o.insert("late_limit_hours".into(), json!(721)))),
            &["late_limit_hours"],
        ),
        (
            fields(|o| drop(o.insert("late_limit_hours".into(), json!(-1)))),
            &["late_limit_hours"],
        ),
        (fields(|o| drop(o.remove("content"))), &["content"]),
        (
            fields(|o| drop(o.insert("content".into(), json!({"sms": {"*": "Hi {case.}"}})))),
            &["content.sms.*"],
        ),
        (
            fields(|o| drop(o.insert("content".into(), json!({"survey": 0})))),
            &["content.survey"],
        ),
        (
            fields(|o| drop(o.insert("query".into(), json!("x".repeat(10_001))))),
            &["query"],
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }
    // Limits are inclusive.
    let ok = parse(&with(|o| {
        o.insert("name".into(), json!("x".repeat(200)));
        o.insert(
            "start".into(),
            json!({"property": "next_visit", "offset_days": 365}),
        );
        o.insert("repeat".into(), json!({"every_days": 365, "times": 365}));
        o.insert("late_limit_hours".into(), json!(720));
        o.insert("query".into(), json!("x".repeat(10_000)));
    }));
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn messages_say_what_was_wrong() {
    assert_eq!(
        message(|o| drop(o.insert("query".into(), json!("arm = bad")))),
        "at 3: expected a value after '='"
    );
    assert_eq!(
        message(|o| drop(o.insert("stop_query".into(), json!("done = bad")))),
        "at 3: expected a value after '='"
    );
    let m = message(|o| drop(o.insert("start".into(), json!({"property": "phone_number"}))));
    assert!(
        m.starts_with("'phone_number': ") && m.contains("standard case field"),
        "{m}"
    );
    let m = message(|o| drop(o.insert("repeat".into(), json!({"every_days": 1, "times": 400}))));
    assert!(m.contains("from 1 to 365"), "{m}");
    let m = message(|o| drop(o.remove("time")));
    assert!(m.contains("09:00"), "{m}");
    let m = message(|o| drop(o.insert("case_type".into(), json!("a b"))));
    assert!(m.contains("'a b'"), "{m}");
    let m = message(|o| drop(o.insert("content".into(), json!({"sms": {"*": "Hi {case.name"}}))));
    assert!(m.contains("column"), "{m}");
}

#[test]
fn the_query_validator_sees_trimmed_non_empty_queries_only() {
    let seen = std::cell::RefCell::new(Vec::new());
    let record = |q: &str| {
        seen.borrow_mut().push(q.to_string());
        Ok(())
    };
    let b = with(|o| {
        o.insert("query".into(), json!("  arm = B "));
        o.insert("stop_query".into(), json!(" "));
    });
    ReminderRule::parse(&b, &record).unwrap();
    assert_eq!(*seen.borrow(), vec!["arm = B".to_string()]);
}

#[test]
fn the_late_limit_is_the_rule_s_else_the_project_s() {
    let rule = parse(&body()).unwrap();
    assert_eq!(
        rule.late_limit(DEFAULT_LATE_LIMIT),
        SignedDuration::from_hours(12)
    );
    let rule = parse(&with(|o| drop(o.remove("late_limit_hours")))).unwrap();
    assert_eq!(
        rule.late_limit(DEFAULT_LATE_LIMIT),
        SignedDuration::from_hours(48)
    );
    assert_eq!(
        rule.late_limit(SignedDuration::from_hours(5)),
        SignedDuration::from_hours(5)
    );
}

// ---- Occurrences ----

fn on_date(offset_days: i32, hh: i8, mm: i8, repeat: Option<(u32, u32)>) -> Timing {
    Timing {
        start: Start::Date {
            property: "next_visit".into(),
            offset_days,
            time: time(hh, mm, 0, 0),
        },
        repeat: repeat.map(|(every_days, times)| Repeat { every_days, times }),
    }
}

fn case<'a>(date: Option<&'a str>, time_zone: Option<&'a str>) -> CaseTiming<'a> {
    CaseTiming {
        date,
        time_zone,
        matched_since: ts("2026-01-01T00:00Z"),
    }
}

/// Every occurrence as `k@instant`, or the skip code.
fn instants(timing: &Timing, case: CaseTiming<'_>, project: &str) -> String {
    match timing.for_case(&case, &zone(project)) {
        Ok(s) => s
            .occurrences()
            .map(|o| format!("{}@{}", o.index, o.at))
            .collect::<Vec<_>>()
            .join(" "),
        Err(skip) => skip.code().to_string(),
    }
}

#[test]
fn offsets_times_and_repeats() {
    let visit = Some("2026-03-10");
    let table = [
        (
            on_date(-2, 9, 0, None),
            "1@2026-03-08T06:00:00Z",
            "two days before at 09:00 in Kampala (UTC+3)",
        ),
        (on_date(0, 0, 0, None), "1@2026-03-09T21:00:00Z", "midnight"),
        (on_date(3, 23, 59, None), "1@2026-03-13T20:59:00Z", "after"),
        (
            on_date(-365, 9, 0, None),
            "1@2025-03-10T06:00:00Z",
            "a year before",
        ),
        (
            on_date(-2, 9, 0, Some((1, 3))),
            "1@2026-03-08T06:00:00Z 2@2026-03-09T06:00:00Z 3@2026-03-10T06:00:00Z",
            "daily three times",
        ),
        (
            on_date(0, 18, 30, Some((7, 2))),
            "1@2026-03-10T15:30:00Z 2@2026-03-17T15:30:00Z",
            "weekly twice",
        ),
        (
            on_date(0, 9, 0, Some((30, 1))),
            "1@2026-03-10T06:00:00Z",
            "times 1 is the start alone",
        ),
    ];
    for (timing, want, what) in table {
        assert_eq!(
            instants(&timing, case(visit, None), KAMPALA),
            want,
            "{what}"
        );
    }
    // The number of occurrences, whatever the step.
    let s = on_date(0, 9, 0, Some((365, 365)))
        .for_case(&case(visit, None), &zone(KAMPALA))
        .unwrap();
    assert_eq!(s.occurrences().count(), 365);
    assert_eq!(s.times(), 365);
    assert_eq!(s.occurrence(0), None);
    assert_eq!(s.occurrence(366), None);
    assert_eq!(s.occurrence(365).unwrap().local.date(), date(2389, 12, 12));
}

#[test]
fn the_case_s_zone_replaces_the_project_s() {
    let t = on_date(-2, 9, 0, None);
    let visit = Some("2026-07-10");
    assert_eq!(
        instants(&t, case(visit, Some("Europe/London")), KAMPALA),
        "1@2026-07-08T08:00:00Z"
    );
    assert_eq!(
        instants(&t, case(visit, Some(" America/Sao_Paulo ")), KAMPALA),
        "1@2026-07-08T12:00:00Z"
    );
    // Blank is no zone: the project's.
    assert_eq!(
        instants(&t, case(visit, Some("  ")), LONDON),
        "1@2026-07-08T08:00:00Z"
    );
    let s = t
        .for_case(&case(visit, Some("Pacific/Auckland")), &zone(KAMPALA))
        .unwrap();
    assert_eq!(s.zone(), &zone(AUCKLAND));
}

#[test]
fn a_case_s_properties_are_read_by_name() {
    let mut c = crate::case::CaseChanges {
        name: Some("Amina".into()),
        ..Default::default()
    }
    .create(crate::CaseId::new(), 0)
    .unwrap();
    c.properties
        .insert("next_visit".into(), "2026-03-10".into());
    c.properties
        .insert("time_zone".into(), "Europe/London".into());
    let since = ts("2026-01-01T00:00Z");
    let t = on_date(-2, 9, 0, None);
    assert_eq!(t.property(), Some("next_visit"));
    let read = CaseTiming::of(&c, &t, since);
    assert_eq!(
        (read.date, read.time_zone, read.matched_since),
        (Some("2026-03-10"), Some("Europe/London"), since)
    );
    assert_eq!(
        t.for_case(&read, &zone(KAMPALA))
            .unwrap()
            .occurrence(1)
            .unwrap()
            .at,
        ts("2026-03-08T09:00Z")
    );
    let now = Timing {
        start: Start::Immediately { time: None },
        repeat: None,
    };
    assert_eq!(now.property(), None);
    assert_eq!(CaseTiming::of(&c, &now, since).date, None);
    c.properties.clear();
    let read = CaseTiming::of(&c, &t, since);
    assert_eq!((read.date, read.time_zone), (None, None));
}

#[test]
fn skip_reasons() {
    let t = on_date(-2, 9, 0, Some((1, 3)));
    let skip = |date: Option<&str>, tz: Option<&str>| instants(&t, case(date, tz), KAMPALA);
    assert_eq!(skip(None, None), "no_date");
    assert_eq!(skip(Some(""), None), "no_date");
    assert_eq!(skip(Some("   "), None), "no_date");
    for unreadable in [
        "2026-3-10",
        "10/03/2026",
        "20260310",
        "2026-02-30",
        "2026-03-10T09:00",
        "2026-03-10 09:00",
        "next week",
        "+2026-03-10",
        "٢٠٢٦-٠٣-١٠",
    ] {
        assert_eq!(
            skip(Some(unreadable), None),
            "date_unreadable",
            "{unreadable}"
        );
    }
    // Surrounding spaces are not a problem.
    assert_eq!(
        skip(Some(" 2026-03-10 "), None),
        "1@2026-03-08T06:00:00Z 2@2026-03-09T06:00:00Z 3@2026-03-10T06:00:00Z"
    );
    // Occurrences past the year 9999 cannot be computed.
    assert_eq!(
        instants(
            &on_date(2, 9, 0, None),
            case(Some("9999-12-30"), None),
            KAMPALA
        ),
        "date_unreadable"
    );
    assert_eq!(
        instants(
            &on_date(0, 9, 0, Some((1, 3))),
            case(Some("9999-12-30"), None),
            KAMPALA
        ),
        "date_unreadable"
    );
    for tz in ["Mars/Olympus", "EAT+3", "UTC+03:00", "Africa"] {
        assert_eq!(
            skip(Some("2026-03-10"), Some(tz)),
            "time_zone_invalid",
            "{tz}"
        );
    }
    // The zone is checked first, and for an immediate start too.
    assert_eq!(skip(Some("x"), Some("Mars/Olympus")), "time_zone_invalid");
    let now = Timing {
        start: Start::Immediately { time: None },
        repeat: None,
    };
    assert_eq!(
        instants(&now, case(None, Some("Mars/Olympus")), KAMPALA),
        "time_zone_invalid"
    );
    assert_eq!(
        Skip::DateUnreadable.to_string(),
        "date unreadable: the start property is not a date written YYYY-MM-DD"
    );
}

#[test]
fn dst_gaps_move_forward_and_repeated_times_fire_once() {
    let table = [
        // London: 2026-03-29 01:00 GMT → 02:00 BST; 2026-10-25 02:00 BST → 01:00 GMT.
        (
            LONDON,
            "2026-03-29",
            1,
            30,
            "2026-03-29T01:00:00Z",
            "in the gap",
        ),
        (
            LONDON,
            "2026-03-29",
            9,
            0,
            "2026-03-29T08:00:00Z",
            "after the gap",
        ),
        (
            LONDON,
            "2026-03-29",
            0,
            59,
            "2026-03-29T00:59:00Z",
            "before",
        ),
        (
            LONDON,
            "2026-10-25",
            1,
            30,
            "2026-10-25T00:30:00Z",
            "first of two",
        ),
        (
            LONDON,
            "2026-10-25",
            9,
            0,
            "2026-10-25T09:00:00Z",
            "after the fold",
        ),
        // Auckland: 2026-04-05 03:00 NZDT → 02:00 NZST; 2026-09-27 02:00 NZST → 03:00 NZDT.
        (
            AUCKLAND,
            "2026-04-05",
            2,
            30,
            "2026-04-04T13:30:00Z",
            "first of two",
        ),
        (
            AUCKLAND,
            "2026-09-27",
            2,
            30,
            "2026-09-26T14:00:00Z",
            "in the gap",
        ),
        (
            AUCKLAND,
            "2026-09-27",
            9,
            0,
            "2026-09-26T20:00:00Z",
            "after the gap",
        ),
        // São Paulo: 2018-11-04 00:00 → 01:00; 2019-02-17 00:00 → 2019-02-16 23:00.
        (
            SAO_PAULO,
            "2018-11-04",
            0,
            30,
            "2018-11-04T03:00:00Z",
            "in the gap",
        ),
        (
            SAO_PAULO,
            "2018-11-04",
            9,
            0,
            "2018-11-04T11:00:00Z",
            "after the gap",
        ),
        (
            SAO_PAULO,
            "2019-02-16",
            23,
            30,
            "2019-02-17T01:30:00Z",
            "first of two",
        ),
        (
            SAO_PAULO,
            "2019-02-17",
            0,
            0,
            "2019-02-17T03:00:00Z",
            "after the fold",
        ),
        // No daylight saving since 2019, none in Kampala.
        (
            SAO_PAULO,
            "2026-11-01",
            0,
            30,
            "2026-11-01T03:30:00Z",
            "plain",
        ),
        (
            KAMPALA,
            "2026-03-29",
            1,
            30,
            "2026-03-28T22:30:00Z",
            "plain",
        ),
    ];
    for (tz, day, hh, mm, want, what) in table {
        let got = instants(&on_date(0, hh, mm, None), case(Some(day), None), tz);
        assert_eq!(got, format!("1@{want}"), "{tz} {day} {hh}:{mm} {what}");
    }
    // A daily 01:30 across London's spring gap; a daily 09:00 keeps its time.
    assert_eq!(
        instants(
            &on_date(-1, 1, 30, Some((1, 3))),
            case(Some("2026-03-29"), None),
            LONDON
        ),
        "1@2026-03-28T01:30:00Z 2@2026-03-29T01:00:00Z 3@2026-03-30T00:30:00Z"
    );
    assert_eq!(
        instants(
            &on_date(-1, 9, 0, Some((1, 3))),
            case(Some("2026-10-25"), None),
            LONDON
        ),
        "1@2026-10-24T08:00:00Z 2@2026-10-25T09:00:00Z 3@2026-10-26T09:00:00Z"
    );
    // The scheduled local time is kept even when the clock skipped it.
    let s = on_date(0, 1, 30, None)
        .for_case(&case(Some("2026-03-29"), None), &zone(LONDON))
        .unwrap();
    assert_eq!(
        s.occurrence(1).unwrap().local,
        date(2026, 3, 29).at(1, 30, 0, 0)
    );
}

#[test]
fn an_immediate_start_is_when_the_case_started_matching() {
    let since = ts("2026-03-27T14:17:05.250Z");
    let at = |time: Option<Time>, repeat: Option<Repeat>| {
        let t = Timing {
            start: Start::Immediately { time },
            repeat,
        };
        let c = CaseTiming {
            date: None,
            time_zone: None,
            matched_since: since,
        };
        let s = t.for_case(&c, &zone(LONDON)).unwrap();
        s.occurrences()
            .map(|o| o.at.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(at(None, None), "2026-03-27T14:17:05.25Z");
    // The same local time of day on the days after, across the change to summer time.
    let daily = Some(Repeat {
        every_days: 1,
        times: 3,
    });
    assert_eq!(
        at(None, daily),
        "2026-03-27T14:17:05.25Z 2026-03-28T14:17:05.25Z 2026-03-29T13:17:05.25Z"
    );
    // Or at the rule's time.
    assert_eq!(
        at(Some(time(9, 0, 0, 0)), daily),
        "2026-03-27T14:17:05.25Z 2026-03-28T09:00:00Z 2026-03-29T08:00:00Z"
    );
    // No date needed.
    let t = Timing {
        start: Start::Immediately { time: None },
        repeat: None,
    };
    let c = CaseTiming {
        date: Some("garbage"),
        time_zone: Some("Africa/Kampala"),
        matched_since: since,
    };
    let o = t
        .for_case(&c, &zone(LONDON))
        .unwrap()
        .occurrence(1)
        .unwrap();
    assert_eq!(o.at, since);
    assert_eq!(o.local, date(2026, 3, 27).at(17, 17, 5, 250_000_000));
}

#[test]
fn a_case_that_starts_matching_in_a_repeated_hour_gets_later_occurrences_after_it() {
    // A zone whose summer time ends at 00:30 back to 23:30, so that the repeated hour spans
    // midnight: 2026-10-24 23:30 to 2026-10-25 00:30 happens twice.
    let zone = TimeZone::posix("STD0DST-1,M3.5.0/1,M10.5.0/0:30").unwrap();
    // The case starts matching during the second 23:40 (local date 2026-10-24).
    let since = ts("2026-10-24T23:40Z");
    assert_eq!(zone.to_datetime(since), date(2026, 10, 24).at(23, 40, 0, 0));
    let t = Timing {
        start: Start::Immediately {
            time: Some(time(0, 10, 0, 0)),
        },
        repeat: Some(Repeat {
            every_days: 1,
            times: 3,
        }),
    };
    let c = CaseTiming {
        date: None,
        time_zone: None,
        matched_since: since,
    };
    let s = t.for_case(&c, &zone).unwrap();
    // 2026-10-25 00:10 was first read at 2026-10-24T23:10Z, before the case matched: it is
    // due when the clock reads it again.
    let all: Vec<String> = s.occurrences().map(|o| o.at.to_string()).collect();
    assert_eq!(
        all,
        [
            "2026-10-24T23:40:00Z",
            "2026-10-25T00:10:00Z",
            "2026-10-26T00:10:00Z"
        ]
    );
    // A date start keeps the first reading.
    let s = on_date(0, 0, 10, None)
        .for_case(&case(Some("2026-10-25"), None), &zone)
        .unwrap();
    assert_eq!(s.occurrence(1).unwrap().at, ts("2026-10-24T23:10Z"));
}

#[test]
fn next_due_and_upcoming() {
    let s = on_date(-2, 9, 0, Some((2, 4)))
        .for_case(&case(Some("2026-03-10"), None), &zone(KAMPALA))
        .unwrap();
    // 1@03-08 06:00Z, 2@03-10, 3@03-12, 4@03-14.
    let next = |after: &str| s.next_due(ts(after)).map(|o| (o.index, o.at.to_string()));
    assert_eq!(
        next("2026-01-01T00:00Z"),
        Some((1, "2026-03-08T06:00:00Z".into()))
    );
    // Strictly after: the one at that instant is done.
    assert_eq!(
        next("2026-03-08T06:00Z"),
        Some((2, "2026-03-10T06:00:00Z".into()))
    );
    assert_eq!(
        next("2026-03-08T05:59:59.999Z"),
        Some((1, "2026-03-08T06:00:00Z".into()))
    );
    assert_eq!(
        next("2026-03-13T00:00Z"),
        Some((4, "2026-03-14T06:00:00Z".into()))
    );
    assert_eq!(next("2026-03-14T06:00Z"), None);
    // By number: occurrences up to 2 handled (at other times, say before the rule's time was
    // moved); the next is 3 even when 2 would now fall later than `after`.
    let after = |at: &str, handled: u32| {
        s.next_after(ts(at), handled)
            .map(|o| (o.index, o.at.to_string()))
    };
    assert_eq!(
        after("2026-03-08T00:00Z", 2),
        Some((3, "2026-03-12T06:00:00Z".into()))
    );
    assert_eq!(
        after("2026-03-12T06:00Z", 2),
        Some((4, "2026-03-14T06:00:00Z".into()))
    );
    assert_eq!(
        after("2026-01-01T00:00Z", 0),
        Some((1, "2026-03-08T06:00:00Z".into()))
    );
    assert_eq!(after("2026-01-01T00:00Z", 4), None);
    let upcoming = |from: &str, to: &str| {
        s.upcoming(ts(from), ts(to))
            .map(|o| o.index)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        upcoming("2026-01-01T00:00Z", "2027-01-01T00:00Z"),
        [1, 2, 3, 4]
    );
    // From included, to excluded.
    assert_eq!(upcoming("2026-03-10T06:00Z", "2026-03-14T06:00Z"), [2, 3]);
    assert_eq!(
        upcoming("2026-03-09T00:00Z", "2026-03-09T23:00Z"),
        [0u32; 0]
    );
    assert_eq!(
        upcoming("2026-03-15T00:00Z", "2026-04-15T00:00Z"),
        [0u32; 0]
    );
    assert_eq!(
        upcoming("2026-03-12T00:00Z", "2026-03-01T00:00Z"),
        [0u32; 0]
    );
}

#[test]
fn an_occurrence_more_than_the_late_limit_late_is_missed() {
    let o = Occurrence {
        index: 1,
        local: date(2026, 3, 8).at(9, 0, 0, 0),
        at: ts("2026-03-08T06:00Z"),
    };
    let limit = DEFAULT_LATE_LIMIT;
    let at = |now: &str| o.firing(ts(now), limit);
    assert_eq!(at("2026-03-08T05:59:59.999Z"), Firing::NotDue);
    assert_eq!(at("2026-03-08T06:00Z"), Firing::Send);
    assert_eq!(at("2026-03-10T06:00Z"), Firing::Send);
    assert_eq!(at("2026-03-10T06:00:00.001Z"), Firing::Missed);
    assert_eq!(
        o.firing(
            ts("2026-03-08T07:00:00.001Z"),
            SignedDuration::from_hours(1)
        ),
        Firing::Missed
    );
}

// ---- Properties across daylight-saving changes ----

/// Independent of the code under test: walking the zone's offset periods around `local`, the
/// first instant at which the clock reads `local` or later.
fn first_reading(zone: &TimeZone, local: DateTime) -> Timestamp {
    let as_utc = local.to_zoned(TimeZone::UTC).unwrap().timestamp();
    let mut from = as_utc - 72.hours();
    loop {
        let offset = zone.to_offset(from);
        let until = zone
            .following(from)
            .next()
            .map_or(Timestamp::MAX, |t| t.timestamp());
        let reads_local = offset.to_timestamp(local).unwrap();
        let first = reads_local.max(from);
        if first < until {
            return first;
        }
        from = until;
    }
}

const ZONES: [&str; 4] = [KAMPALA, SAO_PAULO, LONDON, AUCKLAND];

fn any_timing() -> impl Strategy<Value = Timing> {
    // Hours near the zones' changes (00:00 São Paulo, 01:00–02:00 London, 02:00–03:00
    // Auckland) come often.
    let hour = prop_oneof![0i8..24, prop::sample::select(vec![0i8, 1, 2, 3, 23])];
    let hhmm = (hour, prop::sample::select(vec![0i8, 1, 15, 30, 59]));
    let repeat = prop::option::of((1u32..=40, 1u32..=40));
    prop_oneof![
        3 => (-MAX_OFFSET_DAYS..=MAX_OFFSET_DAYS, hhmm.clone(), repeat.clone())
            .prop_map(|(off, (h, m), r)| on_date(off, h, m, r)),
        1 => (prop::option::of(hhmm), repeat).prop_map(|(t, r)| Timing {
            start: Start::Immediately { time: t.map(|(h, m)| time(h, m, 0, 0)) },
            repeat: r.map(|(every_days, times)| Repeat { every_days, times }),
        }),
    ]
}

/// The zone's changes of offset from 2010 to 2030.
fn changes(zone: &TimeZone) -> Vec<Timestamp> {
    zone.following(ts("2010-01-01T00:00Z"))
        .map(|t| t.timestamp())
        .take_while(|t| *t < ts("2031-01-01T00:00Z"))
        .collect()
}

#[test]
fn the_zones_tested_change_as_expected() {
    // Kampala never changes; São Paulo stopped in 2019; London and Auckland twice a year.
    assert_eq!(changes(&zone(KAMPALA)).len(), 0);
    assert_eq!(changes(&zone(SAO_PAULO)).len(), 19);
    assert_eq!(changes(&zone(LONDON)).len(), 42);
    assert_eq!(changes(&zone(AUCKLAND)).len(), 42);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn occurrences_are_at_the_wanted_wall_time_and_strictly_increasing(
        timing in any_timing(),
        tz in prop::sample::select(ZONES.to_vec()),
        // Half the time, occurrence 1 (or the matched instant) is next to a change.
        near_change in any::<bool>(),
        change in any::<prop::sample::Index>(),
        jitter_days in -1i64..=1,
        jitter_minutes in -150i64..=150,
        day in 0i64..(21 * 365),
        // Minutes, so that the matched instant falls inside folds and gaps too.
        since_minutes in 0i64..(21 * 365 * 24 * 60),
        probe in 0i64..(23 * 365 * 24 * 60),
    ) {
        let zone = zone(tz);
        let changes = changes(&zone);
        let offset = match &timing.start {
            Start::Date { offset_days, .. } => i64::from(*offset_days),
            Start::Immediately { .. } => 0,
        };
        let (start, since) = if near_change && !changes.is_empty() {
            let at = changes[change.index(changes.len())];
            let first = zone.to_datetime(at).date().checked_add((jitter_days - offset).days());
            (first.unwrap(), at + SignedDuration::from_mins(jitter_minutes))
        } else {
            let first = date(2010, 1, 1).checked_add(day.days()).unwrap();
            (first, ts("2010-01-01T00:00Z") + SignedDuration::from_mins(since_minutes))
        };
        let start = start.to_string();
        let c = CaseTiming { date: Some(&start), time_zone: None, matched_since: since };
        let s = timing.for_case(&c, &zone).unwrap();
        let all: Vec<Occurrence> = s.occurrences().collect();
        // Exactly `times` of them, numbered from 1.
        prop_assert_eq!(all.len() as u32, timing.times());
        for (i, o) in all.iter().enumerate() {
            prop_assert_eq!(o.index, i as u32 + 1);
        }
        // Strictly increasing: never two at one instant.
        for pair in all.windows(2) {
            prop_assert!(pair[0].at < pair[1].at, "{:?}", pair);
        }
        let every = i64::from(timing.repeat.map_or(1, |r| r.every_days));
        for o in &all {
            let steps = (i64::from(o.index) - 1) * every;
            let wanted = match &timing.start {
                Start::Date { offset_days, time, .. } => {
                    let d = read_date(&start).unwrap();
                    d.checked_add((i64::from(*offset_days) + steps).days()).unwrap().to_datetime(*time)
                }
                Start::Immediately { .. } if o.index == 1 => {
                    prop_assert_eq!(o.at, since);
                    prop_assert_eq!(o.local, zone.to_datetime(since));
                    continue;
                }
                Start::Immediately { time } => {
                    let first = zone.to_datetime(since);
                    let t = time.unwrap_or(first.time());
                    first.date().checked_add(steps.days()).unwrap().to_datetime(t)
                }
            };
            prop_assert_eq!(o.local, wanted);
            // The clock reads the wanted time then, unless that time was skipped: then it is
            // the first instant after the gap.
            let reads = zone.to_datetime(o.at);
            match zone.to_ambiguous_timestamp(wanted).offset() {
                AmbiguousOffset::Gap { .. } => {
                    prop_assert!(reads > wanted);
                    let transition = zone.preceding(o.at + SignedDuration::from_nanos(1)).next();
                    prop_assert_eq!(transition.map(|t| t.timestamp()), Some(o.at));
                }
                _ => prop_assert_eq!(reads, wanted),
            }
            // The first instant reading it (a repeated time fires once, the first time), unless
            // that was before the case started matching.
            let first = first_reading(&zone, wanted);
            if first > since || matches!(timing.start, Start::Date { .. }) {
                prop_assert_eq!(o.at, first);
            } else {
                prop_assert!(o.at > since);
            }
        }
        // next_due and upcoming agree with the full list.
        let after = ts("2009-01-01T00:00Z") + SignedDuration::from_mins(probe);
        let want_next = all.iter().copied().find(|o| o.at > after);
        prop_assert_eq!(s.next_due(after), want_next);
        for o in &all {
            prop_assert_eq!(s.next_due(o.at - SignedDuration::from_nanos(1)), Some(*o));
        }
        let to = after + SignedDuration::from_hours(30 * 24);
        let want: Vec<Occurrence> = all.iter().copied().filter(|o| o.at >= after && o.at < to).collect();
        prop_assert_eq!(s.upcoming(after, to).collect::<Vec<_>>(), want);
    }
}
