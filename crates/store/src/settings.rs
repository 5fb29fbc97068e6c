//! A project's messaging settings: quiet hours, opt-out and opt-in keywords and their replies,
//! and how long a message may wait before it is too late to send. Stored as JSON on the project.

use casecast_core::case::FieldError;
use casecast_core::opt_out::Keywords;
use casecast_core::quiet_hours::QuietHours;
use serde::{Deserialize, Serialize};

use crate::error::StoreResult;
use crate::Db;

/// Default validity: a message not handed over within a day is not sent at all.
pub const DEFAULT_VALIDITY_SECONDS: i64 = 24 * 3600;
/// Shortest validity accepted (tests and very time-bound reminders).
pub const MIN_VALIDITY_SECONDS: i64 = 10;
/// Longest validity accepted: a week.
pub const MAX_VALIDITY_SECONDS: i64 = 7 * 24 * 3600;
/// Longest confirmation reply.
const MAX_REPLY_CHARS: usize = 480;

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
        }
    }
}

impl MessagingSettings {
    /// Checks settings given by an admin; the error names the field.
    pub fn check(&self) -> Result<(), FieldError> {
        match (&self.quiet_hours_start, &self.quiet_hours_end) {
            (None, None) => {}
            (Some(start), Some(end)) => {
                QuietHours::parse(start, end).map_err(|e| {
                    let field = if e.starts_with("quiet hours end") {
                        "quiet_hours_end"
                    } else {
                        "quiet_hours_start"
                    };
                    FieldError::new(field, e)
                })?;
            }
            _ => {
                return Err(FieldError::new(
                    "quiet_hours_end",
                    "give both the start and the end of quiet hours, or neither",
                ))
            }
        }
        Keywords::parse(&self.stop_keywords, &self.start_keywords).map_err(|e| {
            // Each list's own errors name it ("start keyword 2 is empty"); a word in both
            // lists is reported on the stop list, which is checked first.
            let field = if (e.contains(" start keyword") || e.starts_with("start keyword"))
                && !e.contains("both")
            {
                "start_keywords"
            } else {
                "stop_keywords"
            };
            FieldError::new(field, e)
        })?;
        for (field, reply) in [
            ("opt_out_reply", &self.opt_out_reply),
            ("opt_in_reply", &self.opt_in_reply),
        ] {
            if reply.trim().is_empty() || reply.chars().count() > MAX_REPLY_CHARS {
                return Err(FieldError::new(
                    field,
                    format!("must be 1 to {MAX_REPLY_CHARS} characters"),
                ));
            }
        }
        if !(MIN_VALIDITY_SECONDS..=MAX_VALIDITY_SECONDS).contains(&self.validity_seconds) {
            return Err(FieldError::new(
                "validity_seconds",
                format!("must be from {MIN_VALIDITY_SECONDS} to {MAX_VALIDITY_SECONDS} seconds"),
            ));
        }
        Ok(())
    }

    /// The quiet hours, if set (settings were checked when saved).
    pub fn quiet_hours(&self) -> Option<QuietHours> {
        match (&self.quiet_hours_start, &self.quiet_hours_end) {
            (Some(s), Some(e)) => QuietHours::parse(s, e).ok(),
            _ => None,
        }
    }

    /// The keywords (the defaults if the stored lists are unusable).
    pub fn keywords(&self) -> Keywords {
        Keywords::parse(&self.stop_keywords, &self.start_keywords).unwrap_or_default()
    }

    /// Reads stored settings; unreadable JSON gives the defaults.
    pub(crate) fn from_stored(json: &str) -> MessagingSettings {
        serde_json::from_str(json).unwrap_or_default()
    }
}

impl Db {
    /// Replaces a project's messaging settings after checking them.
    pub async fn set_messaging_settings(
        &self,
        project_id: i64,
        settings: &MessagingSettings,
    ) -> StoreResult<()> {
        settings.check()?;
        let json = serde_json::to_string(settings).expect("settings serialise");
        sqlx::query("UPDATE projects SET messaging_settings = $1 WHERE id = $2")
            .bind(json)
            .bind(project_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
