//! Quiet hours: the daily window, in a project's time zone, in which nothing is sent.

use jiff::civil::{DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};

/// A daily window, in the project's time zone, in which nothing is sent (e.g. 21:00–07:00).
///
/// `start == end` means no window. A window with `start > end` wraps past midnight. Each day's
/// window runs from the first instant the local clock reads `start` or later to the first
/// instant it reads `end` or later: on ordinary days that is plain wall-clock time, while across
/// a daylight-saving change a skipped time means the end of the gap and a repeated time means
/// its first occurrence, so a repeated hour never reopens a window that has already closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuietHours {
    /// Local time the window opens.
    pub start: Time,
    /// Local time the window closes (exclusive).
    pub end: Time,
}

/// One end of the quiet-hours window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowEnd {
    Start,
    End,
}

impl WindowEnd {
    /// `start` or `end`.
    pub fn as_str(self) -> &'static str {
        match self {
            WindowEnd::Start => "start",
            WindowEnd::End => "end",
        }
    }
}

/// A quiet-hours time that is not a time of day: which end, and the text as written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("quiet hours {} \"{text}\" is not a time like 21:00", .end.as_str())]
pub struct QuietHoursError {
    pub end: WindowEnd,
    pub text: String,
}

impl QuietHours {
    /// Parses "21:00" and "07:00" style times.
    pub fn parse(start: &str, end: &str) -> Result<QuietHours, QuietHoursError> {
        Ok(QuietHours {
            start: parse_time(WindowEnd::Start, start)?,
            end: parse_time(WindowEnd::End, end)?,
        })
    }

    /// Whether `at` falls inside the window (windows may wrap past midnight).
    pub fn contains(&self, at: Timestamp, zone: &TimeZone) -> bool {
        self.end_of_window_at(at, zone).is_some()
    }

    /// The first instant at or after `at` outside the window (`at` itself when outside).
    pub fn next_allowed(&self, at: Timestamp, zone: &TimeZone) -> Timestamp {
        let mut t = at;
        // One window can close exactly when the next opens (both times in the same DST gap),
        // so keep going until the instant is really outside. Each step moves strictly forward.
        while let Some(end) = self.end_of_window_at(t, zone) {
            t = end;
        }
        t
    }

    /// The end of the window containing `at`, if one does.
    fn end_of_window_at(&self, at: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        if self.start == self.end {
            return None;
        }
        let wraps = self.start > self.end;
        let today = zone.to_datetime(at).date();
        // A wrapping window that contains `at` opened on its local date or the day before;
        // the extra day each side covers transitions that move the local date itself.
        for day in (-2..=1).filter_map(|d| today.checked_add(d.days()).ok()) {
            // A wrapping window closes on the following day.
            let end_day = day.checked_add(i32::from(wraps).days()).ok();
            let opens = first_at_or_after(zone, day.to_datetime(self.start));
            let closes = end_day.and_then(|d| first_at_or_after(zone, d.to_datetime(self.end)));
            if let (Some(opens), Some(closes)) = (opens, closes) {
                if (opens..closes).contains(&at) {
                    return Some(closes);
                }
            }
        }
        None
    }
}

/// The first instant at which the local clock in `zone` reads `dt` or later.
pub(crate) fn first_at_or_after(zone: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    match zone.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok(),
        // `dt` happens twice: the offset before the change gives the first time.
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(dt).ok(),
        // `dt` is skipped: the clock passes it at the transition that ends the gap. Read with
        // the later offset, `dt` is an instant just before that transition.
        AmbiguousOffset::Gap { after, .. } => {
            let before_gap = after.to_timestamp(dt).ok()?;
            zone.following(before_gap).next().map(|t| t.timestamp())
        }
    }
}

/// Parses `H:MM` or `HH:MM` (00:00–23:59).
fn parse_time(which: WindowEnd, text: &str) -> Result<Time, QuietHoursError> {
    let bad = || QuietHoursError {
        end: which,
        text: text.to_string(),
    };
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !(1..=2).contains(&h.len()) || m.len() != 2 || !digits(h) || !digits(m) {
        return Err(bad());
    }
    let (h, m) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::time;
    use proptest::prelude::*;

    const KLA: &str = "Africa/Kampala";
    /// Zones with one-hour, half-hour, midnight and no daylight-saving changes.
    const ZONES: &[&str] = &[
        "Europe/Paris",
        "Australia/Lord_Howe",
        "America/Santiago",
        KLA,
    ];

    fn qh(start: &str, end: &str) -> QuietHours {
        QuietHours::parse(start, end).unwrap()
    }
    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }
    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    /// Checks that the space-separated instants `outside` are allowed, and that those of
    /// `inside` ("a b -> until") are quiet and allowed again from `until`.
    fn check(q: QuietHours, zone: &TimeZone, outside: &str, inside: &str) {
        for at in outside.split_whitespace().map(ts) {
            assert!(!q.contains(at, zone), "{at} should be outside {q:?}");
            assert_eq!(q.next_allowed(at, zone), at);
        }
        let (inside, until) = inside.split_once("->").unwrap_or(("", ""));
        for at in inside.split_whitespace().map(ts) {
            assert!(q.contains(at, zone), "{at} should be inside {q:?}");
            assert_eq!(q.next_allowed(at, zone), ts(until.trim()), "from {at}");
        }
    }

    #[test]
    fn parses_times() {
        assert_eq!(qh("21:00", "7:00").end, time(7, 0, 0, 0));
        assert_eq!(qh(" 07:30 ", "00:00").start, time(7, 30, 0, 0));
        assert_eq!(qh("23:59", "00:00").start, time(23, 59, 0, 0));
        for bad in [
            "24:00", "21:60", "2100", "21:0", "", ":00", "ab:cd", "21:00:00", "+1:00",
        ] {
            let e = QuietHours::parse("21:00", bad).unwrap_err();
            assert_eq!((e.end, e.text.as_str()), (WindowEnd::End, bad));
            assert!(e.to_string().contains(&format!("end \"{bad}\"")), "{e}");
        }
        let e = QuietHours::parse("9pm", "07:00").unwrap_err();
        assert_eq!(e.end, WindowEnd::Start);
        assert_eq!(
            e.to_string(),
            "quiet hours start \"9pm\" is not a time like 21:00"
        );
        // Both wrong: the start is named.
        assert_eq!(
            QuietHours::parse("x", "y").unwrap_err().end,
            WindowEnd::Start
        );
    }

    #[test]
    fn kampala() {
        let kla = zone(KLA);
        let (day, night) = ("2026-05-01T", "2026-05-02T");
        check(
            qh("21:00", "07:00"),
            &kla,
            &format!("{day}20:59:59+03 {night}07:00+03 {night}12:00+03"),
            &format!("{day}21:00+03 {night}00:00+03 {night}06:59:59.9+03 -> {night}07:00+03"),
        );
        check(
            qh("12:00", "14:00"),
            &kla,
            &format!("{day}11:59:59+03 {day}14:00+03 {day}23:00+03 {night}03:00+03"),
            &format!("{day}12:00+03 {day}13:59:59+03 -> {day}14:00+03"),
        );
        // Equal start and end: no window at all.
        let none = format!("{day}08:00+03 {day}20:00+03");
        check(qh("08:00", "08:00"), &kla, &none, "");
    }

    #[test]
    fn paris_spring_forward() {
        let paris = zone("Europe/Paris");
        let (eve, day) = ("2026-03-28T", "2026-03-29T");
        // 02:30 does not exist that night: allowed from the end of the gap, 03:00.
        check(
            qh("22:00", "02:30"),
            &paris,
            &format!("{eve}21:59:59+01 {day}03:00+02 {day}03:15+02"),
            &format!("{eve}22:00+01 {day}01:59:59+01 -> {day}03:00+02"),
        );
        // A window opening in the gap opens at 03:00.
        check(
            qh("02:30", "05:00"),
            &paris,
            &format!("{day}01:59:59+01 {day}05:00+02"),
            &format!("{day}03:00+02 {day}04:59+02 -> {day}05:00+02"),
        );
        // Quiet except 02:10–02:40, which that day never shows: one window closes at 03:00
        // as the next opens, so nothing is allowed until the next night.
        check(
            qh("02:40", "02:10"),
            &paris,
            "2026-03-30T02:10+02",
            &format!("{day}01:00+01 {day}03:00+02 -> 2026-03-30T02:10+02"),
        );
    }

    #[test]
    fn paris_fall_back() {
        let paris = zone("Europe/Paris");
        let (eve, day) = ("2026-10-24T", "2026-10-25T");
        // 02:30 happens twice: the window closes at the first, and the repeat stays open.
        check(
            qh("22:00", "02:30"),
            &paris,
            &format!("{day}02:30+02 {day}02:59:59+02 {day}02:00+01 {day}02:30+01"),
            &format!("{eve}22:00+02 {day}02:29:59+02 -> {day}02:30+02"),
        );
        // Opening at the first 02:15, the window stays shut through the repeated hour.
        check(
            qh("02:15", "05:00"),
            &paris,
            &format!("{day}02:14:59+02 {day}05:00+01"),
            &format!("{day}02:15+02 {day}02:05+01 {day}04:59+01 -> {day}05:00+01"),
        );
    }

    fn any_time() -> impl Strategy<Value = Time> {
        (0i8..24, 0i8..60).prop_map(|(h, m)| Time::new(h, m, 0, 0).unwrap())
    }

    proptest! {
        #[test]
        fn next_allowed_is_the_first_instant_outside(
            name in prop::sample::select(ZONES),
            start in any_time(),
            end in any_time(),
            seconds in 946_684_800i64..2_208_988_800,
            near_transition: bool,
            shift in -172_800i64..172_800,
        ) {
            let zone = zone(name);
            let q = QuietHours { start, end };
            let mut at = Timestamp::from_second(seconds).unwrap();
            if near_transition {
                if let Some(t) = zone.following(at).next() {
                    at = t.timestamp() + shift.seconds();
                }
            }
            let next = q.next_allowed(at, &zone);
            prop_assert!(next >= at);
            prop_assert!(!q.contains(next, &zone));
            prop_assert_eq!(q.contains(at, &zone), next != at);
            if next != at {
                // Everything up to `next` is quiet.
                prop_assert!(q.contains(next - 1.nanosecond(), &zone));
                // And `next` is the end time, or the end of a gap that skipped it.
                let local = zone.to_datetime(next);
                let skipped = matches!(
                    zone.to_ambiguous_timestamp(local.date().to_datetime(end)).offset(),
                    AmbiguousOffset::Gap { .. }
                );
                prop_assert!(local.time() == end || skipped, "{local} for {q:?}");
            }
            if name == KLA {
                // Without DST the window is plain wall-clock time.
                let t = zone.to_datetime(at).time();
                let wall = if start <= end { start <= t && t < end } else { t >= start || t < end };
                prop_assert_eq!(q.contains(at, &zone), wall);
            }
        }
    }
}
