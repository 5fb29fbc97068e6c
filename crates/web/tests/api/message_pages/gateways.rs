//! Gateway pages: credentials and webhook secrets never reach a page they should not, forms
//! name the field in error and keep what was typed, admins only change gateways.

use casecast_core::gateway::config::GatewayConfig;
use casecast_testkit::{Dialect, TestApp};

use super::*;
use crate::pages::login;

casecast_testkit::on_both_engines!(
    gateway_pages_keep_credentials_out_of_every_page,
    http_gateway_keys_stay_hidden_through_an_edit
);

async fn gateway_pages_keep_credentials_out_of_every_page(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let admin = login(&app, &app.alpha_admin).await;
    let csrf = csrf_of(&app, &admin).await;
    let mut seen = Vec::new();

    let list = page(&app, &admin, "/a/alpha/messaging/gateways").await;
    assert!(list.contains("id=\"create-gateway\"") && list.contains("id=\"no-gateways\""));
    assert!(
        list.contains("value=\"http://127.0.0.1:"),
        "the callback base defaults to the public URL"
    );

    // A refused form names the field, keeps what was typed, and does not echo the password.
    let mut bad = kannel_form(&csrf, "Kannel UG", "ftp://kannel.example/");
    bad.push(("twilio_auth_token", TOKEN));
    let (status, _, refused) = post(&app, &admin, "/a/alpha/messaging/gateways", &bad).await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused.contains("sendsms URL: must start with http:// or https://"),
        "{refused}"
    );
    assert!(
        refused.contains("value=\"Kannel UG\"")
            && refused.contains("value=\"ftp://kannel.example/\"")
    );
    seen.push(refused);
    let (status, _, refused) = post(
        &app,
        &admin,
        "/a/alpha/messaging/gateways",
        &[
            ("csrf", &csrf),
            ("name", "R"),
            ("kind", "log"),
            ("max_segments_per_second", "fast"),
            ("callback_base_url", "http://x"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        refused.contains("Rate limit: must be a number"),
        "{refused}"
    );

    // Created: the name is escaped everywhere, the password is nowhere.
    let name = format!("{SCRIPT} Kannel");
    let (status, location, _) = post(
        &app,
        &admin,
        "/a/alpha/messaging/gateways",
        &kannel_form(&csrf, &name, "http://kannel.example:13013/cgi-bin/sendsms"),
    )
    .await;
    assert_eq!(status, 303);
    let id: i64 = location
        .trim_start_matches("/a/alpha/messaging/gateways/")
        .trim_end_matches("?done=created")
        .parse()
        .unwrap_or_else(|_| panic!("{location}"));
    let stored = app.db.gateway(app.alpha.id, id).await.unwrap();
    assert_eq!(stored.prefixes, ["+256", "+25477"]);
    assert_eq!(
        (stored.max_segments_per_second, stored.max_attempts),
        (Some(25.0), 3)
    );
    assert!(stored.is_default, "the first gateway is the default");
    let detail = page(&app, &admin, &location).await;
    assert_escaped(&detail, &name, "gateway page");
    assert!(detail.contains("leave empty to keep"));
    let mo = casecast_gateways::kannel::mo_get_url(&stored.callbacks().url("mo"));
    assert!(
        detail.contains(&mo.replace('&', "&amp;")) || detail.contains(&mo.replace('&', "&#38;")),
        "the admin sees Kannel's MO get-url"
    );
    let list = page(&app, &admin, "/a/alpha/messaging/gateways").await;
    assert_escaped(&list, &name, "gateway list");
    assert!(list.contains("25 segments/s") && list.contains("+256, +25477"));
    seen.extend([detail, list]);

    // Saved with the password left empty: the stored one stays.
    let edit = [
        ("csrf", csrf.as_str()),
        ("name", "Kannel UG"),
        ("kind", "kannel"),
        (
            "kannel_sendsms_url",
            "http://kannel.example:13013/cgi-bin/sendsms",
        ),
        ("kannel_username", "casecast2"),
        ("kannel_password", ""),
        ("max_segments_per_second", ""),
        ("max_attempts", "5"),
        ("prefixes", ""),
        ("callback_base_url", "http://casecast.example:8080"),
    ];
    let path = format!("/a/alpha/messaging/gateways/{id}");
    let (status, location, body) = post(&app, &admin, &path, &edit).await;
    assert_eq!(
        (status, location.as_str()),
        (303, format!("{path}?done=saved").as_str()),
        "{body}"
    );
    let stored = app.db.gateway(app.alpha.id, id).await.unwrap();
    let GatewayConfig::Kannel(c) = &stored.config else {
        panic!("still a Kannel gateway")
    };
    assert_eq!(
        (c.username.as_str(), c.password.as_str()),
        ("casecast2", PASSWORD)
    );
    assert_eq!(
        (stored.name.as_str(), stored.max_segments_per_second),
        ("Kannel UG", None)
    );
    // A refused edit keeps the typed values, not the password.
    let mut bad_edit = edit.to_vec();
    bad_edit[5] = ("kannel_password", "a-new-Secret");
    bad_edit[9] = ("callback_base_url", "casecast.example");
    let (status, _, refused) = post(&app, &admin, &path, &bad_edit).await;
    assert_eq!(status, 422);
    assert!(refused.contains("Callback base URL: must be"), "{refused}");
    assert!(!refused.contains("a-new-Secret"));
    seen.push(refused);

    // A Twilio gateway: its token is never shown either; the inbound webhook is.
    let (status, location, _) = post(
        &app,
        &admin,
        "/a/alpha/messaging/gateways",
        &[
            ("csrf", &csrf),
            ("name", "Twilio"),
            ("kind", "twilio"),
            ("twilio_account_sid", "AC123"),
            ("twilio_auth_token", TOKEN),
            ("twilio_from", "+15005550006"),
            ("callback_base_url", "http://casecast.example:8080"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let twilio_id: i64 = location
        .trim_start_matches("/a/alpha/messaging/gateways/")
        .trim_end_matches("?done=created")
        .parse()
        .unwrap();
    let twilio = app.db.gateway(app.alpha.id, twilio_id).await.unwrap();
    let twilio_page = page(&app, &admin, &location).await;
    assert!(twilio_page.contains(&twilio.callbacks().url("inbound")));
    seen.push(twilio_page);

    // Editors and viewers see the list and the gateway, never its settings or webhooks.
    for who in [&app.alpha_editor, &app.alpha_viewer] {
        let s = login(&app, who).await;
        let list = page(&app, &s, "/a/alpha/messaging/gateways").await;
        assert!(!list.contains("id=\"create-gateway\""));
        let detail = page(&app, &s, &path).await;
        assert!(!detail.contains("id=\"edit-gateway\"") && !detail.contains("casecast2"));
        assert!(
            !detail.contains(&stored.webhook_secret),
            "the webhook secret is for admins"
        );
        let detail = page(
            &app,
            &s,
            &format!("/a/alpha/messaging/gateways/{twilio_id}"),
        )
        .await;
        assert!(!detail.contains(&twilio.webhook_secret));
        let c = csrf_of(&app, &s).await;
        let (status, _, _) = post(
            &app,
            &s,
            "/a/alpha/messaging/gateways",
            &kannel_form(&c, "Mine", "http://k/"),
        )
        .await;
        assert_eq!(status, 403, "{}: create", who.email);
        let (status, _, _) = post(&app, &s, &path, &edit).await;
        assert_eq!(status, 403, "{}: edit", who.email);
        seen.extend([list, detail]);
    }
    assert_eq!(app.db.list_gateways(app.alpha.id).await.unwrap().len(), 2);
    for html in &seen {
        assert!(
            !html.contains(PASSWORD) && !html.contains(TOKEN),
            "a credential reached a page"
        );
    }

    // Another project's gateway does not exist for a member of this one.
    let beta = login(&app, &app.beta_admin).await;
    for p in [path.clone(), format!("/a/beta/messaging/gateways/{id}")] {
        let (status, _) = get(&app, &beta, &p).await;
        assert_eq!(status, 404, "{p}");
    }
    let beta_csrf = csrf_of_project(&app, &beta, "beta").await;
    let (status, _, _) = post(
        &app,
        &beta,
        &format!("/a/beta/messaging/gateways/{id}/delete"),
        &[("csrf", &beta_csrf)],
    )
    .await;
    assert_eq!(status, 404);

    // Deleted after confirming.
    let (status, location, _) =
        post(&app, &admin, &format!("{path}/delete"), &[("csrf", &csrf)]).await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/a/alpha/messaging/gateways?done=deleted")
    );
    assert_eq!(app.db.list_gateways(app.alpha.id).await.unwrap().len(), 1);
    let (status, _) = get(&app, &admin, &path).await;
    assert_eq!(status, 404);
}

async fn http_gateway_keys_stay_hidden_through_an_edit(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let admin = login(&app, &app.alpha_admin).await;
    let csrf = csrf_of(&app, &admin).await;
    let form = |name: &'static str, params: &'static str, headers: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("name", name.to_string()),
            ("kind", "http".to_string()),
            ("http_url", "http://aggregator.example/send".to_string()),
            ("http_method", "POST".to_string()),
            ("http_params", params.to_string()),
            ("http_headers", headers.to_string()),
            ("http_success_low", "200".to_string()),
            ("http_success_high", "202".to_string()),
            ("http_success_contains", "OK".to_string()),
            ("callback_base_url", "http://casecast.example".to_string()),
        ]
    };
    let send = |fields: Vec<(&'static str, String)>, path: String| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(app, &admin, &path, &pairs).await
        }
    };
    // A line that is not name=value is refused, naming the field and the line.
    let (status, _, body) = send(
        form("Aggregator", "to={to}\nno equals sign", ""),
        "/a/alpha/messaging/gateways".into(),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        body.contains("Parameters: line 2: write name=value"),
        "{body}"
    );
    let (status, location, _) = send(
        form(
            "Aggregator",
            "to={to}\ntext={text}\napi_key=SECRET-api-KEY",
            "Authorization: Bearer SECRET-bearer",
        ),
        "/a/alpha/messaging/gateways".into(),
    )
    .await;
    assert_eq!(status, 303);
    let path = location.trim_end_matches("?done=created").to_string();
    let shown = page(&app, &admin, &path).await;
    assert!(
        !shown.contains("SECRET-"),
        "keys in parameters and headers are masked"
    );
    assert!(
        shown.contains("to={to}")
            && shown.contains("api_key=********")
            && shown.contains("Authorization: ********")
    );
    // Posting the form back as shown keeps the keys; a changed value replaces its key only.
    let params = hidden_textarea(&shown, "http_params");
    let headers = hidden_textarea(&shown, "http_headers");
    let mut edit = form("Aggregator 2", "", "");
    edit[5].1 = format!("{params}\nsender=CASECAST");
    edit[6].1 = headers;
    let (status, _, body) = send(edit, path.clone()).await;
    assert_eq!(status, 303, "{body}");
    let id: i64 = path.rsplit('/').next().unwrap().parse().unwrap();
    let stored = app.db.gateway(app.alpha.id, id).await.unwrap();
    let GatewayConfig::Http(c) = &stored.config else {
        panic!("an HTTP gateway")
    };
    assert_eq!(
        c.params,
        [
            ("to", "{to}"),
            ("text", "{text}"),
            ("api_key", "SECRET-api-KEY"),
            ("sender", "CASECAST")
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    assert_eq!(
        c.headers,
        [(
            "Authorization".to_string(),
            "Bearer SECRET-bearer".to_string()
        )]
    );
    assert_eq!(
        (c.success_status, c.success_contains.as_deref()),
        ((200, 202), Some("OK"))
    );
    assert_eq!(stored.name, "Aggregator 2");
}

/// The text of `<textarea name="{name}" …>…</textarea>`, unescaped.
fn hidden_textarea(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("<textarea name=\"{name}\""))
        .unwrap_or_else(|| panic!("no {name}"));
    let start = at + html[at..].find('>').unwrap() + 1;
    let end = start + html[start..].find("</textarea>").unwrap();
    html[start..end]
        .replace("&#123;", "{")
        .replace("&#125;", "}")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
