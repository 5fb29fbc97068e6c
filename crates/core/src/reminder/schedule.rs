//! When a reminder's occurrences fall for one case: a pure function of the rule's timing, the
//! case's start date (a property's text), its time zone and, for an `immediately` rule, the
//! instant the case started matching.
//!
//! Local first, then UTC, as broadcasts do: occurrence k is due on local date
//! `start + offset_days + (k − 1) × every_days` at the rule's `time`, read in the case's zone.
//! - A local time the clock skips (a DST gap) is due at the first instant after the gap: 02:30
//!   on a night that jumps from 02:00 to 03:00 is due at 03:00. Other days are not affected:
//!   09:00 on a day that has no 02:30 is still 09:00.
//! - A local time the clock reads twice (a fold) is due once, at its first instant.
//! - Occurrences are strictly increasing in time: a step is at least one day, and no zone skips
//!   more than a day.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Span, Timestamp};

use crate::case::Case;
use crate::quiet_hours::first_at_or_after;
use crate::recurrence::parse_date;

/// Most days occurrence 1 may be shifted from the case's date, either way.
pub const MAX_OFFSET_DAYS: i32 = 365;
/// Longest step between two occurrences, in days.
pub const MAX_EVERY_DAYS: u32 = 365;
/// Most occurrences one rule may send one case.
pub const MAX_TIMES: u32 = 365;
/// The case property whose IANA zone name (`Africa/Kampala`) replaces the project's zone.
pub const TIME_ZONE_PROPERTY: &str = "time_zone";
/// How late an occurrence may be sent when the rule and the project say nothing: 2 days.
pub const DEFAULT_LATE_LIMIT: SignedDuration = SignedDuration::from_hours(48);

/// When occurrence 1 is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// On the date in the case property `property` (`YYYY-MM-DD`), shifted by `offset_days`
    /// (−365..=365; −2 is two days before), at local `time`.
    Date {
        property: String,
        offset_days: i32,
        time: Time,
    },
    /// When the case starts matching the rule. Later occurrences are due at local `time` when
    /// it is given, else at the local time of day the case started matching.
    Immediately { time: Option<Time> },
}

/// More occurrences after the first: `times` in all (1..=365), `every_days` apart (1..=365).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repeat {
    pub every_days: u32,
    pub times: u32,
}

/// A rule's timing: when occurrence 1 is due and how it repeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    pub start: Start,
    /// `None`: one occurrence.
    pub repeat: Option<Repeat>,
}

/// What the timing reads of one case.
#[derive(Clone, Copy, Debug)]
pub struct CaseTiming<'a> {
    /// The case's value of the start property (`Start::Date`), as stored; `None` when it has
    /// none. Ignored for `Start::Immediately`.
    pub date: Option<&'a str>,
    /// The case's `time_zone` property, if any.
    pub time_zone: Option<&'a str>,
    /// When the case started matching the rule: occurrence 1 of an `immediately` rule. Ignored
    /// for `Start::Date`.
    pub matched_since: Timestamp,
}

/// Why a matching case gets no occurrence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Skip {
    /// The start property is missing or blank.
    #[error("no date: the case has no value in the start property")]
    NoDate,
    /// The start property is not a `YYYY-MM-DD` date, or the occurrences from it would fall
    /// outside the years jiff handles (−9999..=9999).
    #[error("date unreadable: the start property is not a date written YYYY-MM-DD")]
    DateUnreadable,
    /// The case's `time_zone` property is set but is not an IANA zone name.
    #[error("time zone invalid: the case's time_zone is not a zone name such as Africa/Kampala")]
    TimeZoneInvalid,
}

impl Skip {
    /// A stable code for pages, counts and the API: `no_date`, `date_unreadable`,
    /// `time_zone_invalid`.
    pub fn code(self) -> &'static str {
        match self {
            Skip::NoDate => "no_date",
            Skip::DateUnreadable => "date_unreadable",
            Skip::TimeZoneInvalid => "time_zone_invalid",
        }
    }
}

/// What to do with an occurrence, found at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firing {
    /// Its instant has not come.
    NotDue,
    /// Due, and at most the late limit late: send it.
    Send,
    /// More than the late limit late (the service was down, say): record it as missed and move
    /// on to the next occurrence.
    Missed,
}

impl Firing {
    /// What to do at `now` with an occurrence due at `at`: not yet, send, or missed when `now`
    /// is more than `late_limit` after `at` (exactly `late_limit` late is still sent).
    pub fn of(at: Timestamp, now: Timestamp, late_limit: SignedDuration) -> Firing {
        if now < at {
            Firing::NotDue
        } else if now.duration_since(at) > late_limit {
            Firing::Missed
        } else {
            Firing::Send
        }
    }
}

/// One occurrence of a rule for a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Occurrence {
    /// 1-based: occurrence 1 is the start; the last is `times`.
    pub index: u32,
    /// The local date and time it was scheduled for, in the case's zone (as scheduled, even
    /// when the clock skips it; for occurrence 1 of an `immediately` rule, the local time the
    /// case started matching).
    pub local: DateTime,
    /// When it is due.
    pub at: Timestamp,
}

impl Occurrence {
    /// Whether to send it at `now`: not yet, send, or missed when `now` is more than
    /// `late_limit` after its instant (exactly `late_limit` late is still sent).
    pub fn firing(&self, now: Timestamp, late_limit: SignedDuration) -> Firing {
        Firing::of(self.at, now, late_limit)
    }
}

/// The zone a case's times are read in: its `time_zone` property when it has one (blank counts
/// as none), else the project's. A name that is not a zone skips the case rather than sending
/// at a time the user did not mean.
pub fn case_zone(time_zone: Option<&str>, project: &TimeZone) -> Result<TimeZone, Skip> {
    match time_zone.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(project.clone()),
        Some(name) => TimeZone::get(name).map_err(|_| Skip::TimeZoneInvalid),
    }
}

/// A case's start date: `YYYY-MM-DD` only (surrounding spaces aside), as a date cell of an
/// imported sheet is stored. `20260302`, `02/03/2026` or a date with a time are unreadable.
pub fn read_date(text: &str) -> Option<Date> {
    parse_date(text.trim())
}

impl<'a> CaseTiming<'a> {
    /// What `timing` reads of `case`: the start property's value and the `time_zone`
    /// property (property names as written, compared exactly).
    pub fn of(case: &'a Case, timing: &Timing, matched_since: Timestamp) -> CaseTiming<'a> {
        let property = |name: &str| case.properties.get(name).map(String::as_str);
        CaseTiming {
            date: timing.property().and_then(property),
            time_zone: property(TIME_ZONE_PROPERTY),
            matched_since,
        }
    }
}

impl Timing {
    /// The case property holding the start date; `None` for an immediate start.
    pub fn property(&self) -> Option<&str> {
        match &self.start {
            Start::Date { property, .. } => Some(property),
            Start::Immediately { .. } => None,
        }
    }

    /// How many occurrences each case gets.
    pub fn times(&self) -> u32 {
        self.repeat.map_or(1, |r| r.times)
    }

    /// The case's schedule, or why it has none. The zone is checked for every rule, an
    /// `immediately` one too, so that a wrong `time_zone` shows up on the rule's page.
    pub fn for_case(
        &self,
        case: &CaseTiming<'_>,
        project_zone: &TimeZone,
    ) -> Result<CaseSchedule, Skip> {
        let zone = case_zone(case.time_zone, project_zone)?;
        let first = match &self.start {
            Start::Date {
                offset_days, time, ..
            } => {
                let text = case.date.map(str::trim).filter(|s| !s.is_empty());
                let date = read_date(text.ok_or(Skip::NoDate)?).ok_or(Skip::DateUnreadable)?;
                let first = add_days(date, i64::from(*offset_days)).ok_or(Skip::DateUnreadable)?;
                First::Local(first.to_datetime(*time))
            }
            Start::Immediately { time } => {
                let local = zone.to_datetime(case.matched_since);
                First::Now {
                    at: case.matched_since,
                    local,
                    later: time.unwrap_or(local.time()),
                }
            }
        };
        let schedule = CaseSchedule {
            zone,
            first,
            every_days: self.repeat.map_or(1, |r| r.every_days.max(1)),
            times: self.times().max(1),
        };
        // Dates only grow, so when the last occurrence is in range every one is.
        match schedule.occurrence(schedule.times) {
            Some(_) => Ok(schedule),
            None => Err(Skip::DateUnreadable),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum First {
    /// Occurrence 1's local date and time.
    Local(DateTime),
    /// Occurrence 1 is at `at` (local `local`); later ones at local time `later`.
    Now {
        at: Timestamp,
        local: DateTime,
        later: Time,
    },
}

/// A rule's occurrences for one case, from [`Timing::for_case`]: `times` of them, strictly
/// increasing.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseSchedule {
    zone: TimeZone,
    first: First,
    every_days: u32,
    times: u32,
}

impl CaseSchedule {
    /// The zone the case's times are read in.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    /// How many occurrences there are.
    pub fn times(&self) -> u32 {
        self.times
    }

    /// Occurrence `k` (1..=times); `None` for any other `k`.
    pub fn occurrence(&self, k: u32) -> Option<Occurrence> {
        if k == 0 || k > self.times {
            return None;
        }
        let days = i64::from(k - 1) * i64::from(self.every_days);
        let (local, at) = match &self.first {
            First::Local(first) => {
                let local = add_days(first.date(), days)?.to_datetime(first.time());
                (local, first_at_or_after(&self.zone, local)?)
            }
            First::Now { at, local, .. } if k == 1 => (*local, *at),
            First::Now { at, local, later } => {
                let local = add_days(local.date(), days)?.to_datetime(*later);
                (local, first_after(&self.zone, local, *at)?)
            }
        };
        Some(Occurrence {
            index: k,
            local,
            at,
        })
    }

    /// Every occurrence, in order.
    pub fn occurrences(&self) -> impl Iterator<Item = Occurrence> + '_ {
        (1..=self.times).map_while(|k| self.occurrence(k))
    }

    /// The first occurrence due strictly after `after` (the next to send once everything up to
    /// `after` is handled), if any is left.
    pub fn next_due(&self, after: Timestamp) -> Option<Occurrence> {
        self.first_where(|_, at| at > after)
    }

    /// The first occurrence numbered after `handled` and due strictly after `after`: the next
    /// to send in a series whose occurrences up to number `handled` were handled (at whatever
    /// times they then fell).
    pub fn next_after(&self, after: Timestamp, handled: u32) -> Option<Occurrence> {
        self.first_where(|k, at| k > handled && at > after)
    }

    /// The occurrences due from `from` (included) to `to` (excluded), in order: what the
    /// upcoming list shows.
    pub fn upcoming(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> impl Iterator<Item = Occurrence> + '_ {
        let first = self
            .first_where(|_, at| at >= from)
            .map_or(self.times + 1, |o| o.index);
        (first..=self.times)
            .map_while(|k| self.occurrence(k))
            .take_while(move |o| o.at < to)
    }

    /// The first occurrence whose instant satisfies `wanted`, which must be false up to some
    /// occurrence and true from there on (instants increase, so `at > t` and `at >= t` are).
    /// The first occurrence for which `wanted(number, instant)` holds; `wanted` must be false
    /// then true along the occurrences (instants grow with the number).
    fn first_where(&self, wanted: impl Fn(u32, Timestamp) -> bool) -> Option<Occurrence> {
        let (mut lo, mut hi) = (1, self.times + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.occurrence(mid).is_none_or(|o| wanted(o.index, o.at)) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        self.occurrence(lo)
    }
}

/// The first instant after `after` at which the clock reads `local` or later. The same as
/// [`first_at_or_after`] unless `after` is in the second pass of a fold and `local` is later in
/// that fold (only a fold across midnight allows it): then the second instant reading `local`.
fn first_after(zone: &TimeZone, local: DateTime, after: Timestamp) -> Option<Timestamp> {
    let at = first_at_or_after(zone, local)?;
    if at > after {
        return Some(at);
    }
    match zone.to_ambiguous_timestamp(local).offset() {
        AmbiguousOffset::Fold { after: offset, .. } => offset.to_timestamp(local).ok(),
        _ => Some(at),
    }
}

/// `date` plus `days`, or `None` out of jiff's range.
fn add_days(date: Date, days: i64) -> Option<Date> {
    date.checked_add(Span::new().try_days(days).ok()?).ok()
}
