//! SMS surveys (issue 13), the pure parts: the survey as the user writes it and its checks
//! ([`Survey::parse`]), how a reply is read per question type ([`answer`]), and the session as a
//! step function from (state, event) to (state, actions) ([`session`]). No I/O: the engine
//! stores the state, sends the texts and keeps the timers.
//!
//! Rules and decisions:
//! - Texts (`intro`, `end_text`, `invalid_text`, a question's `text` and `invalid_text`, a
//!   choice's `text`) are maps by language code with `*` the default, as broadcast content; a
//!   plain string is read as `{"*": string}`. A language is chosen per text as broadcasts
//!   choose: the exact code, else its primary subtag (`pt-BR` → `pt`), else `*`. Survey texts
//!   are plain text: `{case.…}` placeholders are not rendered (a brace is sent as written).
//! - A question may carry its own `invalid_text` (an addition to the CONTRACT's question shape).
//! - Every message a session can send, in every language the survey has, fits the broadcast
//!   limit ([`crate::template::MAX_CHARS`] characters): the intro with the first question, a
//!   question with its numbered options, the invalid text with the question, the end text.
//! - Question keys are property names (see [`crate::case::parse_property_name`]), unique
//!   ignoring case, and not a column of the responses export (`status`, `started_at`,
//!   `completed_at`); at most [`MAX_QUESTIONS`] questions; a case property is set by one
//!   question at most.
//! - `min`/`max` bound a `number` answer, and the length in characters of a `text` answer
//!   (whole numbers); other types refuse them.
//! - A choice's value, texts and synonyms each choose one option only (not another's number);
//!   on an optional question none of them may be `skip`. Names and values are stored trimmed.
//! - `required` defaults to `true`; `max_attempts` (default 3, 1..=10) invalid replies to one
//!   question cancel the session.
//! - Reminders: `every_minutes` 1..=10080, `times` 1..=10, and `every_minutes` shorter than
//!   `expire_after_minutes` (default 1440, 1..=43200), since expiry counts from the last message
//!   the session sent (a reminder included).

pub mod answer;
pub mod session;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::case::{parse_language_code, parse_property_name, FieldError, MAX_PROPERTY_VALUE};
use crate::template::{DEFAULT_KEY, MAX_CHARS, MAX_LANGUAGES};

/// Most questions one survey may have.
pub const MAX_QUESTIONS: usize = 50;
/// Most options one choice question may have.
pub const MAX_CHOICES: usize = 20;
/// Most synonyms one option may have.
pub const MAX_SYNONYMS: usize = 10;
/// Longest choice value or synonym, in characters.
pub const MAX_VALUE_CHARS: usize = 64;
/// Longest survey name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Most invalid replies a survey may allow per question.
pub const MAX_ATTEMPTS: u32 = 10;
/// Longest interval between reminders: a week.
pub const MAX_REMINDER_MINUTES: u32 = 7 * 24 * 60;
/// Most reminders per question.
pub const MAX_REMINDERS: u32 = 10;
/// Longest silence before a session expires: 30 days.
pub const MAX_EXPIRE_MINUTES: u32 = 30 * 24 * 60;
/// Default `max_attempts`.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Default `expire_after_minutes`: a day.
pub const DEFAULT_EXPIRE_MINUTES: u32 = 24 * 60;
/// Names of the responses export's own columns, which a question key may not take.
const EXPORT_COLUMNS: [&str; 3] = ["status", "started_at", "completed_at"];

/// A text by language code; `*` is the default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Texts(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Texts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            One(String),
            Many(BTreeMap<String, String>),
        }
        match Shape::deserialize(d).map_err(|_| {
            serde::de::Error::custom("must be text or {\"*\": \"text\", \"<language>\": \"text\"}")
        })? {
            Shape::One(s) => Ok(Texts::from_default(&s)),
            Shape::Many(m) => Ok(Texts(m)),
        }
    }
}

impl Texts {
    /// Only a default text.
    pub fn from_default(text: &str) -> Texts {
        Texts(BTreeMap::from([(
            DEFAULT_KEY.to_string(),
            text.to_string(),
        )]))
    }

    /// The text for a language code: the exact code, else its primary subtag, else `*`
    /// (codes compare ignoring case); empty if there is no default (an unchecked survey).
    pub fn choose(&self, language: Option<&str>) -> &str {
        let find = |code: &str| {
            self.0
                .iter()
                .find(|(k, _)| k.as_str() != DEFAULT_KEY && k.eq_ignore_ascii_case(code))
                .map(|(_, t)| t.as_str())
        };
        language
            .map(str::trim)
            .and_then(|code| find(code).or_else(|| code.split_once('-').and_then(|(p, _)| find(p))))
            .or_else(|| self.0.get(DEFAULT_KEY).map(String::as_str))
            .unwrap_or("")
    }

    /// Every text, trimmed.
    fn values(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(|v| v.trim())
    }
}

/// The kind of answer a question takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionType {
    Text,
    Number,
    Date,
    Choice,
    YesNo,
}

/// One option of a `choice` question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    /// What is stored when it is chosen.
    pub value: String,
    /// What the respondent reads after its number.
    pub text: Texts,
    /// Other replies that choose it.
    #[serde(default)]
    pub synonyms: Vec<String>,
}

/// Reminders re-send the current question when no reply came.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reminders {
    pub every_minutes: u32,
    pub times: u32,
}

fn yes() -> bool {
    true
}

/// One question of a survey.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// The answer's name: a column of the export and a key of the session's answers.
    pub key: String,
    #[serde(rename = "type")]
    pub kind: QuestionType,
    pub text: Texts,
    /// An optional question (`false`) may be answered "skip".
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default)]
    pub min: Option<serde_json::Number>,
    #[serde(default)]
    pub max: Option<serde_json::Number>,
    #[serde(default)]
    pub choices: Vec<Choice>,
    /// The case property that takes the accepted answer.
    #[serde(default)]
    pub case_property: Option<String>,
    /// Sent with the question again after an invalid reply; else the survey's, else a default.
    #[serde(default)]
    pub invalid_text: Option<Texts>,
}

/// A survey as written: what `POST /surveys` takes (its `id` and `created_at` aside).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Survey {
    pub name: String,
    pub questions: Vec<Question>,
    #[serde(default)]
    pub intro: Option<Texts>,
    #[serde(default)]
    pub end_text: Option<Texts>,
    #[serde(default)]
    pub invalid_text: Option<Texts>,
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    #[serde(default)]
    pub reminders: Option<Reminders>,
    #[serde(default = "default_expiry")]
    pub expire_after_minutes: u32,
}

fn default_attempts() -> u32 {
    DEFAULT_MAX_ATTEMPTS
}

fn default_expiry() -> u32 {
    DEFAULT_EXPIRE_MINUTES
}

impl Survey {
    /// Reads and checks a survey body; every problem is returned with its field path
    /// (`questions[2].choices[0].value`). `id` and `created_at` are ignored.
    pub fn parse(body: &Value) -> Result<Survey, Vec<FieldError>> {
        let mut body = body.clone();
        let Some(obj) = body.as_object_mut() else {
            return Err(vec![FieldError::new("body", "send a JSON object")]);
        };
        obj.remove("id");
        obj.remove("created_at");
        let survey: Survey = serde_path_to_error::deserialize(&body).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "body".to_string()
            } else {
                path
            };
            vec![FieldError::new(field, e.into_inner().to_string())]
        })?;
        let mut survey = survey;
        let problems = survey.check();
        if problems.is_empty() {
            // Stored as they are read back: without surrounding spaces.
            survey.name = survey.name.trim().to_string();
            for q in &mut survey.questions {
                for c in &mut q.choices {
                    c.value = c.value.trim().to_string();
                }
            }
            Ok(survey)
        } else {
            Err(problems)
        }
    }

    /// Every rule the survey breaks, each with its field path; empty when it is valid.
    pub fn check(&self) -> Vec<FieldError> {
        let mut p = Vec::new();
        let name = self.name.trim();
        if name.is_empty() {
            p.push(FieldError::new("name", "give the survey a name"));
        } else if name.chars().count() > MAX_NAME_CHARS {
            p.push(FieldError::new(
                "name",
                format!("may have at most {MAX_NAME_CHARS} characters"),
            ));
        } else if name.chars().any(char::is_control) {
            p.push(FieldError::new(
                "name",
                "must not contain control characters",
            ));
        }
        for (field, texts) in [
            ("intro", &self.intro),
            ("end_text", &self.end_text),
            ("invalid_text", &self.invalid_text),
        ] {
            if let Some(t) = texts {
                check_texts(field, t, &mut p);
            }
        }
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            p.push(FieldError::new(
                "max_attempts",
                format!("must be from 1 to {MAX_ATTEMPTS}"),
            ));
        }
        if !(1..=MAX_EXPIRE_MINUTES).contains(&self.expire_after_minutes) {
            p.push(FieldError::new(
                "expire_after_minutes",
                format!("must be from 1 to {MAX_EXPIRE_MINUTES} (30 days)"),
            ));
        }
        if let Some(r) = self.reminders {
            if !(1..=MAX_REMINDER_MINUTES).contains(&r.every_minutes) {
                p.push(FieldError::new(
                    "reminders.every_minutes",
                    format!("must be from 1 to {MAX_REMINDER_MINUTES} (a week)"),
                ));
            } else if r.every_minutes >= self.expire_after_minutes {
                p.push(FieldError::new(
                    "reminders.every_minutes",
                    format!(
                        "must be shorter than expire_after_minutes ({}): the session would \
                         expire before the first reminder",
                        self.expire_after_minutes
                    ),
                ));
            }
            if !(1..=MAX_REMINDERS).contains(&r.times) {
                p.push(FieldError::new(
                    "reminders.times",
                    format!("must be from 1 to {MAX_REMINDERS} (or set reminders to null)"),
                ));
            }
        }
        if self.questions.is_empty() {
            p.push(FieldError::new("questions", "add at least one question"));
        } else if self.questions.len() > MAX_QUESTIONS {
            p.push(FieldError::new(
                "questions",
                format!(
                    "{} questions; a survey may have at most {MAX_QUESTIONS}",
                    self.questions.len()
                ),
            ));
        }
        let mut keys: Vec<(String, usize)> = Vec::new();
        let mut properties: Vec<(String, usize)> = Vec::new();
        for (i, q) in self.questions.iter().enumerate() {
            let at = format!("questions[{i}]");
            match parse_property_name(&q.key) {
                Ok(k)
                    if k == q.key && !EXPORT_COLUMNS.contains(&k.to_ascii_lowercase().as_str()) =>
                {
                    if let Some((_, j)) = keys.iter().find(|(o, _)| o.eq_ignore_ascii_case(&k)) {
                        p.push(FieldError::new(
                            format!("{at}.key"),
                            format!("'{k}' is also the key of questions[{j}] (keys ignore case)"),
                        ));
                    } else {
                        keys.push((k, i));
                    }
                }
                Ok(_) => p.push(FieldError::new(
                    format!("{at}.key"),
                    "is a column of the responses export (status, started_at, completed_at) \
                     or has surrounding spaces",
                )),
                Err(e) => p.push(FieldError::new(format!("{at}.key"), e.message)),
            }
            if let Some(prop) = &q.case_property {
                match parse_property_name(prop) {
                    Ok(v) if &v == prop => {
                        if let Some((_, j)) = properties.iter().find(|(o, _)| o == prop) {
                            p.push(FieldError::new(
                                format!("{at}.case_property"),
                                format!("'{prop}' is also set by questions[{j}]"),
                            ));
                        } else {
                            properties.push((v, i));
                        }
                    }
                    Ok(_) => p.push(FieldError::new(
                        format!("{at}.case_property"),
                        "must not have surrounding spaces",
                    )),
                    Err(e) => p.push(FieldError::new(format!("{at}.case_property"), e.message)),
                }
            }
            check_texts(&format!("{at}.text"), &q.text, &mut p);
            if let Some(t) = &q.invalid_text {
                check_texts(&format!("{at}.invalid_text"), t, &mut p);
            }
            check_bounds(&at, q, &mut p);
            check_choices(&at, q, &mut p);
        }
        if p.is_empty() {
            self.check_message_lengths(&mut p);
        }
        p
    }

    /// Every language code the survey's texts use, besides `*`.
    pub fn languages(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        let mut add = |t: &Texts| {
            for k in t.0.keys() {
                if k != DEFAULT_KEY && !all.iter().any(|a| a.eq_ignore_ascii_case(k)) {
                    all.push(k.clone());
                }
            }
        };
        for t in [&self.intro, &self.end_text, &self.invalid_text]
            .into_iter()
            .flatten()
        {
            add(t);
        }
        for q in &self.questions {
            add(&q.text);
            if let Some(t) = &q.invalid_text {
                add(t);
            }
            for c in &q.choices {
                add(&c.text);
            }
        }
        all.sort();
        all
    }

    /// The first message a session sends in `language`: the intro (if any) and the first
    /// question (what a broadcast's preview counts segments of).
    pub fn first_message(&self, language: Option<&str>) -> String {
        let question = self
            .questions
            .first()
            .map(|q| q.message(language))
            .unwrap_or_default();
        join(self.intro.as_ref().map(|t| t.choose(language)), &question)
    }

    /// The text sent after an invalid reply to `question`, with the question again.
    pub fn invalid_message(&self, question: &Question, language: Option<&str>) -> String {
        let invalid = match question
            .invalid_text
            .as_ref()
            .or(self.invalid_text.as_ref())
        {
            Some(t) => t.choose(language).trim().to_string(),
            None => answer::expected(question),
        };
        join(Some(&invalid), &question.message(language))
    }

    /// Every message a session can send fits one broadcast's limit, in every language; one
    /// error per message, naming the first language (`*` the default) where it does not.
    fn check_message_lengths(&self, p: &mut Vec<FieldError>) {
        let mut languages: Vec<Option<String>> = vec![None];
        languages.extend(self.languages().into_iter().map(Some));
        let mut check = |field: String, what: &str, message: &dyn Fn(Option<&str>) -> String| {
            for language in &languages {
                let n = message(language.as_deref()).chars().count();
                if n > MAX_CHARS {
                    let label = language.as_deref().unwrap_or(DEFAULT_KEY);
                    p.push(FieldError::new(
                        field,
                        format!(
                            "in {label}, {what} is {n} characters; a message may have at most \
                             {MAX_CHARS}"
                        ),
                    ));
                    return;
                }
            }
        };
        check("intro".into(), "the intro with the first question", &|l| {
            self.first_message(l)
        });
        for (i, q) in self.questions.iter().enumerate() {
            check(
                format!("questions[{i}].text"),
                "the question with its options",
                &|l| q.message(l),
            );
            check(
                format!("questions[{i}].invalid_text"),
                "the invalid text with the question",
                &|l| self.invalid_message(q, l),
            );
        }
    }
}

impl Question {
    /// The question as sent in `language`: its text, and for a choice its numbered options
    /// on the next line ("1. Yes 2. No 3. Not sure").
    pub fn message(&self, language: Option<&str>) -> String {
        let text = self.text.choose(language).trim();
        if self.kind != QuestionType::Choice {
            return text.to_string();
        }
        let options: Vec<String> = self
            .choices
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{}. {}", i + 1, c.text.choose(language).trim()))
            .collect();
        format!("{text}\n{}", options.join(" "))
    }
}

/// Two parts of one message on separate lines; the first may be absent.
fn join(first: Option<&str>, second: &str) -> String {
    match first.map(str::trim).filter(|s| !s.is_empty()) {
        Some(f) => format!("{f}\n{second}"),
        None => second.to_string(),
    }
}

/// Checks a text map: a default, language codes, no duplicates, not empty, not too long.
fn check_texts(field: &str, texts: &Texts, p: &mut Vec<FieldError>) {
    if !texts.0.contains_key(DEFAULT_KEY) {
        p.push(FieldError::new(
            field,
            "needs a default text (`*`), sent to cases whose language has none",
        ));
    }
    let translations = texts
        .0
        .len()
        .saturating_sub(usize::from(texts.0.contains_key(DEFAULT_KEY)));
    if translations > MAX_LANGUAGES {
        p.push(FieldError::new(
            field,
            format!("{translations} translations; a text may have at most {MAX_LANGUAGES}"),
        ));
    }
    let mut seen: Vec<&str> = Vec::new();
    for (language, text) in &texts.0 {
        let at = format!("{field}.{language}");
        if language != DEFAULT_KEY {
            if parse_language_code(language).ok().as_deref() != Some(language.as_str()) {
                p.push(FieldError::new(
                    &at,
                    format!("'{language}' is not a language code (such as en, sw or pt-BR)"),
                ));
            } else if seen.iter().any(|s| s.eq_ignore_ascii_case(language)) {
                p.push(FieldError::new(
                    &at,
                    "is given twice (language codes ignore case)",
                ));
            }
            seen.push(language);
        }
        let t = text.trim();
        if t.is_empty() {
            p.push(FieldError::new(&at, "empty"));
        } else if t.chars().count() > MAX_CHARS {
            p.push(FieldError::new(
                &at,
                format!(
                    "is {} characters; a message may have at most {MAX_CHARS}",
                    t.chars().count()
                ),
            ));
        } else if t.chars().any(|c| c.is_control() && c != '\n' && c != '\r') {
            p.push(FieldError::new(&at, "must not contain control characters"));
        }
    }
}

/// `min`/`max`: numbers for `number`, whole lengths for `text`, absent otherwise.
fn check_bounds(at: &str, q: &Question, p: &mut Vec<FieldError>) {
    let bounds = [("min", &q.min), ("max", &q.max)];
    match q.kind {
        QuestionType::Number => {}
        QuestionType::Text => {
            for (name, b) in bounds {
                if let Some(n) = b {
                    let ok = n
                        .as_u64()
                        .is_some_and(|v| (1..=MAX_PROPERTY_VALUE as u64).contains(&v));
                    if !ok {
                        p.push(FieldError::new(
                            format!("{at}.{name}"),
                            format!("a text's length must be a whole number from 1 to {MAX_PROPERTY_VALUE}"),
                        ));
                    }
                }
            }
        }
        _ => {
            for (name, b) in bounds {
                if b.is_some() {
                    p.push(FieldError::new(
                        format!("{at}.{name}"),
                        "only number and text questions take min and max",
                    ));
                }
            }
        }
    }
    if let (Some(min), Some(max)) = (&q.min, &q.max) {
        if min.as_f64() > max.as_f64() {
            p.push(FieldError::new(
                format!("{at}.min"),
                format!("{min} is more than max ({max})"),
            ));
        }
    }
}

/// Options for `choice` only, at least 2; every reply that chooses one chooses only it.
fn check_choices(at: &str, q: &Question, p: &mut Vec<FieldError>) {
    if q.kind != QuestionType::Choice {
        if !q.choices.is_empty() {
            p.push(FieldError::new(
                format!("{at}.choices"),
                "only choice questions take choices",
            ));
        }
        return;
    }
    if q.choices.len() < 2 {
        p.push(FieldError::new(
            format!("{at}.choices"),
            "give at least 2 choices",
        ));
    } else if q.choices.len() > MAX_CHOICES {
        p.push(FieldError::new(
            format!("{at}.choices"),
            format!(
                "{} choices; a question may have at most {MAX_CHOICES}",
                q.choices.len()
            ),
        ));
    }
    // Every reply that selects an option, normalised, with the option it selects; the
    // numbers come first so a value or synonym cannot take another option's number.
    let mut taken: Vec<(String, usize)> = (0..q.choices.len())
        .map(|i| ((i + 1).to_string(), i))
        .collect();
    // "skip" skips an optional question, so no option of one may be chosen by it.
    if !q.required {
        taken.push(("skip".to_string(), usize::MAX));
    }
    let mut claim = |field: String, token: &str, i: usize, p: &mut Vec<FieldError>| {
        let n = answer::normalise(token);
        if n.is_empty() {
            return;
        }
        match taken.iter().find(|(t, _)| *t == n) {
            Some((_, j)) if *j == usize::MAX => p.push(FieldError::new(
                field,
                "'skip' skips this optional question, so it cannot choose an option",
            )),
            Some((_, j)) if *j != i => p.push(FieldError::new(
                field,
                format!(
                    "'{token}' would also choose option {} ({})",
                    j + 1,
                    q.choices[*j].value
                ),
            )),
            Some(_) => {}
            None => taken.push((n, i)),
        }
    };
    for (i, c) in q.choices.iter().enumerate() {
        let cat = format!("{at}.choices[{i}]");
        let v = c.value.trim();
        if v.is_empty() || answer::normalise(v).is_empty() {
            p.push(FieldError::new(format!("{cat}.value"), "empty"));
        } else if v.chars().count() > MAX_VALUE_CHARS || v.chars().any(char::is_control) {
            p.push(FieldError::new(
                format!("{cat}.value"),
                format!("must be 1 to {MAX_VALUE_CHARS} characters, without control characters"),
            ));
        } else {
            claim(format!("{cat}.value"), v, i, p);
        }
        check_texts(&format!("{cat}.text"), &c.text, p);
        for t in c.text.values() {
            claim(format!("{cat}.text"), t, i, p);
        }
        if c.synonyms.len() > MAX_SYNONYMS {
            p.push(FieldError::new(
                format!("{cat}.synonyms"),
                format!("an option may have at most {MAX_SYNONYMS} synonyms"),
            ));
        }
        for (k, s) in c.synonyms.iter().enumerate() {
            let sat = format!("{cat}.synonyms[{k}]");
            if answer::normalise(s).is_empty() {
                p.push(FieldError::new(sat, "empty"));
            } else if s.chars().count() > MAX_VALUE_CHARS {
                p.push(FieldError::new(
                    sat,
                    format!("may have at most {MAX_VALUE_CHARS} characters"),
                ));
            } else {
                claim(sat, s, i, p);
            }
        }
    }
}

#[cfg(test)]
mod tests;
