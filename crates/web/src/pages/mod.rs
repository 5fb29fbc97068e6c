//! Server-rendered pages (askama templates, escaped by default): login, projects, cases, case
//! groups, and messaging (broadcasts, gateways, the message log, opt-outs, settings).

mod broadcast_compose;
mod broadcast_controls;
mod broadcast_form;
mod broadcasts;
mod case_groups;
mod case_imports;
mod cases;
mod gateway_form;
mod gateways;
mod login;
mod messages;
mod messaging_settings;
mod opt_outs;
mod schedule_words;

use askama::Template;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use crate::auth::{CurrentUser, ProjectPage};
use crate::AppState;

/// The largest upload form: the 50 MB file and room for the form around it.
const UPLOAD_BODY_LIMIT: usize = 50 * 1024 * 1024 + 64 * 1024;

/// The page routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(login::projects))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/a/{project}/cases", get(cases::list))
        .route("/a/{project}/cases/export.csv", get(cases::export_csv))
        .route("/a/{project}/cases/exports", post(cases::start_export))
        .route("/a/{project}/cases/exports/{id}", get(cases::export_page))
        .route(
            "/a/{project}/cases/exports/{id}/status.json",
            get(cases::export_status),
        )
        .route(
            "/a/{project}/cases/exports/{id}/file",
            get(cases::export_file),
        )
        .route(
            "/a/{project}/cases/import",
            get(case_imports::new)
                .post(case_imports::create)
                .layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT)),
        )
        .route("/a/{project}/cases/imports/{id}", get(case_imports::show))
        .route(
            "/a/{project}/cases/imports/{id}/status.json",
            get(case_imports::status),
        )
        .route(
            "/a/{project}/cases/imports/{id}/report.csv",
            get(case_imports::report_csv),
        )
        .route(
            "/a/{project}/cases/imports/{id}/report.xlsx",
            get(case_imports::report_xlsx),
        )
        .route("/a/{project}/cases/{case_id}", get(cases::show))
        .route("/a/{project}/cases/{case_id}/messages", post(cases::send))
        .route(
            "/a/{project}/messaging/case-groups",
            get(case_groups::list).post(case_groups::create),
        )
        .route(
            "/a/{project}/messaging/case-groups/example.xlsx",
            get(case_groups::example),
        )
        .route(
            "/a/{project}/messaging/case-groups/{id}",
            get(case_groups::show),
        )
        .route(
            "/a/{project}/messaging/case-groups/{id}/add",
            post(case_groups::add),
        )
        .route(
            "/a/{project}/messaging/case-groups/{id}/remove",
            post(case_groups::remove),
        )
        .route(
            "/a/{project}/messaging/case-groups/{id}/remove-all",
            post(case_groups::remove_all),
        )
        .route(
            "/a/{project}/messaging/case-groups/{id}/rename",
            post(case_groups::rename),
        )
        .route(
            "/a/{project}/messaging/case-groups/{id}/delete",
            post(case_groups::delete),
        )
        .route(
            "/a/{project}/messaging/case-groups/{id}/upload",
            post(case_groups::upload).layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT)),
        )
        .route(
            "/a/{project}/messaging/case-groups/{id}/export.csv",
            get(case_groups::export_csv),
        )
        .route(
            "/a/{project}/messaging/case-groups/{id}/export.xlsx",
            get(case_groups::export_xlsx),
        )
        .route("/a/{project}/messaging/broadcasts", get(broadcasts::list))
        .route(
            "/a/{project}/messaging/broadcasts/new",
            get(broadcast_compose::form).post(broadcast_compose::submit),
        )
        .route(
            "/a/{project}/messaging/broadcasts/{id}",
            get(broadcasts::show),
        )
        .route(
            "/a/{project}/messaging/broadcasts/{id}/progress.json",
            get(broadcast_controls::progress),
        )
        .route(
            "/a/{project}/messaging/broadcasts/{id}/cancel",
            post(broadcast_controls::cancel),
        )
        .route(
            "/a/{project}/messaging/broadcasts/{id}/pause",
            post(broadcast_controls::pause),
        )
        .route(
            "/a/{project}/messaging/broadcasts/{id}/resume",
            post(broadcast_controls::resume),
        )
        .route(
            "/a/{project}/messaging/gateways",
            get(gateways::list).post(gateways::create),
        )
        .route(
            "/a/{project}/messaging/gateways/{id}",
            get(gateways::show).post(gateways::update),
        )
        .route(
            "/a/{project}/messaging/gateways/{id}/delete",
            post(gateways::delete),
        )
        .route("/a/{project}/messaging/messages", get(messages::list))
        .route("/a/{project}/messaging/messages/{id}", get(messages::show))
        .route(
            "/a/{project}/messaging/opt-outs",
            get(opt_outs::list).post(opt_outs::add),
        )
        .route(
            "/a/{project}/messaging/opt-outs/remove",
            post(opt_outs::remove),
        )
        .route(
            "/a/{project}/messaging/settings",
            get(messaging_settings::show).post(messaging_settings::save),
        )
        .route(
            "/a/{project}/messaging/uploads/{upload_id}",
            get(case_groups::upload_page),
        )
        .route(
            "/a/{project}/messaging/uploads/{upload_id}/status.json",
            get(case_groups::upload_status),
        )
        .route(
            "/a/{project}/messaging/uploads/{upload_id}/results.csv",
            get(case_groups::results_csv),
        )
        .route(
            "/a/{project}/messaging/uploads/{upload_id}/results.xlsx",
            get(case_groups::results_xlsx),
        )
}

/// `?done=…` after a POST-redirect-GET: which fixed notice the page shows.
#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

/// The frame around every page: who is logged in, which project, the logout form's CSRF token.
pub struct Chrome {
    pub email: Option<String>,
    pub role: Option<&'static str>,
    pub csrf: String,
    pub project: Option<ProjectNav>,
    pub section: &'static str,
}

/// The project shown in the header.
pub struct ProjectNav {
    pub slug: String,
    pub name: String,
}

impl Chrome {
    /// For pages outside a project.
    pub fn user(me: &CurrentUser) -> Self {
        Chrome {
            email: Some(me.user.email.clone()),
            role: None,
            csrf: me.csrf_token.clone(),
            project: None,
            section: "",
        }
    }
    /// For pages inside a project.
    pub fn project(page: &ProjectPage, section: &'static str) -> Self {
        Chrome {
            email: Some(page.me.user.email.clone()),
            role: Some(page.role.as_str()),
            csrf: page.me.csrf_token.clone(),
            project: Some(ProjectNav {
                slug: page.project.slug.clone(),
                name: page.project.name.clone(),
            }),
            section,
        }
    }
    /// For the login page.
    pub fn anonymous() -> Self {
        Chrome {
            email: None,
            role: None,
            csrf: String::new(),
            project: None,
            section: "",
        }
    }
}

/// The page shown for errors.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub status: u16,
    pub message: &'a str,
}

/// Renders a template into an HTML response.
pub fn html(t: &impl Template) -> crate::error::PageResult<axum::response::Html<String>> {
    Ok(axum::response::Html(t.render()?))
}
