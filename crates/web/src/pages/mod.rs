//! Server-rendered pages (askama templates, escaped by default): login, projects, cases, case
//! groups, messaging (broadcasts, keywords, reminders, gateways, the message log, opt-outs,
//! settings), and a project's users and API tokens.

mod broadcast_compose;
mod broadcast_controls;
mod broadcast_form;
mod broadcasts;
mod case_groups;
mod case_imports;
mod case_surveys;
mod cases;
mod gateway_form;
mod gateways;
mod keyword_form;
mod keywords;
mod login;
mod messages;
mod messaging_settings;
mod opt_outs;
mod reminder_form;
mod reminders;
mod schedule_words;
mod settings_tokens;
mod settings_users;
mod survey_form;
mod survey_results;
mod surveys;

use askama::Template;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::auth::{CurrentUser, ProjectPage};
use crate::AppState;

/// The largest upload form: the 50 MB file and room for the form around it.
const UPLOAD_BODY_LIMIT: usize = 50 * 1024 * 1024 + 64 * 1024;

/// The page routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(surveys::router())
        .merge(keywords::router())
        .merge(reminders::router())
        .route("/", get(login::projects))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", get(to_form_page).post(login::logout))
        .route("/a/{project}/cases", get(cases::list))
        .route("/a/{project}/cases/export.csv", get(cases::export_csv))
        .route(
            "/a/{project}/cases/exports",
            get(to_form_page).post(cases::start_export),
        )
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
        .route(
            "/a/{project}/cases/{case_id}/messages",
            get(to_form_page).post(cases::send),
        )
        .route(
            "/a/{project}/cases/{case_id}/surveys",
            get(to_form_page).post(case_surveys::start),
        )
        .route(
            "/a/{project}/cases/{case_id}/messages.json",
            get(cases::message_statuses),
        )
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
            get(to_form_page).post(case_groups::add),
        )
        .route(
            "/a/{project}/messaging/case-groups/{id}/remove",
            get(to_form_page).post(case_groups::remove),
        )
        .route(
            "/a/{project}/messaging/case-groups/{id}/remove-all",
            get(to_form_page).post(case_groups::remove_all),
        )
        .route(
            "/a/{project}/messaging/case-groups/{id}/rename",
            get(to_form_page).post(case_groups::rename),
        )
        .route(
            "/a/{project}/messaging/case-groups/{id}/query",
            get(to_form_page).post(case_groups::change_query),
        )
        .route(
            "/a/{project}/messaging/case-groups/{id}/delete",
            get(to_form_page).post(case_groups::delete),
        )
        .route(
            "/a/{project}/messaging/case-groups/{id}/upload",
            get(to_form_page)
                .post(case_groups::upload)
                .layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT)),
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
            get(to_form_page).post(broadcast_controls::cancel),
        )
        .route(
            "/a/{project}/messaging/broadcasts/{id}/pause",
            get(to_form_page).post(broadcast_controls::pause),
        )
        .route(
            "/a/{project}/messaging/broadcasts/{id}/resume",
            get(to_form_page).post(broadcast_controls::resume),
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
            get(to_form_page).post(gateways::delete),
        )
        .route("/a/{project}/messaging/messages", get(messages::list))
        .route("/a/{project}/messaging/messages/{id}", get(messages::show))
        .route(
            "/a/{project}/messaging/opt-outs",
            get(opt_outs::list).post(opt_outs::add),
        )
        .route(
            "/a/{project}/messaging/opt-outs/remove",
            get(to_form_page).post(opt_outs::remove),
        )
        .route(
            "/a/{project}/messaging/settings",
            get(messaging_settings::show).post(messaging_settings::save),
        )
        .route(
            "/a/{project}/settings/users",
            get(settings_users::list).post(settings_users::add),
        )
        .route(
            "/a/{project}/settings/users/{user_id}/role",
            get(to_list_page).post(settings_users::set_role),
        )
        .route(
            "/a/{project}/settings/users/{user_id}/remove",
            get(to_list_page).post(settings_users::remove),
        )
        .route(
            "/a/{project}/settings/users/{user_id}/unlock",
            get(to_list_page).post(settings_users::unlock),
        )
        .route(
            "/a/{project}/settings/tokens",
            get(settings_tokens::list).post(settings_tokens::create),
        )
        .route(
            "/a/{project}/settings/tokens/{id}/revoke",
            get(to_list_page).post(settings_tokens::revoke),
        )
        .route(
            "/a/{project}/messaging/surveys/{id}",
            get(survey_results::show),
        )
        .route(
            "/a/{project}/messaging/surveys/{id}/counts.json",
            get(survey_results::counts),
        )
        .route(
            "/a/{project}/messaging/surveys/{id}/responses.csv",
            get(survey_results::responses_csv),
        )
        .route(
            "/a/{project}/messaging/surveys/{id}/responses.xlsx",
            get(survey_results::responses_xlsx),
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

/// POST-redirect-GET, for every form: a handler answers `303 See Other` to the GET page that
/// shows the outcome, `Flash::new("renamed").with("name", typed).redirect(&me, &url)`, and that
/// page reads it back with `Flash::read(&me, &uri)`. The outcome rides in the query string
/// (`?done=renamed&name=…&sig=…`), so reloading the page shows it again and re-submits
/// nothing; `sig` is an HMAC-SHA256 of the other parameters keyed by the session's CSRF
/// token, so a crafted link cannot make a page show text of its choosing, and another session
/// sees no outcome at all. A page whose notices are fixed texts may read `?done=` alone
/// ([`DoneQuery`]). Message bodies stay out of it (they would reach proxies' access logs): a
/// refused send is shown again at 422 instead.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flash {
    pairs: Vec<(String, String)>,
}

/// The longest value a flash carries (longer ones are cut: they are shown, never stored).
const FLASH_VALUE_CHARS: usize = 1000;

impl Flash {
    /// An outcome named `done`.
    pub fn new(done: &str) -> Self {
        Flash {
            pairs: vec![("done".into(), done.into())],
        }
    }

    /// With one more value.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.pairs
            .push((key.into(), value.chars().take(FLASH_VALUE_CHARS).collect()));
        self
    }

    /// The `done` of the outcome, when there is one.
    pub fn done(&self) -> Option<&str> {
        self.get("done")
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn encoded(pairs: &[(String, String)]) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }

    fn sign(key: &str, encoded: &str) -> hmac::Hmac<sha2::Sha256> {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(encoded.as_bytes());
        mac
    }

    /// `path?…` with this outcome, signed for the session of `me`.
    pub fn url(&self, me: &CurrentUser, path: &str) -> String {
        use hmac::Mac;
        let encoded = Self::encoded(&self.pairs);
        let sig = hex::encode(Self::sign(&me.csrf_token, &encoded).finalize().into_bytes());
        format!("{path}?{encoded}&sig={sig}")
    }

    /// `303 See Other` to `path` showing this outcome.
    pub fn redirect(&self, me: &CurrentUser, path: &str) -> axum::response::Response {
        use axum::response::IntoResponse;
        axum::response::Redirect::to(&self.url(me, path)).into_response()
    }

    /// The outcome in a page's URL; empty when there is none or it was not made for this
    /// session.
    pub fn read(me: &CurrentUser, uri: &axum::http::Uri) -> Self {
        use hmac::Mac;
        let query = uri.query().unwrap_or("");
        let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let Some(at) = pairs.iter().position(|(k, _)| k == "sig") else {
            return Flash::default();
        };
        let (_, sig) = pairs.remove(at);
        let Ok(sig) = hex::decode(sig) else {
            return Flash::default();
        };
        // Only what the form put there (a page's own parameters, such as a pager's, come
        // after none of it: the link is built anew).
        pairs.retain(|(k, _)| !matches!(k.as_str(), "q" | "cursor"));
        let encoded = Self::encoded(&pairs);
        match Self::sign(&me.csrf_token, &encoded).verify_slice(&sig) {
            Ok(()) => Flash { pairs },
            Err(_) => Flash::default(),
        }
    }
}

/// `GET` on a form's action URL (a bookmark, a new tab, the login's return after a session
/// ended mid-form): `303` to the page the form lives on, the URL without its last segment.
async fn to_form_page(uri: axum::http::Uri) -> axum::response::Redirect {
    let path = uri.path().trim_end_matches('/');
    let parent = match path.rfind('/') {
        Some(0) | None => "/",
        Some(at) => &path[..at],
    };
    match uri.query() {
        // The export form's filters ride in its query: the list shows the same cases.
        Some(q) if parent.ends_with("/cases") => {
            axum::response::Redirect::to(&format!("{parent}?{q}"))
        }
        _ => axum::response::Redirect::to(parent),
    }
}

/// `GET` on the action URL of a form about one row of a list (`…/users/{id}/remove`): leads
/// to the list (`…/users`), as [`to_form_page`] does for a form on its own page.
async fn to_list_page(uri: axum::http::Uri) -> axum::response::Redirect {
    let path = uri.path().trim_end_matches('/');
    let list = path
        .rsplitn(3, '/')
        .nth(2)
        .filter(|list| !list.is_empty())
        .unwrap_or("/");
    axum::response::Redirect::to(list)
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
    /// Whether the person is an admin of the project shown (the nav then offers Users and
    /// API tokens).
    pub fn is_admin(&self) -> bool {
        self.role == Some("admin")
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

/// A count with its noun: "1 case", "2 cases", "0 cases" (templates pass references).
pub fn plural(n: &i64, one: &str, many: &str) -> String {
    let n = *n;
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
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

#[cfg(test)]
mod tests {
    use super::plural;

    #[test]
    fn counts_take_the_singular_for_one_only() {
        assert_eq!(plural(&1, "case", "cases"), "1 case");
        assert_eq!(plural(&0, "case", "cases"), "0 cases");
        assert_eq!(plural(&2, "case", "cases"), "2 cases");
        assert_eq!(plural(&-1, "case", "cases"), "-1 cases");
    }
}
