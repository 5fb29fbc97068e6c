//! Accounts over HTTP: login slow-down per (email, address) with an admin's unlock; the users
//! and API tokens pages (admins only, one project's people only); `Cache-Control: no-store` on
//! what shows case data.

use std::net::IpAddr;

use casecast_testkit::{Dialect, TestApp};
use reqwest::Method;
use serde_json::json;

use crate::call;
use crate::pages::{cookie_value, get_page, hidden, login};

casecast_testkit::on_both_engines!(
    login_slows_one_address_down_and_lets_another_in,
    users_page_manages_one_projects_members,
    tokens_page_shows_a_new_token_once_and_revokes,
    case_data_is_never_cached
);

/// A client whose connections come from `ip` (any 127.x address reaches the test server).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// Logs in through the form from `client`: status, page text, `Retry-After`, session cookie.
async fn login_from(
    app: &TestApp,
    client: &reqwest::Client,
    email: &str,
    password: &str,
) -> (u16, String, Option<String>, Option<String>) {
    let page = client.get(app.url("/login")).send().await.unwrap();
    let pre = cookie_value(&page, "casecast_login_csrf").unwrap();
    let csrf = hidden(&page.text().await.unwrap(), "csrf");
    let resp = client
        .post(app.url("/login"))
        .header("cookie", format!("casecast_login_csrf={pre}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let session = cookie_value(&resp, "casecast_session");
    (status, resp.text().await.unwrap(), retry, session)
}

/// Posts a form with the session cookie; returns status, `Location` and body.
async fn post_form(
    app: &TestApp,
    session: &str,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, String, String) {
    let resp = app
        .http
        .post(app.url(path))
        .header("cookie", format!("casecast_session={session}"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map_or(String::new(), |v| v.to_str().unwrap().to_string());
    (status, location, resp.text().await.unwrap())
}

/// The page's CSRF token for a session.
async fn csrf_of(app: &TestApp, session: &str) -> String {
    let (status, body) = get_page(app, session, "/").await;
    assert_eq!(status, 200);
    hidden(&body, "csrf")
}

/// How askama writes `CommCare <sync>`.
fn escaped_name(page: &str) -> bool {
    page.contains("CommCare &lt;sync&gt;") || page.contains("CommCare &#60;sync&#62;")
}

/// The id in `/settings/users/{id}/…` of the row that names `email`.
fn user_id_in(page: &str, email: &str) -> String {
    let row = page
        .split("<tr>")
        .find(|r| r.contains(&format!("<td>{email}")))
        .unwrap_or_else(|| panic!("no row for {email}"));
    let start = row.find("/settings/users/").unwrap() + "/settings/users/".len();
    row[start..].split('/').next().unwrap().to_string()
}

async fn login_slows_one_address_down_and_lets_another_in(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let who = app.alpha_editor.clone();
    let here = client_from("127.0.0.1");
    for left in (0..5).rev() {
        let (status, page, _, session) = login_from(&app, &here, &who.email, "wrong guess").await;
        assert_eq!((status, session), (401, None));
        if left > 0 {
            let s = if left == 1 { "" } else { "s" };
            assert!(
                page.contains(&format!("{left} attempt{s} left before a delay")),
                "{page}"
            );
        } else {
            assert!(
                page.contains("Wait 4 seconds before the next attempt"),
                "{page}"
            );
        }
    }
    // This address now waits, even with the right password, and is told for how long.
    let (status, page, retry, session) = login_from(&app, &here, &who.email, &who.password).await;
    assert_eq!((status, session), (429, None));
    let retry: i64 = retry.expect("a Retry-After header").parse().unwrap();
    assert!((1..=4).contains(&retry), "{retry}");
    assert!(page.contains("wait"), "{page}");
    // The right password from another address gets in at once: nobody can lock a person out.
    let elsewhere = client_from("127.0.0.2");
    let (status, _, _, session) = login_from(&app, &elsewhere, &who.email, &who.password).await;
    assert_eq!(status, 303, "another address is not slowed down");
    assert!(session.is_some());

    // The admin sees the failed logins and forgets them; the first address gets in again.
    let admin = login(&app, &app.alpha_admin).await;
    let (status, users) = get_page(&app, &admin, "/a/alpha/settings/users").await;
    assert_eq!(status, 200);
    assert!(users.contains("delayed"), "{users}");
    let id = user_id_in(&users, &who.email);
    let csrf = hidden(&users, "csrf");
    let (status, location, _) = post_form(
        &app,
        &admin,
        &format!("/a/alpha/settings/users/{id}/unlock"),
        &[("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/a/alpha/settings/users?done=unlocked")
    );
    let (status, _, _, _) = login_from(&app, &here, &who.email, &who.password).await;
    assert_eq!(status, 303, "unlocked");
}

async fn users_page_manages_one_projects_members(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    // Viewers and editors may not see or use the page.
    for who in [&app.alpha_viewer, &app.alpha_editor] {
        let session = login(&app, who).await;
        assert_eq!(
            get_page(&app, &session, "/a/alpha/settings/users").await.0,
            403
        );
        assert_eq!(
            get_page(&app, &session, "/a/alpha/settings/tokens").await.0,
            403
        );
        let csrf = csrf_of(&app, &session).await;
        let (status, _, _) = post_form(
            &app,
            &session,
            "/a/alpha/settings/users",
            &[
                ("csrf", csrf.as_str()),
                ("email", "x@example.org"),
                ("role", "admin"),
                ("password", "a-long-secret-9"),
            ],
        )
        .await;
        assert_eq!(status, 403);
    }
    let admin = login(&app, &app.alpha_admin).await;
    // Another project's page does not exist for alpha's admin.
    assert_eq!(
        get_page(&app, &admin, "/a/beta/settings/users").await.0,
        404
    );
    let (status, page) = get_page(&app, &admin, "/a/alpha/settings/users").await;
    assert_eq!(status, 200);
    assert!(page.contains(&app.alpha_viewer.email));
    assert!(
        !page.contains(&app.beta_admin.email),
        "beta's people stay out of alpha's page"
    );
    assert!(
        page.contains("/a/alpha/settings/tokens"),
        "the nav offers API tokens to admins"
    );
    let csrf = hidden(&page, "csrf");

    // Without the CSRF token: refused.
    fn add<'a>(email: &'a str, role: &'a str, password: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![("email", email), ("role", role), ("password", password)]
    }
    let mut form = add("new@example.org", "editor", "a-long-secret-9");
    let (status, _, _) = post_form(&app, &admin, "/a/alpha/settings/users", &form).await;
    assert_eq!(status, 403);
    form.push(("csrf", csrf.as_str()));
    // A common password is refused, whatever its case.
    let mut weak = add("new@example.org", "editor", "PassWord1");
    weak.push(("csrf", csrf.as_str()));
    let (status, _, body) = post_form(&app, &admin, "/a/alpha/settings/users", &weak).await;
    assert_eq!(status, 422);
    assert!(body.contains("most common passwords"), "{body}");
    // A new login.
    let (status, location, _) = post_form(&app, &admin, "/a/alpha/settings/users", &form).await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/a/alpha/settings/users?done=created")
    );
    let newbie = casecast_testkit::Fixture {
        email: "new@example.org".into(),
        password: "a-long-secret-9".into(),
        token: String::new(),
    };
    let newbie_session = login(&app, &newbie).await;
    assert_eq!(
        get_page(&app, &newbie_session, "/a/alpha/cases").await.0,
        200
    );
    // An existing login (beta's admin) joins alpha as a viewer; its password is not changed.
    let mut existing = add("admin@beta.example.org", "viewer", "ignored-password-1");
    existing.push(("csrf", csrf.as_str()));
    let (status, location, _) = post_form(&app, &admin, "/a/alpha/settings/users", &existing).await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/a/alpha/settings/users?done=added")
    );
    let beta_session = login(&app, &app.beta_admin).await;
    assert_eq!(get_page(&app, &beta_session, "/a/alpha/cases").await.0, 200);
    // User text is escaped.
    let mut odd = add("<b>odd@example.org", "viewer", "a-long-secret-9");
    odd.push(("csrf", csrf.as_str()));
    assert_eq!(
        post_form(&app, &admin, "/a/alpha/settings/users", &odd)
            .await
            .0,
        303
    );
    let (_, page) = get_page(&app, &admin, "/a/alpha/settings/users").await;
    assert!(
        page.contains("&lt;b&gt;odd@example.org") || page.contains("&#60;b&#62;odd@example.org"),
        "{page}"
    );
    assert!(!page.contains("<b>odd@"));

    // Changing a role.
    let id = user_id_in(&page, "new@example.org");
    let (status, location, _) = post_form(
        &app,
        &admin,
        &format!("/a/alpha/settings/users/{id}/role"),
        &[("csrf", csrf.as_str()), ("role", "viewer")],
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/a/alpha/settings/users?done=role")
    );
    let (_, token) = {
        let user = app.db.user_by_email("new@example.org").await.unwrap();
        app.db
            .create_token(app.alpha.id, user.id, "script")
            .await
            .unwrap()
    };
    let (status, _) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/cases"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/cases"),
        Some(&token),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, 403, "the token follows the new role");

    // Removing: the person's session no longer reaches the project (it stays for other
    // projects, which are not this admin's to end) and their token for it is revoked.
    let (status, location, _) = post_form(
        &app,
        &admin,
        &format!("/a/alpha/settings/users/{id}/remove"),
        &[("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/a/alpha/settings/users?done=removed")
    );
    assert_eq!(
        get_page(&app, &newbie_session, "/a/alpha/cases").await.0,
        404,
        "the project is out of the session's reach"
    );
    let (status, projects) = get_page(&app, &newbie_session, "/").await;
    assert_eq!(status, 200, "the session itself goes on");
    assert!(!projects.contains("/a/alpha/"), "{projects}");
    let (status, _) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/cases"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 401, "the token is revoked");
    let (_, page) = get_page(&app, &admin, "/a/alpha/settings/users").await;
    assert!(!page.contains("<td>new@example.org"));

    // Someone of another project only, or nobody: 404. Oneself: refused.
    let beta_only = app
        .db
        .create_login(
            &casecast_core::Email::parse("only@beta.example.org").unwrap(),
            "a-long-secret-9",
        )
        .await
        .unwrap();
    app.db
        .set_role(app.beta.id, beta_only.id, casecast_core::Role::Editor)
        .await
        .unwrap();
    for action in ["remove", "unlock", "role"] {
        let (status, _, _) = post_form(
            &app,
            &admin,
            &format!("/a/alpha/settings/users/{}/{action}", beta_only.id),
            &[("csrf", csrf.as_str()), ("role", "viewer")],
        )
        .await;
        assert_eq!(status, 404, "{action}");
    }
    assert_eq!(
        app.db
            .role_in_project(beta_only.id, app.beta.id)
            .await
            .unwrap(),
        Some(casecast_core::Role::Editor)
    );
    // The admin's own row offers no role change and no removal; posted anyway, both are refused.
    assert!(page.contains(&format!("{} (you)", app.alpha_admin.email)));
    let me = app
        .db
        .user_by_email(&app.alpha_admin.email)
        .await
        .unwrap()
        .id;
    for action in ["remove", "role"] {
        let (status, _, body) = post_form(
            &app,
            &admin,
            &format!("/a/alpha/settings/users/{me}/{action}"),
            &[("csrf", csrf.as_str()), ("role", "viewer")],
        )
        .await;
        assert_eq!(status, 409, "{action}");
        assert!(body.contains("another admin"), "{body}");
    }
}

async fn tokens_page_shows_a_new_token_once_and_revokes(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let admin = login(&app, &app.alpha_admin).await;
    let (status, page) = get_page(&app, &admin, "/a/alpha/settings/tokens").await;
    assert_eq!(status, 200);
    let csrf = hidden(&page, "csrf");
    let resp = app
        .http
        .post(app.url("/a/alpha/settings/tokens"))
        .header("cookie", format!("casecast_session={admin}"))
        .form(&[("csrf", csrf.as_str()), ("name", "CommCare <sync>")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(resp.headers()["location"], "/a/alpha/settings/tokens");
    let flash =
        cookie_value(&resp, "casecast_new_token").expect("the new token crosses the redirect");
    // The page after the redirect shows it, and clears it.
    let resp = app
        .http
        .get(app.url("/a/alpha/settings/tokens"))
        .header(
            "cookie",
            format!("casecast_session={admin}; casecast_new_token={flash}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(
        cookie_value(&resp, "casecast_new_token").as_deref(),
        Some("")
    );
    let page = resp.text().await.unwrap();
    let secret = page
        .split("<code id=\"new-token-secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    assert!(secret.starts_with("cc_"), "{secret}");
    assert!(escaped_name(&page), "{page}");
    let (status, _) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/cases"),
        Some(&secret),
        None,
    )
    .await;
    assert_eq!(status, 200, "the new token works");
    // Shown once: the page without the cookie lists it by name only.
    let (_, page) = get_page(&app, &admin, "/a/alpha/settings/tokens").await;
    assert!(!page.contains(&secret));
    assert!(escaped_name(&page), "{page}");
    // A name is needed.
    let (status, _, body) = post_form(
        &app,
        &admin,
        "/a/alpha/settings/tokens",
        &[("csrf", csrf.as_str()), ("name", "  ")],
    )
    .await;
    assert_eq!(status, 422);
    assert!(body.contains("Name:"), "{body}");

    // Revoking; beta's tokens are out of reach.
    let id = page
        .split("/a/alpha/settings/tokens/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let beta_tokens = app.db.list_tokens(app.beta.id).await.unwrap();
    let (status, _, _) = post_form(
        &app,
        &admin,
        &format!("/a/alpha/settings/tokens/{}/revoke", beta_tokens[0].id),
        &[("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        Method::GET,
        &app.api("beta", "/cases"),
        Some(&app.beta_admin.token),
        None,
    )
    .await;
    assert_eq!(status, 200, "beta's token still works");
    let (status, location, _) = post_form(
        &app,
        &admin,
        &format!("/a/alpha/settings/tokens/{id}/revoke"),
        &[("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/a/alpha/settings/tokens?done=revoked")
    );
    let (status, _) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/cases"),
        Some(&secret),
        None,
    )
    .await;
    assert_eq!(status, 401, "a revoked token is refused");
    // A token for someone who is not a member of the project: 404.
    let beta_user = app.db.user_by_email(&app.beta_admin.email).await.unwrap();
    let beta_user_id = beta_user.id.to_string();
    let (status, _, _) = post_form(
        &app,
        &admin,
        "/a/alpha/settings/tokens",
        &[
            ("csrf", csrf.as_str()),
            ("name", "x"),
            ("user_id", beta_user_id.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 404);
}

async fn case_data_is_never_cached(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let (status, case) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/cases"),
        Some(&app.alpha_admin.token),
        Some(json!({"name": "Achieng", "phone_number": "+256772123456"})),
    )
    .await;
    assert_eq!(status, 201);
    let id = case["case_id"].as_str().unwrap();
    let session = login(&app, &app.alpha_admin).await;
    for path in [
        format!("/a/alpha/cases/{id}"),
        "/a/alpha/cases".to_string(),
        "/a/alpha/cases/export.csv".to_string(),
        "/a/alpha/settings/users".to_string(),
    ] {
        let resp = app
            .http
            .get(app.url(&path))
            .header("cookie", format!("casecast_session={session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        assert_eq!(resp.headers()["cache-control"], "no-store", "{path}");
    }
    for path in [format!("/cases/{id}"), "/cases/export.csv".to_string()] {
        let resp = app
            .http
            .get(app.api("alpha", &path))
            .bearer_auth(&app.alpha_admin.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        assert_eq!(resp.headers()["cache-control"], "no-store", "{path}");
    }
    // The stylesheet may still be cached.
    let css = app
        .http
        .get(app.url("/static/casecast.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["cache-control"], "public, max-age=3600");
}
