//! Every POST of the messaging pages needs the CSRF token and the role; every page needs a
//! session and membership of the project.

use casecast_testkit::{Dialect, TestApp};
use serde_json::json;

use super::*;
use crate::pages::login;

casecast_testkit::on_both_engines!(every_post_needs_csrf_and_the_role);

/// A form post: the path, its fields besides `csrf`, and whether only admins may send it.
type Post = (String, Vec<(&'static str, &'static str)>, bool);

async fn every_post_needs_csrf_and_the_role(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let g = log_gateway(&app, app.alpha.id, "Log").await;
    let case = new_case(
        &app,
        json!({"name": "Aber", "phone_number": "+256772000001"}),
    )
    .await;
    app.db
        .add_opt_out(app.alpha.id, "+256772000009", "api")
        .await
        .unwrap();
    let gateway = format!("/a/alpha/messaging/gateways/{g}");
    // Each POST, with fields that would change something; `true` for the admin-only ones.
    let posts: Vec<Post> = vec![
        (
            "/a/alpha/messaging/gateways".into(),
            vec![
                ("name", "New"),
                ("kind", "log"),
                ("callback_base_url", "http://x"),
            ],
            true,
        ),
        (
            gateway.clone(),
            vec![
                ("name", "Renamed"),
                ("kind", "log"),
                ("callback_base_url", "http://x"),
            ],
            true,
        ),
        (format!("{gateway}/delete"), vec![], true),
        (
            "/a/alpha/messaging/settings".into(),
            vec![
                ("stop_keywords", "HALT"),
                ("start_keywords", "GO"),
                ("opt_out_reply", "bye"),
                ("opt_in_reply", "hi"),
                ("validity", "1"),
                ("validity_unit", "hours"),
            ],
            true,
        ),
        (
            "/a/alpha/messaging/opt-outs".into(),
            vec![("phone", "+256772000002")],
            false,
        ),
        (
            "/a/alpha/messaging/opt-outs/remove".into(),
            vec![("phone", "+256772000009")],
            false,
        ),
        (
            format!("/a/alpha/cases/{case}/messages"),
            vec![("text", "Hello")],
            false,
        ),
    ];
    let state = || async {
        let gateways: Vec<String> = app
            .db
            .list_gateways(app.alpha.id)
            .await
            .unwrap()
            .into_iter()
            .map(|g| g.name)
            .collect();
        let project = app.db.project_by_slug("alpha").await.unwrap();
        let (opt_outs, _) = app.db.list_opt_outs(app.alpha.id, 100, None).await.unwrap();
        let (messages, _) = app
            .db
            .list_messages(app.alpha.id, &Default::default(), 100, None)
            .await
            .unwrap();
        (gateways, project.messaging, opt_outs, messages.len())
    };
    let before = state().await;
    let admin = login(&app, &app.alpha_admin).await;
    let editor = login(&app, &app.alpha_editor).await;
    let viewer = login(&app, &app.alpha_viewer).await;
    let editor_csrf = csrf_of(&app, &editor).await;
    let viewer_csrf = csrf_of(&app, &viewer).await;
    for (path, fields, _) in &posts {
        // No token, a wrong one, another session's: 403, for an admin too.
        for csrf in [None, Some("forged"), Some(editor_csrf.as_str())] {
            let mut all = fields.clone();
            if let Some(c) = csrf {
                all.push(("csrf", c));
            }
            let (status, _, body) = post(&app, &admin, path, &all).await;
            assert_eq!(status, 403, "{path} with csrf {csrf:?}: {body}");
        }
        let mut all = fields.clone();
        all.push(("csrf", &viewer_csrf));
        let (status, _, body) = post(&app, &viewer, path, &all).await;
        assert_eq!(status, 403, "viewer: {path}");
        assert!(
            body.contains("viewer") || body.contains("Only an admin"),
            "{body}"
        );
    }
    for (path, fields, admin_only) in &posts {
        if *admin_only {
            let mut all = fields.clone();
            all.push(("csrf", &editor_csrf));
            let (status, _, _) = post(&app, &editor, path, &all).await;
            assert_eq!(status, 403, "editor: {path}");
        }
    }
    assert_eq!(state().await, before, "nothing changed");
    // The same forms with the right token and role do change things.
    let (status, _, _) = post(
        &app,
        &editor,
        &format!("/a/alpha/cases/{case}/messages"),
        &[("csrf", &editor_csrf), ("text", "Hello")],
    )
    .await;
    assert_eq!(status, 303);
    let (status, _, _) = post(
        &app,
        &editor,
        "/a/alpha/messaging/opt-outs",
        &[("csrf", &editor_csrf), ("phone", "+256772000002")],
    )
    .await;
    assert_eq!(status, 303);
    assert_ne!(state().await, before);
    // Without a session, every page sends to the login form.
    for path in [
        "/a/alpha/messaging/gateways",
        &gateway,
        "/a/alpha/messaging/messages",
        "/a/alpha/messaging/opt-outs",
        "/a/alpha/messaging/settings",
    ] {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 303, "{path}");
        assert!(resp.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login?next="));
    }
    // Another project's pages are 404 for a member of this one.
    let beta = login(&app, &app.beta_admin).await;
    for path in [
        "/a/alpha/messaging/gateways",
        "/a/alpha/messaging/messages",
        "/a/alpha/messaging/opt-outs",
        "/a/alpha/messaging/settings",
    ] {
        let (status, _) = get(&app, &beta, path).await;
        assert_eq!(status, 404, "{path}");
    }
}
