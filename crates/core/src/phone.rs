//! Phone numbers: the one place where user-written numbers become E.164.

use std::fmt;

use phonenumber::country::Id as CountryId;
use serde::{Deserialize, Serialize};

use crate::ids::CountryCode;

/// A valid phone number in E.164 form (`+256772123456`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

/// Why a text is not a phone number; the message is shown to the user who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("the phone number is empty")]
    Empty,
    #[error("'{0}' contains letters; a phone number has only digits, spaces, '+', '-', '.', '(' and ')'")]
    Letters(String),
    #[error("'{0}' contains '{1}', which is not allowed in a phone number")]
    BadCharacter(String, char),
    #[error("'{0}' is too short to be a phone number")]
    TooShort(String),
    #[error("'{0}' is too long to be a phone number (at most 15 digits)")]
    TooLong(String),
    #[error("'{0}' does not start with a known country calling code")]
    UnknownCountryCode(String),
    #[error("'{0}' has no country code, and the project has no default country; write it with '+' and the country code")]
    NoCountry(String),
    #[error("'{0}' is not a valid phone number")]
    Invalid(String),
    #[error("'{0}' is not a valid phone number for {1}")]
    InvalidForCountry(String, String),
}

impl PhoneNumber {
    /// Parses a number as users write it: `+256 772 123 456`, `00256…`, `(256) 772.123.456`,
    /// `256772123456` (international digits without `+`, CommCare's format) or a national
    /// number (`0772 123456`) read in `default_country`.
    pub fn parse(input: &str, default_country: Option<&CountryCode>) -> Result<Self, PhoneError> {
        let text = input.trim();
        if text.is_empty() {
            return Err(PhoneError::Empty);
        }
        let shown = || text.to_string();
        if text.chars().any(|c| c.is_alphabetic()) {
            return Err(PhoneError::Letters(shown()));
        }
        let mut digits = String::with_capacity(text.len());
        let mut plus = false;
        for (i, c) in text.chars().enumerate() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if i == 0 => plus = true,
                ' ' | '-' | '.' | '(' | ')' | '\u{a0}' => {}
                other => return Err(PhoneError::BadCharacter(shown(), other)),
            }
        }
        if !plus {
            if let Some(rest) = digits.strip_prefix("00") {
                digits = rest.to_string();
                plus = true;
            }
        }
        if digits.len() < 6 {
            return Err(PhoneError::TooShort(shown()));
        }
        if digits.len() > 15 {
            return Err(PhoneError::TooLong(shown()));
        }
        if plus {
            return international(&digits).ok_or_else(|| {
                if has_country_code(&digits) {
                    PhoneError::Invalid(shown())
                } else {
                    PhoneError::UnknownCountryCode(shown())
                }
            });
        }
        if !digits.starts_with('0') {
            // Digits that begin with a valid country code are international even without '+':
            // that is how CommCare stores numbers.
            if let Some(number) = international(&digits) {
                return Ok(number);
            }
        }
        let Some(country) = default_country else {
            return Err(PhoneError::NoCountry(shown()));
        };
        national(&digits, country)
            .ok_or_else(|| PhoneError::InvalidForCountry(shown(), country.as_str().to_string()))
    }

    /// The E.164 text, `+` and digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A form safe for logs: the country code and the last two digits.
    pub fn masked(&self) -> String {
        let keep_start = 4.min(self.0.len());
        let keep_end = self.0.len().saturating_sub(2).max(keep_start);
        format!(
            "{}{}{}",
            &self.0[..keep_start],
            "*".repeat(keep_end - keep_start),
            &self.0[keep_end..]
        )
    }
}

fn has_country_code(digits: &str) -> bool {
    (1..=3).any(|n| {
        digits
            .get(..n)
            .and_then(|p| p.parse::<u16>().ok())
            .is_some_and(|code| phonenumber::metadata::DATABASE.by_code(&code).is_some())
    })
}

/// Runs the parser behind a panic guard: the `phonenumber` crate has panicked on fuzzed input.
fn guarded(country: Option<CountryId>, text: String) -> Option<PhoneNumber> {
    let parsed = std::panic::catch_unwind(move || {
        let number = phonenumber::parse(country, &text).ok()?;
        number
            .is_valid()
            .then(|| number.format().mode(phonenumber::Mode::E164).to_string())
    })
    .ok()??;
    Some(PhoneNumber(parsed))
}

/// A parsed number only if it is one Casecast can store and read back: at most 15 digits
/// (E.164), and read again from its stored text it is valid and the same (issue 18: a German
/// national number came out with 16 digits, and a Brazilian 0900 number valid only in national
/// form came out as E.164 text the parser then refused).
fn storable(number: PhoneNumber) -> Option<PhoneNumber> {
    if number.0.len() > 16 {
        return None;
    }
    let again = guarded(None, number.0.clone())?;
    (again == number).then_some(number)
}

fn international(digits: &str) -> Option<PhoneNumber> {
    // Parsed without a default region: with one, the crate misreads some `+…` numbers.
    let text = format!("+{digits}");
    let number = guarded(None, text.clone())?;
    if number.0 == text {
        // Its stored text is what was just parsed, the same way: reading it back would give
        // the same answer (half of an import's phone parsing).
        return (number.0.len() <= 16).then_some(number);
    }
    storable(number)
}

fn national(digits: &str, country: &CountryCode) -> Option<PhoneNumber> {
    storable(guarded(Some(country.id()), digits.to_string())?)
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<PhoneNumber> for String {
    fn from(p: PhoneNumber) -> String {
        p.0
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = PhoneError;
    /// Accepts only E.164 text (used when reading back stored values).
    fn try_from(s: String) -> Result<Self, PhoneError> {
        if s.starts_with('+') {
            PhoneNumber::parse(&s, None)
        } else {
            Err(PhoneError::Invalid(s))
        }
    }
}

impl PhoneNumber {
    /// Wraps a value read back from storage, where only valid E.164 is ever written.
    pub fn from_stored(e164: String) -> Self {
        PhoneNumber(e164)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]
        /// Issue 18's invariant over numbers as people type them, in 12 countries and none:
        /// whatever `parse` accepts has at most 15 digits and reads back from its stored text
        /// as the same number.
        #[test]
        fn parse_round_trips_through_storage(
            digits in "[0-9]{4,16}",
            prefix in proptest::sample::select(vec!["", "+", "00", "0"]),
            country in proptest::sample::select(vec![
                None, Some("UG"), Some("KE"), Some("TZ"), Some("DE"), Some("BR"), Some("US"),
                Some("IN"), Some("NG"), Some("GB"), Some("FR"), Some("MX"), Some("ZA"),
            ]),
        ) {
            let country = country.map(|c| CountryCode::parse(c).unwrap());
            if let Ok(n) = PhoneNumber::parse(&format!("{prefix}{digits}"), country.as_ref()) {
                proptest::prop_assert!(n.as_str().len() <= 16, "{}", n);
                proptest::prop_assert_eq!(PhoneNumber::try_from(n.as_str().to_string()), Ok(n));
            }
        }
    }

    /// Issue 18, findings 2 and 3: what `parse` accepts, the stored text reads back as the
    /// same number, and has at most 15 digits.
    #[test]
    fn what_parse_accepts_reads_back_from_storage() {
        let de = CountryCode::parse("DE").unwrap();
        let br = CountryCode::parse("BR").unwrap();
        assert!(matches!(
            PhoneNumber::parse("54445444544445", Some(&de)),
            Err(PhoneError::InvalidForCountry(..))
        ));
        assert!(matches!(
            PhoneNumber::parse("09 0.00.09533", Some(&br)),
            Err(PhoneError::InvalidForCountry(..))
        ));
        for (text, country) in [
            ("0772 123456", "UG"),
            ("030 1234567", "DE"),
            ("(11) 91234-5678", "BR"),
            ("+1 202 555 0143", "US"),
            ("0712 345678", "KE"),
        ] {
            let country = CountryCode::parse(country).unwrap();
            let n = PhoneNumber::parse(text, Some(&country)).unwrap();
            assert!(n.as_str().len() <= 16, "{n}");
            assert_eq!(PhoneNumber::try_from(n.as_str().to_string()).unwrap(), n);
        }
    }

    fn ug() -> CountryCode {
        CountryCode::parse("UG").unwrap()
    }

    #[test]
    fn accepts_common_ways_of_writing_a_number() {
        for text in [
            "+256 772 123 456",
            "00256772123456",
            "0772123456",
            "0772 123456",
            "256-772-123-456",
            "(256) 772.123.456",
            "256772123456",
            "+256772123456",
            "  +256772123456  ",
        ] {
            let n = PhoneNumber::parse(text, Some(&ug())).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(n.as_str(), "+256772123456", "{text}");
        }
    }

    #[test]
    fn international_digits_win_over_the_default_country() {
        let ke = CountryCode::parse("KE").unwrap();
        let n = PhoneNumber::parse("256772123456", Some(&ke)).unwrap();
        assert_eq!(n.as_str(), "+256772123456");
        let n = PhoneNumber::parse("0712345678", Some(&ke)).unwrap();
        assert_eq!(n.as_str(), "+254712345678");
    }

    #[test]
    fn plus_numbers_ignore_the_default_country() {
        let n = PhoneNumber::parse("+33142764978", Some(&ug())).unwrap();
        assert_eq!(n.as_str(), "+33142764978");
    }

    #[test]
    fn rejects_bad_numbers_with_a_reason() {
        type Check = fn(&PhoneError) -> bool;
        let cases: [(&str, Check); 7] = [
            ("+256abc", |e| matches!(e, PhoneError::Letters(_))),
            ("12", |e| matches!(e, PhoneError::TooShort(_))),
            ("+999123456789", |e| {
                matches!(e, PhoneError::UnknownCountryCode(_))
            }),
            ("", |e| matches!(e, PhoneError::Empty)),
            ("   ", |e| matches!(e, PhoneError::Empty)),
            ("+256 77#1234567", |e| {
                matches!(e, PhoneError::BadCharacter(_, '#'))
            }),
            ("1234567890123456", |e| matches!(e, PhoneError::TooLong(_))),
        ];
        for (text, check) in cases {
            let err = PhoneNumber::parse(text, Some(&ug())).unwrap_err();
            assert!(check(&err), "{text}: {err:?}");
            assert!(!err.to_string().is_empty());
        }
        let err = PhoneNumber::parse("0772", Some(&ug())).unwrap_err();
        assert!(err.to_string().contains("too short"), "{err}");
        let err = PhoneNumber::parse("0772123", Some(&ug())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "'0772123' is not a valid phone number for UG"
        );
        let err = PhoneNumber::parse("0772123456", None).unwrap_err();
        assert!(matches!(err, PhoneError::NoCountry(_)));
    }

    #[test]
    fn masks_for_logs() {
        let n = PhoneNumber::parse("+256772123456", None).unwrap();
        assert_eq!(n.masked(), "+256*******56");
    }

    #[test]
    fn never_panics_on_odd_input() {
        for text in [
            "+",
            "++1",
            "(((",
            "+0000000000",
            "000000",
            "+1 (((((((( 2",
            "-.-.-.-",
        ] {
            let _ = PhoneNumber::parse(text, Some(&ug()));
        }
    }
}
