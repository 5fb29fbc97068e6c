//! The reminder form as plain HTML fields, to and from the CONTRACT's rule body, and where each
//! of `ReminderRule::parse_checked`'s field paths is shown in it. No script is needed.
//!
//! Field names (stable: tests use them; ids are the same with `.` replaced by `-`):
//! `name`, `case_type`, `query` (a textarea), `start` (a radio: `date` or `immediately`),
//! `start.property`, `start.offset_days`, `time` (`HH:MM`; required for a date start, optional
//! for an immediate one), `repeat.every_days` and `repeat.times` (both empty: once),
//! `content_kind` (a radio: `sms` or `survey`), `content.text` (the default text),
//! `content.translations` (`sw: text` lines), `content.survey` (a select), `stop_query`,
//! `late_limit_hours` (empty: the default), `active` (a checkbox), and `preview` (the Preview
//! button: the form is shown again with the upcoming list, nothing saved).

use casecast_core::case::FieldError;
use casecast_core::reminder::{ReminderRule, Start};
use serde_json::{Map, Value};

use super::keyword_form::{texts_json, texts_of};

/// The whole form as typed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReminderForm {
    pub csrf: String,
    /// The Preview button was pressed: show what would be sent, save nothing.
    pub preview: bool,
    pub name: String,
    pub case_type: String,
    pub query: String,
    /// `date` or `immediately`.
    pub start: String,
    pub property: String,
    pub offset_days: String,
    pub time: String,
    pub every_days: String,
    pub times: String,
    /// `sms` or `survey`.
    pub content_kind: String,
    pub text: String,
    pub translations: String,
    pub survey: String,
    pub stop_query: String,
    pub late_limit_hours: String,
    pub active: bool,
}

impl ReminderForm {
    /// A new rule's form.
    pub fn blank() -> Self {
        ReminderForm {
            start: "date".into(),
            offset_days: "0".into(),
            time: "09:00".into(),
            content_kind: "sms".into(),
            active: true,
            ..Default::default()
        }
    }

    /// A stored rule as the form shows it.
    pub fn of(rule: &ReminderRule) -> Self {
        let json = rule.to_json();
        let (text, translations) = texts_of(&json["content"]["sms"]);
        let mut f = ReminderForm {
            name: rule.name.clone(),
            case_type: rule.case_type.clone(),
            query: rule.query.clone(),
            stop_query: rule.stop_query.clone().unwrap_or_default(),
            late_limit_hours: rule
                .late_limit_hours
                .map(|h| h.to_string())
                .unwrap_or_default(),
            active: rule.active,
            time: json["time"].as_str().unwrap_or_default().to_string(),
            ..Default::default()
        };
        match &rule.timing.start {
            Start::Date {
                property,
                offset_days,
                ..
            } => {
                f.start = "date".into();
                f.property = property.clone();
                f.offset_days = offset_days.to_string();
            }
            Start::Immediately { .. } => f.start = "immediately".into(),
        }
        if let Some(r) = rule.timing.repeat {
            f.every_days = r.every_days.to_string();
            f.times = r.times.to_string();
        }
        match rule.content.survey() {
            Some(id) => {
                f.content_kind = "survey".into();
                f.survey = id.to_string();
            }
            None => {
                f.content_kind = "sms".into();
                f.text = text;
                f.translations = translations;
            }
        }
        f
    }

    /// Reads a posted form (`application/x-www-form-urlencoded`).
    pub fn parse(body: &[u8]) -> Self {
        let mut f = ReminderForm::default();
        for (k, v) in form_urlencoded::parse(body) {
            // Browsers send a textarea's line breaks as CRLF; the texts keep LF.
            let v = v.replace("\r\n", "\n");
            match k.as_ref() {
                "csrf" => f.csrf = v,
                "preview" => f.preview = true,
                "name" => f.name = v,
                "case_type" => f.case_type = v,
                "query" => f.query = v,
                "start" => f.start = v,
                "start.property" => f.property = v,
                "start.offset_days" => f.offset_days = v,
                "time" => f.time = v,
                "repeat.every_days" => f.every_days = v,
                "repeat.times" => f.times = v,
                "content_kind" => f.content_kind = v,
                "content.text" => f.text = v,
                "content.translations" => f.translations = v,
                "content.survey" => f.survey = v,
                "stop_query" => f.stop_query = v,
                "late_limit_hours" => f.late_limit_hours = v,
                "active" => f.active = true,
                _ => {}
            }
        }
        f
    }

    /// Whether the content is a survey (else SMS texts).
    pub fn is_survey(&self) -> bool {
        self.content_kind.trim() == "survey"
    }

    /// The rule's JSON body (the CONTRACT's shape), and the form's own errors (translation
    /// lines that cannot be read, no survey chosen); `ReminderRule::parse_checked` checks the
    /// rest.
    pub fn to_json(&self) -> (Value, Vec<FieldError>) {
        let mut errors = Vec::new();
        let text = |s: &str| Value::String(s.to_string());
        let mut body = Map::new();
        body.insert("name".into(), text(&self.name));
        body.insert("active".into(), Value::Bool(self.active));
        body.insert("case_type".into(), text(&self.case_type));
        body.insert("query".into(), text(&self.query));
        body.insert("stop_query".into(), text(&self.stop_query));
        let mut start = Map::new();
        if self.start.trim() == "immediately" {
            start.insert("immediately".into(), Value::Bool(true));
        } else {
            if !self.property.trim().is_empty() {
                start.insert("property".into(), text(&self.property));
            }
            if !self.offset_days.trim().is_empty() {
                start.insert("offset_days".into(), text(&self.offset_days));
            }
        }
        body.insert("start".into(), Value::Object(start));
        if !self.time.trim().is_empty() {
            body.insert("time".into(), text(&self.time));
        }
        if !self.every_days.trim().is_empty() || !self.times.trim().is_empty() {
            let mut repeat = Map::new();
            repeat.insert("every_days".into(), text(&self.every_days));
            repeat.insert("times".into(), text(&self.times));
            body.insert("repeat".into(), Value::Object(repeat));
        }
        let content = if self.is_survey() {
            if self.survey.trim().is_empty() {
                errors.push(FieldError::new(
                    "content.survey",
                    "choose the survey to start",
                ));
                None
            } else {
                let mut c = Map::new();
                c.insert("survey".into(), text(self.survey.trim()));
                Some(Value::Object(c))
            }
        } else {
            texts_json(
                &self.text,
                &self.translations,
                "content.translations",
                &mut errors,
            )
            .map(|texts| {
                let mut c = Map::new();
                c.insert("sms".into(), texts);
                Value::Object(c)
            })
        };
        match content {
            Some(c) => {
                body.insert("content".into(), c);
            }
            // The survey's own error says it already.
            None if self.is_survey() => {
                body.insert("content".into(), serde_json::json!({"survey": 1}));
            }
            None => {}
        }
        if !self.late_limit_hours.trim().is_empty() {
            body.insert("late_limit_hours".into(), text(&self.late_limit_hours));
        }
        (Value::Object(body), errors)
    }

    /// The checked rule, or every problem (the form's own and the rule's).
    pub fn rule(&self) -> Result<ReminderRule, Vec<FieldError>> {
        let (json, mut errors) = self.to_json();
        match ReminderRule::parse_checked(&json) {
            Ok(rule) if errors.is_empty() => Ok(rule),
            Ok(_) => Err(errors),
            Err(found) => {
                errors.extend(found);
                Err(errors)
            }
        }
    }

    /// Where an error is shown: the name of the form's input, or `None` for the list above
    /// the form.
    pub fn input_of(&self, e: &FieldError) -> Option<String> {
        let path = e.field.as_str();
        Some(
            match path {
                "name"
                | "case_type"
                | "query"
                | "stop_query"
                | "time"
                | "late_limit_hours"
                | "active"
                | "start.property"
                | "start.offset_days"
                | "repeat.times"
                | "content.survey"
                | "content.translations" => path,
                "repeat" | "repeat.every_days" => "repeat.every_days",
                "content" if self.is_survey() => "content.survey",
                "content" | "content.sms" => "content.text",
                p if p.starts_with("start") => "start",
                p if p.starts_with("repeat.") => "repeat.every_days",
                "content.sms.*" => "content.text",
                p if p.starts_with("content.sms.") => "content.translations",
                _ => return None,
            }
            .to_string(),
        )
    }
}

/// The message shown at an input for an error: a translation's error names its language.
pub fn message_of(e: &FieldError) -> String {
    match e.field.strip_prefix("content.sms.") {
        Some(lang) if lang != "*" => format!("{lang}: {}", e.message),
        _ => e.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(pairs: &[(&str, &str)]) -> Vec<u8> {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
            .into_bytes()
    }

    #[test]
    fn a_posted_form_becomes_the_rule_and_back() {
        let f = ReminderForm::parse(&encoded(&[
            ("csrf", "t"),
            ("name", "Visit in 2 days"),
            ("case_type", "mother"),
            ("query", "study_arm = B"),
            ("start", "date"),
            ("start.property", "next_visit"),
            ("start.offset_days", "-2"),
            ("time", "09:00"),
            ("repeat.every_days", "1"),
            ("repeat.times", "3"),
            ("content_kind", "sms"),
            ("content.text", "Visit on {case.next_visit}"),
            ("content.translations", "sw: Ziara {case.next_visit}\r\n"),
            ("content.survey", "4"),
            ("stop_query", "visit_done = yes"),
            ("late_limit_hours", "12"),
            ("active", "on"),
        ]));
        assert_eq!(f.csrf, "t");
        assert!(!f.preview);
        let rule = f.rule().unwrap();
        let json = rule.to_json();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "Visit in 2 days", "active": true, "case_type": "mother",
                "query": "study_arm = B", "stop_query": "visit_done = yes",
                "start": {"property": "next_visit", "offset_days": -2}, "time": "09:00",
                "repeat": {"every_days": 1, "times": 3},
                "content": {"sms": {"*": "Visit on {case.next_visit}", "sw": "Ziara {case.next_visit}"}},
                "late_limit_hours": 12
            })
        );
        // Shown again, it reads back the same rule.
        let again = ReminderForm::of(&rule);
        assert_eq!(again.translations, "sw: Ziara {case.next_visit}");
        assert_eq!(again.rule().unwrap(), rule);
        // An immediate start with a survey, once, inactive: the date fields are not read.
        let f = ReminderForm::parse(&encoded(&[
            ("name", "Welcome"),
            ("case_type", "mother"),
            ("start", "immediately"),
            ("start.property", "next_visit"),
            ("start.offset_days", "-2"),
            ("content_kind", "survey"),
            ("content.text", "ignored"),
            ("content.survey", "4"),
            ("preview", "1"),
        ]));
        assert!(f.preview);
        let rule = f.rule().unwrap();
        assert!(!rule.active);
        assert_eq!(rule.timing.start, Start::Immediately { time: None });
        assert_eq!(rule.timing.repeat, None);
        assert_eq!(rule.content.survey(), Some(4));
        assert_eq!(ReminderForm::of(&rule).rule().unwrap(), rule);
    }

    #[test]
    fn errors_are_placed_at_their_inputs() {
        let f = ReminderForm::parse(&encoded(&[
            ("name", ""),
            ("case_type", "mother"),
            ("query", "study_arm = = B"),
            ("start", "date"),
            ("start.property", "next visit!"),
            ("start.offset_days", "-400"),
            ("time", "9am"),
            ("repeat.every_days", "0"),
            ("repeat.times", ""),
            ("content_kind", "sms"),
            ("content.text", ""),
            ("content.translations", "nonsense"),
            ("late_limit_hours", "1000"),
        ]));
        let errors = f.rule().unwrap_err();
        let placed: Vec<String> = errors.iter().filter_map(|e| f.input_of(e)).collect();
        for input in [
            "name",
            "query",
            "start.property",
            "start.offset_days",
            "time",
            "repeat.every_days",
            "repeat.times",
            "content.translations",
            "content.text",
            "late_limit_hours",
        ] {
            assert!(placed.iter().any(|p| p == input), "{input}: {errors:?}");
        }
        assert_eq!(placed.len(), errors.len(), "every error has its input");
        let sw = FieldError::new("content.sms.sw", "too long");
        assert_eq!(f.input_of(&sw).as_deref(), Some("content.translations"));
        assert_eq!(message_of(&sw), "sw: too long");
        // A survey not chosen is said once, at the survey.
        let f = ReminderForm::parse(&encoded(&[
            ("name", "x"),
            ("case_type", "mother"),
            ("start", "immediately"),
            ("content_kind", "survey"),
        ]));
        let errors = f.rule().unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(f.input_of(&errors[0]).as_deref(), Some("content.survey"));
    }
}
