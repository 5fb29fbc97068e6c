//! The opt-out list and messaging settings pages.

use casecast_testkit::{Dialect, TestApp};

use super::*;
use crate::pages::login;

casecast_testkit::on_both_engines!(
    opt_out_and_settings_pages,
    stored_settings_that_cannot_be_used_are_shown,
);

async fn opt_out_and_settings_pages(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let editor = login(&app, &app.alpha_editor).await;
    let csrf = csrf_of(&app, &editor).await;
    let list = page(&app, &editor, "/a/alpha/messaging/opt-outs").await;
    assert!(list.contains("id=\"no-opt-outs\"") && list.contains("id=\"add-opt-out\""));
    // A national number takes the project's country; a second add says so.
    let (status, location, _) = post(
        &app,
        &editor,
        "/a/alpha/messaging/opt-outs",
        &[("csrf", &csrf), ("phone", "0772 123456")],
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/a/alpha/messaging/opt-outs?done=added")
    );
    assert!(app
        .db
        .is_opted_out(app.alpha.id, "+256772123456")
        .await
        .unwrap());
    let (_, location, _) = post(
        &app,
        &editor,
        "/a/alpha/messaging/opt-outs",
        &[("csrf", &csrf), ("phone", "+256 772 123456")],
    )
    .await;
    assert_eq!(location, "/a/alpha/messaging/opt-outs?done=already");
    let (status, _, body) = post(
        &app,
        &editor,
        "/a/alpha/messaging/opt-outs",
        &[("csrf", &csrf), ("phone", "<script>07")],
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        body.contains("Phone number:") && !body.contains("<script>07"),
        "{body}"
    );
    let viewer = login(&app, &app.alpha_viewer).await;
    let seen = page(&app, &viewer, "/a/alpha/messaging/opt-outs").await;
    assert!(seen.contains("+256772123456") && seen.contains("added on this page"));
    assert!(!seen.contains("id=\"add-opt-out\"") && !seen.contains("opt-outs/remove"));
    let (status, location, _) = post(
        &app,
        &editor,
        "/a/alpha/messaging/opt-outs/remove",
        &[("csrf", &csrf), ("phone", "+256772123456")],
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/a/alpha/messaging/opt-outs?done=removed")
    );
    assert!(!app
        .db
        .is_opted_out(app.alpha.id, "+256772123456")
        .await
        .unwrap());

    // Settings: everyone reads them, admins change them; errors name the field.
    let shown = page(&app, &viewer, "/a/alpha/messaging/settings").await;
    assert!(
        shown.contains("STOP")
            && shown.contains("fieldset disabled")
            && !shown.contains("Save settings")
    );
    let admin = login(&app, &app.alpha_admin).await;
    let admin_csrf = csrf_of(&app, &admin).await;
    let form =
        |start: &'static str, stop: &'static str, validity: &'static str, unit: &'static str| {
            vec![
                ("csrf", admin_csrf.clone()),
                ("quiet_hours_start", start.to_string()),
                ("quiet_hours_end", "07:00".to_string()),
                ("stop_keywords", stop.to_string()),
                ("start_keywords", "START, GO".to_string()),
                ("opt_out_reply", "Bye <b>now</b>".to_string()),
                ("opt_in_reply", "Welcome back".to_string()),
                ("validity", validity.to_string()),
                ("validity_unit", unit.to_string()),
            ]
        };
    for (fields, expected) in [
        (
            form("9pm", "STOP", "2", "hours"),
            "Quiet hours start: quiet hours start",
        ),
        (
            form("21:00", "STOP, GO", "2", "hours"),
            "cannot be both a stop and a start keyword",
        ),
        (
            form("21:00", "STOP", "5", "seconds"),
            "Validity: must be from 10",
        ),
        (
            form("21:00", "STOP", "two", "hours"),
            "Validity: must be a whole number",
        ),
        (
            with(
                form("21:00", "STOP", "2", "hours"),
                "reminder_late_limit_hours",
                "0",
            ),
            "Reminder late limit: must be a whole number of hours from 1 to 720",
        ),
        (
            with(
                form("21:00", "STOP", "2", "hours"),
                "reminder_late_limit_hours",
                "soon",
            ),
            "Reminder late limit: must be a whole number of hours",
        ),
    ] {
        let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, _, body) = post(&app, &admin, "/a/alpha/messaging/settings", &refs).await;
        assert_eq!(status, 422, "{expected}");
        assert!(body.contains(expected), "{expected}: {body}");
        assert!(
            body.contains("Bye &lt;b&gt;now") || body.contains("Bye &#60;b&#62;now"),
            "typed values kept, escaped"
        );
    }
    let fields = with(
        form("21:00", "STOP, HALT", "90", "minutes"),
        "reminder_late_limit_hours",
        "72",
    );
    let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, location, _) = post(&app, &admin, "/a/alpha/messaging/settings", &refs).await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/a/alpha/messaging/settings?done=saved")
    );
    let saved = app
        .db
        .project_by_slug("alpha")
        .await
        .unwrap()
        .messaging
        .unwrap();
    assert_eq!(
        (
            saved.quiet_hours_start.as_deref(),
            saved.quiet_hours_end.as_deref(),
            saved.validity_seconds
        ),
        (Some("21:00"), Some("07:00"), 5400)
    );
    assert_eq!(
        (saved.stop_keywords, saved.start_keywords),
        (
            vec!["STOP".to_string(), "HALT".into()],
            vec!["START".to_string(), "GO".into()]
        )
    );
    assert_eq!(saved.opt_out_reply, "Bye <b>now</b>");
    assert_eq!(saved.reminder_late_limit_hours, 72);
    let after = page(&app, &admin, &location).await;
    assert!(after.contains("value=\"90\"") && after.contains("The settings were saved."));
    assert!(label_of(&after, "reminder_late_limit_hours").contains("value=\"72\""));
}

/// `fields` with one more.
fn with(
    mut fields: Vec<(&'static str, String)>,
    name: &'static str,
    value: &str,
) -> Vec<(&'static str, String)> {
    fields.push((name, value.to_string()));
    fields
}

/// The text of the `<label>` holding the input `name`.
fn label_of<'a>(html: &'a str, name: &str) -> &'a str {
    let at = html
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no {name} in page"));
    let start = html[..at].rfind("<label").unwrap();
    let end = at + html[at..].find("</label>").unwrap();
    &html[start..end]
}

/// Settings written past the checks (a hand edit, damage): the page says that nothing is sent,
/// shows the stored values and marks the field at fault.
async fn stored_settings_that_cannot_be_used_are_shown(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let admin = login(&app, &app.alpha_admin).await;
    let path = "/a/alpha/messaging/settings";
    assert!(!page(&app, &admin, path).await.contains("stored-error"));
    app.test_db
        .store_messaging_settings_unchecked(
            app.alpha.id,
            r#"{"quiet_hours_start": "21:00", "quiet_hours_end": "25:00", "start_keywords": ["GO"]}"#,
        )
        .await;
    let shown = page(&app, &admin, path).await;
    assert!(
        shown.contains("id=\"stored-error\"")
            && shown.contains("No message of this project is sent until an admin saves"),
        "{shown}"
    );
    let end = label_of(&shown, "quiet_hours_end");
    assert!(
        end.contains("value=\"25:00\"")
            && end.contains("field-error")
            && end.contains("is not a time like 21:00"),
        "{end}"
    );
    assert!(!label_of(&shown, "quiet_hours_start").contains("field-error"));
    assert!(
        hidden(&shown, "start_keywords").starts_with("GO"),
        "stored values shown"
    );
    // Everyone who reads the settings sees it.
    let viewer = login(&app, &app.alpha_viewer).await;
    assert!(page(&app, &viewer, path)
        .await
        .contains("id=\"stored-error\""));
    // A start keyword list at fault is marked on the start list.
    app.test_db
        .store_messaging_settings_unchecked(app.alpha.id, r#"{"start_keywords": ["GO", "go"]}"#)
        .await;
    let shown = page(&app, &admin, path).await;
    assert!(
        label_of(&shown, "start_keywords").contains("is listed twice"),
        "{shown}"
    );
    assert!(!label_of(&shown, "stop_keywords").contains("field-error"));
    // Unreadable text: the defaults are shown, and the page says so.
    app.test_db
        .store_messaging_settings_unchecked(app.alpha.id, "not json")
        .await;
    let shown = page(&app, &admin, path).await;
    assert!(
        shown.contains("The stored settings cannot be read")
            && shown.contains("the form shows the defaults"),
        "{shown}"
    );
    assert!(hidden(&shown, "stop_keywords").starts_with("STOP"));
    // Saved again, the settings are whole.
    let csrf = csrf_of(&app, &admin).await;
    let fields = [
        ("csrf", csrf.as_str()),
        ("stop_keywords", "STOP"),
        ("start_keywords", "START"),
        ("opt_out_reply", "Bye"),
        ("opt_in_reply", "Welcome back"),
        ("validity", "24"),
        ("validity_unit", "hours"),
    ];
    let (status, location, _) = post(&app, &admin, path, &fields).await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/a/alpha/messaging/settings?done=saved")
    );
    assert!(!page(&app, &admin, &location).await.contains("stored-error"));
}
