//! Reminder pages (issue 15): the list (each rule in words with its counts and the progress of
//! its evaluation), a rule's page (what is due next, what was sent and missed, the upcoming
//! list, the controls), the form (new and edit, with a Preview that shows what would be sent
//! in the next 30 days and saves nothing), activating, deactivating and deleting. Everyone in
//! the project sees them; editors and admins change them.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{DefaultBodyLimit, Path, RawForm, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use casecast_core::case::FieldError;
use casecast_core::reminder::{ReminderRule, Start, Timing, DEFAULT_LATE_LIMIT};
use casecast_core::template::MAX_CHARS;
use casecast_engine::reminders::{self, Upcoming};
use casecast_store::reminders::StoredReminder;
use serde::Deserialize;

use super::reminder_form::{message_of, ReminderForm};
use super::{html, to_form_page, Chrome, Flash};
use crate::auth::ProjectPage;
use crate::error::PageResult;
use crate::AppState;

/// The longest form: a rule at its limits (two queries of 10,000 characters, texts in 20
/// languages), URL-encoded.
const FORM_LIMIT: usize = 1024 * 1024;
/// The days the upcoming list looks ahead.
const UPCOMING_DAYS: u32 = 30;
/// The upcoming occurrences shown.
const UPCOMING_ROWS: usize = 50;
/// The cases due next a rule's page shows.
const NEXT_ROWS: usize = 20;
/// The occurrences handled a rule's page shows.
const HANDLED_ROWS: usize = 50;
/// Characters of a text shown in a summary.
const SUMMARY_CHARS: usize = 60;

/// The reminder pages' routes.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/a/{project}/messaging/reminders", get(list))
        .route(
            "/a/{project}/messaging/reminders/new",
            get(new_form)
                .post(create)
                .layer(DefaultBodyLimit::max(FORM_LIMIT)),
        )
        .route("/a/{project}/messaging/reminders/{id}", get(show))
        .route(
            "/a/{project}/messaging/reminders/{id}/edit",
            get(edit_form)
                .post(update)
                .layer(DefaultBodyLimit::max(FORM_LIMIT)),
        )
        .route(
            "/a/{project}/messaging/reminders/{id}/activate",
            get(to_form_page).post(activate),
        )
        .route(
            "/a/{project}/messaging/reminders/{id}/deactivate",
            get(to_form_page).post(deactivate),
        )
        .route(
            "/a/{project}/messaging/reminders/{id}/delete",
            get(to_form_page).post(delete),
        )
}

#[derive(Deserialize)]
struct ReminderPath {
    #[allow(dead_code)]
    project: String,
    id: i64,
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

fn list_url(page: &ProjectPage) -> String {
    format!("/a/{}/messaging/reminders", page.project.slug)
}

fn rule_url(page: &ProjectPage, id: i64) -> String {
    format!("{}/{id}", list_url(page))
}

/// `1,234,567`.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// "1 case", "4,000 cases".
fn counted(n: i64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{} {many}", thousands(n))
    }
}

fn days(n: u32) -> String {
    if n == 1 {
        "1 day".into()
    } else {
        format!("{n} days")
    }
}

fn hh_mm(t: jiff::civil::Time) -> String {
    t.strftime("%H:%M").to_string()
}

/// When a rule sends, in words: "2 days before next_visit at 09:00, 3 times every 1 day".
pub(crate) fn when_words(timing: &Timing) -> String {
    let start = match &timing.start {
        Start::Date {
            property,
            offset_days,
            time,
        } => {
            let day = match *offset_days {
                0 => format!("on {property}"),
                n if n < 0 => format!("{} before {property}", days(n.unsigned_abs())),
                n => format!("{} after {property}", days(n.unsigned_abs())),
            };
            format!("{day} at {}", hh_mm(*time))
        }
        Start::Immediately { time } => match (time, timing.repeat) {
            (Some(t), Some(r)) if r.times > 1 => format!(
                "when a case starts matching (the later occurrences at {})",
                hh_mm(*t)
            ),
            _ => "when a case starts matching".to_string(),
        },
    };
    match timing.repeat {
        Some(r) if r.times > 1 => {
            format!("{start}, {} times every {}", r.times, days(r.every_days))
        }
        _ => format!("{start}, once"),
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() > SUMMARY_CHARS {
        let mut t: String = text.chars().take(SUMMARY_CHARS - 1).collect();
        t.push('…');
        t
    } else {
        text.to_string()
    }
}

/// The project's surveys (id, name), by name.
async fn surveys(state: &AppState, project_id: i64) -> PageResult<Vec<(i64, String)>> {
    let mut list: Vec<(i64, String)> = state
        .db
        .list_surveys(project_id)
        .await?
        .into_iter()
        .map(|s| (s.id, s.survey.name))
        .collect();
    list.sort_by_key(|(_, n)| n.to_lowercase());
    Ok(list)
}

fn survey_name(surveys: &[(i64, String)], id: i64) -> String {
    surveys
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, n)| n.clone())
        .unwrap_or_else(|| format!("deleted survey #{id}"))
}

/// What a rule sends, in words: `SMS “Visit on…” (+1 translation)`, `survey “Follow-up”`.
fn what_words(rule: &ReminderRule, surveys: &[(i64, String)]) -> String {
    match (rule.content.sms(), rule.content.survey()) {
        (_, Some(id)) => format!("survey “{}”", survey_name(surveys, id)),
        (Some(texts), None) => {
            let default = texts
                .templates()
                .next()
                .map(|(_, t)| t.as_str().to_string())
                .unwrap_or_default();
            let more = match texts.templates().count() {
                0 | 1 => String::new(),
                2 => " (+1 translation)".to_string(),
                n => format!(" (+{} translations)", n - 1),
            };
            format!("SMS “{}”{more}", shorten(&default))
        }
        (None, None) => String::new(),
    }
}

/// A skip reason in words, for `n` cases: "3 cases have no phone number".
fn skipped_words(code: &str, n: i64, rule: &ReminderRule) -> String {
    let property = match &rule.timing.start {
        Start::Date { property, .. } => property.as_str(),
        Start::Immediately { .. } => "start date",
    };
    let one = n == 1;
    let count = thousands(n);
    match code {
        "no_phone" if one => "1 case has no phone number".into(),
        "no_phone" => format!("{count} cases have no phone number"),
        "opted_out" if one => "1 case's number has opted out".into(),
        "opted_out" => format!("{count} cases' numbers have opted out"),
        "no_date" if one => format!("1 case has no {property}"),
        "no_date" => format!("{count} cases have no {property}"),
        "date_unreadable" if one => {
            format!("1 case's {property} is not a date (YYYY-MM-DD)")
        }
        "date_unreadable" => format!("{count} cases' {property} is not a date (YYYY-MM-DD)"),
        "time_zone_invalid" if one => {
            "1 case's time_zone is not a zone name (like Africa/Kampala)".into()
        }
        "time_zone_invalid" => {
            format!("{count} cases' time_zone is not a zone name (like Africa/Kampala)")
        }
        other => format!("{count} skipped: {other}"),
    }
}

/// An occurrence's outcome in words.
fn outcome_words(outcome: &str) -> &str {
    match outcome {
        "queued" => "sent",
        "missed" => "missed (too late)",
        "opted_out" => "not sent: opted out",
        "no_phone" => "not sent: no phone number",
        "same_phone" => "not sent: another case with the number got it",
        "survey_refused" => "not sent: the survey could not start",
        other => other,
    }
}

/// The progress of a rule's background evaluation, while it runs: "evaluating cases: 4,000
/// of 10,000 looked at".
async fn progress(state: &AppState, stored: &StoredReminder) -> PageResult<Option<String>> {
    if stored.evaluated_at.is_some() || !stored.rule.active {
        return Ok(None);
    }
    let (done, total) = state
        .db
        .reminder_evaluation_progress(
            stored.project_id,
            &stored.rule.case_type,
            stored.evaluated_through,
        )
        .await?;
    Ok(Some(format!(
        "evaluating cases: {} of {} looked at",
        thousands(done),
        thousands(total)
    )))
}

/// The upcoming list as the pages show it.
struct UpcomingView {
    /// Occurrences in the window, in all: "3 occurrences".
    total: String,
    /// Cases the rule takes: "4 cases".
    cases: String,
    rows: Vec<UpcomingRow>,
    skipped: Vec<String>,
    days: u32,
}

struct UpcomingRow {
    case_id: String,
    case_name: String,
    local: String,
    occurrence: u32,
    text: String,
}

impl UpcomingView {
    fn of(up: Upcoming, rule: &ReminderRule) -> Self {
        UpcomingView {
            total: counted(up.total as i64, "occurrence", "occurrences"),
            cases: counted(up.cases as i64, "case", "cases"),
            rows: up
                .upcoming
                .into_iter()
                .map(|u| UpcomingRow {
                    case_id: u.case_id,
                    case_name: u.case_name,
                    // `2026-03-03T09:00:00` → `2026-03-03 09:00`.
                    local: u.local.get(..16).unwrap_or(&u.local).replacen('T', " ", 1),
                    occurrence: u.occurrence,
                    text: u.text.unwrap_or_default(),
                })
                .collect(),
            skipped: up
                .skipped
                .iter()
                .map(|(code, n)| skipped_words(code, *n as i64, rule))
                .collect(),
            days: UPCOMING_DAYS,
        }
    }
}

/// The preview of a rule not saved yet (the form).
async fn upcoming_view(
    state: &AppState,
    page: &ProjectPage,
    rule: &ReminderRule,
) -> PageResult<UpcomingView> {
    let now = casecast_core::time::now_ms();
    let up = reminders::upcoming(
        &state.db,
        &page.project,
        rule,
        now,
        UPCOMING_DAYS,
        UPCOMING_ROWS,
    )
    .await?;
    Ok(UpcomingView::of(up, rule))
}

struct ReminderRow {
    id: i64,
    name: String,
    active: bool,
    case_type: String,
    when: String,
    what: String,
    scheduled: String,
    sent: String,
    missed: String,
    progress: Option<String>,
}

#[derive(Template)]
#[template(path = "reminders.html")]
struct ListPage {
    chrome: Chrome,
    slug: String,
    can_write: bool,
    reminders: Vec<ReminderRow>,
    notice: Option<String>,
}

/// `GET …/messaging/reminders`.
async fn list(State(state): State<AppState>, page: ProjectPage, uri: Uri) -> PageResult<Response> {
    let flash = Flash::read(&page.me, &uri);
    let notice = match flash.done() {
        Some("deleted") => Some(format!(
            "The reminder {} was deleted.",
            flash.get("name").unwrap_or_default()
        )),
        _ => None,
    };
    let surveys = surveys(&state, page.project.id).await?;
    let mut rows = Vec::new();
    for stored in state.db.list_reminders(page.project.id).await? {
        let counts = state.db.reminder_counts(stored.id).await?;
        let n = |map: &BTreeMap<String, i64>, key: &str| thousands(*map.get(key).unwrap_or(&0));
        rows.push(ReminderRow {
            id: stored.id,
            progress: progress(&state, &stored).await?,
            scheduled: n(&counts.states, "scheduled"),
            sent: n(&counts.outcomes, "queued"),
            missed: n(&counts.outcomes, "missed"),
            when: when_words(&stored.rule.timing),
            what: what_words(&stored.rule, &surveys),
            active: stored.rule.active,
            case_type: stored.rule.case_type,
            name: stored.rule.name,
        });
    }
    let view = ListPage {
        chrome: Chrome::project(&page, "reminders"),
        slug: page.project.slug.clone(),
        can_write: page.role.can_write(),
        reminders: rows,
        notice,
    };
    Ok(html(&view)?.into_response())
}

struct NextRow {
    case_id: String,
    case_name: String,
    occurrence: i64,
    at: String,
}

struct HandledRow {
    case_id: String,
    case_name: String,
    occurrence: i64,
    due: String,
    outcome: String,
    recorded: String,
}

#[derive(Template)]
#[template(path = "reminder.html")]
struct RulePage {
    chrome: Chrome,
    slug: String,
    can_write: bool,
    id: i64,
    name: String,
    active: bool,
    case_type: String,
    query: String,
    stop_query: String,
    when: String,
    what: String,
    /// (language, text) of SMS content, the default (`*`) first.
    texts: Vec<(String, String)>,
    late_limit: String,
    progress: Option<String>,
    evaluated_at: String,
    /// (what, count) of the rule's cases.
    states: Vec<(&'static str, String)>,
    skipped: Vec<String>,
    /// (outcome in words, count) of the occurrences handled.
    outcomes: Vec<(String, String)>,
    next: Vec<NextRow>,
    handled: Vec<HandledRow>,
    /// The upcoming list.
    up: UpcomingView,
    notice: Option<String>,
}

/// `GET …/messaging/reminders/{id}`.
async fn show(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<ReminderPath>,
    uri: Uri,
) -> PageResult<Response> {
    let stored = state.db.reminder(page.project.id, p.id).await?;
    let notice = match Flash::read(&page.me, &uri).done() {
        Some("created") => Some("The reminder was created.".to_string()),
        Some("saved") => Some("The reminder was saved.".to_string()),
        Some("activated") => Some("The reminder is active again.".to_string()),
        Some("deactivated") => Some("The reminder was deactivated: it sends nothing.".into()),
        _ => None,
    };
    let zone = page.project.zone();
    let local = |ms: i64| casecast_core::time::local_minute(ms, &zone);
    let surveys = surveys(&state, page.project.id).await?;
    let counts = state.db.reminder_counts(stored.id).await?;
    let n = |map: &BTreeMap<String, i64>, key: &str| thousands(*map.get(key).unwrap_or(&0));
    let states = vec![
        ("with an occurrence due", n(&counts.states, "scheduled")),
        ("done (every occurrence handled)", n(&counts.states, "done")),
        (
            "stopped (no longer matching, stop query, closed or deleted)",
            n(&counts.states, "stopped"),
        ),
        ("skipped", n(&counts.states, "skipped")),
    ];
    let rule = &stored.rule;
    let skipped = counts
        .skipped
        .iter()
        .map(|(code, n)| skipped_words(code, *n, rule))
        .collect();
    let outcomes = ["queued", "missed", "opted_out", "no_phone", "same_phone"]
        .iter()
        .map(|o| o.to_string())
        .chain(
            counts
                .outcomes
                .keys()
                .filter(|o| {
                    !["queued", "missed", "opted_out", "no_phone", "same_phone"]
                        .contains(&o.as_str())
                })
                .cloned(),
        )
        .map(|o| (outcome_words(&o).to_string(), n(&counts.outcomes, &o)))
        .collect();
    let next = state
        .db
        .reminder_next_due_cases(stored.id, NEXT_ROWS)
        .await?
        .into_iter()
        .map(|d| NextRow {
            case_id: d.case_id,
            case_name: d.case_name,
            occurrence: d.occurrence,
            at: local(d.at),
        })
        .collect();
    let handled = state
        .db
        .reminder_occurrences(stored.id, HANDLED_ROWS)
        .await?
        .into_iter()
        .map(|o| HandledRow {
            case_id: o.case_id,
            case_name: o.case_name,
            occurrence: o.occurrence,
            due: local(o.due_at),
            outcome: outcome_words(&o.outcome).to_string(),
            recorded: local(o.recorded_at),
        })
        .collect();
    let texts = rule
        .content
        .sms()
        .map(|c| {
            c.templates()
                .map(|(l, t)| (l.to_string(), t.as_str().to_string()))
                .collect()
        })
        .unwrap_or_default();
    // What the saved rule will send: each case from its schedule (what was sent is not listed).
    let up = reminders::upcoming_saved(
        &state.db,
        &page.project,
        &stored,
        casecast_core::time::now_ms(),
        UPCOMING_DAYS,
        UPCOMING_ROWS,
    )
    .await?;
    let up = UpcomingView::of(up, rule);
    let view = RulePage {
        chrome: Chrome::project(&page, "reminders"),
        slug: page.project.slug.clone(),
        can_write: page.role.can_write(),
        id: stored.id,
        name: rule.name.clone(),
        active: rule.active,
        case_type: rule.case_type.clone(),
        query: rule.query.clone(),
        stop_query: rule.stop_query.clone().unwrap_or_default(),
        when: when_words(&rule.timing),
        what: what_words(rule, &surveys),
        texts,
        late_limit: match rule.late_limit_hours {
            Some(1) => "1 hour".into(),
            Some(h) => format!("{h} hours"),
            None => format!("the default, {} hours", DEFAULT_LATE_LIMIT.as_secs() / 3600),
        },
        progress: progress(&state, &stored).await?,
        evaluated_at: stored.evaluated_at.map(local).unwrap_or_default(),
        states,
        skipped,
        outcomes,
        next,
        handled,
        up,
        notice,
    };
    Ok(html(&view)?.into_response())
}

/// One input of the form (by its name), with its errors.
struct Input {
    id: String,
    value: String,
    errors: Vec<String>,
}

#[derive(Template)]
#[template(path = "reminder_form.html")]
struct FormPage {
    chrome: Chrome,
    slug: String,
    action: String,
    heading: String,
    reminder_id: Option<i64>,
    name: Input,
    case_type: Input,
    query: Input,
    start: Input,
    property: Input,
    offset_days: Input,
    time: Input,
    every_days: Input,
    times: Input,
    content_kind: Input,
    text: Input,
    translations: Input,
    survey: Input,
    stop_query: Input,
    late_limit_hours: Input,
    active: bool,
    /// (value, name); a chosen id that is not the project's has its own option.
    surveys: Vec<(String, String)>,
    problem_count: i64,
    problems: Vec<String>,
    max_chars: usize,
    /// The Preview's result.
    preview: Option<UpcomingView>,
}

fn form_page(
    page: &ProjectPage,
    reminder_id: Option<i64>,
    f: &ReminderForm,
    errors: &[FieldError],
    surveys: &[(i64, String)],
    preview: Option<UpcomingView>,
) -> FormPage {
    let mut by_input: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for e in errors {
        match f.input_of(e) {
            Some(input) => by_input.entry(input).or_default().push(message_of(e)),
            None => problems.push(e.to_string()),
        }
    }
    let mut one = |name: &str, value: &str| Input {
        id: name.replace('.', "-"),
        value: value.to_string(),
        errors: by_input.remove(name).unwrap_or_default(),
    };
    let slug = page.project.slug.clone();
    let mut options: Vec<(String, String)> = surveys
        .iter()
        .map(|(id, name)| (id.to_string(), name.clone()))
        .collect();
    let chosen = f.survey.trim();
    if !chosen.is_empty() && !options.iter().any(|(v, _)| v == chosen) {
        options.push((chosen.to_string(), format!("deleted survey #{chosen}")));
    }
    let mut view = FormPage {
        chrome: Chrome::project(page, "reminders"),
        action: match reminder_id {
            Some(id) => format!("/a/{slug}/messaging/reminders/{id}/edit"),
            None => format!("/a/{slug}/messaging/reminders/new"),
        },
        heading: match reminder_id {
            Some(_) => format!("Edit reminder {}", f.name.trim()),
            None => "New reminder".to_string(),
        },
        slug,
        reminder_id,
        name: one("name", &f.name),
        case_type: one("case_type", &f.case_type),
        query: one("query", &f.query),
        start: one("start", &f.start),
        property: one("start.property", &f.property),
        offset_days: one("start.offset_days", &f.offset_days),
        time: one("time", &f.time),
        every_days: one("repeat.every_days", &f.every_days),
        times: one("repeat.times", &f.times),
        content_kind: one("content_kind", &f.content_kind),
        text: one("content.text", &f.text),
        translations: one("content.translations", &f.translations),
        survey: one("content.survey", &f.survey),
        stop_query: one("stop_query", &f.stop_query),
        late_limit_hours: one("late_limit_hours", &f.late_limit_hours),
        active: f.active,
        surveys: options,
        problem_count: errors.len() as i64,
        problems,
        max_chars: MAX_CHARS,
        preview,
    };
    // Errors of inputs the form does not show go above it.
    for (input, messages) in by_input {
        for m in messages {
            view.problems.push(format!("{input}: {m}"));
        }
    }
    view
}

fn render_form(status: StatusCode, view: &FormPage) -> PageResult<Response> {
    Ok((status, html(view)?).into_response())
}

/// `GET …/reminders/new`.
async fn new_form(State(state): State<AppState>, page: ProjectPage) -> PageResult<Response> {
    page.require_write()?;
    let surveys = surveys(&state, page.project.id).await?;
    let view = form_page(&page, None, &ReminderForm::blank(), &[], &surveys, None);
    render_form(StatusCode::OK, &view)
}

/// `GET …/reminders/{id}/edit`.
async fn edit_form(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<ReminderPath>,
) -> PageResult<Response> {
    page.require_write()?;
    let stored = state.db.reminder(page.project.id, p.id).await?;
    let surveys = surveys(&state, page.project.id).await?;
    let f = ReminderForm::of(&stored.rule);
    let view = form_page(&page, Some(p.id), &f, &[], &surveys, None);
    render_form(StatusCode::OK, &view)
}

/// The checked rule of a posted form, or every problem (the form's, the rule's, and a survey
/// that is not the project's).
fn checked(f: &ReminderForm, surveys: &[(i64, String)]) -> Result<ReminderRule, Vec<FieldError>> {
    let rule = f.rule()?;
    match rule.content.survey() {
        Some(id) if !surveys.iter().any(|(s, _)| *s == id) => Err(vec![FieldError::new(
            "content.survey",
            "choose one of the project's surveys",
        )]),
        _ => Ok(rule),
    }
}

/// A posted form: the preview, the form again with its errors, or the rule saved (`save`
/// stores it and returns its id).
async fn posted<F, Fut>(
    state: &AppState,
    page: &ProjectPage,
    reminder_id: Option<i64>,
    body: &[u8],
    save: F,
) -> PageResult<Response>
where
    F: FnOnce(ReminderRule) -> Fut,
    Fut: std::future::Future<Output = PageResult<(i64, &'static str)>>,
{
    let f = ReminderForm::parse(body);
    page.me.check_csrf(&f.csrf)?;
    page.require_write()?;
    if let Some(id) = reminder_id {
        // 404 before anything else for a rule that is not the project's.
        state.db.reminder(page.project.id, id).await?;
    }
    let surveys = surveys(state, page.project.id).await?;
    match checked(&f, &surveys) {
        Err(errors) => {
            let view = form_page(page, reminder_id, &f, &errors, &surveys, None);
            render_form(StatusCode::UNPROCESSABLE_ENTITY, &view)
        }
        Ok(rule) if f.preview => {
            let preview = upcoming_view(state, page, &rule).await?;
            let view = form_page(page, reminder_id, &f, &[], &surveys, Some(preview));
            render_form(StatusCode::OK, &view)
        }
        Ok(rule) => {
            let (id, done) = save(rule).await?;
            Ok(Flash::new(done).redirect(&page.me, &rule_url(page, id)))
        }
    }
}

/// `POST …/reminders/new`.
async fn create(
    State(state): State<AppState>,
    page: ProjectPage,
    RawForm(body): RawForm,
) -> PageResult<Response> {
    let (db, project_id, user_id) = (&state.db, page.project.id, page.me.user.id);
    posted(&state, &page, None, &body, |rule| async move {
        let stored = reminders::create(db, project_id, &rule, Some(user_id)).await?;
        tracing::info!(
            reminder.id = stored.id,
            project.id = project_id,
            "reminder created"
        );
        Ok::<_, crate::error::PageError>((stored.id, "created"))
    })
    .await
}

/// `POST …/reminders/{id}/edit`.
async fn update(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<ReminderPath>,
    RawForm(body): RawForm,
) -> PageResult<Response> {
    let (db, project_id) = (&state.db, page.project.id);
    posted(&state, &page, Some(p.id), &body, |rule| async move {
        let stored = reminders::update(db, project_id, p.id, &rule).await?;
        tracing::info!(
            reminder.id = stored.id,
            project.id = project_id,
            "reminder changed"
        );
        Ok::<_, crate::error::PageError>((stored.id, "saved"))
    })
    .await
}

/// Sets whether a rule is active (the rest of it unchanged; its cases are evaluated again).
async fn set_active(
    state: &AppState,
    page: &ProjectPage,
    id: i64,
    csrf: &str,
    active: bool,
) -> PageResult<Response> {
    page.me.check_csrf(csrf)?;
    page.require_write()?;
    let stored = state.db.reminder(page.project.id, id).await?;
    let mut rule = stored.rule;
    let done = if active { "activated" } else { "deactivated" };
    if rule.active != active {
        rule.active = active;
        reminders::update(&state.db, page.project.id, id, &rule).await?;
        tracing::info!(
            reminder.id = id,
            project.id = page.project.id,
            "reminder {done}"
        );
    }
    Ok(Flash::new(done).redirect(&page.me, &rule_url(page, id)))
}

/// `POST …/reminders/{id}/activate`.
async fn activate(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<ReminderPath>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    set_active(&state, &page, p.id, &form.csrf, true).await
}

/// `POST …/reminders/{id}/deactivate`.
async fn deactivate(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<ReminderPath>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    set_active(&state, &page, p.id, &form.csrf, false).await
}

/// `POST …/reminders/{id}/delete`.
async fn delete(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<ReminderPath>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_write()?;
    let stored = state.db.reminder(page.project.id, p.id).await?;
    state.db.delete_reminder(page.project.id, p.id).await?;
    tracing::info!(
        reminder.id = p.id,
        project.id = page.project.id,
        "reminder deleted"
    );
    Ok(Flash::new("deleted")
        .with("name", &stored.rule.name)
        .redirect(&page.me, &list_url(&page)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(body: serde_json::Value) -> Timing {
        let mut b = serde_json::json!({
            "name": "x", "case_type": "mother", "content": {"sms": "Hello"}
        });
        for (k, v) in body.as_object().unwrap() {
            b[k] = v.clone();
        }
        ReminderRule::parse_checked(&b).unwrap().timing
    }

    #[test]
    fn timings_read_as_a_sentence() {
        let t = timing(serde_json::json!({
            "start": {"property": "next_visit", "offset_days": -2}, "time": "09:00",
            "repeat": {"every_days": 1, "times": 3}
        }));
        assert_eq!(
            when_words(&t),
            "2 days before next_visit at 09:00, 3 times every 1 day"
        );
        let t = timing(serde_json::json!({
            "start": {"property": "due", "offset_days": 1}, "time": "7:30"
        }));
        assert_eq!(when_words(&t), "1 day after due at 07:30, once");
        let t = timing(serde_json::json!({
            "start": {"property": "due"}, "time": "18:00",
            "repeat": {"every_days": 7, "times": 1}
        }));
        assert_eq!(when_words(&t), "on due at 18:00, once");
        let t = timing(serde_json::json!({"start": {"immediately": true}}));
        assert_eq!(when_words(&t), "when a case starts matching, once");
        let t = timing(serde_json::json!({
            "start": {"immediately": true}, "time": "08:00",
            "repeat": {"every_days": 2, "times": 4}
        }));
        assert_eq!(
            when_words(&t),
            "when a case starts matching (the later occurrences at 08:00), 4 times every 2 days"
        );
    }

    #[test]
    fn counts_and_reasons_read_as_words() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(4000), "4,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        let rule = ReminderRule::parse_checked(&serde_json::json!({
            "name": "x", "case_type": "mother", "content": {"sms": "Hello"},
            "start": {"property": "next_visit"}, "time": "09:00"
        }))
        .unwrap();
        assert_eq!(
            skipped_words("no_phone", 3, &rule),
            "3 cases have no phone number"
        );
        assert_eq!(
            skipped_words("date_unreadable", 1, &rule),
            "1 case's next_visit is not a date (YYYY-MM-DD)"
        );
        assert_eq!(
            skipped_words("no_date", 2, &rule),
            "2 cases have no next_visit"
        );
    }
}
