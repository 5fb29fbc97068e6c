//! The message log page: newest first, keyset pages, filters in the project's time zone, bad
//! filters named.

use casecast_testkit::Workflows;
use casecast_testkit::{Dialect, TestApp};
use serde_json::json;

use super::*;
use crate::pages::login;

casecast_testkit::on_both_engines!(message_log_filters_and_pages);

async fn message_log_filters_and_pages(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    log_gateway(&app, app.alpha.id, "Log").await;
    let one = new_case(
        &app,
        json!({"name": "One", "phone_number": "+256772000001"}),
    )
    .await;
    let two = new_case(
        &app,
        json!({"name": "Two", "phone_number": "+256772000002"}),
    )
    .await;
    for i in 0..52 {
        app.db
            .send_to_case(&app.alpha, &one, &format!("to one #{i}"), None, None)
            .await
            .unwrap();
    }
    let last = app
        .db
        .send_to_case(&app.alpha, &two, "to two", None, None)
        .await
        .unwrap();
    let viewer = login(&app, &app.alpha_viewer).await;
    let rows = |html: &str| html.matches("/a/alpha/messaging/messages/").count();

    let first = page(&app, &viewer, "/a/alpha/messaging/messages").await;
    assert_eq!(rows(&first), 50);
    assert!(
        first.find("to two").unwrap() < first.find("to one #51").unwrap(),
        "newest first"
    );
    let older = hidden_href(&first, "older");
    let second = page(&app, &viewer, &older).await;
    assert_eq!(rows(&second), 3);
    assert!(second.contains("to one #0") && !second.contains("id=\"older\""));

    // Filters: case, phone (as people write it), direction, status, dates in the zone.
    let by_case = page(
        &app,
        &viewer,
        &format!("/a/alpha/messaging/messages?case_id={two}"),
    )
    .await;
    assert_eq!(rows(&by_case), 1);
    assert!(by_case.contains(&format!("/a/alpha/messaging/messages/{}", last.id)));
    let by_phone = page(
        &app,
        &viewer,
        "/a/alpha/messaging/messages?phone=0772+000+002",
    )
    .await;
    assert_eq!(rows(&by_phone), 1);
    let inbound = page(
        &app,
        &viewer,
        "/a/alpha/messaging/messages?direction=inbound",
    )
    .await;
    assert!(inbound.contains("id=\"no-messages\""));
    let cancelled = page(
        &app,
        &viewer,
        "/a/alpha/messaging/messages?status=cancelled",
    )
    .await;
    assert!(cancelled.contains("id=\"no-messages\""));
    let today = jiff::Timestamp::now().to_zoned(app.alpha.zone()).date();
    let day = |n: i64| {
        today
            .checked_add(jiff::Span::new().days(n))
            .unwrap()
            .to_string()
    };
    let around = page(
        &app,
        &viewer,
        &format!(
            "/a/alpha/messaging/messages?case_id={two}&from={}&to={}",
            day(-1),
            day(1)
        ),
    )
    .await;
    assert_eq!(rows(&around), 1);
    let later = page(
        &app,
        &viewer,
        &format!("/a/alpha/messaging/messages?from={}", day(1)),
    )
    .await;
    assert!(later.contains("id=\"no-messages\""));
    let earlier = page(
        &app,
        &viewer,
        &format!("/a/alpha/messaging/messages?to={}", day(-1)),
    )
    .await;
    assert!(earlier.contains("id=\"no-messages\""));
    // The pager keeps the filters.
    let by_one = page(
        &app,
        &viewer,
        &format!("/a/alpha/messaging/messages?case_id={one}"),
    )
    .await;
    assert!(hidden_href(&by_one, "older").contains(&format!("case_id={one}&")));

    // Bad filters: 422 naming the field, the typed value shown back escaped.
    for (query, expected) in [
        ("phone=%3Cb%3E12", "Phone number:"),
        (
            "direction=sideways",
            "Direction: choose outbound or inbound",
        ),
        ("status=lost", "Status: choose one of"),
        ("from=2026-02-30", "From (date): must be a date"),
    ] {
        let (status, html) = get(
            &app,
            &viewer,
            &format!("/a/alpha/messaging/messages?{query}"),
        )
        .await;
        assert_eq!(status, 422, "{query}");
        assert!(html.contains(expected), "{query}: {html}");
        assert!(!html.contains("<b>12"), "{query}");
    }
}

/// The `href` of the element with `id`, `&amp;` read as `&`.
fn hidden_href(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let start = at + html[at..].find("href=\"").unwrap() + 6;
    html[start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&")
}
