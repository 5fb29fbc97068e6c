//! Reminder occurrences for one case: a rule read from a body (date start with an offset, or
//! `immediately`; a local time; a repeat), a case's date and `time_zone` values of the fuzzer's
//! or well-formed ones, in 20 zones. No panic; a case gets exactly `times` occurrences,
//! numbered 1.., strictly increasing, each at the first instant its local time is reached (or
//! later, in a DST gap), each on the date the rule says; `next_due` is the first after an
//! instant; the rule's JSON reads back as the same rule.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use casecast_core::reminder::schedule::{CaseTiming, Start};
use casecast_core::reminder::ReminderRule;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

#[derive(Arbitrary, Debug)]
struct Input {
    immediately: bool,
    offset: i16,
    hour: u8,
    minute: u8,
    time_text: Option<String>,
    repeat: Option<(u16, u16)>,
    date: (u16, u8, u8),
    date_text: Option<String>,
    zone: Option<u8>,
    zone_text: Option<String>,
    project_zone: u8,
}

fuzz_target!(|data: &[u8]| {
    casecast_fuzz::init();
    let mut u = Unstructured::new(data);
    let Ok(input) = Input::arbitrary(&mut u) else {
        return;
    };
    let Ok(now) = casecast_fuzz::instant(&mut u) else {
        return;
    };
    let time = input
        .time_text
        .clone()
        .unwrap_or_else(|| format!("{:02}:{:02}", input.hour % 24, input.minute % 60));
    let start = if input.immediately {
        json!({"immediately": true})
    } else {
        json!({"property": "next_visit", "offset_days": input.offset % 400})
    };
    let mut body = json!({
        "name": "fuzz",
        "case_type": "mother",
        "start": start,
        "time": time,
        "content": {"sms": {"*": "Visit on {case.next_visit}"}},
    });
    if let Some((every, times)) = input.repeat {
        body["repeat"] = json!({"every_days": every % 400, "times": times % 400});
    }
    let Ok(rule) = ReminderRule::parse_checked(&body) else {
        return;
    };
    assert_eq!(
        ReminderRule::parse_checked(&rule.to_json()).as_ref(),
        Ok(&rule),
        "JSON round trip"
    );
    let date = input.date_text.clone().unwrap_or_else(|| {
        let (y, m, d) = input.date;
        format!("{:04}-{:02}-{:02}", 1990 + y % 120, 1 + m % 12, 1 + d % 31)
    });
    let zone_name = match (&input.zone, &input.zone_text) {
        (Some(z), _) => {
            Some(casecast_fuzz::ZONES[usize::from(*z) % casecast_fuzz::ZONES.len()].to_string())
        }
        (None, Some(text)) => Some(text.clone()),
        (None, None) => None,
    };
    let timing = CaseTiming {
        date: Some(date.as_str()),
        time_zone: zone_name.as_deref(),
        matched_since: now,
    };
    let project_zone = casecast_fuzz::zone(input.project_zone);
    let Ok(schedule) = rule.timing.for_case(&timing, &project_zone) else {
        return;
    };
    let zone = schedule.zone().clone();
    let all: Vec<_> = schedule.occurrences().collect();
    assert_eq!(
        all.len() as u32,
        rule.timing.times(),
        "every occurrence exists"
    );
    let every = rule.timing.repeat.map_or(1, |r| r.every_days.max(1));
    for (i, o) in all.iter().enumerate() {
        assert_eq!(o.index as usize, i + 1);
        if i > 0 {
            assert!(o.at > all[i - 1].at, "{o:?} is not after {:?}", all[i - 1]);
        }
        if let Start::Date {
            offset_days, time, ..
        } = &rule.timing.start
        {
            let first = casecast_core::reminder::schedule::read_date(&date).expect("it was read");
            let want = first
                .checked_add(
                    jiff::Span::new().days(i64::from(*offset_days) + i as i64 * i64::from(every)),
                )
                .expect("in range, since the schedule exists");
            assert_eq!(o.local.date(), want, "{o:?}");
            assert_eq!(o.local.time(), *time);
            assert!(
                zone.to_datetime(o.at) >= o.local,
                "{o:?} fires before its local time"
            );
            let before = zone.to_datetime(o.at - jiff::SignedDuration::from_secs(1));
            assert!(before < o.local, "{o:?} is not the first such instant");
        }
    }
    let next = schedule.next_due(now);
    assert_eq!(
        next.as_ref(),
        all.iter().find(|o| o.at > now),
        "next_due after {now}"
    );
});
