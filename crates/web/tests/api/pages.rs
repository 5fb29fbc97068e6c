//! Pages over HTTP: login with CSRF, rate limit, sessions, escaping, project isolation.

use casecast_testkit::{Dialect, Fixture, TestApp};
use reqwest::Method;
use serde_json::json;

use crate::call;

casecast_testkit::on_both_engines!(
    login_flow_and_pages,
    login_is_rate_limited,
    pages_escape_and_isolate
);

/// The value of `name="{field}" value="…"` in a page.
pub fn hidden(html: &str, field: &str) -> String {
    let marker = format!("name=\"{field}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {field} in page"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

pub fn cookie_value(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap()[name.len() + 1..].to_string())
}

/// Logs in through the form; returns the session cookie.
pub async fn login(app: &TestApp, who: &Fixture) -> String {
    let (status, session) = try_login(app, &who.email, &who.password).await;
    assert_eq!(status, 303);
    session.expect("a session cookie")
}

async fn try_login(app: &TestApp, email: &str, password: &str) -> (u16, Option<String>) {
    let page = app.http.get(app.url("/login")).send().await.unwrap();
    let pre = cookie_value(&page, "casecast_login_csrf").unwrap();
    let csrf = hidden(&page.text().await.unwrap(), "csrf");
    let resp = app
        .http
        .post(app.url("/login"))
        .header("cookie", format!("casecast_login_csrf={pre}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", password),
            ("next", "/a/alpha/cases"),
        ])
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        cookie_value(&resp, "casecast_session"),
    )
}

pub async fn get_page(app: &TestApp, session: &str, path: &str) -> (u16, String) {
    let resp = app
        .http
        .get(app.url(path))
        .header("cookie", format!("casecast_session={session}"))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn login_flow_and_pages(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    // No session: every page sends to the login form.
    for path in ["/", "/a/alpha/cases", "/a/alpha/cases/x"] {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 303, "{path}");
        assert!(resp.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login?next="));
    }
    // A login form without its CSRF cookie is refused.
    let resp = app
        .http
        .post(app.url("/login"))
        .form(&[
            ("csrf", "forged"),
            ("email", app.alpha_viewer.email.as_str()),
            ("password", app.alpha_viewer.password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(cookie_value(&resp, "casecast_session").is_none());

    let session = login(&app, &app.alpha_viewer).await;
    let resp = app
        .http
        .get(app.url("/"))
        .header("cookie", format!("casecast_session={session}"))
        .send()
        .await
        .unwrap();
    let set = resp.headers().get_all("set-cookie").iter().count();
    assert_eq!(set, 0, "pages set no cookies");
    let (status, home) = get_page(&app, &session, "/").await;
    assert_eq!(status, 200);
    assert!(
        home.contains("Project alpha") && !home.contains("Project beta"),
        "only my projects"
    );

    let (_, case) = call(&app, Method::POST, &app.api("alpha", "/cases"), Some(&app.alpha_admin.token), Some(json!({"name": "Nakato Sarah", "external_id": "KLA-9", "properties": {"district": "Kampala"}}))).await;
    let id = case["case_id"].as_str().unwrap();
    let (status, list) = get_page(&app, &session, "/a/alpha/cases?q=nakato").await;
    assert_eq!(status, 200);
    assert!(
        list.contains(&format!("/a/alpha/cases/{id}")),
        "search finds the case"
    );
    let (status, page) = get_page(&app, &session, &format!("/a/alpha/cases/{id}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("KLA-9") && page.contains("district") && page.contains("Kampala"));
    // A case query: what matches, a value it could not compare, and an error saying where.
    for (name, age) in [("Okello Ann", "34"), ("Auma Joy", "eighteen")] {
        let (status, _) = call(
            &app,
            Method::POST,
            &app.api("alpha", "/cases"),
            Some(&app.alpha_admin.token),
            Some(json!({"name": name, "properties": {"age": age}})),
        )
        .await;
        assert_eq!(status, 201);
    }
    let (status, list) = get_page(&app, &session, "/a/alpha/cases?query=age+%3E+18").await;
    assert_eq!(status, 200);
    assert!(
        list.contains("Okello Ann") && !list.contains("Auma Joy") && !list.contains("Nakato"),
        "{list}"
    );
    assert!(
        list.contains("1 case has a value the query could not compare"),
        "{list}"
    );
    assert!(
        list.contains("value=\"age &#62; 18\""),
        "the query stays in its box: {list}"
    );
    let (status, list) = get_page(&app, &session, "/a/alpha/cases?query=age+%3E").await;
    assert_eq!(status, 200);
    assert!(
        list.contains("query: at 6: expected a value after"),
        "{list}"
    );

    // Logging out needs the CSRF token and ends the session.
    let resp = app
        .http
        .post(app.url("/logout"))
        .header("cookie", format!("casecast_session={session}"))
        .form(&[("csrf", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let csrf = hidden(&home, "csrf");
    let resp = app
        .http
        .post(app.url("/logout"))
        .header("cookie", format!("casecast_session={session}"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(
        get_page(&app, &session, "/").await.0,
        303,
        "the old session no longer works"
    );
}

async fn login_is_rate_limited(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let who = &app.alpha_editor;
    for _ in 0..5 {
        assert_eq!(
            try_login(&app, &who.email, "wrong password").await,
            (401, None)
        );
    }
    let (status, session) = try_login(&app, &who.email, &who.password).await;
    assert_eq!(
        (status, session),
        (429, None),
        "even the right password waits"
    );
    // Another person is not locked out by it.
    assert_eq!(
        try_login(&app, &app.alpha_admin.email, &app.alpha_admin.password)
            .await
            .0,
        303
    );
}

async fn pages_escape_and_isolate(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let evil = "<script>alert(1)</script>";
    let (status, case) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/cases"),
        Some(&app.alpha_admin.token),
        Some(
            json!({"name": evil, "external_id": "E<1>", "properties": {"note": "\"><img src=x>"}}),
        ),
    )
    .await;
    assert_eq!(status, 201);
    let id = case["case_id"].as_str().unwrap();
    let session = login(&app, &app.alpha_admin).await;
    for path in [
        "/a/alpha/cases".to_string(),
        format!("/a/alpha/cases/{id}"),
        format!("/a/alpha/cases?q={}", "%3Cscript%3E"),
    ] {
        let (status, html) = get_page(&app, &session, &path).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            !html.contains(evil) && !html.contains("<img src=x>"),
            "{path} must escape user text"
        );
        assert!(
            html.contains("&lt;script&gt;") || html.contains("&#60;script&#62;"),
            "{path}"
        );
    }
    // A member of alpha sees nothing of beta, not even that it exists.
    let (_, beta_case) = call(
        &app,
        Method::POST,
        &app.api("beta", "/cases"),
        Some(&app.beta_admin.token),
        Some(json!({"name": "B"})),
    )
    .await;
    let beta_id = beta_case["case_id"].as_str().unwrap();
    assert_eq!(get_page(&app, &session, "/a/beta/cases").await.0, 404);
    assert_eq!(
        get_page(&app, &session, &format!("/a/beta/cases/{beta_id}"))
            .await
            .0,
        404
    );
    assert_eq!(
        get_page(&app, &session, &format!("/a/alpha/cases/{beta_id}"))
            .await
            .0,
        404
    );
    assert_eq!(get_page(&app, &session, "/a/nowhere/cases").await.0, 404);
    let (status, html) = get_page(&app, &session, "/a/alpha/cases").await;
    assert_eq!(status, 200);
    let resp = app
        .http
        .get(app.url("/a/alpha/cases"))
        .header("cookie", format!("casecast_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    assert!(resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    assert!(!html.contains(beta_id));
}
