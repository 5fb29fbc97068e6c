//! The survey pages through HTTP form posts: the builder creates and edits (CSRF, roles, the
//! editing rule), shows every error next to its field with the input kept, adds and removes
//! questions without a script; the list deletes.

use casecast_testkit::{Dialect, TestApp};
use reqwest::Method;
use serde_json::Value;

use super::{active_session, new_survey};
use crate::call;
use crate::pages::{get_page, hidden, login};

casecast_testkit::on_both_engines!(
    the_builder_creates_a_survey,
    errors_show_next_to_their_fields_with_the_input_kept,
    questions_are_added_and_removed_without_a_script,
    the_edit_page_keeps_the_editing_rule,
    the_list_deletes_and_refuses_a_survey_in_use,
    forms_need_the_token_a_writer_and_the_project,
);

/// Posts a form with the session; returns status, `Location` and body.
async fn post(
    app: &TestApp,
    session: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> (u16, String, String) {
    let resp = app
        .http
        .post(app.url(path))
        .header("cookie", format!("casecast_session={session}"))
        .form(fields)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, resp.text().await.unwrap())
}

const NEW: &str = "/a/alpha/messaging/surveys/new";
const LIST: &str = "/a/alpha/messaging/surveys";

/// A survey typed into the builder (without the CSRF token).
fn typed(name: &str) -> Vec<(&'static str, String)> {
    [
        ("action", "save"),
        ("name", name),
        ("languages", "sw"),
        ("intro", "Hello"),
        ("intro.sw", "Habari"),
        ("end_text", "Thank you"),
        ("max_attempts", "2"),
        ("reminders_every", "60"),
        ("reminders_times", "1"),
        ("expire_after_minutes", "600"),
        ("q0.key", "age"),
        ("q0.type", "number"),
        ("q0.text", "Your age?"),
        ("q0.text.sw", "Umri wako?"),
        ("q0.required", "on"),
        ("q0.min", "0"),
        ("q0.max", "120"),
        ("q0.case_property", "age"),
        ("q1.key", "visited"),
        ("q1.type", "choice"),
        ("q1.text", "Visited?"),
        ("q1.choices", "yes | Yes | y, yeah\nno | No"),
        ("q1.choices.sw", "Ndiyo\nHapana"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect()
}

fn with_csrf<'a>(csrf: &'a str, fields: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    let mut out = vec![("csrf", csrf)];
    out.extend(fields.iter().map(|(k, v)| (*k, v.as_str())));
    out
}

/// Replaces (or adds) a field.
fn set(fields: &mut Vec<(&'static str, String)>, key: &'static str, value: &str) {
    fields.retain(|(k, _)| *k != key);
    fields.push((key, value.to_string()));
}

async fn api_survey(app: &TestApp, id: i64) -> Value {
    let (status, s) = call(
        app,
        Method::GET,
        &app.api("alpha", &format!("/surveys/{id}")),
        Some(&app.alpha_admin.token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{s}");
    s
}

async fn only_survey_id(app: &TestApp) -> i64 {
    let (_, list) = call(
        app,
        Method::GET,
        &app.api("alpha", "/surveys"),
        Some(&app.alpha_admin.token),
        None,
    )
    .await;
    assert_eq!(list["surveys"].as_array().unwrap().len(), 1, "{list}");
    list["surveys"][0]["id"].as_i64().unwrap()
}

async fn the_builder_creates_a_survey(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let session = login(&app, &app.alpha_editor).await;
    let (status, html) = get_page(&app, &session, NEW).await;
    assert_eq!(status, 200);
    for input in [
        "name=\"name\"",
        "name=\"languages\"",
        "name=\"q0.key\"",
        "name=\"q0.type\"",
        "name=\"q0.choices\"",
        "id=\"question-template\"",
        "/static/survey_builder.js",
        "data-counter=",
    ] {
        assert!(html.contains(input), "{input} missing");
    }
    let csrf = hidden(&html, "csrf");
    let fields = typed("Follow-up");
    let (status, location, _) = post(&app, &session, NEW, &with_csrf(&csrf, &fields)).await;
    assert_eq!(status, 303);
    assert!(
        location.starts_with(&format!("{LIST}?done=created")),
        "{location}"
    );
    let (_, list) = get_page(&app, &session, &location).await;
    assert!(
        list.contains("The survey “Follow-up” was created."),
        "{list}"
    );
    let id = only_survey_id(&app).await;
    assert!(
        list.contains(&format!("href=\"{LIST}/{id}\"")),
        "links to the survey's page"
    );
    assert!(list.contains(&format!("{LIST}/{id}/edit")));
    let s = api_survey(&app, id).await;
    assert_eq!(s["intro"]["sw"], "Habari");
    assert_eq!(s["max_attempts"], 2);
    assert_eq!(s["reminders"]["every_minutes"], 60);
    assert_eq!(s["questions"][0]["required"], true);
    assert_eq!(s["questions"][0]["case_property"], "age");
    assert_eq!(s["questions"][0]["text"]["sw"], "Umri wako?");
    assert_eq!(s["questions"][1]["required"], false, "an unticked box");
    assert_eq!(
        s["questions"][1]["choices"][0]["synonyms"],
        serde_json::json!(["y", "yeah"])
    );
    assert_eq!(s["questions"][1]["choices"][1]["text"]["sw"], "Hapana");
    // The navigation links to the list.
    assert!(list.contains("href=\"/a/alpha/messaging/surveys\""));
}

async fn errors_show_next_to_their_fields_with_the_input_kept(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let session = login(&app, &app.alpha_editor).await;
    let csrf = hidden(&get_page(&app, &session, NEW).await.1, "csrf");
    let mut fields = typed("<script>alert(1)</script>");
    set(&mut fields, "max_attempts", "0");
    set(&mut fields, "q0.key", "status");
    set(&mut fields, "q0.min", "zero");
    set(&mut fields, "q1.choices", "yes | Yes\n | No");
    set(&mut fields, "q1.choices.sw", "Ndiyo\nHapana\nLabda");
    set(&mut fields, "intro.sw", "");
    let (status, _, html) = post(&app, &session, NEW, &with_csrf(&csrf, &fields)).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("id=\"form-errors\""));
    for id in [
        "error-max_attempts",
        "error-q0-key",
        "error-q0-min",
        "error-q1-choices",
        "error-q1-choices-sw",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id} missing");
    }
    assert!(
        html.contains("option 2 (value): empty"),
        "the option's line is named"
    );
    assert!(
        html.contains("&#39;zero&#39; is not a number")
            || html.contains("&#x27;zero&#x27; is not a number"),
        "{html}"
    );
    // What was typed is kept, escaped.
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || html.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
    );
    assert!(html.contains("value=\"status\""));
    assert!(html.contains("Ndiyo\nHapana\nLabda"));
    assert!(html.contains("value=\"sw\""), "the languages kept");
    // Nothing was saved.
    let (_, list) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/surveys"),
        Some(&app.alpha_admin.token),
        None,
    )
    .await;
    assert_eq!(list["surveys"], serde_json::json!([]));
    // A taken name shows next to the name.
    new_survey(&app, "Taken").await;
    let fields = typed("TAKEN");
    let (status, _, html) = post(&app, &session, NEW, &with_csrf(&csrf, &fields)).await;
    assert_eq!(status, 409);
    assert!(html.contains("id=\"error-name\""), "{html}");
    assert!(html.contains("value=\"TAKEN\""));
}

async fn questions_are_added_and_removed_without_a_script(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let session = login(&app, &app.alpha_editor).await;
    let csrf = hidden(&get_page(&app, &session, NEW).await.1, "csrf");
    let mut fields = typed("Follow-up");
    set(&mut fields, "action", "add_question");
    let (status, _, html) = post(&app, &session, NEW, &with_csrf(&csrf, &fields)).await;
    assert_eq!(status, 200, "shown again, not saved");
    assert!(html.contains("name=\"q2.key\""));
    assert!(html.contains("value=\"visited\""), "the others kept");
    set(&mut fields, "action", "remove_0");
    let (status, _, html) = post(&app, &session, NEW, &with_csrf(&csrf, &fields)).await;
    assert_eq!(status, 200);
    assert!(!html.contains("value=\"age\""), "question 1 removed");
    assert!(
        html.contains("name=\"q0.key\" id=\"q0-key\" value=\"visited\""),
        "renumbered: {html}"
    );
    // Listing a language shows its fields.
    set(&mut fields, "action", "languages");
    set(&mut fields, "languages", "sw fr");
    let (_, _, html) = post(&app, &session, NEW, &with_csrf(&csrf, &fields)).await;
    assert!(html.contains("name=\"intro.fr\""));
    assert!(html.contains("name=\"q0.text.fr\""));
    let (_, list) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/surveys"),
        Some(&app.alpha_admin.token),
        None,
    )
    .await;
    assert_eq!(list["surveys"], serde_json::json!([]), "nothing saved");
}

async fn the_edit_page_keeps_the_editing_rule(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let session = login(&app, &app.alpha_editor).await;
    let s = new_survey(&app, "Follow-up").await;
    let id = s["id"].as_i64().unwrap();
    let edit = format!("{LIST}/{id}/edit");
    let (status, html) = get_page(&app, &session, &edit).await;
    assert_eq!(status, 200);
    assert!(html.contains("value=\"Follow-up\""));
    assert!(html.contains("name=\"q1.choices\""));
    assert!(html.contains("yes | Yes | y"), "{html}");
    assert!(html.contains("Ndiyo\nHapana"), "choice translations");
    let csrf = hidden(&html, "csrf");
    active_session(&app, id, 1).await;
    let (_, html) = get_page(&app, &session, &edit).await;
    assert!(html.contains("id=\"active-sessions\""));
    // A new question is refused while it runs; a new name is not.
    let mut fields = typed("Follow-up");
    set(&mut fields, "q0.key", "years");
    let (status, _, html) = post(&app, &session, &edit, &with_csrf(&csrf, &fields)).await;
    assert_eq!(status, 409, "{html}");
    assert!(html.contains("1 active session"), "{html}");
    assert!(html.contains("value=\"years\""), "the input kept");
    assert_eq!(api_survey(&app, id).await["questions"], s["questions"]);
    // The stored survey as its form holds it, renamed: the questions are the same.
    let same: Vec<(&'static str, String)> = [
        ("action", "save"),
        ("name", "Renamed"),
        ("languages", "sw"),
        ("intro", "Hello from the clinic"),
        ("intro.sw", "Habari kutoka kliniki"),
        ("end_text", "Thank you"),
        ("max_attempts", "2"),
        ("reminders_every", "60"),
        ("reminders_times", "2"),
        ("expire_after_minutes", "1440"),
        ("q0.key", "age"),
        ("q0.type", "number"),
        ("q0.text", "Your age?"),
        ("q0.required", "on"),
        ("q0.min", "0"),
        ("q0.max", "120"),
        ("q0.case_property", "age"),
        ("q1.key", "visited"),
        ("q1.type", "choice"),
        ("q1.text", "Were you visited?"),
        ("q1.text.sw", "Ulitembelewa?"),
        ("q1.required", "on"),
        ("q1.choices", "yes | Yes | y\nno | No"),
        ("q1.choices.sw", "Ndiyo\nHapana"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect();
    let (status, location, html) = post(&app, &session, &edit, &with_csrf(&csrf, &same)).await;
    assert_eq!(status, 303, "{html}");
    assert!(location.starts_with(&format!("{LIST}?done=saved")));
    let after = api_survey(&app, id).await;
    assert_eq!(after["name"], "Renamed");
    assert_eq!(after["questions"], s["questions"]);
    // Another project's survey has no edit page.
    let beta = login(&app, &app.beta_admin).await;
    let (status, _) = get_page(&app, &beta, &edit).await;
    assert!(status == 403 || status == 404, "{status}");
    let (status, _) = get_page(&app, &beta, &format!("/a/beta/messaging/surveys/{id}/edit")).await;
    assert_eq!(status, 404);
}

async fn the_list_deletes_and_refuses_a_survey_in_use(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let session = login(&app, &app.alpha_editor).await;
    let (_, html) = get_page(&app, &session, LIST).await;
    assert!(html.contains("id=\"no-surveys\""));
    let csrf = hidden(&html, "csrf");
    let used = new_survey(&app, "Used").await["id"].as_i64().unwrap();
    let free = new_survey(&app, "Free").await["id"].as_i64().unwrap();
    active_session(&app, used, 1).await;
    let (_, html) = get_page(&app, &session, LIST).await;
    assert!(html.contains(&format!("id=\"survey-{used}\"")));
    let (status, _, html) = post(
        &app,
        &session,
        &format!("{LIST}/{used}/delete"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 409);
    assert!(html.contains("“Used” was not deleted"), "{html}");
    assert!(html.contains("1 active session"));
    let (status, location, _) = post(
        &app,
        &session,
        &format!("{LIST}/{free}/delete"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 303);
    let (_, html) = get_page(&app, &session, &location).await;
    assert!(html.contains("The survey “Free” was deleted."));
    assert!(!html.contains(&format!("id=\"survey-{free}\"")));
    // GET on the form's address leads to the list.
    let resp = app
        .http
        .get(app.url(&format!("{LIST}/{used}/delete")))
        .header("cookie", format!("casecast_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(resp.headers()["location"].to_str().unwrap(), LIST);
}

async fn forms_need_the_token_a_writer_and_the_project(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let editor = login(&app, &app.alpha_editor).await;
    let viewer = login(&app, &app.alpha_viewer).await;
    let id = new_survey(&app, "Follow-up").await["id"].as_i64().unwrap();
    let fields = typed("New one");
    // Without the token, or with another session's.
    let (status, _, _) = post(&app, &editor, NEW, &with_csrf("", &fields)).await;
    assert_eq!(status, 403);
    let viewer_csrf = hidden(&get_page(&app, &viewer, LIST).await.1, "csrf");
    let (status, _, _) = post(&app, &editor, NEW, &with_csrf(&viewer_csrf, &fields)).await;
    assert_eq!(status, 403);
    // Viewers see the list but not the builder, and change nothing.
    let (status, html) = get_page(&app, &viewer, LIST).await;
    assert_eq!(status, 200);
    assert!(html.contains("Follow-up"));
    assert!(!html.contains("id=\"new-survey\""));
    assert!(!html.contains("/delete\""));
    for path in [NEW.to_string(), format!("{LIST}/{id}/edit")] {
        let (status, _) = get_page(&app, &viewer, &path).await;
        assert_eq!(status, 403, "{path}");
        let (status, _, _) = post(&app, &viewer, &path, &with_csrf(&viewer_csrf, &fields)).await;
        assert_eq!(status, 403, "{path}");
    }
    let (status, _, _) = post(
        &app,
        &viewer,
        &format!("{LIST}/{id}/delete"),
        &[("csrf", &viewer_csrf)],
    )
    .await;
    assert_eq!(status, 403);
    // Another project's member: alpha's pages are not theirs, and alpha's survey is not in beta.
    let beta = login(&app, &app.beta_admin).await;
    let beta_csrf = hidden(
        &get_page(&app, &beta, "/a/beta/messaging/surveys").await.1,
        "csrf",
    );
    let (status, _, _) = post(
        &app,
        &beta,
        &format!("/a/beta/messaging/surveys/{id}/delete"),
        &[("csrf", &beta_csrf)],
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = post(
        &app,
        &beta,
        &format!("/a/beta/messaging/surveys/{id}/edit"),
        &with_csrf(&beta_csrf, &fields),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(api_survey(&app, id).await["name"], "Follow-up");
    // Without a session: the login.
    let resp = app.http.get(app.url(LIST)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
}
