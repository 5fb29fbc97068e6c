//! The keyword pages through HTTP form posts: the form creates and edits (CSRF, roles), shows
//! each error next to its field with the input kept; the keyword's page shows its use and the
//! messages it matched (escaped); the list deletes; the message log filters by keyword.

use casecast_testkit::{Dialect, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use super::{matched, new_keyword, reply_only};
use crate::call;
use crate::case_groups::new_group;
use crate::pages::{get_page, hidden, login};

casecast_testkit::on_both_engines!(
    the_form_creates_a_keyword,
    errors_show_next_to_their_fields_with_the_input_kept,
    the_form_edits_and_the_list_deletes,
    forms_need_the_token_a_writer_and_the_project,
    the_keyword_page_shows_its_use_and_messages,
    the_message_log_filters_by_keyword,
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

const NEW: &str = "/a/alpha/messaging/keywords/new";
const LIST: &str = "/a/alpha/messaging/keywords";

async fn keywords(app: &TestApp) -> Vec<Value> {
    let (status, list) = call(
        app,
        Method::GET,
        &app.api("alpha", "/keywords"),
        Some(&app.alpha_admin.token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    list["keywords"].as_array().unwrap().clone()
}

/// The text of the element with this id (its first text, up to the next tag).
fn error_at(html: &str, id: &str) -> String {
    let marker = format!("id=\"error-{id}\">");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no error at {id} in {html}"))
        + marker.len();
    html[start..].split('<').next().unwrap().to_string()
}

async fn the_form_creates_a_keyword(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let group = new_group(&app, "ANC <mothers>").await.to_string();
    let session = login(&app, &app.alpha_editor).await;
    let (status, html) = get_page(&app, &session, NEW).await;
    assert_eq!(status, 200);
    for input in [
        "name=\"keyword\"",
        "name=\"fields\"",
        "name=\"override_open_survey\"",
        "name=\"unknown_sender\" value=\"create_case\"",
        "name=\"unknown_reply\"",
        "name=\"case_type\"",
        "name=\"a0.type\"",
        "name=\"a4.case_group_id\"",
        "ANC &#60;mothers&#62;",
    ] {
        assert!(html.contains(input), "{input} missing");
    }
    assert!(!html.contains("name=\"a5.type\""), "five rows");
    let csrf = hidden(&html, "csrf");
    let (status, location, _) = post(
        &app,
        &session,
        NEW,
        &[
            ("csrf", &csrf),
            ("keyword", "Reg"),
            ("fields", "name birth_date"),
            ("override_open_survey", "on"),
            ("unknown_sender", "create_case"),
            ("unknown_reply", ""),
            ("case_type", "mother"),
            ("a0.type", "reply"),
            ("a0.text", "Welcome {field.name}"),
            ("a0.translations", "sw: Karibu {field.name}"),
            ("a0.survey_id", ""),
            ("a0.case_group_id", &group),
            ("a1.type", ""),
            ("a1.text", "a blank row is ignored"),
            ("a2.type", "add_to_group"),
            ("a2.case_group_id", &group),
            ("a3.type", "set_properties"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    assert!(
        location.starts_with(&format!("{LIST}?done=created")),
        "{location}"
    );
    let list = keywords(&app).await;
    assert_eq!(list.len(), 1);
    let k = &list[0];
    assert_eq!(k["keyword"], "Reg");
    assert_eq!(k["fields"], json!(["name", "birth_date"]));
    assert_eq!(k["override_open_survey"], true);
    assert_eq!(k["unknown_sender"], "create_case");
    assert_eq!(k["case_type"], "mother");
    assert_eq!(
        k["actions"],
        json!([
            {"type": "reply", "text": {"*": "Welcome {field.name}", "sw": "Karibu {field.name}"}},
            {"type": "add_to_group", "case_group_id": group.parse::<i64>().unwrap()},
            {"type": "set_properties", "dates": []}
        ])
    );
    // The list: how it is sent, its actions, its use; escaped.
    let (status, html) = get_page(&app, &session, &location).await;
    assert_eq!(status, 200);
    assert!(html.contains("The keyword Reg was created."), "{html}");
    assert!(
        html.contains("Reg &#60;name&#62; &#60;birth date&#62;"),
        "{html}"
    );
    assert!(
        html.contains("add to group “ANC &#60;mothers&#62;”"),
        "{html}"
    );
    assert!(
        html.contains("reply “Welcome {field.name}” (+1 translations)"),
        "{html}"
    );
    assert!(html.contains("id=\"new-keyword\""));
    // The navigation leads here.
    let (_, cases) = get_page(&app, &session, "/a/alpha/cases").await;
    assert!(cases.contains("href=\"/a/alpha/messaging/keywords\""));
}

async fn errors_show_next_to_their_fields_with_the_input_kept(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    new_keyword(&app, reply_only("JOIN")).await;
    let session = login(&app, &app.alpha_editor).await;
    let (_, html) = get_page(&app, &session, NEW).await;
    let csrf = hidden(&html, "csrf");
    let (status, _, html) = post(
        &app,
        &session,
        NEW,
        &[
            ("csrf", &csrf),
            ("keyword", "STOP"),
            ("fields", "name bad!"),
            ("unknown_sender", "reply"),
            ("unknown_reply.translations", "Karibu"),
            ("a1.type", "reply"),
            ("a1.text", ""),
            ("a3.type", "start_survey"),
            ("a3.survey_id", "999999"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        error_at(&html, "keyword").contains("stop or start words"),
        "{html}"
    );
    assert!(error_at(&html, "fields").contains("bad!"), "{html}");
    assert!(
        error_at(&html, "a1-text").contains("write the reply"),
        "{html}"
    );
    assert!(
        error_at(&html, "unknown_reply").contains("write the reply"),
        "{html}"
    );
    assert!(
        error_at(&html, "unknown_reply-translations").contains("language code"),
        "{html}"
    );
    assert!(html.contains("id=\"form-errors\""));
    // What was typed is kept.
    assert!(html.contains("value=\"STOP\""));
    assert!(html.contains("value=\"name bad!\""));
    assert!(html.contains("id=\"unknown_sender-reply\" checked"));
    // The references are checked once the rest is right: the survey is not the project's.
    let (status, _, html) = post(
        &app,
        &session,
        NEW,
        &[
            ("csrf", &csrf),
            ("keyword", "VISIT"),
            ("a3.type", "start_survey"),
            ("a3.survey_id", "999999"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        error_at(&html, "a3-survey_id"),
        "no such survey in this project"
    );
    assert!(
        html.contains("deleted survey #999999"),
        "the choice is kept"
    );
    // A word another keyword has, ignoring case: 409 at the keyword.
    let (status, _, html) = post(
        &app,
        &session,
        NEW,
        &[
            ("csrf", &csrf),
            ("keyword", "join"),
            ("a0.type", "reply"),
            ("a0.text", "Hi"),
        ],
    )
    .await;
    assert_eq!(status, 409);
    assert!(
        error_at(&html, "keyword").contains("already has the keyword"),
        "{html}"
    );
    assert_eq!(keywords(&app).await.len(), 1);
}

async fn the_form_edits_and_the_list_deletes(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let k = new_keyword(
        &app,
        json!({"keyword": "REG", "fields": "name", "actions": [
            {"type": "reply", "text": {"*": "Welcome", "fr": "Bienvenue"}},
            {"type": "set_properties"}
        ], "unknown_sender": "reply", "unknown_reply": "Register at the clinic"}),
    )
    .await;
    let id = k["id"].as_i64().unwrap();
    let edit = format!("{LIST}/{id}/edit");
    let session = login(&app, &app.alpha_editor).await;
    let (status, html) = get_page(&app, &session, &edit).await;
    assert_eq!(status, 200);
    assert!(html.contains("value=\"REG\""));
    assert!(html.contains(">fr: Bienvenue</textarea>"), "{html}");
    assert!(html.contains(">Register at the clinic</textarea>"));
    assert!(html.contains("value=\"set_properties\" selected"));
    let csrf = hidden(&html, "csrf");
    let (status, location, _) = post(
        &app,
        &session,
        &edit,
        &[
            ("csrf", &csrf),
            ("keyword", "REGISTER"),
            ("fields", "name"),
            ("unknown_sender", "ignore"),
            ("unknown_reply", "Register at the clinic"),
            ("a0.type", "reply"),
            ("a0.text", "Welcome back"),
            ("a0.translations", "fr: Bienvenue"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    assert!(
        location.starts_with(&format!("{LIST}/{id}?done=saved")),
        "{location}"
    );
    let k = &keywords(&app).await[0];
    assert_eq!(k["keyword"], "REGISTER");
    assert_eq!(k["actions"].as_array().unwrap().len(), 1);
    assert_eq!(k["unknown_sender"], "ignore");
    assert_eq!(k["unknown_reply"]["*"], "Register at the clinic", "kept");
    let (_, html) = get_page(&app, &session, &location).await;
    assert!(html.contains("The keyword was saved."));
    // Delete from the list.
    let (_, html) = get_page(&app, &session, LIST).await;
    assert!(html.contains(&format!("action=\"{LIST}/{id}/delete\"")));
    let (status, location, _) = post(
        &app,
        &session,
        &format!("{LIST}/{id}/delete"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 303);
    assert!(
        location.starts_with(&format!("{LIST}?done=deleted")),
        "{location}"
    );
    assert!(keywords(&app).await.is_empty());
    let (_, html) = get_page(&app, &session, &location).await;
    assert!(html.contains("The keyword REGISTER was deleted."));
    assert!(html.contains("id=\"no-keywords\""));
    let (status, _) = get_page(&app, &session, &format!("{LIST}/{id}")).await;
    assert_eq!(status, 404);
}

async fn forms_need_the_token_a_writer_and_the_project(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let k = new_keyword(&app, reply_only("REG")).await;
    let id = k["id"].as_i64().unwrap();
    let editor = login(&app, &app.alpha_editor).await;
    let (_, html) = get_page(&app, &editor, NEW).await;
    let csrf = hidden(&html, "csrf");
    let typed = [("keyword", "JOIN"), ("a0.type", "reply"), ("a0.text", "Hi")];
    // No token, a wrong token.
    let (status, _, _) = post(&app, &editor, NEW, &typed).await;
    assert_eq!(status, 403);
    let mut wrong = vec![("csrf", "nope")];
    wrong.extend(typed);
    let (status, _, _) = post(&app, &editor, NEW, &wrong).await;
    assert_eq!(status, 403);
    let (status, _, _) = post(&app, &editor, &format!("{LIST}/{id}/delete"), &[]).await;
    assert_eq!(status, 403);
    // A viewer sees the list and the keyword's page, without the forms, and cannot post.
    let viewer = login(&app, &app.alpha_viewer).await;
    let (status, html) = get_page(&app, &viewer, LIST).await;
    assert_eq!(status, 200);
    assert!(html.contains("REG"));
    assert!(!html.contains("id=\"new-keyword\""));
    assert!(!html.contains("/delete\""));
    let (status, html) = get_page(&app, &viewer, &format!("{LIST}/{id}")).await;
    assert_eq!(status, 200);
    assert!(!html.contains("id=\"edit-keyword\""));
    for path in [NEW.to_string(), format!("{LIST}/{id}/edit")] {
        let (status, _) = get_page(&app, &viewer, &path).await;
        assert_eq!(status, 403, "{path}");
    }
    let viewer_csrf = hidden(&get_page(&app, &viewer, LIST).await.1, "csrf");
    let mut as_viewer = vec![("csrf", viewer_csrf.as_str())];
    as_viewer.extend(typed);
    let (status, _, _) = post(&app, &viewer, NEW, &as_viewer).await;
    assert_eq!(status, 403);
    let (status, _, _) = post(
        &app,
        &viewer,
        &format!("{LIST}/{id}/delete"),
        &[("csrf", &viewer_csrf)],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(keywords(&app).await.len(), 1);
    // Beta's admin: alpha's pages are not theirs; beta's path does not reach alpha's keyword.
    let beta = login(&app, &app.beta_admin).await;
    let (status, _) = get_page(&app, &beta, &format!("{LIST}/{id}")).await;
    assert!(status == 403 || status == 404, "{status}");
    let (status, _) = get_page(&app, &beta, &format!("/a/beta/messaging/keywords/{id}")).await;
    assert_eq!(status, 404);
    let beta_csrf = hidden(
        &get_page(&app, &beta, "/a/beta/messaging/keywords").await.1,
        "csrf",
    );
    let (status, _, _) = post(
        &app,
        &beta,
        &format!("/a/beta/messaging/keywords/{id}/delete"),
        &[("csrf", &beta_csrf)],
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = post(
        &app,
        &beta,
        &format!("/a/beta/messaging/keywords/{id}/edit"),
        &[
            ("csrf", &beta_csrf),
            ("keyword", "X"),
            ("a0.type", "reply"),
            ("a0.text", "x"),
        ],
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(keywords(&app).await[0]["keyword"], "REG");
    let _ = csrf;
}

async fn the_keyword_page_shows_its_use_and_messages(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let k = new_keyword(&app, reply_only("REG")).await;
    let id = k["id"].as_i64().unwrap();
    let (status, case) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/cases"),
        Some(&app.alpha_admin.token),
        Some(json!({"name": "Amina <b>", "phone_number": "+256772000001"})),
    )
    .await;
    assert_eq!(status, 201, "{case}");
    let case_id = case["case_id"].as_str().unwrap();
    let pk = app
        .db
        .case_recipient(app.alpha.id, case_id)
        .await
        .unwrap()
        .unwrap()
        .case_pk;
    let now = casecast_core::time::now_ms();
    matched(&app, id, Some(pk), "REG <script>x</script>", now - 1000).await;
    matched(&app, id, None, "reg Old", now - 20 * super::DAY).await;
    let session = login(&app, &app.alpha_viewer).await;
    let (status, html) = get_page(&app, &session, &format!("{LIST}/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(
            "<span data-use=\"7\">1</span> in the last 7 days, <span data-use=\"30\">2</span>"
        ),
        "{html}"
    );
    assert!(
        html.contains("REG &#60;script&#62;x&#60;/script&#62;"),
        "{html}"
    );
    assert!(!html.contains("<script>x"));
    assert!(html.contains(&format!("href=\"/a/alpha/cases/{case_id}\"")));
    assert!(html.contains("Amina &#60;b&#62;"));
    assert!(html.contains("no case"));
    assert!(html.contains(&format!("/a/alpha/messaging/messages?keyword_id={id}")));
    // The list shows the counts too.
    let (_, html) = get_page(&app, &session, LIST).await;
    assert!(html.contains("<td data-use=\"7\">1</td>"), "{html}");
    assert!(html.contains("<td data-use=\"30\">2</td>"), "{html}");
}

async fn the_message_log_filters_by_keyword(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let reg = new_keyword(&app, reply_only("REG")).await["id"]
        .as_i64()
        .unwrap();
    let join = new_keyword(&app, reply_only("JOIN")).await["id"]
        .as_i64()
        .unwrap();
    let now = casecast_core::time::now_ms();
    let first = matched(&app, reg, None, "REG first", now).await;
    matched(&app, join, None, "JOIN second", now).await;
    let session = login(&app, &app.alpha_viewer).await;
    let log = "/a/alpha/messaging/messages";
    let (status, html) = get_page(&app, &session, log).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"keyword-filter\""));
    assert!(
        html.contains(&format!("<option value=\"{join}\" >JOIN</option>")),
        "{html}"
    );
    assert!(html.contains("REG first") && html.contains("JOIN second"));
    assert!(html.contains("class=\"keyword-tag\""));
    let (status, html) = get_page(&app, &session, &format!("{log}?keyword_id={reg}")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("REG first") && !html.contains("JOIN second"),
        "{html}"
    );
    assert!(
        html.contains(&format!("<option value=\"{reg}\" selected>REG</option>")),
        "{html}"
    );
    // A message's page names its keyword, and says when it was deleted.
    let (status, html) = get_page(&app, &session, &format!("{log}/{first}")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!(
            "<a href=\"/a/alpha/messaging/keywords/{reg}\">REG</a>"
        )),
        "{html}"
    );
    let (status, _) = call(
        &app,
        Method::DELETE,
        &app.api("alpha", &format!("/keywords/{reg}")),
        Some(&app.alpha_editor.token),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, html) = get_page(&app, &session, &format!("{log}/{first}")).await;
    assert!(html.contains("a deleted keyword"), "{html}");
    let (status, html) = get_page(&app, &session, &format!("{log}?keyword_id={reg}")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!(
            "<option value=\"{reg}\" selected>deleted keyword #{reg}</option>"
        )),
        "{html}"
    );
    assert!(html.contains("REG first"), "{html}");
    let (status, html) = get_page(&app, &session, &format!("{log}?keyword_id=REG")).await;
    assert_eq!(status, 422);
    assert!(
        html.contains("Keyword: choose one of the keywords"),
        "{html}"
    );
}
