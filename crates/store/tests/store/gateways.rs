//! Gateways: settings checked and sealed at rest, names unique, one default, routing by prefix,
//! deletion cancelling what is queued, webhook secrets.

use casecast_core::gateway::config::{GatewayConfig, GatewayKind, MASK};
use casecast_store::gateways::{GatewayPatch, NewGateway};
use casecast_store::sealed::SecretKey;
use casecast_store::{Db, StoreError};
use casecast_testkit::Workflows;
use casecast_testkit::{on_both_engines, Dialect, TestDb};
use serde_json::json;
use sqlx::Row;

use crate::{case_with, project, raw_pool};

on_both_engines!(
    credentials_are_sealed_at_rest_and_need_the_same_key,
    names_are_unique_per_project_and_fields_are_checked,
    one_default_per_project_and_routing_by_longest_prefix,
    deleting_a_gateway_cancels_its_queued_messages_and_moves_the_default,
    a_webhook_needs_the_gateway_secret,
    edits_keep_masked_credentials,
);

/// A Kannel gateway named `name` with password `password`.
pub fn kannel(name: &str, password: &str) -> NewGateway {
    NewGateway {
        name: name.into(),
        kind: GatewayKind::Kannel,
        config: json!({"sendsms_url": "http://127.0.0.1:13013/cgi-bin/sendsms", "username": "u", "password": password}),
        callback_base_url: "http://127.0.0.1:8080".into(),
        max_segments_per_second: Some(50.0),
        max_attempts: None,
        prefixes: vec![],
        is_default: false,
    }
}

/// A log gateway named `name` routing `prefixes`.
pub fn log(name: &str, prefixes: &[&str]) -> NewGateway {
    NewGateway {
        name: name.into(),
        kind: GatewayKind::Log,
        config: json!({}),
        callback_base_url: "http://127.0.0.1:8080".into(),
        max_segments_per_second: None,
        max_attempts: None,
        prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
        is_default: false,
    }
}

async fn credentials_are_sealed_at_rest_and_need_the_same_key(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let p = project(&t.db, "alpha", Some("UG")).await;
    let g =
        t.db.create_gateway(p.id, &kannel("K", "pa55-word-xyz"))
            .await
            .unwrap();
    let GatewayConfig::Kannel(c) = &g.config else {
        panic!("a kannel gateway")
    };
    assert_eq!(c.password, "pa55-word-xyz");
    let shown = format!("{g:?}");
    assert!(
        !shown.contains("pa55-word-xyz") && !shown.contains(&g.webhook_secret),
        "Debug shows a credential: {shown}"
    );
    let pool = raw_pool(&t.url).await;
    let row = sqlx::query(
        "SELECT config_sealed, webhook_secret_sealed, webhook_digest FROM gateways WHERE id = $1",
    )
    .bind(g.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    for column in ["config_sealed", "webhook_secret_sealed", "webhook_digest"] {
        let stored: String = row.try_get(column).unwrap();
        assert!(
            !stored.contains("pa55-word-xyz"),
            "{column} holds the password"
        );
        assert!(
            !stored.contains(&g.webhook_secret),
            "{column} holds the secret"
        );
    }
    // Another process with another key cannot read the credentials, and says why.
    let other = Db::open(&t.url)
        .await
        .unwrap()
        .with_secret_key(SecretKey::generate());
    let err = other.gateway(p.id, g.id).await.unwrap_err();
    assert!(err.to_string().contains("secret key"), "{err}");
    // ...and the key check at start-up says so before anything else fails.
    let err = other.check_secret_key().await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                code: "wrong_secret_key",
                ..
            }
        ),
        "{err}"
    );
    t.db.check_secret_key().await.unwrap();
}

async fn names_are_unique_per_project_and_fields_are_checked(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "alpha", Some("UG")).await;
    let q = project(db, "beta", Some("KE")).await;
    db.create_gateway(p.id, &kannel("Main", "x")).await.unwrap();
    let err = db
        .create_gateway(p.id, &kannel(" main ", "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                code: "name_taken",
                ..
            }
        ),
        "{err}"
    );
    // Another project may use the name.
    db.create_gateway(q.id, &kannel("Main", "x")).await.unwrap();
    let field = |e: StoreError| match e {
        StoreError::Invalid(f) => f.field,
        other => panic!("not a field error: {other}"),
    };
    let mut bad = kannel("B", "x");
    bad.config = json!({"sendsms_url": "ftp://x", "username": "u", "password": "p"});
    assert_eq!(
        field(db.create_gateway(p.id, &bad).await.unwrap_err()),
        "config.sendsms_url"
    );
    let mut bad = kannel("B", "x");
    bad.max_segments_per_second = Some(0.0);
    assert_eq!(
        field(db.create_gateway(p.id, &bad).await.unwrap_err()),
        "max_segments_per_second"
    );
    let mut bad = kannel("B", "x");
    bad.prefixes = vec!["256".into()];
    assert_eq!(
        field(db.create_gateway(p.id, &bad).await.unwrap_err()),
        "prefixes"
    );
    let mut bad = kannel("B", "x");
    bad.max_attempts = Some(0);
    assert_eq!(
        field(db.create_gateway(p.id, &bad).await.unwrap_err()),
        "max_attempts"
    );
    let mut bad = kannel("B", "x");
    bad.callback_base_url = "javascript:alert(1)".into();
    assert_eq!(
        field(db.create_gateway(p.id, &bad).await.unwrap_err()),
        "callback_base_url"
    );
    let bad = kannel(&"n".repeat(101), "x");
    assert_eq!(
        field(db.create_gateway(p.id, &bad).await.unwrap_err()),
        "name"
    );
    // A gateway of another project is not found through this one.
    let theirs = db.list_gateways(q.id).await.unwrap();
    assert!(matches!(
        db.gateway(p.id, theirs[0].id).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn one_default_per_project_and_routing_by_longest_prefix(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "alpha", Some("UG")).await;
    assert_eq!(db.route(p.id, "+256772000001").await.unwrap(), None);
    let a = db.create_gateway(p.id, &log("A", &[])).await.unwrap();
    assert!(a.is_default, "the first gateway is the default");
    let b = db.create_gateway(p.id, &log("B", &["+254"])).await.unwrap();
    let c = db
        .create_gateway(p.id, &log("C", &["+2547", "+255 "]))
        .await
        .unwrap();
    assert!(!b.is_default && !c.is_default);
    assert_eq!(c.prefixes, vec!["+2547", "+255"]);
    assert_eq!(db.route(p.id, "+256772000001").await.unwrap(), Some(a.id));
    assert_eq!(db.route(p.id, "+254201234567").await.unwrap(), Some(b.id));
    assert_eq!(db.route(p.id, "+254712345678").await.unwrap(), Some(c.id));
    // Making B the default unsets A; the only default cannot be unset.
    let patch = GatewayPatch {
        is_default: Some(true),
        ..Default::default()
    };
    db.update_gateway(p.id, b.id, &patch).await.unwrap();
    let defaults: Vec<i64> = db
        .list_gateways(p.id)
        .await
        .unwrap()
        .iter()
        .filter(|g| g.is_default)
        .map(|g| g.id)
        .collect();
    assert_eq!(defaults, vec![b.id]);
    assert_eq!(db.route(p.id, "+256772000001").await.unwrap(), Some(b.id));
    let unset = GatewayPatch {
        is_default: Some(false),
        ..Default::default()
    };
    assert!(matches!(
        db.update_gateway(p.id, b.id, &unset).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn deleting_a_gateway_cancels_its_queued_messages_and_moves_the_default(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "alpha", Some("UG")).await;
    let a = db.create_gateway(p.id, &log("A", &[])).await.unwrap();
    let b = db.create_gateway(p.id, &log("B", &[])).await.unwrap();
    let case = case_with(db, p.id, None, "Amina", None, Some("0772000001")).await;
    let m = db
        .send_to_case(&p, case.case_id.as_str(), "hello", None, None)
        .await
        .unwrap();
    assert_eq!(m.gateway_id, Some(a.id));
    assert_eq!(db.delete_gateway(p.id, a.id).await.unwrap(), 1);
    let m = db.message(p.id, m.id).await.unwrap();
    assert_eq!(m.status, "cancelled");
    assert!(m.error.unwrap().contains("gateway was deleted"));
    let left = db.list_gateways(p.id).await.unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].is_default && left[0].id == b.id);
    assert!(matches!(
        db.delete_gateway(p.id, a.id).await,
        Err(StoreError::NotFound(_))
    ));
    // The name is free again.
    db.create_gateway(p.id, &log("A", &[])).await.unwrap();
}

async fn a_webhook_needs_the_gateway_secret(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "alpha", Some("UG")).await;
    let g = db.create_gateway(p.id, &kannel("K", "x")).await.unwrap();
    assert_eq!(g.webhook_secret.len(), 48);
    let found = db
        .gateway_for_webhook(g.id, &g.webhook_secret)
        .await
        .unwrap();
    assert_eq!(found.id, g.id);
    assert!(g
        .callbacks()
        .url("dlr")
        .ends_with(&format!("/hooks/{}/{}/dlr", g.id, g.webhook_secret)));
    for wrong in [
        "",
        "x",
        &g.webhook_secret[1..],
        &g.webhook_secret.to_uppercase(),
    ] {
        assert!(matches!(
            db.gateway_for_webhook(g.id, wrong).await,
            Err(StoreError::NotFound(_))
        ));
    }
    db.delete_gateway(p.id, g.id).await.unwrap();
    assert!(db
        .gateway_for_webhook(g.id, &g.webhook_secret)
        .await
        .is_err());
}

async fn edits_keep_masked_credentials(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "alpha", Some("UG")).await;
    let g = db
        .create_gateway(p.id, &kannel("K", "old-pass"))
        .await
        .unwrap();
    let shown = g.config.masked_json();
    assert_eq!(shown["password"], MASK);
    let mut edit = shown.clone();
    edit["username"] = json!("new-user");
    let patch = GatewayPatch {
        config: Some(edit),
        max_segments_per_second: Some(None),
        name: Some("K2".into()),
        ..Default::default()
    };
    let g2 = db.update_gateway(p.id, g.id, &patch).await.unwrap();
    let GatewayConfig::Kannel(c) = &g2.config else {
        panic!("a kannel gateway")
    };
    assert_eq!(
        (c.username.as_str(), c.password.as_str()),
        ("new-user", "old-pass")
    );
    assert_eq!(g2.max_segments_per_second, None);
    assert_eq!(g2.name, "K2");
    assert_eq!(
        g2.webhook_secret, g.webhook_secret,
        "edits keep the webhook secret"
    );
    let mut edit = g2.config.masked_json();
    edit["password"] = json!("new-pass");
    let patch = GatewayPatch {
        config: Some(edit),
        ..Default::default()
    };
    let g3 = db.update_gateway(p.id, g.id, &patch).await.unwrap();
    let GatewayConfig::Kannel(c) = &g3.config else {
        panic!("a kannel gateway")
    };
    assert_eq!(c.password, "new-pass");
}
