//! POST-redirect-GET (issue 12, item 10): every form answers 303 to a GET page that shows the
//! outcome; a GET on a form's action URL leads to the form's page; a login returns where the
//! user came from (only a local path), and says so when the session had expired.

use casecast_testkit::{Dialect, TestApp};
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};

use crate::call;
use crate::pages::login;

casecast_testkit::on_both_engines!(
    every_form_answers_303_to_a_page_showing_the_outcome,
    get_on_a_form_url_leads_to_its_page,
    login_returns_where_the_user_was_and_says_a_session_expired
);

/// The value of `name="{field}" value="…"` in a page.
fn hidden(html: &str, field: &str) -> String {
    let marker = format!("name=\"{field}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {field} in page"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// GET with a session: status, `Location`, body.
async fn get(app: &TestApp, session: &str, path: &str) -> (u16, String, String) {
    let resp = app
        .http
        .get(app.url(path))
        .header("cookie", format!("casecast_session={session}"))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let at = location(&resp);
    (status, at, resp.text().await.unwrap())
}

/// A form of the pages: where it posts, its fields (besides `csrf`), or the upload.
enum Body {
    Fields(Vec<(&'static str, String)>),
    /// The upload form with this file.
    Upload(&'static str, &'static [u8]),
}

/// Posts a form with the session and its CSRF token: status and `Location`.
async fn post(app: &TestApp, session: &str, csrf: &str, path: &str, body: &Body) -> (u16, String) {
    let req = app
        .http
        .post(app.url(path))
        .header("cookie", format!("casecast_session={session}"));
    let req = match body {
        Body::Fields(fields) => {
            let mut all = vec![("csrf", csrf.to_string())];
            all.extend(fields.iter().cloned());
            req.form(&all)
        }
        Body::Upload(name, bytes) => req.multipart(
            Form::new()
                .text("csrf", csrf.to_string())
                .text("mode", "add")
                .part("file", Part::bytes(bytes.to_vec()).file_name(*name)),
        ),
    };
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), location(&resp))
}

async fn api(app: &TestApp, method: Method, path: &str, body: Value) -> Value {
    let (status, got) = call(
        app,
        method,
        &app.api("alpha", path),
        Some(&app.alpha_admin.token),
        Some(body),
    )
    .await;
    assert!((200..300).contains(&status), "{path}: {status} {got}");
    got
}

async fn every_form_answers_303_to_a_page_showing_the_outcome(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    api(
        &app,
        Method::POST,
        "/gateways",
        json!({"name": "Log", "kind": "log"}),
    )
    .await;
    let open = api(
        &app,
        Method::POST,
        "/cases",
        json!({"name": "Ann Open", "external_id": "EXT-OPEN", "phone_number": "+256772000101"}),
    )
    .await["case_id"]
        .as_str()
        .unwrap()
        .to_string();
    let closed = api(
        &app,
        Method::POST,
        "/cases",
        json!({"name": "Ben Closed", "external_id": "EXT-CLOSED"}),
    )
    .await["case_id"]
        .as_str()
        .unwrap()
        .to_string();
    api(
        &app,
        Method::POST,
        &format!("/cases/{closed}/close"),
        json!({}),
    )
    .await;
    let g = api(
        &app,
        Method::POST,
        "/case-groups",
        json!({"name": "Ward 1"}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let next_year = jiff::Zoned::now().year() + 1;
    let broadcast = api(
        &app,
        Method::POST,
        "/broadcasts",
        json!({"name": "Later", "recipients": {"case_groups": [g], "cases": []},
            "content": {"sms": {"*": "Hello"}},
            "schedule": {"kind": "weekly", "start_date": format!("{next_year}-01-05"), "time": "09:00",
                "every": 1, "weekdays": ["mon"], "days_of_month": [], "stop": {"after_occurrences": 3}}}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let doomed = api(
        &app,
        Method::POST,
        "/gateways",
        json!({"name": "Old", "kind": "log"}),
    )
    .await["id"]
        .as_i64()
        .unwrap();

    let session = login(&app, &app.alpha_admin).await;
    let (_, _, html) = get(&app, &session, "/a/alpha/messaging/case-groups").await;
    let csrf = hidden(&html, "csrf");
    let groups = "/a/alpha/messaging/case-groups".to_string();
    let group = format!("{groups}/{g}");
    let at = |what: &str| format!("{group}/{what}");
    let fields = |f: &[(&'static str, &str)]| {
        Body::Fields(f.iter().map(|(k, v)| (*k, v.to_string())).collect())
    };
    let long_name = "N".repeat(300);
    let bc = format!("/a/alpha/messaging/broadcasts/{broadcast}");
    // (form action, body, where the answer leads, what that page then shows)
    let cases: Vec<(String, Body, String, String)> = vec![
        (
            groups.clone(),
            fields(&[("name", "Ward 2")]),
            format!("{groups}/"),
            "Ward 2".into(),
        ),
        (
            at("add"),
            fields(&[("identifier", "EXT-OPEN")]),
            group.clone(),
            format!("Added Ann Open (case ID {open})."),
        ),
        (
            at("add"),
            fields(&[("identifier", "EXT-OPEN")]),
            group.clone(),
            "is already in this group.".into(),
        ),
        (
            at("add"),
            fields(&[("identifier", "EXT-CLOSED")]),
            group.clone(),
            "the case is closed".into(),
        ),
        (
            at("add"),
            fields(&[("identifier", "NOBODY-77")]),
            group.clone(),
            "value=\"NOBODY-77\"".into(),
        ),
        (
            at("rename"),
            fields(&[("name", &long_name)]),
            group.clone(),
            format!("value=\"{long_name}\""),
        ),
        (
            at("rename"),
            fields(&[("name", "Ward One")]),
            group.clone(),
            "The group was renamed.".into(),
        ),
        (
            at("remove"),
            fields(&[("case_id", &open)]),
            group.clone(),
            format!("Removed case {open}"),
        ),
        (
            at("remove-all"),
            fields(&[]),
            group.clone(),
            "Removed every case".into(),
        ),
        (
            at("upload"),
            Body::Upload("people.csv", b"case_identifier\nEXT-OPEN\n"),
            "/a/alpha/messaging/uploads/".into(),
            "people.csv".into(),
        ),
        (
            at("upload"),
            Body::Upload("photo.csv", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            group.clone(),
            "PNG".into(),
        ),
        (
            "/a/alpha/cases/exports?q=Ann".into(),
            fields(&[]),
            "/a/alpha/cases/exports/".into(),
            "export".into(),
        ),
        (
            format!("/a/alpha/cases/{open}/messages"),
            fields(&[("text", "Hello Ann")]),
            format!("/a/alpha/cases/{open}"),
            "The message was queued".into(),
        ),
        (
            format!("{bc}/pause"),
            fields(&[]),
            bc.clone(),
            "The broadcast is paused".into(),
        ),
        (
            format!("{bc}/resume"),
            fields(&[]),
            bc.clone(),
            "The broadcast was resumed".into(),
        ),
        (
            format!("{bc}/cancel"),
            fields(&[]),
            bc.clone(),
            "The broadcast was cancelled".into(),
        ),
        (
            "/a/alpha/messaging/opt-outs".into(),
            fields(&[("phone", "+256772000999")]),
            "/a/alpha/messaging/opt-outs".into(),
            "The number was added".into(),
        ),
        (
            "/a/alpha/messaging/opt-outs/remove".into(),
            fields(&[("phone", "+256772000999")]),
            "/a/alpha/messaging/opt-outs".into(),
            "The number was removed".into(),
        ),
        (
            format!("/a/alpha/messaging/gateways/{doomed}/delete"),
            fields(&[]),
            "/a/alpha/messaging/gateways".into(),
            "The gateway was deleted".into(),
        ),
        (
            at("delete"),
            fields(&[]),
            groups.clone(),
            "The group “Ward One” was deleted.".into(),
        ),
    ];
    for (action, body, leads_to, shows) in &cases {
        let (status, to) = post(&app, &session, &csrf, action, body).await;
        assert_eq!(status, 303, "POST {action}");
        assert!(
            to.starts_with(leads_to.as_str()),
            "POST {action} leads to {to}, not {leads_to}"
        );
        let (status, _, html) = get(&app, &session, &to).await;
        assert_eq!(status, 200, "GET {to}");
        assert!(
            html.contains(shows.as_str()),
            "GET {to} after POST {action} does not show {shows:?}"
        );
        // The page is reloadable: the same URL shows the same outcome and changes nothing.
        let (again, _, html_again) = get(&app, &session, &to).await;
        assert_eq!(
            (again, html_again.contains(shows.as_str())),
            (200, true),
            "reload {to}"
        );
    }
    // What the case page polls: its messages' statuses; another project's case is not found.
    let (status, _, body) = get(
        &app,
        &session,
        &format!("/a/alpha/cases/{open}/messages.json"),
    )
    .await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).unwrap();
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{body}");
    assert!(
        messages[0]["id"].is_i64() && messages[0]["status"].is_string(),
        "{body}"
    );
    let theirs = call(
        &app,
        Method::POST,
        &app.api("beta", "/cases"),
        Some(&app.beta_admin.token),
        Some(json!({"name": "Beta person"})),
    )
    .await
    .1["case_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _, body) = get(
        &app,
        &session,
        &format!("/a/alpha/cases/{theirs}/messages.json"),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("Beta person"));
    // The closed case's add is a warning, not a success.
    let (status, to) = post(
        &app,
        &session,
        &csrf,
        &groups,
        &fields(&[("name", "Ward 3")]),
    )
    .await;
    assert_eq!(status, 303);
    let (status, to) = post(
        &app,
        &session,
        &csrf,
        &format!("{to}/add"),
        &fields(&[("identifier", "EXT-CLOSED")]),
    )
    .await;
    assert_eq!(status, 303);
    let (_, _, html) = get(&app, &session, &to).await;
    assert!(html.contains("id=\"add-result\""), "{html}");
    assert!(
        html.contains("outcome-added warning\""),
        "the closed case's add is a warning"
    );
    // The name over the limit was refused, not cut: no group has 255 of its characters.
    for g in app.db.list_groups(app.alpha.id).await.unwrap() {
        assert!(
            !g.name.starts_with("NNN"),
            "a name was cut to {}",
            g.name.len()
        );
    }
    // An outcome is shown only to the session it was made for.
    let other = login(&app, &app.alpha_editor).await;
    let (_, _, html) = get(&app, &other, &to).await;
    assert!(
        !html.contains("id=\"add-result\""),
        "another session sees the outcome"
    );
    // Logging out leads to the login page.
    let (status, to) = post(&app, &session, &csrf, "/logout", &fields(&[])).await;
    assert_eq!((status, to.as_str()), (303, "/login"));
}

async fn get_on_a_form_url_leads_to_its_page(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let session = login(&app, &app.alpha_admin).await;
    for (url, page) in [
        (
            "/a/alpha/messaging/case-groups/7/add",
            "/a/alpha/messaging/case-groups/7",
        ),
        (
            "/a/alpha/messaging/case-groups/7/rename",
            "/a/alpha/messaging/case-groups/7",
        ),
        (
            "/a/alpha/messaging/case-groups/7/remove",
            "/a/alpha/messaging/case-groups/7",
        ),
        (
            "/a/alpha/messaging/case-groups/7/remove-all",
            "/a/alpha/messaging/case-groups/7",
        ),
        (
            "/a/alpha/messaging/case-groups/7/delete",
            "/a/alpha/messaging/case-groups/7",
        ),
        (
            "/a/alpha/messaging/case-groups/7/upload",
            "/a/alpha/messaging/case-groups/7",
        ),
        ("/a/alpha/cases/C1/messages", "/a/alpha/cases/C1"),
        ("/a/alpha/cases/exports?q=ann", "/a/alpha/cases?q=ann"),
        (
            "/a/alpha/messaging/broadcasts/3/cancel",
            "/a/alpha/messaging/broadcasts/3",
        ),
        (
            "/a/alpha/messaging/broadcasts/3/pause",
            "/a/alpha/messaging/broadcasts/3",
        ),
        (
            "/a/alpha/messaging/broadcasts/3/resume",
            "/a/alpha/messaging/broadcasts/3",
        ),
        (
            "/a/alpha/messaging/gateways/3/delete",
            "/a/alpha/messaging/gateways/3",
        ),
        (
            "/a/alpha/messaging/opt-outs/remove",
            "/a/alpha/messaging/opt-outs",
        ),
        ("/a/alpha/settings/users/4/role", "/a/alpha/settings/users"),
        (
            "/a/alpha/settings/users/4/remove",
            "/a/alpha/settings/users",
        ),
        (
            "/a/alpha/settings/users/4/unlock",
            "/a/alpha/settings/users",
        ),
        (
            "/a/alpha/settings/tokens/2/revoke",
            "/a/alpha/settings/tokens",
        ),
        ("/logout", "/"),
    ] {
        let (status, to, _) = get(&app, &session, url).await;
        assert_eq!((status, to.as_str()), (303, page), "GET {url}");
    }
}

async fn login_returns_where_the_user_was_and_says_a_session_expired(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let g = api(
        &app,
        Method::POST,
        "/case-groups",
        json!({"name": "Ward 1"}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let group = format!("/a/alpha/messaging/case-groups/{g}");
    let session = login(&app, &app.alpha_editor).await;
    let (_, _, html) = get(&app, &session, &group).await;
    let csrf = hidden(&html, "csrf");
    // Never logged in: the login page, no word of expiry.
    let resp = app.http.get(app.url(&group)).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    let to = location(&resp);
    assert_eq!(to, format!("/login?next={}", group));
    let html = app
        .http
        .get(app.url(&to))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("session has expired"));
    // The session ends (as at its 12 hours); the add form is posted from the group page.
    app.db.end_session(&session).await.unwrap();
    let resp = app
        .http
        .post(app.url(&format!("{group}/add")))
        .header("cookie", format!("casecast_session={session}"))
        .header("referer", app.url(&group))
        .form(&[("csrf", csrf.as_str()), ("identifier", "X")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let to = location(&resp);
    assert_eq!(
        to,
        format!("/login?next={group}&expired=1"),
        "back to the form's page"
    );
    let cleared = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("casecast_session=;"));
    assert!(cleared, "the stale session cookie is cleared");
    let page = app.http.get(app.url(&to)).send().await.unwrap();
    let pre = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_string())
        .find(|c| c.starts_with("casecast_login_csrf="))
        .unwrap();
    let pre = pre.split(';').next().unwrap().to_string();
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Your session has expired, please sign in again."),
        "{html}"
    );
    assert_eq!(hidden(&html, "next"), group);
    // Without a Referer (or another site's), the form's URL, whose GET leads to its page.
    app.db
        .end_session(&login(&app, &app.alpha_editor).await)
        .await
        .unwrap();
    let resp = app
        .http
        .post(app.url(&format!("{group}/rename")))
        .header("cookie", "casecast_session=ended")
        .header("referer", "https://evil.example/a/alpha")
        .form(&[("csrf", "x"), ("name", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        location(&resp),
        format!("/login?next={group}/rename&expired=1")
    );
    // Logging in returns to `next`.
    let form = |next: &str| {
        vec![
            ("csrf", hidden(&html, "csrf")),
            ("email", app.alpha_editor.email.clone()),
            ("password", app.alpha_editor.password.clone()),
            ("next", next.to_string()),
        ]
    };
    for (next, lands) in [
        (group.as_str(), group.as_str()),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
    ] {
        let resp = app
            .http
            .post(app.url("/login"))
            .header("cookie", pre.clone())
            .form(&form(next))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "next {next}");
        assert_eq!(location(&resp), lands, "next {next}");
    }
}
