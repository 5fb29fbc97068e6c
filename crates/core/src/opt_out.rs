//! Opt-out and opt-in keywords: which ones a project uses and whether an inbound SMS is one.
//!
//! Matching ignores case (Unicode lowercase), surrounding white space and trailing punctuation,
//! and nothing else. There is no Unicode normalisation: full-width forms (`ＳＴＯＰ`), accents
//! added or dropped (`STÖP`, `ARRET` for `ARRÊT`) and look-alike letters from other scripts
//! (Cyrillic `СТОП`) are not matched; a project that wants them lists them as keywords.

use serde::{Deserialize, Serialize};

/// Most keywords a list may hold.
const MAX_KEYWORDS: usize = 20;
/// Most characters a keyword may have.
const MAX_CHARS: usize = 20;

/// The opt-out (`stop`) and opt-in (`start`) keywords of a project.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Keywords {
    /// Keywords that opt a number out.
    pub stop: Vec<String>,
    /// Keywords that opt a number back in.
    pub start: Vec<String>,
}

impl Default for Keywords {
    /// The keywords carriers commonly honour.
    fn default() -> Self {
        let list = |words: &[&str]| words.iter().map(|w| w.to_string()).collect();
        Keywords {
            stop: list(&["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"]),
            start: list(&["START", "UNSTOP"]),
        }
    }
}

/// The opt-out (`stop`) or the opt-in (`start`) list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeywordList {
    Stop,
    Start,
}

impl KeywordList {
    /// `stop` or `start`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeywordList::Stop => "stop",
            KeywordList::Start => "start",
        }
    }
}

impl std::fmt::Display for KeywordList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why keyword lists were refused, naming the list and the keyword.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeywordError {
    #[error("give between 1 and {MAX_KEYWORDS} {list} keywords, not {count}")]
    Count { list: KeywordList, count: usize },
    /// The keyword at `position` (from 1) is empty.
    #[error("{list} keyword {position} is empty")]
    Empty { list: KeywordList, position: usize },
    #[error("{list} keyword \"{word}\" is longer than {MAX_CHARS} characters")]
    TooLong { list: KeywordList, word: String },
    #[error("{list} keyword \"{word}\" may only contain letters and digits")]
    NotAlphanumeric { list: KeywordList, word: String },
    #[error("{list} keyword \"{word}\" is listed twice")]
    Repeated { list: KeywordList, word: String },
    /// A start keyword that is also a stop keyword (as written in the start list).
    #[error("\"{0}\" cannot be both a stop and a start keyword")]
    InBoth(String),
}

impl KeywordError {
    /// The list at fault; a word in both lists is the stop list's (it is checked first).
    pub fn list(&self) -> KeywordList {
        match self {
            KeywordError::Count { list, .. }
            | KeywordError::Empty { list, .. }
            | KeywordError::TooLong { list, .. }
            | KeywordError::NotAlphanumeric { list, .. }
            | KeywordError::Repeated { list, .. } => *list,
            KeywordError::InBoth(_) => KeywordList::Stop,
        }
    }
}

impl Keywords {
    /// Checks lists given by an admin: 1–20 keywords each, 1–20 letters or digits, none twice.
    pub fn parse(stop: &[String], start: &[String]) -> Result<Keywords, KeywordError> {
        let stop = check_list(KeywordList::Stop, stop)?;
        let start = check_list(KeywordList::Start, start)?;
        if let Some(both) = start.iter().find(|s| stop.iter().any(|t| same(t, s))) {
            return Err(KeywordError::InBoth(both.clone()));
        }
        Ok(Keywords { stop, start })
    }
}

/// What an inbound message asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// Stop sending to this number.
    OptOut,
    /// Resume sending to this number.
    OptIn,
}

/// What an inbound message asks for, if the whole message is one keyword, as carriers read it.
pub fn intent(text: &str, keywords: &Keywords) -> Option<Intent> {
    // Only a bare keyword counts: "Stop please" or "don't stop" are replies to a person, and
    // treating them as opt-outs would silently cut a patient off from reminders.
    let word = text
        .trim()
        .trim_end_matches(|c: char| c.is_whitespace() || is_trailing_punctuation(c));
    if word.is_empty() {
        return None;
    }
    // Stop is checked first so that lists which bypassed `parse` and overlap err on the side
    // of not messaging someone who may have asked us to stop.
    if keywords.stop.iter().any(|k| same(k.trim(), word)) {
        Some(Intent::OptOut)
    } else if keywords.start.iter().any(|k| same(k.trim(), word)) {
        Some(Intent::OptIn)
    } else {
        None
    }
}

/// Punctuation people add after a keyword ("STOP.", "stop!!", "Stop…").
fn is_trailing_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || matches!(c, '…' | '。' | '！' | '？')
}

/// Whether two words are equal ignoring case.
fn same(a: &str, b: &str) -> bool {
    // Per-character lowercase on both sides, so multi-character lowercasings (like 'İ') agree.
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// Trims and checks one admin-given list, naming the first bad keyword.
fn check_list(list: KeywordList, words: &[String]) -> Result<Vec<String>, KeywordError> {
    if words.is_empty() || words.len() > MAX_KEYWORDS {
        return Err(KeywordError::Count {
            list,
            count: words.len(),
        });
    }
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    for (i, raw) in words.iter().enumerate() {
        let word = raw.trim();
        let chars = word.chars().count();
        if chars == 0 {
            return Err(KeywordError::Empty {
                list,
                position: i + 1,
            });
        }
        let word = word.to_string();
        if chars > MAX_CHARS {
            return Err(KeywordError::TooLong { list, word });
        }
        if !word.chars().all(char::is_alphanumeric) {
            return Err(KeywordError::NotAlphanumeric { list, word });
        }
        if out.iter().any(|o| same(o, &word)) {
            return Err(KeywordError::Repeated { list, word });
        }
        out.push(word);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn default_keywords_match_in_any_case_with_spaces_and_punctuation() {
        let k = Keywords::default();
        let stops = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
        for word in stops {
            let lower = word.to_lowercase();
            let mut title = lower.clone();
            title[..1].make_ascii_uppercase();
            for text in [
                word.to_string(),
                lower.clone(),
                title.clone(),
                format!("  {word}  "),
                format!("\n{lower}\t"),
                format!("{title}."),
                format!("{word}!!"),
                format!(" {lower} ! "),
                format!("{title}…"),
            ] {
                assert_eq!(intent(&text, &k), Some(Intent::OptOut), "{text:?}");
            }
        }
        for text in ["START", "start", " Start. ", "UNSTOP", "unstop!", "UnStOp"] {
            assert_eq!(intent(text, &k), Some(Intent::OptIn), "{text:?}");
        }
    }

    #[test]
    fn only_a_bare_keyword_matches() {
        let k = Keywords::default();
        let texts = "stop it|Stop please|don't stop|unstoppable|STOP STOP|S T O P||   |...|!|.STOP";
        let more = "\"STOP\"|yes|STOPP|ＳＴＯＰ|СТОП";
        for text in texts.split('|').chain(more.split('|')) {
            assert_eq!(intent(text, &k), None, "{text:?}");
        }
    }

    #[test]
    fn custom_keywords() {
        let k = Keywords::parse(
            &strings(&["Simama", "ARRÊT", "2"]),
            &strings(&["Anza", "1"]),
        )
        .unwrap();
        assert_eq!(intent("simama", &k), Some(Intent::OptOut));
        assert_eq!(intent("arrêt!", &k), Some(Intent::OptOut));
        assert_eq!(intent(" 2 ", &k), Some(Intent::OptOut));
        assert_eq!(intent("ANZA", &k), Some(Intent::OptIn));
        assert_eq!(intent("1.", &k), Some(Intent::OptIn));
        // Accents are not folded, and the defaults no longer apply.
        assert_eq!(intent("ARRET", &k), None);
        assert_eq!(intent("STOP", &k), None);
        assert_eq!(intent("12", &k), None);
    }

    #[test]
    fn parse_trims_and_keeps_spelling() {
        let k = Keywords::parse(&strings(&[" Stop "]), &strings(&["Go"])).unwrap();
        assert_eq!(k.stop, ["Stop"]);
        assert_eq!(k.start, ["Go"]);
    }

    #[test]
    fn parse_errors_name_the_bad_keyword() {
        let ok = strings(&["START"]);
        let err = |stop: &[&str], start: &[String]| {
            Keywords::parse(&strings(stop), start)
                .unwrap_err()
                .to_string()
        };
        assert!(err(&[], &ok).contains("not 0"));
        let many: Vec<String> = (0..21).map(|i| format!("S{i}")).collect();
        let e = Keywords::parse(&many, &ok).unwrap_err().to_string();
        assert!(e.contains("not 21"), "{e}");
        let e = Keywords::parse(&strings(&["STOP"]), &[]).unwrap_err();
        assert_eq!(e.to_string(), "give between 1 and 20 start keywords, not 0");
        let e = err(&["STOP", "  "], &ok);
        assert!(e.contains("stop keyword 2 is empty"), "{e}");
        let e = err(&["ABCDEFGHIJKLMNOPQRSTU"], &ok);
        assert!(e.contains("\"ABCDEFGHIJKLMNOPQRSTU\""), "{e}");
        let e = err(&["STOP-IT"], &ok);
        assert!(
            e.contains("\"STOP-IT\"") && e.contains("letters and digits"),
            "{e}"
        );
        let e = err(&["STOP ALL"], &ok);
        assert!(e.contains("\"STOP ALL\""), "{e}");
        let e = err(&["STOP", "stop"], &ok);
        assert!(e.contains("\"stop\" is listed twice"), "{e}");
        let e = err(&["STOP", "Start"], &ok);
        assert!(e.contains("\"START\"") && e.contains("both"), "{e}");
        // Exactly at the limits is fine.
        let twenty: Vec<String> = (0..20).map(|i| format!("S{i}")).collect();
        assert!(Keywords::parse(&twenty, &strings(&["ABCDEFGHIJKLMNOPQRST"])).is_ok());
    }

    #[test]
    fn parse_errors_say_which_list() {
        let parse = |stop: &[&str], start: &[&str]| {
            Keywords::parse(&strings(stop), &strings(start)).unwrap_err()
        };
        let e = parse(&["STOP"], &["GO", " "]);
        assert_eq!(
            (e.list(), &e),
            (
                KeywordList::Start,
                &KeywordError::Empty {
                    list: KeywordList::Start,
                    position: 2
                }
            )
        );
        let e = parse(&["STOP"], &["GO-ON"]);
        assert_eq!(e.list(), KeywordList::Start);
        assert!(matches!(e, KeywordError::NotAlphanumeric { .. }), "{e:?}");
        let e = parse(&["STOP"], &["GO", "go"]);
        assert_eq!(
            e,
            KeywordError::Repeated {
                list: KeywordList::Start,
                word: "go".into()
            }
        );
        assert_eq!(parse(&["STOP"], &[]).list(), KeywordList::Start);
        assert_eq!(parse(&[], &["GO"]).list(), KeywordList::Stop);
        let e = parse(&["HALT", "STOPPPPPPPPPPPPPPPPPPP"], &["GO"]);
        assert!(
            matches!(&e, KeywordError::TooLong { list: KeywordList::Stop, word } if word.starts_with("STOP")),
            "{e:?}"
        );
        // A word in both lists: the stop list's fault, though the start list's spelling.
        let e = parse(&["STOP"], &["Stop"]);
        assert_eq!(
            (e.list(), &e),
            (KeywordList::Stop, &KeywordError::InBoth("Stop".into()))
        );
        assert_eq!(
            e.to_string(),
            "\"Stop\" cannot be both a stop and a start keyword"
        );
    }

    #[test]
    fn keywords_that_skipped_parse_are_safe() {
        // Empty keywords must not match an empty message; overlaps read as opt-out.
        let k = Keywords {
            stop: strings(&["", "HALT"]),
            start: strings(&["halt", ""]),
        };
        assert_eq!(intent("", &k), None);
        assert_eq!(intent(".", &k), None);
        assert_eq!(intent("Halt", &k), Some(Intent::OptOut));
    }

    #[test]
    fn serde_round_trip() {
        let json = serde_json::to_string(&Keywords::default()).unwrap();
        let back: Keywords = serde_json::from_str(&json).unwrap();
        assert_eq!(back.stop, Keywords::default().stop);
        assert_eq!(back.start, ["START", "UNSTOP"]);
    }
}
