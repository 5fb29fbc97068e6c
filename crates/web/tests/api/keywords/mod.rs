//! Keywords: the definitions' API (CRUD, every field error, reserved words, uniqueness,
//! references, roles, isolation, limits), their use counts and the message log's filter, and
//! the pages through HTTP form posts.

mod api;
mod pages;

use casecast_core::states::MessageKind;
use casecast_core::PhoneNumber;
use casecast_store::messages::{NewInbound, NewOutbound};
use casecast_store::Db;
use casecast_testkit::TestApp;
use reqwest::Method;
use serde_json::{json, Value};

use crate::call;

/// Creates an alpha keyword as alpha's editor; returns its JSON.
pub async fn new_keyword(app: &TestApp, body: Value) -> Value {
    let (status, k) = call(
        app,
        Method::POST,
        &app.api("alpha", "/keywords"),
        Some(&app.alpha_editor.token),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{k}");
    k
}

/// A keyword that only replies.
pub fn reply_only(word: &str) -> Value {
    json!({"keyword": word, "actions": [{"type": "reply", "text": "Thank you"}]})
}

/// Alpha's log gateway (created on the first call); returns its id.
pub async fn log_gateway(app: &TestApp) -> i64 {
    let (status, g) = call(
        app,
        Method::POST,
        &app.api("alpha", "/gateways"),
        Some(&app.alpha_admin.token),
        Some(json!({"name": "Log", "kind": "log"})),
    )
    .await;
    if status == 201 {
        return g["id"].as_i64().unwrap();
    }
    let (_, list) = call(
        app,
        Method::GET,
        &app.api("alpha", "/gateways"),
        Some(&app.alpha_admin.token),
        None,
    )
    .await;
    list["gateways"][0]["id"].as_i64().unwrap()
}

/// Logs an inbound message of alpha that matched `keyword_id`, received at `at` (epoch ms),
/// as the inbound router records one; returns its id.
pub async fn matched(
    app: &TestApp,
    keyword_id: i64,
    case_pk: Option<i64>,
    text: &str,
    at: i64,
) -> i64 {
    let gateway_id = log_gateway(app).await;
    let mut tx = app.db.begin_write().await.unwrap();
    let id = app
        .db
        .insert_inbound(
            &mut tx,
            &NewInbound {
                project_id: app.alpha.id,
                case_pk,
                phone: "+256772000001",
                text,
                gateway_id,
                gateway_message_id: None,
                now: at,
            },
        )
        .await
        .unwrap()
        .unwrap();
    sqlx::query("UPDATE messages SET keyword_id = $1 WHERE id = $2")
        .bind(keyword_id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

/// Queues an alpha reply of `keyword_id` to the inbound message `reply_to`; returns its id.
pub async fn reply(app: &TestApp, keyword_id: i64, reply_to: i64) -> i64 {
    let gateway_id = log_gateway(app).await;
    let mut tx = app.db.begin_write().await.unwrap();
    let id = Db::queue_outbound(
        &mut tx,
        &app.alpha,
        &NewOutbound {
            case_pk: None,
            phone: PhoneNumber::parse("+256772000001", None).unwrap(),
            text: "Thank you".into(),
            gateway_id,
            user_id: None,
            kind: MessageKind::Normal,
            survey: None,
            reply_to: Some((reply_to, Some(keyword_id))),
            reminder_id: None,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

/// A day, in milliseconds.
pub const DAY: i64 = 24 * 3600 * 1000;
