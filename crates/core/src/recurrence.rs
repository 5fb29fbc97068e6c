//! Broadcast schedules (issue 5): parsing the CONTRACT's `schedule` object and working out
//! when each occurrence falls, in the project's time zone, across daylight-saving changes.

use crate::quiet_hours::first_at_or_after;
use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::{json, Map, Value};

/// When a broadcast is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Sent when created. It has no scheduled occurrences: the caller sends it "now", as
    /// occurrence 1, and `occurrences_after` yields nothing.
    Immediate,
    /// Sent once, at a local date and time.
    Once {
        /// Local date and time in the project's time zone.
        at: DateTime,
    },
    /// Sent daily, weekly or monthly at a local time.
    Repeating(Recurrence),
}

/// How often a repeating schedule repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frequency {
    /// Every `every` days from the start date.
    Daily,
    /// On chosen weekdays of every `every`-th week (weeks start on Monday).
    Weekly,
    /// On chosen days of every `every`-th month.
    Monthly,
}

/// A day of the month in a monthly schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DayOfMonth {
    /// A day number, 1..=31. A month without that day (31 in April, 30 in February) is
    /// skipped for that day; it is not moved to the month's last day.
    Day(u8),
    /// The last day of the month, whatever its length.
    Last,
}

/// When a repeating schedule stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// It never stops.
    Never,
    /// The n-th occurrence (1..=10,000) is the last.
    AfterOccurrences(u32),
    /// No occurrence after this local date; one on the date itself still happens.
    OnDate(Date),
}

/// A daily, weekly or monthly schedule. Built by [`Schedule::parse`], which guarantees the
/// invariants documented on each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recurrence {
    /// Daily, weekly or monthly.
    pub freq: Frequency,
    /// The first local date an occurrence may fall on; `every` counts from it.
    pub start_date: Date,
    /// Local time of day of each occurrence.
    pub time: Time,
    /// Repeat every N days (1..=365), weeks (1..=52) or months (1..=12).
    pub every: u32,
    /// Weekly: the weekdays, non-empty, Monday first, no duplicates. Empty otherwise.
    pub weekdays: Vec<Weekday>,
    /// Monthly: the days, non-empty, sorted, no duplicates. Empty otherwise.
    pub days_of_month: Vec<DayOfMonth>,
    /// When it stops.
    pub stop: Stop,
}

/// One occurrence of a schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Occurrence {
    /// 1-based position among all the schedule's occurrences since its start.
    pub index: u32,
    /// The scheduled local date and time (as configured, even when it falls in a DST gap).
    pub local: DateTime,
    /// The instant it fires: the first at which the local clock reads `local` or later.
    pub at: Timestamp,
}

/// A `schedule` object that does not follow the CONTRACT.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("schedule.{field}: {message}")]
pub struct ScheduleError {
    /// The offending field, e.g. `weekdays` or `stop.on_date`.
    pub field: String,
    /// What is wrong with it and what it should look like.
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> ScheduleError {
    ScheduleError {
        field: field.to_string(),
        message: message.into(),
    }
}

const WEEKDAYS: [(&str, &str); 7] = [
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];
const REPEATING_FIELDS: [&str; 6] = [
    "start_date",
    "time",
    "every",
    "weekdays",
    "days_of_month",
    "stop",
];
/// Empty periods in a row after which a schedule is taken to have no more occurrences
/// (a leap day every 12 months waits at most 8 years).
const MAX_EMPTY_PERIODS: u32 = 100;

impl Schedule {
    /// Reads a CONTRACT `schedule` object.
    pub fn parse(json: &Value) -> Result<Schedule, ScheduleError> {
        let obj = json
            .as_object()
            .ok_or_else(|| err("kind", "the schedule must be an object with a \"kind\""))?;
        let kind = obj.get("kind").and_then(Value::as_str).ok_or_else(|| {
            err(
                "kind",
                "must be one of immediate, once, daily, weekly, monthly",
            )
        })?;
        let freq = match kind {
            "immediate" | "once" => None,
            "daily" => Some(Frequency::Daily),
            "weekly" => Some(Frequency::Weekly),
            "monthly" => Some(Frequency::Monthly),
            other => {
                let msg =
                    format!("\"{other}\" is not one of immediate, once, daily, weekly, monthly");
                return Err(err("kind", msg));
            }
        };
        for (key, value) in obj {
            let allowed = key == "kind"
                || (kind == "once" && key == "at")
                || (freq.is_some() && REPEATING_FIELDS.contains(&key.as_str()));
            if !allowed && !value.is_null() {
                return Err(err(key, format!("is not a field of a {kind} schedule")));
            }
        }
        let field = |name: &str| obj.get(name).filter(|v| !v.is_null());
        let Some(freq) = freq else {
            if kind == "immediate" {
                return Ok(Schedule::Immediate);
            }
            let at = field("at").and_then(Value::as_str).unwrap_or_default();
            let at = parse_date_time(at)
                .ok_or_else(|| err("at", "must be a local date-time like \"2026-03-29T09:00\""))?;
            return Ok(Schedule::Once { at });
        };
        let text = |name: &str| field(name).and_then(Value::as_str).unwrap_or_default();
        let start_date = parse_date(text("start_date"))
            .ok_or_else(|| err("start_date", "must be a date like \"2026-03-02\""))?;
        let time =
            parse_time(text("time")).ok_or_else(|| err("time", "must be a time like \"09:00\""))?;
        let max_every = match freq {
            Frequency::Daily => 365,
            Frequency::Weekly => 52,
            Frequency::Monthly => 12,
        };
        let every = match field("every") {
            None => 1,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=max_every).contains(n))
                .ok_or_else(|| {
                    err(
                        "every",
                        format!("must be a whole number from 1 to {max_every}"),
                    )
                })? as u32,
        };
        let weekdays = parse_list(field("weekdays"), "weekdays", parse_weekday)?;
        let days = parse_list(field("days_of_month"), "days_of_month", parse_day)?;
        let rule = Recurrence {
            freq,
            start_date,
            time,
            every,
            weekdays: sorted(weekdays, |w| w.to_monday_zero_offset()),
            days_of_month: sorted(days, |d| *d),
            stop: parse_stop(field("stop"))?,
        };
        rule.validate()?;
        Ok(Schedule::Repeating(rule))
    }

    /// The CONTRACT `schedule` object; `parse` gives back an equal schedule.
    pub fn to_json(&self) -> Value {
        match self {
            Schedule::Immediate => json!({"kind": "immediate"}),
            Schedule::Once { at } => json!({"kind": "once", "at": format_date_time(*at)}),
            Schedule::Repeating(rule) => {
                let kind = match rule.freq {
                    Frequency::Daily => "daily",
                    Frequency::Weekly => "weekly",
                    Frequency::Monthly => "monthly",
                };
                let weekdays: Vec<&str> = (rule.weekdays.iter())
                    .map(|w| WEEKDAYS[w.to_monday_zero_offset() as usize].0)
                    .collect();
                let days: Vec<Value> = (rule.days_of_month.iter())
                    .map(|d| match d {
                        DayOfMonth::Day(n) => json!(n),
                        DayOfMonth::Last => json!("last"),
                    })
                    .collect();
                let stop = match rule.stop {
                    Stop::Never => Value::Null,
                    Stop::AfterOccurrences(n) => json!({"after_occurrences": n}),
                    Stop::OnDate(d) => json!({"on_date": d.to_string()}),
                };
                json!({
                    "kind": kind,
                    "start_date": rule.start_date.to_string(),
                    "time": format_time(rule.time),
                    "every": rule.every,
                    "weekdays": weekdays,
                    "days_of_month": days,
                    "stop": stop,
                })
            }
        }
    }

    /// The occurrences firing strictly after `after`, in order, each strictly later than the
    /// one before. Indices count from the schedule's start, so occurrences that fired (or were
    /// missed) before `after` still count toward `Stop::AfterOccurrences`.
    pub fn occurrences_after<'a>(
        &'a self,
        after: Timestamp,
        zone: &'a TimeZone,
    ) -> Occurrences<'a> {
        let source = match self {
            Schedule::Immediate => Source::Done,
            Schedule::Once { at } => Source::Once(*at),
            Schedule::Repeating(rule) => {
                // Start a couple of days before `after`'s local date: no transition moves
                // the clock further than that, and earlier instants are filtered out anyway.
                let from = zone.to_datetime(after).date().checked_sub(2.days());
                let period = from.map_or(0, |d| rule.period_of(d));
                Source::Repeating {
                    rule,
                    period: period - 1,
                    queue: Vec::new().into_iter(),
                    index: rule.count_before(period),
                    empty_periods: 0,
                }
            }
        };
        Occurrences {
            source,
            zone,
            after,
        }
    }

    /// The first occurrence strictly after `after`, if any.
    pub fn next_after(&self, after: Timestamp, zone: &TimeZone) -> Option<Occurrence> {
        self.occurrences_after(after, zone).next()
    }
}

impl Recurrence {
    fn validate(&self) -> Result<(), ScheduleError> {
        match self.freq {
            Frequency::Weekly if self.weekdays.is_empty() => {
                return Err(err("weekdays", "choose at least one weekday"));
            }
            Frequency::Monthly if self.days_of_month.is_empty() => {
                return Err(err("days_of_month", "choose at least one day"));
            }
            Frequency::Daily | Frequency::Monthly if !self.weekdays.is_empty() => {
                return Err(err("weekdays", "only weekly schedules have weekdays"));
            }
            Frequency::Daily | Frequency::Weekly if !self.days_of_month.is_empty() => {
                return Err(err("days_of_month", "only monthly schedules have days"));
            }
            _ => {}
        }
        if self.freq == Frequency::Monthly {
            // Every 12 months from April, "31" never comes round: refuse rather than wait.
            let longest = (0..12)
                .map(|k| (self.start_date.month() as u32 - 1 + k * self.every) % 12 + 1)
                .map(|m| Date::new(2028, m as i8, 1).map_or(31, |d| d.days_in_month()))
                .max()
                .unwrap_or(31);
            let never = |d: &DayOfMonth| matches!(d, DayOfMonth::Day(n) if *n as i8 > longest);
            if self.days_of_month.iter().all(never) {
                let msg = "none of these days occur in the months this schedule repeats in";
                return Err(err("days_of_month", msg));
            }
        }
        if let Stop::OnDate(d) = self.stop {
            if d < self.start_date {
                return Err(err("stop.on_date", "must not be before start_date"));
            }
        }
        Ok(())
    }

    fn every(&self) -> i64 {
        i64::from(self.every.max(1))
    }

    /// The Monday of the start date's week: weekly periods count from it.
    fn first_monday(&self) -> Date {
        let back = self.start_date.weekday().to_monday_zero_offset();
        (self.start_date.checked_sub(i64::from(back).days())).unwrap_or(self.start_date)
    }

    fn start_month(&self) -> i64 {
        i64::from(self.start_date.year()) * 12 + i64::from(self.start_date.month()) - 1
    }

    /// The period (0 = the start's) that `date` falls in; 0 before the start.
    fn period_of(&self, date: Date) -> i64 {
        if date <= self.start_date {
            return 0;
        }
        let units = match self.freq {
            Frequency::Daily => days_between(self.start_date, date),
            Frequency::Weekly => days_between(self.first_monday(), date) / 7,
            Frequency::Monthly => {
                i64::from(date.year()) * 12 + i64::from(date.month()) - 1 - self.start_month()
            }
        };
        units / self.every()
    }

    /// The dates in `period`, in order, none before the start; `None` past year 9999.
    fn dates_in(&self, period: i64) -> Option<Vec<Date>> {
        let units = period.checked_mul(self.every())?;
        let mut dates = match self.freq {
            Frequency::Daily => vec![add_days(self.start_date, units)?],
            Frequency::Weekly => {
                let monday = add_days(self.first_monday(), units.checked_mul(7)?)?;
                (self.weekdays.iter())
                    .map(|w| monday.checked_add(i64::from(w.to_monday_zero_offset()).days()))
                    .collect::<Result<Vec<_>, _>>()
                    .ok()?
            }
            Frequency::Monthly => {
                let month = self.start_month() + units;
                let year = i16::try_from(month.div_euclid(12)).ok()?;
                let first = Date::new(year, (month.rem_euclid(12) + 1) as i8, 1).ok()?;
                let last = first.days_in_month();
                let mut days: Vec<i8> = (self.days_of_month.iter())
                    .filter_map(|d| match d {
                        DayOfMonth::Day(n) if *n as i8 <= last => Some(*n as i8),
                        DayOfMonth::Day(_) => None,
                        DayOfMonth::Last => Some(last),
                    })
                    .collect();
                // "31" and "last" are the same day in a 31-day month: one occurrence.
                days.sort_unstable();
                days.dedup();
                (days.into_iter())
                    .map(|d| Date::new(year, first.month(), d))
                    .collect::<Result<Vec<_>, _>>()
                    .ok()?
            }
        };
        dates.retain(|d| *d >= self.start_date);
        Some(dates)
    }

    /// How many occurrences fall in the periods before `period`.
    fn count_before(&self, period: i64) -> u32 {
        let count = match (self.freq, period) {
            (_, p) if p <= 0 => 0,
            (Frequency::Daily, p) => p,
            (Frequency::Weekly, p) => {
                let first = self.dates_in(0).map_or(0, |d| d.len() as i64);
                first + (p - 1) * self.weekdays.len() as i64
            }
            // Month lengths vary, so count month by month (at most 12 a year).
            (Frequency::Monthly, p) => (0..p)
                .map(|q| self.dates_in(q).map_or(0, |d| d.len() as i64))
                .sum(),
        };
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    fn stops_before(&self, index: u32, date: Date) -> bool {
        match self.stop {
            Stop::Never => false,
            Stop::AfterOccurrences(n) => index > n,
            Stop::OnDate(last) => date > last,
        }
    }
}

/// Iterator over a schedule's occurrences; see [`Schedule::occurrences_after`].
#[derive(Debug)]
pub struct Occurrences<'a> {
    source: Source<'a>,
    zone: &'a TimeZone,
    after: Timestamp,
}

#[derive(Debug)]
enum Source<'a> {
    Done,
    Once(DateTime),
    Repeating {
        rule: &'a Recurrence,
        /// The period whose dates are in `queue`.
        period: i64,
        queue: std::vec::IntoIter<Date>,
        /// Occurrences before the head of `queue`.
        index: u32,
        empty_periods: u32,
    },
}

impl Iterator for Occurrences<'_> {
    type Item = Occurrence;

    fn next(&mut self) -> Option<Occurrence> {
        loop {
            let (index, local) = match &mut self.source {
                Source::Done => return None,
                Source::Once(local) => {
                    let local = *local;
                    self.source = Source::Done;
                    (1, local)
                }
                Source::Repeating {
                    rule,
                    period,
                    queue,
                    index,
                    empty_periods,
                } => {
                    let Some(date) = queue.next() else {
                        *period += 1;
                        match rule.dates_in(*period) {
                            Some(dates) if *empty_periods < MAX_EMPTY_PERIODS => {
                                *empty_periods = if dates.is_empty() {
                                    *empty_periods + 1
                                } else {
                                    0
                                };
                                *queue = dates.into_iter();
                            }
                            _ => self.source = Source::Done,
                        }
                        continue;
                    };
                    *index = index.saturating_add(1);
                    if rule.stops_before(*index, date) {
                        self.source = Source::Done;
                        continue;
                    }
                    (*index, date.to_datetime(rule.time))
                }
            };
            let Some(at) = first_at_or_after(self.zone, local) else {
                self.source = Source::Done;
                continue;
            };
            // Only a transition longer than a day could map two dates to one instant; the
            // later one is then dropped so instants stay strictly increasing.
            if at > self.after {
                self.after = at;
                return Some(Occurrence { index, local, at });
            }
        }
    }
}

/// `date` plus `days`, or `None` out of range (`ToSpan` would panic on huge counts).
fn add_days(date: Date, days: i64) -> Option<Date> {
    date.checked_add(jiff::Span::new().try_days(days).ok()?)
        .ok()
}

fn days_between(from: Date, to: Date) -> i64 {
    from.until(to).map_or(0, |span| i64::from(span.get_days()))
}

fn sorted<T: Copy, K: Ord>(mut items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    items.sort_by_key(&key);
    items.dedup_by(|a, b| key(a) == key(b));
    items
}

fn parse_list<T>(
    value: Option<&Value>,
    field: &str,
    parse: fn(&Value) -> Option<T>,
) -> Result<Vec<T>, ScheduleError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let items = value
        .as_array()
        .ok_or_else(|| err(field, "must be a list"))?;
    let parsed = items.iter().map(|item| {
        parse(item).ok_or_else(|| match field {
            "weekdays" => err(field, format!("{item} is not a weekday like \"mon\"")),
            _ => err(
                field,
                format!("{item} is not a day from 1 to 31 or \"last\""),
            ),
        })
    });
    parsed.collect()
}

fn parse_weekday(value: &Value) -> Option<Weekday> {
    let name = value.as_str()?.trim().to_ascii_lowercase();
    let offset = WEEKDAYS
        .iter()
        .position(|(short, long)| name == *short || name == *long)?;
    Weekday::from_monday_zero_offset(offset as i8).ok()
}

fn parse_day(value: &Value) -> Option<DayOfMonth> {
    match value {
        Value::String(s) if s.trim().eq_ignore_ascii_case("last") => Some(DayOfMonth::Last),
        Value::Number(n) => n
            .as_u64()
            .filter(|n| (1..=31).contains(n))
            .map(|n| DayOfMonth::Day(n as u8)),
        _ => None,
    }
}

fn parse_stop(value: Option<&Value>) -> Result<Stop, ScheduleError> {
    let Some(value) = value else {
        return Ok(Stop::Never);
    };
    let shape = "must be null, {\"after_occurrences\": n} or {\"on_date\": \"2026-12-31\"}";
    let obj: &Map<String, Value> = value.as_object().ok_or_else(|| err("stop", shape))?;
    match (obj.len(), obj.get("after_occurrences"), obj.get("on_date")) {
        (1, Some(n), None) => n
            .as_u64()
            .filter(|n| (1..=10_000).contains(n))
            .map(|n| Stop::AfterOccurrences(n as u32))
            .ok_or_else(|| {
                err(
                    "stop.after_occurrences",
                    "must be a whole number from 1 to 10000",
                )
            }),
        (1, None, Some(d)) => d
            .as_str()
            .and_then(parse_date)
            .map(Stop::OnDate)
            .ok_or_else(|| err("stop.on_date", "must be a date like \"2026-12-31\"")),
        _ => Err(err("stop", shape)),
    }
}

/// `YYYY-MM-DD`, nothing else (jiff alone would also take `20260302` and signed years).
pub(crate) fn parse_date(text: &str) -> Option<Date> {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !digits(0..4) || !digits(5..7) {
        return None;
    }
    if !digits(8..10) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text[r].parse::<i16>().ok();
    Date::new(num(0..4)?, num(5..7)? as i8, num(8..10)? as i8).ok()
}

/// `HH:MM` or `HH:MM:SS` (a one-digit hour is accepted).
fn parse_time(text: &str) -> Option<Time> {
    let parts: Vec<&str> = text.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let num = |i: usize, max: i8, min_len: usize| {
        let part = parts.get(i)?;
        let ok = (min_len..=2).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| part.parse::<i8>().ok())
            .flatten()
            .filter(|n| *n <= max)
    };
    let second = if parts.len() == 3 { num(2, 59, 2)? } else { 0 };
    Time::new(num(0, 23, 1)?, num(1, 59, 2)?, second, 0).ok()
}

fn parse_date_time(text: &str) -> Option<DateTime> {
    let (date, time) = text.split_once(['T', 't', ' '])?;
    Some(parse_date(date)?.to_datetime(parse_time(time)?))
}

fn format_time(time: Time) -> String {
    match time.second() {
        0 => time.strftime("%H:%M").to_string(),
        _ => time.strftime("%H:%M:%S").to_string(),
    }
}

fn format_date_time(at: DateTime) -> String {
    format!("{}T{}", at.date(), format_time(at.time()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};
    use proptest::prelude::*;

    const PARIS: &str = "Europe/Paris";
    /// Zones with one-hour, half-hour, midnight and no daylight-saving changes.
    const ZONES: &[&str] = &[
        PARIS,
        "Australia/Lord_Howe",
        "America/Santiago",
        "Africa/Kampala",
    ];

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }
    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }
    fn schedule(value: Value) -> Schedule {
        Schedule::parse(&value).unwrap()
    }
    fn parse_err(value: Value) -> String {
        Schedule::parse(&value).unwrap_err().to_string()
    }

    /// The first `n` occurrences after `after`, as "index@instant" (UTC), space-separated.
    fn firsts(s: &Schedule, after: &str, n: usize) -> String {
        let zone = zone(PARIS);
        let occurrences = s.occurrences_after(ts(after), &zone).take(n);
        let shown: Vec<String> = occurrences
            .map(|o| format!("{}@{}", o.index, o.at))
            .collect();
        shown.join(" ")
    }

    /// The local dates of the first `n` occurrences from the start.
    fn dates(s: &Schedule, n: usize) -> String {
        let zone = zone(PARIS);
        let all = s.occurrences_after(ts("2000-01-01T00:00Z"), &zone).take(n);
        all.map(|o| o.local.date().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn weekly_monday(start: &str) -> Schedule {
        schedule(
            json!({"kind": "weekly", "start_date": start, "time": "09:00",
            "every": 1, "weekdays": ["mon"], "days_of_month": [], "stop": null}),
        )
    }

    #[test]
    fn weekly_keeps_local_time_across_spring_forward() {
        let s = weekly_monday("2026-03-16");
        assert_eq!(
            firsts(&s, "2026-03-01T00:00Z", 3),
            "1@2026-03-16T08:00:00Z 2@2026-03-23T08:00:00Z 3@2026-03-30T07:00:00Z"
        );
        // Asked just after an occurrence fired, the next is a week later.
        let next = s.next_after(ts("2026-03-23T08:00Z"), &zone(PARIS)).unwrap();
        assert_eq!(
            (next.index, next.local),
            (3, date(2026, 3, 30).at(9, 0, 0, 0))
        );
    }

    #[test]
    fn weekly_keeps_local_time_across_fall_back() {
        let s = weekly_monday("2026-10-12");
        assert_eq!(
            firsts(&s, "2026-10-12T06:59Z", 3),
            "1@2026-10-12T07:00:00Z 2@2026-10-19T07:00:00Z 3@2026-10-26T08:00:00Z"
        );
        assert_eq!(firsts(&s, "2026-10-19T07:00Z", 1), "3@2026-10-26T08:00:00Z");
    }

    #[test]
    fn a_time_in_the_gap_fires_when_the_gap_ends() {
        let daily = schedule(json!({"kind": "daily", "start_date": "2026-03-28", "time": "02:30"}));
        assert_eq!(
            firsts(&daily, "2026-03-01T00:00Z", 3),
            "1@2026-03-28T01:30:00Z 2@2026-03-29T01:00:00Z 3@2026-03-30T00:30:00Z"
        );
        let once = schedule(json!({"kind": "once", "at": "2026-03-29T02:30"}));
        let o = once
            .next_after(ts("2026-03-01T00:00Z"), &zone(PARIS))
            .unwrap();
        assert_eq!(o.at, ts("2026-03-29T03:00+02:00"));
        assert_eq!(o.local, date(2026, 3, 29).at(2, 30, 0, 0));
        assert_eq!(once.next_after(o.at, &zone(PARIS)), None);
    }

    #[test]
    fn a_repeated_time_fires_once_at_its_first_occurrence() {
        let daily = schedule(json!({"kind": "daily", "start_date": "2026-10-24", "time": "02:30"}));
        assert_eq!(
            firsts(&daily, "2026-10-01T00:00Z", 3),
            "1@2026-10-24T00:30:00Z 2@2026-10-25T00:30:00Z 3@2026-10-26T01:30:00Z"
        );
        // Between the two 02:30s, the next is the following day's.
        assert_eq!(
            firsts(&daily, "2026-10-25T00:30Z", 1),
            "3@2026-10-26T01:30:00Z"
        );
    }

    #[test]
    fn every_two_weeks_counts_weeks_from_the_start_week() {
        let s = schedule(
            json!({"kind": "weekly", "start_date": "2026-03-04", "time": "09:00",
            "every": 2, "weekdays": ["Wednesday", "MON"]}),
        );
        // The start week's Monday (03-02) is before the start date.
        assert_eq!(
            dates(&s, 5),
            "2026-03-04 2026-03-16 2026-03-18 2026-03-30 2026-04-01"
        );
        let o = s.next_after(ts("2026-03-20T00:00Z"), &zone(PARIS)).unwrap();
        assert_eq!((o.index, o.local.date()), (4, date(2026, 3, 30)));
    }

    #[test]
    fn every_n_days_and_months() {
        let s = schedule(
            json!({"kind": "daily", "start_date": "2026-02-26", "time": "09:00",
            "every": 3}),
        );
        assert_eq!(dates(&s, 3), "2026-02-26 2026-03-01 2026-03-04");
        let s = schedule(
            json!({"kind": "monthly", "start_date": "2026-01-20", "time": "09:00",
            "every": 3, "days_of_month": [15, "last"]}),
        );
        // The 15th of January is before the start date.
        assert_eq!(
            dates(&s, 5),
            "2026-01-31 2026-04-15 2026-04-30 2026-07-15 2026-07-31"
        );
    }

    #[test]
    fn monthly_last_day_and_missing_days() {
        let last = schedule(
            json!({"kind": "monthly", "start_date": "2027-01-01", "time": "09:00",
            "days_of_month": ["last"]}),
        );
        assert_eq!(dates(&last, 2), "2027-01-31 2027-02-28");
        let feb = |year: i16| {
            let from = date(year, 2, 1)
                .at(0, 0, 0, 0)
                .in_tz(PARIS)
                .unwrap()
                .timestamp();
            last.next_after(from, &zone(PARIS)).unwrap().local.date()
        };
        assert_eq!(feb(2028), date(2028, 2, 29));
        assert_eq!(feb(2029), date(2029, 2, 28));
        // 31 is skipped in 30-day months and February; "31" and "last" make one occurrence.
        let s = schedule(
            json!({"kind": "monthly", "start_date": "2026-01-01", "time": "09:00",
            "days_of_month": [31, "last"]}),
        );
        let s31 = schedule(
            json!({"kind": "monthly", "start_date": "2026-01-01", "time": "09:00",
            "days_of_month": [31]}),
        );
        assert_eq!(
            dates(&s31, 4),
            "2026-01-31 2026-03-31 2026-05-31 2026-07-31"
        );
        assert_eq!(dates(&s, 4), "2026-01-31 2026-02-28 2026-03-31 2026-04-30");
    }

    #[test]
    fn stops_after_n_occurrences_or_on_a_date() {
        let after = schedule(
            json!({"kind": "daily", "start_date": "2026-05-01", "time": "09:00",
            "stop": {"after_occurrences": 3}}),
        );
        assert_eq!(dates(&after, 10), "2026-05-01 2026-05-02 2026-05-03");
        // Counted from the start, not from the question.
        assert_eq!(
            firsts(&after, "2026-05-02T12:00Z", 5),
            "3@2026-05-03T07:00:00Z"
        );
        assert_eq!(
            after.next_after(ts("2026-05-03T07:00Z"), &zone(PARIS)),
            None
        );
        let on = schedule(
            json!({"kind": "weekly", "start_date": "2026-05-01", "time": "09:00",
            "weekdays": ["fri", "mon"], "stop": {"on_date": "2026-05-08"}}),
        );
        assert_eq!(dates(&on, 10), "2026-05-01 2026-05-04 2026-05-08");
        assert_eq!(
            Schedule::Immediate.next_after(ts("2026-01-01T00:00Z"), &zone(PARIS)),
            None
        );
    }

    #[test]
    fn parse_errors_name_the_field() {
        let weekly = |extra: Value| {
            let mut v = json!({"kind": "weekly", "start_date": "2026-03-02", "time": "09:00",
                "weekdays": ["mon"]});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            parse_err(v)
        };
        let cases = [
            (parse_err(json!({})), "schedule.kind: "),
            (
                parse_err(json!({"kind": "hourly"})),
                "schedule.kind: \"hourly\"",
            ),
            (
                parse_err(json!({"kind": "once", "at": "2026-03-29T02:30Z"})),
                "schedule.at: ",
            ),
            (parse_err(json!({"kind": "once"})), "schedule.at: "),
            (
                parse_err(json!({"kind": "immediate", "time": "09:00"})),
                "schedule.time: is not",
            ),
            (
                weekly(json!({"weekdays": ["mon", "funday"]})),
                "schedule.weekdays: \"funday\"",
            ),
            (weekly(json!({"weekdays": []})), "schedule.weekdays: choose"),
            (
                weekly(json!({"days_of_month": [1]})),
                "schedule.days_of_month: only",
            ),
            (
                weekly(json!({"every": 53})),
                "schedule.every: must be a whole number from 1 to 52",
            ),
            (weekly(json!({"every": 0})), "schedule.every: "),
            (weekly(json!({"time": "24:00"})), "schedule.time: "),
            (weekly(json!({"time": "9h"})), "schedule.time: "),
            (
                weekly(json!({"start_date": "2026-02-30"})),
                "schedule.start_date: ",
            ),
            (
                weekly(json!({"start_date": "20260302"})),
                "schedule.start_date: ",
            ),
            (
                weekly(json!({"stop": {"after_occurrences": 0}})),
                "schedule.stop.after_occurrences: ",
            ),
            (
                weekly(json!({"stop": {"on_date": "2026-03-01"}})),
                "schedule.stop.on_date: must not",
            ),
            (
                weekly(json!({"stop": {"on_date": "x"}})),
                "schedule.stop.on_date: must be a date",
            ),
            (
                weekly(json!({"stop": {"after_occurrences": 2, "on_date": "2026-04-01"}})),
                "schedule.stop: ",
            ),
            (
                weekly(json!({"colour": "red"})),
                "schedule.colour: is not a field",
            ),
            (
                parse_err(
                    json!({"kind": "monthly", "start_date": "2026-03-02", "time": "09:00",
                    "days_of_month": [32]}),
                ),
                "schedule.days_of_month: 32 is not",
            ),
            (
                parse_err(
                    json!({"kind": "monthly", "start_date": "2026-04-02", "time": "09:00",
                    "every": 12, "days_of_month": [31]}),
                ),
                "schedule.days_of_month: none of these days occur",
            ),
        ];
        for (e, expected) in cases {
            assert!(
                e.starts_with(expected),
                "{e:?} should start with {expected:?}"
            );
        }
    }

    #[test]
    fn json_round_trips() {
        let shapes = [
            json!({"kind": "immediate"}),
            json!({"kind": "once", "at": "2026-03-29T02:30"}),
            json!({"kind": "once", "at": "2026-03-29T02:30:15"}),
            json!({"kind": "daily", "start_date": "2026-03-02", "time": "09:00", "every": 2,
                "weekdays": [], "days_of_month": [], "stop": null}),
            json!({"kind": "weekly", "start_date": "2026-03-02", "time": "18:30", "every": 1,
                "weekdays": ["mon", "wed"], "days_of_month": [],
                "stop": {"after_occurrences": 10}}),
            json!({"kind": "monthly", "start_date": "2026-03-02", "time": "07:05", "every": 3,
                "weekdays": [], "days_of_month": [1, 15, "last"],
                "stop": {"on_date": "2027-03-01"}}),
        ];
        for shape in shapes {
            let s = schedule(shape.clone());
            assert_eq!(s.to_json(), shape);
            assert_eq!(Schedule::parse(&s.to_json()).unwrap(), s);
        }
        // Full names, any case, in any order and repeated: normalised.
        let s = schedule(
            json!({"kind": "weekly", "start_date": "2026-03-02", "time": "9:00",
            "weekdays": ["WEDNESDAY", "mon", "Monday"]}),
        );
        assert_eq!(s.to_json()["weekdays"], json!(["mon", "wed"]));
        assert_eq!(s.to_json()["time"], json!("09:00"));
        assert_eq!(s.to_json()["every"], json!(1));
        let Schedule::Repeating(rule) = s else {
            panic!("weekly is repeating")
        };
        assert_eq!(rule.time, time(9, 0, 0, 0));
    }

    fn any_schedule() -> impl Strategy<Value = Schedule> {
        let freq = prop::sample::select(vec![
            Frequency::Daily,
            Frequency::Weekly,
            Frequency::Monthly,
        ]);
        let stop = prop_oneof![
            Just(Stop::Never),
            (1u32..40).prop_map(Stop::AfterOccurrences),
            (0i64..800).prop_map(|d| Stop::OnDate(date(2024, 1, 1).checked_add(d.days()).unwrap())),
        ];
        (
            freq,
            0i64..730,
            (0i8..24, prop::sample::select(vec![0i8, 15, 30, 59])),
            1u32..13,
            prop::sample::subsequence((0..7).collect::<Vec<i8>>(), 1..=7),
            prop::collection::vec(
                prop_oneof![Just(DayOfMonth::Last), (1u8..=31).prop_map(DayOfMonth::Day)],
                1..4,
            ),
            stop,
        )
            .prop_map(|(freq, start, (h, m), every, weekdays, days, stop)| {
                let start_date = date(2024, 1, 1).checked_add(start.days()).unwrap();
                let weekdays: Vec<Weekday> = weekdays
                    .into_iter()
                    .map(|w| Weekday::from_monday_zero_offset(w).unwrap())
                    .collect();
                let rule = Recurrence {
                    freq,
                    start_date,
                    time: time(h, m, 0, 0),
                    every,
                    weekdays: if freq == Frequency::Weekly {
                        weekdays
                    } else {
                        vec![]
                    },
                    days_of_month: if freq == Frequency::Monthly {
                        sorted(days, |d| *d)
                    } else {
                        vec![]
                    },
                    stop: match stop {
                        Stop::OnDate(d) if d < start_date => Stop::OnDate(start_date),
                        other => other,
                    },
                };
                Schedule::Repeating(rule)
            })
    }

    proptest! {
        #[test]
        fn next_after_moves_strictly_forward_and_counts_by_one(
            s in any_schedule(),
            name in prop::sample::select(ZONES),
            seconds in 1_700_000_000i64..1_800_000_000,
        ) {
            let zone = zone(name);
            let after = Timestamp::from_second(seconds).unwrap();
            let Schedule::Repeating(rule) = &s else { unreachable!() };
            let mut last: Option<Occurrence> = None;
            let mut t = after;
            for _ in 0..30 {
                let Some(o) = s.next_after(t, &zone) else { break };
                prop_assert!(o.at > t);
                if let Some(prev) = last {
                    prop_assert!(o.at > prev.at);
                    prop_assert_eq!(o.index, prev.index + 1);
                }
                // The clock reads the scheduled time, unless it was skipped that day.
                let skipped = matches!(
                    zone.to_ambiguous_timestamp(o.local).offset(),
                    jiff::tz::AmbiguousOffset::Gap { .. }
                );
                prop_assert!(zone.to_datetime(o.at) == o.local || skipped);
                prop_assert!(o.local.time() == rule.time);
                t = o.at;
                last = Some(o);
            }
            // Jumping straight to `after` agrees with walking from the start.
            let from_start = rule.start_date.at(0, 0, 0, 0).in_tz("UTC").unwrap().timestamp()
                - 48.hours();
            let walked = s.occurrences_after(from_start, &zone).find(|o| o.at > after);
            prop_assert_eq!(walked, s.next_after(after, &zone));
        }
    }
}
