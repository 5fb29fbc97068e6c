//! The case page's SMS form: a message reaches `sent` through a log gateway and shows in the
//! history and the log; refusals say why.

use casecast_testkit::{Dialect, TestApp};
use reqwest::Method;
use serde_json::json;

use super::*;
use crate::call;
use crate::pages::login;

casecast_testkit::on_both_engines!(
    send_from_the_case_page_reaches_sent,
    the_case_page_explains_refused_sends
);

/// Waits (bounded) until message `id` has left the queue; returns its status.
async fn settled(app: &TestApp, id: i64) -> String {
    for _ in 0..400 {
        let m = app.db.message(app.alpha.id, id).await.unwrap();
        if !matches!(m.status.as_str(), "queued" | "sending") {
            return m.status.to_string();
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("message {id} is still queued");
}

async fn send_from_the_case_page_reaches_sent(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let g = log_gateway(&app, app.alpha.id, "Log").await;
    let case = new_case(
        &app,
        json!({"name": "Aber Grace", "phone_number": "+256772000001"}),
    )
    .await;
    let editor = login(&app, &app.alpha_editor).await;
    let csrf = csrf_of(&app, &editor).await;
    let case_path = format!("/a/alpha/cases/{case}");
    let before = page(&app, &editor, &case_path).await;
    assert!(before.contains("id=\"send-sms\"") && before.contains("id=\"no-history\""));
    assert!(
        !before.contains("name=\"gateway_id\""),
        "one gateway: no choice to make"
    );

    let text = format!("Hello {SCRIPT} & <b>bold</b>\r\nsee you €");
    let (status, location, body) = post(
        &app,
        &editor,
        &format!("{case_path}/messages"),
        &[("csrf", &csrf), ("text", &text)],
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (303, format!("{case_path}?done=sent").as_str()),
        "{body}"
    );
    let (messages, _) = app
        .db
        .list_messages(app.alpha.id, &Default::default(), 10, None)
        .await
        .unwrap();
    let [m] = messages.as_slice() else {
        panic!("one message: {messages:?}")
    };
    assert_eq!(
        m.text, "Hello <script>alert(1)</script> & <b>bold</b>\nsee you €",
        "CR LF became LF"
    );
    assert_eq!(
        (m.case_id.as_deref(), m.gateway_id, m.phone_number.as_str()),
        (Some(case.as_str()), Some(g), "+256772000001")
    );
    assert_eq!(settled(&app, m.id).await, "sent");

    let shown = page(&app, &editor, &location).await;
    assert!(shown.contains("id=\"send-notice\""));
    assert_escaped(&shown, SCRIPT, "case page history");
    assert!(
        shown.contains("status-sent"),
        "the history shows the status"
    );
    let log = page(&app, &editor, "/a/alpha/messaging/messages").await;
    assert_escaped(&log, SCRIPT, "message log");
    assert!(
        log.contains("status-sent")
            && log.contains(&format!("/a/alpha/cases/{case}"))
            && log.contains("+256772000001")
    );
    let detail = page(
        &app,
        &editor,
        &format!("/a/alpha/messaging/messages/{}", m.id),
    )
    .await;
    assert_escaped(&detail, &m.text, "message page");
    assert!(detail.contains(">Log<"), "the gateway's name");
    // Another project cannot see it.
    let beta = login(&app, &app.beta_admin).await;
    let (status, _) = get(&app, &beta, &format!("/a/beta/messaging/messages/{}", m.id)).await;
    assert_eq!(status, 404);

    // With two gateways the form offers a choice, and the choice is used.
    let other = log_gateway(&app, app.alpha.id, "Second <i>log</i>").await;
    let form = page(&app, &editor, &case_path).await;
    assert!(form.contains(&format!("<option value=\"{other}\">")));
    assert_escaped(&form, "Second <i>log</i>", "gateway choice");
    let other_s = other.to_string();
    let (status, _, _) = post(
        &app,
        &editor,
        &format!("{case_path}/messages"),
        &[
            ("csrf", &csrf),
            ("text", "Via the second"),
            ("gateway_id", &other_s),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let (messages, _) = app
        .db
        .list_messages(app.alpha.id, &Default::default(), 1, None)
        .await
        .unwrap();
    assert_eq!(messages[0].gateway_id, Some(other));
    let beta_gateway = log_gateway(&app, app.beta.id, "Beta log").await.to_string();
    let (status, _, body) = post(
        &app,
        &editor,
        &format!("{case_path}/messages"),
        &[
            ("csrf", &csrf),
            ("text", "Via beta"),
            ("gateway_id", &beta_gateway),
        ],
    )
    .await;
    assert_eq!(status, 422, "another project's gateway");
    assert!(body.contains("Gateway: no such gateway"), "{body}");
}

async fn the_case_page_explains_refused_sends(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let open = new_case(
        &app,
        json!({"name": "Open", "phone_number": "+256772000001"}),
    )
    .await;
    let phoneless = new_case(&app, json!({"name": "No phone"})).await;
    let admin = login(&app, &app.alpha_admin).await;
    let editor = login(&app, &app.alpha_editor).await;
    let csrf = csrf_of(&app, &editor).await;
    let admin_csrf = csrf_of(&app, &admin).await;
    let send = |session: String, csrf: String, case: String, text: String| {
        let app = &app;
        async move {
            let (status, _, body) = post(
                app,
                &session,
                &format!("/a/alpha/cases/{case}/messages"),
                &[("csrf", &csrf), ("text", &text)],
            )
            .await;
            (status, body)
        }
    };
    // No gateway: the admin is shown where to add one.
    let (status, body) = send(editor.clone(), csrf.clone(), open.clone(), "Hi".into()).await;
    assert_eq!(status, 409);
    assert!(
        body.contains("No SMS gateway is set up") && !body.contains("Add a gateway</a>"),
        "{body}"
    );
    let (status, body) = send(
        admin.clone(),
        admin_csrf.clone(),
        open.clone(),
        "Hi <b>typed</b>".into(),
    )
    .await;
    assert_eq!(status, 409);
    assert!(
        body.contains("href=\"/a/alpha/messaging/gateways\">Add a gateway</a>"),
        "{body}"
    );
    assert!(
        body.contains("Hi &lt;b&gt;typed&lt;/b&gt;")
            || body.contains("Hi &#60;b&#62;typed&#60;/b&#62;"),
        "the text is kept, escaped"
    );

    log_gateway(&app, app.alpha.id, "Log").await;
    let (status, body) = send(editor.clone(), csrf.clone(), open.clone(), "   ".into()).await;
    assert_eq!(status, 422);
    assert!(body.contains("Message: write the message"), "{body}");
    let long = "a".repeat(casecast_store::messages::MAX_TEXT_CHARS + 1);
    let (status, body) = send(editor.clone(), csrf.clone(), open.clone(), long).await;
    assert_eq!(status, 422);
    assert!(body.contains("a message may have at most 1530"), "{body}");
    let (status, body) = send(editor.clone(), csrf.clone(), phoneless.clone(), "Hi".into()).await;
    assert_eq!(status, 409);
    assert!(body.contains("The case has no phone number"), "{body}");
    let (status, _, _) = post(
        &app,
        &editor,
        "/a/alpha/messaging/opt-outs",
        &[("csrf", &csrf), ("phone", "0772 000001")],
    )
    .await;
    assert_eq!(status, 303);
    let (status, body) = send(editor.clone(), csrf.clone(), open.clone(), "Hi".into()).await;
    assert_eq!(status, 409);
    assert!(
        body.contains("has opted out") && body.contains("See the opt-out list"),
        "{body}"
    );
    let (status, _) = call(
        &app,
        Method::POST,
        &app.api("alpha", &format!("/cases/{open}/close")),
        Some(&app.alpha_admin.token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = send(editor.clone(), csrf.clone(), open.clone(), "Hi".into()).await;
    assert_eq!(status, 409);
    assert!(body.contains("The case is closed"), "{body}");
    let (status, _) = send(
        editor.clone(),
        csrf.clone(),
        "no-such-case".into(),
        "Hi".into(),
    )
    .await;
    assert_eq!(status, 404);
    let (messages, _) = app
        .db
        .list_messages(app.alpha.id, &Default::default(), 10, None)
        .await
        .unwrap();
    assert!(messages.is_empty(), "nothing was queued");
}
