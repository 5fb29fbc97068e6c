//! Composing a broadcast (editors and admins): the form, its preview (who gets what, the
//! excluded by reason, segments, time, rendered samples) and the confirm button that creates it.
//! A confirm whose form changed since its preview shows the new preview instead of sending.

use askama::Template;
use axum::extract::{Query, RawForm, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use casecast_core::broadcast::{content_json, Draft};
use casecast_core::case::FieldError;
use casecast_core::recurrence::Schedule;
use casecast_engine::Preview;
use casecast_store::StoreError;
use serde::Deserialize;
use serde_json::json;

use super::broadcast_form::{message, section, BroadcastForm};
use super::{html, Chrome};
use crate::auth::ProjectPage;
use crate::error::PageResult;
use crate::AppState;

/// Empty translation rows shown below the filled ones (the page's script adds more).
const SPARE_ROWS: usize = 1;

/// A checked draft in one canonical text: what the confirm button compares with the preview.
fn canonical(draft: &Draft) -> String {
    json!({
        "name": draft.name,
        "recipients": draft.recipients,
        "content": content_json(&draft.content),
        "schedule": draft.schedule.to_json(),
        "gateway_id": draft.gateway_id,
    })
    .to_string()
}

/// A choice among checkboxes or options.
struct Choice {
    value: String,
    label: String,
    checked: bool,
}

/// A translation row with its number in the form.
struct Row {
    index: usize,
    lang: String,
    text: String,
}

/// A preview as the page shows it.
struct PreviewView {
    recipients: i64,
    excluded: Vec<(&'static str, &'static str, i64)>,
    excluded_total: i64,
    segments: i64,
    encoding: &'static str,
    estimate: String,
    languages: Vec<LanguageView>,
    missing: Vec<(String, i64)>,
    schedule: String,
    immediate: bool,
    /// The checked draft, for the confirm button.
    draft: String,
    /// (language code, or "no code", recipients), most first.
    recipient_languages: Vec<(String, i64)>,
    warnings: Vec<String>,
}

struct LanguageView {
    label: String,
    recipients: i64,
    segments: i64,
    samples: Vec<SampleView>,
}

struct SampleView {
    case_id: String,
    name: String,
    phone: String,
    text: String,
    segments: i64,
    encoding: &'static str,
    missing: String,
}

#[derive(Template)]
#[template(path = "broadcast_new.html")]
struct ComposePage {
    chrome: Chrome,
    slug: String,
    time_zone: String,
    f: BroadcastForm,
    groups: Vec<Choice>,
    gateways: Vec<Choice>,
    /// The project's surveys, for a survey broadcast.
    surveys: Vec<Choice>,
    /// Whether the form sends a survey (else SMS texts).
    survey_chosen: bool,
    rows: Vec<Row>,
    next_row: usize,
    weekdays: Vec<Choice>,
    days: Vec<Choice>,
    max_chars: usize,
    error: Option<String>,
    error_section: &'static str,
    notice: Option<&'static str>,
    preview: Option<PreviewView>,
    /// The project's property names, for placeholders (at most `PROPERTY_NAMES_SHOWN`).
    property_names: Vec<String>,
    property_names_cut: bool,
}

/// Property names the composer lists.
const PROPERTY_NAMES_SHOWN: usize = 200;

fn encoding_label(encoding: &str) -> &'static str {
    if encoding == "ucs2" {
        "UCS-2"
    } else {
        "GSM-7"
    }
}

fn language_label(language: &str) -> String {
    if language == "*" {
        "Default text".into()
    } else {
        format!("Translation ({language})")
    }
}

/// "about 2 min 5 s at the gateways' rate limits".
fn estimate(seconds: Option<f64>) -> String {
    let Some(s) = seconds else {
        return "no rate limit is set on the gateway: the messages go out as fast as it takes them"
            .into();
    };
    let s = s.ceil() as u64;
    let time = match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    };
    format!("about {time} at the gateways' rate limits")
}

fn preview_view(p: Preview, draft: &Draft) -> PreviewView {
    let e = p.excluded;
    let excluded = vec![
        ("no_phone", "no phone number", e.no_phone),
        ("opted_out", "opted out", e.opted_out),
        ("closed", "closed", e.closed),
        ("deleted", "deleted", e.deleted),
        (
            "duplicate_phone",
            "same phone number as another recipient",
            e.duplicate_phone,
        ),
        ("no_gateway", "no gateway takes the number", e.no_gateway),
    ];
    let samples = p.samples;
    let languages = (p.languages.into_iter())
        .map(|l| LanguageView {
            label: language_label(&l.language),
            recipients: l.recipients,
            segments: l.segments,
            samples: (samples.iter())
                .filter(|s| s.language == l.language)
                .map(|s| SampleView {
                    case_id: s.case_id.clone(),
                    name: s.name.clone(),
                    phone: s.phone_number.clone(),
                    text: s.text.clone(),
                    segments: s.segments,
                    encoding: encoding_label(s.encoding),
                    missing: s.missing.join(", "),
                })
                .collect(),
        })
        .collect();
    PreviewView {
        recipients: p.recipients,
        excluded_total: excluded.iter().map(|(_, _, n)| n).sum(),
        excluded,
        segments: p.segments,
        encoding: encoding_label(p.encoding),
        estimate: estimate(p.estimated_seconds),
        languages,
        missing: p.missing.into_iter().collect(),
        schedule: super::schedule_words::describe(&draft.schedule),
        immediate: draft.schedule == Schedule::Immediate,
        draft: canonical(draft),
        recipient_languages: (p.recipient_languages.into_iter())
            .map(|l| {
                let code = l.language_code.unwrap_or_else(|| "no code".into());
                (code, l.recipients)
            })
            .collect(),
        warnings: p.warnings,
    }
}

/// What the page shows besides the form.
#[derive(Default)]
struct Outcome {
    error: Option<FieldError>,
    notice: Option<&'static str>,
    preview: Option<PreviewView>,
}

async fn render(
    state: &AppState,
    page: &ProjectPage,
    status: StatusCode,
    f: BroadcastForm,
    outcome: Outcome,
) -> PageResult<Response> {
    let groups = state.db.list_groups(page.project.id).await?;
    let gateways = state.db.list_gateways(page.project.id).await?;
    let surveys = state.db.list_surveys(page.project.id).await?;
    let mut property_names = state
        .db
        .property_names(page.project.id, PROPERTY_NAMES_SHOWN + 1)
        .await?;
    let property_names_cut = property_names.len() > PROPERTY_NAMES_SHOWN;
    property_names.truncate(PROPERTY_NAMES_SHOWN);
    let mut rows: Vec<Row> = (f.translations.iter().enumerate())
        .map(|(index, r)| Row {
            index,
            lang: r.lang.clone(),
            text: r.text.clone(),
        })
        .collect();
    for _ in 0..SPARE_ROWS {
        rows.push(Row {
            index: rows.len(),
            lang: String::new(),
            text: String::new(),
        });
    }
    let choice = |value: String, label: String, chosen: &[String]| Choice {
        checked: chosen.iter().any(|c| c.trim() == value),
        value,
        label,
    };
    const WEEKDAYS: [(&str, &str); 7] = [
        ("mon", "Mon"),
        ("tue", "Tue"),
        ("wed", "Wed"),
        ("thu", "Thu"),
        ("fri", "Fri"),
        ("sat", "Sat"),
        ("sun", "Sun"),
    ];
    let view = ComposePage {
        chrome: Chrome::project(page, "broadcasts"),
        slug: page.project.slug.clone(),
        time_zone: page.project.time_zone.clone(),
        groups: (groups.into_iter())
            .map(|g| {
                let label = format!(
                    "{} ({})",
                    g.name,
                    super::plural(&g.case_count, "case", "cases")
                );
                choice(g.id.to_string(), label, &f.groups)
            })
            .collect(),
        gateways: (gateways.into_iter())
            .map(|g| {
                choice(
                    g.id.to_string(),
                    g.name,
                    std::slice::from_ref(&f.gateway_id),
                )
            })
            .collect(),
        surveys: (surveys.into_iter())
            .map(|s| {
                choice(
                    s.id.to_string(),
                    s.survey.name,
                    std::slice::from_ref(&f.survey_id),
                )
            })
            .collect(),
        survey_chosen: f.content_kind.trim() == "survey",
        next_row: rows.len(),
        rows,
        weekdays: (WEEKDAYS.iter())
            .map(|(v, l)| choice(v.to_string(), l.to_string(), &f.weekdays))
            .collect(),
        days: (1..=31)
            .map(|d| d.to_string())
            .chain(["last".to_string()])
            .map(|d| choice(d.clone(), d, &f.days))
            .collect(),
        max_chars: casecast_core::template::MAX_CHARS,
        error_section: outcome.error.as_ref().map_or("", |e| section(&e.field)),
        error: outcome.error.as_ref().map(message),
        notice: outcome.notice,
        preview: outcome.preview,
        property_names,
        property_names_cut,
        f,
    };
    Ok((status, html(&view)?).into_response())
}

/// `?group=` of the compose page: a group ticked from the start.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct NewQuery {
    group: String,
}

/// `GET …/messaging/broadcasts/new`: an empty form (editors and admins), with `?group=`
/// ticked.
pub(super) async fn form(
    State(state): State<AppState>,
    page: ProjectPage,
    Query(q): Query<NewQuery>,
) -> PageResult<Response> {
    page.require_write()?;
    let today = jiff::Timestamp::now().to_zoned(page.project.zone()).date();
    let mut f = BroadcastForm::blank(&today.to_string());
    if let Ok(id) = q.group.trim().parse::<i64>() {
        f.groups.push(id.to_string());
    }
    render(&state, &page, StatusCode::OK, f, Outcome::default()).await
}

/// What a submitted form leads to.
enum Next {
    /// The broadcast with this id was created.
    Created(i64),
    /// The form again, with a preview or a notice.
    Show(Box<Outcome>),
}

/// Previews the draft, or creates it when the confirm button sent exactly what was previewed.
/// A draft the checker or the store refuses is `StoreError::Invalid`.
async fn next(state: &AppState, page: &ProjectPage, f: &BroadcastForm) -> Result<Next, StoreError> {
    let draft = f.body().and_then(|b| Draft::parse(&b))?;
    let confirmed = f.action == "send";
    if confirmed && f.previewed == canonical(&draft) {
        let user = Some(page.me.user.id);
        let b = casecast_engine::broadcasts::create_broadcast(
            &state.db,
            &*state.clock,
            &page.project,
            &draft,
            user,
        )
        .await?;
        return Ok(Next::Created(b.id));
    }
    let preview =
        casecast_engine::preview_broadcast(&state.db, &*state.clock, &page.project, &draft).await?;
    Ok(Next::Show(Box::new(Outcome {
        error: None,
        notice: confirmed.then_some(
            "The broadcast changed after its preview, so nothing was sent: check this new preview, then confirm.",
        ),
        preview: Some(preview_view(preview, &draft)),
    })))
}

/// `POST …/messaging/broadcasts/new`: `action=preview` shows who gets what; `action=send`
/// creates the broadcast that was previewed.
pub(super) async fn submit(
    State(state): State<AppState>,
    page: ProjectPage,
    RawForm(body): RawForm,
) -> PageResult<Response> {
    let f = BroadcastForm::parse(&body);
    page.me.check_csrf(&f.csrf)?;
    page.require_write()?;
    let (status, outcome) = match next(&state, &page, &f).await {
        Ok(Next::Created(id)) => {
            let url = format!(
                "/a/{}/messaging/broadcasts/{id}?done=created",
                page.project.slug
            );
            return Ok(Redirect::to(&url).into_response());
        }
        Ok(Next::Show(outcome)) => (StatusCode::OK, *outcome),
        Err(StoreError::Invalid(e)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Outcome {
                error: Some(e),
                ..Default::default()
            },
        ),
        Err(e) => return Err(e.into()),
    };
    render(&state, &page, status, f, outcome).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> BroadcastForm {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        BroadcastForm::parse(body.as_bytes())
    }

    #[test]
    fn the_canonical_text_ignores_how_the_form_was_typed() {
        let a = form(&[
            ("name", "N"),
            ("group", "1"),
            ("default_text", "Hi"),
            ("schedule_kind", "now"),
        ]);
        let b = form(&[
            ("name", " N "),
            ("group", " 1"),
            ("default_text", "Hi"),
            ("gateway_id", " "),
        ]);
        let draft = |f: &BroadcastForm| Draft::parse(&f.body().unwrap()).unwrap();
        assert_eq!(canonical(&draft(&a)), canonical(&draft(&b)));
    }
}
