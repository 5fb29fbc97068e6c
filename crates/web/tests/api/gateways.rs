//! `/gateways`: admins manage them, everyone in the project reads them, credentials never
//! leave the server, one default per project, deletion cancels what is queued.

use casecast_testkit::{Dialect, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::{call, code};

casecast_testkit::on_both_engines!(
    gateway_crud_never_shows_credentials,
    masked_credentials_are_kept_on_patch,
    bad_gateway_input_names_the_field,
    one_default_gateway_per_project,
    deleting_a_gateway_cancels_its_queued_messages,
    messages_route_by_number_prefix,
    only_admins_manage_gateways,
    gateways_of_another_project_are_not_found,
);

const PASSWORD: &str = "pa55-Kannel-7c1e9";
const AUTH_TOKEN: &str = "tw-token-0a9b8c7d";
const API_KEY: &str = "http-key-5f4e3d";

/// Creates a gateway as alpha's admin; panics unless 201.
pub async fn add_gateway(app: &TestApp, body: Value) -> Value {
    let (status, got) = call(
        app,
        Method::POST,
        &app.api("alpha", "/gateways"),
        Some(&app.alpha_admin.token),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{got}");
    got
}

/// Creates a case in alpha; panics unless 201. Returns its case_id.
pub async fn add_case(app: &TestApp, body: Value) -> String {
    let (status, got) = call(
        app,
        Method::POST,
        &app.api("alpha", "/cases"),
        Some(&app.alpha_admin.token),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{got}");
    got["case_id"].as_str().unwrap().to_string()
}

/// Quiet hours in alpha from an hour ago to two hours from now: nothing is handed to a
/// gateway, so queued messages stay queued. Set before the gateways are added, so that the
/// dispatcher knows them from its first look at each gateway.
pub async fn hold_messages(app: &TestApp) {
    let now = jiff::Timestamp::now().to_zoned(app.alpha.zone());
    let at = |hours: i64| {
        (now.clone() + jiff::SignedDuration::from_hours(hours))
            .strftime("%H:%M")
            .to_string()
    };
    let (status, got) = call(
        app,
        Method::PUT,
        &app.api("alpha", "/settings/messaging"),
        Some(&app.alpha_admin.token),
        Some(json!({"quiet_hours_start": at(-1), "quiet_hours_end": at(2)})),
    )
    .await;
    assert_eq!(status, 200, "{got}");
}

/// Sends `text` to a case as alpha's editor: status and body.
pub async fn send(app: &TestApp, case_id: &str, body: Value) -> (u16, Value) {
    call(
        app,
        Method::POST,
        &app.api("alpha", &format!("/cases/{case_id}/messages")),
        Some(&app.alpha_editor.token),
        Some(body),
    )
    .await
}

fn kannel(name: &str) -> Value {
    json!({
        "name": name,
        "kind": "kannel",
        "config": {"sendsms_url": "http://127.0.0.1:13013/cgi-bin/sendsms", "username": "casecast", "password": PASSWORD, "from": "Clinic"},
        "max_segments_per_second": 25.5,
        "prefixes": ["+256"],
    })
}

async fn gateway_crud_never_shows_credentials(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let admin = Some(app.alpha_admin.token.as_str());
    let mut bodies: Vec<String> = Vec::new();
    let created = add_gateway(&app, kannel("Kannel")).await;
    bodies.push(created.to_string());
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["name"], "Kannel");
    assert_eq!(created["kind"], "kannel");
    assert_eq!(created["config"]["password"], "********");
    assert_eq!(created["config"]["username"], "casecast");
    assert_eq!(created["config"]["from"], "Clinic");
    assert_eq!(created["max_segments_per_second"], 25.5);
    assert_eq!(
        created["is_default"], true,
        "the first gateway is the default"
    );
    assert_eq!(created["prefixes"], json!(["+256"]));
    assert_eq!(created["max_attempts"], 5);
    assert_eq!(created["callback_base_url"], app.base.as_str());
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));
    let hooks = format!("{}/hooks/{id}/", app.base);
    let inbound = created["webhook_urls"]["inbound"].as_str().unwrap();
    assert!(inbound.starts_with(&hooks), "{inbound}");
    assert!(inbound.contains("/mo?from=%p&to=%P&text=%b"), "{inbound}");
    let dlr = created["webhook_urls"]["delivery_reports"]
        .as_str()
        .unwrap();
    assert!(dlr.starts_with(&hooks) && dlr.ends_with("/dlr"), "{dlr}");

    let twilio = add_gateway(
        &app,
        json!({"name": "Twilio", "kind": "twilio", "callback_base_url": "https://cc.example.org/",
               "config": {"account_sid": "AC123", "auth_token": AUTH_TOKEN, "from": "+15005550006"}}),
    )
    .await;
    bodies.push(twilio.to_string());
    assert_eq!(twilio["config"]["auth_token"], "********");
    assert_eq!(twilio["is_default"], false);
    assert_eq!(twilio["max_segments_per_second"], Value::Null);
    assert_eq!(twilio["callback_base_url"], "https://cc.example.org");
    let status_url = twilio["webhook_urls"]["delivery_reports"].as_str().unwrap();
    assert!(
        status_url.starts_with("https://cc.example.org/hooks/") && status_url.ends_with("/status"),
        "{status_url}"
    );
    let http = add_gateway(
        &app,
        json!({"name": "Aggregator", "kind": "http",
               "config": {"url": "https://sms.example.org/send", "method": "POST",
                          "params": [["to", "{to}"], ["message", "{text}"], ["api_key", API_KEY]]}}),
    )
    .await;
    bodies.push(http.to_string());
    assert_eq!(http["config"]["params"][0], json!(["to", "{to}"]));
    assert_eq!(http["config"]["params"][2], json!(["api_key", "********"]));
    assert!(http["webhook_urls"]["inbound"]
        .as_str()
        .unwrap()
        .ends_with("/inbound"));

    // Everyone in the project reads them; only admins see the webhook URLs (they hold the secret).
    for (who, token) in [
        ("admin", &app.alpha_admin.token),
        ("editor", &app.alpha_editor.token),
        ("viewer", &app.alpha_viewer.token),
    ] {
        let (status, list) = call(
            &app,
            Method::GET,
            &app.api("alpha", "/gateways"),
            Some(token),
            None,
        )
        .await;
        bodies.push(list.to_string());
        assert_eq!(status, 200);
        let names: Vec<&str> = list["gateways"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Aggregator", "Kannel", "Twilio"], "{who}");
        assert_eq!(list["next_cursor"], Value::Null);
        let (status, one) = call(
            &app,
            Method::GET,
            &app.api("alpha", &format!("/gateways/{id}")),
            Some(token),
            None,
        )
        .await;
        bodies.push(one.to_string());
        assert_eq!((status, one["name"].as_str()), (200, Some("Kannel")));
        assert_eq!(
            one["webhook_urls"].is_null(),
            who != "admin",
            "{who}: {one}"
        );
        for g in list["gateways"].as_array().unwrap() {
            assert_eq!(g["webhook_urls"].is_null(), who != "admin", "{who}: {g}");
        }
    }

    let (status, changed) = call(
        &app,
        Method::PATCH,
        &app.api("alpha", &format!("/gateways/{id}")),
        admin,
        Some(json!({"name": "Kannel MTN", "max_segments_per_second": null, "max_attempts": 3, "prefixes": ["+256 77", "+25678"]})),
    )
    .await;
    bodies.push(changed.to_string());
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["name"], "Kannel MTN");
    assert_eq!(changed["max_segments_per_second"], Value::Null);
    assert_eq!(changed["max_attempts"], 3);
    assert_eq!(changed["prefixes"], json!(["+25677", "+25678"]));
    assert_eq!(changed["config"]["password"], "********");
    assert_eq!(changed["callback_base_url"], app.base.as_str());

    let (status, deleted) = call(
        &app,
        Method::DELETE,
        &app.api("alpha", &format!("/gateways/{id}")),
        admin,
        None,
    )
    .await;
    bodies.push(deleted.to_string());
    assert_eq!(
        (status, deleted),
        (200, json!({"deleted": true, "cancelled_messages": 0}))
    );
    let (status, _) = call(
        &app,
        Method::GET,
        &app.api("alpha", &format!("/gateways/{id}")),
        admin,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        Method::DELETE,
        &app.api("alpha", &format!("/gateways/{id}")),
        admin,
        None,
    )
    .await;
    assert_eq!(status, 404, "deleted once");
    let doc = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    bodies.push(doc);
    for body in &bodies {
        for secret in [PASSWORD, AUTH_TOKEN, API_KEY] {
            assert!(!body.contains(secret), "a credential in a response: {body}");
        }
    }
}

async fn masked_credentials_are_kept_on_patch(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let created = add_gateway(&app, kannel("Kannel")).await;
    let id = created["id"].as_i64().unwrap();
    let url = app.api("alpha", &format!("/gateways/{id}"));
    let admin = Some(app.alpha_admin.token.as_str());
    // The gateway as read, edited and sent back whole: the mask keeps the password.
    let mut config = created["config"].clone();
    config["username"] = json!("casecast2");
    let (status, got) = call(
        &app,
        Method::PATCH,
        &url,
        admin,
        Some(json!({"kind": "kannel", "config": config})),
    )
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["config"]["username"], "casecast2");
    let stored = app.db.gateway(app.alpha.id, id).await.unwrap();
    assert_eq!(stored.config.to_json()["password"], PASSWORD);
    assert_eq!(stored.config.to_json()["username"], "casecast2");
    // Left out: kept too, on another path of the same address.
    let (status, got) = call(
        &app,
        Method::PATCH,
        &url,
        admin,
        Some(json!({"config": {"sendsms_url": format!("{}/other", created["config"]["sendsms_url"].as_str().unwrap()), "username": "casecast2"}})),
    )
    .await;
    assert_eq!(status, 200, "{got}");
    // The stored password never follows the gateway to another address: it must be typed again.
    let (status, got) = call(
        &app,
        Method::PATCH,
        &url,
        admin,
        Some(json!({"config": {"sendsms_url": "http://kannel.example.org:13013/cgi-bin/sendsms", "username": "casecast2"}})),
    )
    .await;
    assert_eq!(status, 422, "{got}");
    assert!(got["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("config.password: type it again"));
    let (status, got) = call(
        &app,
        Method::PATCH,
        &url,
        admin,
        Some(json!({"config": {"sendsms_url": "http://kannel.example.org:13013/cgi-bin/sendsms", "username": "casecast2", "password": PASSWORD}})),
    )
    .await;
    assert_eq!(status, 200, "{got}");
    let stored = app
        .db
        .gateway(app.alpha.id, id)
        .await
        .unwrap()
        .config
        .to_json();
    assert_eq!(stored["password"], PASSWORD);
    assert_eq!(
        stored["sendsms_url"],
        "http://kannel.example.org:13013/cgi-bin/sendsms"
    );
    // A new one replaces it.
    let (status, got) = call(
        &app,
        Method::PATCH,
        &url,
        admin,
        Some(json!({"config": {"sendsms_url": "http://kannel.example.org:13013/cgi-bin/sendsms", "username": "casecast2", "password": "n3w-pass"}})),
    )
    .await;
    assert_eq!(status, 200);
    assert!(!got.to_string().contains("n3w-pass"));
    let stored = app
        .db
        .gateway(app.alpha.id, id)
        .await
        .unwrap()
        .config
        .to_json();
    assert_eq!(stored["password"], "n3w-pass");
}

async fn bad_gateway_input_names_the_field(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let admin = Some(app.alpha_admin.token.as_str());
    let url = app.api("alpha", "/gateways");
    let cases = [
        (
            json!({"name": "X", "kind": "smpp"}),
            "kind: unknown gateway kind",
        ),
        (
            json!({"name": "X", "kind": "kannel", "config": {"sendsms_url": "ftp://k/", "username": "u", "password": "p"}}),
            "config.sendsms_url: must start with http:// or https://",
        ),
        (
            json!({"name": "X", "kind": "kannel", "config": {"sendsms_url": "http://k/", "username": "u"}}),
            "config",
        ),
        (
            json!({"name": "X", "kind": "twilio", "config": {"account_sid": "AC1", "auth_token": "t"}}),
            "config.from:",
        ),
        (
            json!({"name": "X", "kind": "log", "config": []}),
            "config: must be an object",
        ),
        (json!({"name": " ", "kind": "log"}), "name:"),
        (json!({"name": "X".repeat(101), "kind": "log"}), "name:"),
        (
            json!({"name": "X", "kind": "log", "max_segments_per_second": 0}),
            "max_segments_per_second:",
        ),
        (
            json!({"name": "X", "kind": "log", "max_segments_per_second": "fast"}),
            "max_segments_per_second:",
        ),
        (
            json!({"name": "X", "kind": "log", "max_attempts": 99}),
            "max_attempts:",
        ),
        (
            json!({"name": "X", "kind": "log", "prefixes": ["256"]}),
            "prefixes:",
        ),
        (
            json!({"name": "X", "kind": "log", "callback_base_url": "ftp://x"}),
            "callback_base_url:",
        ),
        (
            json!({"name": "X", "kind": "log", "secret": "x"}),
            "unknown field `secret`",
        ),
        (json!({"kind": "log"}), "missing field `name`"),
    ];
    for (body, expected) in cases {
        let (status, got) = call(&app, Method::POST, &url, admin, Some(body.clone())).await;
        assert_eq!((status, code(&got)), (422, "invalid"), "{body}: {got}");
        let message = got["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message}");
    }
    let (status, _) = call(&app, Method::GET, &url, admin, None).await;
    assert_eq!(status, 200);
    let (_, list) = call(&app, Method::GET, &url, admin, None).await;
    assert_eq!(list["gateways"], json!([]), "nothing was added");

    let log = add_gateway(&app, json!({"name": "Log", "kind": "log"})).await;
    assert_eq!(log["config"], json!({}));
    let (status, got) = call(
        &app,
        Method::POST,
        &url,
        admin,
        Some(json!({"name": " lOG ", "kind": "log"})),
    )
    .await;
    assert_eq!((status, code(&got)), (409, "name_taken"), "{got}");
    let one = app.api("alpha", &format!("/gateways/{}", log["id"]));
    for (body, expected) in [
        (json!({"kind": "kannel"}), "kind:"),
        (json!({"config": "x"}), "config: must be an object"),
        (json!({"max_attempts": 0}), "max_attempts:"),
        (json!({"id": 5}), "unknown field `id`"),
    ] {
        let (status, got) = call(&app, Method::PATCH, &one, admin, Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {got}");
        let message = got["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message}");
    }
    for path in ["/gateways/999999", "/gateways/abc"] {
        let (status, got) = call(&app, Method::GET, &app.api("alpha", path), admin, None).await;
        assert_eq!((status, code(&got)), (404, "not_found"), "{path}");
        let (status, _) = call(
            &app,
            Method::PATCH,
            &app.api("alpha", path),
            admin,
            Some(json!({"name": "Y"})),
        )
        .await;
        assert_eq!(status, 404, "{path}");
    }
}

async fn defaults_of(app: &TestApp) -> Vec<String> {
    let (_, list) = call(
        app,
        Method::GET,
        &app.api("alpha", "/gateways"),
        Some(&app.alpha_viewer.token),
        None,
    )
    .await;
    list["gateways"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["is_default"] == true)
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect()
}

async fn one_default_gateway_per_project(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let admin = Some(app.alpha_admin.token.as_str());
    let a = add_gateway(
        &app,
        json!({"name": "A", "kind": "log", "is_default": false}),
    )
    .await;
    assert_eq!(a["is_default"], true, "the first gateway is the default");
    let b = add_gateway(&app, json!({"name": "B", "kind": "log"})).await;
    assert_eq!(b["is_default"], false);
    assert_eq!(defaults_of(&app).await, ["A"]);
    let c = add_gateway(
        &app,
        json!({"name": "C", "kind": "log", "is_default": true}),
    )
    .await;
    assert_eq!(c["is_default"], true);
    assert_eq!(defaults_of(&app).await, ["C"]);
    // The list pages like every other.
    let page = |query: &str| {
        let url = app.api("alpha", &format!("/gateways?{query}"));
        let app = &app;
        async move { call(app, Method::GET, &url, admin, None).await }
    };
    let (status, first) = page("limit=2").await;
    assert_eq!(status, 200);
    let names = |list: &Value| -> Vec<String> {
        list["gateways"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&first), ["A", "B"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = page(&format!("limit=2&cursor={cursor}")).await;
    assert_eq!(
        (names(&second), second["next_cursor"].clone()),
        (vec!["C".to_string()], Value::Null)
    );
    for query in ["limit=0", "cursor=x"] {
        let (status, got) = page(query).await;
        assert_eq!((status, code(&got)), (422, "invalid"), "{query}");
    }
    // Switching the default.
    let (status, got) = call(
        &app,
        Method::PATCH,
        &app.api("alpha", &format!("/gateways/{}", b["id"])),
        admin,
        Some(json!({"is_default": true})),
    )
    .await;
    assert_eq!((status, got["is_default"].as_bool()), (200, Some(true)));
    assert_eq!(defaults_of(&app).await, ["B"]);
    // The default cannot be unset, only replaced.
    let (status, got) = call(
        &app,
        Method::PATCH,
        &app.api("alpha", &format!("/gateways/{}", b["id"])),
        admin,
        Some(json!({"is_default": false})),
    )
    .await;
    assert_eq!(status, 422, "{got}");
    assert!(got["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("is_default:"));
    assert_eq!(defaults_of(&app).await, ["B"]);
    // Deleting the default makes the oldest remaining gateway the default.
    let (status, _) = call(
        &app,
        Method::DELETE,
        &app.api("alpha", &format!("/gateways/{}", b["id"])),
        admin,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(defaults_of(&app).await, ["A"]);
}

async fn deleting_a_gateway_cancels_its_queued_messages(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    hold_messages(&app).await;
    let main = add_gateway(&app, json!({"name": "Main", "kind": "log"})).await;
    let other = add_gateway(&app, json!({"name": "Other", "kind": "log"})).await;
    let case = add_case(&app, json!({"name": "Apio", "phone_number": "0772 123456"})).await;
    let mut ids = Vec::new();
    for text in ["one", "two"] {
        let (status, m) = send(&app, &case, json!({"text": text})).await;
        assert_eq!((status, m["gateway_id"].clone()), (201, main["id"].clone()));
        ids.push(m["id"].as_i64().unwrap());
    }
    let (status, kept) = send(
        &app,
        &case,
        json!({"text": "three", "gateway_id": other["id"]}),
    )
    .await;
    assert_eq!(
        (status, kept["gateway_id"].clone()),
        (201, other["id"].clone())
    );
    // The backlog shows in /metrics.
    let backlog = |app: &TestApp| {
        let url = app.url("/metrics");
        let http = app.http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let metrics = backlog(&app).await;
    assert!(
        metrics.contains("casecast_outbox_messages{status=\"queued\"} 3"),
        "{metrics}"
    );
    let (status, got) = call(
        &app,
        Method::DELETE,
        &app.api("alpha", &format!("/gateways/{}", main["id"])),
        Some(&app.alpha_admin.token),
        None,
    )
    .await;
    assert_eq!(
        (status, got),
        (200, json!({"deleted": true, "cancelled_messages": 2}))
    );
    for id in ids {
        let (_, m) = call(
            &app,
            Method::GET,
            &app.api("alpha", &format!("/messages/{id}")),
            Some(&app.alpha_viewer.token),
            None,
        )
        .await;
        assert_eq!(m["status"], "cancelled", "{m}");
        assert!(m["error"].as_str().unwrap().contains("gateway was deleted"));
    }
    let (_, m) = call(
        &app,
        Method::GET,
        &app.api("alpha", &format!("/messages/{}", kept["id"])),
        Some(&app.alpha_viewer.token),
        None,
    )
    .await;
    assert_eq!(
        m["status"], "queued",
        "another gateway's message stays: {m}"
    );
    let metrics = backlog(&app).await;
    assert!(
        metrics.contains("casecast_outbox_messages{status=\"queued\"} 1"),
        "{metrics}"
    );
}

async fn messages_route_by_number_prefix(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    hold_messages(&app).await;
    let main = add_gateway(&app, json!({"name": "Main", "kind": "log"})).await;
    let kenya = add_gateway(
        &app,
        json!({"name": "Kenya", "kind": "log", "prefixes": ["+254"]}),
    )
    .await;
    let safaricom = add_gateway(
        &app,
        json!({"name": "Safaricom", "kind": "log", "prefixes": ["+25471"]}),
    )
    .await;
    for (phone, gateway) in [
        ("+254 733 123456", &kenya),
        ("+254 712 345678", &safaricom),
        ("0772 123456", &main),
    ] {
        let case = add_case(&app, json!({"name": "Someone", "phone_number": phone})).await;
        let (status, m) = send(&app, &case, json!({"text": "Hello"})).await;
        assert_eq!(status, 201, "{m}");
        assert_eq!(m["gateway_id"], gateway["id"], "{phone} went through {m}");
    }
}

async fn only_admins_manage_gateways(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let log = add_gateway(&app, json!({"name": "Log", "kind": "log"})).await;
    let one = app.api("alpha", &format!("/gateways/{}", log["id"]));
    for token in [&app.alpha_editor.token, &app.alpha_viewer.token] {
        let (status, got) = call(
            &app,
            Method::POST,
            &app.api("alpha", "/gateways"),
            Some(token),
            Some(json!({"name": "Mine", "kind": "log"})),
        )
        .await;
        assert_eq!((status, code(&got)), (403, "forbidden"));
        let (status, _) = call(
            &app,
            Method::PATCH,
            &one,
            Some(token),
            Some(json!({"name": "Mine"})),
        )
        .await;
        assert_eq!(status, 403);
        let (status, _) = call(&app, Method::DELETE, &one, Some(token), None).await;
        assert_eq!(status, 403);
    }
    let (_, got) = call(&app, Method::GET, &one, Some(&app.alpha_editor.token), None).await;
    assert_eq!(got["name"], "Log", "unchanged");
    let (_, list) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/gateways"),
        Some(&app.alpha_editor.token),
        None,
    )
    .await;
    assert_eq!(list["gateways"].as_array().unwrap().len(), 1);
}

async fn gateways_of_another_project_are_not_found(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let log = add_gateway(&app, json!({"name": "Log", "kind": "log"})).await;
    let beta = Some(app.beta_admin.token.as_str());
    let path = app.api("beta", &format!("/gateways/{}", log["id"]));
    let (status, got) = call(&app, Method::GET, &path, beta, None).await;
    assert_eq!((status, code(&got)), (404, "not_found"));
    let (status, _) = call(
        &app,
        Method::PATCH,
        &path,
        beta,
        Some(json!({"name": "Mine"})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(&app, Method::DELETE, &path, beta, None).await;
    assert_eq!(status, 404);
    let (_, list) = call(&app, Method::GET, &app.api("beta", "/gateways"), beta, None).await;
    assert_eq!(list["gateways"], json!([]));
    // Beta's first gateway is beta's default; alpha's stays alpha's.
    let (status, got) = call(
        &app,
        Method::POST,
        &app.api("beta", "/gateways"),
        beta,
        Some(json!({"name": "Log", "kind": "log"})),
    )
    .await;
    assert_eq!((status, got["is_default"].as_bool()), (201, Some(true)));
    assert_eq!(defaults_of(&app).await, ["Log"]);
    let (_, got) = call(
        &app,
        Method::GET,
        &app.api("alpha", &format!("/gateways/{}", log["id"])),
        Some(&app.alpha_admin.token),
        None,
    )
    .await;
    assert_eq!(got["name"], "Log");
}
