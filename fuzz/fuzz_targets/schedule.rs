//! Broadcast schedules (once, daily, weekly, monthly) in 20 zones: no panic; the occurrences
//! after any instant come strictly later than it and than each other, with increasing
//! indices; each fires at the first instant whose local time is its scheduled time or later
//! (a time in a DST gap moves forward, a repeated time fires once); the schedule's JSON reads
//! back as the same schedule.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use casecast_core::recurrence::Schedule;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

#[derive(Arbitrary, Debug)]
struct Input {
    kind: u8,
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    every: Option<u8>,
    weekdays: Vec<u8>,
    days: Vec<u8>,
    stop: Option<(bool, u16)>,
    /// Text of the fuzzer's in place of the date or time, now and then.
    raw: Option<(bool, String)>,
    zone: u8,
}

const WEEKDAYS: [&str; 9] = [
    "mon", "tue", "wed", "thu", "fri", "sat", "sun", "Monday", "sunday",
];

fn body(i: &Input) -> Value {
    let date = format!(
        "{:04}-{:02}-{:02}",
        1990 + i.year % 120,
        1 + i.month % 12,
        1 + i.day % 31
    );
    let time = format!("{:02}:{:02}", i.hour % 24, i.minute % 60);
    let (date, time) = match &i.raw {
        Some((true, raw)) => (raw.clone(), time),
        Some((false, raw)) => (date, raw.clone()),
        None => (date, time),
    };
    let kind = ["once", "daily", "weekly", "monthly", "immediate"][usize::from(i.kind) % 5];
    if kind == "once" {
        return json!({"kind": "once", "at": format!("{date}T{time}")});
    }
    let mut b = json!({"kind": kind, "start_date": date, "time": time});
    if let Some(every) = i.every {
        b["every"] = json!(every);
    }
    if !i.weekdays.is_empty() {
        b["weekdays"] = i
            .weekdays
            .iter()
            .map(|w| json!(WEEKDAYS[usize::from(*w) % 9]))
            .collect();
    }
    if !i.days.is_empty() {
        b["days_of_month"] = i
            .days
            .iter()
            .map(|d| {
                if *d % 33 == 32 {
                    json!("last")
                } else {
                    json!(d % 33)
                }
            })
            .collect();
    }
    if let Some((after, n)) = i.stop {
        b["stop"] = if after {
            json!({"after_occurrences": n})
        } else {
            json!({"on_date": format!("{:04}-{:02}-01", 1990 + n % 120, 1 + n % 12)})
        };
    }
    b
}

fuzz_target!(|data: &[u8]| {
    casecast_fuzz::init();
    let mut u = Unstructured::new(data);
    let Ok(input) = Input::arbitrary(&mut u) else {
        return;
    };
    let Ok(after) = casecast_fuzz::instant(&mut u) else {
        return;
    };
    let Ok(schedule) = Schedule::parse(&body(&input)) else {
        return;
    };
    assert_eq!(
        Schedule::parse(&schedule.to_json()).as_ref(),
        Ok(&schedule),
        "JSON round trip"
    );
    let zone = casecast_fuzz::zone(input.zone);
    let mut last_at = after;
    let mut last_index = 0;
    for occurrence in schedule.occurrences_after(after, &zone).take(40) {
        assert!(
            occurrence.at > last_at,
            "{occurrence:?} is not after {last_at}"
        );
        assert!(
            occurrence.index > last_index,
            "{occurrence:?} index after {last_index}"
        );
        let local = zone.to_datetime(occurrence.at);
        assert!(
            local >= occurrence.local,
            "{occurrence:?} fires before its local time ({local})"
        );
        let before = zone.to_datetime(occurrence.at - jiff::SignedDuration::from_secs(1));
        assert!(
            before < occurrence.local,
            "{occurrence:?} is not the first such instant"
        );
        last_at = occurrence.at;
        last_index = occurrence.index;
    }
});
