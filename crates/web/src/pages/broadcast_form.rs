//! The compose form of a broadcast: its fields as typed (repeated checkboxes and numbered
//! translation rows, hence a hand-read body), turned into the CONTRACT's broadcast body that
//! `casecast_core::broadcast::Draft::parse` checks, and the checker's field names turned back
//! into the form's labels.

use std::collections::BTreeMap;

use casecast_core::case::FieldError;
use serde_json::{json, Map, Value};

/// Most translation rows read from a form (the store takes at most 20 languages).
const MAX_ROWS: usize = 40;

/// One translation as typed: a language code and its text.
#[derive(Clone, Debug, Default)]
pub(super) struct TranslationRow {
    pub lang: String,
    pub text: String,
}

/// The compose form's fields, as typed.
#[derive(Clone, Debug, Default)]
pub(super) struct BroadcastForm {
    pub csrf: String,
    /// `preview` or `send`.
    pub action: String,
    /// The body that was previewed (JSON), so that a changed form is previewed again first.
    pub previewed: String,
    pub name: String,
    /// Ids of the case groups ticked.
    pub groups: Vec<String>,
    /// Case IDs, one a line (commas also separate).
    pub cases: String,
    /// `sms` (the texts below) or `survey` (the survey chosen).
    pub content_kind: String,
    /// The survey's id, when `content_kind` is `survey`.
    pub survey_id: String,
    pub default_text: String,
    pub translations: Vec<TranslationRow>,
    /// `now`, `once`, `daily`, `weekly` or `monthly`.
    pub schedule_kind: String,
    pub once_date: String,
    pub once_time: String,
    pub start_date: String,
    pub time: String,
    pub every: String,
    /// `mon` … `sun`.
    pub weekdays: Vec<String>,
    /// `1` … `31` and `last`.
    pub days: Vec<String>,
    /// `never`, `after` or `on_date`.
    pub stop: String,
    pub stop_after: String,
    pub stop_on: String,
    pub gateway_id: String,
}

/// Browsers send line breaks as CR LF; the phone gets LF (one character, as counted).
fn text(s: &str) -> String {
    s.replace("\r\n", "\n")
}

/// A number when it reads as one, else the text itself, so that the checker names the field.
fn number_or_text(s: &str) -> Value {
    let s = s.trim();
    s.parse::<u64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::String(s.to_string()))
}

impl BroadcastForm {
    /// A fresh form: sent now, repeating settings ready from `today` at 09:00.
    pub fn blank(today: &str) -> BroadcastForm {
        BroadcastForm {
            schedule_kind: "now".into(),
            content_kind: "sms".into(),
            once_date: today.into(),
            once_time: "09:00".into(),
            start_date: today.into(),
            time: "09:00".into(),
            every: "1".into(),
            stop: "never".into(),
            ..Default::default()
        }
    }

    /// Reads an `application/x-www-form-urlencoded` body.
    pub fn parse(body: &[u8]) -> BroadcastForm {
        let mut f = BroadcastForm::default();
        let mut rows: BTreeMap<usize, TranslationRow> = BTreeMap::new();
        for (key, value) in form_urlencoded::parse(body) {
            let value = value.into_owned();
            if let Some(i) = key.strip_prefix("lang_").and_then(|i| i.parse().ok()) {
                if i < MAX_ROWS {
                    rows.entry(i).or_default().lang = value;
                }
                continue;
            }
            if let Some(i) = key.strip_prefix("text_").and_then(|i| i.parse().ok()) {
                if i < MAX_ROWS {
                    rows.entry(i).or_default().text = value;
                }
                continue;
            }
            let slot = match key.as_ref() {
                "csrf" => &mut f.csrf,
                "action" => &mut f.action,
                "previewed" => &mut f.previewed,
                "name" => &mut f.name,
                "cases" => &mut f.cases,
                "default_text" => &mut f.default_text,
                "content_kind" => &mut f.content_kind,
                "survey_id" => &mut f.survey_id,
                "schedule_kind" => &mut f.schedule_kind,
                "once_date" => &mut f.once_date,
                "once_time" => &mut f.once_time,
                "start_date" => &mut f.start_date,
                "time" => &mut f.time,
                "every" => &mut f.every,
                "stop" => &mut f.stop,
                "stop_after" => &mut f.stop_after,
                "stop_on" => &mut f.stop_on,
                "gateway_id" => &mut f.gateway_id,
                "group" => {
                    f.groups.push(value);
                    continue;
                }
                "weekday" => {
                    f.weekdays.push(value);
                    continue;
                }
                "day" => {
                    f.days.push(value);
                    continue;
                }
                _ => continue,
            };
            *slot = value;
        }
        f.translations = rows
            .into_values()
            .filter(|r| !r.lang.trim().is_empty() || !r.text.trim().is_empty())
            .collect();
        f
    }

    /// The CONTRACT broadcast body the form describes; errors the checker cannot name (a
    /// translation without its language, one language twice) are reported here.
    pub fn body(&self) -> Result<Value, FieldError> {
        let content = match self.content_kind.trim() {
            "survey" => match self.survey_id.trim() {
                "" => return Err(FieldError::new("content.survey", "choose a survey")),
                id => json!({"survey": number_or_text(id)}),
            },
            "" | "sms" => json!({"sms": self.texts()?}),
            _ => {
                return Err(FieldError::new(
                    "content",
                    "choose an SMS message or a survey",
                ))
            }
        };
        let cases: Vec<&str> = self
            .cases
            .split(['\n', ','])
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        let gateway_id = match self.gateway_id.trim() {
            "" => Value::Null,
            id => id
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(id.to_string())),
        };
        Ok(json!({
            "name": self.name,
            "recipients": {"case_groups": self.groups, "cases": cases},
            "content": content,
            "schedule": self.schedule()?,
            "gateway_id": gateway_id,
        }))
    }

    /// The SMS texts by language key.
    fn texts(&self) -> Result<Map<String, Value>, FieldError> {
        let mut sms = Map::new();
        sms.insert("*".into(), Value::String(text(&self.default_text)));
        for (n, row) in self.translations.iter().enumerate() {
            let lang = row.lang.trim();
            if lang.is_empty() {
                return Err(FieldError::new(
                    "translation",
                    format!(
                        "row {}: give the language code of this text (sw, lg, fr…)",
                        n + 1
                    ),
                ));
            }
            if sms.contains_key(lang) {
                let what = if lang == "*" {
                    "* is the default text's key: use a language code".to_string()
                } else {
                    "is given twice: one text per language".to_string()
                };
                return Err(FieldError::new(format!("content.sms.{lang}"), what));
            }
            sms.insert(lang.to_string(), Value::String(text(&row.text)));
        }
        Ok(sms)
    }

    fn schedule(&self) -> Result<Value, FieldError> {
        let kind = self.schedule_kind.as_str();
        match kind {
            "" | "now" => return Ok(json!({"kind": "immediate"})),
            "once" => {
                let at = format!("{}T{}", self.once_date.trim(), self.once_time.trim());
                return Ok(json!({"kind": "once", "at": at}));
            }
            "daily" | "weekly" | "monthly" => {}
            _ => return Err(FieldError::new("schedule", "choose when to send")),
        }
        let every = match self.every.trim() {
            "" => Value::Null,
            e => number_or_text(e),
        };
        let days: Vec<Value> = (self.days.iter())
            .map(|d| match d.trim() {
                "last" => json!("last"),
                d => number_or_text(d),
            })
            .collect();
        let stop = match self.stop.as_str() {
            "after" => json!({"after_occurrences": number_or_text(&self.stop_after)}),
            "on_date" => json!({"on_date": self.stop_on.trim()}),
            _ => Value::Null,
        };
        Ok(json!({
            "kind": kind,
            "start_date": self.start_date.trim(),
            "time": self.time.trim(),
            "every": every,
            "weekdays": if kind == "weekly" { json!(self.weekdays) } else { Value::Null },
            "days_of_month": if kind == "monthly" { Value::Array(days) } else { Value::Null },
            "stop": stop,
        }))
    }
}

/// Where on the form a field's error belongs: `name`, `recipients`, `texts`, `schedule` or
/// `gateway`.
pub(super) fn section(field: &str) -> &'static str {
    match field.split(['.', '[']).next().unwrap_or("") {
        "name" => "name",
        "recipients" => "recipients",
        "content" | "translation" => "texts",
        "schedule" => "schedule",
        "gateway_id" => "gateway",
        _ => "",
    }
}

/// The form's label of a checker field name.
pub(super) fn label(field: &str) -> String {
    let fixed = match field {
        "name" => "Name",
        "recipients" => "Recipients",
        "recipients.cases" => "Case IDs",
        "content" | "content.sms" => "Texts",
        "content.survey" => "Survey",
        "content.sms.*" => "Default text",
        "translation" => "Translations",
        "schedule" | "schedule.kind" => "When",
        "schedule.at" => "Date and time",
        "schedule.start_date" => "Starting on",
        "schedule.time" => "Time",
        "schedule.every" => "Repeat every",
        "schedule.weekdays" => "Weekdays",
        "schedule.days_of_month" => "Days of the month",
        "schedule.stop" => "Stop",
        "schedule.stop.after_occurrences" => "Stop after",
        "schedule.stop.on_date" => "Stop on",
        "gateway_id" => "Gateway",
        _ => "",
    };
    if !fixed.is_empty() {
        return fixed.to_string();
    }
    if field.starts_with("recipients.case_groups") {
        return "Case groups".to_string();
    }
    if let Some(lang) = field.strip_prefix("content.sms.") {
        return format!("Translation ({lang})");
    }
    field.to_string()
}

/// An error as the form shows it: the field's label, then what is wrong.
pub(super) fn message(e: &FieldError) -> String {
    format!("{}: {}", label(&e.field), e.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use casecast_core::broadcast::Draft;

    fn form(pairs: &[(&str, &str)]) -> BroadcastForm {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        BroadcastForm::parse(body.as_bytes())
    }

    #[test]
    fn a_weekly_form_becomes_a_draft() {
        let f = form(&[
            ("name", "Clinic day"),
            ("group", "3"),
            ("group", "4"),
            ("cases", "c-1\r\n\r\n c-2 , c-3\n"),
            ("default_text", "Hello {case.name}\r\nsee you"),
            ("lang_0", "sw"),
            ("text_0", "Habari {case.name}"),
            ("lang_1", ""),
            ("text_1", ""),
            ("schedule_kind", "weekly"),
            ("start_date", "2030-01-07"),
            ("time", "09:30"),
            ("every", "2"),
            ("weekday", "mon"),
            ("weekday", "thu"),
            ("day", "last"),
            ("stop", "after"),
            ("stop_after", "10"),
            ("gateway_id", ""),
        ]);
        assert_eq!(f.translations.len(), 1, "the empty row is dropped");
        let draft = Draft::parse(&f.body().unwrap()).unwrap();
        assert_eq!(draft.recipients.case_groups, vec![3, 4]);
        assert_eq!(draft.recipients.cases, vec!["c-1", "c-2", "c-3"]);
        assert_eq!(
            draft.content.sms().unwrap().default_template().as_str(),
            "Hello {case.name}\nsee you"
        );
        assert_eq!(
            draft.schedule.to_json(),
            json!({"kind": "weekly", "start_date": "2030-01-07", "time": "09:30", "every": 2,
                "weekdays": ["mon", "thu"], "days_of_month": [], "stop": {"after_occurrences": 10}})
        );
        assert_eq!(draft.gateway_id, None);
    }

    #[test]
    fn a_survey_form_sends_the_survey_chosen_and_not_the_texts() {
        let base = [("name", "N"), ("group", "1"), ("content_kind", "survey")];
        let with = |extra: &[(&str, &str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            form(&all)
        };
        // The texts (left empty, or a translation without its code) are not read.
        let f = with(&[("survey_id", "12"), ("text_0", "Habari")]);
        let draft = Draft::parse(&f.body().unwrap()).unwrap();
        assert_eq!(draft.content.survey(), Some(12));
        let e = with(&[("survey_id", " ")]).body().unwrap_err();
        assert_eq!(
            (section(&e.field), message(&e).as_str()),
            ("texts", "Survey: choose a survey")
        );
        let e = Draft::parse(&with(&[("survey_id", "x")]).body().unwrap()).unwrap_err();
        assert!(message(&e).starts_with("Survey: "), "{}", message(&e));
        let e = form(&[("content_kind", "poll")]).body().unwrap_err();
        assert_eq!(e.field, "content");
    }

    #[test]
    fn errors_name_the_form_field() {
        let base = [("name", "N"), ("group", "1"), ("default_text", "Hi")];
        let check = |extra: &[(&str, &str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            let f = form(&all);
            let e = f.body().and_then(|b| Draft::parse(&b).map(|_| ()));
            let e = e.unwrap_err();
            (section(&e.field), message(&e))
        };
        let (s, m) = check(&[("lang_0", "sw"), ("text_0", "")]);
        assert_eq!(s, "texts");
        assert!(m.starts_with("Translation (sw): "), "{m}");
        let (s, m) = check(&[("text_0", "Habari")]);
        assert_eq!(
            (s, m.starts_with("Translations: row 1")),
            ("texts", true),
            "{m}"
        );
        let (_, m) = check(&[
            ("lang_0", "sw"),
            ("text_0", "a"),
            ("lang_1", "sw"),
            ("text_1", "b"),
        ]);
        assert!(m.contains("twice"), "{m}");
        let (s, m) = check(&[
            ("schedule_kind", "weekly"),
            ("start_date", "2030-01-07"),
            ("time", "09:00"),
        ]);
        assert_eq!(s, "schedule");
        assert!(m.starts_with("Weekdays: "), "{m}");
        let (_, m) = check(&[
            ("schedule_kind", "daily"),
            ("start_date", "2030-01-07"),
            ("time", "9h"),
            ("every", "1"),
        ]);
        assert!(m.starts_with("Time: "), "{m}");
        let (_, m) = check(&[
            ("schedule_kind", "monthly"),
            ("start_date", "2030-01-07"),
            ("time", "09:00"),
            ("day", "x"),
        ]);
        assert!(m.starts_with("Days of the month: "), "{m}");
        let (_, m) = check(&[
            ("schedule_kind", "daily"),
            ("start_date", "2030-01-07"),
            ("time", "09:00"),
            ("every", "two"),
        ]);
        assert!(m.starts_with("Repeat every: "), "{m}");
        let (s, m) = check(&[("gateway_id", "x")]);
        assert_eq!((s, m.starts_with("Gateway: ")), ("gateway", true));
        let mut f = form(&base);
        f.name = " ".into();
        let e = Draft::parse(&f.body().unwrap()).unwrap_err();
        assert_eq!(
            (section(&e.field), label(&e.field).as_str()),
            ("name", "Name")
        );
    }
}
