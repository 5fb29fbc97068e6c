//! The survey builder's form as plain HTML fields, to and from the survey's JSON body, and
//! where each of `Survey::parse`'s field paths is shown in it.
//!
//! Field names (stable: the page's script and browser tests use them; ids are the same with
//! `.` replaced by `-`):
//! - `name`, `languages` (translation codes, separated by spaces or commas), `max_attempts`,
//!   `reminders_every` and `reminders_times` (both blank: no reminders),
//!   `expire_after_minutes`;
//! - `intro`, `end_text`, `invalid_text`: the default texts; `intro.sw` … the translations;
//! - per question `i` (0-based, in order): `q{i}.key`, `q{i}.type`, `q{i}.text`,
//!   `q{i}.text.{lang}`, `q{i}.required` (a checkbox), `q{i}.min`, `q{i}.max`,
//!   `q{i}.choices` (one option a line: `value | text | synonym, synonym`),
//!   `q{i}.choices.{lang}` (the options' translated texts, one a line, in order),
//!   `q{i}.case_property`, `q{i}.invalid_text`, `q{i}.invalid_text.{lang}`;
//! - `action`: `save` (the default), `add_question`, `remove_{i}` or `languages`: the last
//!   three show the form again changed, without saving.

use std::collections::BTreeMap;

use casecast_core::case::{parse_language_code, FieldError};
use casecast_core::survey::{QuestionType, Survey, Texts, MAX_QUESTIONS};
use casecast_core::template::{DEFAULT_KEY, MAX_LANGUAGES};
use serde_json::{json, Map, Number, Value};

/// Question types, as the form's select names them.
pub const TYPES: [(&str, &str); 5] = [
    ("text", "Text"),
    ("number", "Number"),
    ("date", "Date"),
    ("choice", "Choice"),
    ("yes_no", "Yes / no"),
];

/// Highest question index the form reads (a form with more is refused whole).
const MAX_INDEX: usize = 1000;

/// One question as typed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuestionForm {
    pub key: String,
    pub kind: String,
    /// Texts by language code, `*` the default.
    pub text: BTreeMap<String, String>,
    pub required: bool,
    pub min: String,
    pub max: String,
    pub choices: String,
    /// The options' translated texts by language, one a line.
    pub choice_texts: BTreeMap<String, String>,
    pub case_property: String,
    pub invalid_text: BTreeMap<String, String>,
}

impl QuestionForm {
    /// A new, empty question (required, of type text).
    pub fn blank() -> Self {
        QuestionForm {
            kind: "text".into(),
            required: true,
            ..Default::default()
        }
    }
}

/// The whole builder form as typed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SurveyForm {
    pub csrf: String,
    pub action: String,
    pub name: String,
    /// As typed.
    pub languages_text: String,
    /// The codes read from it (valid ones, in order, without duplicates).
    pub languages: Vec<String>,
    pub intro: BTreeMap<String, String>,
    pub end_text: BTreeMap<String, String>,
    pub invalid_text: BTreeMap<String, String>,
    pub max_attempts: String,
    pub reminders_every: String,
    pub reminders_times: String,
    pub expire_after_minutes: String,
    pub questions: Vec<QuestionForm>,
}

/// Reads `value | text | synonym, synonym` lines.
fn choice_lines(text: &str) -> Vec<(usize, Vec<String>)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| (n, l.splitn(3, '|').map(|p| p.trim().to_string()).collect()))
        .collect()
}

fn texts_of(t: &Option<Texts>) -> BTreeMap<String, String> {
    t.as_ref().map(|t| t.0.clone()).unwrap_or_default()
}

/// The texts map of a form field group: the default and the listed languages' non-empty texts.
fn texts_json(map: &BTreeMap<String, String>, languages: &[String]) -> Option<Value> {
    let default = map.get(DEFAULT_KEY).map(|s| s.trim()).unwrap_or("");
    let mut out = Map::new();
    if !default.is_empty() {
        out.insert(DEFAULT_KEY.into(), Value::String(default.into()));
    }
    for l in languages {
        if let Some(t) = map.get(l).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            out.insert(l.clone(), Value::String(t.into()));
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

impl SurveyForm {
    /// A new survey's form: one blank question.
    pub fn blank() -> Self {
        SurveyForm {
            max_attempts: casecast_core::survey::DEFAULT_MAX_ATTEMPTS.to_string(),
            expire_after_minutes: casecast_core::survey::DEFAULT_EXPIRE_MINUTES.to_string(),
            questions: vec![QuestionForm::blank()],
            ..Default::default()
        }
    }

    /// A stored survey as the form shows it.
    pub fn of(s: &Survey) -> Self {
        let languages = s.languages();
        let questions = s
            .questions
            .iter()
            .map(|q| {
                let choices = q
                    .choices
                    .iter()
                    .map(|c| {
                        let mut line = format!("{} | {}", c.value, c.text.choose(None));
                        if !c.synonyms.is_empty() {
                            line.push_str(" | ");
                            line.push_str(&c.synonyms.join(", "));
                        }
                        line
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                let choice_texts = languages
                    .iter()
                    .map(|l| {
                        let lines = q
                            .choices
                            .iter()
                            .map(|c| c.text.0.get(l).cloned().unwrap_or_default())
                            .collect::<Vec<_>>()
                            .join("\n");
                        (l.clone(), lines)
                    })
                    .filter(|(_, lines)| !lines.trim().is_empty())
                    .collect();
                QuestionForm {
                    key: q.key.clone(),
                    kind: type_name(q.kind).to_string(),
                    text: q.text.0.clone(),
                    required: q.required,
                    min: q.min.as_ref().map(ToString::to_string).unwrap_or_default(),
                    max: q.max.as_ref().map(ToString::to_string).unwrap_or_default(),
                    choices,
                    choice_texts,
                    case_property: q.case_property.clone().unwrap_or_default(),
                    invalid_text: texts_of(&q.invalid_text),
                }
            })
            .collect();
        SurveyForm {
            name: s.name.clone(),
            languages_text: languages.join(" "),
            languages,
            intro: texts_of(&s.intro),
            end_text: texts_of(&s.end_text),
            invalid_text: texts_of(&s.invalid_text),
            max_attempts: s.max_attempts.to_string(),
            reminders_every: s
                .reminders
                .map(|r| r.every_minutes.to_string())
                .unwrap_or_default(),
            reminders_times: s.reminders.map(|r| r.times.to_string()).unwrap_or_default(),
            expire_after_minutes: s.expire_after_minutes.to_string(),
            questions,
            ..Default::default()
        }
    }

    /// Reads a posted form (`application/x-www-form-urlencoded`). Problems with the form
    /// itself (an unreadable language list, too many question groups) come back as errors.
    pub fn parse(body: &[u8]) -> (Self, Vec<FieldError>) {
        let mut f = SurveyForm::default();
        let mut errors = Vec::new();
        let mut questions: BTreeMap<usize, QuestionForm> = BTreeMap::new();
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        // The languages first: translations of other languages are dropped.
        for (k, v) in &pairs {
            if k == "languages" {
                f.languages_text = v.clone();
            }
        }
        for code in f
            .languages_text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|c| !c.is_empty())
        {
            match parse_language_code(code) {
                Ok(c) if c == code => {
                    if !f.languages.iter().any(|l| l.eq_ignore_ascii_case(&c)) {
                        f.languages.push(c);
                    }
                }
                _ => errors.push(FieldError::new(
                    "languages",
                    format!("'{code}' is not a language code (such as en, sw or pt-BR)"),
                )),
            }
        }
        if f.languages.len() > MAX_LANGUAGES {
            errors.push(FieldError::new(
                "languages",
                format!("at most {MAX_LANGUAGES} languages"),
            ));
            f.languages.truncate(MAX_LANGUAGES);
        }
        let lang_ok = |l: &str| l == DEFAULT_KEY || f.languages.iter().any(|x| x == l);
        let mut too_many = false;
        for (k, v) in pairs {
            let (base, lang) = match k.split_once('.') {
                Some((b, rest)) if !b.starts_with('q') => (b.to_string(), Some(rest.to_string())),
                _ => (k.clone(), None),
            };
            let slot = |m: &mut BTreeMap<String, String>, lang: Option<String>, v: String| {
                let l = lang.unwrap_or_else(|| DEFAULT_KEY.to_string());
                if lang_ok(&l) {
                    m.insert(l, v);
                }
            };
            match base.as_str() {
                "csrf" => f.csrf = v,
                "action" => f.action = v,
                "name" => f.name = v,
                "max_attempts" => f.max_attempts = v,
                "reminders_every" => f.reminders_every = v,
                "reminders_times" => f.reminders_times = v,
                "expire_after_minutes" => f.expire_after_minutes = v,
                "intro" => slot(&mut f.intro, lang, v),
                "end_text" => slot(&mut f.end_text, lang, v),
                "invalid_text" => slot(&mut f.invalid_text, lang, v),
                _ => {
                    let Some((i, field)) = k
                        .strip_prefix('q')
                        .and_then(|rest| rest.split_once('.'))
                        .and_then(|(i, field)| Some((i.parse::<usize>().ok()?, field)))
                    else {
                        continue;
                    };
                    if i > MAX_INDEX {
                        too_many = true;
                        continue;
                    }
                    let q = questions.entry(i).or_insert_with(|| QuestionForm {
                        kind: "text".into(),
                        ..Default::default()
                    });
                    let (field, lang) = match field.split_once('.') {
                        Some((a, b)) => (a, Some(b.to_string())),
                        None => (field, None),
                    };
                    match field {
                        "key" => q.key = v,
                        "type" => q.kind = v,
                        "required" => q.required = true,
                        "min" => q.min = v,
                        "max" => q.max = v,
                        "case_property" => q.case_property = v,
                        "text" => slot(&mut q.text, lang, v),
                        "invalid_text" => slot(&mut q.invalid_text, lang, v),
                        "choices" => match lang {
                            None => q.choices = v,
                            Some(l) if lang_ok(&l) => {
                                q.choice_texts.insert(l, v);
                            }
                            Some(_) => {}
                        },
                        _ => {}
                    }
                }
            }
        }
        if too_many {
            errors.push(FieldError::new(
                "questions",
                format!("a survey may have at most {MAX_QUESTIONS} questions"),
            ));
        }
        f.questions = questions.into_values().collect();
        (f, errors)
    }

    /// The survey's JSON body, and the form's own errors (numbers that are not numbers,
    /// option lines that cannot be read); `Survey::parse` checks the rest.
    pub fn to_json(&self) -> (Value, Vec<FieldError>) {
        let mut errors = Vec::new();
        let langs = &self.languages;
        let mut body = Map::new();
        body.insert("name".into(), Value::String(self.name.clone()));
        for (field, map) in [
            ("intro", &self.intro),
            ("end_text", &self.end_text),
            ("invalid_text", &self.invalid_text),
        ] {
            body.insert(field.into(), texts_json(map, langs).unwrap_or(Value::Null));
        }
        let whole = |field: &str, text: &str, errors: &mut Vec<FieldError>| -> Option<u64> {
            let t = text.trim();
            if t.is_empty() {
                return None;
            }
            match t.parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    errors.push(FieldError::new(
                        field,
                        format!("'{t}' is not a whole number"),
                    ));
                    None
                }
            }
        };
        if let Some(n) = whole("max_attempts", &self.max_attempts, &mut errors) {
            body.insert("max_attempts".into(), json!(n.min(u64::from(u32::MAX))));
        }
        if let Some(n) = whole(
            "expire_after_minutes",
            &self.expire_after_minutes,
            &mut errors,
        ) {
            body.insert(
                "expire_after_minutes".into(),
                json!(n.min(u64::from(u32::MAX))),
            );
        }
        let every = whole(
            "reminders.every_minutes",
            &self.reminders_every,
            &mut errors,
        );
        let times = whole("reminders.times", &self.reminders_times, &mut errors);
        let reminders = match (every, times) {
            (Some(e), Some(t)) => {
                json!({"every_minutes": e.min(u64::from(u32::MAX)), "times": t.min(u64::from(u32::MAX))})
            }
            (None, None) => Value::Null,
            (Some(_), None) if self.reminders_times.trim().is_empty() => {
                errors.push(FieldError::new(
                    "reminders.times",
                    "how many reminders? (leave both reminder fields empty for none)",
                ));
                Value::Null
            }
            (None, Some(_)) if self.reminders_every.trim().is_empty() => {
                errors.push(FieldError::new(
                    "reminders.every_minutes",
                    "every how many minutes? (leave both reminder fields empty for none)",
                ));
                Value::Null
            }
            _ => Value::Null,
        };
        body.insert("reminders".into(), reminders);
        let questions: Vec<Value> = self
            .questions
            .iter()
            .enumerate()
            .map(|(i, q)| question_json(i, q, langs, &mut errors))
            .collect();
        body.insert("questions".into(), Value::Array(questions));
        (Value::Object(body), errors)
    }
}

fn question_json(
    i: usize,
    q: &QuestionForm,
    langs: &[String],
    errors: &mut Vec<FieldError>,
) -> Value {
    let at = format!("questions[{i}]");
    let mut out = Map::new();
    out.insert("key".into(), Value::String(q.key.trim().to_string()));
    out.insert("type".into(), Value::String(q.kind.clone()));
    out.insert(
        "text".into(),
        texts_json(&q.text, langs).unwrap_or_else(|| json!({})),
    );
    out.insert("required".into(), Value::Bool(q.required));
    for (name, text) in [("min", &q.min), ("max", &q.max)] {
        let t = text.trim();
        if t.is_empty() {
            continue;
        }
        match t.parse::<Number>() {
            Ok(n) => {
                out.insert(name.into(), Value::Number(n));
            }
            Err(_) => errors.push(FieldError::new(
                format!("{at}.{name}"),
                format!("'{t}' is not a number"),
            )),
        }
    }
    let case_property = q.case_property.trim();
    if !case_property.is_empty() {
        out.insert("case_property".into(), Value::String(case_property.into()));
    }
    if let Some(t) = texts_json(&q.invalid_text, langs) {
        out.insert("invalid_text".into(), t);
    }
    // Options belong to choice questions only: those typed before the type changed are
    // kept in the form but not sent.
    let lines = choice_lines(&q.choices);
    if q.kind == "choice" {
        let mut choices: Vec<Value> = Vec::new();
        for (_, parts) in &lines {
            let value = parts.first().cloned().unwrap_or_default();
            let text = parts.get(1).filter(|t| !t.is_empty()).unwrap_or(&value);
            let synonyms: Vec<Value> = parts
                .get(2)
                .map(|s| {
                    s.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.into()))
                        .collect()
                })
                .unwrap_or_default();
            let mut texts = Map::new();
            texts.insert(DEFAULT_KEY.into(), Value::String(text.clone()));
            choices.push(json!({"value": value, "text": texts, "synonyms": synonyms}));
        }
        for l in langs {
            let Some(block) = q.choice_texts.get(l) else {
                continue;
            };
            let translated: Vec<&str> = block.trim_end().lines().map(str::trim).collect();
            if translated.len() > choices.len() {
                errors.push(FieldError::new(
                    format!("{at}.choices.{l}"),
                    format!(
                        "{} lines for {} options: one line an option, in order",
                        translated.len(),
                        choices.len()
                    ),
                ));
                continue;
            }
            for (c, t) in choices.iter_mut().zip(translated) {
                if !t.is_empty() {
                    if let Some(texts) = c.get_mut("text").and_then(Value::as_object_mut) {
                        texts.insert(l.clone(), Value::String(t.into()));
                    }
                }
            }
        }
        out.insert("choices".into(), Value::Array(choices));
    }
    Value::Object(out)
}

/// The form field that shows an error of `Survey::parse` (or of the form), and the message
/// as shown next to it; `None`: shown above the form only.
pub fn field_of(e: &FieldError) -> Option<(String, String)> {
    let path = e.field.as_str();
    let same = |name: &str| Some((name.to_string(), e.message.clone()));
    match path {
        "name" | "languages" | "max_attempts" | "expire_after_minutes" => return same(path),
        "reminders.every_minutes" => return same("reminders_every"),
        "reminders.times" | "reminders" => return same("reminders_times"),
        _ => {}
    }
    for top in ["intro", "end_text", "invalid_text"] {
        if path == top || path.starts_with(&format!("{top}.")) {
            return same(path);
        }
    }
    let rest = path.strip_prefix("questions[")?;
    let (i, rest) = rest.split_once(']')?;
    let i: usize = i.parse().ok()?;
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    let q = format!("q{i}");
    if let Some(choice) = rest.strip_prefix("choices[") {
        // `choices[k].text.sw` → the translations of language sw; the rest → the options.
        let (k, tail) = choice.split_once(']')?;
        let line = k.parse::<usize>().ok()? + 1;
        if let Some(lang) = tail.strip_prefix(".text.").filter(|l| *l != DEFAULT_KEY) {
            return Some((
                format!("{q}.choices.{lang}"),
                format!("line {line}: {}", e.message),
            ));
        }
        let what = tail.trim_start_matches('.');
        let what = what.split(['.', '[']).next().unwrap_or("");
        return Some((
            format!("{q}.choices"),
            format!("option {line} ({what}): {}", e.message),
        ));
    }
    let name = match rest {
        "" => return Some((format!("{q}.key"), e.message.clone())),
        "type" => format!("{q}.type"),
        // The form's own error about a translation block of the options.
        r if r.starts_with("choices.") => format!("{q}.{r}"),
        r if r.starts_with("text.") && r != "text.*" => format!("{q}.{r}"),
        r if r.starts_with("text") => format!("{q}.text"),
        r if r.starts_with("invalid_text.") && r != "invalid_text.*" => format!("{q}.{r}"),
        r if r.starts_with("invalid_text") => format!("{q}.invalid_text"),
        r => format!("{q}.{}", r.split(['.', '[']).next().unwrap_or(r)),
    };
    Some((name, e.message.clone()))
}

/// Errors by form field name (several may share one), and those no field shows.
pub fn place_errors(errors: &[FieldError]) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let mut by_field: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut elsewhere = Vec::new();
    for e in errors {
        match field_of(e) {
            // `intro.*` is the default text's field, `intro`.
            Some((name, message)) => by_field
                .entry(name.trim_end_matches(".*").to_string())
                .or_default()
                .push(message),
            None => elsewhere.push(e.to_string()),
        }
    }
    (by_field, elsewhere)
}

/// The JSON name of a question type.
pub fn type_name(kind: QuestionType) -> &'static str {
    match kind {
        QuestionType::Text => "text",
        QuestionType::Number => "number",
        QuestionType::Date => "date",
        QuestionType::Choice => "choice",
        QuestionType::YesNo => "yes_no",
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
    fn a_posted_form_becomes_the_survey_body_and_back() {
        let body = encoded(&[
            ("csrf", "t"),
            ("name", "Visit follow-up"),
            ("languages", "sw, fr"),
            ("intro", "Hello"),
            ("intro.sw", "Habari"),
            ("intro.de", "dropped: not a listed language"),
            ("max_attempts", "2"),
            ("reminders_every", "60"),
            ("reminders_times", "2"),
            ("expire_after_minutes", "1440"),
            ("q1.key", "visited"),
            ("q1.type", "choice"),
            ("q1.text", "Were you visited?"),
            ("q1.required", "on"),
            ("q1.choices", "yes | Yes | y, yeah\nno | No\n\n"),
            ("q1.choices.sw", "Ndiyo\nHapana"),
            ("q0.key", "age"),
            ("q0.type", "number"),
            ("q0.text", "Your age?"),
            ("q0.min", "0"),
            ("q0.max", "120.5"),
            ("q0.case_property", "age"),
        ]);
        let (f, errors) = SurveyForm::parse(&body);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(f.languages, vec!["sw", "fr"]);
        let (json, errors) = f.to_json();
        assert!(errors.is_empty(), "{errors:?}");
        let survey = Survey::parse(&json).unwrap();
        assert_eq!(survey.name, "Visit follow-up");
        assert_eq!(survey.intro.as_ref().unwrap().0.len(), 2);
        assert_eq!(survey.questions[0].key, "age");
        assert!(!survey.questions[0].required);
        assert_eq!(
            survey.questions[0].max.as_ref().unwrap().to_string(),
            "120.5"
        );
        let choice = &survey.questions[1];
        assert_eq!(choice.choices.len(), 2);
        assert_eq!(choice.choices[0].synonyms, vec!["y", "yeah"]);
        assert_eq!(choice.choices[1].text.0["sw"], "Hapana");
        assert_eq!(survey.reminders.unwrap().times, 2);
        // And the stored survey shows as the same form, which reads back as the same survey.
        let again = SurveyForm::of(&survey);
        let (json2, errors) = again.to_json();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(Survey::parse(&json2).unwrap(), survey);
    }

    #[test]
    fn form_errors_name_their_fields() {
        let body = encoded(&[
            ("languages", "sw, not a code!"),
            ("max_attempts", "three"),
            ("reminders_every", "30"),
            ("q0.key", "k"),
            ("q0.type", "choice"),
            ("q0.text", "Pick"),
            ("q0.choices", "a\nb"),
            ("q0.choices.sw", "A\nB\nC"),
            ("q0.min", "x"),
        ]);
        let (f, mut errors) = SurveyForm::parse(&body);
        let (_, more) = f.to_json();
        errors.extend(more);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"languages"), "{fields:?}");
        assert!(fields.contains(&"max_attempts"), "{fields:?}");
        assert!(fields.contains(&"reminders.times"), "{fields:?}");
        assert!(fields.contains(&"questions[0].choices.sw"), "{fields:?}");
        assert!(fields.contains(&"questions[0].min"), "{fields:?}");
    }

    #[test]
    fn parse_paths_map_to_the_inputs_that_show_them() {
        let at = |path: &str| field_of(&FieldError::new(path, "why"));
        assert_eq!(at("name").unwrap().0, "name");
        assert_eq!(at("intro.sw").unwrap().0, "intro.sw");
        assert_eq!(at("reminders.every_minutes").unwrap().0, "reminders_every");
        assert_eq!(at("questions[2].key").unwrap().0, "q2.key");
        assert_eq!(at("questions[2].text.*").unwrap().0, "q2.text");
        assert_eq!(at("questions[2].text.sw").unwrap().0, "q2.text.sw");
        let (f, m) = at("questions[2].choices[0].value").unwrap();
        assert_eq!(
            (f.as_str(), m.as_str()),
            ("q2.choices", "option 1 (value): why")
        );
        let (f, m) = at("questions[2].choices[1].text.sw").unwrap();
        assert_eq!((f.as_str(), m.as_str()), ("q2.choices.sw", "line 2: why"));
        assert_eq!(
            at("questions[0].choices[3].synonyms[1]").unwrap().0,
            "q0.choices"
        );
        assert_eq!(
            at("questions[1].case_property").unwrap().0,
            "q1.case_property"
        );
        assert_eq!(at("questions").map(|x| x.0), None);
        assert_eq!(at("body").map(|x| x.0), None);
        let (by_field, _) = place_errors(&[FieldError::new("intro.*", "empty")]);
        assert!(by_field.contains_key("intro"));
    }
}
