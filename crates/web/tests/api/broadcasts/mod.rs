//! `/broadcasts` and the broadcast pages: previews that count and render, immediate broadcasts
//! that reach `completed` through a log gateway, schedules paused, resumed and cancelled,
//! 422s naming the field, viewers who only read, and other projects' broadcasts not found.

mod api_errors;
mod api_flow;
mod controls;
mod pages;
mod surveys;

use casecast_testkit::TestApp;
use reqwest::Method;
use serde_json::{json, Value};

use crate::call;
use crate::case_groups::{alpha_case, change, new_group};
use crate::gateways::add_gateway;

/// Alpha's cases and group for a broadcast.
pub struct Audience {
    pub group: i64,
    pub gateway: i64,
    /// Speaks Swahili, has the `ward` property.
    pub aber: String,
    /// No language code, no `ward`.
    pub okello: String,
}

/// A log gateway and a group "Study" of seven cases: two who get a message (one in Swahili),
/// and one each without a phone, opted out, closed, deleted, and sharing Aber's number.
pub async fn audience(app: &TestApp) -> Audience {
    let gateway = add_gateway(app, json!({"name": "Log", "kind": "log"})).await["id"]
        .as_i64()
        .unwrap();
    let aber = alpha_case(
        app,
        json!({"name": "Aber", "phone_number": "+256772000001", "language_code": "sw",
            "properties": {"ward": "Laroo"}}),
    )
    .await;
    let okello = alpha_case(
        app,
        json!({"name": "Okello", "phone_number": "+256772000002"}),
    )
    .await;
    let nobody = alpha_case(app, json!({"name": "No phone"})).await;
    let opted = alpha_case(
        app,
        json!({"name": "Opted", "phone_number": "+256772000003"}),
    )
    .await;
    let closed = alpha_case(
        app,
        json!({"name": "Closed", "phone_number": "+256772000004"}),
    )
    .await;
    let deleted = alpha_case(
        app,
        json!({"name": "Gone", "phone_number": "+256772000005"}),
    )
    .await;
    let twin = alpha_case(
        app,
        json!({"name": "Twin", "phone_number": "+256772000001"}),
    )
    .await;
    let group = new_group(app, "Study").await;
    change(
        app,
        group,
        false,
        &[&aber, &okello, &nobody, &opted, &closed, &deleted, &twin],
    )
    .await;
    let admin = Some(app.alpha_admin.token.as_str());
    let case = |id: &str| app.api("alpha", &format!("/cases/{id}"));
    assert_eq!(
        call(
            app,
            Method::POST,
            &format!("{}/close", case(&closed)),
            admin,
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(app, Method::DELETE, &case(&deleted), admin, None)
            .await
            .0,
        204
    );
    let (status, _) = call(
        app,
        Method::POST,
        &app.api("alpha", "/opt-outs"),
        admin,
        Some(json!({"phone_number": "+256772000003"})),
    )
    .await;
    assert_eq!(status, 201);
    Audience {
        group,
        gateway,
        aber,
        okello,
    }
}

/// A broadcast body to `group`, sent now, with a Swahili translation.
pub fn body(name: &str, group: i64) -> Value {
    json!({
        "name": name,
        "recipients": {"case_groups": [group], "cases": []},
        "content": {"sms": {"*": "Hello {case.name}, ward {case.ward}", "sw": "Habari {case.name}"}},
        "schedule": {"kind": "immediate"},
    })
}

/// A weekly schedule starting next year: nothing fires during a test.
pub fn weekly() -> Value {
    let next_year = jiff::Zoned::now().year() + 1;
    json!({"kind": "weekly", "start_date": format!("{next_year}-01-05"), "time": "09:00",
        "every": 1, "weekdays": ["mon", "thu"], "days_of_month": [], "stop": {"after_occurrences": 10}})
}

/// POSTs a broadcast body as alpha's editor to `path` (`/broadcasts` or `/broadcasts/preview`).
pub async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    call(
        app,
        Method::POST,
        &app.api("alpha", path),
        Some(&app.alpha_editor.token),
        Some(body),
    )
    .await
}

/// GETs an alpha API path as alpha's viewer; asserts 200.
pub async fn read(app: &TestApp, path: &str) -> Value {
    let (status, got) = call(
        app,
        Method::GET,
        &app.api("alpha", path),
        Some(&app.alpha_viewer.token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{path}: {got}");
    got
}

/// Waits until broadcast `id` has status `status`; returns it.
pub async fn until_status(app: &TestApp, id: i64, status: &str) -> Value {
    casecast_testkit::eventually(
        &format!("broadcast {id} reaches {status}"),
        std::time::Duration::from_secs(30),
        || async {
            let b = read(app, &format!("/broadcasts/{id}")).await;
            (b["status"] == status).then_some(b)
        },
    )
    .await
}
