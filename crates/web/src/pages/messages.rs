//! The message log: every message of the project, newest first, filtered by direction, status,
//! case, phone number and date (in the project's time zone); one message in full.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use casecast_core::case::FieldError;
pub(crate) use casecast_core::states::{Direction, MessageKind, MessageStatus};
use casecast_core::{PhoneNumber, Role};
use casecast_store::messages::{Message, MessageFilter};
use serde::Deserialize;

use super::{html, Chrome};
use crate::api::messages::shown_error;
use crate::auth::{percent_encode, ProjectPage};
use crate::error::PageResult;
use crate::AppState;

const PAGE_SIZE: i64 = 50;
/// Characters of a text shown in a list; the rest is in the title and on the message's page.
const SHOWN_CHARS: usize = 80;

/// A message as the pages show it.
pub(crate) struct MessageRow {
    pub(crate) id: i64,
    pub(crate) at: String,
    pub(crate) direction: Direction,
    pub(crate) case_id: String,
    /// The case's name and external ID (empty when there is no case).
    pub(crate) case_name: String,
    pub(crate) external_id: String,
    pub(crate) phone: String,
    pub(crate) text: String,
    pub(crate) short_text: String,
    pub(crate) status: MessageStatus,
    pub(crate) error: String,
    pub(crate) segments: i64,
    pub(crate) encoding: String,
    pub(crate) attempts: i64,
    pub(crate) gateway: String,
    pub(crate) sent: String,
    pub(crate) delivered: String,
    pub(crate) kind: MessageKind,
    /// The keyword an inbound message matched, or whose reply an outbound one is.
    pub(crate) keyword_id: Option<i64>,
    /// The reminder rule that sent it.
    pub(crate) reminder_id: Option<i64>,
}

impl MessageRow {
    /// The message as `role` may see it (the gateway's own words in an error are for admins).
    pub(crate) fn new(
        m: Message,
        zone: &jiff::tz::TimeZone,
        gateways: &HashMap<i64, String>,
        role: Role,
    ) -> Self {
        let local = |ms: Option<i64>| {
            ms.map(|t| casecast_core::time::local_minute(t, zone))
                .unwrap_or_default()
        };
        let short_text = if m.text.chars().count() > SHOWN_CHARS {
            let mut t: String = m.text.chars().take(SHOWN_CHARS - 1).collect();
            t.push('…');
            t
        } else {
            m.text.clone()
        };
        MessageRow {
            id: m.id,
            at: local(Some(m.created_at)),
            direction: m.direction,
            case_id: m.case_id.unwrap_or_default(),
            case_name: m.case_name.unwrap_or_default(),
            external_id: m.case_external_id.unwrap_or_default(),
            phone: m.phone_number,
            short_text,
            text: m.text,
            status: m.status,
            error: shown_error(m.error, role).unwrap_or_default(),
            segments: m.segments,
            encoding: m.encoding,
            attempts: m.attempts,
            gateway: match m.gateway_id {
                Some(id) => gateways
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| format!("deleted gateway #{id}")),
                None => String::new(),
            },
            sent: local(m.sent_at),
            delivered: local(m.delivered_at),
            kind: m.kind,
            keyword_id: m.keyword_id,
            reminder_id: m.reminder_id,
        }
    }
}

/// The names of the project's gateways by id.
pub(crate) async fn gateway_names(
    state: &AppState,
    project_id: i64,
) -> PageResult<HashMap<i64, String>> {
    Ok(state
        .db
        .list_gateways(project_id)
        .await?
        .into_iter()
        .map(|g| (g.id, g.name))
        .collect())
}

/// The filters as typed.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct LogQuery {
    direction: String,
    status: String,
    case_id: String,
    phone: String,
    from: String,
    to: String,
    keyword_id: String,
    cursor: String,
}

#[derive(Template)]
#[template(path = "messages.html")]
struct LogPage {
    chrome: Chrome,
    slug: String,
    q: LogQuery,
    statuses: &'static [MessageStatus],
    messages: Vec<MessageRow>,
    error: Option<String>,
    /// The filters as a query string, for the pager.
    filters: String,
    next_cursor: Option<i64>,
    first_page: bool,
    time_zone: String,
    /// The project's keywords (id, word) by word; a deleted one filtered on is added.
    keywords: Vec<(i64, String)>,
}

impl LogPage {
    /// The word of a keyword (its id when it was deleted).
    fn keyword_word(&self, id: &i64) -> String {
        self.keywords
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, w)| w.clone())
            .unwrap_or_else(|| format!("deleted keyword #{id}"))
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    chrome: Chrome,
    slug: String,
    m: MessageRow,
    /// The word of the keyword it matched or answers; none when that keyword was deleted.
    keyword: Option<String>,
    /// The name of the reminder rule that sent it; none when that rule was deleted.
    reminder: Option<String>,
}

fn cut(s: &str, max: usize) -> String {
    s.trim().chars().take(max).collect()
}

/// Midnight starting `date` (`YYYY-MM-DD`) in `zone`, plus `days`, as epoch ms.
fn local_midnight(
    field: &str,
    date: &str,
    days: i64,
    zone: &jiff::tz::TimeZone,
) -> Result<i64, FieldError> {
    let bad = || FieldError::new(field, "must be a date written YYYY-MM-DD");
    let d: jiff::civil::Date = date.parse().map_err(|_| bad())?;
    let d = d
        .checked_add(jiff::Span::new().days(days))
        .map_err(|_| bad())?;
    d.to_zoned(zone.clone())
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|_| bad())
}

impl LogQuery {
    fn tidy(mut self) -> Self {
        for v in [
            &mut self.direction,
            &mut self.status,
            &mut self.case_id,
            &mut self.phone,
            &mut self.from,
            &mut self.to,
            &mut self.keyword_id,
            &mut self.cursor,
        ] {
            *v = cut(v, 255);
        }
        self
    }

    fn filter(&self, page: &ProjectPage) -> Result<MessageFilter, FieldError> {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let direction = match some(&self.direction) {
            Some(d) => Some(
                Direction::parse(&d)
                    .ok_or_else(|| FieldError::new("direction", "choose outbound or inbound"))?,
            ),
            None => None,
        };
        let status = match some(&self.status) {
            Some(s) => Some(MessageStatus::parse(&s).ok_or_else(|| {
                FieldError::new(
                    "status",
                    format!("choose one of {}", MessageStatus::choices()),
                )
            })?),
            None => None,
        };
        let phone = match some(&self.phone) {
            Some(p) => Some(
                PhoneNumber::parse(&p, page.project.country_code().as_ref())
                    .map_err(|e| FieldError::new("phone", e.to_string()))?
                    .as_str()
                    .to_string(),
            ),
            None => None,
        };
        let keyword_id = match some(&self.keyword_id) {
            Some(k) => Some(
                k.parse::<i64>()
                    .map_err(|_| FieldError::new("keyword_id", "choose one of the keywords"))?,
            ),
            None => None,
        };
        let zone = page.project.zone();
        let since = match some(&self.from) {
            Some(d) => Some(local_midnight("from", &d, 0, &zone)?),
            None => None,
        };
        // "To" includes the whole day.
        let until = match some(&self.to) {
            Some(d) => Some(local_midnight("to", &d, 1, &zone)?),
            None => None,
        };
        Ok(MessageFilter {
            direction,
            status,
            case_id: some(&self.case_id),
            phone_number: phone,
            broadcast_id: None,
            occurrence_id: None,
            keyword_id,
            reminder_id: None,
            since,
            until,
        })
    }

    fn query_string(&self) -> String {
        [
            ("direction", &self.direction),
            ("status", &self.status),
            ("case_id", &self.case_id),
            ("phone", &self.phone),
            ("from", &self.from),
            ("to", &self.to),
            ("keyword_id", &self.keyword_id),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
    }
}

fn filter_label(field: &str) -> &'static str {
    match field {
        "direction" => "Direction",
        "status" => "Status",
        "phone" => "Phone number",
        "from" => "From (date)",
        "to" => "To (date)",
        "keyword_id" => "Keyword",
        _ => "Filter",
    }
}

/// `GET …/messaging/messages`.
pub(super) async fn list(
    State(state): State<AppState>,
    page: ProjectPage,
    Query(q): Query<LogQuery>,
) -> PageResult<Response> {
    let q = q.tidy();
    let cursor = q.cursor.parse::<i64>().ok();
    let (status, messages, next_cursor, error) = match q.filter(&page) {
        Ok(filter) => {
            let (found, next) = state
                .db
                .list_messages(page.project.id, &filter, PAGE_SIZE, cursor)
                .await?;
            (StatusCode::OK, found, next, None)
        }
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Vec::new(),
            None,
            Some(format!("{}: {}", filter_label(&e.field), e.message)),
        ),
    };
    let zone = page.project.zone();
    let names = gateway_names(&state, page.project.id).await?;
    let mut keywords: Vec<(i64, String)> = super::keywords::keyword_words(&state, page.project.id)
        .await?
        .into_iter()
        .collect();
    keywords.sort_by_key(|(id, w)| (casecast_core::keyword::fold(w), *id));
    if let Ok(id) = q.keyword_id.parse::<i64>() {
        if !keywords.iter().any(|(k, _)| *k == id) {
            keywords.push((id, format!("deleted keyword #{id}")));
        }
    }
    let view = LogPage {
        chrome: Chrome::project(&page, "messages"),
        slug: page.project.slug.clone(),
        filters: q.query_string(),
        q,
        statuses: MessageStatus::ALL,
        messages: messages
            .into_iter()
            .map(|m| MessageRow::new(m, &zone, &names, page.role))
            .collect(),
        error,
        next_cursor,
        first_page: cursor.is_none(),
        time_zone: page.project.time_zone.clone(),
        keywords,
    };
    Ok((status, html(&view)?).into_response())
}

#[derive(Deserialize)]
pub(super) struct MessagePath {
    #[allow(dead_code)]
    project: String,
    id: i64,
}

/// `GET …/messaging/messages/{id}`: one message in full.
pub(super) async fn show(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<MessagePath>,
) -> PageResult<Response> {
    let m = state.db.message(page.project.id, p.id).await?;
    let names = gateway_names(&state, page.project.id).await?;
    let keyword = match m.keyword_id {
        Some(id) => match state.db.keyword(page.project.id, id).await {
            Ok(k) => Some(k.keyword.keyword),
            Err(casecast_store::StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let reminder = match m.reminder_id {
        Some(id) => match state.db.reminder(page.project.id, id).await {
            Ok(r) => Some(r.rule.name),
            Err(casecast_store::StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let view = MessagePage {
        chrome: Chrome::project(&page, "messages"),
        slug: page.project.slug.clone(),
        m: MessageRow::new(m, &page.project.zone(), &names, page.role),
        keyword,
        reminder,
    };
    Ok(html(&view)?.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_midnights_in_the_zone() {
        let kampala = jiff::tz::TimeZone::get("Africa/Kampala").unwrap();
        // 1970-01-02 00:00 in Kampala (UTC+3) is 1970-01-01 21:00 UTC.
        assert_eq!(
            local_midnight("from", "1970-01-02", 0, &kampala).unwrap(),
            21 * 3600 * 1000
        );
        assert_eq!(
            local_midnight("to", "1970-01-01", 1, &kampala).unwrap(),
            21 * 3600 * 1000
        );
        let e = local_midnight("from", "2026-13-01", 0, &kampala).unwrap_err();
        assert_eq!(e.field, "from");
    }
}
