//! A broadcast schedule in words for the pages: "every 2 weeks on Monday and Thursday at
//! 09:00, from 2026-12-07, 10 times".

use casecast_core::recurrence::{DayOfMonth, Frequency, Schedule, Stop};
use jiff::civil::Weekday;

fn weekday(w: Weekday) -> &'static str {
    match w {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}

/// `1st`, `2nd`, `3rd`, `11th`, `22nd`.
fn ordinal(n: u8) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// `a`, `a and b`, `a, b and c`.
fn join(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn hh_mm(t: jiff::civil::Time) -> String {
    t.strftime("%H:%M").to_string()
}

/// The schedule in a sentence fragment (no capital, no full stop).
pub(crate) fn describe(schedule: &Schedule) -> String {
    let rule = match schedule {
        Schedule::Immediate => return "once, right away".to_string(),
        Schedule::Once { at } => {
            return format!("once, on {} at {}", at.date(), hh_mm(at.time()));
        }
        Schedule::Repeating(rule) => rule,
    };
    let (unit, units) = match rule.freq {
        Frequency::Daily => ("day", "days"),
        Frequency::Weekly => ("week", "weeks"),
        Frequency::Monthly => ("month", "months"),
    };
    let mut s = match rule.every {
        1 => format!("every {unit}"),
        n => format!("every {n} {units}"),
    };
    match rule.freq {
        Frequency::Daily => {}
        Frequency::Weekly => {
            let days: Vec<String> = rule.weekdays.iter().map(|w| weekday(*w).into()).collect();
            s.push_str(&format!(" on {}", join(&days)));
        }
        Frequency::Monthly => {
            let days: Vec<String> = (rule.days_of_month.iter())
                .map(|d| match d {
                    DayOfMonth::Day(n) => ordinal(*n),
                    DayOfMonth::Last => "last day".into(),
                })
                .collect();
            s.push_str(&format!(" on the {}", join(&days)));
        }
    }
    s.push_str(&format!(
        " at {}, from {}",
        hh_mm(rule.time),
        rule.start_date
    ));
    match rule.stop {
        Stop::Never => {}
        Stop::AfterOccurrences(1) => s.push_str(", once only"),
        Stop::AfterOccurrences(n) => s.push_str(&format!(", {n} times")),
        Stop::OnDate(d) => s.push_str(&format!(", until {d}")),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn words(v: serde_json::Value) -> String {
        describe(&Schedule::parse(&v).unwrap())
    }

    #[test]
    fn schedules_read_as_sentences() {
        assert_eq!(words(json!({"kind": "immediate"})), "once, right away");
        assert_eq!(
            words(json!({"kind": "once", "at": "2026-12-01T09:00"})),
            "once, on 2026-12-01 at 09:00"
        );
        assert_eq!(
            words(json!({"kind": "daily", "start_date": "2026-12-01", "time": "7:05"})),
            "every day at 07:05, from 2026-12-01"
        );
        assert_eq!(
            words(
                json!({"kind": "weekly", "start_date": "2026-12-07", "time": "09:00", "every": 2,
                "weekdays": ["thu", "mon"], "stop": {"after_occurrences": 10}})
            ),
            "every 2 weeks on Monday and Thursday at 09:00, from 2026-12-07, 10 times"
        );
        assert_eq!(
            words(json!({"kind": "monthly", "start_date": "2026-12-01", "time": "18:30",
                "days_of_month": [1, 22, 13, "last"], "stop": {"on_date": "2027-06-30"}})),
            "every month on the 1st, 13th, 22nd and last day at 18:30, from 2026-12-01, until 2027-06-30"
        );
    }
}
