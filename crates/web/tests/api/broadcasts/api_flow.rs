//! A preview counts, excludes and renders without writing; an immediate broadcast goes out
//! through the log gateway and reaches `completed`, with its counts, occurrence and messages.

use casecast_testkit::{Dialect, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use super::*;
use crate::{call, code};

casecast_testkit::on_both_engines!(
    a_preview_counts_and_renders_without_writing,
    an_immediate_broadcast_reaches_completed,
    broadcasts_are_listed_newest_first_in_pages
);

fn is_rfc3339(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| casecast_core::time::parse_rfc3339(s).is_some())
}

async fn a_preview_counts_and_renders_without_writing(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let a = audience(&app).await;
    let (status, p) = post(&app, "/broadcasts/preview", body("Notice", a.group)).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["recipients"], 2, "{p}");
    assert_eq!(
        p["excluded"],
        json!({"no_phone": 1, "opted_out": 1, "closed": 1, "deleted": 1, "duplicate_phone": 1, "no_gateway": 0}),
        "{p}"
    );
    assert_eq!(
        (p["segments"].as_i64(), p["encoding"].as_str()),
        (Some(2), Some("gsm7"))
    );
    assert_eq!(
        p["missing"],
        json!({"{case.ward}": 1}),
        "Okello has no ward"
    );
    assert_eq!(
        p["estimated_seconds"],
        Value::Null,
        "the log gateway has no rate limit"
    );
    let languages: Vec<(&str, i64)> = (p["languages"].as_array().unwrap().iter())
        .map(|l| {
            (
                l["language"].as_str().unwrap(),
                l["recipients"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(languages, vec![("*", 1), ("sw", 1)]);
    let samples = p["samples"].as_array().unwrap();
    let sample = |case: &str| samples.iter().find(|s| s["case_id"] == case).unwrap();
    assert_eq!(sample(&a.aber)["text"], "Habari Aber");
    assert_eq!(sample(&a.aber)["language"], "sw");
    assert_eq!(sample(&a.aber)["phone_number"], "+256772000001");
    assert_eq!(sample(&a.okello)["text"], "Hello Okello, ward ");
    assert_eq!(sample(&a.okello)["missing"], json!(["{case.ward}"]));

    // A chosen case counts once, even when a group also has it; a gateway of the project
    // may be named.
    let mut b = body("Notice", a.group);
    b["recipients"]["cases"] = json!([a.okello]);
    b["gateway_id"] = json!(a.gateway);
    let (status, again) = post(&app, "/broadcasts/preview", b).await;
    assert_eq!(
        (status, again["recipients"].as_i64()),
        (200, Some(2)),
        "{again}"
    );

    // A UCS-2 text is previewed as such.
    let mut b = body("Notice", a.group);
    b["content"] = json!({"sms": {"*": "Привет {case.name}"}});
    let (_, ucs2) = post(&app, "/broadcasts/preview", b).await;
    assert_eq!(ucs2["encoding"], "ucs2", "{ucs2}");

    // Nothing was written.
    assert_eq!(read(&app, "/broadcasts").await["broadcasts"], json!([]));
    let (messages, _) = app
        .db
        .list_messages(app.alpha.id, &Default::default(), 10, None)
        .await
        .unwrap();
    assert!(messages.is_empty());
}

async fn an_immediate_broadcast_reaches_completed(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let a = audience(&app).await;
    let (status, created) = post(&app, "/broadcasts", body("Side effect notice", a.group)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["name"], "Side effect notice");
    assert_eq!(
        created["recipients"],
        json!({"case_groups": [a.group], "cases": []})
    );
    assert_eq!(
        created["content"],
        json!({"sms": {"*": "Hello {case.name}, ward {case.ward}", "sw": "Habari {case.name}"}})
    );
    assert_eq!(created["schedule"], json!({"kind": "immediate"}));
    assert_eq!(created["gateway_id"], Value::Null);
    assert!(
        ["sending", "completed"].contains(&created["status"].as_str().unwrap()),
        "{created}"
    );
    assert!(is_rfc3339(&created["created_at"]) && is_rfc3339(&created["last_run_at"]));
    assert_eq!(created["next_run_at"], Value::Null, "nothing more is due");
    assert_eq!(created["occurrences"], 1);
    let counts = created["counts"].as_object().unwrap();
    let mut statuses: Vec<&str> = counts.keys().map(String::as_str).collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [
            "cancelled",
            "delivered",
            "expired",
            "failed",
            "queued",
            "sending",
            "sent"
        ]
    );

    let done = until_status(&app, id, "completed").await;
    assert_eq!(done["counts"]["sent"], 2, "{done}");
    assert_eq!(done["counts"]["queued"], 0);
    assert_eq!(done["error"], Value::Null);

    let path = format!("/broadcasts/{id}/messages");
    let messages = read(&app, &path).await;
    let list = messages["messages"].as_array().unwrap();
    let mut got: Vec<(&str, &str, &str)> = (list.iter())
        .map(|m| {
            assert_eq!(m["broadcast_id"], id);
            (
                m["case_id"].as_str().unwrap(),
                m["text"].as_str().unwrap(),
                m["status"].as_str().unwrap(),
            )
        })
        .collect();
    got.sort_unstable();
    let mut want = vec![
        (a.aber.as_str(), "Habari Aber", "sent"),
        (a.okello.as_str(), "Hello Okello, ward ", "sent"),
    ];
    want.sort_unstable();
    assert_eq!(got, want);
    assert_eq!(messages["next_cursor"], Value::Null);
    let page = read(&app, &format!("{path}?limit=1")).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = read(&app, &format!("{path}?limit=1&cursor={cursor}")).await;
    assert_eq!(rest["messages"].as_array().unwrap().len(), 1);
    assert_ne!(rest["messages"][0]["id"], page["messages"][0]["id"]);
    let sent = read(&app, &format!("{path}?status=sent")).await;
    assert_eq!(sent["messages"].as_array().unwrap().len(), 2);
    let queued = read(&app, &format!("{path}?status=queued")).await;
    assert_eq!(queued["messages"], json!([]));
    let (status, err) = call(
        &app,
        Method::GET,
        &app.api("alpha", &format!("{path}?status=lost")),
        Some(&app.alpha_viewer.token),
        None,
    )
    .await;
    assert_eq!((status, code(&err)), (422, "invalid"));
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("status:"));

    let occurrences = read(&app, &format!("/broadcasts/{id}/occurrences")).await;
    let [o] = occurrences["occurrences"].as_array().unwrap().as_slice() else {
        panic!("one occurrence: {occurrences}")
    };
    assert_eq!(occurrences["next_cursor"], Value::Null);
    assert_eq!(
        (o["index"].as_i64(), o["status"].as_str()),
        (Some(1), Some("done")),
        "{o}"
    );
    assert_eq!(
        (o["queued"].as_i64(), o["segments"].as_i64()),
        (Some(2), Some(2))
    );
    assert_eq!(o["excluded"]["opted_out"], 1);
    assert_eq!(o["excluded"]["duplicate_phone"], 1);
    assert_eq!(o["missing_values"], 1);
    assert_eq!(o["counts"]["sent"], 2);
    assert!(is_rfc3339(&o["due_at"]) && is_rfc3339(&o["finished_at"]));
    let of_occurrence = read(&app, &format!("{path}?occurrence_id={}", o["id"])).await;
    assert_eq!(of_occurrence["messages"].as_array().unwrap().len(), 2);
    let of_other = read(&app, &format!("{path}?occurrence_id=999999")).await;
    assert_eq!(of_other["messages"], json!([]));

    // The project-wide log knows them as this broadcast's too.
    let log = read(&app, &format!("/messages?broadcast_id={id}")).await;
    assert_eq!(log["messages"].as_array().unwrap().len(), 2);
}

async fn broadcasts_are_listed_newest_first_in_pages(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let a = audience(&app).await;
    let mut ids = Vec::new();
    for name in ["First", "Second", "Third"] {
        let mut b = body(name, a.group);
        b["schedule"] = weekly();
        let (status, got) = post(&app, "/broadcasts", b).await;
        assert_eq!(status, 201, "{got}");
        assert_eq!(got["status"], "scheduled");
        assert!(is_rfc3339(&got["next_run_at"]), "{got}");
        assert_eq!(
            (got["last_run_at"].clone(), got["occurrences"].as_i64()),
            (Value::Null, Some(0))
        );
        ids.push(got["id"].as_i64().unwrap());
    }
    let first = read(&app, "/broadcasts?limit=2").await;
    let names: Vec<&str> = (first["broadcasts"].as_array().unwrap().iter())
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Third", "Second"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = read(&app, &format!("/broadcasts?limit=2&cursor={cursor}")).await;
    assert_eq!(second["broadcasts"][0]["id"], ids[0]);
    assert_eq!(second["next_cursor"], Value::Null);
    for bad in ["?limit=0", "?limit=501", "?cursor=abc"] {
        let (status, _) = call(
            &app,
            Method::GET,
            &app.api("alpha", &format!("/broadcasts{bad}")),
            Some(&app.alpha_viewer.token),
            None,
        )
        .await;
        assert_eq!(status, 422, "{bad}");
    }
    let one = read(&app, &format!("/broadcasts/{}", ids[1])).await;
    assert_eq!(one["schedule"], weekly());
    assert_eq!(
        read(&app, &format!("/broadcasts/{}/occurrences", ids[1])).await["occurrences"],
        json!([])
    );
    assert_eq!(
        read(&app, &format!("/broadcasts/{}/messages", ids[1])).await["messages"],
        json!([])
    );
}
