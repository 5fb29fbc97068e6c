//! The reminder pages through HTTP form posts (issue 15): the form previews what would be sent
//! (saving nothing) and creates a rule; errors show next to their fields with the input kept;
//! the rule's page shows the rule in words, what is due next (with the cases' names) and the
//! upcoming list; editing, deactivating, activating and deleting; viewers read only; CSRF,
//! roles and projects; text escaped.

use std::time::Duration;

use casecast_engine::clock::SystemClock;
use casecast_testkit::{Dialect, TestApp};
use reqwest::Method;
use serde_json::json;

use crate::call;
use crate::pages::{get_page, hidden, login};

casecast_testkit::on_both_engines!(
    the_form_previews_then_creates_a_reminder,
    errors_show_next_to_their_fields_with_the_input_kept,
    a_reminder_is_edited_deactivated_activated_and_deleted,
    viewers_read_csrf_roles_and_projects_are_checked,
);

const LIST: &str = "/a/alpha/messaging/reminders";
const NEW: &str = "/a/alpha/messaging/reminders/new";

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

/// The text of the error shown at the input with this id.
fn error_at(html: &str, id: &str) -> String {
    let marker = format!("id=\"error-{id}\">");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no error at {id} in {html}"))
        + marker.len();
    html[start..].split('<').next().unwrap().to_string()
}

/// Today in Kampala (alpha's zone) shifted by `days`, as `YYYY-MM-DD`.
fn kampala_day(days: i64) -> String {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("Africa/Kampala").unwrap())
        .date();
    today
        .checked_add(jiff::Span::new().days(days))
        .unwrap()
        .to_string()
}

/// An alpha case through the API; returns its public id.
async fn new_case(app: &TestApp, name: &str, phone: Option<&str>, visit: Option<&str>) -> String {
    let mut body = json!({"name": name, "phone_number": phone});
    if let Some(v) = visit {
        body["properties"] = json!({"next_visit": v});
    }
    let (status, case) = call(
        app,
        Method::POST,
        &app.api("alpha", "/cases"),
        Some(&app.alpha_admin.token),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{case}");
    case["case_id"].as_str().unwrap().to_string()
}

/// A rule's form fields: "2 days before next_visit at 09:00, 3 times every 1 day".
fn visit_rule<'a>(csrf: &'a str, name: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("name", name),
        ("case_type", "case"),
        ("query", ""),
        ("start", "date"),
        ("start.property", "next_visit"),
        ("start.offset_days", "-2"),
        ("time", "09:00"),
        ("repeat.every_days", "1"),
        ("repeat.times", "3"),
        ("content_kind", "sms"),
        (
            "content.text",
            "{case.name}: your visit is on {case.next_visit}.",
        ),
        (
            "content.translations",
            "sw: {case.name}: ziara {case.next_visit}.",
        ),
        ("content.survey", ""),
        ("stop_query", "visit_done = yes"),
        ("late_limit_hours", ""),
        ("active", "on"),
    ]
}

/// The id at the end of a rule page's URL (`…/reminders/7?done=…`).
fn id_of(location: &str) -> i64 {
    location
        .split('?')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no id in {location}"))
}

/// Waits until the rule's cases were evaluated (the test's own calls do the work; the app's
/// worker may do some of it).
async fn evaluated(app: &TestApp, id: i64) {
    casecast_testkit::eventually(
        "the rule's cases evaluated",
        Duration::from_secs(60),
        || async {
            while casecast_engine::reminders::evaluate_rules(&app.db, &SystemClock)
                .await
                .unwrap()
            {}
            let stored = app.db.reminder(app.alpha.id, id).await.unwrap();
            stored.evaluated_at.map(|_| ())
        },
    )
    .await;
}

async fn the_form_previews_then_creates_a_reminder(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let (in_5, in_10) = (kampala_day(5), kampala_day(10));
    let amina = new_case(&app, "Amina <b>", Some("+256772000101"), Some(&in_10)).await;
    let bea = new_case(&app, "Bea", Some("+256772000102"), Some(&in_5)).await;
    new_case(&app, "Cleo", None, Some(&in_5)).await;
    new_case(&app, "Dora", Some("+256772000104"), Some("5 March")).await;
    new_case(&app, "Eve", Some("+256772000105"), None).await;
    let session = login(&app, &app.alpha_editor).await;

    // The navigation leads to the list; the list offers the form.
    let (_, cases) = get_page(&app, &session, "/a/alpha/cases").await;
    assert!(cases.contains(&format!("href=\"{LIST}\"")));
    let (status, html) = get_page(&app, &session, LIST).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"no-reminders\""), "{html}");
    assert!(html.contains("id=\"new-reminder\""));
    let (status, html) = get_page(&app, &session, NEW).await;
    assert_eq!(status, 200);
    for input in [
        "name=\"name\"",
        "name=\"case_type\"",
        "name=\"query\"",
        "name=\"start\" value=\"date\"",
        "name=\"start\" value=\"immediately\"",
        "name=\"start.property\"",
        "name=\"start.offset_days\"",
        "name=\"time\"",
        "name=\"repeat.every_days\"",
        "name=\"repeat.times\"",
        "name=\"content.text\"",
        "name=\"content.translations\"",
        "name=\"content.survey\"",
        "name=\"stop_query\"",
        "name=\"late_limit_hours\"",
        "name=\"active\"",
        "id=\"preview-reminder\"",
    ] {
        assert!(html.contains(input), "{input} missing");
    }
    let csrf = hidden(&html, "csrf");

    // Preview: the upcoming list, the skipped cases in words, nothing saved.
    let mut fields = visit_rule(&csrf, "Visit <script>alert(1)</script>");
    fields.push(("preview", "1"));
    let (status, _, html) = post(&app, &session, NEW, &fields).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"upcoming-list\""), "{html}");
    // Bea: 3 days from now at 09:00, then the 2 days after; Amina from 8 days on.
    assert!(
        html.contains("6 occurrences in the next 30 days, for the 5 cases the rule takes"),
        "{html}"
    );
    let bea_first = html
        .find(&format!("href=\"/a/alpha/cases/{bea}\""))
        .unwrap();
    let amina_first = html
        .find(&format!("href=\"/a/alpha/cases/{amina}\""))
        .unwrap();
    assert!(bea_first < amina_first, "soonest first");
    assert!(
        html.contains(&format!("{} 09:00", kampala_day(3))),
        "{html}"
    );
    assert!(html.contains(&format!("Bea: your visit is on {in_5}.")));
    assert!(html.contains("Amina &#60;b&#62;"), "{html}");
    assert!(html.contains("1 case has no phone number"), "{html}");
    assert!(
        html.contains("1 case&#39;s next_visit is not a date (YYYY-MM-DD)")
            || html.contains("1 case&#x27;s next_visit is not a date (YYYY-MM-DD)"),
        "{html}"
    );
    assert!(html.contains("1 case has no next_visit"), "{html}");
    // The input is kept.
    assert!(html.contains("value=\"next_visit\""));
    assert!(html.contains("Visit &#60;script&#62;alert(1)&#60;/script&#62;"));
    assert!(!html.contains("<script>alert"));
    assert!(app
        .db
        .list_reminders(app.alpha.id)
        .await
        .unwrap()
        .is_empty());

    // Save: to the rule's page.
    let fields = visit_rule(&csrf, "Visit <script>alert(1)</script>");
    let (status, location, _) = post(&app, &session, NEW, &fields).await;
    assert_eq!(status, 303);
    assert!(
        location.starts_with(&format!("{LIST}/")) && location.contains("done=created"),
        "{location}"
    );
    let id = id_of(&location);
    let stored = app.db.reminder(app.alpha.id, id).await.unwrap();
    assert_eq!(
        stored.rule.to_json(),
        json!({
            "name": "Visit <script>alert(1)</script>", "active": true, "case_type": "case",
            "query": "", "stop_query": "visit_done = yes",
            "start": {"property": "next_visit", "offset_days": -2}, "time": "09:00",
            "repeat": {"every_days": 1, "times": 3},
            "content": {"sms": {"*": "{case.name}: your visit is on {case.next_visit}.",
                                "sw": "{case.name}: ziara {case.next_visit}."}},
            "late_limit_hours": null
        })
    );
    evaluated(&app, id).await;
    let (status, html) = get_page(&app, &session, &location).await;
    assert_eq!(status, 200);
    assert!(html.contains("The reminder was created."), "{html}");
    assert!(
        html.contains("2 days before next_visit at 09:00, 3 times every 1 day"),
        "{html}"
    );
    assert!(html.contains("visit_done = yes"));
    assert!(html.contains("id=\"deactivate-reminder\""));
    assert!(html.contains("Visit &#60;script&#62;alert(1)&#60;/script&#62;"));
    assert!(!html.contains("<script>alert"));
    // Due next: Bea, then Amina (Cleo has no number, but her occurrence is due too: at
    // firing she is recorded as having none).
    let next = &html[html.find("id=\"reminder-next\"").expect(&html)..];
    let b = next.find(&format!("/a/alpha/cases/{bea}")).unwrap();
    let a = next.find(&format!("/a/alpha/cases/{amina}")).unwrap();
    assert!(b < a, "soonest first");
    assert!(next.contains(&format!("{} 09:00", kampala_day(3))));
    assert!(html.contains("id=\"upcoming-list\""));
    // The list: in words, with its counts.
    let (_, html) = get_page(&app, &session, LIST).await;
    let row = &html[html.find(&format!("id=\"reminder-{id}\"")).expect(&html)..];
    assert!(row.contains("active"));
    assert!(row.contains("2 days before next_visit at 09:00, 3 times every 1 day"));
    assert!(
        row.contains("SMS “{case.name}: your visit is on {case.next_visit}.” (+1 translation)"),
        "{row}"
    );
    assert!(row.contains("<td data-count=\"scheduled\">3</td>"), "{row}");
    assert!(row.contains("<td data-count=\"sent\">0</td>"), "{row}");
}

async fn errors_show_next_to_their_fields_with_the_input_kept(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let session = login(&app, &app.alpha_editor).await;
    let (_, html) = get_page(&app, &session, NEW).await;
    let csrf = hidden(&html, "csrf");
    let fields = [
        ("csrf", csrf.as_str()),
        ("name", ""),
        ("case_type", "case"),
        ("query", "study_arm = = B"),
        ("start", "date"),
        ("start.property", "next visit!"),
        ("start.offset_days", "-400"),
        ("time", "9am"),
        ("repeat.every_days", "2"),
        ("repeat.times", ""),
        ("content_kind", "sms"),
        ("content.text", "Hello {case.name}"),
        ("content.translations", "Karibu"),
        ("late_limit_hours", "1000"),
    ];
    for preview in [false, true] {
        let mut fields = fields.to_vec();
        if preview {
            fields.push(("preview", "1"));
        }
        let (status, _, html) = post(&app, &session, NEW, &fields).await;
        assert_eq!(status, 422, "{html}");
        assert!(html.contains("The reminder was not saved"), "{html}");
        assert!(error_at(&html, "name").contains("give the reminder a name"));
        assert!(!error_at(&html, "query").is_empty());
        assert!(error_at(&html, "start-property").contains("next visit!"));
        assert!(error_at(&html, "start-offset_days").contains("-365"));
        assert!(error_at(&html, "time").contains("HH:MM"));
        assert!(error_at(&html, "repeat-times").contains("whole number"));
        assert!(error_at(&html, "content-translations").contains("language code"));
        assert!(error_at(&html, "late_limit_hours").contains("720"));
        // The input is kept.
        assert!(html.contains("study_arm = = B</textarea>"), "{html}");
        assert!(html.contains("value=\"next visit!\""));
        assert!(html.contains("value=\"-400\""));
        assert!(html.contains("value=\"9am\""));
        assert!(html.contains("Hello {case.name}</textarea>"));
        assert!(!html.contains("id=\"preview\""), "no preview with errors");
    }
    // A survey: one must be chosen, and it must be the project's.
    let base = [
        ("csrf", csrf.as_str()),
        ("name", "Welcome"),
        ("case_type", "case"),
        ("start", "immediately"),
        ("content_kind", "survey"),
    ];
    let (status, _, html) = post(&app, &session, NEW, &base).await;
    assert_eq!(status, 422);
    assert!(error_at(&html, "content-survey").contains("choose the survey"));
    let mut other = base.to_vec();
    other.push(("content.survey", "999999"));
    let (status, _, html) = post(&app, &session, NEW, &other).await;
    assert_eq!(status, 422);
    assert!(error_at(&html, "content-survey").contains("choose one of the project"));
    assert!(
        html.contains("deleted survey #999999"),
        "the choice is kept"
    );
    // An SMS without text.
    let mut empty = base.to_vec();
    empty[4] = ("content_kind", "sms");
    let (status, _, html) = post(&app, &session, NEW, &empty).await;
    assert_eq!(status, 422);
    assert!(error_at(&html, "content-text").contains("write the message"));
    assert!(app
        .db
        .list_reminders(app.alpha.id)
        .await
        .unwrap()
        .is_empty());
}

async fn a_reminder_is_edited_deactivated_activated_and_deleted(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    new_case(&app, "Amina", Some("+256772000101"), Some(&kampala_day(5))).await;
    let session = login(&app, &app.alpha_editor).await;
    let (_, html) = get_page(&app, &session, NEW).await;
    let csrf = hidden(&html, "csrf");
    let (status, location, _) = post(&app, &session, NEW, &visit_rule(&csrf, "Visit")).await;
    assert_eq!(status, 303);
    let id = id_of(&location);
    let page = format!("{LIST}/{id}");

    // The edit form shows the rule as saved.
    let (status, html) = get_page(&app, &session, &format!("{page}/edit")).await;
    assert_eq!(status, 200);
    assert!(html.contains("Edit reminder Visit"));
    assert!(html.contains("value=\"next_visit\""));
    assert!(html.contains("value=\"-2\""));
    assert!(html.contains("sw: {case.name}: ziara {case.next_visit}.</textarea>"));
    assert!(
        html.contains("name=\"active\" id=\"active\" checked"),
        "{html}"
    );
    // Edited: an immediate start, once, a different name.
    let mut fields = visit_rule(&csrf, "Welcome");
    fields.retain(|(k, _)| !k.starts_with("repeat.") && *k != "start" && *k != "time");
    fields.push(("start", "immediately"));
    let (status, location, _) = post(&app, &session, &format!("{page}/edit"), &fields).await;
    assert_eq!(status, 303);
    assert!(
        location.starts_with(&format!("{page}?done=saved")),
        "{location}"
    );
    let (_, html) = get_page(&app, &session, &location).await;
    assert!(html.contains("The reminder was saved."));
    assert!(html.contains("when a case starts matching, once"), "{html}");
    assert_eq!(
        app.db.reminder(app.alpha.id, id).await.unwrap().rule.name,
        "Welcome"
    );

    // Deactivate: the page and the list say so; activate again.
    let (status, location, _) = post(
        &app,
        &session,
        &format!("{page}/deactivate"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 303);
    assert!(location.starts_with(&format!("{page}?done=deactivated")));
    assert!(!app.db.reminder(app.alpha.id, id).await.unwrap().rule.active);
    let (_, html) = get_page(&app, &session, &location).await;
    assert!(html.contains("id=\"activate-reminder\""));
    assert!(!html.contains("id=\"deactivate-reminder\""));
    assert!(html.contains("id=\"reminder-state\">inactive"), "{html}");
    assert!(html.contains("id=\"inactive-hint\""));
    let (_, html) = get_page(&app, &session, LIST).await;
    let row = &html[html.find(&format!("id=\"reminder-{id}\"")).unwrap()..];
    assert!(
        row.contains("<span class=\"badge\">inactive</span>"),
        "{row}"
    );
    let (status, _, _) = post(
        &app,
        &session,
        &format!("{page}/activate"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 303);
    let stored = app.db.reminder(app.alpha.id, id).await.unwrap();
    assert!(stored.rule.active);
    assert_eq!(stored.rule.name, "Welcome", "the rest unchanged");
    // A GET on a control's address leads to the page.
    let (status, _) = get_page(&app, &session, &format!("{page}/deactivate")).await;
    assert_eq!(status, 303);

    // Delete: to the list, which says so.
    let (status, location, _) = post(
        &app,
        &session,
        &format!("{page}/delete"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, 303);
    assert!(location.starts_with(&format!("{LIST}?done=deleted")));
    let (_, html) = get_page(&app, &session, &location).await;
    assert!(html.contains("The reminder Welcome was deleted."), "{html}");
    assert!(app
        .db
        .list_reminders(app.alpha.id)
        .await
        .unwrap()
        .is_empty());
    let (status, _) = get_page(&app, &session, &page).await;
    assert_eq!(status, 404);
}

async fn viewers_read_csrf_roles_and_projects_are_checked(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let editor = login(&app, &app.alpha_editor).await;
    let (_, html) = get_page(&app, &editor, NEW).await;
    let csrf = hidden(&html, "csrf");
    let (status, location, _) = post(&app, &editor, NEW, &visit_rule(&csrf, "Visit")).await;
    assert_eq!(status, 303);
    let id = id_of(&location);
    let page = format!("{LIST}/{id}");
    let controls = ["edit", "deactivate", "activate", "delete"];

    // No token, a wrong token: refused, nothing changed.
    let mut typed = visit_rule("nope", "Changed");
    let (status, _, _) = post(&app, &editor, NEW, &typed).await;
    assert_eq!(status, 403);
    typed.remove(0);
    let (status, _, _) = post(&app, &editor, NEW, &typed).await;
    assert_eq!(status, 403);
    for c in controls {
        let (status, _, _) = post(&app, &editor, &format!("{page}/{c}"), &typed).await;
        assert_eq!(status, 403, "{c}");
    }

    // A form past the size limit (1 MB) is refused whole.
    let long = "x".repeat(1_100_000);
    let mut huge = visit_rule(&csrf, "Huge");
    huge.push(("query", &long));
    let (status, _, _) = post(&app, &editor, NEW, &huge).await;
    assert_eq!(status, 413);

    // A viewer sees the list and the page without the controls, and cannot post.
    let viewer = login(&app, &app.alpha_viewer).await;
    let (status, html) = get_page(&app, &viewer, LIST).await;
    assert_eq!(status, 200);
    assert!(html.contains("Visit"));
    assert!(!html.contains("id=\"new-reminder\""));
    let (status, html) = get_page(&app, &viewer, &page).await;
    assert_eq!(status, 200);
    assert!(html.contains("2 days before next_visit at 09:00"));
    for control in [
        "id=\"edit-reminder\"",
        "id=\"deactivate-reminder\"",
        "id=\"delete-reminder\"",
        "/delete\"",
    ] {
        assert!(!html.contains(control), "{control}");
    }
    for path in [NEW.to_string(), format!("{page}/edit")] {
        let (status, _) = get_page(&app, &viewer, &path).await;
        assert_eq!(status, 403, "{path}");
    }
    let viewer_csrf = hidden(&html, "csrf");
    let mut as_viewer = visit_rule(&viewer_csrf, "Changed");
    let (status, _, _) = post(&app, &viewer, NEW, &as_viewer).await;
    assert_eq!(status, 403);
    as_viewer.push(("preview", "1"));
    let (status, _, _) = post(&app, &viewer, NEW, &as_viewer).await;
    assert_eq!(status, 403);
    for c in controls {
        let (status, _, _) = post(&app, &viewer, &format!("{page}/{c}"), &as_viewer).await;
        assert_eq!(status, 403, "{c}");
    }

    // Beta's admin: alpha's pages are not theirs; beta's path does not reach alpha's rule.
    let beta = login(&app, &app.beta_admin).await;
    let (status, _) = get_page(&app, &beta, &page).await;
    assert!(status == 403 || status == 404, "{status}");
    let beta_page = format!("/a/beta/messaging/reminders/{id}");
    for path in [beta_page.clone(), format!("{beta_page}/edit")] {
        let (status, _) = get_page(&app, &beta, &path).await;
        assert_eq!(status, 404, "{path}");
    }
    let beta_csrf = hidden(
        &get_page(&app, &beta, "/a/beta/messaging/reminders").await.1,
        "csrf",
    );
    let as_beta = visit_rule(&beta_csrf, "Changed");
    for c in controls {
        let (status, _, _) = post(&app, &beta, &format!("{beta_page}/{c}"), &as_beta).await;
        assert_eq!(status, 404, "{c}");
    }
    let stored = app.db.reminder(app.alpha.id, id).await.unwrap();
    assert_eq!(stored.rule.name, "Visit");
    assert!(stored.rule.active);
}
