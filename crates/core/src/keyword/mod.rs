//! Keywords (issue 14), the pure parts: a keyword as the user writes it and its checks
//! ([`Keyword::parse`]), how an inbound message selects a keyword and fills its fields
//! ([`match_message`]), how a reply is rendered ([`reply_text`]), and the per-number reply limit
//! ([`ReplyLimit`]). No I/O: the engine runs the actions, the store keeps the keywords.
//!
//! The JSON shape is the CONTRACT's (*Keywords*): `{keyword, fields, actions,
//! override_open_survey, unknown_sender, unknown_reply, case_type}` (the API adds `id`), with
//! actions `{"type": "reply", "text": {…}}`, `{"type": "start_survey", "survey_id"}`,
//! `{"type": "add_to_group" | "remove_from_group", "case_group_id"}` and
//! `{"type": "set_properties", "dates": [field]}` (`dates` is optional).
//!
//! Rules and decisions:
//! - `keyword` is one word of 1 to [`MAX_KEYWORD_CHARS`] letters and digits of any script
//!   (combining marks are allowed after the first character, as Devanagari or Thai words need
//!   them), stored as typed and compared ignoring case ([`fold`]; no Unicode normalisation,
//!   as stop words). It may not be one of the project's stop or start words (the caller passes
//!   them; the router checks those first anyway). Uniqueness in the project is the store's
//!   check, on [`fold`] of the word.
//! - `fields` are at most [`MAX_FIELDS`] case property names (see
//!   [`crate::case::parse_property_name`]), unique ignoring case; `name` is the one standard
//!   field allowed: it sets the case's name (under `create_case` and `set_properties`) and is
//!   checked as a case name. A list or one string of names separated by spaces or commas.
//! - A field is a date when its name ends with `_date` (ASCII case ignored) or a
//!   `set_properties` action lists it in `dates`; a date value must parse as a survey date
//!   does ([`crate::survey::answer::read_date`]) and is stored as `YYYY-MM-DD`. Other values
//!   are checked as property values (at most [`crate::case::MAX_PROPERTY_VALUE`] characters).
//! - `actions`: 1 to [`MAX_ACTIONS`], run in order. A reply's texts are by language as a
//!   broadcast's (a plain string is the default text) and may use `{case.…}` and
//!   `{field.NAME}` for a NAME of `fields`. One `start_survey` and one `set_properties` at most;
//!   a group is added to or removed from by one action at most. `set_properties` needs a field.
//! - `unknown_sender` (default `ignore`) says what happens for a number with no case:
//!   `ignore`, `reply` with `unknown_reply` (required then; only `{field.NAME}` placeholders,
//!   since there is no case), or `create_case`: a case of `case_type` (default
//!   [`DEFAULT_CASE_TYPE`]) with the sender's number, the fields as properties and `name` as its
//!   name (the number when there is no `name` field: a case needs a name), then the actions
//!   run for it ([`Keyword::new_case`]). `unknown_reply` and `case_type` are checked and kept
//!   under the other choices too, so a form that switches between them loses nothing.
//! - `override_open_survey` (default `false`): the keyword is acted on even while the sender
//!   has an active survey session (the engine cancels the session first).

mod limit;
mod matching;

#[cfg(test)]
mod tests;

pub use limit::{LimitError, ReplyLimit};
pub use matching::{first_word, match_message, reply_text, reply_text_with, Match, Values};

use serde::Serialize;
use serde_json::{Map, Value};
use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

use crate::case::FieldError;
use crate::case::{parse_case_type, parse_language_code, parse_property_name, CaseChanges};
use crate::phone::PhoneNumber;
use crate::template::{Content, ContentError, Problem, TemplateError, DEFAULT_KEY};

/// Longest keyword, in characters (as stop and start words).
pub const MAX_KEYWORD_CHARS: usize = 20;
/// Most fields one keyword may have.
pub const MAX_FIELDS: usize = 20;
/// Most actions one keyword may have.
pub const MAX_ACTIONS: usize = 10;
/// The type of a case made for an unknown sender when the keyword names none.
pub const DEFAULT_CASE_TYPE: &str = "contact";
/// The field that sets the case's name.
pub const NAME_FIELD: &str = "name";

/// The keys of a keyword body; `id`, `created_at` and `updated_at` are the API's and ignored
/// (a keyword read from the API can be sent back whole).
const KEYS: [&str; 10] = [
    "id",
    "created_at",
    "updated_at",
    "keyword",
    "fields",
    "actions",
    "override_open_survey",
    "unknown_sender",
    "unknown_reply",
    "case_type",
];

/// What happens when a number with no case sends the keyword.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownSender {
    /// Nothing but the log.
    #[default]
    Ignore,
    /// The keyword's `unknown_reply` is sent; no action runs.
    Reply,
    /// A case is made for the number (see [`Keyword::new_case`]) and the actions run for it.
    CreateCase,
}

impl UnknownSender {
    /// `ignore`, `reply` or `create_case`.
    pub fn as_str(self) -> &'static str {
        match self {
            UnknownSender::Ignore => "ignore",
            UnknownSender::Reply => "reply",
            UnknownSender::CreateCase => "create_case",
        }
    }
}

/// One thing a keyword does, in the CONTRACT's shape (`{"type": …, …}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// Sends a text in the case's language ([`reply_text`]).
    Reply { text: Content },
    /// Starts a survey for the sender's case.
    StartSurvey { survey_id: i64 },
    /// Adds the sender's case to a plain case group.
    AddToGroup { case_group_id: i64 },
    /// Removes the sender's case from a plain case group.
    RemoveFromGroup { case_group_id: i64 },
    /// The fields become properties of the sender's case (`name` its name; see
    /// [`Values::case_changes`]); `dates` are fields that must be dates besides `*_date` ones.
    SetProperties { dates: Vec<String> },
}

impl Action {
    /// The action's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Reply { .. } => "reply",
            Action::StartSurvey { .. } => "start_survey",
            Action::AddToGroup { .. } => "add_to_group",
            Action::RemoveFromGroup { .. } => "remove_from_group",
            Action::SetProperties { .. } => "set_properties",
        }
    }
}

/// A checked keyword: what `POST /keywords` takes (its `id` aside) and what the store keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Keyword {
    /// The word as typed; compared ignoring case ([`fold`]).
    pub keyword: String,
    /// Names of the words after the keyword, in order; the last takes the rest of the text.
    pub fields: Vec<String>,
    pub actions: Vec<Action>,
    pub override_open_survey: bool,
    pub unknown_sender: UnknownSender,
    /// Sent to a number with no case under [`UnknownSender::Reply`].
    pub unknown_reply: Option<Content>,
    /// The type of a case made under [`UnknownSender::CreateCase`].
    pub case_type: String,
}

impl Keyword {
    /// Reads and checks a keyword body; every problem is returned with its field path
    /// (`keyword`, `fields[2]`, `actions[1].survey_id`, `actions[0].text.sw`). `reserved` are
    /// the project's stop and start words, which a keyword may not be. `id`, `created_at` and
    /// `updated_at` are ignored.
    pub fn parse<S: AsRef<str>>(body: &Value, reserved: &[S]) -> Result<Keyword, Vec<FieldError>> {
        let Some(obj) = body.as_object() else {
            return Err(vec![FieldError::new("body", "send a JSON object")]);
        };
        let mut p = Vec::new();
        for key in obj.keys() {
            if !KEYS.contains(&key.as_str()) {
                p.push(FieldError::new(key, "is not a field of a keyword"));
            }
        }
        let keyword = parse_word(obj.get("keyword"), reserved, &mut p);
        let errors_before = p.len();
        let fields = parse_fields(obj.get("fields"), &mut p);
        // With a wrong field list, what refers to fields is not judged: the list is fixed first.
        let fields = Fields {
            names: fields,
            ok: p.len() == errors_before,
        };
        let override_open_survey = match obj.get("override_open_survey") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                p.push(FieldError::new(
                    "override_open_survey",
                    "must be true or false",
                ));
                false
            }
        };
        let unknown_sender = match obj.get("unknown_sender") {
            None | Some(Value::Null) => UnknownSender::Ignore,
            Some(Value::String(s)) if s.trim() == "ignore" => UnknownSender::Ignore,
            Some(Value::String(s)) if s.trim() == "reply" => UnknownSender::Reply,
            Some(Value::String(s)) if s.trim() == "create_case" => UnknownSender::CreateCase,
            Some(_) => {
                p.push(FieldError::new(
                    "unknown_sender",
                    "must be ignore, reply or create_case",
                ));
                UnknownSender::Ignore
            }
        };
        // A blank text is no text: a form sends one when the reply is not used.
        let unknown_reply = match obj.get("unknown_reply") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(v) => parse_texts("unknown_reply", v, &fields, &mut p),
        };
        if let Some(content) = &unknown_reply {
            for (language, template) in content.templates() {
                if let Some(placeholder) = template.placeholders().first() {
                    p.push(FieldError::new(
                        format!("unknown_reply.{language}"),
                        format!(
                            "goes to a number with no case, so {placeholder} would be empty: \
                             use only {{field.…}} placeholders here"
                        ),
                    ));
                }
            }
        }
        let reply_given = match obj.get("unknown_reply") {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(_) => true,
        };
        if unknown_sender == UnknownSender::Reply && !reply_given {
            p.push(FieldError::new(
                "unknown_reply",
                "write the reply sent to a number with no case (unknown_sender is reply)",
            ));
        }
        let case_type = match obj.get("case_type") {
            None | Some(Value::Null) => DEFAULT_CASE_TYPE.to_string(),
            Some(Value::String(s)) if s.trim().is_empty() => DEFAULT_CASE_TYPE.to_string(),
            Some(Value::String(s)) => match parse_case_type(s) {
                Ok(t) => t,
                Err(e) => {
                    p.push(FieldError::new("case_type", e.message));
                    String::new()
                }
            },
            Some(_) => {
                p.push(FieldError::new("case_type", "must be text"));
                String::new()
            }
        };
        let actions = parse_actions(obj.get("actions"), &fields, &mut p);
        if p.is_empty() {
            Ok(Keyword {
                keyword: keyword.unwrap_or_default(),
                fields: fields.names,
                actions,
                override_open_survey,
                unknown_sender,
                unknown_reply,
                case_type,
            })
        } else {
            Err(p)
        }
    }

    /// Reads a keyword as stored (what [`Keyword::to_json`] wrote): checked as when it was
    /// saved, except against stop and start words, which may have changed since (the router
    /// checks those first, so such a keyword is never reached by them).
    pub fn from_stored(value: &Value) -> Result<Keyword, Vec<FieldError>> {
        Keyword::parse(value, &[] as &[&str])
    }

    /// The CONTRACT's JSON shape, without `id`.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a keyword serializes to JSON")
    }

    /// The word as compared: [`fold`] of `keyword`, what the store keeps unique per project.
    pub fn key(&self) -> String {
        fold(&self.keyword)
    }

    /// Whether `field` (one of `fields`) must be a date: its name ends with `_date`, or a
    /// `set_properties` action lists it in `dates`.
    pub fn is_date_field(&self, field: &str) -> bool {
        is_date_name(field)
            || self.actions.iter().any(|a| match a {
                Action::SetProperties { dates } => dates.iter().any(|d| d == field),
                _ => false,
            })
    }

    /// How the keyword is sent, for replies: `REG <name> <birth date>` (field names with
    /// `_`, `-` and `.` read as spaces).
    pub fn usage(&self) -> String {
        let mut s = self.keyword.clone();
        for f in &self.fields {
            s.push_str(" <");
            s.push_str(&humanise(f));
            s.push('>');
        }
        s
    }

    /// The case made for a number with no case under [`UnknownSender::CreateCase`]: the
    /// keyword's `case_type`, the number, the fields as properties, the `name` field as its
    /// name, else the number (a case needs a name). Checked by the caller as any new case
    /// ([`CaseChanges::create`], [`CaseChanges::check_result`]).
    pub fn new_case(&self, values: &Values, phone: &PhoneNumber) -> CaseChanges {
        let mut changes = values.case_changes();
        changes.case_type = Some(self.case_type.clone());
        changes.phone_number = Some(Some(phone.clone()));
        if changes.name.is_none() {
            changes.name = Some(phone.as_str().to_string());
        }
        changes
    }

    /// Whether every action means the same for each case of a number, so that a number shared
    /// by several live cases need not be refused: only group actions and replies without
    /// `{case.…}` placeholders. An engine may then apply the group actions to every case and
    /// send each reply once; otherwise it answers that the number is ambiguous and does nothing.
    pub fn acts_on_every_case(&self) -> bool {
        self.actions.iter().all(|a| match a {
            Action::AddToGroup { .. } | Action::RemoveFromGroup { .. } => true,
            Action::Reply { text } => text.templates().all(|(_, t)| t.placeholders().is_empty()),
            Action::StartSurvey { .. } | Action::SetProperties { .. } => false,
        })
    }
}

/// A word as keywords compare it: each character lowercased (so `REG`, `Reg` and `reg` are
/// one keyword, and `İ` agrees with its lowercase form). No other normalisation.
pub fn fold(word: &str) -> String {
    word.chars().flat_map(char::to_lowercase).collect()
}

/// Whether two words are one keyword (equal after [`fold`]), without allocating.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// A character a keyword may have: a letter, a digit, or a combining mark (after the first).
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c.general_category_group() == GeneralCategoryGroup::Mark
}

/// Punctuation or a symbol (emoji included): what surrounds a keyword in a message.
pub(crate) fn is_punctuation_or_symbol(c: char) -> bool {
    matches!(
        c.general_category_group(),
        GeneralCategoryGroup::Punctuation | GeneralCategoryGroup::Symbol
    )
}

/// A field name that is a date by its name: `*_date`.
fn is_date_name(field: &str) -> bool {
    field.len() > 5 && field.is_char_boundary(field.len() - 5) && {
        field[field.len() - 5..].eq_ignore_ascii_case("_date")
    }
}

/// A field name as a person reads it: `birth_date` → `birth date`.
pub(crate) fn humanise(field: &str) -> String {
    field
        .split(['_', '-', '.'])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse_word<S: AsRef<str>>(
    value: Option<&Value>,
    reserved: &[S],
    p: &mut Vec<FieldError>,
) -> Option<String> {
    let err = |p: &mut Vec<FieldError>, m: String| {
        p.push(FieldError::new("keyword", m));
        None
    };
    let word = match value {
        Some(Value::String(s)) => s.trim(),
        None | Some(Value::Null) => "",
        Some(_) => return err(p, "must be text".into()),
    };
    if word.is_empty() {
        return err(p, "give the keyword: one word such as REG or JOIN".into());
    }
    if word.chars().any(char::is_whitespace) {
        return err(
            p,
            "must be one word: the words after it are the keyword's fields".into(),
        );
    }
    let n = word.chars().count();
    if n > MAX_KEYWORD_CHARS {
        return err(
            p,
            format!("is {n} characters; a keyword may have at most {MAX_KEYWORD_CHARS}"),
        );
    }
    if let Some(stripped) = word.strip_prefix('#') {
        if !stripped.is_empty() && stripped.chars().all(is_word_char) {
            return err(
                p,
                format!("leave out the '#': write {stripped} (a leading # is ignored in messages)"),
            );
        }
    }
    let first_ok = word.chars().next().is_some_and(char::is_alphanumeric);
    if !first_ok || !word.chars().all(is_word_char) {
        return err(p, format!("'{word}' may only contain letters and digits"));
    }
    if reserved.iter().any(|r| same(r.as_ref().trim(), word)) {
        return err(
            p,
            format!(
                "'{word}' is one of the project's stop or start words, which stay reserved for \
                 opting out and in"
            ),
        );
    }
    Some(word.to_string())
}

/// The field names as given (a list, or one string separated by spaces or commas); only valid
/// names are returned, so later checks (placeholders, `dates`) see what will be kept.
fn parse_fields(value: Option<&Value>, p: &mut Vec<FieldError>) -> Vec<String> {
    let items: Vec<(String, Option<&str>)> = match value {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::String(s)) => s
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|s| !s.is_empty())
            .enumerate()
            .map(|(i, s)| (format!("fields[{i}]"), Some(s)))
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("fields[{i}]"), v.as_str()))
            .collect(),
        Some(_) => {
            p.push(FieldError::new(
                "fields",
                "must be a list of property names, such as [\"name\", \"birth_date\"]",
            ));
            return Vec::new();
        }
    };
    if items.len() > MAX_FIELDS {
        p.push(FieldError::new(
            "fields",
            format!(
                "{} fields; a keyword may have at most {MAX_FIELDS}",
                items.len()
            ),
        ));
        return Vec::new();
    }
    let mut fields: Vec<(String, String)> = Vec::new();
    for (at, item) in items {
        let Some(raw) = item else {
            p.push(FieldError::new(at, "must be text"));
            continue;
        };
        let name = raw.trim();
        let checked = if name == NAME_FIELD {
            Ok(name.to_string())
        } else if name.eq_ignore_ascii_case(NAME_FIELD) {
            Err("write name in lower case: the name field sets the case's name".to_string())
        } else {
            parse_property_name(name).map_err(|e| {
                if e.message.contains("standard case field") {
                    format!(
                        "'{name}' is a standard case field, not a property (of those, only \
                         name may be a field)"
                    )
                } else {
                    format!("'{name}': {}", e.message)
                }
            })
        };
        match checked {
            Ok(name) => {
                if let Some((other, _)) = fields.iter().find(|(_, f)| f.eq_ignore_ascii_case(&name))
                {
                    p.push(FieldError::new(
                        at,
                        format!("'{name}' is also {other} (field names ignore case)"),
                    ));
                } else {
                    fields.push((at, name));
                }
            }
            Err(m) => p.push(FieldError::new(at, m)),
        }
    }
    fields.into_iter().map(|(_, f)| f).collect()
}

/// Texts by language (`{"*": …, "sw": …}`, or one string for `*`) that may use `{case.…}` and
/// `{field.NAME}`; problems are reported under `path.language`.
fn parse_texts(
    path: &str,
    value: &Value,
    fields: &Fields,
    p: &mut Vec<FieldError>,
) -> Option<Content> {
    let pairs: Vec<(String, &str)> = match value {
        Value::String(s) => vec![(DEFAULT_KEY.to_string(), s.as_str())],
        Value::Object(map) => {
            let mut pairs = Vec::with_capacity(map.len());
            let mut ok = true;
            for (language, text) in map {
                let key = language.trim();
                // As broadcasts: a translation is chosen by a case's language code, so any
                // other key would reach nobody.
                if key != DEFAULT_KEY && parse_language_code(key).is_err() {
                    p.push(FieldError::new(
                        format!("{path}.{language}"),
                        format!(
                            "'{key}' is not a language code (cases have codes such as en, sw, \
                             ach or pt-BR)"
                        ),
                    ));
                    ok = false;
                }
                match text.as_str() {
                    Some(t) => pairs.push((language.clone(), t)),
                    None => {
                        p.push(FieldError::new(
                            format!("{path}.{language}"),
                            "must be text",
                        ));
                        ok = false;
                    }
                }
            }
            if !ok {
                return None;
            }
            pairs
        }
        _ => {
            p.push(FieldError::new(
                path,
                "must be text or {\"*\": \"text\", \"<language>\": \"text\"}",
            ));
            return None;
        }
    };
    match Content::parse_with_fields(pairs, &fields.names) {
        Ok(c) => Some(c),
        Err(ContentError::Template {
            error:
                TemplateError::Placeholder {
                    problem: Problem::UnknownField { .. },
                    ..
                },
            ..
        }) if !fields.ok => None,
        Err(e) => {
            let field = match e.language() {
                Some(language) => format!("{path}.{language}"),
                None => path.to_string(),
            };
            p.push(FieldError::new(field, e.to_string()));
            None
        }
    }
}

/// The valid field names, and whether the whole list was valid.
struct Fields {
    names: Vec<String>,
    ok: bool,
}

/// A positive id, as a number (the API) or text (forms).
fn parse_id(value: Option<&Value>) -> Option<i64> {
    value
        .and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        })
        .filter(|id| *id > 0)
}

fn parse_actions(value: Option<&Value>, fields: &Fields, p: &mut Vec<FieldError>) -> Vec<Action> {
    let list = match value {
        Some(Value::Array(a)) => a,
        None | Some(Value::Null) => {
            p.push(FieldError::new(
                "actions",
                "add at least one action (reply, start_survey, add_to_group, \
                 remove_from_group or set_properties)",
            ));
            return Vec::new();
        }
        Some(_) => {
            p.push(FieldError::new(
                "actions",
                "must be a list of actions such as {\"type\": \"reply\", \"text\": \"…\"}",
            ));
            return Vec::new();
        }
    };
    if list.is_empty() {
        p.push(FieldError::new(
            "actions",
            "add at least one action (reply, start_survey, add_to_group, remove_from_group or \
             set_properties)",
        ));
    } else if list.len() > MAX_ACTIONS {
        p.push(FieldError::new(
            "actions",
            format!(
                "{} actions; a keyword may have at most {MAX_ACTIONS}",
                list.len()
            ),
        ));
        return Vec::new();
    }
    let mut actions: Vec<(usize, Action)> = Vec::new();
    for (i, v) in list.iter().enumerate() {
        if let Some(a) = parse_action(i, v, fields, &actions, p) {
            actions.push((i, a));
        }
    }
    actions.into_iter().map(|(_, a)| a).collect()
}

/// One action; `before` are the valid actions before it (with their positions), to refuse
/// repeats that contradict or duplicate them.
fn parse_action(
    i: usize,
    value: &Value,
    fields: &Fields,
    before: &[(usize, Action)],
    p: &mut Vec<FieldError>,
) -> Option<Action> {
    let at = format!("actions[{i}]");
    let Some(obj) = value.as_object() else {
        p.push(FieldError::new(
            at,
            "must be an action such as {\"type\": \"reply\", \"text\": \"…\"}",
        ));
        return None;
    };
    let kind = match obj.get("type") {
        Some(Value::String(s)) => s.trim(),
        _ => "",
    };
    let allowed: &[&str] = match kind {
        "reply" => &["type", "text"],
        "start_survey" => &["type", "survey_id"],
        "add_to_group" | "remove_from_group" => &["type", "case_group_id"],
        "set_properties" => &["type", "dates"],
        _ => {
            p.push(FieldError::new(
                format!("{at}.type"),
                "must be reply, start_survey, add_to_group, remove_from_group or set_properties",
            ));
            return None;
        }
    };
    let mut ok = true;
    for key in obj.keys() {
        if !allowed.contains(&key.as_str()) {
            p.push(FieldError::new(
                format!("{at}.{key}"),
                format!(
                    "is not a field of this action ({kind} takes {})",
                    allowed[1..].join(", ")
                ),
            ));
            ok = false;
        }
    }
    let earlier =
        |same: &dyn Fn(&Action) -> bool| before.iter().find(|(_, a)| same(a)).map(|(j, _)| *j);
    let action = match kind {
        "reply" => match obj.get("text") {
            None | Some(Value::Null) => {
                p.push(FieldError::new(format!("{at}.text"), "write the reply"));
                None
            }
            Some(v) => {
                parse_texts(&format!("{at}.text"), v, fields, p).map(|text| Action::Reply { text })
            }
        },
        "start_survey" => match parse_id(obj.get("survey_id")) {
            None => {
                p.push(FieldError::new(
                    format!("{at}.survey_id"),
                    "must be a survey's id",
                ));
                None
            }
            Some(survey_id) => {
                if let Some(j) = earlier(&|a| matches!(a, Action::StartSurvey { .. })) {
                    p.push(FieldError::new(
                        &at,
                        format!(
                            "actions[{j}] already starts a survey; a case has one survey at a time"
                        ),
                    ));
                    None
                } else {
                    Some(Action::StartSurvey { survey_id })
                }
            }
        },
        "add_to_group" | "remove_from_group" => {
            match parse_id(obj.get("case_group_id")) {
                None => {
                    p.push(FieldError::new(
                        format!("{at}.case_group_id"),
                        "must be a case group's id",
                    ));
                    None
                }
                Some(case_group_id) => {
                    let group_of = |a: &Action| match a {
                        Action::AddToGroup { case_group_id }
                        | Action::RemoveFromGroup { case_group_id } => Some(*case_group_id),
                        _ => None,
                    };
                    if let Some(j) = earlier(&|a| group_of(a) == Some(case_group_id)) {
                        p.push(FieldError::new(
                        format!("{at}.case_group_id"),
                        format!("actions[{j}] already adds to or removes from group {case_group_id}"),
                    ));
                        None
                    } else if kind == "add_to_group" {
                        Some(Action::AddToGroup { case_group_id })
                    } else {
                        Some(Action::RemoveFromGroup { case_group_id })
                    }
                }
            }
        }
        _ => {
            let dates = parse_dates(&at, obj.get("dates"), fields, p);
            if fields.names.is_empty() {
                if fields.ok {
                    p.push(FieldError::new(
                        &at,
                        "set_properties needs fields: name them in fields (such as [\"name\", \
                         \"birth_date\"])",
                    ));
                }
                None
            } else if let Some(j) = earlier(&|a| matches!(a, Action::SetProperties { .. })) {
                p.push(FieldError::new(
                    &at,
                    format!("actions[{j}] already sets the fields as properties"),
                ));
                None
            } else {
                dates.map(|dates| Action::SetProperties { dates })
            }
        }
    };
    action.filter(|_| ok)
}

/// `dates` of a `set_properties` action: fields (not `name`), each once.
fn parse_dates(
    at: &str,
    value: Option<&Value>,
    fields: &Fields,
    p: &mut Vec<FieldError>,
) -> Option<Vec<String>> {
    let list = match value {
        None | Some(Value::Null) => return Some(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => {
            p.push(FieldError::new(
                format!("{at}.dates"),
                "must be a list of fields that are dates",
            ));
            return None;
        }
    };
    let mut dates: Vec<String> = Vec::new();
    let mut ok = true;
    for (k, v) in list.iter().enumerate() {
        let path = format!("{at}.dates[{k}]");
        let name = v.as_str().map(str::trim).unwrap_or_default();
        let problem = if !fields.names.iter().any(|f| f == name) {
            // A name the field list would have had, were it valid, is not judged.
            if !fields.ok && !name.is_empty() {
                ok = false;
                continue;
            }
            Some(if name.is_empty() {
                "must be one of the keyword's fields".to_string()
            } else {
                format!("'{name}' is not one of the keyword's fields")
            })
        } else if name == NAME_FIELD {
            Some("name is the case's name, not a date".to_string())
        } else if dates.iter().any(|d| d == name) {
            Some(format!("'{name}' is listed twice"))
        } else {
            None
        };
        match problem {
            Some(m) => {
                p.push(FieldError::new(path, m));
                ok = false;
            }
            None => dates.push(name.to_string()),
        }
    }
    ok.then_some(dates)
}

/// A stored keyword as the API answers: `{id, keyword, fields, actions, …}`.
pub fn keyword_json(id: i64, keyword: &Keyword) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), Value::from(id));
    if let Value::Object(rest) = keyword.to_json() {
        out.extend(rest);
    }
    Value::Object(out)
}
