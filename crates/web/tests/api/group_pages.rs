//! Case group pages over HTTP: user text is escaped on every page, every change needs the
//! session's CSRF token and a role that may write, another project's groups and uploads do
//! not exist for a member of this one, and without a session everything sends to the login.

use casecast_testkit::{Dialect, Fixture, TestApp};
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};

use crate::call;
use crate::pages::login;

casecast_testkit::on_both_engines!(
    user_text_is_escaped_on_group_pages,
    posts_without_the_csrf_token_are_403,
    viewers_see_pages_but_cannot_change,
    another_projects_group_is_404,
    no_session_sends_to_login
);

const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "<img src=x onerror=alert(2)>";

/// The value of `name="{field}" value="…"` in a page.
fn hidden(html: &str, field: &str) -> String {
    let marker = format!("name=\"{field}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {field} in page"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// GET with an optional session cookie; returns status, `Location` and body.
async fn get(app: &TestApp, session: Option<&str>, path: &str) -> (u16, String, String) {
    let mut req = app.http.get(app.url(path));
    if let Some(s) = session {
        req = req.header("cookie", format!("casecast_session={s}"));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, resp.text().await.unwrap_or_default())
}

/// A page's HTML; asserts 200.
async fn page(app: &TestApp, session: &str, path: &str) -> String {
    let (status, _, html) = get(app, Some(session), path).await;
    assert_eq!(status, 200, "{path}: {html}");
    html
}

/// The session's CSRF token, read from a page's logout form.
async fn csrf_of(app: &TestApp, session: &str) -> String {
    hidden(
        &page(app, session, "/a/alpha/messaging/case-groups").await,
        "csrf",
    )
}

/// One kind of change a page can post.
#[derive(Clone)]
enum Post {
    /// An urlencoded form to `path` with these fields (besides `csrf`).
    Form(String, Vec<(&'static str, String)>),
    /// The multipart upload form to `path`.
    Upload(String),
}

impl Post {
    fn path(&self) -> &str {
        match self {
            Post::Form(p, _) | Post::Upload(p) => p,
        }
    }
}

/// Every POST of the case group pages, aimed at group `g` of `project`, each one a real
/// change if it were accepted: `member` is in the group, `outsider` (an identifier) is not.
fn every_post(project: &str, g: i64, member: &str, outsider: &str) -> Vec<Post> {
    let base = format!("/a/{project}/messaging/case-groups");
    let at = |what: &str| format!("{base}/{g}/{what}");
    vec![
        Post::Form(base.clone(), vec![("name", "A brand new group".into())]),
        Post::Form(at("add"), vec![("identifier", outsider.to_string())]),
        Post::Form(at("remove"), vec![("case_id", member.to_string())]),
        Post::Form(at("remove-all"), vec![]),
        Post::Form(at("rename"), vec![("name", "Renamed".into())]),
        Post::Form(at("delete"), vec![]),
        Post::Upload(at("upload")),
        Post::Form(at("query"), vec![("query", "district = Gulu".into())]),
    ]
}

/// Sends `post` with an optional session and CSRF token (`None`: no csrf field at all);
/// returns status, `Location` and body.
async fn send(
    app: &TestApp,
    session: Option<&str>,
    post: &Post,
    csrf: Option<&str>,
    outsider: &str,
) -> (u16, String, String) {
    let mut req = app.http.post(app.url(post.path()));
    if let Some(s) = session {
        req = req.header("cookie", format!("casecast_session={s}"));
    }
    req = match post {
        Post::Form(_, fields) => {
            let mut all: Vec<(&str, String)> = Vec::new();
            if let Some(c) = csrf {
                all.push(("csrf", c.to_string()));
            }
            all.extend(fields.iter().cloned());
            req.form(&all)
        }
        Post::Upload(_) => {
            let mut form = Form::new();
            if let Some(c) = csrf {
                form = form.text("csrf", c.to_string());
            }
            let sheet = format!("case_identifier\n{outsider}\n").into_bytes();
            form = form
                .text("mode", "add")
                .part("file", Part::bytes(sheet).file_name("people.csv"));
            req.multipart(form)
        }
    };
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, resp.text().await.unwrap_or_default())
}

/// Everything a page could change in a project: each group with its name, count, members,
/// history and uploads.
async fn state(
    app: &TestApp,
    project_id: i64,
) -> Vec<(i64, String, i64, Vec<String>, usize, usize)> {
    let mut out = Vec::new();
    for g in app.db.list_groups(project_id).await.unwrap() {
        let mut members: Vec<String> = app
            .db
            .group_members(project_id, g.id, None, 1000, None)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|c| c.case_id.as_str().to_string())
            .collect();
        members.sort();
        let history = app.db.group_history(project_id, g.id, 1000).await.unwrap();
        let uploads = app.db.group_uploads(project_id, g.id, 1000).await.unwrap();
        out.push((
            g.id,
            g.name,
            g.case_count,
            members,
            history.len(),
            uploads.len(),
        ));
    }
    out
}

/// Creates a case in `project` through the API; returns its case ID.
async fn new_case(app: &TestApp, project: &str, token: &str, body: Value) -> String {
    let (status, case) = call(
        app,
        Method::POST,
        &app.api(project, "/cases"),
        Some(token),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{case}");
    case["case_id"].as_str().unwrap().to_string()
}

/// Creates a group in `project` holding `members` (case IDs); returns its id.
async fn new_group(app: &TestApp, project: &str, token: &str, name: &str, members: &[&str]) -> i64 {
    let (status, group) = call(
        app,
        Method::POST,
        &app.api(project, "/case-groups"),
        Some(token),
        Some(json!({ "name": name })),
    )
    .await;
    assert_eq!(status, 201, "{group}");
    let id = group["id"].as_i64().unwrap();
    if !members.is_empty() {
        let (status, body) = call(
            app,
            Method::POST,
            &app.api(project, &format!("/case-groups/{id}/cases")),
            Some(token),
            Some(json!({ "identifiers": members })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["counts"]["added"], members.len(), "{body}");
    }
    id
}

/// Uploads a CSV to a group through the API and waits (bounded) until it is done.
async fn api_upload(
    app: &TestApp,
    project: &str,
    token: &str,
    g: i64,
    file_name: &str,
    csv: String,
) -> i64 {
    let form = Form::new().part(
        "file",
        Part::bytes(csv.into_bytes()).file_name(file_name.to_string()),
    );
    let resp = app
        .http
        .post(app.api(project, &format!("/case-groups/{g}/uploads")))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let id = resp.json::<Value>().await.unwrap()["upload_id"]
        .as_i64()
        .unwrap();
    let url = app.api(project, &format!("/uploads/{id}"));
    for _ in 0..600 {
        let (_, body) = call(app, Method::GET, &url, Some(token), None).await;
        match body["status"].as_str() {
            Some("done") => return id,
            Some("queued" | "running") => {}
            _ => panic!("upload {id}: {body}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("upload {id} did not finish");
}

/// The two ways askama may write `raw` escaped.
fn escaped(raw: &str) -> [String; 2] {
    let named = raw
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;");
    let numeric = raw
        .replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;");
    [named, numeric]
}

/// Asserts that `raw` appears in the page only escaped, and at least once.
#[track_caller]
fn assert_escaped(html: &str, raw: &str, what: &str) {
    assert!(!html.contains(raw), "{what}: '{raw}' appears unescaped");
    let [named, numeric] = escaped(raw);
    assert!(
        html.contains(&named) || html.contains(&numeric),
        "{what}: '{raw}' is not shown (escaped)"
    );
}

/// No markup from user text anywhere in the page.
#[track_caller]
fn assert_no_injection(html: &str, what: &str) {
    for raw in ["<script>alert", "<img src=x", "<b>bold</b>"] {
        assert!(!html.contains(raw), "{what}: '{raw}' appears unescaped");
    }
}

async fn user_text_is_escaped_on_group_pages(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let admin = app.alpha_admin.token.clone();
    // Two cases with markup in their names share a phone number (an ambiguous identifier
    // whose message names both); a third is added through the page.
    let one = new_case(
        &app,
        "alpha",
        &admin,
        json!({"name": SCRIPT, "external_id": "EV-1", "phone_number": "+256772000111"}),
    )
    .await;
    let two = new_case(
        &app,
        "alpha",
        &admin,
        json!({"name": IMG, "external_id": "EV-2", "phone_number": "+256772000111"}),
    )
    .await;
    let bold = "<b>bold</b> & \"quoted\" 'name'";
    let three = new_case(
        &app,
        "alpha",
        &admin,
        json!({"name": bold, "external_id": "EV-3"}),
    )
    .await;
    let g = new_group(&app, "alpha", &admin, SCRIPT, &[&one, &two]).await;
    let file_name = "<b>bold</b><script>alert(3)</script>.csv";
    let evil_identifier = "<script>alert(4)</script>";
    let upload_id = api_upload(
        &app,
        "alpha",
        &admin,
        g,
        file_name,
        format!("case_identifier\n0772000111\n{evil_identifier}\nEV-1\n"),
    )
    .await;

    let session = login(&app, &app.alpha_editor).await;
    let list = page(&app, &session, "/a/alpha/messaging/case-groups").await;
    assert_no_injection(&list, "list");
    assert_escaped(&list, SCRIPT, "list: the group name");
    assert!(list.contains(&format!("/a/alpha/messaging/case-groups/{g}")));

    let group_page = page(
        &app,
        &session,
        &format!("/a/alpha/messaging/case-groups/{g}"),
    )
    .await;
    assert_no_injection(&group_page, "group page");
    assert_escaped(&group_page, SCRIPT, "group page: group and case name");
    assert_escaped(&group_page, IMG, "group page: a case name");
    assert_escaped(&group_page, file_name, "group page: the upload's file name");
    let [named, numeric] = escaped(SCRIPT);
    let shown = group_page.matches(&named).count() + group_page.matches(&numeric).count();
    assert!(
        shown >= 3,
        "title, heading, rename field and member name are all escaped ({shown})"
    );
    // A search for markup shows it back escaped.
    let searched = page(
        &app,
        &session,
        &format!("/a/alpha/messaging/case-groups/{g}?q=%3Cb%3Ebold%3C%2Fb%3E"),
    )
    .await;
    assert_no_injection(&searched, "search");
    assert_escaped(&searched, "<b>bold</b>", "search: the query");

    let upload_page = page(
        &app,
        &session,
        &format!("/a/alpha/messaging/uploads/{upload_id}"),
    )
    .await;
    assert_no_injection(&upload_page, "upload page");
    assert_escaped(&upload_page, file_name, "upload page: the file name");
    assert_escaped(&upload_page, evil_identifier, "upload page: an identifier");
    assert_escaped(
        &upload_page,
        SCRIPT,
        "upload page: a case name in a message",
    );
    assert_escaped(&upload_page, IMG, "upload page: a case name in a message");
    assert!(upload_page.contains("ambiguous") && upload_page.contains("not_found"));
    let (status, _, status_json) = get(
        &app,
        Some(&session),
        &format!("/a/alpha/messaging/uploads/{upload_id}/status.json"),
    )
    .await;
    assert_eq!(status, 200);
    let status_json: Value = serde_json::from_str(&status_json).unwrap();
    assert_eq!(
        status_json["file_name"], file_name,
        "JSON carries the text as written"
    );

    // The single add's result names the case: escaped too.
    let csrf = csrf_of(&app, &session).await;
    let add = Post::Form(
        format!("/a/alpha/messaging/case-groups/{g}/add"),
        vec![("identifier", "EV-3".to_string())],
    );
    let (status, to, _) = send(&app, Some(&session), &add, Some(&csrf), "").await;
    assert_eq!(status, 303);
    let added = page(&app, &session, &to).await;
    assert_no_injection(&added, "add result");
    assert_escaped(&added, bold, "add result: the case name");
    assert!(added.contains(&three));
    let ambiguous = Post::Form(
        format!("/a/alpha/messaging/case-groups/{g}/add"),
        vec![("identifier", "0772 000 111".to_string())],
    );
    let (status, to, _) = send(&app, Some(&session), &ambiguous, Some(&csrf), "").await;
    assert_eq!(status, 303);
    let result = page(&app, &session, &to).await;
    assert_no_injection(&result, "ambiguous add result");
    assert!(
        result.contains(&one) && result.contains(&two),
        "both choices are offered"
    );

    // A rename refused for its name shows the name back escaped.
    let rename = Post::Form(
        format!("/a/alpha/messaging/case-groups/{g}/rename"),
        vec![("name", format!("{IMG}\u{7}"))],
    );
    let (status, to, _) = send(&app, Some(&session), &rename, Some(&csrf), "").await;
    assert_eq!(status, 303);
    let refused = page(&app, &session, &to).await;
    assert_no_injection(&refused, "refused rename");
    assert_escaped(&refused, IMG, "refused rename: the name typed");
    let create = Post::Form(
        "/a/alpha/messaging/case-groups".into(),
        vec![("name", format!("{IMG}{}", "x".repeat(300)))],
    );
    let (status, _, refused) = send(&app, Some(&session), &create, Some(&csrf), "").await;
    assert_eq!(status, 422, "{refused}");
    assert_no_injection(&refused, "refused create");
    assert_escaped(&refused, IMG, "refused create: the name typed");
    let html_list = page(&app, &session, "/a/alpha/messaging/case-groups").await;
    assert_no_injection(&html_list, "list after the changes");
}

async fn posts_without_the_csrf_token_are_403(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let admin = app.alpha_admin.token.clone();
    let member = new_case(
        &app,
        "alpha",
        &admin,
        json!({"name": "Aber", "external_id": "M-1"}),
    )
    .await;
    new_case(
        &app,
        "alpha",
        &admin,
        json!({"name": "Okello", "external_id": "OUT-1"}),
    )
    .await;
    let g = new_group(&app, "alpha", &admin, "Study", &[&member]).await;
    let session = login(&app, &app.alpha_editor).await;
    let csrf = csrf_of(&app, &session).await;
    // Another session's token (a real one, of someone else) is no better than a forged one.
    let other_session = login(&app, &app.alpha_admin).await;
    let other_csrf = csrf_of(&app, &other_session).await;
    assert_ne!(csrf, other_csrf);
    let before = state(&app, app.alpha.id).await;
    let wrong = format!("{}x", &csrf[..csrf.len() - 1]);
    let short = csrf[..csrf.len() / 2].to_string();
    for post in every_post("alpha", g, &member, "OUT-1") {
        for token in [
            None,
            Some(""),
            Some("forged"),
            Some(wrong.as_str()),
            Some(short.as_str()),
            Some(other_csrf.as_str()),
        ] {
            let (status, _, body) = send(&app, Some(&session), &post, token, "OUT-1").await;
            assert_eq!(status, 403, "{} with csrf {token:?}: {body}", post.path());
            assert_eq!(
                state(&app, app.alpha.id).await,
                before,
                "{} with csrf {token:?} changed something",
                post.path()
            );
        }
    }
    // The same forms with the session's own token do change things (so the refusals above
    // are the token's doing).
    let add = &every_post("alpha", g, &member, "OUT-1")[1];
    let (status, _, body) = send(&app, Some(&session), add, Some(&csrf), "OUT-1").await;
    assert_eq!(status, 303, "{body}");
    assert_ne!(state(&app, app.alpha.id).await, before);
    let upload = &every_post("alpha", g, &member, "OUT-1")[6];
    let (status, location, _) = send(&app, Some(&session), upload, Some(&csrf), "OUT-1").await;
    assert_eq!(status, 303);
    assert!(
        location.starts_with("/a/alpha/messaging/uploads/"),
        "{location}"
    );
}

/// Counts the forms that post: the logout form is on every page.
fn posting_forms(html: &str) -> Vec<String> {
    html.match_indices("<form")
        .map(|(i, _)| html[i..].split('>').next().unwrap().to_string())
        .filter(|tag| tag.contains("method=\"post\""))
        .collect()
}

async fn viewers_see_pages_but_cannot_change(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let admin = app.alpha_admin.token.clone();
    let member = new_case(
        &app,
        "alpha",
        &admin,
        json!({"name": "Aber", "external_id": "M-1"}),
    )
    .await;
    new_case(
        &app,
        "alpha",
        &admin,
        json!({"name": "Okello", "external_id": "OUT-1"}),
    )
    .await;
    let g = new_group(&app, "alpha", &admin, "Study", &[&member]).await;
    let upload_id = api_upload(
        &app,
        "alpha",
        &admin,
        g,
        "people.csv",
        format!("case_identifier\n{member}\nNOBODY\n"),
    )
    .await;
    let viewer: &Fixture = &app.alpha_viewer;
    let session = login(&app, viewer).await;
    let base = "/a/alpha/messaging";
    for path in [
        format!("{base}/case-groups"),
        format!("{base}/case-groups/{g}"),
        format!("{base}/uploads/{upload_id}"),
    ] {
        let html = page(&app, &session, &path).await;
        let forms = posting_forms(&html);
        assert_eq!(
            forms.len(),
            1,
            "{path}: only the logout form posts: {forms:?}"
        );
        assert!(forms[0].contains("action=\"/logout\""), "{forms:?}");
        assert!(!html.contains("multipart/form-data"), "{path}");
        assert!(html.contains("Study") || path.contains("uploads"), "{path}");
    }
    let group_page = page(&app, &session, &format!("{base}/case-groups/{g}")).await;
    assert!(group_page.contains("Aber"), "the viewer sees the members");
    for path in [
        format!("{base}/case-groups/{g}/export.csv"),
        format!("{base}/case-groups/{g}/export.xlsx"),
        format!("{base}/case-groups/example.xlsx"),
        format!("{base}/uploads/{upload_id}/status.json"),
        format!("{base}/uploads/{upload_id}/results.csv"),
        format!("{base}/uploads/{upload_id}/results.xlsx"),
    ] {
        let (status, _, _) = get(&app, Some(&session), &path).await;
        assert_eq!(status, 200, "{path}");
    }

    let csrf = csrf_of(&app, &session).await;
    let before = state(&app, app.alpha.id).await;
    for post in every_post("alpha", g, &member, "OUT-1") {
        let (status, _, body) = send(&app, Some(&session), &post, Some(&csrf), "OUT-1").await;
        assert_eq!(status, 403, "{}: {body}", post.path());
        assert!(
            body.contains("viewer"),
            "{}: the page says why: {body}",
            post.path()
        );
        assert_eq!(
            state(&app, app.alpha.id).await,
            before,
            "{} changed something",
            post.path()
        );
    }
    // An editor's session posting the same forms does change things.
    let editor = login(&app, &app.alpha_editor).await;
    let editor_csrf = csrf_of(&app, &editor).await;
    let add = &every_post("alpha", g, &member, "OUT-1")[1];
    let (status, _, _) = send(&app, Some(&editor), add, Some(&editor_csrf), "OUT-1").await;
    assert_eq!(status, 303);
    assert_ne!(state(&app, app.alpha.id).await, before);
}

async fn another_projects_group_is_404(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let beta = app.beta_admin.token.clone();
    let theirs = new_case(
        &app,
        "beta",
        &beta,
        json!({"name": "Beta person", "external_id": "B-1"}),
    )
    .await;
    let spare = new_case(
        &app,
        "beta",
        &beta,
        json!({"name": "Beta spare", "external_id": "B-2"}),
    )
    .await;
    let secret = "Beta's secret group";
    let bg = new_group(&app, "beta", &beta, secret, &[&theirs]).await;
    let upload_id = api_upload(
        &app,
        "beta",
        &beta,
        bg,
        "beta-people.csv",
        "case_identifier\nB-1\n".into(),
    )
    .await;
    // alpha has a group of its own, so that alpha's pages work for this session.
    let admin = app.alpha_admin.token.clone();
    let mine = new_case(
        &app,
        "alpha",
        &admin,
        json!({"name": "Aber", "external_id": "B-2"}),
    )
    .await;
    let ag = new_group(&app, "alpha", &admin, "Study", &[&mine]).await;
    let session = login(&app, &app.alpha_admin).await;
    let csrf = csrf_of(&app, &session).await;
    assert_eq!(
        get(
            &app,
            Some(&session),
            &format!("/a/alpha/messaging/case-groups/{ag}")
        )
        .await
        .0,
        200
    );

    for project in ["beta", "alpha"] {
        let base = format!("/a/{project}/messaging");
        let mut paths = vec![
            format!("{base}/case-groups/{bg}"),
            format!("{base}/case-groups/{bg}/export.csv"),
            format!("{base}/case-groups/{bg}/export.xlsx"),
            format!("{base}/uploads/{upload_id}"),
            format!("{base}/uploads/{upload_id}/status.json"),
            format!("{base}/uploads/{upload_id}/results.csv"),
            format!("{base}/uploads/{upload_id}/results.xlsx"),
        ];
        if project == "beta" {
            paths.push(format!("{base}/case-groups"));
            paths.push(format!("{base}/case-groups/example.xlsx"));
        }
        for path in paths {
            let (status, _, body) = get(&app, Some(&session), &path).await;
            assert_eq!(status, 404, "{path}: {body}");
            assert!(
                !body.contains("secret") && !body.contains("Beta person"),
                "{path} reveals beta's data"
            );
        }
    }
    let before = state(&app, app.beta.id).await;
    let alpha_before = state(&app, app.alpha.id).await;
    for project in ["beta", "alpha"] {
        for post in every_post(project, bg, &theirs, &spare) {
            if project == "alpha" && post.path() == "/a/alpha/messaging/case-groups" {
                continue; // creating in alpha is alpha's business, tested elsewhere
            }
            let (status, _, body) = send(&app, Some(&session), &post, Some(&csrf), &spare).await;
            assert_eq!(status, 404, "{}: {body}", post.path());
            assert!(
                !body.contains("secret"),
                "{} reveals beta's group",
                post.path()
            );
            assert_eq!(
                state(&app, app.beta.id).await,
                before,
                "{} changed beta",
                post.path()
            );
            assert_eq!(state(&app, app.alpha.id).await, alpha_before);
        }
    }
    // Beta's own admin still sees the group as it was.
    let (_, group) = call(
        &app,
        Method::GET,
        &app.api("beta", &format!("/case-groups/{bg}")),
        Some(&beta),
        None,
    )
    .await;
    assert_eq!(
        (group["name"].as_str(), group["case_count"].as_i64()),
        (Some(secret), Some(1))
    );
}

async fn no_session_sends_to_login(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let admin = app.alpha_admin.token.clone();
    let member = new_case(
        &app,
        "alpha",
        &admin,
        json!({"name": "Aber", "external_id": "M-1"}),
    )
    .await;
    new_case(
        &app,
        "alpha",
        &admin,
        json!({"name": "Okello", "external_id": "OUT-1"}),
    )
    .await;
    let g = new_group(&app, "alpha", &admin, "Study", &[&member]).await;
    let upload_id = api_upload(
        &app,
        "alpha",
        &admin,
        g,
        "people.csv",
        format!("case_identifier\n{member}\n"),
    )
    .await;
    let base = "/a/alpha/messaging";
    for session in [None, Some("not-a-session")] {
        for path in [
            format!("{base}/case-groups"),
            format!("{base}/case-groups/{g}"),
            format!("{base}/case-groups/{g}?q=Aber"),
            format!("{base}/case-groups/{g}/export.csv"),
            format!("{base}/case-groups/{g}/export.xlsx"),
            format!("{base}/case-groups/example.xlsx"),
            format!("{base}/uploads/{upload_id}"),
            format!("{base}/uploads/{upload_id}/status.json"),
            format!("{base}/uploads/{upload_id}/results.csv"),
            format!("{base}/uploads/{upload_id}/results.xlsx"),
        ] {
            let (status, location, body) = get(&app, session, &path).await;
            assert_eq!(status, 303, "{path} ({session:?})");
            assert!(
                location.starts_with("/login?next=/a/alpha/messaging/"),
                "{path}: {location}"
            );
            assert!(!body.contains("Aber"), "{path} shows data");
        }
        let before = state(&app, app.alpha.id).await;
        for post in every_post("alpha", g, &member, "OUT-1") {
            let (status, location, _) = send(&app, session, &post, Some("forged"), "OUT-1").await;
            assert_eq!(status, 303, "{} ({session:?})", post.path());
            assert!(location.starts_with("/login?next="), "{location}");
            assert_eq!(state(&app, app.alpha.id).await, before, "{}", post.path());
        }
    }
}
