//! Broadcasts whose content is a survey, over HTTP: the API creates one with `{"survey": id}`
//! (422 on `content.survey` for another project's survey or none) and previews its first
//! message; the compose form offers the project's surveys, and the broadcast's page links the
//! survey it sends.

use casecast_core::survey::Survey;
use casecast_testkit::{Dialect, TestApp};
use serde_json::{json, Value};

use super::*;
use crate::message_pages::{assert_escaped, csrf_of, page, post as post_form, SCRIPT};
use crate::pages::login;

casecast_testkit::on_both_engines!(
    the_api_sends_a_survey_of_the_project_only,
    the_compose_form_sends_a_survey
);

/// A two-question survey named `name`, with a Swahili translation, stored in `project_id`.
async fn survey(app: &TestApp, project_id: i64, name: &str) -> i64 {
    let s = Survey::parse(&json!({
        "name": name,
        "intro": {"*": "Hello from the clinic.", "sw": "Habari kutoka kliniki."},
        "questions": [
            {"key": "visits", "type": "number", "text": {"*": "How many visits?", "sw": "Mara ngapi?"}},
            {"key": "well", "type": "yes_no", "text": "Are you well?"}
        ]
    }))
    .unwrap();
    app.db.create_survey(project_id, &s, None).await.unwrap().id
}

fn survey_body(group: i64, survey: Value) -> Value {
    json!({
        "name": "Survey round",
        "recipients": {"case_groups": [group], "cases": []},
        "content": {"survey": survey},
        "schedule": {"kind": "immediate"},
    })
}

async fn the_api_sends_a_survey_of_the_project_only(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let a = audience(&app).await;
    let ours = survey(&app, app.alpha.id, "ANC check").await;
    let theirs = survey(&app, app.beta.id, "Beta survey").await;
    for (id, path) in [
        (json!(theirs), "/broadcasts"),
        (json!(theirs), "/broadcasts/preview"),
        (json!(ours + 100), "/broadcasts"),
        (json!(0), "/broadcasts"),
    ] {
        let (status, got) = post(&app, path, survey_body(a.group, id.clone())).await;
        assert_eq!(status, 422, "{id} {path}: {got}");
        let text = got.to_string();
        assert!(text.contains("content.survey"), "{id} {path}: {got}");
    }
    assert!(read(&app, "/broadcasts").await["broadcasts"]
        .as_array()
        .unwrap()
        .is_empty());

    // The preview: two recipients (one in Swahili), each with the intro and first question.
    let (status, preview) = post(
        &app,
        "/broadcasts/preview",
        survey_body(a.group, json!(ours)),
    )
    .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["recipients"], 2, "{preview}");
    let text = preview.to_string();
    assert!(
        text.contains("Habari kutoka kliniki.\\nMara ngapi?")
            && text.contains("Hello from the clinic.\\nHow many visits?"),
        "{preview}"
    );

    // Created (the id as text, as a form sends it) and written back as a number; each
    // recipient's message belongs to a session.
    let (status, b) = post(
        &app,
        "/broadcasts",
        survey_body(a.group, json!(ours.to_string())),
    )
    .await;
    assert_eq!(status, 201, "{b}");
    assert_eq!(b["content"], json!({"survey": ours}));
    let id = b["id"].as_i64().unwrap();
    assert_eq!(
        read(&app, &format!("/broadcasts/{id}")).await["content"],
        json!({"survey": ours})
    );
    until_status(&app, id, "completed").await;
    let counts = app.db.session_counts(ours).await.unwrap();
    assert_eq!(counts.get("active"), Some(&2), "{counts:?}");
}

const NEW: &str = "/a/alpha/messaging/broadcasts/new";

/// POSTs the compose form.
async fn send_form(
    app: &TestApp,
    session: &str,
    fields: Vec<(String, String)>,
) -> (u16, String, String) {
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    post_form(app, session, NEW, &refs).await
}

async fn the_compose_form_sends_a_survey(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let a = audience(&app).await;
    let name = format!("Check {SCRIPT}");
    let ours = survey(&app, app.alpha.id, &name).await;
    let theirs = survey(&app, app.beta.id, "Beta survey").await;
    let editor = login(&app, &app.alpha_editor).await;
    let csrf = csrf_of(&app, &editor).await;
    let form = page(&app, &editor, NEW).await;
    assert!(form.contains("name=\"content_kind\" value=\"survey\""));
    assert!(
        form.contains(&format!("<option value=\"{ours}\">")),
        "the project's survey is offered: {form}"
    );
    assert!(!form.contains(&format!("<option value=\"{theirs}\">")));
    assert_escaped(&form, SCRIPT, "the survey's name in the form");

    let group = a.group.to_string();
    let survey_id = ours.to_string();
    let fields = |survey: &str, action: &'static str| -> Vec<(String, String)> {
        [
            ("csrf", csrf.as_str()),
            ("name", "Survey round"),
            ("group", group.as_str()),
            ("content_kind", "survey"),
            ("survey_id", survey),
            ("default_text", ""),
            ("schedule_kind", "now"),
            ("action", action),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    // Another project's survey is not one to choose.
    let (status, _, html) = send_form(&app, &editor, fields(&theirs.to_string(), "preview")).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("Survey: there is no survey"), "{html}");
    // None chosen.
    let (status, _, html) = send_form(&app, &editor, fields("", "preview")).await;
    assert_eq!(status, 422);
    assert!(html.contains("Survey: choose a survey"), "{html}");

    let (status, _, html) = send_form(&app, &editor, fields(&survey_id, "preview")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"preview-recipients\">2<"), "{html}");
    assert!(html.contains("Mara ngapi?") && html.contains("How many visits?"));
    assert!(html.contains(&format!("<option value=\"{ours}\" selected>")));
    let previewed = html
        .split("name=\"previewed\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .replace("&#34;", "\"")
        .replace("&quot;", "\"");
    let mut send = fields(&survey_id, "send");
    send.push(("previewed".into(), previewed));
    let (status, location, body) = send_form(&app, &editor, send).await;
    assert_eq!(status, 303, "{body}");
    let html = page(&app, &editor, &location).await;
    assert!(
        html.contains(&format!("href=\"/a/alpha/messaging/surveys/{ours}\"")),
        "{html}"
    );
    assert!(html.contains("id=\"broadcast-survey\"") && !html.contains("id=\"broadcast-texts\""));
    assert_escaped(&html, SCRIPT, "the survey's name on the broadcast's page");
}
