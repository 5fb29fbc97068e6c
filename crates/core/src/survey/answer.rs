//! Reading a reply to one question: what it means for each question type, the normalised value
//! that is stored, and what the respondent is told is expected when it means nothing.
//!
//! Decisions:
//! - Every type but `text` ignores case, surrounding white space and surrounding punctuation
//!   (`"Yes!"`, `"(2)"`, `"12."`); a sign and a decimal point inside a number are kept.
//! - `number`: an optional sign, digits, an optional decimal part (`12`, `-3`, `12.5`, `.5`,
//!   `12.`). A comma is a decimal separator (`37,2` → 37.2) unless exactly three digits follow
//!   it (`1,500` could be fifteen hundred or 1.5: refused, as are words, exponents, `NaN`).
//!   The stored value is a JSON integer when there is no fraction (`12.0` → 12), else a
//!   decimal. More than 15 significant digits are refused (a float would not keep them).
//! - `date`: `YYYY-MM-DD`, `DD/MM/YYYY`, `DD-MM-YYYY`, `DD.MM.YYYY` (day and month of one or two
//!   digits), and `DDMMYYYY`; the calendar is checked (31/02 is refused); years 1900 to 2200.
//!   Eight digits are always day, month, year (never `YYYYMMDD`).
//! - `choice`: the option's number, its value, its text in any of the survey's languages, or
//!   a synonym; matched after normalising (case, surrounding punctuation, inner runs of spaces),
//!   so `3.`, `(3)` and `-3-` choose option 3. An option's text in any language chooses it.
//! - `yes_no`: the words of [`YES_NO`] in every language, whatever the session's language (a
//!   respondent may answer in another language than the case's); `1` is yes and `2` no.
//! - `skip` (any case, surrounding punctuation ignored) skips an optional question; on a
//!   required `text` question it is an answer like any other text, on other required questions
//!   it is invalid.

use serde_json::{Number, Value};

use super::{Question, QuestionType};
use crate::case::MAX_PROPERTY_VALUE;

/// What a reply means for a question.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// An accepted answer, normalised as stored.
    Answer(Value),
    /// "skip" on an optional question.
    Skip,
    /// Not an answer to this question.
    Invalid,
}

/// Words that mean yes and no, by language (the first of each is the one shown).
pub const YES_NO: [(&str, &[&str], &[&str]); 6] = [
    ("en", &["yes", "y", "yeah", "yep"], &["no", "n", "nope"]),
    ("sw", &["ndiyo", "ndio"], &["hapana"]),
    ("fr", &["oui"], &["non"]),
    ("pt", &["sim"], &["não", "nao"]),
    ("es", &["sí", "si"], &[]),
    ("lg", &["yee"], &["nedda"]),
];

/// The reply lowercased, without surrounding white space or punctuation, inner white space
/// runs made one space.
pub fn normalise(text: &str) -> String {
    let trimmed = text.trim_matches(|c: char| c.is_whitespace() || is_punctuation(c));
    trimmed
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || matches!(c, '¡' | '¿' | '«' | '»' | '“' | '”' | '‘' | '’' | '…')
}

/// What `text` means as a reply to `question`.
pub fn read(question: &Question, text: &str) -> Reply {
    if !question.required && normalise(text) == "skip" {
        return Reply::Skip;
    }
    let value = match question.kind {
        QuestionType::Text => read_text(question, text),
        QuestionType::Number => read_number(text)
            .filter(|n| in_range(question, n))
            .map(Value::Number),
        QuestionType::Date => read_date(text).map(|d| Value::String(d.to_string())),
        QuestionType::Choice => read_choice(question, text).map(Value::String),
        QuestionType::YesNo => {
            read_yes_no(text).map(|yes| Value::from(if yes { "yes" } else { "no" }))
        }
    };
    value.map_or(Reply::Invalid, Reply::Answer)
}

fn read_text(question: &Question, text: &str) -> Option<Value> {
    let t = text.trim();
    let n = t.chars().count();
    let min = question.min.as_ref().and_then(Number::as_u64).unwrap_or(1) as usize;
    let max = question
        .max
        .as_ref()
        .and_then(Number::as_u64)
        .map_or(MAX_PROPERTY_VALUE, |m| m as usize);
    (n >= min.max(1) && n <= max && !t.contains('\0')).then(|| Value::String(t.to_string()))
}

fn in_range(question: &Question, n: &Number) -> bool {
    let v = n.as_f64().unwrap_or(f64::NAN);
    question
        .min
        .as_ref()
        .and_then(Number::as_f64)
        .is_none_or(|m| v >= m)
        && question
            .max
            .as_ref()
            .and_then(Number::as_f64)
            .is_none_or(|m| v <= m)
}

/// A number as written in a reply, normalised (see the module's rules).
pub fn read_number(text: &str) -> Option<Number> {
    let t = text
        .trim()
        .trim_end_matches(|c: char| c.is_whitespace() || matches!(c, '.' | '!' | ')' | ','));
    let t = t.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
    let (negative, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = match (digits.find('.'), digits.find(',')) {
        (Some(_), Some(_)) => return None,
        (Some(i), None) => (&digits[..i], &digits[i + 1..]),
        (None, Some(i)) => {
            let frac = &digits[i + 1..];
            if frac.len() == 3 {
                return None;
            }
            (&digits[..i], frac)
        }
        (None, None) => (digits, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || !all_digits(frac) || (int.is_empty() && frac.is_empty()) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    if int.len() + frac.len() > 15 {
        return None;
    }
    let sign = if negative { "-" } else { "" };
    if frac.is_empty() {
        let v: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
        return Some(Number::from(if negative { -v } else { v }));
    }
    let v: f64 = format!("{sign}{}.{frac}", if int.is_empty() { "0" } else { int })
        .parse()
        .ok()?;
    Number::from_f64(v)
}

pub use crate::case::number_text;

/// A date as written in a reply (see the module's formats).
pub fn read_date(text: &str) -> Option<jiff::civil::Date> {
    let t = text.trim_matches(|c: char| c.is_whitespace() || matches!(c, '.' | '!' | '(' | ')'));
    let num = |s: &str, min: usize, max: usize| -> Option<i16> {
        ((min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())?
    };
    let (y, m, d) = if t.len() == 8 && t.bytes().all(|b| b.is_ascii_digit()) {
        (
            num(&t[4..], 4, 4)?,
            num(&t[2..4], 2, 2)?,
            num(&t[..2], 2, 2)?,
        )
    } else {
        let sep = t.chars().find(|c| matches!(c, '-' | '/' | '.'))?;
        let parts: Vec<&str> = t.split(sep).collect();
        if parts.len() != 3 {
            return None;
        }
        if parts[0].len() == 4 {
            if sep != '-' {
                return None;
            }
            (
                num(parts[0], 4, 4)?,
                num(parts[1], 2, 2)?,
                num(parts[2], 2, 2)?,
            )
        } else {
            (
                num(parts[2], 4, 4)?,
                num(parts[1], 1, 2)?,
                num(parts[0], 1, 2)?,
            )
        }
    };
    if !(1900..=2200).contains(&y) {
        return None;
    }
    jiff::civil::Date::new(y, i8::try_from(m).ok()?, i8::try_from(d).ok()?).ok()
}

/// The `value` of the option a reply chooses.
pub fn read_choice(question: &Question, text: &str) -> Option<String> {
    let reply = normalise(text);
    if reply.is_empty() {
        return None;
    }
    if let Ok(n) = reply.parse::<usize>() {
        return question
            .choices
            .get(n.checked_sub(1)?)
            .map(|c| c.value.trim().to_string());
    }
    question
        .choices
        .iter()
        .find(|c| {
            normalise(&c.value) == reply
                || c.text.0.values().any(|t| normalise(t) == reply)
                || c.synonyms.iter().any(|s| normalise(s) == reply)
        })
        .map(|c| c.value.trim().to_string())
}

/// `true` for yes, `false` for no.
pub fn read_yes_no(text: &str) -> Option<bool> {
    let reply = normalise(text);
    match reply.as_str() {
        "1" => return Some(true),
        "2" => return Some(false),
        _ => {}
    }
    if YES_NO
        .iter()
        .any(|(_, yes, _)| yes.contains(&reply.as_str()))
    {
        Some(true)
    } else if YES_NO.iter().any(|(_, _, no)| no.contains(&reply.as_str())) {
        Some(false)
    } else {
        None
    }
}

/// The default sentence saying what a question expects ("Please reply with a number from 1
/// to 5"), used when neither the question nor the survey has an invalid text.
pub fn expected(question: &Question) -> String {
    let min = question.min.as_ref();
    let max = question.max.as_ref();
    match question.kind {
        QuestionType::Text => match (min, max) {
            (Some(a), Some(b)) => format!("Please reply with {a} to {b} characters."),
            (None, Some(b)) => format!("Please reply with at most {b} characters."),
            (Some(a), None) => format!("Please reply with at least {a} characters."),
            (None, None) => "Please reply with some text.".to_string(),
        },
        QuestionType::Number => match (min, max) {
            (Some(a), Some(b)) => format!(
                "Please reply with a number from {} to {}.",
                number_text(a),
                number_text(b)
            ),
            (None, Some(b)) => format!("Please reply with a number of at most {}.", number_text(b)),
            (Some(a), None) => {
                format!("Please reply with a number of at least {}.", number_text(a))
            }
            (None, None) => "Please reply with a number.".to_string(),
        },
        QuestionType::Date => {
            "Please reply with a date as DD/MM/YYYY, for example 25/12/2026.".to_string()
        }
        QuestionType::Choice => {
            format!(
                "Please reply with a number from 1 to {}.",
                question.choices.len()
            )
        }
        QuestionType::YesNo => "Please reply YES or NO.".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::survey::{Choice, Texts};

    fn question(kind: QuestionType, extra: Value) -> Question {
        let mut q = json!({"key": "q", "type": kind, "text": "?"});
        for (k, v) in extra.as_object().unwrap() {
            q[k] = v.clone();
        }
        serde_json::from_value(q).unwrap()
    }

    fn check(q: &Question, cases: &[(&str, Option<Value>)]) {
        for (reply, want) in cases {
            let got = read(q, reply);
            let want = want.clone().map_or(Reply::Invalid, Reply::Answer);
            assert_eq!(got, want, "reply {reply:?} to a {:?} question", q.kind);
        }
    }

    #[test]
    fn numbers() {
        let q = question(QuestionType::Number, json!({}));
        check(
            &q,
            &[
                ("12", Some(json!(12))),
                (" 12 ", Some(json!(12))),
                ("12.5", Some(json!(12.5))),
                ("12.50", Some(json!(12.5))),
                ("12.0", Some(json!(12))),
                ("12.", Some(json!(12))),
                (".5", Some(json!(0.5))),
                ("-3", Some(json!(-3))),
                ("+3", Some(json!(3))),
                ("007", Some(json!(7))),
                ("0", Some(json!(0))),
                ("-0", Some(json!(0))),
                ("37,2", Some(json!(37.2))),
                ("1,5", Some(json!(1.5))),
                ("1,500", None),
                ("1,500.5", None),
                ("1.2.3", None),
                ("twelve", None),
                ("12 kg", None),
                ("1e5", None),
                ("NaN", None),
                ("inf", None),
                ("", None),
                ("-", None),
                (".", None),
                ("1 2", None),
                ("１２", None),
                ("9999999999999999", None),
                ("123456789012345", Some(json!(123456789012345i64))),
            ],
        );
        let ranged = question(QuestionType::Number, json!({"min": 1, "max": 5}));
        check(
            &ranged,
            &[
                ("1", Some(json!(1))),
                ("5", Some(json!(5))),
                ("4.9", Some(json!(4.9))),
                ("0", None),
                ("5.01", None),
                ("6", None),
            ],
        );
        assert_eq!(expected(&ranged), "Please reply with a number from 1 to 5.");
        let decimal = question(QuestionType::Number, json!({"min": 35.5}));
        check(&decimal, &[("35.5", Some(json!(35.5))), ("35,4", None)]);
    }

    #[test]
    fn dates() {
        let q = question(QuestionType::Date, json!({}));
        check(
            &q,
            &[
                ("2026-12-25", Some(json!("2026-12-25"))),
                ("25/12/2026", Some(json!("2026-12-25"))),
                ("25-12-2026", Some(json!("2026-12-25"))),
                ("25.12.2026", Some(json!("2026-12-25"))),
                ("25122026", Some(json!("2026-12-25"))),
                ("5/3/2026", Some(json!("2026-03-05"))),
                (" 05/03/2026. ", Some(json!("2026-03-05"))),
                ("29/02/2028", Some(json!("2028-02-29"))),
                ("29/02/2026", None),
                ("31/02/2026", None),
                ("31/04/2026", None),
                ("32/01/2026", None),
                ("01/13/2026", None),
                ("12/25/2026", None),
                ("20261225", None),
                ("2026/12/25", None),
                ("2026-1-5", None),
                ("25/12/26", None),
                ("25/12-2026", None),
                ("25/12/1850", None),
                ("tomorrow", None),
                ("", None),
                ("00/00/0000", None),
            ],
        );
    }

    #[test]
    fn choices() {
        let mut q = question(QuestionType::Choice, json!({}));
        q.choices = vec![
            Choice {
                value: "yes".into(),
                text: Texts(
                    [
                        ("*".to_string(), "Yes".to_string()),
                        ("sw".into(), "Ndiyo".into()),
                    ]
                    .into(),
                ),
                synonyms: vec![],
            },
            Choice {
                value: "no".into(),
                text: Texts::from_default("No"),
                synonyms: vec![],
            },
            Choice {
                value: "not_sure".into(),
                text: Texts::from_default("Not sure"),
                synonyms: vec!["dunno".into(), "Sijui".into()],
            },
        ];
        check(
            &q,
            &[
                ("1", Some(json!("yes"))),
                ("3", Some(json!("not_sure"))),
                ("3.", Some(json!("not_sure"))),
                ("(2)", Some(json!("no"))),
                ("YES", Some(json!("yes"))),
                ("ndiyo!", Some(json!("yes"))),
                ("not  SURE", Some(json!("not_sure"))),
                ("Not_Sure", Some(json!("not_sure"))),
                ("sijui", Some(json!("not_sure"))),
                ("DUNNO?", Some(json!("not_sure"))),
                ("0", None),
                ("4", None),
                ("-1-", Some(json!("yes"))),
                ("1 2", None),
                ("y", None),
                ("", None),
                ("maybe", None),
            ],
        );
        assert_eq!(expected(&q), "Please reply with a number from 1 to 3.");
    }

    #[test]
    fn yes_no_in_several_languages() {
        let q = question(QuestionType::YesNo, json!({}));
        let yes = Some(json!("yes"));
        let no = Some(json!("no"));
        check(
            &q,
            &[
                ("yes", yes.clone()),
                ("Y", yes.clone()),
                ("YES!", yes.clone()),
                ("1", yes.clone()),
                ("ndiyo", yes.clone()),
                ("Ndio.", yes.clone()),
                ("oui", yes.clone()),
                ("Sí", yes.clone()),
                ("no", no.clone()),
                ("n", no.clone()),
                ("2", no.clone()),
                ("hapana", no.clone()),
                ("NON", no.clone()),
                ("não", no.clone()),
                ("3", None),
                ("yes no", None),
                ("maybe", None),
                ("", None),
            ],
        );
        // Every word means one thing only.
        for (_, yes, _) in YES_NO {
            for w in yes {
                assert_eq!(read_yes_no(w), Some(true), "{w}");
            }
        }
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        let q = question(QuestionType::Text, json!({"max": 5}));
        check(
            &q,
            &[
                ("  hello ", Some(json!("hello"))),
                ("héllo", Some(json!("héllo"))),
                ("hello!", None),
                ("   ", None),
                ("", None),
            ],
        );
        assert_eq!(expected(&q), "Please reply with at most 5 characters.");
        let long = question(QuestionType::Text, json!({}));
        assert_eq!(
            read(&long, &"x".repeat(4096)),
            Reply::Answer(json!("x".repeat(4096)))
        );
        assert_eq!(read(&long, &"x".repeat(4097)), Reply::Invalid);
        assert_eq!(read(&long, "Skip"), Reply::Answer(json!("Skip")));
    }

    #[test]
    fn skip_moves_past_optional_questions_only() {
        for kind in [
            QuestionType::Text,
            QuestionType::Choice,
            QuestionType::Number,
            QuestionType::Date,
            QuestionType::YesNo,
        ] {
            let optional = question(kind, json!({"required": false}));
            for reply in ["skip", "SKIP", " Skip. "] {
                assert_eq!(read(&optional, reply), Reply::Skip, "{kind:?} {reply:?}");
            }
            let required = question(kind, json!({}));
            assert_ne!(read(&required, "skip"), Reply::Skip, "{kind:?}");
        }
    }

    #[test]
    fn normalising_keeps_inner_text() {
        assert_eq!(normalise("  ¿Not   SURE?! "), "not sure");
        assert_eq!(normalise("«Ndiyo»"), "ndiyo");
        assert_eq!(normalise("..."), "");
        assert_eq!(normalise("ÉTÉ"), "été");
    }
}
