//! People, not identifiers: the upload report, a group's history, the message log and the
//! opt-out list name each case (linked to its page) and say outcomes in words; the upload
//! report filters to its problems; the broadcast composer counts recipients by language code
//! and warns of a translation nobody gets and of a misspelt property.

use casecast_testkit::Workflows;
use casecast_testkit::{Dialect, TestApp};
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};

use crate::message_pages::{csrf_of, log_gateway, new_case, page, post};
use crate::pages::login;
use crate::{call, code};

casecast_testkit::on_both_engines!(
    the_upload_report_names_cases_and_shows_problems_only,
    the_group_history_names_the_case,
    the_message_log_and_opt_outs_name_cases,
    the_preview_counts_languages_and_warns,
);

/// The link to a case's page with its name, as the pages write it.
fn case_link(case_id: &str, name: &str) -> String {
    format!("<a href=\"/a/alpha/cases/{case_id}\" class=\"case-link\">{name}</a>")
}

async fn new_group(app: &TestApp, name: &str) -> i64 {
    let (status, g) = call(
        app,
        Method::POST,
        &app.api("alpha", "/case-groups"),
        Some(&app.alpha_admin.token),
        Some(json!({"name": name})),
    )
    .await;
    assert_eq!(status, 201, "{g}");
    g["id"].as_i64().unwrap()
}

async fn add_members(app: &TestApp, group: i64, identifiers: &[&str]) -> Value {
    let (status, body) = call(
        app,
        Method::POST,
        &app.api("alpha", &format!("/case-groups/{group}/cases")),
        Some(&app.alpha_admin.token),
        Some(json!({"identifiers": identifiers})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Uploads a CSV to a group through the API and waits for it to finish; its id.
async fn upload(app: &TestApp, group: i64, csv: &str) -> i64 {
    let form = Form::new().part(
        "file",
        Part::bytes(csv.as_bytes().to_vec()).file_name("people.csv"),
    );
    let resp = app
        .http
        .post(app.api("alpha", &format!("/case-groups/{group}/uploads")))
        .bearer_auth(&app.alpha_admin.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let id = resp.json::<Value>().await.unwrap()["upload_id"]
        .as_i64()
        .unwrap();
    let url = app.api("alpha", &format!("/uploads/{id}"));
    for _ in 0..600 {
        let (_, body) = call(app, Method::GET, &url, Some(&app.alpha_admin.token), None).await;
        match body["status"].as_str() {
            Some("done") => return id,
            Some("queued" | "running") => {}
            _ => panic!("upload {id}: {body}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("upload {id} did not finish");
}

async fn the_upload_report_names_cases_and_shows_problems_only(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let grace = new_case(
        &app,
        json!({"name": "Aber Grace", "external_id": "GUL-0020"}),
    )
    .await;
    let okello = new_case(
        &app,
        json!({"name": "Okello John", "external_id": "GUL-0021"}),
    )
    .await;
    let g = new_group(&app, "Study").await;
    add_members(&app, g, &[&okello]).await;
    // `gul-0020` finds GUL-0020 ignoring case; GUL-0021 is already a member; NOBODY is no one.
    let id = upload(&app, g, "Case Identifier\ngul-0020\nGUL-0021\nNOBODY\n").await;
    let viewer = login(&app, &app.alpha_viewer).await;
    let report = page(&app, &viewer, &format!("/a/alpha/messaging/uploads/{id}")).await;
    assert!(
        report.contains(&case_link(&grace, "Aber Grace")),
        "{report}"
    );
    assert!(
        report.contains(&case_link(&okello, "Okello John")),
        "{report}"
    );
    assert!(report.contains("GUL-0020") && report.contains("GUL-0021"));
    assert!(
        report.contains("<td>already in the group</td>")
            && report.contains("<td>no such case</td>"),
        "outcomes read as words: {report}"
    );
    assert!(
        !report.contains(">already_in_group<") && !report.contains(">not_found<"),
        "{report}"
    );
    assert!(report.contains(&format!("/a/alpha/messaging/uploads/{id}?problems=1")));

    let problems = page(
        &app,
        &viewer,
        &format!("/a/alpha/messaging/uploads/{id}?problems=1"),
    )
    .await;
    assert!(problems.contains("<td>NOBODY</td>"), "{problems}");
    assert!(
        !problems.contains("Aber Grace") && !problems.contains("Okello John"),
        "rows without a problem are left out: {problems}"
    );
    assert!(problems.contains("id=\"show-all\""));
}

async fn the_group_history_names_the_case(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let grace = new_case(
        &app,
        json!({"name": "Aber Grace", "external_id": "GUL-0020", "phone_number": "+256772000020"}),
    )
    .await;
    let g = new_group(&app, "Study").await;
    // Added by phone number: the history names the case, not the number typed.
    add_members(&app, g, &["0772 000020"]).await;
    let viewer = login(&app, &app.alpha_viewer).await;
    let html = page(
        &app,
        &viewer,
        &format!("/a/alpha/messaging/case-groups/{g}"),
    )
    .await;
    let history = &html[html.find("class=\"history\"").expect("a history table")..];
    assert!(
        history.contains(&case_link(&grace, "Aber Grace")),
        "{history}"
    );
    assert!(history.contains("GUL-0020"), "{history}");
}

async fn the_message_log_and_opt_outs_name_cases(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    log_gateway(&app, app.alpha.id, "Log").await;
    let grace = new_case(
        &app,
        json!({"name": "Aber Grace", "external_id": "GUL-0020", "phone_number": "+256772000020"}),
    )
    .await;
    let sent = app
        .db
        .send_to_case(&app.alpha, &grace, "Clinic tomorrow", None, None)
        .await
        .unwrap();
    let (status, body) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/opt-outs"),
        Some(&app.alpha_admin.token),
        Some(json!({"phone_number": "+256772000020"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/opt-outs"),
        Some(&app.alpha_admin.token),
        Some(json!({"phone_number": "+256772999999"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let viewer = login(&app, &app.alpha_viewer).await;
    let log = page(&app, &viewer, "/a/alpha/messaging/messages").await;
    assert!(log.contains(&case_link(&grace, "Aber Grace")), "{log}");
    assert!(log.contains("GUL-0020"));
    let one = page(
        &app,
        &viewer,
        &format!("/a/alpha/messaging/messages/{}", sent.id),
    )
    .await;
    assert!(one.contains(&case_link(&grace, "Aber Grace")), "{one}");
    let opt_outs = page(&app, &viewer, "/a/alpha/messaging/opt-outs").await;
    assert!(
        opt_outs.contains(&case_link(&grace, "Aber Grace")),
        "{opt_outs}"
    );
    assert!(
        opt_outs.contains("no case has this number"),
        "a number of no case says so: {opt_outs}"
    );
}

async fn the_preview_counts_languages_and_warns(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    log_gateway(&app, app.alpha.id, "Log").await;
    let mut cases = Vec::new();
    for (i, language) in ["ach", "ach", "en", ""].iter().enumerate() {
        let mut body = json!({
            "name": format!("Case {i}"),
            "phone_number": format!("+25677200010{i}"),
            "properties": {"district": "Gulu"},
        });
        if !language.is_empty() {
            body["language_code"] = json!(language);
        }
        cases.push(new_case(&app, body).await);
    }
    let draft = |sms: Value| {
        json!({
            "name": "Notice",
            "recipients": {"case_groups": [], "cases": cases},
            "content": {"sms": sms},
            "schedule": {"kind": "immediate"},
        })
    };
    let preview = |body: Value| {
        let app = &app;
        async move {
            call(
                app,
                Method::POST,
                &app.api("alpha", "/broadcasts/preview"),
                Some(&app.alpha_editor.token),
                Some(body),
            )
            .await
        }
    };
    // A language name where its code belongs is refused: no case could get it.
    let (status, err) = preview(draft(json!({"*": "Hi", "Acholi": "Apwoyo"}))).await;
    assert_eq!((status, code(&err)), (422, "invalid"), "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("'Acholi' is not a language code"),
        "{message}"
    );

    let (status, p) = preview(draft(
        json!({"*": "Hi {case.distict}", "ach": "Apwoyo", "lg": "Gyebale"}),
    ))
    .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        p["recipient_languages"],
        json!([
            {"language_code": "ach", "recipients": 2},
            {"language_code": null, "recipients": 1},
            {"language_code": "en", "recipients": 1},
        ])
    );
    let warnings: Vec<&str> = (p["warnings"].as_array().unwrap().iter())
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("translation 'lg'") && warnings[0].contains("ach (2)"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].contains("{case.distict}")
            && warnings[1].contains("did you mean {case.district}?"),
        "{warnings:?}"
    );

    // The composer: property names offered, the counts and the warnings in the preview.
    let editor = login(&app, &app.alpha_editor).await;
    let form = page(&app, &editor, "/a/alpha/messaging/broadcasts/new").await;
    assert!(form.contains("<code>{case.district}</code>"), "{form}");
    let csrf = csrf_of(&app, &editor).await;
    let ids = cases.join("\n");
    let fields = |lang: &'static str| -> Vec<(&'static str, &str)> {
        vec![
            ("csrf", csrf.as_str()),
            ("name", "Notice"),
            ("cases", ids.as_str()),
            ("default_text", "Hi {case.distict}"),
            ("lang_0", lang),
            ("text_0", "Apwoyo"),
            ("schedule_kind", "now"),
            ("stop", "never"),
            ("gateway_id", ""),
            ("action", "preview"),
        ]
    };
    const NEW: &str = "/a/alpha/messaging/broadcasts/new";
    let (status, _, html) = post(&app, &editor, NEW, &fields("Acholi")).await;
    assert_eq!(status, 422, "{html}");
    assert!(
        html.contains("&#39;Acholi&#39; is not a language code"),
        "{html}"
    );
    let (status, _, html) = post(&app, &editor, NEW, &fields("lg")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"preview-languages\""), "{html}");
    assert!(
        html.contains("<tr data-language=\"ach\"><th>ach</th><td>2</td></tr>"),
        "{html}"
    );
    assert!(html.contains("id=\"preview-warnings\""), "{html}");
    assert!(html.contains("did you mean {case.district}?"), "{html}");
}
