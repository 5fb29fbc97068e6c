//! The broadcasts list and a broadcast's page (status, schedule in words, texts, live counts,
//! occurrences, messages). Composing is in `broadcast_compose.rs`; the page's progress JSON and
//! its cancel, pause and resume buttons in `broadcast_controls.rs`.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};

use casecast_core::recurrence::Schedule;
use casecast_core::states::{BroadcastState, BroadcastStatus, MessageStatus};
use casecast_store::broadcasts::{Broadcast, Occurrence};
use casecast_store::messages::MessageFilter;
use serde::Deserialize;

use super::messages::{gateway_names, MessageRow};
use super::schedule_words::describe;
use super::{html, Chrome};
use crate::auth::ProjectPage;
use crate::error::PageResult;
use crate::AppState;

const PAGE_SIZE: i64 = 50;
/// Occurrences shown on a broadcast's page (and in its progress).
pub(super) const OCCURRENCES_SHOWN: i64 = 20;

/// Per-status counts, in the order a message goes through the outbound statuses.
fn counts(c: &BTreeMap<String, i64>) -> Vec<(&'static str, i64)> {
    (MessageStatus::OUTBOUND.iter())
        .map(|s| (s.as_str(), c.get(s.as_str()).copied().unwrap_or(0)))
        .collect()
}

/// A broadcast as the pages show it.
struct BroadcastRow {
    id: i64,
    name: String,
    status: &'static str,
    schedule: String,
    /// Sent when created: no times to read in the project's zone.
    immediate: bool,
    next_run: String,
    last_run: String,
    created: String,
    counts: Vec<(&'static str, i64)>,
    total: i64,
}

impl BroadcastRow {
    fn new(b: &Broadcast, zone: &jiff::tz::TimeZone) -> Self {
        let local = |ms: Option<i64>| {
            ms.map(|t| casecast_core::time::local_minute(t, zone))
                .unwrap_or_default()
        };
        BroadcastRow {
            id: b.id,
            name: b.name.clone(),
            status: b.status.as_str(),
            schedule: describe(&b.schedule),
            immediate: b.schedule == Schedule::Immediate,
            next_run: local(b.next_run_at),
            last_run: local(b.last_run_at),
            created: local(Some(b.created_at)),
            counts: counts(&b.counts),
            total: b.counts.values().sum(),
        }
    }
}

/// An occurrence as the page shows it.
struct OccurrenceRow {
    id: i64,
    index: i64,
    due: String,
    status: String,
    queued: i64,
    segments: i64,
    excluded: Vec<(&'static str, i64)>,
    missing_values: i64,
    error: String,
    counts: Vec<(&'static str, i64)>,
}

impl OccurrenceRow {
    fn new(o: &Occurrence, zone: &jiff::tz::TimeZone) -> Self {
        let e = o.excluded;
        let excluded = [
            ("no phone", e.no_phone),
            ("opted out", e.opted_out),
            ("closed", e.closed),
            ("deleted", e.deleted),
            ("same phone number", e.duplicate_phone),
            ("no gateway", e.no_gateway),
        ];
        OccurrenceRow {
            id: o.id,
            index: o.index,
            due: casecast_core::time::local_minute(o.due_at, zone),
            status: o.status.to_string(),
            queued: o.queued,
            segments: o.segments,
            excluded: excluded.into_iter().filter(|(_, n)| *n > 0).collect(),
            missing_values: o.missing_values,
            error: o.error.clone().unwrap_or_default(),
            counts: counts(&o.counts),
        }
    }
}

#[derive(Template)]
#[template(path = "broadcasts.html")]
struct ListPage {
    chrome: Chrome,
    slug: String,
    can_write: bool,
    rows: Vec<BroadcastRow>,
    first_page: bool,
    next_cursor: Option<i64>,
    time_zone: String,
}

#[derive(Template)]
#[template(path = "broadcast.html")]
struct DetailPage {
    chrome: Chrome,
    slug: String,
    can_write: bool,
    b: BroadcastRow,
    time_zone: String,
    /// (group id, name), or a note for a group deleted since.
    groups: Vec<(i64, String)>,
    cases: Vec<String>,
    gateway: String,
    texts: Vec<(String, String)>,
    /// A survey broadcast's survey: (id, name), `None` for SMS texts; the name is a note when
    /// the survey was deleted.
    survey: Option<(i64, String)>,
    error: String,
    can_cancel: bool,
    can_pause: bool,
    can_resume: bool,
    notice: Option<&'static str>,
    occurrences: Vec<OccurrenceRow>,
    more_occurrences: bool,
    messages: Vec<MessageRow>,
    q: MessageQuery,
    statuses: &'static [MessageStatus],
    filters: String,
    next_cursor: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ListQuery {
    cursor: String,
}

/// `GET …/messaging/broadcasts`.
pub(super) async fn list(
    State(state): State<AppState>,
    page: ProjectPage,
    Query(q): Query<ListQuery>,
) -> PageResult<Response> {
    let cursor = q.cursor.trim().parse::<i64>().ok();
    let (items, next_cursor) = state
        .db
        .list_broadcasts(page.project.id, PAGE_SIZE, cursor)
        .await?;
    let zone = page.project.zone();
    let view = ListPage {
        chrome: Chrome::project(&page, "broadcasts"),
        slug: page.project.slug.clone(),
        can_write: page.role.can_write(),
        rows: items.iter().map(|b| BroadcastRow::new(b, &zone)).collect(),
        first_page: cursor.is_none(),
        next_cursor,
        time_zone: page.project.time_zone.clone(),
    };
    Ok(html(&view)?.into_response())
}

#[derive(Deserialize)]
pub(super) struct BroadcastPath {
    #[allow(dead_code)]
    project: String,
    pub(super) id: i64,
}

/// The message filters of a broadcast's page, as typed.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct MessageQuery {
    status: String,
    occurrence: String,
    cursor: String,
    done: String,
}

fn notice(done: &str) -> Option<&'static str> {
    match done {
        "created" => Some("The broadcast was created. Its counts below follow its messages."),
        "cancelled" => Some("The broadcast was cancelled: nothing more goes out. Messages a gateway already had may still arrive."),
        "paused" => Some("The broadcast is paused: no occurrence fires until it is resumed."),
        "resumed" => Some("The broadcast was resumed from its next occurrence; those that fell while it was paused are skipped."),
        "refused" => Some("That could not be done: the broadcast had changed in the meantime. It is shown as it is now."),
        _ => None,
    }
}

/// `GET …/messaging/broadcasts/{id}`.
pub(super) async fn show(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<BroadcastPath>,
    Query(q): Query<MessageQuery>,
) -> PageResult<Response> {
    let b = state.db.broadcast(page.project.id, p.id).await?;
    let zone = page.project.zone();
    let occurrences = state
        .db
        .broadcast_occurrences(page.project.id, p.id, OCCURRENCES_SHOWN + 1)
        .await?;
    let status = MessageStatus::parse(q.status.trim());
    let occurrence = q.occurrence.trim().parse::<i64>().ok();
    let filter = MessageFilter {
        broadcast_id: Some(b.id),
        occurrence_id: occurrence,
        status,
        ..Default::default()
    };
    let cursor = q.cursor.trim().parse::<i64>().ok();
    let (messages, next_cursor) = state
        .db
        .list_messages(page.project.id, &filter, PAGE_SIZE, cursor)
        .await?;
    let gateways = gateway_names(&state, page.project.id).await?;
    let group_names: HashMap<i64, String> = (state.db.list_groups(page.project.id).await?)
        .into_iter()
        .map(|g| (g.id, g.name))
        .collect();
    let survey = match b.content.survey() {
        Some(id) => Some(match state.db.survey(page.project.id, id).await {
            Ok(s) => (id, s.survey.name),
            Err(casecast_store::StoreError::NotFound(_)) => (id, format!("deleted survey #{id}")),
            Err(e) => return Err(e.into()),
        }),
        None => None,
    };
    let filters = [
        ("status", status.map(|s| s.to_string()).unwrap_or_default()),
        (
            "occurrence",
            occurrence.map(|o| o.to_string()).unwrap_or_default(),
        ),
    ]
    .iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| format!("{k}={v}"))
    .collect::<Vec<_>>()
    .join("&");
    let view = DetailPage {
        chrome: Chrome::project(&page, "broadcasts"),
        slug: page.project.slug.clone(),
        can_write: page.role.can_write(),
        time_zone: page.project.time_zone.clone(),
        groups: (b.recipients.case_groups.iter())
            .map(|id| {
                let name = group_names.get(id).cloned();
                (*id, name.unwrap_or_else(|| format!("deleted group #{id}")))
            })
            .collect(),
        cases: b.recipients.cases.clone(),
        gateway: match b.gateway_id {
            Some(id) => {
                (gateways.get(&id).cloned()).unwrap_or_else(|| format!("deleted gateway #{id}"))
            }
            None => "each number's gateway (by prefix, else the default)".into(),
        },
        survey,
        texts: (b.content.sms().into_iter().flat_map(|c| c.templates()))
            .map(|(k, t)| {
                let label = if k == "*" {
                    "Default text".to_string()
                } else {
                    format!("Translation ({k})")
                };
                (label, t.as_str().to_string())
            })
            .collect(),
        error: b.error.clone().unwrap_or_default(),
        can_cancel: matches!(
            b.status,
            BroadcastStatus::Scheduled | BroadcastStatus::Sending | BroadcastStatus::Paused
        ),
        can_pause: b.state == BroadcastState::Active && b.next_run_at.is_some(),
        can_resume: b.state == BroadcastState::Paused,
        notice: notice(&q.done),
        more_occurrences: occurrences.len() as i64 > OCCURRENCES_SHOWN,
        occurrences: (occurrences.iter().take(OCCURRENCES_SHOWN as usize))
            .map(|o| OccurrenceRow::new(o, &zone))
            .collect(),
        messages: (messages.into_iter())
            .map(|m| MessageRow::new(m, &zone, &gateways, page.role))
            .collect(),
        b: BroadcastRow::new(&b, &zone),
        q,
        statuses: &MessageStatus::OUTBOUND,
        filters,
        next_cursor,
    };
    Ok(html(&view)?.into_response())
}
