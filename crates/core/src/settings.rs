//! A project's messaging settings: quiet hours, opt-out and opt-in keywords and their replies,
//! and how long a message may wait before it is too late to send. Stored as JSON on the project,
//! checked when saved and again when read: stored settings that cannot be used are an error
//! ([`SettingsError`]), never quietly replaced by the defaults.

use crate::case::FieldError;
use crate::opt_out::{KeywordList, Keywords};
use crate::quiet_hours::{QuietHours, WindowEnd};
use serde::{Deserialize, Serialize};

/// Default validity: a message not handed over within a day is not sent at all.
pub const DEFAULT_VALIDITY_SECONDS: i64 = 24 * 3600;
/// Shortest validity accepted (tests and very time-bound reminders).
pub const MIN_VALIDITY_SECONDS: i64 = 10;
/// Longest validity accepted: a week.
pub const MAX_VALIDITY_SECONDS: i64 = 7 * 24 * 3600;
/// Longest confirmation reply.
const MAX_REPLY_CHARS: usize = 480;
/// Default reminder late limit: an occurrence more than 2 days late is recorded as missed.
pub const DEFAULT_REMINDER_LATE_LIMIT_HOURS: i64 = 48;
/// Longest reminder late limit accepted: 30 days (as a rule's own `late_limit_hours`).
pub const MAX_REMINDER_LATE_LIMIT_HOURS: i64 = crate::reminder::MAX_LATE_LIMIT_HOURS as i64;

/// Messaging settings of a project; every field has a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessagingSettings {
    /// Local time ("21:00") from which nothing is sent; none when absent.
    pub quiet_hours_start: Option<String>,
    /// Local time ("07:00") at which sending resumes.
    pub quiet_hours_end: Option<String>,
    /// Keywords that opt a number out.
    pub stop_keywords: Vec<String>,
    /// Keywords that opt a number back in.
    pub start_keywords: Vec<String>,
    /// The reply to an opt-out.
    pub opt_out_reply: String,
    /// The reply to an opt-in.
    pub opt_in_reply: String,
    /// Seconds a message may wait (retries, quiet hours, a gateway down) before it expires.
    pub validity_seconds: i64,
    /// The reply to an inbound message that matches no keyword and answers no survey; none
    /// (the default): no reply. Never sent to an opted-out number.
    pub default_reply: Option<String>,
    /// Most automatic replies (keywords' replies, the default reply) to one number in a window,
    /// as `"5/10m"` (see `crate::keyword::ReplyLimit`), so that two auto-responders stop.
    pub keyword_reply_limit: String,
    /// Hours a reminder occurrence may be late (after an outage) and still be sent; later it
    /// is recorded as missed. A rule's own `late_limit_hours` replaces it.
    pub reminder_late_limit_hours: i64,
}

impl Default for MessagingSettings {
    fn default() -> Self {
        let keywords = Keywords::default();
        MessagingSettings {
            quiet_hours_start: None,
            quiet_hours_end: None,
            stop_keywords: keywords.stop,
            start_keywords: keywords.start,
            opt_out_reply: "You have been unsubscribed and will get no more messages. Reply START to subscribe again.".into(),
            opt_in_reply: "You have been subscribed again. Reply STOP to unsubscribe.".into(),
            validity_seconds: DEFAULT_VALIDITY_SECONDS,
            default_reply: None,
            keyword_reply_limit: crate::keyword::ReplyLimit::default().to_string(),
            reminder_late_limit_hours: DEFAULT_REMINDER_LATE_LIMIT_HOURS,
        }
    }
}

/// A field of the messaging settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SettingsField {
    QuietHoursStart,
    QuietHoursEnd,
    StopKeywords,
    StartKeywords,
    OptOutReply,
    OptInReply,
    ValiditySeconds,
    DefaultReply,
    KeywordReplyLimit,
    ReminderLateLimitHours,
}

impl SettingsField {
    /// The field's name in the API and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            SettingsField::QuietHoursStart => "quiet_hours_start",
            SettingsField::QuietHoursEnd => "quiet_hours_end",
            SettingsField::StopKeywords => "stop_keywords",
            SettingsField::StartKeywords => "start_keywords",
            SettingsField::OptOutReply => "opt_out_reply",
            SettingsField::OptInReply => "opt_in_reply",
            SettingsField::ValiditySeconds => "validity_seconds",
            SettingsField::DefaultReply => "default_reply",
            SettingsField::KeywordReplyLimit => "keyword_reply_limit",
            SettingsField::ReminderLateLimitHours => "reminder_late_limit_hours",
        }
    }
}

/// A messaging setting that breaks its rule: which field, and why. Shown as `field: message`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", .field.as_str())]
pub struct SettingsFieldError {
    pub field: SettingsField,
    pub message: String,
}

impl SettingsFieldError {
    fn new(field: SettingsField, message: impl Into<String>) -> Self {
        SettingsFieldError {
            field,
            message: message.into(),
        }
    }
}

impl From<SettingsFieldError> for FieldError {
    fn from(e: SettingsFieldError) -> Self {
        FieldError::new(e.field.as_str(), e.message)
    }
}

/// Why a project's stored messaging settings cannot be used. Until an admin saves them again,
/// the dispatcher sends none of the project's messages (the quiet hours are not known).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SettingsError {
    /// The stored text is not JSON. Says where, never what (the replies are message text).
    #[error("the stored messaging settings are not valid JSON (line {line}, column {column})")]
    NotJson { line: usize, column: usize },
    /// The stored JSON is not an object.
    #[error("the stored messaging settings are not a JSON object")]
    NotAnObject,
    /// A stored value has the wrong type (`at` names it: `validity_seconds`, `stop_keywords[1]`).
    #[error("the stored messaging settings are not in the form of messaging settings (at {at})")]
    WrongShape { at: String },
    /// A stored field breaks its rule; `stored` are the settings as stored, for an admin to mend.
    #[error("the stored {error}")]
    Invalid {
        stored: Box<MessagingSettings>,
        error: SettingsFieldError,
    },
}

impl SettingsError {
    /// The field at fault and why, when one is.
    pub fn field_error(&self) -> Option<&SettingsFieldError> {
        match self {
            SettingsError::NotJson { .. }
            | SettingsError::NotAnObject
            | SettingsError::WrongShape { .. } => None,
            SettingsError::Invalid { error, .. } => Some(error),
        }
    }

    /// The settings as stored, when they can be read at all.
    pub fn stored(&self) -> Option<&MessagingSettings> {
        match self {
            SettingsError::NotJson { .. }
            | SettingsError::NotAnObject
            | SettingsError::WrongShape { .. } => None,
            SettingsError::Invalid { stored, .. } => Some(stored),
        }
    }
}

impl MessagingSettings {
    /// Checks settings given by an admin; the error names the field.
    pub fn check(&self) -> Result<(), SettingsFieldError> {
        self.quiet_hours()?;
        self.keywords()?;
        for (field, reply) in [
            (SettingsField::OptOutReply, &self.opt_out_reply),
            (SettingsField::OptInReply, &self.opt_in_reply),
        ] {
            if reply.trim().is_empty() || reply.chars().count() > MAX_REPLY_CHARS {
                return Err(SettingsFieldError::new(
                    field,
                    format!("must be 1 to {MAX_REPLY_CHARS} characters"),
                ));
            }
        }
        if !(MIN_VALIDITY_SECONDS..=MAX_VALIDITY_SECONDS).contains(&self.validity_seconds) {
            return Err(SettingsFieldError::new(
                SettingsField::ValiditySeconds,
                format!("must be from {MIN_VALIDITY_SECONDS} to {MAX_VALIDITY_SECONDS} seconds"),
            ));
        }
        if let Some(reply) = &self.default_reply {
            if reply.trim().is_empty() || reply.chars().count() > MAX_REPLY_CHARS {
                return Err(SettingsFieldError::new(
                    SettingsField::DefaultReply,
                    format!("must be 1 to {MAX_REPLY_CHARS} characters, or none (no reply)"),
                ));
            }
        }
        self.reply_limit()?;
        if !(1..=MAX_REMINDER_LATE_LIMIT_HOURS).contains(&self.reminder_late_limit_hours) {
            return Err(SettingsFieldError::new(
                SettingsField::ReminderLateLimitHours,
                format!(
                    "must be a whole number of hours from 1 to {MAX_REMINDER_LATE_LIMIT_HOURS} \
                     (30 days)"
                ),
            ));
        }
        Ok(())
    }

    /// The per-number limit of automatic replies; an error says the form expected.
    pub fn reply_limit(&self) -> Result<crate::keyword::ReplyLimit, SettingsFieldError> {
        self.keyword_reply_limit
            .parse()
            .map_err(|e: crate::keyword::LimitError| {
                SettingsFieldError::new(SettingsField::KeywordReplyLimit, e.to_string())
            })
    }

    /// The quiet hours, if set; an error names the end that is not a time, or the missing end.
    pub fn quiet_hours(&self) -> Result<Option<QuietHours>, SettingsFieldError> {
        match (&self.quiet_hours_start, &self.quiet_hours_end) {
            (None, None) => Ok(None),
            (Some(start), Some(end)) => QuietHours::parse(start, end).map(Some).map_err(|e| {
                let field = match e.end {
                    WindowEnd::Start => SettingsField::QuietHoursStart,
                    WindowEnd::End => SettingsField::QuietHoursEnd,
                };
                SettingsFieldError::new(field, e.to_string())
            }),
            _ => Err(SettingsFieldError::new(
                SettingsField::QuietHoursEnd,
                "give both the start and the end of quiet hours, or neither",
            )),
        }
    }

    /// The opt-out and opt-in keywords; an error names the list at fault.
    pub fn keywords(&self) -> Result<Keywords, SettingsFieldError> {
        Keywords::parse(&self.stop_keywords, &self.start_keywords).map_err(|e| {
            let field = match e.list() {
                KeywordList::Stop => SettingsField::StopKeywords,
                KeywordList::Start => SettingsField::StartKeywords,
            };
            SettingsFieldError::new(field, e.to_string())
        })
    }

    /// Reads stored settings and checks them as they were checked when saved.
    pub fn from_stored(json: &str) -> Result<MessagingSettings, SettingsError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| SettingsError::NotJson {
                line: e.line(),
                column: e.column(),
            })?;
        // Serde would read a list as the fields in order: only an object is settings.
        if !value.is_object() {
            return Err(SettingsError::NotAnObject);
        }
        let settings: MessagingSettings =
            serde_path_to_error::deserialize(&value).map_err(|e| SettingsError::WrongShape {
                at: e.path().to_string(),
            })?;
        match settings.check() {
            Ok(()) => Ok(settings),
            Err(error) => Err(SettingsError::Invalid {
                stored: Box::new(settings),
                error,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(change: impl FnOnce(&mut MessagingSettings)) -> MessagingSettings {
        let mut s = MessagingSettings::default();
        change(&mut s);
        s
    }

    fn field_of(s: &MessagingSettings) -> SettingsField {
        s.check().unwrap_err().field
    }

    #[test]
    fn check_names_the_field_at_fault() {
        assert_eq!(MessagingSettings::default().check(), Ok(()));
        let quiet = |start: &str, end: &str| {
            with(|s| {
                s.quiet_hours_start = Some(start.into());
                s.quiet_hours_end = Some(end.into());
            })
        };
        assert_eq!(
            field_of(&quiet("25:00", "07:00")),
            SettingsField::QuietHoursStart
        );
        assert_eq!(
            field_of(&quiet("21:00", "7pm")),
            SettingsField::QuietHoursEnd
        );
        // Both wrong: the start is named first.
        assert_eq!(field_of(&quiet("x", "y")), SettingsField::QuietHoursStart);
        let e = quiet("21:00", "24:00").check().unwrap_err();
        assert_eq!(
            e.to_string(),
            "quiet_hours_end: quiet hours end \"24:00\" is not a time like 21:00"
        );
        let only_start = with(|s| s.quiet_hours_start = Some("21:00".into()));
        assert_eq!(field_of(&only_start), SettingsField::QuietHoursEnd);
        let only_end = with(|s| s.quiet_hours_end = Some("07:00".into()));
        assert_eq!(field_of(&only_end), SettingsField::QuietHoursEnd);
        let words = |w: &[&str]| w.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let stop = with(|s| s.stop_keywords = words(&["STOP", "STOP IT"]));
        assert_eq!(field_of(&stop), SettingsField::StopKeywords);
        // Errors of the start list, whatever their words, are the start list's.
        for start in [&[][..], &["GO", ""], &["GO", "go"], &["START-NOW"]] {
            let s = with(|s| s.start_keywords = words(start));
            assert_eq!(field_of(&s), SettingsField::StartKeywords, "{start:?}");
        }
        // A word in both lists is reported on the stop list.
        let both = with(|s| s.start_keywords = words(&["stop"]));
        let e = both.check().unwrap_err();
        assert_eq!(e.field, SettingsField::StopKeywords);
        assert!(e.message.contains("both a stop and a start keyword"), "{e}");
        let e = with(|s| s.opt_in_reply = " ".into()).check().unwrap_err();
        assert_eq!(
            (e.field, e.to_string().as_str()),
            (
                SettingsField::OptInReply,
                "opt_in_reply: must be 1 to 480 characters"
            )
        );
        let out = with(|s| s.opt_out_reply = "x".repeat(481));
        assert_eq!(field_of(&out), SettingsField::OptOutReply);
        let short = with(|s| s.validity_seconds = 5);
        assert_eq!(field_of(&short), SettingsField::ValiditySeconds);
        let f = FieldError::from(short.check().unwrap_err());
        assert_eq!(f.field, "validity_seconds");
        for hours in [0, -1, 721] {
            let late = with(|s| s.reminder_late_limit_hours = hours);
            let e = late.check().unwrap_err();
            assert_eq!(
                (e.field, e.to_string().as_str()),
                (
                    SettingsField::ReminderLateLimitHours,
                    "reminder_late_limit_hours: must be a whole number of hours from 1 to 720 \
                     (30 days)"
                ),
                "{hours}"
            );
        }
        assert_eq!(
            jiff::SignedDuration::from_hours(DEFAULT_REMINDER_LATE_LIMIT_HOURS),
            crate::reminder::DEFAULT_LATE_LIMIT
        );
        for hours in [1, 48, 720] {
            assert_eq!(
                with(|s| s.reminder_late_limit_hours = hours).check(),
                Ok(())
            );
        }
    }

    #[test]
    fn stored_settings_that_cannot_be_used_are_an_error() {
        let good = with(|s| {
            s.quiet_hours_start = Some("21:00".into());
            s.quiet_hours_end = Some("07:00".into());
        });
        let json = serde_json::to_string(&good).unwrap();
        assert_eq!(MessagingSettings::from_stored(&json), Ok(good.clone()));
        // Fields left out take their defaults (settings saved before a field existed).
        assert_eq!(
            MessagingSettings::from_stored("{}"),
            Ok(MessagingSettings::default())
        );
        let broken = json.replace("07:00", "7 am");
        let e = MessagingSettings::from_stored(&broken).unwrap_err();
        assert_eq!(
            e.field_error().map(|f| f.field),
            Some(SettingsField::QuietHoursEnd)
        );
        assert_eq!(
            e.stored().and_then(|s| s.quiet_hours_end.as_deref()),
            Some("7 am")
        );
        assert_eq!(
            e.to_string(),
            "the stored quiet_hours_end: quiet hours end \"7 am\" is not a time like 21:00"
        );
        let e = MessagingSettings::from_stored("{\"quiet_hours_start\": \"21:00\"").unwrap_err();
        assert_eq!(
            e,
            SettingsError::NotJson {
                line: 1,
                column: 29
            }
        );
        assert_eq!(
            e.to_string(),
            "the stored messaging settings are not valid JSON (line 1, column 29)"
        );
        assert_eq!((e.field_error(), e.stored()), (None, None));
        // The wrong value is not repeated: a reply is message text.
        let e =
            MessagingSettings::from_stored(r#"{"validity_seconds": "Bye for now"}"#).unwrap_err();
        assert_eq!(
            e,
            SettingsError::WrongShape {
                at: "validity_seconds".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "the stored messaging settings are not in the form of messaging settings (at validity_seconds)"
        );
        let e = MessagingSettings::from_stored(
            r#"{"opt_in_reply": "Hi", "stop_keywords": ["STOP", 7]}"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            SettingsError::WrongShape {
                at: "stop_keywords[1]".into()
            }
        );
        // A list is not read as the fields in order.
        for list in ["[]", r#"[null, "07:00"]"#, "7", "null"] {
            assert_eq!(
                MessagingSettings::from_stored(list),
                Err(SettingsError::NotAnObject),
                "{list}"
            );
        }
    }
}
