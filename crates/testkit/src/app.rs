//! A Casecast server on port 0 over a fresh database, with two projects, users of every role
//! and their API tokens.

use casecast_core::{CountryCode, Email, ProjectSlug, Role, TimeZoneName};
use casecast_store::projects::{NewProject, Project};
use casecast_store::Db;
use casecast_web::{AppState, WebConfig};

use crate::{Dialect, TestDb};

/// A login and its API token.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub email: String,
    pub password: String,
    pub token: String,
}

/// A running server.
pub struct TestApp {
    pub base: String,
    pub db: Db,
    pub test_db: TestDb,
    /// Project `alpha` (Africa/Kampala, UG).
    pub alpha: Project,
    /// Project `beta` (Africa/Nairobi, KE).
    pub beta: Project,
    pub alpha_admin: Fixture,
    pub alpha_editor: Fixture,
    pub alpha_viewer: Fixture,
    pub beta_admin: Fixture,
    /// A client that does not follow redirects and keeps no cookies.
    pub http: reqwest::Client,
    /// Stops the background worker when dropped.
    pub _stop_worker: tokio::sync::watch::Sender<bool>,
}

async fn project(db: &Db, slug: &str, zone: &str, country: &str) -> Project {
    db.create_project(&NewProject {
        slug: ProjectSlug::parse(slug).unwrap(),
        name: format!("Project {slug}"),
        time_zone: TimeZoneName::parse(zone).unwrap(),
        country: Some(CountryCode::parse(country).unwrap()),
    })
    .await
    .unwrap()
}

async fn member(db: &Db, project: &Project, who: &str, role: Role) -> Fixture {
    let email = format!("{who}@{}.example.org", project.slug);
    let password = format!("pw-{who}-{}", project.slug);
    let user = db
        .upsert_user(&Email::parse(&email).unwrap(), &password, project.id, role)
        .await
        .unwrap();
    let (_, token) = db.create_token(project.id, user.id, "test").await.unwrap();
    Fixture {
        email,
        password,
        token,
    }
}

/// Dispatcher settings for tests: the same code, shorter waits, and gateways allowed on
/// loopback (where the tests' fake gateways listen).
pub fn test_dispatch_options() -> casecast_engine::DispatchOptions {
    casecast_engine::DispatchOptions {
        lease_ms: 10_000,
        retry_base_ms: 200,
        retry_max_ms: 2_000,
        refresh_ms: 200,
        sweep_ms: 500,
        gateway_addresses: casecast_gateways::AddressPolicy::allowing_loopback(),
        ..Default::default()
    }
}

impl TestApp {
    /// Starts a server with the fixtures on `engine`.
    pub async fn spawn(engine: Dialect) -> TestApp {
        let test_db = TestDb::new(engine).await;
        let db = test_db.db.clone();
        let alpha = project(&db, "alpha", "Africa/Kampala", "UG").await;
        let beta = project(&db, "beta", "Africa/Nairobi", "KE").await;
        let alpha_admin = member(&db, &alpha, "admin", Role::Admin).await;
        let alpha_editor = member(&db, &alpha, "editor", Role::Editor).await;
        let alpha_viewer = member(&db, &alpha, "viewer", Role::Viewer).await;
        let beta_admin = member(&db, &beta, "admin", Role::Admin).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = AppState::new(
            db.clone(),
            WebConfig {
                public_url: Some(base.clone()),
                gateway_addresses: casecast_gateways::AddressPolicy::allowing_loopback(),
                ..WebConfig::default()
            },
        );
        tokio::spawn(casecast_web::serve(listener, state, std::future::pending()));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(casecast_engine::worker::run_worker(
            db.clone(),
            casecast_engine::worker::WorkerContext::new("test-worker"),
            stopped.clone(),
        ));
        tokio::spawn(casecast_engine::run_dispatcher(
            db.clone(),
            "test-dispatcher".into(),
            test_dispatch_options(),
            stopped,
        ));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        TestApp {
            base,
            db,
            test_db,
            alpha,
            beta,
            alpha_admin,
            alpha_editor,
            alpha_viewer,
            beta_admin,
            http,
            _stop_worker: stop,
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `base` + `/api/v1/projects/{project}` + `path`.
    pub fn api(&self, project: &str, path: &str) -> String {
        format!("{}/api/v1/projects/{project}{path}", self.base)
    }
}
