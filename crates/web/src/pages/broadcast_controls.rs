//! A broadcast's progress as JSON (what its page's script polls) and its cancel, pause and
//! resume buttons (editors and admins, with the session's CSRF token).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use casecast_store::StoreError;
use serde::{Deserialize, Serialize};

use super::broadcasts::{BroadcastPath, OCCURRENCES_SHOWN};
use crate::api::broadcast_json::{BroadcastJson, OccurrenceJson};
use crate::auth::ProjectPage;
use crate::error::PageResult;
use crate::AppState;

/// What the broadcast page's script polls.
#[derive(Serialize)]
pub(super) struct Progress {
    broadcast: BroadcastJson,
    occurrences: Vec<OccurrenceJson>,
}

/// `GET …/messaging/broadcasts/{id}/progress.json`: status and counts, for the live page.
pub(super) async fn progress(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<BroadcastPath>,
) -> PageResult<Json<Progress>> {
    let b = state.db.broadcast(page.project.id, p.id).await?;
    let occurrences = state
        .db
        .broadcast_occurrences(page.project.id, p.id, OCCURRENCES_SHOWN)
        .await?;
    Ok(Json(Progress {
        broadcast: b.into(),
        occurrences: occurrences.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// The three controls of a broadcast.
#[derive(Clone, Copy)]
enum Control {
    Cancel,
    Pause,
    Resume,
}

async fn control(
    state: &AppState,
    page: &ProjectPage,
    id: i64,
    form: &CsrfForm,
    what: Control,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_write()?;
    match act(state, page, id, what).await {
        Ok(done) => Ok(redirect(page, id, done)),
        // Another tab (or the schedule) changed the broadcast first: its page shows how it is.
        Err(StoreError::Conflict { .. }) => Ok(redirect(page, id, "refused")),
        Err(e) => Err(e.into()),
    }
}

fn redirect(page: &ProjectPage, id: i64, done: &str) -> Response {
    let url = format!(
        "/a/{}/messaging/broadcasts/{id}?done={done}",
        page.project.slug
    );
    Redirect::to(&url).into_response()
}

/// Does it; names what was done.
async fn act(
    state: &AppState,
    page: &ProjectPage,
    id: i64,
    what: Control,
) -> Result<&'static str, StoreError> {
    let done = match what {
        Control::Cancel => {
            state.db.cancel_broadcast(page.project.id, id).await?;
            "cancelled"
        }
        Control::Pause => {
            state.db.pause_broadcast(page.project.id, id).await?;
            tracing::info!(
                broadcast.id = id,
                project.id = page.project.id,
                "broadcast paused"
            );
            "paused"
        }
        Control::Resume => {
            state.db.resume_broadcast(&page.project, id).await?;
            tracing::info!(
                broadcast.id = id,
                project.id = page.project.id,
                "broadcast resumed"
            );
            "resumed"
        }
    };
    Ok(done)
}

/// `POST …/broadcasts/{id}/cancel`.
pub(super) async fn cancel(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<BroadcastPath>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    control(&state, &page, p.id, &form, Control::Cancel).await
}

/// `POST …/broadcasts/{id}/pause`.
pub(super) async fn pause(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<BroadcastPath>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    control(&state, &page, p.id, &form, Control::Pause).await
}

/// `POST …/broadcasts/{id}/resume`.
pub(super) async fn resume(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<BroadcastPath>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    control(&state, &page, p.id, &form, Control::Resume).await
}
