//! The keyword form as plain HTML fields, to and from the keyword's JSON body, and where each
//! of `Keyword::parse`'s field paths is shown in it. No script is needed.
//!
//! Field names (stable: tests use them; ids are the same with `.` replaced by `-`):
//! - `keyword`, `fields` (names separated by spaces or commas), `override_open_survey` (a
//!   checkbox), `unknown_sender` (`ignore`, `reply` or `create_case`), `unknown_reply` (the
//!   default text) and `unknown_reply.translations` (`sw: text` lines), `case_type`;
//! - per action row `i` (0-based, in order; a row without a type is ignored): `a{i}.type`,
//!   `a{i}.text` and `a{i}.translations` (a reply), `a{i}.survey_id`, `a{i}.case_group_id`,
//!   `a{i}.dates` (a `set_properties`' date fields besides `*_date` ones).

use std::collections::BTreeMap;

use casecast_core::case::{parse_language_code, FieldError};
use casecast_core::keyword::{Keyword, MAX_ACTIONS};
use casecast_core::template::DEFAULT_KEY;
use serde_json::{Map, Value};

/// Action rows a new keyword's form shows (more when a keyword has more actions).
pub const ROWS: usize = 5;

/// Action types as the form's select names them.
pub const ACTION_TYPES: [(&str, &str); 5] = [
    ("reply", "Reply with a text"),
    ("start_survey", "Start a survey"),
    ("add_to_group", "Add to a case group"),
    ("remove_from_group", "Remove from a case group"),
    ("set_properties", "Save the fields to the case"),
];

/// One action row as typed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActionForm {
    pub kind: String,
    pub text: String,
    pub translations: String,
    pub survey_id: String,
    pub case_group_id: String,
    pub dates: String,
}

/// The whole form as typed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeywordForm {
    pub csrf: String,
    pub keyword: String,
    pub fields: String,
    pub override_open_survey: bool,
    pub unknown_sender: String,
    pub unknown_reply: String,
    pub unknown_reply_translations: String,
    pub case_type: String,
    pub actions: Vec<ActionForm>,
}

/// Texts by language (`{"*": …, "sw": …}`) as the form shows them: the default text, and the
/// translations as `sw: text` lines.
pub(super) fn texts_of(value: &Value) -> (String, String) {
    let Some(map) = value.as_object() else {
        return (
            value.as_str().unwrap_or_default().to_string(),
            String::new(),
        );
    };
    let default = map
        .get(DEFAULT_KEY)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let lines = map
        .iter()
        .filter(|(l, _)| l.as_str() != DEFAULT_KEY)
        .map(|(l, t)| format!("{l}: {}", t.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("\n");
    (default, lines)
}

/// The texts' JSON from the default text and `sw: text` lines; a problem with a line is the
/// form's own (reported at `field`). `None` when nothing was written.
pub(super) fn texts_json(
    default: &str,
    translations: &str,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Value> {
    let mut out = Map::new();
    if !default.trim().is_empty() {
        out.insert(DEFAULT_KEY.into(), Value::String(default.trim().into()));
    }
    for (n, line) in translations.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match line.split_once(':') {
            Some((lang, text)) if parse_language_code(lang.trim()).is_ok() => {
                out.insert(lang.trim().into(), Value::String(text.trim().into()));
            }
            _ => errors.push(FieldError::new(
                field,
                format!(
                    "line {}: write each translation as a language code, a colon and the text \
                     (sw: Karibu), one a line",
                    n + 1
                ),
            )),
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

impl KeywordForm {
    /// A new keyword's form.
    pub fn blank() -> Self {
        KeywordForm {
            unknown_sender: "ignore".into(),
            actions: vec![ActionForm::default(); ROWS],
            ..Default::default()
        }
    }

    /// A stored keyword as the form shows it, with blank rows: up to [`ROWS`] rows, and at
    /// least one blank row while it has fewer than [`MAX_ACTIONS`] actions.
    pub fn of(k: &Keyword) -> Self {
        let json = k.to_json();
        let (unknown_reply, unknown_reply_translations) = texts_of(&json["unknown_reply"]);
        let mut actions: Vec<ActionForm> = json["actions"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|a| {
                let (text, translations) = texts_of(&a["text"]);
                let id = |key: &str| a[key].as_i64().map(|n| n.to_string()).unwrap_or_default();
                ActionForm {
                    kind: a["type"].as_str().unwrap_or_default().to_string(),
                    text,
                    translations,
                    survey_id: id("survey_id"),
                    case_group_id: id("case_group_id"),
                    dates: a["dates"]
                        .as_array()
                        .map(|d| {
                            d.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_default(),
                }
            })
            .collect();
        // A blank row to add one more, up to the limit.
        let rows = (actions.len() + 1).clamp(ROWS, MAX_ACTIONS);
        while actions.len() < rows {
            actions.push(ActionForm::default());
        }
        KeywordForm {
            csrf: String::new(),
            keyword: k.keyword.clone(),
            fields: k.fields.join(" "),
            override_open_survey: k.override_open_survey,
            unknown_sender: k.unknown_sender.as_str().to_string(),
            unknown_reply,
            unknown_reply_translations,
            case_type: k.case_type.clone(),
            actions,
        }
    }

    /// Reads a posted form (`application/x-www-form-urlencoded`); rows past [`MAX_ACTIONS`]
    /// are not read (the form never shows them).
    pub fn parse(body: &[u8]) -> Self {
        let mut f = KeywordForm::default();
        let mut rows: BTreeMap<usize, ActionForm> = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            // Browsers send a textarea's line breaks as CRLF; the texts keep LF.
            let v = v.replace("\r\n", "\n");
            match k.as_ref() {
                "csrf" => f.csrf = v,
                "keyword" => f.keyword = v,
                "fields" => f.fields = v,
                "override_open_survey" => f.override_open_survey = true,
                "unknown_sender" => f.unknown_sender = v,
                "unknown_reply" => f.unknown_reply = v,
                "unknown_reply.translations" => f.unknown_reply_translations = v,
                "case_type" => f.case_type = v,
                other => {
                    let Some((i, field)) = other
                        .strip_prefix('a')
                        .and_then(|rest| rest.split_once('.'))
                        .and_then(|(i, field)| Some((i.parse::<usize>().ok()?, field)))
                    else {
                        continue;
                    };
                    if i >= MAX_ACTIONS {
                        continue;
                    }
                    let row = rows.entry(i).or_default();
                    match field {
                        "type" => row.kind = v,
                        "text" => row.text = v,
                        "translations" => row.translations = v,
                        "survey_id" => row.survey_id = v,
                        "case_group_id" => row.case_group_id = v,
                        "dates" => row.dates = v,
                        _ => {}
                    }
                }
            }
        }
        let last = rows.keys().next_back().copied().unwrap_or(0);
        f.actions = (0..=last.max(ROWS - 1))
            .map(|i| rows.remove(&i).unwrap_or_default())
            .collect();
        f
    }

    /// The rows that are used (a type chosen), with their positions in the form.
    fn used(&self) -> Vec<usize> {
        (0..self.actions.len())
            .filter(|&i| !self.actions[i].kind.trim().is_empty())
            .collect()
    }

    /// The keyword's JSON body, and the form's own errors (translation lines that cannot be
    /// read); `Keyword::parse` checks the rest.
    pub fn to_json(&self) -> (Value, Vec<FieldError>) {
        let mut errors = Vec::new();
        let mut body = Map::new();
        body.insert("keyword".into(), Value::String(self.keyword.clone()));
        body.insert("fields".into(), Value::String(self.fields.clone()));
        body.insert(
            "override_open_survey".into(),
            Value::Bool(self.override_open_survey),
        );
        // No choice (no radio checked) is the default, `ignore`.
        let unknown_sender = self.unknown_sender.trim();
        body.insert(
            "unknown_sender".into(),
            if unknown_sender.is_empty() {
                Value::Null
            } else {
                Value::String(unknown_sender.into())
            },
        );
        body.insert(
            "unknown_reply".into(),
            texts_json(
                &self.unknown_reply,
                &self.unknown_reply_translations,
                "unknown_reply.translations",
                &mut errors,
            )
            .unwrap_or(Value::Null),
        );
        body.insert("case_type".into(), Value::String(self.case_type.clone()));
        let mut actions = Vec::new();
        for i in self.used() {
            let row = &self.actions[i];
            let kind = row.kind.trim();
            let mut a = Map::new();
            a.insert("type".into(), Value::String(kind.into()));
            match kind {
                "reply" => {
                    let text = texts_json(
                        &row.text,
                        &row.translations,
                        &format!("a{i}.translations"),
                        &mut errors,
                    );
                    a.insert("text".into(), text.unwrap_or(Value::Null));
                }
                "start_survey" => {
                    a.insert("survey_id".into(), Value::String(row.survey_id.clone()));
                }
                "add_to_group" | "remove_from_group" => {
                    a.insert(
                        "case_group_id".into(),
                        Value::String(row.case_group_id.clone()),
                    );
                }
                "set_properties" => {
                    let dates: Vec<Value> = row
                        .dates
                        .split(|c: char| c.is_whitespace() || c == ',')
                        .filter(|d| !d.is_empty())
                        .map(|d| Value::String(d.into()))
                        .collect();
                    if !dates.is_empty() {
                        a.insert("dates".into(), Value::Array(dates));
                    }
                }
                _ => {}
            }
            actions.push(Value::Object(a));
        }
        body.insert("actions".into(), Value::Array(actions));
        (Value::Object(body), errors)
    }

    /// Where an error of `Keyword::parse` (or of the references' check) is shown: the name of
    /// the form's input, or `None` for the list above the form.
    pub fn input_of(&self, e: &FieldError) -> Option<String> {
        let path = e.field.as_str();
        match path {
            "keyword" | "override_open_survey" | "unknown_sender" | "case_type" | "actions" => {
                return Some(path.to_string())
            }
            _ => {}
        }
        if path == "fields" || path.starts_with("fields[") {
            return Some("fields".into());
        }
        if path.starts_with("a") && !path.starts_with("actions") {
            // The form's own errors already name their input.
            return Some(path.to_string());
        }
        if let Some(rest) = path.strip_prefix("unknown_reply") {
            return Some(text_input(
                "unknown_reply",
                "unknown_reply.translations",
                rest,
            ));
        }
        let rest = path.strip_prefix("actions[")?;
        let (k, rest) = rest.split_once(']')?;
        let k: usize = k.parse().ok()?;
        let i = *self.used().get(k)?;
        let row = format!("a{i}");
        let rest = rest.strip_prefix('.').unwrap_or(rest);
        Some(if rest.is_empty() {
            format!("{row}.type")
        } else if let Some(text) = rest.strip_prefix("text") {
            text_input(&format!("{row}.text"), &format!("{row}.translations"), text)
        } else if rest.starts_with("dates") {
            format!("{row}.dates")
        } else {
            match rest {
                "type" | "survey_id" | "case_group_id" => format!("{row}.{rest}"),
                _ => format!("{row}.type"),
            }
        })
    }
}

/// The input of a texts path's rest (``, `.*` or `.sw`): the default text's, else the
/// translations'.
fn text_input(default: &str, translations: &str, rest: &str) -> String {
    if rest.is_empty() || rest == format!(".{DEFAULT_KEY}") {
        default.to_string()
    } else {
        translations.to_string()
    }
}

/// The message shown at an input for an error: a translation's error names its language.
pub fn message_of(e: &FieldError) -> String {
    let lang = e
        .field
        .rsplit_once(".text.")
        .map(|(_, l)| l)
        .or_else(|| e.field.strip_prefix("unknown_reply."));
    match lang {
        Some(l) if l != DEFAULT_KEY && l != "translations" => format!("{l}: {}", e.message),
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
    fn a_posted_form_becomes_the_keyword_body_and_back() {
        let body = encoded(&[
            ("csrf", "t"),
            ("keyword", "REG"),
            ("fields", "name birth_date"),
            ("override_open_survey", "on"),
            ("unknown_sender", "create_case"),
            ("unknown_reply", ""),
            ("case_type", "mother"),
            ("a0.type", "reply"),
            ("a0.text", "Welcome {field.name}"),
            (
                "a0.translations",
                "sw: Karibu {field.name}\r\n\r\nfr: Bienvenue",
            ),
            ("a0.survey_id", "3"),
            ("a1.type", ""),
            ("a1.text", "ignored"),
            ("a2.type", "add_to_group"),
            ("a2.case_group_id", "7"),
            ("a3.type", "set_properties"),
            ("a3.dates", "birth_date"),
        ]);
        let f = KeywordForm::parse(&body);
        assert_eq!(f.csrf, "t");
        assert_eq!(f.actions.len(), ROWS);
        let (json, errors) = f.to_json();
        assert!(errors.is_empty(), "{errors:?}");
        let k = Keyword::parse(&json, &["STOP"]).unwrap();
        assert_eq!(k.keyword, "REG");
        assert_eq!(k.fields, vec!["name", "birth_date"]);
        assert!(k.override_open_survey);
        assert_eq!(k.case_type, "mother");
        assert_eq!(k.actions.len(), 3);
        let back = k.to_json();
        assert_eq!(back["actions"][0]["text"]["sw"], "Karibu {field.name}");
        assert_eq!(back["actions"][0]["text"]["fr"], "Bienvenue");
        assert_eq!(back["actions"][1]["case_group_id"], 7);
        // The stored keyword shown again reads back the same.
        let again = KeywordForm::of(&k);
        let (json2, errors) = again.to_json();
        assert!(errors.is_empty());
        assert_eq!(Keyword::parse(&json2, &["STOP"]).unwrap(), k);
        assert_eq!(
            again.actions[0].translations,
            "fr: Bienvenue\nsw: Karibu {field.name}"
        );
        assert_eq!(again.actions.len(), ROWS);
        // A keyword of five actions gets a sixth row, one of ten none.
        let replies = |n: usize| {
            let actions: Vec<Value> = (0..n)
                .map(|i| serde_json::json!({"type": "reply", "text": format!("r{i}")}))
                .collect();
            Keyword::parse(
                &serde_json::json!({"keyword": "X", "actions": actions}),
                &["STOP"],
            )
            .unwrap()
        };
        assert_eq!(KeywordForm::of(&replies(5)).actions.len(), 6);
        assert_eq!(KeywordForm::of(&replies(10)).actions.len(), MAX_ACTIONS);
    }

    #[test]
    fn errors_are_placed_at_the_rows_they_came_from() {
        let body = encoded(&[
            ("keyword", "JOIN"),
            ("a1.type", "reply"),
            ("a1.translations", "nonsense"),
            ("a3.type", "start_survey"),
            ("a3.survey_id", ""),
        ]);
        let f = KeywordForm::parse(&body);
        let (json, mut errors) = f.to_json();
        assert_eq!(errors[0].field, "a1.translations");
        errors.extend(Keyword::parse(&json, &["STOP"]).unwrap_err());
        let placed: Vec<Option<String>> = errors.iter().map(|e| f.input_of(e)).collect();
        assert!(
            placed.contains(&Some("a1.translations".into())),
            "{placed:?}"
        );
        // actions[0] is row 1 (text missing), actions[1] row 3.
        assert!(placed.contains(&Some("a1.text".into())), "{placed:?}");
        assert!(placed.contains(&Some("a3.survey_id".into())), "{placed:?}");
        let sw = FieldError::new("actions[1].text.sw", "too long");
        assert_eq!(f.input_of(&sw).as_deref(), Some("a3.translations"));
        assert_eq!(message_of(&sw), "sw: too long");
        let body = FieldError::new("body", "x");
        assert_eq!(f.input_of(&body), None);
    }
}
