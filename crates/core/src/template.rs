//! Message templates (issue 5): the text of a broadcast with `{case.…}` placeholders, how it is
//! checked when saved, how it renders for one case, and the per-language texts of a broadcast.
//!
//! A placeholder is `{case.name}`, `{case.external_id}`, `{case.phone_number}`, `{case.case_id}`,
//! `{case.case_type}`, `{case.language_code}`, `{case.owner_id}` or `{case.<property>}`; `{{` and
//! `}}` write a literal brace. Everything else is copied as written.
//!
//! A keyword's reply ([`Template::parse_with_fields`]) may also use `{field.NAME}`: the value of
//! one of the keyword's fields, read from the inbound message. Other templates refuse it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::case::{parse_property_name, Case};

/// The longest template, in characters (ten concatenated GSM-7 segments).
pub const MAX_CHARS: usize = 1530;
/// The most placeholders one template may hold (counting repeats).
pub const MAX_PLACEHOLDERS: usize = 50;
/// The most translations a broadcast may have beside its default (`*`) text.
pub const MAX_LANGUAGES: usize = 20;
/// The key of the default text, used for cases whose language has no translation.
pub const DEFAULT_KEY: &str = "*";
/// Longest snippet quoted in an error, in characters.
const SNIPPET_CHARS: usize = 40;

/// A value of a case that a template can insert.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Placeholder {
    Name,
    ExternalId,
    PhoneNumber,
    CaseId,
    CaseType,
    LanguageCode,
    OwnerId,
    /// A case property, by its exact (case-sensitive) name.
    Property(String),
}

impl Placeholder {
    /// The placeholder for the part after `case.`, or why that part names nothing.
    fn parse(name: &str) -> Result<Placeholder, Problem> {
        // Standard fields ignore case, as column headers do; property names are kept exact.
        let standard = match name.to_ascii_lowercase().as_str() {
            "name" => Some(Placeholder::Name),
            "external_id" => Some(Placeholder::ExternalId),
            "phone_number" => Some(Placeholder::PhoneNumber),
            "case_id" => Some(Placeholder::CaseId),
            "case_type" => Some(Placeholder::CaseType),
            "language_code" => Some(Placeholder::LanguageCode),
            "owner_id" => Some(Placeholder::OwnerId),
            _ => None,
        };
        if let Some(p) = standard {
            return Ok(p);
        }
        // `parse_property_name` trims; a placeholder must not carry spaces that it would hide.
        match parse_property_name(name) {
            Ok(p) if p == name => Ok(Placeholder::Property(p)),
            Ok(_) => Err(Problem::InvalidProperty(
                "a property name has 1 to 64 letters, digits, '_', '-' or '.'".into(),
            )),
            Err(e) => Err(Problem::InvalidProperty(e.message)),
        }
    }

    /// The case's value, or `None` when it has none (an absent property, an empty field).
    pub fn value<'a>(&self, case: &'a Case) -> Option<&'a str> {
        let value = match self {
            Placeholder::Name => Some(case.name.as_str()),
            Placeholder::ExternalId => case.external_id.as_deref(),
            Placeholder::PhoneNumber => case.phone_number.as_ref().map(|p| p.as_str()),
            Placeholder::CaseId => Some(case.case_id.as_str()),
            Placeholder::CaseType => Some(case.case_type.as_str()),
            Placeholder::LanguageCode => case.language_code.as_deref(),
            Placeholder::OwnerId => case.owner_id.as_deref(),
            Placeholder::Property(name) => case.properties.get(name).map(String::as_str),
        };
        // An empty value renders the same as a missing one, so the preview warns about both.
        value.filter(|v| !v.is_empty())
    }
}

impl fmt::Display for Placeholder {
    /// The placeholder as written in a template, such as `{case.name}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Placeholder::Name => "name",
            Placeholder::ExternalId => "external_id",
            Placeholder::PhoneNumber => "phone_number",
            Placeholder::CaseId => "case_id",
            Placeholder::CaseType => "case_type",
            Placeholder::LanguageCode => "language_code",
            Placeholder::OwnerId => "owner_id",
            Placeholder::Property(name) => name,
        };
        write!(f, "{{case.{name}}}")
    }
}

/// The names a `{case.…}` placeholder may use besides properties.
pub const STANDARD_PLACEHOLDERS: [&str; 7] = [
    "name",
    "external_id",
    "phone_number",
    "case_id",
    "case_type",
    "language_code",
    "owner_id",
];

/// The known name closest to a misspelt one (`distict` → `district`), if one is close: a
/// few edits away (a swap of two letters is one), or the same ignoring case.
pub fn closest_name<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_lowercase();
    // One edit per three characters, at least one and at most three.
    let allowed = (name.chars().count() / 3).clamp(1, 3);
    known
        .into_iter()
        .filter(|k| *k != name)
        .map(|k| (strsim::osa_distance(&lower, &k.to_lowercase()), k))
        .filter(|(d, _)| *d <= allowed)
        .min_by_key(|(d, k)| (*d, *k))
        .map(|(_, k)| k)
}

/// What is wrong with one placeholder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A `{` with no `}` after it.
    Unclosed,
    /// `{}`.
    Empty,
    /// `{name}`: no `case.` prefix.
    NoPrefix,
    /// `{case.}`.
    NoProperty,
    /// `{case.x y}`: the reason the name is not a property name.
    InvalidProperty(String),
    /// A `{` inside a placeholder.
    Nested,
    /// A `}` that closes nothing.
    LoneClose,
    /// `{field.NAME}` where NAME is not one of the fields the template may use (none outside a
    /// keyword's reply); with the closest field name, if one is close.
    UnknownField {
        name: String,
        closest: Option<String>,
    },
}

/// Why a text is not a valid template.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the text has {chars} characters; a message may have at most {MAX_CHARS}")]
    TooLong { chars: usize },
    #[error("the text has {count} placeholders; a message may have at most {MAX_PLACEHOLDERS}")]
    TooManyPlaceholders { count: usize },
    /// A malformed placeholder at `column` (1-based, in characters), quoted in `snippet`.
    #[error("column {column}: {}", describe(snippet, problem))]
    Placeholder {
        column: usize,
        snippet: String,
        problem: Problem,
    },
}

/// The user-facing sentence for one malformed placeholder.
fn describe(snippet: &str, problem: &Problem) -> String {
    let literal = "write `{{` or `}}` for a literal brace";
    match problem {
        Problem::Unclosed => format!("`{snippet}` is not closed: add `}}`, or {literal}"),
        Problem::Empty => format!(
            "`{{}}` is an empty placeholder: name a case field such as `{{case.name}}`, or \
             {literal}"
        ),
        Problem::NoPrefix => {
            let inner = snippet.trim_start_matches('{').trim_end_matches('}');
            if Placeholder::parse(inner).is_ok() {
                format!("`{snippet}` needs the `case.` prefix: write `{{case.{inner}}}`")
            } else {
                format!(
                    "`{snippet}` is not a placeholder: placeholders look like `{{case.name}}`; \
                     {literal}"
                )
            }
        }
        Problem::NoProperty => format!("`{snippet}` has no property name"),
        Problem::InvalidProperty(why) => {
            format!("`{snippet}` does not name a case property: {why}")
        }
        Problem::Nested => format!("`{snippet}` has a brace inside a placeholder; {literal}"),
        Problem::LoneClose => format!("`}}` closes no placeholder; {literal}"),
        Problem::UnknownField { name, closest } => match closest {
            Some(c) => format!("`{snippet}` names no field: did you mean `{{field.{c}}}`?"),
            None if name.is_empty() => format!("`{snippet}` has no field name"),
            None => format!("`{snippet}` names no field of this keyword"),
        },
    }
}

impl TemplateError {
    /// The 1-based character column of a malformed placeholder, if that is the error.
    pub fn column(&self) -> Option<usize> {
        match self {
            TemplateError::Placeholder { column, .. } => Some(*column),
            _ => None,
        }
    }
}

/// One piece of a parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// An index into `Template::placeholders`.
    Field(usize),
    /// An index into `Template::fields`: a `{field.NAME}`.
    Value(usize),
}

/// A checked message template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
    placeholders: Vec<Placeholder>,
    /// The names of the `{field.NAME}` placeholders, each once, in order of appearance.
    fields: Vec<String>,
}

/// A template rendered for one case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rendered {
    /// The message text.
    pub text: String,
    /// Placeholders the case had no value for (rendered empty), distinct, as written: `{case.x}`.
    pub missing: Vec<String>,
}

impl Template {
    /// Checks a template, naming the first malformed placeholder and where it is.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        Template::parse_in(text, None)
    }

    /// Checks a template that may also use `{field.NAME}` for each NAME of `fields` (exact
    /// names): a keyword's reply. A `{field.…}` naming anything else is an error.
    pub fn parse_with_fields<S: AsRef<str>>(
        text: &str,
        fields: &[S],
    ) -> Result<Template, TemplateError> {
        let names: Vec<&str> = fields.iter().map(AsRef::as_ref).collect();
        Template::parse_in(text, Some(&names))
    }

    /// Checks a template; `fields` are the names `{field.NAME}` may use, `None` where that
    /// namespace does not exist (a broadcast).
    fn parse_in(text: &str, fields: Option<&[&str]>) -> Result<Template, TemplateError> {
        let chars: Vec<char> = text.chars().collect();
        if chars.len() > MAX_CHARS {
            return Err(TemplateError::TooLong { chars: chars.len() });
        }
        let mut parts = Vec::new();
        let mut placeholders: Vec<Placeholder> = Vec::new();
        let mut field_names: Vec<String> = Vec::new();
        let mut literal = String::new();
        let mut count = 0;
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '{' if chars.get(i + 1) == Some(&'{') => {
                    literal.push('{');
                    i += 2;
                }
                '}' if chars.get(i + 1) == Some(&'}') => {
                    literal.push('}');
                    i += 2;
                }
                '}' => return Err(malformed(&chars, i, i + 1, Problem::LoneClose)),
                '{' => {
                    let (found, end) = placeholder_at(&chars, i, fields)?;
                    count += 1;
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(match found {
                        Found::Case(placeholder) => {
                            Part::Field(index_of(&mut placeholders, placeholder))
                        }
                        Found::Field(name) => Part::Value(index_of(&mut field_names, name)),
                    });
                    i = end;
                }
                c => {
                    literal.push(c);
                    i += 1;
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        if count > MAX_PLACEHOLDERS {
            return Err(TemplateError::TooManyPlaceholders { count });
        }
        Ok(Template {
            source: text.to_string(),
            parts,
            placeholders,
            fields: field_names,
        })
    }

    /// A template that is `text` as it is, with no placeholders (`{` and `}` are plain
    /// characters): a survey's texts, which are sent as written.
    pub fn literal(text: &str) -> Template {
        Template {
            source: text.to_string(),
            parts: if text.is_empty() {
                Vec::new()
            } else {
                vec![Part::Literal(text.to_string())]
            },
            placeholders: Vec::new(),
            fields: Vec::new(),
        }
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The placeholders used, each once, in the order they first appear.
    pub fn placeholders(&self) -> &[Placeholder] {
        &self.placeholders
    }

    /// The `{field.NAME}` names used, each once, in the order they first appear.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// The message for one case; a value the case lacks renders empty and is listed as missing.
    pub fn render(&self, case: &Case) -> Rendered {
        self.render_with(|p| p.value(case))
    }

    /// The message with each placeholder's value from `value` (a case read in another shape
    /// than [`Case`]); `None` or an empty value renders empty and is listed as missing.
    pub fn render_with<'v>(&self, value: impl Fn(&Placeholder) -> Option<&'v str>) -> Rendered {
        self.render_with_fields(value, |_| None)
    }

    /// The message with `{case.…}` values from `value` and `{field.NAME}` values from `field`
    /// (by name); `None` or an empty value renders empty and is listed as missing.
    pub fn render_with_fields<'v>(
        &self,
        value: impl Fn(&Placeholder) -> Option<&'v str>,
        field: impl Fn(&str) -> Option<&'v str>,
    ) -> Rendered {
        let mut text = String::with_capacity(self.source.len() + 16);
        let mut missing: Vec<String> = Vec::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => text.push_str(s),
                Part::Field(index) => {
                    let placeholder = &self.placeholders[*index];
                    match value(placeholder).filter(|v| !v.is_empty()) {
                        Some(v) => text.push_str(v),
                        None => {
                            let name = placeholder.to_string();
                            if !missing.contains(&name) {
                                missing.push(name);
                            }
                        }
                    }
                }
                Part::Value(index) => {
                    let name = &self.fields[*index];
                    match field(name).filter(|v| !v.is_empty()) {
                        Some(v) => text.push_str(v),
                        None => {
                            let name = format!("{{field.{name}}}");
                            if !missing.contains(&name) {
                                missing.push(name);
                            }
                        }
                    }
                }
            }
        }
        Rendered { text, missing }
    }
}

/// The index of `item` in `list`, added at the end if it is not there.
fn index_of<T: PartialEq>(list: &mut Vec<T>, item: T) -> usize {
    match list.iter().position(|p| *p == item) {
        Some(index) => index,
        None => {
            list.push(item);
            list.len() - 1
        }
    }
}

/// What a well-formed placeholder names.
enum Found {
    /// `{case.…}`.
    Case(Placeholder),
    /// `{field.NAME}`, one of the fields the template may use.
    Field(String),
}

/// Reads the placeholder whose `{` is at `open`; returns it and the index just past its `}`.
/// `fields` are the names a `{field.NAME}` may use (`None` outside a keyword's reply).
fn placeholder_at(
    chars: &[char],
    open: usize,
    fields: Option<&[&str]>,
) -> Result<(Found, usize), TemplateError> {
    let mut j = open + 1;
    while j < chars.len() && chars[j] != '}' {
        if chars[j] == '{' {
            // Quote up to the next `}` so the user sees the whole nested placeholder.
            let end = chars[j..]
                .iter()
                .position(|&c| c == '}')
                .map_or(chars.len(), |k| j + k + 1);
            return Err(malformed(chars, open, end, Problem::Nested));
        }
        j += 1;
    }
    if j == chars.len() {
        return Err(malformed(chars, open, j, Problem::Unclosed));
    }
    let inner: String = chars[open + 1..j].iter().collect();
    let problem = if inner.is_empty() {
        Problem::Empty
    } else if inner == "case" {
        Problem::NoProperty
    } else if let Some(name) = inner.strip_prefix("case.") {
        if name.is_empty() {
            Problem::NoProperty
        } else {
            match Placeholder::parse(name) {
                Ok(p) => return Ok((Found::Case(p), j + 1)),
                Err(problem) => problem,
            }
        }
    } else if let (Some(fields), Some(name)) = (fields, inner.strip_prefix("field.")) {
        if fields.contains(&name) {
            return Ok((Found::Field(name.to_string()), j + 1));
        }
        Problem::UnknownField {
            name: name.to_string(),
            closest: closest_name(name, fields.iter().copied())
                .filter(|_| !name.is_empty())
                .map(str::to_string),
        }
    } else if let Some(field) = fields.and_then(|f| f.iter().find(|f| **f == inner)) {
        // `{name}` where `name` is a field: the `field.` prefix was forgotten.
        Problem::UnknownField {
            name: inner.clone(),
            closest: Some(field.to_string()),
        }
    } else {
        Problem::NoPrefix
    };
    Err(malformed(chars, open, j + 1, problem))
}

/// The error for the characters `start..end`, shortened so a long run stays readable.
fn malformed(chars: &[char], start: usize, end: usize, problem: Problem) -> TemplateError {
    let mut snippet: String = chars[start..end].iter().take(SNIPPET_CHARS).collect();
    if end - start > SNIPPET_CHARS {
        snippet.push('…');
    }
    TemplateError::Placeholder {
        column: start + 1,
        snippet,
        problem,
    }
}

impl Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Template::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Why the texts of a broadcast are not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error("the message needs a default text (`*`), sent to cases whose language has none")]
    NoDefault,
    #[error("{count} translations given; a message may have at most {MAX_LANGUAGES}")]
    TooManyLanguages { count: usize },
    #[error(
        "`{language}` is not a language code: use 2 to 8 letters, digits or '-', such as en, \
         sw or pt-BR"
    )]
    InvalidLanguage { language: String },
    #[error("`{language}` is given twice (language codes ignore case)")]
    DuplicateLanguage { language: String },
    #[error("{}: the text is empty", label(language))]
    Empty { language: String },
    /// The text of `language` is not a valid template.
    #[error("{}{} {error}", label(language), if error.column().is_some() { "," } else { ":" })]
    Template {
        language: String,
        error: TemplateError,
    },
}

impl ContentError {
    /// The language key at fault (`*` for the default text), if the error is about one.
    pub fn language(&self) -> Option<&str> {
        match self {
            ContentError::NoDefault | ContentError::TooManyLanguages { .. } => None,
            ContentError::InvalidLanguage { language }
            | ContentError::DuplicateLanguage { language }
            | ContentError::Empty { language }
            | ContentError::Template { language, .. } => Some(language),
        }
    }
}

/// How a language key is named in a message: the default text is not called `*`.
fn label(language: &str) -> &str {
    if language == DEFAULT_KEY {
        "default text"
    } else {
        language
    }
}

/// The texts of a broadcast: a default and translations by language code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Content {
    default: Template,
    /// (code as given, template), in code order.
    translations: Vec<(String, Template)>,
}

impl Content {
    /// Checks `{"*": text, code: text, …}`, naming the language key at fault.
    pub fn parse<K, V>(texts: impl IntoIterator<Item = (K, V)>) -> Result<Content, ContentError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        Content::parse_in(texts, None)
    }

    /// As [`Content::parse`], the texts also allowed `{field.NAME}` for each NAME of `fields`
    /// (see [`Template::parse_with_fields`]): a keyword's reply.
    pub fn parse_with_fields<K, V, S>(
        texts: impl IntoIterator<Item = (K, V)>,
        fields: &[S],
    ) -> Result<Content, ContentError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
        S: AsRef<str>,
    {
        let names: Vec<&str> = fields.iter().map(AsRef::as_ref).collect();
        Content::parse_in(texts, Some(&names))
    }

    fn parse_in<K, V>(
        texts: impl IntoIterator<Item = (K, V)>,
        fields: Option<&[&str]>,
    ) -> Result<Content, ContentError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut default = None;
        let mut translations: Vec<(String, Template)> = Vec::new();
        // Sorted so the first error reported does not depend on the map's order.
        let mut texts: Vec<(String, String)> = texts
            .into_iter()
            .map(|(k, v)| (k.as_ref().trim().to_string(), v.as_ref().to_string()))
            .collect();
        texts.sort();
        let count = texts.iter().filter(|(k, _)| k != DEFAULT_KEY).count();
        if count > MAX_LANGUAGES {
            return Err(ContentError::TooManyLanguages { count });
        }
        for (language, text) in texts {
            let is_default = language == DEFAULT_KEY;
            if !is_default && !is_language_code(&language) {
                return Err(ContentError::InvalidLanguage { language });
            }
            let taken = if is_default {
                default.is_some()
            } else {
                translations
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case(&language))
            };
            if taken {
                return Err(ContentError::DuplicateLanguage { language });
            }
            if text.trim().is_empty() {
                return Err(ContentError::Empty { language });
            }
            let template = match Template::parse_in(&text, fields) {
                Ok(t) => t,
                Err(error) => return Err(ContentError::Template { language, error }),
            };
            if is_default {
                default = Some(template);
            } else {
                translations.push((language, template));
            }
        }
        let default = default.ok_or(ContentError::NoDefault)?;
        Ok(Content {
            default,
            translations,
        })
    }

    /// Plain texts (see [`Template::literal`]): `default` for `*` and one per language code,
    /// chosen for a case as parsed texts are. Nothing is checked: a survey's first message in
    /// each of its languages, checked when the survey was saved.
    pub fn literal(
        default: &str,
        translations: impl IntoIterator<Item = (String, String)>,
    ) -> Content {
        let mut translations: Vec<(String, Template)> = translations
            .into_iter()
            .map(|(k, t)| (k, Template::literal(&t)))
            .collect();
        translations.sort_by(|a, b| a.0.cmp(&b.0));
        translations.dedup_by(|a, b| a.0.eq_ignore_ascii_case(&b.0));
        Content {
            default: Template::literal(default),
            translations,
        }
    }

    /// The template for a case's language code, as [`Content::choose`] picks it.
    pub fn for_language(&self, language: Option<&str>) -> &Template {
        self.choose(language).1
    }

    /// The key (`*` or a code as given) and template for a language code: the exact code, else
    /// its primary subtag (`pt-BR` → `pt`), else the default; codes compare ignoring case.
    pub fn choose(&self, language: Option<&str>) -> (&str, &Template) {
        let find = |code: &str| {
            self.translations
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(code))
                .map(|(k, t)| (k.as_str(), t))
        };
        language
            .map(str::trim)
            .and_then(|code| {
                find(code).or_else(|| code.split_once('-').and_then(|(primary, _)| find(primary)))
            })
            .unwrap_or((DEFAULT_KEY, &self.default))
    }

    /// The default (`*`) template.
    pub fn default_template(&self) -> &Template {
        &self.default
    }

    /// Every key and template, the default (`*`) first, then translations by code.
    pub fn templates(&self) -> impl Iterator<Item = (&str, &Template)> {
        std::iter::once((DEFAULT_KEY, &self.default))
            .chain(self.translations.iter().map(|(k, t)| (k.as_str(), t)))
    }
}

/// A language key: 2–8 letters, digits or `-`, with no empty part (`-en`, `pt--BR`).
fn is_language_code(code: &str) -> bool {
    (2..=8).contains(&code.len())
        && code
            .split('-')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()))
}

impl Serialize for Content {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.templates().map(|(k, t)| (k, t.as_str())))
    }
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let texts = BTreeMap::<String, String>::deserialize(deserializer)?;
        Content::parse(texts).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CaseId;
    use crate::phone::PhoneNumber;
    use proptest::prelude::*;

    fn case() -> Case {
        Case {
            case_id: CaseId::from_stored("c-1".into()),
            case_type: "participant".into(),
            name: "Aber Grace".into(),
            external_id: Some("EXT-9".into()),
            phone_number: Some(PhoneNumber::parse("+256772123456", None).unwrap()),
            language_code: Some("sw".into()),
            owner_id: None,
            closed: false,
            deleted: false,
            properties: [
                ("district".to_string(), "Gulu".to_string()),
                ("next.visit-date".to_string(), "2026-12-01".to_string()),
                ("blank".to_string(), String::new()),
            ]
            .into(),
            created_at: 0,
            modified_at: 0,
        }
    }

    fn render(text: &str) -> Rendered {
        Template::parse(text).unwrap().render(&case())
    }

    fn error(text: &str) -> (usize, String, String) {
        let e = Template::parse(text).unwrap_err();
        match &e {
            TemplateError::Placeholder {
                column, snippet, ..
            } => (*column, snippet.clone(), e.to_string()),
            other => panic!("{text:?}: expected a placeholder error, got {other}"),
        }
    }

    #[test]
    fn renders_every_standard_field_and_properties() {
        let r = render(
            "{case.name}|{case.external_id}|{case.phone_number}|{case.case_id}|\
             {case.case_type}|{case.language_code}|{case.district}|{case.next.visit-date}",
        );
        assert_eq!(
            r.text,
            "Aber Grace|EXT-9|+256772123456|c-1|participant|sw|Gulu|2026-12-01"
        );
        assert!(r.missing.is_empty());
        assert_eq!(render("Hi {case.NAME}").text, "Hi Aber Grace");
    }

    #[test]
    fn missing_values_render_empty_and_are_listed_once() {
        let r = render("{case.owner_id}-{case.hiv_status}-{case.blank}-{case.owner_id}.");
        assert_eq!(r.text, "---.");
        assert_eq!(
            r.missing,
            ["{case.owner_id}", "{case.hiv_status}", "{case.blank}"]
        );
        let mut c = case();
        c.phone_number = None;
        c.external_id = None;
        let t = Template::parse("{case.phone_number}{case.external_id}").unwrap();
        assert_eq!(
            t.render(&c).missing,
            ["{case.phone_number}", "{case.external_id}"]
        );
        // Property names are exact: `District` is another property.
        assert_eq!(render("{case.District}").missing, ["{case.District}"]);
    }

    #[test]
    fn doubled_braces_are_literal() {
        assert_eq!(
            render("{{case.name}} is {case.name}").text,
            "{case.name} is Aber Grace"
        );
        assert_eq!(render("}}{{").text, "}{");
        assert_eq!(render("{{{case.name}}}").text, "{Aber Grace}");
        assert!(Template::parse("{{}}").unwrap().placeholders().is_empty());
    }

    #[test]
    fn placeholders_are_distinct_in_order() {
        let t = Template::parse("{case.district} {case.name} {case.district} {case.Name}").unwrap();
        assert_eq!(
            t.placeholders(),
            [Placeholder::Property("district".into()), Placeholder::Name]
        );
        assert_eq!(t.placeholders()[0].to_string(), "{case.district}");
        assert_eq!(
            t.as_str(),
            "{case.district} {case.name} {case.district} {case.Name}"
        );
    }

    #[test]
    fn each_malformed_placeholder_names_its_column_and_snippet() {
        let (col, snip, msg) = error("Hello {case.name");
        assert_eq!((col, snip.as_str()), (7, "{case.name"));
        assert!(
            msg.starts_with("column 7: `{case.name` is not closed"),
            "{msg}"
        );

        let (col, _, msg) = error("ab{}");
        assert_eq!(col, 3);
        assert!(msg.contains("`{}` is an empty placeholder"), "{msg}");

        let (col, snip, msg) = error("Dear {name},");
        assert_eq!((col, snip.as_str()), (6, "{name}"));
        assert!(msg.contains("write `{case.name}`"), "{msg}");
        let (_, _, msg) = error("{a b}");
        assert!(msg.contains("is not a placeholder"), "{msg}");
        let (_, _, msg) = error("{case}");
        assert!(msg.contains("`{case}` has no property name"), "{msg}");
        let (_, _, msg) = error("{Case.name}");
        assert!(msg.contains("needs the `case.` prefix"), "{msg}");

        let (col, _, msg) = error("Habari {case.} leo");
        assert_eq!(col, 8);
        assert_eq!(msg, "column 8: `{case.}` has no property name");

        let (_, snip, msg) = error("{case.hiv status}");
        assert_eq!(snip, "{case.hiv status}");
        assert!(msg.contains("does not name a case property"), "{msg}");
        let (_, _, msg) = error("{case.closed}");
        assert!(msg.contains("standard case field"), "{msg}");
        assert!(Template::parse("{case. name}").is_err());
        assert!(Template::parse("{case.name }").is_err());
        assert!(Template::parse(&format!("{{case.{}}}", "x".repeat(65))).is_err());

        let (col, snip, msg) = error("x {case.{name}} y");
        assert_eq!((col, snip.as_str()), (3, "{case.{name}"));
        assert!(msg.contains("brace inside a placeholder"), "{msg}");
        assert_eq!(error("{case.{").1, "{case.{");

        let (col, snip, msg) = error("a } b");
        assert_eq!((col, snip.as_str()), (3, "}"));
        assert!(msg.contains("closes no placeholder"), "{msg}");
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(error("Jambo 👋 ñ {}").0, 11);
    }

    #[test]
    fn long_snippets_are_shortened() {
        let (_, snip, _) = error(&format!("{{case.{}", "x".repeat(100)));
        assert_eq!(snip.chars().count(), SNIPPET_CHARS + 1);
        assert!(snip.ends_with('…'));
    }

    #[test]
    fn limits() {
        assert!(Template::parse(&"é".repeat(MAX_CHARS)).is_ok());
        let e = Template::parse(&"é".repeat(MAX_CHARS + 1)).unwrap_err();
        assert_eq!(e, TemplateError::TooLong { chars: 1531 });
        assert!(e.to_string().contains("at most 1530"), "{e}");
        assert!(Template::parse(&"{case.name}".repeat(MAX_PLACEHOLDERS)).is_ok());
        let e = Template::parse(&"{case.a}".repeat(51)).unwrap_err();
        assert_eq!(e, TemplateError::TooManyPlaceholders { count: 51 });
        assert!(e.to_string().contains("at most 50"), "{e}");
        assert_eq!(e.column(), None);
    }

    #[test]
    fn field_placeholders_only_where_fields_are_given() {
        let fields = ["name", "birth_date"];
        let t = Template::parse_with_fields(
            "Hi {field.name} ({case.district}), born {field.birth_date}; {field.name}",
            &fields,
        )
        .unwrap();
        assert_eq!(t.fields(), ["name", "birth_date"]);
        assert_eq!(t.placeholders(), [Placeholder::Property("district".into())]);
        let c = case();
        let r = t.render_with_fields(|p| p.value(&c), |f| (f == "name").then_some("Amina"));
        assert_eq!(r.text, "Hi Amina (Gulu), born ; Amina");
        assert_eq!(r.missing, ["{field.birth_date}"]);
        // Rendering without field values lists them as missing; case values still render.
        assert_eq!(
            t.render(&case()).missing,
            ["{field.name}", "{field.birth_date}"]
        );

        // Names are exact, and a near miss is suggested.
        let e = Template::parse_with_fields("Hi {field.birth_dat}", &fields).unwrap_err();
        assert_eq!(e.column(), Some(4));
        assert!(
            e.to_string().contains("did you mean `{field.birth_date}`?"),
            "{e}"
        );
        let e = Template::parse_with_fields("{field.Name}", &fields).unwrap_err();
        assert!(
            e.to_string().contains("did you mean `{field.name}`?"),
            "{e}"
        );
        let e = Template::parse_with_fields("{field.village}", &fields).unwrap_err();
        assert_eq!(
            e.to_string(),
            "column 1: `{field.village}` names no field of this keyword"
        );
        let e = Template::parse_with_fields("{field.}", &fields).unwrap_err();
        assert!(e.to_string().contains("has no field name"), "{e}");
        // Without fields (a broadcast), `{field.…}` is not a placeholder of its own.
        let e = Template::parse("Hi {field.name}").unwrap_err();
        assert!(e.to_string().contains("needs the `case.` prefix"), "{e}");
        assert!(Template::parse("{field.x y}").is_err());
        // Escaped braces stay literal.
        let t = Template::parse_with_fields("{{field.name}}", &fields).unwrap();
        assert!(t.fields().is_empty());
        assert_eq!(t.render(&case()).text, "{field.name}");

        let c = Content::parse_with_fields(
            [("*", "Hi {field.name}"), ("sw", "Habari {field.name}")],
            &fields,
        )
        .unwrap();
        assert_eq!(c.for_language(Some("sw")).fields(), ["name"]);
        let e =
            Content::parse_with_fields([("*", "Hi"), ("sw", "{field.x}")], &fields).unwrap_err();
        assert_eq!(e.language(), Some("sw"));
        assert!(Content::parse([("*", "Hi {field.name}")]).is_err());
    }

    fn content(pairs: &[(&str, &str)]) -> Result<Content, ContentError> {
        Content::parse(pairs.iter().copied())
    }

    #[test]
    fn closest_name_suggests_a_near_property() {
        let known = ["district", "ward", "name", "village"];
        assert_eq!(closest_name("distict", known), Some("district"));
        assert_eq!(closest_name("District", known), Some("district"));
        assert_eq!(closest_name("nmae", known), Some("name"));
        assert_eq!(closest_name("blood_group", known), None);
        assert_eq!(
            closest_name("ward", known),
            None,
            "an exact name is no suggestion"
        );
    }

    #[test]
    fn content_picks_the_case_language() {
        let c = content(&[
            ("*", "Hello {case.name}"),
            ("sw", "Habari {case.name}"),
            ("pt", "Olá"),
            ("pt-BR", "Oi"),
            ("LG", "Gyebale"),
        ])
        .unwrap();
        let text = |lang: Option<&str>| c.for_language(lang).as_str().to_string();
        assert_eq!(text(Some("sw")), "Habari {case.name}");
        assert_eq!(text(Some("SW")), "Habari {case.name}");
        assert_eq!(text(Some("pt-br")), "Oi");
        assert_eq!(text(Some("pt-PT")), "Olá");
        assert_eq!(text(Some("sw-KE")), "Habari {case.name}");
        assert_eq!(text(Some("lg")), "Gyebale");
        assert_eq!(text(Some("fr")), "Hello {case.name}");
        assert_eq!(text(None), "Hello {case.name}");
        assert_eq!(c.choose(Some("pt-AO")).0, "pt");
        assert_eq!(c.choose(Some("en")).0, "*");
        let keys: Vec<&str> = c.templates().map(|(k, _)| k).collect();
        assert_eq!(keys, ["*", "LG", "pt", "pt-BR", "sw"]);
    }

    #[test]
    fn content_errors_name_the_language() {
        assert_eq!(content(&[("sw", "Habari")]), Err(ContentError::NoDefault));
        let e = content(&[("*", "Hi"), ("sw", "Habari {case.} leo")]).unwrap_err();
        assert_eq!(e.language(), Some("sw"));
        assert_eq!(
            e.to_string(),
            "sw, column 8: `{case.}` has no property name"
        );
        let e = content(&[("*", "Hi {name}")]).unwrap_err();
        assert!(e.to_string().starts_with("default text, column 4:"), "{e}");
        let long = "x".repeat(MAX_CHARS + 1);
        let e = content(&[("*", "Hi"), ("lg", &long)]).unwrap_err();
        assert!(e.to_string().starts_with("lg: the text has 1531"), "{e}");
        for bad in [
            "e",
            "english-uk",
            "en_GB",
            "e n",
            "-en",
            "pt--BR",
            "sw-",
            "é1",
        ] {
            let e = content(&[("*", "Hi"), (bad, "x")]).unwrap_err();
            assert_eq!(e.language(), Some(bad.trim()), "{bad}");
            assert!(e.to_string().contains("not a language code"), "{e}");
        }
        let e = content(&[("*", "Hi"), ("en", "a"), ("EN", "b")]).unwrap_err();
        assert!(e.to_string().contains("given twice"), "{e}");
        let e = content(&[("*", "Hi"), ("sw", "  ")]).unwrap_err();
        assert_eq!(e.to_string(), "sw: the text is empty");
        let many: Vec<(String, String)> = std::iter::once(("*".into(), "Hi".into()))
            .chain((0..21).map(|i| (format!("l{i:02}"), "x".to_string())))
            .collect();
        let e = Content::parse(many.clone()).unwrap_err();
        assert_eq!(e, ContentError::TooManyLanguages { count: 21 });
        assert!(Content::parse(many[..21].to_vec()).is_ok());
    }

    #[test]
    fn serde_round_trip() {
        let json = r#"{"*":"Hi {case.name}","sw":"Habari {case.name}"}"#;
        let c: Content = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), json);
        let e = serde_json::from_str::<Content>(r#"{"*":"Hi {case.}"}"#).unwrap_err();
        assert!(e.to_string().contains("no property name"), "{e}");
        let t: Template = serde_json::from_str(r#""{{x}} {case.district}""#).unwrap();
        assert_eq!(t.render(&case()).text, "{x} Gulu");
    }

    /// A literal piece of template text, or one placeholder.
    fn piece() -> impl Strategy<Value = (String, Option<Placeholder>)> {
        let standard = prop::sample::select(vec![
            Placeholder::Name,
            Placeholder::ExternalId,
            Placeholder::PhoneNumber,
            Placeholder::CaseId,
            Placeholder::CaseType,
            Placeholder::LanguageCode,
            Placeholder::OwnerId,
        ]);
        let property = "[A-Za-z0-9_.-]{1,12}"
            .prop_filter("a property name", |n| parse_property_name(n).is_ok())
            .prop_map(Placeholder::Property);
        prop_oneof![
            "[^{}]{0,10}".prop_map(|s| (s, None)),
            prop_oneof![standard, property].prop_map(|p| (p.to_string(), Some(p))),
        ]
    }

    proptest! {
        #[test]
        fn text_without_braces_renders_to_itself(text in "[^{}]{0,300}") {
            let t = Template::parse(&text).unwrap();
            let r = t.render(&case());
            prop_assert_eq!(r.text, text);
            prop_assert!(r.missing.is_empty());
            prop_assert!(t.placeholders().is_empty());
        }

        #[test]
        fn parse_and_render_never_panic(text in "\\PC{0,80}|[{}a-z.\\s]{0,40}") {
            if let Ok(t) = Template::parse(&text) {
                let _ = t.render(&case());
            } else {
                let e = Template::parse(&text).unwrap_err();
                let column = e.column().unwrap();
                prop_assert!(column >= 1 && column <= text.chars().count());
            }
        }

        #[test]
        fn doubled_braces_round_trip(text in "\\PC{0,200}") {
            let escaped = text.replace('{', "{{").replace('}', "}}");
            let t = Template::parse(&escaped).unwrap();
            prop_assert_eq!(t.render(&case()).text, text);
        }

        #[test]
        fn every_placeholder_is_reported(pieces in prop::collection::vec(piece(), 0..20)) {
            let text: String = pieces.iter().map(|(s, _)| s.as_str()).collect();
            let mut expected: Vec<Placeholder> = Vec::new();
            for p in pieces.into_iter().filter_map(|(_, p)| p) {
                if !expected.contains(&p) {
                    expected.push(p);
                }
            }
            let t = Template::parse(&text).unwrap();
            prop_assert_eq!(t.placeholders(), expected.as_slice());
        }
    }
}
