//! A survey session as a pure step function: [`step`] takes the survey, the respondent's
//! language, the stored [`SessionState`] and one [`Event`], and returns the new state and the
//! [`Action`]s the engine carries out (send a text, save an answer, set the timers, end).
//!
//! Rules:
//! - `Start` sends the intro with the first question (one message, so they arrive in order).
//! - A valid reply saves the answer and sends the next question, or the end text (if any) and
//!   ends `completed`. A skipped optional question saves nothing.
//! - An invalid reply counts an attempt; after `max_attempts` invalid replies to one question
//!   the session ends `cancelled` with the reason and nothing more is sent; before that, the
//!   invalid text and the question go out again as one message.
//! - Every transition that sends something sets both timers (`SetTimers`): the reminder, while
//!   the question has had fewer than `reminders.times` reminders, and the expiry, counted from
//!   that message (so a reminder pushes expiry back). The engine computes due times from when
//!   the message is actually sent (quiet hours) and keeps one due time of each kind per
//!   session: a new `SetTimers` replaces the old ones.
//! - Timer events carry the `step` they were scheduled at; one whose step is not the state's
//!   current step is stale and changes nothing. Every transition increments `step`.
//! - `Stop` (the number opted out) and `Cancel(reason)` end the session `cancelled` at once and
//!   send nothing. Expiry ends it `expired`, keeping the answers.
//! - A finished session (`completed`, `expired`, `cancelled`) ignores every event; so does an
//!   unstarted one, except `Start`, `Stop` and `Cancel`.
//! - "Ignored" means the state comes back unchanged with no actions.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::answer::{self, Reply};
use super::Survey;

/// Where a session is (the CONTRACT's session `status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    #[default]
    Active,
    Completed,
    Expired,
    Cancelled,
}

impl SessionStatus {
    /// Every status, in order.
    pub const ALL: [SessionStatus; 4] = [
        SessionStatus::Active,
        SessionStatus::Completed,
        SessionStatus::Expired,
        SessionStatus::Cancelled,
    ];

    /// The stored text.
    pub const fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Active => "active",
            SessionStatus::Completed => "completed",
            SessionStatus::Expired => "expired",
            SessionStatus::Cancelled => "cancelled",
        }
    }

    /// The status stored as `text`, if any.
    pub fn parse(text: &str) -> Option<SessionStatus> {
        SessionStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the session is over.
    pub fn is_finished(self) -> bool {
        self != SessionStatus::Active
    }
}

impl std::fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the engine stores of a session between events (absent fields read as their defaults).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionState {
    pub status: SessionStatus,
    /// Index of the question waiting for a reply; `None` before `Start` and once finished.
    pub current_question: Option<usize>,
    /// Invalid replies to the current question.
    pub attempts: u32,
    /// Reminders sent for the current question.
    pub reminders_sent: u32,
    /// Accepted answers by question key, normalised.
    pub answers: Map<String, Value>,
    /// Incremented by every transition; timers scheduled at another step are stale.
    pub step: u64,
    /// Why a session was cancelled or expired.
    pub reason: Option<String>,
}

impl SessionState {
    /// A session not started yet.
    pub fn new() -> SessionState {
        SessionState::default()
    }

    /// Whether `Start` has been handled.
    pub fn started(&self) -> bool {
        self.step > 0
    }
}

/// Something that happens to a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Send the intro and the first question.
    Start,
    /// An inbound text from the respondent.
    Reply(String),
    /// The reminder set at `step` is due.
    ReminderDue { step: u64 },
    /// The expiry set at `step` is due.
    ExpiryDue { step: u64 },
    /// The number opted out (a stop keyword).
    Stop,
    /// Closed from outside (a new survey for the case, a user), with why.
    Cancel(String),
}

/// Something the engine must do, in order, in the same transaction as storing the new state.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send this text to the respondent.
    Send(String),
    /// Record an accepted answer; with `case_property`, also set that case property.
    SaveAnswer {
        key: String,
        value: Value,
        case_property: Option<String>,
    },
    /// Replace the session's timers: a reminder due `reminder_in` after the message is sent
    /// (none: no reminder), the expiry due `expiry_in` after it; both fire with `step`.
    SetTimers {
        reminder_in: Option<Duration>,
        expiry_in: Duration,
        step: u64,
    },
    /// The session is over: clear its timers, record the status, the reason and the time.
    End {
        status: SessionStatus,
        reason: Option<String>,
    },
}

/// The text of a case property value for an answer (a JSON string's contents, else the JSON).
pub fn property_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => super::answer::number_text(n),
        other => other.to_string(),
    }
}

fn minutes(m: u32) -> Duration {
    Duration::from_secs(u64::from(m) * 60)
}

/// The state after `event`, and what to do; see the module's rules.
pub fn step(
    survey: &Survey,
    language: Option<&str>,
    state: &SessionState,
    event: Event,
) -> (SessionState, Vec<Action>) {
    let ignored = || (state.clone(), Vec::new());
    if state.status.is_finished() {
        return ignored();
    }
    let mut next = state.clone();
    let mut actions = Vec::new();
    match event {
        Event::Start => {
            if state.started() || survey.questions.is_empty() {
                return ignored();
            }
            next.step += 1;
            next.current_question = Some(0);
            actions.push(Action::Send(survey.first_message(language)));
            actions.push(timers(survey, &next));
        }
        Event::Stop => {
            end(
                &mut next,
                &mut actions,
                SessionStatus::Cancelled,
                "the number opted out (stop keyword)".into(),
            );
        }
        Event::Cancel(reason) => {
            end(&mut next, &mut actions, SessionStatus::Cancelled, reason);
        }
        Event::ReminderDue { step } => {
            let Some(q) = state.current_question else {
                return ignored();
            };
            let times = survey.reminders.map_or(0, |r| r.times);
            if step != state.step || state.reminders_sent >= times {
                return ignored();
            }
            next.step += 1;
            next.reminders_sent += 1;
            actions.push(Action::Send(survey.questions[q].message(language)));
            actions.push(timers(survey, &next));
        }
        Event::ExpiryDue { step } => {
            if step != state.step || !state.started() {
                return ignored();
            }
            let why = format!("no reply for {} minutes", survey.expire_after_minutes);
            end(&mut next, &mut actions, SessionStatus::Expired, why);
        }
        Event::Reply(text) => {
            let Some(q) = state.current_question else {
                return ignored();
            };
            let Some(question) = survey.questions.get(q) else {
                return ignored();
            };
            next.step += 1;
            match answer::read(question, &text) {
                Reply::Answer(value) => {
                    next.answers.insert(question.key.clone(), value.clone());
                    actions.push(Action::SaveAnswer {
                        key: question.key.clone(),
                        value,
                        case_property: question.case_property.clone(),
                    });
                    advance(survey, language, &mut next, &mut actions);
                }
                Reply::Skip => advance(survey, language, &mut next, &mut actions),
                Reply::Invalid => {
                    next.attempts += 1;
                    if next.attempts >= survey.max_attempts {
                        let why = format!(
                            "{} invalid replies to question {} ({})",
                            next.attempts,
                            q + 1,
                            question.key
                        );
                        end(&mut next, &mut actions, SessionStatus::Cancelled, why);
                    } else {
                        actions.push(Action::Send(survey.invalid_message(question, language)));
                        actions.push(timers(survey, &next));
                    }
                }
            }
        }
    }
    (next, actions)
}

/// Moves to the next question, or completes the session after the last one.
fn advance(
    survey: &Survey,
    language: Option<&str>,
    next: &mut SessionState,
    actions: &mut Vec<Action>,
) {
    let following = next.current_question.map_or(0, |q| q + 1);
    next.attempts = 0;
    next.reminders_sent = 0;
    match survey.questions.get(following) {
        Some(question) => {
            next.current_question = Some(following);
            actions.push(Action::Send(question.message(language)));
            actions.push(timers(survey, next));
        }
        None => {
            if let Some(text) = survey.end_text.as_ref() {
                let text = text.choose(language).trim();
                if !text.is_empty() {
                    actions.push(Action::Send(text.to_string()));
                }
            }
            next.current_question = None;
            next.status = SessionStatus::Completed;
            actions.push(Action::End {
                status: SessionStatus::Completed,
                reason: None,
            });
        }
    }
}

/// Ends the session with `status` and why.
fn end(next: &mut SessionState, actions: &mut Vec<Action>, status: SessionStatus, reason: String) {
    next.step += 1;
    next.status = status;
    next.current_question = None;
    next.reason = Some(reason.clone());
    actions.push(Action::End {
        status,
        reason: Some(reason),
    });
}

/// The timers after a message at `next`'s step.
fn timers(survey: &Survey, next: &SessionState) -> Action {
    let reminder_in = survey
        .reminders
        .filter(|r| next.reminders_sent < r.times)
        .map(|r| minutes(r.every_minutes));
    Action::SetTimers {
        reminder_in,
        expiry_in: minutes(survey.expire_after_minutes),
        step: next.step,
    }
}

#[cfg(test)]
mod tests;
