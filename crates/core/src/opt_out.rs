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

impl Keywords {
    /// Checks lists given by an admin: 1–20 keywords each, 1–20 letters or digits, none twice.
    pub fn parse(stop: &[String], start: &[String]) -> Result<Keywords, String> {
        let stop = check_list("stop", stop)?;
        let start = check_list("start", start)?;
        if let Some(both) = start.iter().find(|s| stop.iter().any(|t| same(t, s))) {
            return Err(format!(
                "\"{both}\" cannot be both a stop and a start keyword"
            ));
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
fn check_list(which: &str, words: &[String]) -> Result<Vec<String>, String> {
    if words.is_empty() || words.len() > MAX_KEYWORDS {
        return Err(format!(
            "give between 1 and {MAX_KEYWORDS} {which} keywords, not {}",
            words.len()
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    for (i, raw) in words.iter().enumerate() {
        let word = raw.trim();
        let chars = word.chars().count();
        if chars == 0 {
            return Err(format!("{which} keyword {} is empty", i + 1));
        }
        if chars > MAX_CHARS {
            return Err(format!(
                "{which} keyword \"{word}\" is longer than {MAX_CHARS} characters"
            ));
        }
        if !word.chars().all(char::is_alphanumeric) {
            return Err(format!(
                "{which} keyword \"{word}\" may only contain letters and digits"
            ));
        }
        if out.iter().any(|o| same(o, word)) {
            return Err(format!("{which} keyword \"{word}\" is listed twice"));
        }
        out.push(word.to_string());
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
        let err = |stop: &[&str], start: &[String]| Keywords::parse(&strings(stop), start);
        assert!(err(&[], &ok).unwrap_err().contains("not 0"));
        let many: Vec<String> = (0..21).map(|i| format!("S{i}")).collect();
        let e = Keywords::parse(&many, &ok).unwrap_err();
        assert!(e.contains("not 21"), "{e}");
        let e = Keywords::parse(&strings(&["STOP"]), &[]).unwrap_err();
        assert!(e.contains("start keywords"), "{e}");
        let e = err(&["STOP", "  "], &ok).unwrap_err();
        assert!(e.contains("stop keyword 2 is empty"), "{e}");
        let e = err(&["ABCDEFGHIJKLMNOPQRSTU"], &ok).unwrap_err();
        assert!(e.contains("\"ABCDEFGHIJKLMNOPQRSTU\""), "{e}");
        let e = err(&["STOP-IT"], &ok).unwrap_err();
        assert!(
            e.contains("\"STOP-IT\"") && e.contains("letters and digits"),
            "{e}"
        );
        let e = err(&["STOP ALL"], &ok).unwrap_err();
        assert!(e.contains("\"STOP ALL\""), "{e}");
        let e = err(&["STOP", "stop"], &ok).unwrap_err();
        assert!(e.contains("\"stop\" is listed twice"), "{e}");
        let e = err(&["STOP", "Start"], &ok).unwrap_err();
        assert!(e.contains("\"START\"") && e.contains("both"), "{e}");
        // Exactly at the limits is fine.
        let twenty: Vec<String> = (0..20).map(|i| format!("S{i}")).collect();
        assert!(Keywords::parse(&twenty, &strings(&["ABCDEFGHIJKLMNOPQRST"])).is_ok());
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
