//! Smart groups over the API and the pages (issue 16): `POST /case-groups {name, query}`, its
//! members kept current by the worker, 409 `smart_group` for hand changes, 422
//! `invalid_query` with the position, cycles refused, roles and projects kept apart; the
//! group page shows the query and takes a new one, the case list saves a query as a group.

use casecast_testkit::{Dialect, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::case_groups::{alpha_case, new_group};
use crate::pages::{get_page, hidden, login};
use crate::{call, code};

casecast_testkit::on_both_engines!(
    a_smart_group_over_the_api_follows_its_cases,
    smart_group_errors_say_what_and_where,
    smart_group_pages_show_and_change_the_query,
);

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    call(
        app,
        Method::POST,
        &app.api("alpha", path),
        Some(token),
        Some(body),
    )
    .await
}

async fn group_json(app: &TestApp, id: i64) -> Value {
    let (status, g) = call(
        app,
        Method::GET,
        &app.api("alpha", &format!("/case-groups/{id}")),
        Some(&app.alpha_viewer.token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{g}");
    g
}

/// Waits (up to 20 s) for the worker to bring the group's count to `want`.
async fn count_becomes(app: &TestApp, id: i64, want: i64) {
    for _ in 0..200 {
        if group_json(app, id).await["case_count"] == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "the group's count stayed {} (wanted {want})",
        group_json(app, id).await["case_count"]
    );
}

async fn member_names(app: &TestApp, id: i64) -> Vec<String> {
    let (status, page) = call(
        app,
        Method::GET,
        &app.api("alpha", &format!("/case-groups/{id}/cases")),
        Some(&app.alpha_viewer.token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let mut names: Vec<String> = page["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

async fn a_smart_group_over_the_api_follows_its_cases(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let editor = app.alpha_editor.token.clone();
    let amina = alpha_case(
        &app,
        json!({"name": "Amina", "phone_number": "0772000901",
               "properties": {"district": "Gulu", "age": "30"}}),
    )
    .await;
    alpha_case(
        &app,
        json!({"name": "Bea", "properties": {"district": "Lira", "age": "40"}}),
    )
    .await;
    let (status, g) = post(
        &app,
        &editor,
        "/case-groups",
        json!({"name": "Gulu adults", "query": "district = Gulu AND age >= 18"}),
    )
    .await;
    assert_eq!(status, 201, "{g}");
    assert_eq!(g["query"], "district = Gulu AND age >= 18");
    assert_eq!(g["case_count"], 1);
    assert!(g["as_of"].is_string(), "{g}");
    let id = g["id"].as_i64().unwrap();
    assert_eq!(member_names(&app, id).await, vec!["Amina"]);

    // A plain group answers `query: null`.
    let plain = new_group(&app, "Plain").await;
    assert_eq!(group_json(&app, plain).await["query"], Value::Null);

    // Cases change; the worker keeps the members current.
    let (status, _) = call(
        &app,
        Method::PATCH,
        &app.api("alpha", &format!("/cases/{amina}")),
        Some(&editor),
        Some(json!({"properties": {"age": "17"}})),
    )
    .await;
    assert_eq!(status, 200);
    count_becomes(&app, id, 0).await;
    alpha_case(
        &app,
        json!({"name": "Cleo", "properties": {"district": "GULU", "age": "18"}}),
    )
    .await;
    count_becomes(&app, id, 1).await;
    assert_eq!(member_names(&app, id).await, vec!["Cleo"]);

    // Hand changes: 409 smart_group, every way.
    for (method, path, body) in [
        (
            Method::POST,
            format!("/case-groups/{id}/cases"),
            Some(json!({"identifiers": [amina.clone()]})),
        ),
        (
            Method::POST,
            format!("/case-groups/{id}/cases/remove"),
            Some(json!({"identifiers": [amina.clone()]})),
        ),
        (
            Method::DELETE,
            format!("/case-groups/{id}/cases/{amina}"),
            None,
        ),
    ] {
        let (status, err) = call(&app, method, &app.api("alpha", &path), Some(&editor), body).await;
        assert_eq!((status, code(&err)), (409, "smart_group"), "{path}: {err}");
    }

    // A new query, by name of another group; renaming that group keeps the meaning.
    let (status, g) = call(
        &app,
        Method::PATCH,
        &app.api("alpha", &format!("/case-groups/{id}")),
        Some(&editor),
        Some(json!({"query": "district = Lira OR group = Plain"})),
    )
    .await;
    assert_eq!(status, 200, "{g}");
    assert_eq!(g["case_count"], 1);
    assert_eq!(member_names(&app, id).await, vec!["Bea"]);
    let (status, _) = call(
        &app,
        Method::PATCH,
        &app.api("alpha", &format!("/case-groups/{plain}")),
        Some(&editor),
        Some(json!({"name": "Plain list"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        group_json(&app, id).await["query"],
        "district = Lira OR group = \"Plain list\""
    );
    // Adding Amina to the plain group makes her a member of the smart one.
    crate::case_groups::change(&app, plain, false, &[&amina]).await;
    count_becomes(&app, id, 2).await;

    // A viewer cannot make one; another project cannot see this one.
    let (status, _) = post(
        &app,
        &app.alpha_viewer.token.clone(),
        "/case-groups",
        json!({"name": "Nope", "query": "age > 1"}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &app,
        Method::GET,
        &app.api("beta", &format!("/case-groups/{id}")),
        Some(&app.beta_admin.token),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        Method::PATCH,
        &app.api("beta", &format!("/case-groups/{id}")),
        Some(&app.beta_admin.token),
        Some(json!({"query": "age > 1"})),
    )
    .await;
    assert_eq!(status, 404);
}

async fn smart_group_errors_say_what_and_where(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let editor = app.alpha_editor.token.clone();
    let long = "a = 1 AND ".repeat(1_100) + "a = 1";
    for (query, want) in [
        ("age >= ", "query: at 7: expected a value after '>='"),
        ("district = Gulu AND (", "query: at "),
        ("group = Nowhere", "query: no case group is named 'Nowhere'"),
        ("group = 99999", "query: no case group has the id 99999"),
        ("", "query: "),
        (long.as_str(), "query: "),
    ] {
        let (status, err) = post(
            &app,
            &editor,
            "/case-groups",
            json!({"name": "Broken", "query": query}),
        )
        .await;
        assert_eq!((status, code(&err)), (422, "invalid_query"), "{err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(want),
            "'{message}' should start with '{want}'"
        );
    }
    // Nothing was made.
    let (_, list) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/case-groups"),
        Some(&editor),
        None,
    )
    .await;
    assert!(list["case_groups"].as_array().unwrap().is_empty(), "{list}");

    // Cycles, and deleting a group a query names.
    let (_, a) = post(
        &app,
        &editor,
        "/case-groups",
        json!({"name": "A", "query": "age > 1"}),
    )
    .await;
    let (_, b) = post(
        &app,
        &editor,
        "/case-groups",
        json!({"name": "B", "query": "group = A"}),
    )
    .await;
    let (status, err) = call(
        &app,
        Method::PATCH,
        &app.api("alpha", &format!("/case-groups/{}", a["id"])),
        Some(&editor),
        Some(json!({"query": "group = B"})),
    )
    .await;
    assert_eq!((status, code(&err)), (422, "invalid_query"), "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'A' → 'B' → 'A'"),
        "{err}"
    );
    let (status, err) = call(
        &app,
        Method::DELETE,
        &app.api("alpha", &format!("/case-groups/{}", a["id"])),
        Some(&editor),
        None,
    )
    .await;
    assert_eq!((status, code(&err)), (409, "group_in_use"), "{err}");
    // A plain group takes no query.
    let plain = new_group(&app, "Plain").await;
    let (status, err) = call(
        &app,
        Method::PATCH,
        &app.api("alpha", &format!("/case-groups/{plain}")),
        Some(&editor),
        Some(json!({"query": "age > 1"})),
    )
    .await;
    assert_eq!((status, code(&err)), (409, "not_smart"), "{err}");
    // A rename to a name in use is refused before the query changes; an empty change is 422.
    let (status, err) = call(
        &app,
        Method::PATCH,
        &app.api("alpha", &format!("/case-groups/{}", b["id"])),
        Some(&editor),
        Some(json!({"name": "plain", "query": "age > 5"})),
    )
    .await;
    assert_eq!((status, code(&err)), (409, "name_taken"), "{err}");
    let (_, b_now) = call(
        &app,
        Method::GET,
        &app.api("alpha", &format!("/case-groups/{}", b["id"])),
        Some(&editor),
        None,
    )
    .await;
    assert_eq!(b_now["query"], "group = A", "unchanged");
    let (status, err) = call(
        &app,
        Method::PATCH,
        &app.api("alpha", &format!("/case-groups/{}", b["id"])),
        Some(&editor),
        Some(json!({})),
    )
    .await;
    assert_eq!((status, code(&err)), (422, "invalid"), "{err}");
}

async fn smart_group_pages_show_and_change_the_query(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    alpha_case(
        &app,
        json!({"name": "Amina", "properties": {"district": "Gulu", "age": "30"}}),
    )
    .await;
    alpha_case(
        &app,
        json!({"name": "Bea", "properties": {"district": "Lira", "age": "40"}}),
    )
    .await;
    let editor = login(&app, &app.alpha_editor).await;
    let viewer = login(&app, &app.alpha_viewer).await;

    // The case list offers to save a query, to editors only.
    let (status, html) = get_page(&app, &editor, "/a/alpha/cases?query=district+%3D+Gulu").await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"save-smart-group\""), "{html}");
    let csrf = hidden(&html, "csrf");
    let (_, html) = get_page(&app, &viewer, "/a/alpha/cases?query=district+%3D+Gulu").await;
    assert!(!html.contains("id=\"save-smart-group\""));

    let form = |fields: &[(&str, &str)]| {
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        all.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let post = |path: &str, fields: Vec<(String, String)>| {
        app.http
            .post(app.url(path))
            .header("cookie", format!("casecast_session={editor}"))
            .form(&fields)
            .send()
    };
    // A wrong query: the groups page, the error with its position, the text kept.
    let resp = post(
        "/a/alpha/messaging/case-groups",
        form(&[
            ("name", "Gulu"),
            ("query", "district = <b>Gulu</b> AND age >="),
        ]),
    )
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Query: at "), "{html}");
    assert!(
        html.contains("&#60;b&#62;Gulu&#60;"),
        "escaped and kept: {html}"
    );
    assert!(!html.contains("<b>Gulu</b>"));

    // Saved: the group's page shows the query, no add or upload form, the members.
    let resp = post(
        "/a/alpha/messaging/case-groups",
        form(&[("name", "Gulu"), ("query", "district = Gulu")]),
    )
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let (status, html) = get_page(&app, &editor, &location).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("id=\"smart-query\">district = Gulu<"),
        "{html}"
    );
    assert!(html.contains("Members as of "), "{html}");
    assert!(!html.contains("id=\"add-case\""));
    assert!(!html.contains("id=\"upload\""));
    assert!(html.contains("Amina") && !html.contains("Bea"));
    assert!(html.contains("id=\"change-query\""));
    let (_, html) = get_page(&app, &viewer, &location).await;
    assert!(
        !html.contains("id=\"change-query\""),
        "viewers cannot change it"
    );

    // A new query through the page; a wrong one keeps what was typed.
    let resp = post(
        &format!("{location}/query"),
        form(&[("query", "district = Lira")]),
    )
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let back = resp.headers()["location"].to_str().unwrap().to_string();
    let (_, html) = get_page(&app, &editor, &back).await;
    assert!(html.contains("1 matched, 1 no longer matched"), "{html}");
    assert!(html.contains("Bea") && !html.contains("Amina"));
    let resp = post(&format!("{location}/query"), form(&[("query", "age >")]))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let back = resp.headers()["location"].to_str().unwrap().to_string();
    let (_, html) = get_page(&app, &editor, &back).await;
    assert!(html.contains("Query: at 6"), "{html}");
    assert!(html.contains("value=\"age &#62;\""), "{html}");
    // Without the token: 403, and nothing changed.
    let resp = app
        .http
        .post(app.url(&format!("{location}/query")))
        .header("cookie", format!("casecast_session={editor}"))
        .form(&[("query", "district = Gulu")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let (_, html) = get_page(&app, &editor, &location).await;
    assert!(html.contains("id=\"smart-query\">district = Lira<"));
}
