//! The project's messaging settings page: quiet hours, stop and start keywords and their
//! replies, how long a message may wait, and how late a reminder may still go. Admins change them; everyone else reads them.
//! Stored settings that cannot be used are shown as they are stored, with what is wrong.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use casecast_core::case::FieldError;
use casecast_store::settings::{MessagingSettings, SettingsField};
use serde::Deserialize;

use super::{html, Chrome, DoneQuery};
use crate::auth::ProjectPage;
use crate::error::PageResult;
use crate::AppState;

/// The form's fields, as typed.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SettingsForm {
    csrf: String,
    quiet_hours_start: String,
    quiet_hours_end: String,
    stop_keywords: String,
    start_keywords: String,
    opt_out_reply: String,
    opt_in_reply: String,
    validity: String,
    /// `hours`, `minutes` or `seconds`.
    validity_unit: String,
    /// Empty: no default reply.
    #[serde(default)]
    default_reply: String,
    #[serde(default)]
    keyword_reply_limit: String,
    /// Empty: the default (48).
    #[serde(default)]
    reminder_late_limit_hours: String,
}

fn unit_seconds(unit: &str) -> Option<i64> {
    match unit {
        "hours" => Some(3600),
        "minutes" => Some(60),
        "seconds" => Some(1),
        _ => None,
    }
}

fn words(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

impl SettingsForm {
    fn from_settings(s: &MessagingSettings) -> Self {
        let (validity, unit) = match s.validity_seconds {
            v if v % 3600 == 0 => (v / 3600, "hours"),
            v if v % 60 == 0 => (v / 60, "minutes"),
            v => (v, "seconds"),
        };
        SettingsForm {
            csrf: String::new(),
            quiet_hours_start: s.quiet_hours_start.clone().unwrap_or_default(),
            quiet_hours_end: s.quiet_hours_end.clone().unwrap_or_default(),
            stop_keywords: s.stop_keywords.join(", "),
            start_keywords: s.start_keywords.join(", "),
            opt_out_reply: s.opt_out_reply.clone(),
            opt_in_reply: s.opt_in_reply.clone(),
            validity: validity.to_string(),
            validity_unit: unit.to_string(),
            default_reply: s.default_reply.clone().unwrap_or_default(),
            keyword_reply_limit: s.keyword_reply_limit.clone(),
            reminder_late_limit_hours: s.reminder_late_limit_hours.to_string(),
        }
    }

    fn settings(&self) -> Result<MessagingSettings, FieldError> {
        let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        let amount: i64 = self
            .validity
            .trim()
            .parse()
            .map_err(|_| FieldError::new("validity", "must be a whole number"))?;
        let unit = unit_seconds(&self.validity_unit)
            .ok_or_else(|| FieldError::new("validity", "choose hours, minutes or seconds"))?;
        let late_limit = match self.reminder_late_limit_hours.trim() {
            "" => MessagingSettings::default().reminder_late_limit_hours,
            given => given.parse().map_err(|_| {
                FieldError::new(
                    "reminder_late_limit_hours",
                    "must be a whole number of hours",
                )
            })?,
        };
        Ok(MessagingSettings {
            quiet_hours_start: opt(&self.quiet_hours_start),
            quiet_hours_end: opt(&self.quiet_hours_end),
            stop_keywords: words(&self.stop_keywords),
            start_keywords: words(&self.start_keywords),
            opt_out_reply: self.opt_out_reply.trim().to_string(),
            opt_in_reply: self.opt_in_reply.trim().to_string(),
            validity_seconds: amount.saturating_mul(unit),
            default_reply: opt(&self.default_reply),
            keyword_reply_limit: match self.keyword_reply_limit.trim() {
                "" => MessagingSettings::default().keyword_reply_limit,
                given => given.to_string(),
            },
            reminder_late_limit_hours: late_limit,
        })
    }
}

/// The form field a settings field is typed in.
fn form_field(field: SettingsField) -> &'static str {
    match field {
        SettingsField::QuietHoursStart => "quiet_hours_start",
        SettingsField::QuietHoursEnd => "quiet_hours_end",
        SettingsField::StopKeywords => "stop_keywords",
        SettingsField::StartKeywords => "start_keywords",
        SettingsField::OptOutReply => "opt_out_reply",
        SettingsField::OptInReply => "opt_in_reply",
        SettingsField::ValiditySeconds => "validity",
        SettingsField::DefaultReply => "default_reply",
        SettingsField::KeywordReplyLimit => "keyword_reply_limit",
        SettingsField::ReminderLateLimitHours => "reminder_late_limit_hours",
    }
}

fn label(field: &str) -> &'static str {
    match field {
        "quiet_hours_start" => "Quiet hours start",
        "quiet_hours_end" => "Quiet hours end",
        "stop_keywords" => "Stop keywords",
        "start_keywords" => "Start keywords",
        "opt_out_reply" => "Reply to an opt-out",
        "opt_in_reply" => "Reply to an opt-in",
        "default_reply" => "Default reply",
        "keyword_reply_limit" => "Automatic replies per number",
        "reminder_late_limit_hours" => "Reminder late limit",
        _ => "Validity",
    }
}

#[derive(Template)]
#[template(path = "messaging_settings.html")]
struct SettingsPage {
    chrome: Chrome,
    slug: String,
    is_admin: bool,
    form: SettingsForm,
    time_zone: String,
    /// (form field, message).
    error: Option<(&'static str, String)>,
    /// What the page says when the stored settings cannot be used.
    stored_error: Option<String>,
    notice: Option<&'static str>,
}

impl SettingsPage {
    fn err(&self, field: &str) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
    }

    fn summary(&self) -> Option<String> {
        self.error
            .as_ref()
            .map(|(f, m)| format!("{}: {m}", label(f)))
    }
}

fn render(
    page: &ProjectPage,
    status: StatusCode,
    form: SettingsForm,
    error: Option<(&'static str, String)>,
    notice: Option<&'static str>,
) -> PageResult<Response> {
    let view = SettingsPage {
        chrome: Chrome::project(page, "settings"),
        slug: page.project.slug.clone(),
        is_admin: page.require_admin().is_ok(),
        form,
        time_zone: page.project.time_zone.clone(),
        error,
        stored_error: page
            .project
            .messaging
            .as_ref()
            .err()
            .map(|e| match e.field_error() {
                // The field is marked in the form (`show`).
                Some(_) => "The stored settings cannot be used.".to_string(),
                None => format!(
                    "The stored settings cannot be read ({e}): the form shows the defaults."
                ),
            }),
        notice,
    };
    Ok((status, html(&view)?).into_response())
}

/// `GET …/messaging/settings`. Stored settings that cannot be used show as stored (the
/// defaults when they cannot be read at all), the field at fault marked.
pub(super) async fn show(page: ProjectPage, Query(q): Query<DoneQuery>) -> PageResult<Response> {
    let notice = (q.done.as_deref() == Some("saved")).then_some("The settings were saved.");
    let (form, error) = match &page.project.messaging {
        Ok(s) => (SettingsForm::from_settings(s), None),
        Err(e) => {
            let stored = e.stored().cloned().unwrap_or_default();
            let error = e
                .field_error()
                .map(|f| (form_field(f.field), f.message.clone()));
            (SettingsForm::from_settings(&stored), error)
        }
    };
    render(&page, StatusCode::OK, form, error, notice)
}

/// `POST …/messaging/settings` (admins).
pub(super) async fn save(
    State(state): State<AppState>,
    page: ProjectPage,
    Form(form): Form<SettingsForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_admin()?;
    // The form's own checks are about the numbers typed; the settings are checked here as the
    // store checks them, for the field at fault (the store checks again).
    let checked = form
        .settings()
        .map_err(|f| {
            let field = match f.field.as_str() {
                "reminder_late_limit_hours" => "reminder_late_limit_hours",
                _ => "validity",
            };
            (field, f.message)
        })
        .and_then(|s| {
            s.check().map_err(|e| (form_field(e.field), e.message))?;
            Ok(s)
        });
    match checked {
        Ok(s) => {
            state.db.set_messaging_settings(page.project.id, &s).await?;
            Ok(Redirect::to(&format!(
                "/a/{}/messaging/settings?done=saved",
                page.project.slug
            ))
            .into_response())
        }
        Err(error) => render(
            &page,
            StatusCode::UNPROCESSABLE_ENTITY,
            form,
            Some(error),
            None,
        ),
    }
}
