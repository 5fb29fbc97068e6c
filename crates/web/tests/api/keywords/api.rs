//! `/keywords` over HTTP, and `GET /messages?keyword_id=`.

use casecast_testkit::{Dialect, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use super::{matched, new_keyword, reply, reply_only, DAY};
use crate::case_groups::new_group;
use crate::surveys::new_survey;
use crate::{call, code};

casecast_testkit::on_both_engines!(
    keywords_are_created_read_listed_changed_and_deleted,
    every_field_error_is_returned_with_its_path,
    surveys_and_groups_must_be_the_projects,
    stop_and_start_words_are_refused,
    keywords_are_unique_ignoring_case,
    readers_read_and_writers_write,
    another_projects_keyword_is_404,
    use_is_counted_over_7_and_30_days,
    the_message_log_filters_by_keyword,
    bodies_over_the_limit_are_413,
);

fn fields(body: &Value) -> Vec<String> {
    let mut f: Vec<String> = body["error"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no fields in {body}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect();
    f.sort();
    f
}

fn message_at<'a>(body: &'a Value, field: &str) -> &'a str {
    body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["field"] == field)
        .unwrap_or_else(|| panic!("no {field} in {body}"))["message"]
        .as_str()
        .unwrap()
}

async fn keywords_are_created_read_listed_changed_and_deleted(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let token = Some(app.alpha_editor.token.as_str());
    let group = new_group(&app, "ANC").await;
    let survey = new_survey(&app, "Follow-up").await;
    let survey_id = survey["id"].as_i64().unwrap();
    let k = new_keyword(
        &app,
        json!({
            "keyword": "Reg",
            "fields": ["name", "birth_date"],
            "actions": [
                {"type": "reply", "text": {"*": "Welcome {field.name}", "sw": "Karibu {field.name}"}},
                {"type": "add_to_group", "case_group_id": group},
                {"type": "start_survey", "survey_id": survey_id},
                {"type": "set_properties"}
            ],
            "unknown_sender": "create_case",
            "case_type": "mother"
        }),
    )
    .await;
    let id = k["id"].as_i64().unwrap();
    assert_eq!(k["keyword"], "Reg", "kept as typed");
    assert_eq!(k["fields"], json!(["name", "birth_date"]));
    assert_eq!(k["actions"][0]["text"]["sw"], "Karibu {field.name}");
    assert_eq!(
        k["actions"][1],
        json!({"type": "add_to_group", "case_group_id": group})
    );
    assert_eq!(k["actions"][2]["survey_id"], survey_id);
    assert_eq!(k["actions"][3]["type"], "set_properties");
    assert_eq!(k["override_open_survey"], false);
    assert_eq!(k["unknown_sender"], "create_case");
    assert_eq!(k["unknown_reply"], Value::Null);
    assert_eq!(k["case_type"], "mother");
    assert!(k["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(k["updated_at"].is_string());
    assert_eq!(k["use"], json!({"last_7_days": 0, "last_30_days": 0}));
    let url = app.api("alpha", &format!("/keywords/{id}"));
    let (status, got) = call(&app, Method::GET, &url, token, None).await;
    assert_eq!(status, 200);
    assert_eq!(got, k);
    // Defaults of a minimal body; the list is ordered by keyword, ignoring case.
    let join = new_keyword(&app, reply_only("JOIN")).await;
    assert_eq!(join["fields"], json!([]));
    assert_eq!(join["unknown_sender"], "ignore");
    assert_eq!(join["case_type"], "contact");
    assert_eq!(join["actions"][0]["text"], json!({"*": "Thank you"}));
    let anc = new_keyword(&app, reply_only("anc")).await;
    let (status, list) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/keywords"),
        token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let words: Vec<&str> = list["keywords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["keyword"].as_str().unwrap())
        .collect();
    assert_eq!(words, vec!["anc", "JOIN", "Reg"]);
    assert_eq!(list["keywords"][2], k);
    // PATCH merges: the given fields change, the others stay.
    let (status, changed) = call(
        &app,
        Method::PATCH,
        &url,
        token,
        Some(json!({"override_open_survey": true, "keyword": "REG"})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["keyword"], "REG");
    assert_eq!(changed["override_open_survey"], true);
    assert_eq!(changed["actions"], k["actions"]);
    assert_eq!(changed["created_at"], k["created_at"]);
    // What GET answers can be sent back whole (its read-only fields are ignored).
    let mut whole = changed.clone();
    whole["unknown_sender"] = json!("reply");
    whole["unknown_reply"] = json!({"*": "Ask the clinic to register {field.name}"});
    let (status, again) = call(&app, Method::PATCH, &url, token, Some(whole)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["unknown_sender"], "reply");
    assert_eq!(
        again["unknown_reply"]["*"],
        "Ask the clinic to register {field.name}"
    );
    assert_eq!(again["id"], id);
    // A PATCH that breaks a rule changes nothing.
    let (status, e) = call(
        &app,
        Method::PATCH,
        &url,
        token,
        Some(json!({"actions": []})),
    )
    .await;
    assert_eq!((status, fields(&e)), (422, vec!["actions".to_string()]));
    let (_, still) = call(&app, Method::GET, &url, token, None).await;
    assert_eq!(still["actions"], k["actions"]);
    let (status, _) = call(&app, Method::DELETE, &url, token, None).await;
    assert_eq!(status, 204);
    let (status, gone) = call(&app, Method::GET, &url, token, None).await;
    assert_eq!((status, code(&gone)), (404, "not_found"));
    let (status, _) = call(&app, Method::DELETE, &url, token, None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&app, Method::PATCH, &url, token, Some(json!({}))).await;
    assert_eq!(status, 404);
    let (_, list) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/keywords"),
        token,
        None,
    )
    .await;
    assert_eq!(list["keywords"].as_array().unwrap().len(), 2);
    assert_eq!(list["keywords"][0]["id"], anc["id"]);
}

async fn every_field_error_is_returned_with_its_path(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let (status, e) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/keywords"),
        Some(&app.alpha_editor.token),
        Some(json!({
            "keyword": "two words",
            "fields": ["name", "bad field!"],
            "actions": [
                {"type": "reply"},
                {"type": "send_money"},
                {"type": "start_survey", "survey_id": "x"},
                {"type": "reply", "text": {"*": "Hi", "sw": 3}}
            ],
            "unknown_sender": "maybe",
            "colour": "red"
        })),
    )
    .await;
    assert_eq!((status, code(&e)), (422, "invalid"), "{e}");
    assert_eq!(
        fields(&e),
        vec![
            "actions[0].text",
            "actions[1].type",
            "actions[2].survey_id",
            "actions[3].text.sw",
            "colour",
            "fields[1]",
            "keyword",
            "unknown_sender",
        ]
    );
    assert!(message_at(&e, "keyword").contains("one word"), "{e}");
    // A body that is not an object, and one without actions.
    for (body, field) in [
        (json!(["REG"]), "body"),
        (json!({"keyword": "REG"}), "actions"),
        (
            json!({"keyword": "REG", "unknown_sender": "reply", "actions": [{"type": "reply", "text": "x"}]}),
            "unknown_reply",
        ),
    ] {
        let (status, e) = call(
            &app,
            Method::POST,
            &app.api("alpha", "/keywords"),
            Some(&app.alpha_editor.token),
            Some(body),
        )
        .await;
        assert_eq!((status, fields(&e)), (422, vec![field.to_string()]), "{e}");
    }
    // Limits: 20 characters, 20 fields, 10 actions.
    let too_many: Vec<String> = (0..21).map(|i| format!("f{i}")).collect();
    let actions: Vec<Value> = (0..11)
        .map(|_| json!({"type": "reply", "text": "x"}))
        .collect();
    let (status, e) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/keywords"),
        Some(&app.alpha_editor.token),
        Some(json!({"keyword": "A".repeat(21), "fields": too_many, "actions": actions})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(fields(&e), vec!["actions", "fields", "keyword"]);
    assert!(message_at(&e, "actions").contains("at most 10"), "{e}");
    assert!(message_at(&e, "fields").contains("at most 20"), "{e}");
    assert!(message_at(&e, "keyword").contains("at most 20"), "{e}");
}

async fn surveys_and_groups_must_be_the_projects(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    // Beta's survey: an id that exists, in another project.
    let (status, beta_survey) = call(
        &app,
        Method::POST,
        &app.api("beta", "/surveys"),
        Some(&app.beta_admin.token),
        Some(crate::surveys::body("Beta's")),
    )
    .await;
    assert_eq!(status, 201);
    let (status, e) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/keywords"),
        Some(&app.alpha_editor.token),
        Some(json!({"keyword": "JOIN", "actions": [
            {"type": "reply", "text": "Welcome"},
            {"type": "start_survey", "survey_id": beta_survey["id"]},
            {"type": "add_to_group", "case_group_id": 999_999}
        ]})),
    )
    .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(
        fields(&e),
        vec!["actions[1].survey_id", "actions[2].case_group_id"]
    );
    assert_eq!(
        message_at(&e, "actions[1].survey_id"),
        "no such survey in this project"
    );
    assert_eq!(
        message_at(&e, "actions[2].case_group_id"),
        "no such case group in this project"
    );
    // A PATCH is checked the same way.
    let k = new_keyword(&app, reply_only("JOIN")).await;
    let (status, e) = call(
        &app,
        Method::PATCH,
        &app.api("alpha", &format!("/keywords/{}", k["id"])),
        Some(&app.alpha_editor.token),
        Some(json!({"actions": [{"type": "remove_from_group", "case_group_id": 999_999}]})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(fields(&e), vec!["actions[0].case_group_id"]);
}

async fn stop_and_start_words_are_refused(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    for word in ["STOP", "stop", "Quit", "START"] {
        let (status, e) = call(
            &app,
            Method::POST,
            &app.api("alpha", "/keywords"),
            Some(&app.alpha_editor.token),
            Some(reply_only(word)),
        )
        .await;
        assert_eq!(
            (status, fields(&e)),
            (422, vec!["keyword".to_string()]),
            "{word}"
        );
        assert!(
            message_at(&e, "keyword").contains("stop or start words"),
            "{e}"
        );
    }
    // The project's own lists count: a word added to them is refused too.
    let (status, s) = call(
        &app,
        Method::PUT,
        &app.api("alpha", "/settings/messaging"),
        Some(&app.alpha_admin.token),
        Some(json!({"stop_keywords": ["STOP", "ACHA"]})),
    )
    .await;
    assert_eq!(status, 200, "{s}");
    let (status, e) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/keywords"),
        Some(&app.alpha_editor.token),
        Some(reply_only("acha")),
    )
    .await;
    assert_eq!((status, fields(&e)), (422, vec!["keyword".to_string()]));
    // QUIT is no stop word of alpha any more.
    new_keyword(&app, reply_only("QUIT")).await;
}

async fn keywords_are_unique_ignoring_case(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    new_keyword(&app, reply_only("REG")).await;
    let (status, e) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/keywords"),
        Some(&app.alpha_editor.token),
        Some(reply_only("reg")),
    )
    .await;
    assert_eq!((status, code(&e)), (409, "keyword_taken"), "{e}");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ignore case"));
    let other = new_keyword(&app, reply_only("JOIN")).await;
    let (status, e) = call(
        &app,
        Method::PATCH,
        &app.api("alpha", &format!("/keywords/{}", other["id"])),
        Some(&app.alpha_editor.token),
        Some(json!({"keyword": "Reg"})),
    )
    .await;
    assert_eq!((status, code(&e)), (409, "keyword_taken"));
    // Another project may have the same word.
    let (status, _) = call(
        &app,
        Method::POST,
        &app.api("beta", "/keywords"),
        Some(&app.beta_admin.token),
        Some(reply_only("REG")),
    )
    .await;
    assert_eq!(status, 201);
}

async fn readers_read_and_writers_write(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let k = new_keyword(&app, reply_only("REG")).await;
    let viewer = Some(app.alpha_viewer.token.as_str());
    let one = app.api("alpha", &format!("/keywords/{}", k["id"]));
    let (status, _) = call(&app, Method::GET, &one, viewer, None).await;
    assert_eq!(status, 200);
    let (status, list) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/keywords"),
        viewer,
        None,
    )
    .await;
    assert_eq!(
        (status, list["keywords"].as_array().unwrap().len()),
        (200, 1)
    );
    for (method, url, body) in [
        (
            Method::POST,
            app.api("alpha", "/keywords"),
            Some(reply_only("JOIN")),
        ),
        (Method::PATCH, one.clone(), Some(json!({"keyword": "X"}))),
        (Method::DELETE, one.clone(), None),
    ] {
        let (status, e) = call(&app, method.clone(), &url, viewer, body).await;
        assert_eq!((status, code(&e)), (403, "forbidden"), "{method}");
    }
    // No token: 401.
    let (status, _) = call(&app, Method::GET, &one, None, None).await;
    assert_eq!(status, 401);
    let (_, still) = call(&app, Method::GET, &one, viewer, None).await;
    assert_eq!(still["keyword"], "REG");
    // Admins write too.
    let (status, _) = call(
        &app,
        Method::DELETE,
        &one,
        Some(&app.alpha_admin.token),
        None,
    )
    .await;
    assert_eq!(status, 204);
}

async fn another_projects_keyword_is_404(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let k = new_keyword(&app, reply_only("REG")).await;
    let beta = Some(app.beta_admin.token.as_str());
    let path = format!("/keywords/{}", k["id"]);
    for (method, b) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"keyword": "Stolen"}))),
        (Method::DELETE, None),
    ] {
        let (status, e) = call(&app, method.clone(), &app.api("beta", &path), beta, b).await;
        assert_eq!((status, code(&e)), (404, "not_found"), "{method}");
    }
    let (status, _) = call(&app, Method::GET, &app.api("alpha", &path), beta, None).await;
    assert!(status == 401 || status == 403 || status == 404, "{status}");
    let (_, list) = call(&app, Method::GET, &app.api("beta", "/keywords"), beta, None).await;
    assert_eq!(list["keywords"], json!([]));
    let (_, still) = call(
        &app,
        Method::GET,
        &app.api("alpha", &path),
        Some(&app.alpha_admin.token),
        None,
    )
    .await;
    assert_eq!(still["keyword"], "REG");
}

async fn use_is_counted_over_7_and_30_days(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let reg = new_keyword(&app, reply_only("REG")).await;
    let join = new_keyword(&app, reply_only("JOIN")).await;
    let reg_id = reg["id"].as_i64().unwrap();
    let now = casecast_core::time::now_ms();
    // REG: two this week, one 10 days ago, one 40 days ago; replies do not count.
    let mut inbound = Vec::new();
    for age in [DAY / 24, 6 * DAY, 10 * DAY, 40 * DAY] {
        inbound.push(matched(&app, reg_id, None, "REG Amina", now - age).await);
    }
    reply(&app, reg_id, inbound[0]).await;
    // JOIN: one 20 days ago.
    matched(
        &app,
        join["id"].as_i64().unwrap(),
        None,
        "join",
        now - 20 * DAY,
    )
    .await;
    let token = Some(app.alpha_viewer.token.as_str());
    let (_, got) = call(
        &app,
        Method::GET,
        &app.api("alpha", &format!("/keywords/{reg_id}")),
        token,
        None,
    )
    .await;
    assert_eq!(got["use"], json!({"last_7_days": 2, "last_30_days": 3}));
    let (_, list) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/keywords"),
        token,
        None,
    )
    .await;
    let uses: Vec<(&str, Value)> = list["keywords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["keyword"].as_str().unwrap(), k["use"].clone()))
        .collect();
    assert_eq!(
        uses,
        vec![
            ("JOIN", json!({"last_7_days": 0, "last_30_days": 1})),
            ("REG", json!({"last_7_days": 2, "last_30_days": 3})),
        ]
    );
    // The store's last matched messages: inbound only, newest first.
    let recent = app
        .db
        .keyword_messages(app.alpha.id, reg_id, 20)
        .await
        .unwrap();
    assert_eq!(recent.iter().map(|m| m.id).collect::<Vec<_>>(), inbound);
    let two = app
        .db
        .keyword_messages(app.alpha.id, reg_id, 2)
        .await
        .unwrap();
    assert_eq!(two.len(), 2);
    // Another project sees none of it.
    assert!(app
        .db
        .keyword_messages(app.beta.id, reg_id, 20)
        .await
        .unwrap()
        .is_empty());
    assert!(app
        .db
        .keyword_uses(app.beta.id, now)
        .await
        .unwrap()
        .is_empty());
}

async fn the_message_log_filters_by_keyword(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let reg = new_keyword(&app, reply_only("REG")).await;
    let reg_id = reg["id"].as_i64().unwrap();
    let join_id = new_keyword(&app, reply_only("JOIN")).await["id"]
        .as_i64()
        .unwrap();
    let now = casecast_core::time::now_ms();
    let a = matched(&app, reg_id, None, "REG Amina", now - 1000).await;
    let r = reply(&app, reg_id, a).await;
    let j = matched(&app, join_id, None, "JOIN", now).await;
    let token = Some(app.alpha_viewer.token.as_str());
    let ids = |list: &Value| -> Vec<i64> {
        list["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("{list}"))
            .iter()
            .map(|m| m["id"].as_i64().unwrap())
            .collect()
    };
    let url = |q: &str| app.api("alpha", &format!("/messages?{q}"));
    let (status, list) = call(
        &app,
        Method::GET,
        &url(&format!("keyword_id={reg_id}")),
        token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ids(&list), vec![r, a]);
    assert_eq!(list["messages"][0]["keyword_id"], reg_id);
    let (_, list) = call(
        &app,
        Method::GET,
        &url(&format!("keyword_id={reg_id}&direction=inbound")),
        token,
        None,
    )
    .await;
    assert_eq!(ids(&list), vec![a]);
    let (_, list) = call(
        &app,
        Method::GET,
        &url(&format!("keyword_id={join_id}")),
        token,
        None,
    )
    .await;
    assert_eq!(ids(&list), vec![j]);
    let (_, all) = call(&app, Method::GET, &url(""), token, None).await;
    assert_eq!(ids(&all), vec![j, r, a]);
    let (status, e) = call(&app, Method::GET, &url("keyword_id=REG"), token, None).await;
    assert_eq!(status, 422, "{e}");
    // A deleted keyword's messages stay, still found by it.
    let (status, _) = call(
        &app,
        Method::DELETE,
        &app.api("alpha", &format!("/keywords/{reg_id}")),
        Some(&app.alpha_editor.token),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, list) = call(
        &app,
        Method::GET,
        &url(&format!("keyword_id={reg_id}")),
        token,
        None,
    )
    .await;
    assert_eq!(ids(&list), vec![r, a]);
    // Beta's log has none of them.
    let (_, list) = call(
        &app,
        Method::GET,
        &app.api("beta", &format!("/messages?keyword_id={join_id}")),
        Some(&app.beta_admin.token),
        None,
    )
    .await;
    assert_eq!(ids(&list), Vec::<i64>::new());
}

async fn bodies_over_the_limit_are_413(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    // Ten of the longest replies, each in 20 translations of a three-byte script, fit.
    let text = "ก".repeat(1530);
    let mut texts = serde_json::Map::new();
    texts.insert("*".into(), json!(text));
    for lang in [
        "en", "sw", "fr", "pt", "ar", "am", "ha", "yo", "ig", "zu", "xh", "so", "om", "ti", "rw",
        "lg", "ln", "wo", "ff", "tn",
    ] {
        texts.insert(lang.into(), json!(text));
    }
    let actions: Vec<Value> = (0..10)
        .map(|_| json!({"type": "reply", "text": texts.clone()}))
        .collect();
    let body = json!({"keyword": "BIG", "actions": actions});
    assert!(body.to_string().len() > 900_000);
    let (status, k) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/keywords"),
        Some(&app.alpha_editor.token),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{}", code(&k));
    let padding = "x".repeat(2 * 1024 * 1024);
    let (status, e) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/keywords"),
        Some(&app.alpha_editor.token),
        Some(json!({"keyword": "HUGE", "actions": [{"type": "reply", "text": padding}]})),
    )
    .await;
    assert_eq!((status, code(&e)), (413, "too_large"));
}
