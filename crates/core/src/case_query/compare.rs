//! The comparison of a stored text with a query value: the one place its rules live (see
//! the module's documentation), so that the SQL compiler can be tested against it.

use std::cmp::Ordering;

use super::ast::{Op, Value};

/// What a value's text is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueKind {
    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?`, with its value.
    Number(f64),
    /// `YYYY-MM-DD`, month 01–12, day 01–31.
    Date,
    /// Anything else, the empty text included.
    Text,
}

/// The outcome of one condition on one case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    Match,
    NoMatch,
    /// No match, because an ordering operator met a stored value that is not of the query
    /// value's kind (`age > 18` where `age` is `eighteen`).
    Uncomparable,
}

impl Comparison {
    /// Whether the condition holds.
    pub fn matched(self) -> bool {
        self == Comparison::Match
    }
    pub(super) fn of(b: bool) -> Self {
        if b {
            Comparison::Match
        } else {
            Comparison::NoMatch
        }
    }
}

/// Reads a number: an optional `-`, digits with no leading zero (`0` itself is fine), and
/// an optional `.` with digits. `None` for anything else (`007`, `+5`, `1e3`, `.5`, ` 5`).
pub fn parse_number(text: &str) -> Option<f64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match digits.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (digits, None),
    };
    let int_ok = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && (int == "0" || !int.starts_with('0'));
    let frac_ok = frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    if int_ok && frac_ok {
        text.parse().ok()
    } else {
        None
    }
}

/// Whether the text has a date's shape, `YYYY-MM-DD` with a month 01–12 and a day 01–31
/// (the calendar is not checked: `2026-02-30` has the shape).
pub fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    if !(digits(0..4) && digits(5..7) && digits(8..10)) {
        return false;
    }
    let two = |i: usize| (b[i] - b'0') * 10 + (b[i + 1] - b'0');
    (1..=12).contains(&two(5)) && (1..=31).contains(&two(8))
}

/// What a text is: a number, a date, or other text.
pub(super) fn classify(text: &str) -> ValueKind {
    if let Some(n) = parse_number(text) {
        ValueKind::Number(n)
    } else if is_date(text) {
        ValueKind::Date
    } else {
        ValueKind::Text
    }
}

/// Compares a stored text (`""` when the case has no value) with a query value under `op`:
/// the rules of the module's documentation, in one place.
pub fn compare_text(stored: &str, op: Op, value: &Value) -> Comparison {
    match op {
        Op::Eq => Comparison::of(equal(stored, value)),
        Op::Ne => Comparison::of(!equal(stored, value)),
        Op::Contains => Comparison::of(contains_ignoring_case(stored, value.as_str())),
        Op::Gt | Op::Ge | Op::Lt | Op::Le => {
            if stored.is_empty() {
                return Comparison::NoMatch;
            }
            let ordering = match value.kind() {
                ValueKind::Number(v) => parse_number(stored).and_then(|s| s.partial_cmp(&v)),
                ValueKind::Date if is_date(stored) => Some(stored.cmp(value.as_str())),
                ValueKind::Date | ValueKind::Text => None,
            };
            match ordering {
                Some(o) => Comparison::of(holds(op, o)),
                None => Comparison::Uncomparable,
            }
        }
    }
}

/// Whether an ordering operator holds for `stored.cmp(value) == o`.
pub(super) fn holds(op: Op, o: Ordering) -> bool {
    match op {
        Op::Eq => o == Ordering::Equal,
        Op::Ne => o != Ordering::Equal,
        Op::Gt => o == Ordering::Greater,
        Op::Ge => o != Ordering::Less,
        Op::Lt => o == Ordering::Less,
        Op::Le => o != Ordering::Greater,
        Op::Contains => false,
    }
}

fn equal(stored: &str, value: &Value) -> bool {
    if let (Some(s), ValueKind::Number(v)) = (parse_number(stored), value.kind()) {
        return s == v;
    }
    stored.eq_ignore_ascii_case(value.as_str())
}

fn contains_ignoring_case(stored: &str, wanted: &str) -> bool {
    stored
        .to_ascii_lowercase()
        .contains(&wanted.to_ascii_lowercase())
}
