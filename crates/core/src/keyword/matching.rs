//! Which keyword an inbound message is, the values it gives the keyword's fields, and the
//! reply texts.
//!
//! Reading a message (every step works on characters, never on byte offsets it has not found):
//! - Leading white space, punctuation, symbols and invisible characters are skipped (`#REG`,
//!   `"REG"`, `¿REG`, `*REG`); the keyword is the run of letters, digits and combining marks
//!   that follows, compared ignoring case ([`super::fold`]).
//! - The keyword must be a whole word: what follows it up to the next white space is nothing,
//!   only punctuation or symbols (`REG!`, `HELP?`, `JOIN👍`), or starts with one of `: , ; . -
//!   =`, which then separates it from its first field (`REG:Amina`, `JOIN-ANC`). `REG's` and
//!   `REGISTER` are not `REG`.
//! - The words after it fill the fields in order, separated by white space; a word of only
//!   punctuation or symbols is skipped (`REG Amina , 1990-03-01`). The last field takes the
//!   rest of the text, inner spacing and line breaks kept. Each value loses trailing `. , ; : !
//!   ? …` and their CJK and Devanagari forms (`REG Amina, 1990-03-01.`). Words beyond a keyword without fields are ignored
//!   (`HELP me please` is `HELP`).
//! - Too few words give [`Match::Missing`] and a value that fails its check [`Match::Invalid`],
//!   both with the reply that says which field and the form to send (`Missing birth date.
//!   Send: REG <name> <birth date>`). A date field takes the survey's date forms and is
//!   stored as `YYYY-MM-DD`; `name` is checked as a case name; other values as property
//!   values. These replies are in English.

use serde::Serialize;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::{humanise, is_punctuation_or_symbol, is_word_char, same, Keyword, NAME_FIELD};
use crate::case::{parse_name, parse_property_value, Case, CaseChanges};
use crate::survey::answer::read_date;
use crate::template::{Content, Placeholder, Rendered, MAX_CHARS};

/// Characters that may join a keyword to its first field: `REG:Amina`, `JOIN-ANC`.
const JOINERS: [char; 6] = [':', ',', ';', '.', '-', '='];
/// Characters dropped from the end of a field's value: `Amina,` → `Amina`.
const TERMINATORS: [char; 11] = ['.', ',', ';', ':', '!', '?', '…', '。', '！', '？', '।'];

/// The values a message gave a keyword's fields, in the keyword's order (serialized as a JSON
/// object in that order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Values(Vec<(String, String)>);

impl Values {
    /// The value of one field, by its exact name.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, v)| v.as_str())
    }

    /// Every (field, value), in the keyword's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(f, v)| (f.as_str(), v.as_str()))
    }

    /// How many fields have a value.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the keyword has no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The changes `set_properties` makes to the sender's case: every field a property of its
    /// name, except `name`, which sets the case's name. Values are already checked (dates
    /// normalised); the caller checks the property count on the result
    /// ([`CaseChanges::check_result`]).
    pub fn case_changes(&self) -> CaseChanges {
        let mut changes = CaseChanges::default();
        for (field, value) in &self.0 {
            if field == NAME_FIELD {
                changes.name = Some(value.clone());
            } else {
                changes
                    .properties
                    .insert(field.clone(), Some(value.clone()));
            }
        }
        changes
    }
}

impl Serialize for Values {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

/// What an inbound message is, when its first word is a keyword. The reply of
/// [`Match::Missing`] and [`Match::Invalid`] is meant for a sender the keyword would act for
/// (a case, or an unknown number under `create_case`); the engine decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match<'k> {
    /// Every field has a valid value: the keyword's actions run with `values`.
    Matched {
        /// The keyword's position among those given to [`match_message`].
        index: usize,
        keyword: &'k Keyword,
        values: Values,
    },
    /// The message stopped before `field`: send `reply`, run no action.
    Missing {
        index: usize,
        keyword: &'k Keyword,
        field: String,
        reply: String,
    },
    /// `field`'s value failed its check: send `reply`, run no action.
    Invalid {
        index: usize,
        keyword: &'k Keyword,
        field: String,
        reply: String,
    },
}

impl<'k> Match<'k> {
    /// The keyword the message selected.
    pub fn keyword(&self) -> &'k Keyword {
        match self {
            Match::Matched { keyword, .. }
            | Match::Missing { keyword, .. }
            | Match::Invalid { keyword, .. } => keyword,
        }
    }

    /// The keyword's position among those given to [`match_message`].
    pub fn index(&self) -> usize {
        match self {
            Match::Matched { index, .. }
            | Match::Missing { index, .. }
            | Match::Invalid { index, .. } => *index,
        }
    }

    /// The reply saying what was wrong, when a field was missing or invalid.
    pub fn problem_reply(&self) -> Option<&str> {
        match self {
            Match::Matched { .. } => None,
            Match::Missing { reply, .. } | Match::Invalid { reply, .. } => Some(reply),
        }
    }
}

/// The word that may be a keyword, as written, and the text after it (its fields):
/// `("reg", " Amina 1990-03-01")` for `"#reg: Amina 1990-03-01"`; `None` when the message has
/// no first word or the word is glued to more text (see the module's rules). A store holding
/// many keywords may look the word up by [`super::fold`] and give [`match_message`] only that
/// one.
pub fn first_word(text: &str) -> Option<(&str, &str)> {
    let t = text.trim_start_matches(is_filler);
    let end = t
        .char_indices()
        .find(|&(_, c)| !is_word_char(c))
        .map_or(t.len(), |(i, _)| i);
    if end == 0 || !t.chars().next().is_some_and(char::is_alphanumeric) {
        return None;
    }
    let (word, after) = t.split_at(end);
    let token_end = after.find(char::is_whitespace).unwrap_or(after.len());
    let glued = &after[..token_end];
    let rest = if glued.starts_with(JOINERS) {
        after.trim_start_matches(JOINERS)
    } else if glued.chars().all(is_filler) {
        &after[token_end..]
    } else {
        return None;
    };
    Some((word, rest))
}

/// The keyword an inbound message selects, if any, with its fields' values or the reply that
/// says what is missing or invalid. The first of `keywords` whose word matches is taken (the
/// store keeps them unique ignoring case).
pub fn match_message<'k>(
    text: &str,
    keywords: impl IntoIterator<Item = &'k Keyword>,
) -> Option<Match<'k>> {
    let (word, rest) = first_word(text)?;
    let (index, keyword) = keywords
        .into_iter()
        .enumerate()
        .find(|(_, k)| same(&k.keyword, word))?;
    Some(fill(index, keyword, rest))
}

/// Reads the fields of `keyword` from the text after it.
fn fill<'k>(index: usize, keyword: &'k Keyword, mut rest: &str) -> Match<'k> {
    let mut values = Vec::with_capacity(keyword.fields.len());
    for (i, field) in keyword.fields.iter().enumerate() {
        rest = skip_fillers(rest);
        if rest.is_empty() {
            return Match::Missing {
                index,
                keyword,
                field: field.clone(),
                reply: format!("Missing {}. Send: {}", humanise(field), keyword.usage()),
            };
        }
        let raw = if i + 1 == keyword.fields.len() {
            std::mem::take(&mut rest)
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let (word, after) = rest.split_at(end);
            rest = after;
            word
        };
        let value = raw
            .trim_end_matches(|c: char| c.is_whitespace() || TERMINATORS.contains(&c))
            .trim_start();
        match check(keyword, field, value) {
            Ok(v) => values.push((field.clone(), v)),
            Err(why) => {
                return Match::Invalid {
                    index,
                    keyword,
                    field: field.clone(),
                    reply: format!("{} {why}. Send: {}", humanise(field), keyword.usage()),
                }
            }
        }
    }
    Match::Matched {
        index,
        keyword,
        values: Values(values),
    }
}

/// A field's value as stored, or why it is refused (a sentence part after the field's name).
fn check(keyword: &Keyword, field: &str, value: &str) -> Result<String, String> {
    if keyword.is_date_field(field) {
        return read_date(value)
            .map(|d| d.to_string())
            .ok_or_else(|| "must be a date as DD/MM/YYYY, for example 25/12/2026".to_string());
    }
    let checked = if field == NAME_FIELD {
        parse_name(value)
    } else {
        parse_property_value(field, value)
    };
    checked.map_err(|e| e.message)
}

/// The text without leading white space and words of only punctuation or symbols.
fn skip_fillers(mut rest: &str) -> &str {
    loop {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if end == 0 || !rest[..end].chars().all(is_filler) {
            return rest;
        }
        rest = &rest[end..];
    }
}

/// White space, punctuation, a symbol, or an invisible character (a control or format
/// character such as a zero-width space or a byte order mark).
fn is_filler(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || is_punctuation_or_symbol(c)
        || c.general_category() == GeneralCategory::Format
}

/// A reply's text for a case (`None` for a number with no case: `{case.…}` renders empty and is
/// listed as missing), in the case's language, with `{field.NAME}` from `values`. A text longer
/// than a message may be (a long value) is cut to [`MAX_CHARS`] characters, ending in `…`.
pub fn reply_text(content: &Content, case: Option<&Case>, values: &Values) -> Rendered {
    let language = case.and_then(|c| c.language_code.as_deref());
    reply_text_with(content, language, |p| case.and_then(|c| p.value(c)), values)
}

/// As [`reply_text`] for a case read in another shape: `value` gives its `{case.…}` values.
pub fn reply_text_with<'v>(
    content: &Content,
    language: Option<&str>,
    value: impl Fn(&Placeholder) -> Option<&'v str>,
    values: &'v Values,
) -> Rendered {
    let mut rendered = content
        .for_language(language)
        .render_with_fields(value, |f| values.get(f));
    if rendered.text.chars().count() > MAX_CHARS {
        rendered.text = rendered.text.chars().take(MAX_CHARS - 1).collect();
        rendered.text.push('…');
    }
    rendered
}
