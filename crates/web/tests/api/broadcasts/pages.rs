//! The broadcast pages over HTTP: compose, preview (values kept, user text escaped), confirm,
//! follow to `completed` through the progress JSON; every POST needs the CSRF token and an
//! editor or admin; another project's broadcasts do not exist.

use casecast_testkit::{Dialect, TestApp};
use serde_json::Value;

use super::*;
use crate::message_pages::{assert_escaped, csrf_of, get, hidden, page, post as post_form, SCRIPT};
use crate::pages::login;

casecast_testkit::on_both_engines!(
    compose_preview_send_and_follow,
    broadcast_forms_need_csrf_and_the_role
);

const NEW: &str = "/a/alpha/messaging/broadcasts/new";

/// The compose form's fields for an immediate broadcast to `group` with a Swahili translation.
fn fields<'a>(csrf: &'a str, group: &'a str, name: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("name", name),
        ("group", group),
        ("cases", ""),
        ("default_text", "Hello {case.name}"),
        ("lang_0", "sw"),
        ("text_0", "Habari {case.name}"),
        ("lang_1", ""),
        ("text_1", ""),
        ("schedule_kind", "now"),
        ("start_date", "2030-01-07"),
        ("time", "09:00"),
        ("every", "1"),
        ("stop", "never"),
        ("gateway_id", ""),
    ]
}

/// An attribute value as the browser reads it.
fn unescape(html: &str) -> String {
    [
        ("&#34;", "\""),
        ("&quot;", "\""),
        ("&#39;", "'"),
        ("&#60;", "<"),
        ("&lt;", "<"),
        ("&#62;", ">"),
        ("&gt;", ">"),
        ("&#38;", "&"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(html.to_string(), |s, (from, to)| s.replace(from, to))
}

/// The broadcast id in a `…/broadcasts/{id}?done=created` location.
fn created_id(location: &str) -> i64 {
    let rest = location
        .strip_prefix("/a/alpha/messaging/broadcasts/")
        .unwrap_or_else(|| panic!("not a broadcast page: {location}"));
    rest.split('?').next().unwrap().parse().unwrap()
}

async fn compose_preview_send_and_follow(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let a = audience(&app).await;
    let group = a.group.to_string();
    let editor = login(&app, &app.alpha_editor).await;
    let csrf = csrf_of(&app, &editor).await;
    let list = page(&app, &editor, "/a/alpha/messaging/broadcasts").await;
    assert!(list.contains("id=\"new-broadcast\"") && list.contains("id=\"no-broadcasts\""));
    let form = page(&app, &editor, NEW).await;
    assert!(!form.contains(&format!("name=\"group\" value=\"{group}\" checked")));
    let group_page = page(
        &app,
        &editor,
        &format!("/a/alpha/messaging/case-groups/{group}"),
    )
    .await;
    let link = format!("{NEW}?group={group}");
    assert!(
        group_page.contains(&link),
        "the group's page links to a broadcast to it"
    );
    let ticked = page(&app, &editor, &link).await;
    assert!(ticked.contains(&format!("name=\"group\" value=\"{group}\" checked")));
    assert!(
        form.contains(&format!("name=\"group\" value=\"{group}\"")),
        "the group is offered"
    );
    assert!(
        form.contains("/static/sms_counter.js")
            && form.contains("data-counter=\"counter-default\"")
    );

    // Preview: the numbers, a sample per language, the values kept, user text escaped.
    let name = format!("Notice {SCRIPT}");
    let mut preview_fields = fields(&csrf, &group, &name);
    preview_fields.push(("action", "preview"));
    let (status, _, html) = post_form(&app, &editor, NEW, &preview_fields).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"preview-recipients\">2<"), "{html}");
    assert!(html.contains("Habari Aber") && html.contains("Hello Okello"));
    assert!(
        html.contains("data-reason=\"opted_out\"")
            && html.contains("data-reason=\"duplicate_phone\"")
    );
    assert!(html.contains("Send now to 2 recipients"));
    assert_escaped(&html, SCRIPT, "the name kept in the form");
    assert!(html.contains(&format!("name=\"group\" value=\"{group}\" checked")));
    assert!(html.contains("name=\"lang_0\" value=\"sw\""));
    let previewed = hidden(&html, "previewed");
    assert!(
        previewed.contains("&#34;") || previewed.contains("&quot;"),
        "JSON, escaped"
    );
    assert!(read(&app, "/broadcasts").await["broadcasts"]
        .as_array()
        .unwrap()
        .is_empty());

    // A confirm of a form that changed since its preview previews again and sends nothing.
    let stale = unescape(&previewed);
    let mut changed = fields(&csrf, &group, "Another name");
    changed.extend([("action", "send"), ("previewed", stale.as_str())]);
    let (status, _, html) = post_form(&app, &editor, NEW, &changed).await;
    assert_eq!(status, 200);
    assert!(html.contains("changed after its preview") && html.contains("id=\"preview\""));
    assert!(read(&app, "/broadcasts").await["broadcasts"]
        .as_array()
        .unwrap()
        .is_empty());

    // The confirm of what was previewed creates it.
    let mut send = fields(&csrf, &group, &name);
    send.extend([("action", "send"), ("previewed", stale.as_str())]);
    let (status, location, body) = post_form(&app, &editor, NEW, &send).await;
    assert_eq!(status, 303, "{body}");
    let id = created_id(&location);
    assert!(location.ends_with("?done=created"));
    let b = until_status(&app, id, "completed").await;
    assert_eq!(
        (b["name"].as_str(), b["counts"]["sent"].as_i64()),
        (Some(name.as_str()), Some(2)),
        "{b}"
    );

    // The page and its progress JSON.
    let progress = page(
        &app,
        &editor,
        &format!("/a/alpha/messaging/broadcasts/{id}/progress.json"),
    )
    .await;
    let progress: Value = serde_json::from_str(&progress).unwrap();
    assert_eq!(progress["broadcast"]["status"], "completed");
    assert_eq!(progress["occurrences"][0]["counts"]["sent"], 2);
    let html = page(&app, &editor, &location).await;
    assert!(html.contains("id=\"notice\"") && html.contains("id=\"broadcast-counts\""));
    assert!(html.contains("data-count=\"sent\">2<"), "{html}");
    assert!(html.contains("broadcast_progress.js") && html.contains("id=\"occurrences\""));
    assert_escaped(&html, SCRIPT, "the name on the broadcast's page");
    let (messages, _) = app
        .db
        .list_messages(app.alpha.id, &Default::default(), 10, None)
        .await
        .unwrap();
    for m in &messages {
        assert!(
            html.contains(&format!("/a/alpha/messaging/messages/{}\"", m.id)),
            "links each message"
        );
    }
    assert!(
        !html.contains("id=\"broadcast-actions\""),
        "nothing to cancel once completed"
    );
    let sent_only = page(
        &app,
        &editor,
        &format!("/a/alpha/messaging/broadcasts/{id}?status=queued"),
    )
    .await;
    assert!(sent_only.contains("id=\"no-messages\""));
    let list = page(&app, &editor, "/a/alpha/messaging/broadcasts").await;
    assert!(
        list.contains(&format!("/a/alpha/messaging/broadcasts/{id}\""))
            && list.contains("completed")
    );
    assert_escaped(&list, SCRIPT, "the name in the list");

    // Errors name the field and keep what was typed.
    let mut weekly = fields(&csrf, &group, "Weekly reminder");
    for (k, v) in weekly.iter_mut() {
        if *k == "schedule_kind" {
            *v = "weekly";
        }
    }
    weekly.push(("action", "preview"));
    let (status, _, html) = post_form(&app, &editor, NEW, &weekly).await;
    assert_eq!(status, 422);
    assert!(
        html.contains("id=\"form-error\"")
            && html.contains("Weekdays: choose at least one weekday")
    );
    assert!(
        html.contains("value=\"Weekly reminder\"")
            && html.contains("Habari {case.name}</textarea>")
    );
    let mut bad_text = fields(&csrf, &group, "Bad");
    bad_text.retain(|(k, _)| *k != "default_text");
    bad_text.extend([("default_text", "Hi {case.name"), ("action", "preview")]);
    let (status, _, html) = post_form(&app, &editor, NEW, &bad_text).await;
    assert_eq!(status, 422);
    assert!(html.contains("Default text: "), "{html}");
}

async fn broadcast_forms_need_csrf_and_the_role(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let a = audience(&app).await;
    let mut b = body("Weekly", a.group);
    b["schedule"] = weekly();
    let (_, created) = post(&app, "/broadcasts", b).await;
    let id = created["id"].as_i64().unwrap();
    let detail = format!("/a/alpha/messaging/broadcasts/{id}");
    let group = a.group.to_string();

    let admin = login(&app, &app.alpha_admin).await;
    let editor = login(&app, &app.alpha_editor).await;
    let viewer = login(&app, &app.alpha_viewer).await;
    let editor_csrf = csrf_of(&app, &editor).await;
    let viewer_csrf = csrf_of(&app, &viewer).await;

    let html = page(&app, &editor, &detail).await;
    assert!(html.contains("id=\"pause-broadcast\"") && html.contains("id=\"cancel-broadcast\""));
    assert!(
        html.contains("every week on Monday and Thursday at 09:00"),
        "the schedule in words"
    );
    let seen = page(&app, &viewer, &detail).await;
    assert!(!seen.contains("id=\"broadcast-actions\"") && !seen.contains("/pause\""));
    let list = page(&app, &viewer, "/a/alpha/messaging/broadcasts").await;
    assert!(list.contains(&detail) && !list.contains("id=\"new-broadcast\""));
    assert_eq!(get(&app, &viewer, NEW).await.0, 403);

    let mut posts: Vec<(String, Vec<(&str, &str)>)> = ["cancel", "pause", "resume"]
        .iter()
        .map(|a| (format!("{detail}/{a}"), vec![]))
        .collect();
    let mut compose = fields("", &group, "Sneaky");
    compose.retain(|(k, _)| *k != "csrf");
    compose.push(("action", "preview"));
    posts.push((NEW.to_string(), compose));
    for (path, fields) in &posts {
        for csrf in [None, Some("forged"), Some(editor_csrf.as_str())] {
            let mut all = fields.clone();
            if let Some(c) = csrf {
                all.push(("csrf", c));
            }
            let (status, _, body) = post_form(&app, &admin, path, &all).await;
            assert_eq!(status, 403, "{path} with csrf {csrf:?}: {body}");
        }
        let mut all = fields.clone();
        all.push(("csrf", &viewer_csrf));
        let (status, _, body) = post_form(&app, &viewer, path, &all).await;
        assert_eq!(status, 403, "viewer: {path}");
        assert!(body.contains("viewer"), "{body}");
    }
    assert_eq!(
        read(&app, &format!("/broadcasts/{id}")).await["status"],
        "scheduled"
    );
    assert_eq!(
        read(&app, "/broadcasts").await["broadcasts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // With the token and the role: pause, a refused second pause, resume, cancel; each
    // answer is a redirect to the broadcast's page, which says what happened.
    let csrf = [("csrf", editor_csrf.as_str())];
    for (action, done, says) in [
        ("pause", "paused", "The broadcast is paused"),
        ("pause", "refused", "That could not be done"),
        ("resume", "resumed", "The broadcast was resumed"),
        ("cancel", "cancelled", "The broadcast was cancelled"),
    ] {
        let (got, location, body) =
            post_form(&app, &editor, &format!("{detail}/{action}"), &csrf).await;
        assert_eq!(got, 303, "{action}: {body}");
        assert_eq!(location, format!("{detail}?done={done}"));
        let (status, page) = get(&app, &editor, &location).await;
        assert_eq!(status, 200);
        assert!(page.contains(says), "{action}: {page}");
    }
    let html = page(&app, &editor, &format!("{detail}?done=cancelled")).await;
    assert!(html.contains("id=\"notice\"") && html.contains(">cancelled<"));

    // Without a session: the login form. Another project's member: not found.
    for path in ["/a/alpha/messaging/broadcasts", NEW, detail.as_str()] {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 303, "{path}");
    }
    let beta = login(&app, &app.beta_admin).await;
    for path in [
        "/a/alpha/messaging/broadcasts".to_string(),
        detail.clone(),
        format!("{detail}/progress.json"),
        format!("/a/beta/messaging/broadcasts/{id}"),
        format!("/a/beta/messaging/broadcasts/{id}/progress.json"),
    ] {
        assert_eq!(get(&app, &beta, &path).await.0, 404, "{path}");
    }
    let beta_csrf = crate::message_pages::csrf_of_project(&app, &beta, "beta").await;
    let (status, _, _) = post_form(
        &app,
        &beta,
        &format!("/a/beta/messaging/broadcasts/{id}/cancel"),
        &[("csrf", beta_csrf.as_str())],
    )
    .await;
    assert_eq!(status, 404);
    // The viewer reads the progress too.
    let progress: Value =
        serde_json::from_str(&page(&app, &viewer, &format!("{detail}/progress.json")).await)
            .unwrap();
    assert_eq!(progress["broadcast"]["status"], "cancelled");
}
