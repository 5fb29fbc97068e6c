//! Reminders from case data (issue 15), the pure parts: a rule as the user writes it, checked
//! field by field ([`ReminderRule::parse`]), and when its occurrences fall for one case
//! ([`schedule`]). No I/O and no clock: the engine stores the rules and each case's next
//! occurrence, evaluates the queries and sends.
//!
//! The CONTRACT's shape (`id` and `created_at` are the API's and are ignored here):
//! ```json
//! {"name": "Visit in 2 days", "active": true, "case_type": "mother",
//!  "query": "study_arm = B", "stop_query": "visit_done = yes",
//!  "start": {"property": "next_visit", "offset_days": -2}, "time": "09:00",
//!  "repeat": {"every_days": 1, "times": 3},
//!  "content": {"sms": {"*": "Visit on {case.next_visit}", "sw": "…"}},
//!  "late_limit_hours": null}
//! ```
//! How the pieces fit: [`ReminderRule::parse`] checks a body (the caller passes the case query
//! parser as the validator); for each matching case, [`Timing::for_case`] with the case's
//! [`CaseTiming`] gives its [`CaseSchedule`] or the [`Skip`] reason shown on the rule's page;
//! [`CaseSchedule::next_due`] is the occurrence to keep on the case's row,
//! [`CaseSchedule::upcoming`] the upcoming list, and [`Occurrence::firing`] with
//! [`ReminderRule::late_limit`] says at firing time whether to send it or record it missed.
//!
//! Rules and decisions:
//! - `start` is `{"property", "offset_days"}` (occurrence 1 on the case's date shifted by
//!   −365..=365 days, `offset_days` 0 when absent) or `{"immediately": true}` (when the case
//!   starts matching). `"immediately": false` with a property is a date start (a form's
//!   unticked box).
//! - `time` (`HH:MM`, local) is required for a date start; for `immediately` it is optional and
//!   gives the time of the later occurrences (without it they keep the time of day the case
//!   started matching).
//! - `repeat` is null (one occurrence) or `{every_days: 1..=365, times: 1..=365}`, `times`
//!   counting occurrence 1.
//! - `query` (may be empty: every case of the type) and `stop_query` (null or empty: none) are
//!   case queries, at most [`MAX_QUERY_CHARS`] characters, checked by the validator the caller
//!   passes (the case query parser), its message kept.
//! - `content` is broadcast content: SMS texts by language with placeholders, or a survey.
//! - `active` defaults to true; `late_limit_hours` (1..=720) replaces the project's late limit
//!   for this rule, null keeps the project's.
//! - Whole numbers may come as JSON numbers or as text (forms send text).
//! - A case's start date must be `YYYY-MM-DD` and its `time_zone` property, when set, an IANA
//!   name; otherwise the case is skipped with a reason (`no_date`, `date_unreadable`,
//!   `time_zone_invalid`), never sent at a guessed time. See [`schedule`] for DST.

pub mod schedule;

#[cfg(test)]
mod tests;

use jiff::civil::Time;
use jiff::SignedDuration;
use serde_json::{json, Map, Value};

use crate::broadcast::{content_json, parse_content, BroadcastContent};
use crate::case::{parse_case_type, parse_property_name, FieldError};

pub use schedule::{
    case_zone, read_date, CaseSchedule, CaseTiming, Firing, Occurrence, Repeat, Skip, Start,
    Timing, DEFAULT_LATE_LIMIT, MAX_EVERY_DAYS, MAX_OFFSET_DAYS, MAX_TIMES, TIME_ZONE_PROPERTY,
};

/// Longest rule name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest `query` or `stop_query`, in characters (as the case query language allows).
pub const MAX_QUERY_CHARS: usize = 10_000;
/// Largest `late_limit_hours`: 30 days.
pub const MAX_LATE_LIMIT_HOURS: u32 = 30 * 24;

/// The fields a rule body may have; `id` and `created_at` are read-only and ignored.
const FIELDS: [&str; 10] = [
    "name",
    "active",
    "case_type",
    "query",
    "stop_query",
    "start",
    "time",
    "repeat",
    "content",
    "late_limit_hours",
];
const IGNORED: [&str; 2] = ["id", "created_at"];
const START_SHAPE: &str =
    "must be {\"property\": \"next_visit\", \"offset_days\": -2} or {\"immediately\": true}";

/// A reminder rule as the user writes it: what `POST /reminders` takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReminderRule {
    /// 1..=200 characters, trimmed.
    pub name: String,
    /// An inactive rule sends nothing.
    pub active: bool,
    /// The rule applies to live cases of this type.
    pub case_type: String,
    /// A case query, trimmed; empty matches every case of the type.
    pub query: String,
    /// A case query, trimmed: a case that matches it gets nothing more.
    pub stop_query: Option<String>,
    /// When occurrences are due.
    pub timing: Timing,
    /// SMS texts or a survey (its existence is checked where the rule is saved).
    pub content: BroadcastContent,
    /// This rule's late limit in hours; `None` keeps the project's.
    pub late_limit_hours: Option<u32>,
}

impl ReminderRule {
    /// Reads and checks a rule body; every problem is returned with its field path
    /// (`start.offset_days`, `repeat.times`, `content.sms.sw`). `validate_query` checks a
    /// non-empty `query` or `stop_query` text; its error message is reported on that field.
    pub fn parse(
        body: &Value,
        validate_query: &dyn Fn(&str) -> Result<(), String>,
    ) -> Result<ReminderRule, Vec<FieldError>> {
        let Some(obj) = body.as_object() else {
            return Err(vec![FieldError::new("body", "send a JSON object")]);
        };
        let mut errors = Vec::new();
        for key in obj.keys() {
            if !FIELDS.contains(&key.as_str()) && !IGNORED.contains(&key.as_str()) {
                errors.push(FieldError::new(key, "is not a field of a reminder"));
            }
        }
        let get = |key: &str| obj.get(key).filter(|v| !v.is_null());
        let name = keep(&mut errors, parse_name(get("name")));
        let active = keep(&mut errors, parse_active(get("active")));
        let case_type = keep(&mut errors, parse_type(get("case_type")));
        let query = keep(
            &mut errors,
            parse_query("query", get("query"), validate_query),
        );
        let stop_query = keep(
            &mut errors,
            parse_query("stop_query", get("stop_query"), validate_query),
        );
        let content = keep(&mut errors, parse_content(get("content")));
        let late_limit_hours = keep(&mut errors, parse_late_limit(get("late_limit_hours")));
        let timing = parse_timing(get("start"), get("time"), get("repeat"), &mut errors);
        match (
            name,
            active,
            case_type,
            query,
            stop_query,
            timing,
            content,
            late_limit_hours,
        ) {
            (
                Some(name),
                Some(active),
                Some(case_type),
                Some(query),
                Some(stop_query),
                Some(timing),
                Some(content),
                Some(late_limit_hours),
            ) if errors.is_empty() => Ok(ReminderRule {
                name,
                active,
                case_type,
                query: query.unwrap_or_default(),
                stop_query,
                timing,
                content,
                late_limit_hours,
            }),
            _ => Err(errors),
        }
    }

    /// The CONTRACT object without `id` and `created_at`; [`ReminderRule::parse`] reads it back
    /// to an equal rule. `time` is null for an `immediately` rule without one, `repeat` null for
    /// one occurrence, `stop_query` null when there is none.
    pub fn to_json(&self) -> Value {
        let (start, time) = match &self.timing.start {
            Start::Date {
                property,
                offset_days,
                time,
            } => (
                json!({"property": property, "offset_days": offset_days}),
                Some(*time),
            ),
            Start::Immediately { time } => (json!({"immediately": true}), *time),
        };
        let repeat = match self.timing.repeat {
            None => Value::Null,
            Some(r) => json!({"every_days": r.every_days, "times": r.times}),
        };
        json!({
            "name": self.name,
            "active": self.active,
            "case_type": self.case_type,
            "query": self.query,
            "stop_query": self.stop_query,
            "start": start,
            "time": time.map(format_time),
            "repeat": repeat,
            "content": content_json(&self.content),
            "late_limit_hours": self.late_limit_hours,
        })
    }

    /// Reads and checks a rule body, its `query` and `stop_query` with the case query parser.
    pub fn parse_checked(body: &Value) -> Result<ReminderRule, Vec<FieldError>> {
        ReminderRule::parse(body, &|text| {
            crate::case_query::CaseQuery::parse(text)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }

    /// How late an occurrence of this rule may still be sent: its own limit, else the
    /// project's (`project`, normally [`DEFAULT_LATE_LIMIT`]).
    pub fn late_limit(&self, project: SignedDuration) -> SignedDuration {
        self.late_limit_hours
            .map_or(project, |h| SignedDuration::from_hours(i64::from(h)))
    }
}

fn parse_name(value: Option<&Value>) -> Result<String, FieldError> {
    let name = match value {
        None => return Err(FieldError::new("name", "give the reminder a name")),
        Some(Value::String(s)) => s.trim(),
        Some(_) => return Err(FieldError::new("name", "must be text")),
    };
    let n = name.chars().count();
    if n == 0 {
        Err(FieldError::new("name", "give the reminder a name"))
    } else if n > MAX_NAME_CHARS {
        Err(FieldError::new(
            "name",
            format!("is {n} characters; a name may have at most {MAX_NAME_CHARS}"),
        ))
    } else if name.chars().any(char::is_control) {
        Err(FieldError::new(
            "name",
            "must not contain control characters",
        ))
    } else {
        Ok(name.to_string())
    }
}

fn parse_active(value: Option<&Value>) -> Result<bool, FieldError> {
    match value {
        None => Ok(true),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(FieldError::new("active", "must be true or false")),
    }
}

fn parse_type(value: Option<&Value>) -> Result<String, FieldError> {
    match value {
        None => Err(FieldError::new(
            "case_type",
            "choose the type of case the reminder is for",
        )),
        Some(Value::String(s)) => parse_case_type(s),
        Some(_) => Err(FieldError::new("case_type", "must be text")),
    }
}

fn parse_late_limit(value: Option<&Value>) -> Result<Option<u32>, FieldError> {
    let Some(value) = value else {
        return Ok(None);
    };
    whole(value)
        .filter(|n| (1..=i64::from(MAX_LATE_LIMIT_HOURS)).contains(n))
        .map(|n| Some(n as u32))
        .ok_or_else(|| {
            FieldError::new(
                "late_limit_hours",
                format!(
                    "must be a whole number of hours from 1 to {MAX_LATE_LIMIT_HOURS} (30 days), \
                     or null for the project's limit"
                ),
            )
        })
}

/// A query text, trimmed: `None` when absent or blank.
fn parse_query(
    field: &str,
    value: Option<&Value>,
    validate: &dyn Fn(&str) -> Result<(), String>,
) -> Result<Option<String>, FieldError> {
    let text = match value {
        None => return Ok(None),
        Some(Value::String(s)) => s.trim(),
        Some(_) => return Err(FieldError::new(field, "must be text (a case query)")),
    };
    if text.is_empty() {
        return Ok(None);
    }
    let n = text.chars().count();
    if n > MAX_QUERY_CHARS {
        return Err(FieldError::new(
            field,
            format!("is {n} characters; a query may have at most {MAX_QUERY_CHARS}"),
        ));
    }
    validate(text).map_err(|message| FieldError::new(field, message))?;
    Ok(Some(text.to_string()))
}

/// `start`, `time` and `repeat` together, each problem pushed to `errors`.
fn parse_timing(
    start: Option<&Value>,
    time: Option<&Value>,
    repeat: Option<&Value>,
    errors: &mut Vec<FieldError>,
) -> Option<Timing> {
    let before = errors.len();
    let given = time.is_some();
    let time = match time {
        None => None,
        Some(v) => {
            let t = v.as_str().and_then(parse_time);
            if t.is_none() {
                errors.push(FieldError::new(
                    "time",
                    "must be a local time of day written HH:MM, like \"09:00\"",
                ));
            }
            t
        }
    };
    let repeat = parse_repeat(repeat, errors);
    // A time given but unreadable is reported once, not again as missing.
    let start = parse_start(start, time, given, errors);
    if errors.len() > before {
        return None;
    }
    Some(Timing {
        start: start?,
        repeat: repeat?,
    })
}

fn parse_start(
    value: Option<&Value>,
    time: Option<Time>,
    time_given: bool,
    errors: &mut Vec<FieldError>,
) -> Option<Start> {
    let obj: &Map<String, Value> = match value {
        Some(Value::Object(o)) => o,
        None => {
            let message = format!("say when occurrence 1 is due: {START_SHAPE}");
            errors.push(FieldError::new("start", message));
            return None;
        }
        Some(_) => {
            errors.push(FieldError::new("start", START_SHAPE));
            return None;
        }
    };
    let before = errors.len();
    for key in obj.keys() {
        if !["property", "offset_days", "immediately"].contains(&key.as_str()) {
            errors.push(FieldError::new(
                format!("start.{key}"),
                "is not a field of start (property, offset_days or immediately)",
            ));
        }
    }
    let get = |key: &str| obj.get(key).filter(|v| !v.is_null());
    let immediately = match get("immediately") {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => {
            errors.push(FieldError::new(
                "start.immediately",
                "must be true or false",
            ));
            return None;
        }
    };
    if immediately {
        for key in ["property", "offset_days"] {
            if get(key).is_some() {
                errors.push(FieldError::new(
                    format!("start.{key}"),
                    "an immediate start has no date: give either immediately or a property",
                ));
            }
        }
        return (errors.len() == before).then_some(Start::Immediately { time });
    }
    let property = match get("property") {
        None => {
            errors.push(FieldError::new(
                "start.property",
                "name the case property holding the date (like next_visit), or start \
                 immediately",
            ));
            None
        }
        Some(Value::String(s)) => match parse_property_name(s) {
            Ok(p) => Some(p),
            Err(e) => {
                let message = format!("'{}': {}", s.trim(), e.message);
                errors.push(FieldError::new("start.property", message));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new("start.property", "must be text"));
            None
        }
    };
    let offset_days = match get("offset_days") {
        None => Some(0),
        Some(v) => {
            let range = -i64::from(MAX_OFFSET_DAYS)..=i64::from(MAX_OFFSET_DAYS);
            let n = whole(v).filter(|n| range.contains(n)).map(|n| n as i32);
            if n.is_none() {
                errors.push(FieldError::new(
                    "start.offset_days",
                    format!(
                        "must be a whole number of days from -{MAX_OFFSET_DAYS} to \
                         {MAX_OFFSET_DAYS} (-2 is two days before the date)"
                    ),
                ));
            }
            n
        }
    };
    if !time_given {
        errors.push(FieldError::new(
            "time",
            "give the local time of day to send on the date, like \"09:00\"",
        ));
    }
    Some(Start::Date {
        property: property?,
        offset_days: offset_days?,
        time: time?,
    })
}

/// `Some(None)`: no repeat; `None`: an error was pushed.
fn parse_repeat(value: Option<&Value>, errors: &mut Vec<FieldError>) -> Option<Option<Repeat>> {
    let obj = match value {
        None => return Some(None),
        Some(Value::Object(o)) => o,
        Some(_) => {
            errors.push(FieldError::new(
                "repeat",
                "must be null or {\"every_days\": 1, \"times\": 3}",
            ));
            return None;
        }
    };
    let before = errors.len();
    for key in obj.keys() {
        if key != "every_days" && key != "times" {
            errors.push(FieldError::new(
                format!("repeat.{key}"),
                "is not a field of repeat (every_days and times)",
            ));
        }
    }
    let mut number = |key: &str, max: u32, what: &str| {
        let n = (obj.get(key))
            .and_then(whole)
            .filter(|n| (1..=i64::from(max)).contains(n));
        if n.is_none() {
            errors.push(FieldError::new(
                format!("repeat.{key}"),
                format!("must be a whole number from 1 to {max} ({what})"),
            ));
        }
        n.map(|n| n as u32)
    };
    let every_days = number("every_days", MAX_EVERY_DAYS, "days between occurrences");
    let times = number("times", MAX_TIMES, "occurrences in all, the first included");
    if errors.len() > before {
        return None;
    }
    Some(Some(Repeat {
        every_days: every_days?,
        times: times?,
    }))
}

/// The value, or `None` with its error pushed.
fn keep<T>(errors: &mut Vec<FieldError>, result: Result<T, FieldError>) -> Option<T> {
    result.map_err(|e| errors.push(e)).ok()
}

/// A whole number given as a JSON number or as text (forms send text).
fn whole(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

/// `HH:MM` or `H:MM`, 00:00 to 23:59.
fn parse_time(text: &str) -> Option<Time> {
    let (h, m) = text.trim().split_once(':')?;
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !(1..=2).contains(&h.len()) || m.len() != 2 || !digits(h) || !digits(m) {
        return None;
    }
    Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}

fn format_time(time: Time) -> String {
    time.strftime("%H:%M").to_string()
}
