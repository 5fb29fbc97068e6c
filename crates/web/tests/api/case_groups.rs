//! `/case-groups`: names, adding and removing by every kind of identifier and every outcome,
//! the member list, deleting groups, exports and the example sheet.

use casecast_core::sheet::{read_table, Table};
use casecast_testkit::{Dialect, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::{call, code};

casecast_testkit::on_both_engines!(
    group_names_and_lifecycle,
    add_by_every_identifier_and_outcome,
    identifier_list_limits,
    remove_outcomes,
    member_list_pages_and_search,
    deleting_a_group_keeps_its_cases,
    exports_hold_exactly_the_members,
    example_sheet_reads_back_as_text,
    ids_that_are_not_numbers_are_404
);

/// Creates a case in `project` with `token`; returns its case ID.
pub async fn new_case(app: &TestApp, project: &str, token: &str, body: Value) -> String {
    let (status, case) = call(
        app,
        Method::POST,
        &app.api(project, "/cases"),
        Some(token),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{case}");
    case["case_id"].as_str().unwrap().to_string()
}

/// Creates an alpha case as alpha's admin; returns its case ID.
pub async fn alpha_case(app: &TestApp, body: Value) -> String {
    new_case(app, "alpha", &app.alpha_admin.token, body).await
}

/// Creates a case group of alpha; returns its id.
pub async fn new_group(app: &TestApp, name: &str) -> i64 {
    let (status, group) = call(
        app,
        Method::POST,
        &app.api("alpha", "/case-groups"),
        Some(&app.alpha_editor.token),
        Some(json!({ "name": name })),
    )
    .await;
    assert_eq!(status, 201, "{group}");
    group["id"].as_i64().unwrap()
}

/// Adds (`remove` false) or removes identifiers from an alpha group; asserts 200.
pub async fn change(app: &TestApp, group: i64, remove: bool, identifiers: &[&str]) -> Value {
    let path = if remove { "/cases/remove" } else { "/cases" };
    let (status, body) = call(
        app,
        Method::POST,
        &app.api("alpha", &format!("/case-groups/{group}{path}")),
        Some(&app.alpha_editor.token),
        Some(json!({ "identifiers": identifiers })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The outcomes of a change, in order.
pub fn outcomes(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_string())
        .collect()
}

/// Every member's case ID of an alpha group, following cursors.
pub async fn member_ids(app: &TestApp, group: i64) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = call(
            app,
            Method::GET,
            &app.api(
                "alpha",
                &format!("/case-groups/{group}/cases?limit=500&cursor={cursor}"),
            ),
            Some(&app.alpha_viewer.token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        for c in page["cases"].as_array().unwrap() {
            ids.push(c["case_id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => return ids,
        }
    }
}

/// An alpha group as the API shows it.
pub async fn group(app: &TestApp, group: i64) -> Value {
    let (status, body) = call(
        app,
        Method::GET,
        &app.api("alpha", &format!("/case-groups/{group}")),
        Some(&app.alpha_viewer.token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Downloads a file; asserts 200 and the content type's start.
pub async fn download(app: &TestApp, url: &str, token: &str, content_type: &str) -> Vec<u8> {
    let resp = app.http.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    let got = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(got.starts_with(content_type), "{url}: {got}");
    let disposition = resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    resp.bytes().await.unwrap().to_vec()
}

/// Reads a downloaded sheet back.
pub fn sheet(bytes: &[u8], name: &str) -> Table {
    read_table(bytes, name, &Default::default()).unwrap()
}

async fn group_names_and_lifecycle(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let token = Some(app.alpha_editor.token.as_str());
    let url = app.api("alpha", "/case-groups");
    let (status, created) = call(
        &app,
        Method::POST,
        &url,
        token,
        Some(json!({"name": "  Study A "})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "Study A", "the name is trimmed");
    assert_eq!(created["case_count"], 0);
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));
    let id = created["id"].as_i64().unwrap();

    let (status, _) = call(
        &app,
        Method::POST,
        &url,
        token,
        Some(json!({"name": "Étude Ünï"})),
    )
    .await;
    assert_eq!(status, 201);
    for taken in ["Study A", "study a", "  STUDY A  ", "ÉTUDE üNÏ"] {
        let (status, err) = call(
            &app,
            Method::POST,
            &url,
            token,
            Some(json!({"name": taken})),
        )
        .await;
        assert_eq!((status, code(&err)), (409, "name_taken"), "{taken}: {err}");
    }
    for bad in [
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "n".repeat(256)}),
        json!({"name": "tab\there"}),
        json!({}),
        json!({"name": "X", "colour": "red"}),
    ] {
        let (status, err) = call(&app, Method::POST, &url, token, Some(bad.clone())).await;
        assert_eq!(status, 422, "{bad}: {err}");
    }
    let long = "n".repeat(255);
    let (status, _) = call(&app, Method::POST, &url, token, Some(json!({"name": long}))).await;
    assert_eq!(status, 201, "255 characters are allowed");
    let html = "<b>Mothers</b> & \"babies\" <script>x()</script>";
    let (status, made) = call(&app, Method::POST, &url, token, Some(json!({"name": html}))).await;
    assert_eq!((status, made["name"].as_str()), (201, Some(html)));
    let html_id = made["id"].as_i64().unwrap();
    assert_eq!(
        group(&app, html_id).await["name"],
        html,
        "HTML is returned as written"
    );

    let (status, list) = call(&app, Method::GET, &url, Some(&app.alpha_viewer.token), None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["case_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Study A", "Étude Ünï", long.as_str(), html]);
    let (_, first) = call(&app, Method::GET, &format!("{url}?limit=2"), token, None).await;
    assert_eq!(first["case_groups"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_string();
    let (_, second) = call(
        &app,
        Method::GET,
        &format!("{url}?limit=2&cursor={cursor}"),
        token,
        None,
    )
    .await;
    assert_eq!(second["case_groups"][1]["name"], html);
    assert_eq!(second["next_cursor"], Value::Null);

    let item = app.api("alpha", &format!("/case-groups/{id}"));
    let (status, renamed) = call(
        &app,
        Method::PATCH,
        &item,
        token,
        Some(json!({"name": " Study B"})),
    )
    .await;
    assert_eq!((status, renamed["name"].as_str()), (200, Some("Study B")));
    assert_eq!(renamed["id"], id);
    let (status, _) = call(
        &app,
        Method::PATCH,
        &item,
        token,
        Some(json!({"name": "STUDY B"})),
    )
    .await;
    assert_eq!(status, 200, "a group may change the case of its own name");
    let (status, err) = call(
        &app,
        Method::PATCH,
        &item,
        token,
        Some(json!({"name": html.to_uppercase()})),
    )
    .await;
    assert_eq!((status, code(&err)), (409, "name_taken"), "{err}");
    let (status, _) = call(
        &app,
        Method::PATCH,
        &item,
        token,
        Some(json!({"name": " "})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        group(&app, id).await["name"],
        "STUDY B",
        "unchanged by refusals"
    );
    let (status, _) = call(
        &app,
        Method::PATCH,
        &app.api("alpha", "/case-groups/999999"),
        token,
        Some(json!({"name": "Nope"})),
    )
    .await;
    assert_eq!(status, 404);

    let (status, _) = call(&app, Method::DELETE, &item, token, None).await;
    assert_eq!(status, 204);
    assert_eq!(call(&app, Method::GET, &item, token, None).await.0, 404);
    assert_eq!(call(&app, Method::DELETE, &item, token, None).await.0, 404);
    let (status, _) = call(
        &app,
        Method::POST,
        &url,
        token,
        Some(json!({"name": "study b"})),
    )
    .await;
    assert_eq!(status, 201, "a deleted group's name is free again");
}

async fn add_by_every_identifier_and_outcome(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let a = alpha_case(&app, json!({"name": "Aber"})).await;
    let b = alpha_case(&app, json!({"name": "Okello", "external_id": "GUL-0002"})).await;
    let p = alpha_case(
        &app,
        json!({"name": "Auma", "phone_number": "+256772123456"}),
    )
    .await;
    let twin1 = alpha_case(
        &app,
        json!({"name": "Twin one", "phone_number": "0772 999 001"}),
    )
    .await;
    let twin2 = alpha_case(
        &app,
        json!({"name": "Twin two", "phone_number": "+256772999001"}),
    )
    .await;
    let gone = alpha_case(&app, json!({"name": "Gone", "external_id": "GUL-GONE"})).await;
    let closed = alpha_case(&app, json!({"name": "Shut", "external_id": "GUL-CLOSED"})).await;
    let admin = Some(app.alpha_admin.token.as_str());
    let (status, _) = call(
        &app,
        Method::DELETE,
        &app.api("alpha", &format!("/cases/{gone}")),
        admin,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        &app,
        Method::POST,
        &app.api("alpha", &format!("/cases/{closed}/close")),
        admin,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let g = new_group(&app, "Study").await;

    let body = change(
        &app,
        g,
        false,
        &[
            &a,
            " GUL-0002 ",
            "+256 772 123 456",
            "",
            "   ",
            "NOBODY-1",
            "bad\u{7}id",
            "0772999001",
            "GUL-GONE",
            "GUL-CLOSED",
            &a,
            "0772 123456",
        ],
    )
    .await;
    let results = body["results"].as_array().unwrap();
    let expect: [(&str, &str, Option<&str>); 12] = [
        (&a, "added", Some(&a)),
        ("GUL-0002", "added", Some(&b)),
        ("+256 772 123 456", "added", Some(&p)),
        ("", "blank", None),
        ("", "blank", None),
        ("NOBODY-1", "not_found", None),
        ("bad\u{7}id", "invalid", None),
        ("0772999001", "ambiguous", None),
        ("GUL-GONE", "deleted", Some(&gone)),
        ("GUL-CLOSED", "added", Some(&closed)),
        (&a, "duplicate_in_file", Some(&a)),
        ("0772 123456", "duplicate_in_file", Some(&p)),
    ];
    assert_eq!(results.len(), expect.len(), "{body}");
    for (i, (r, (identifier, outcome, case_id))) in results.iter().zip(expect).enumerate() {
        assert_eq!(r["identifier"], identifier, "result {i}: {r}");
        assert_eq!(r["outcome"], outcome, "result {i}: {r}");
        if outcome != "deleted" {
            assert_eq!(r["case_id"].as_str(), case_id, "result {i}: {r}");
        }
        assert!(r["message"].is_string(), "result {i}: {r}");
    }
    assert_eq!(results[0]["message"], "", "a plain add has no message");
    for i in [5, 6, 8] {
        assert!(
            !results[i]["message"].as_str().unwrap().is_empty(),
            "{}",
            results[i]
        );
    }
    assert!(results[8]["message"].as_str().unwrap().contains("deleted"));
    let ambiguous = results[7]["message"].as_str().unwrap();
    assert!(
        ambiguous.contains(&twin1) && ambiguous.contains(&twin2),
        "the message names both cases: {ambiguous}"
    );
    let closed_message = results[9]["message"].as_str().unwrap();
    assert!(closed_message.contains("closed"), "{closed_message}");
    assert_eq!(
        body["counts"],
        json!({"added": 4, "blank": 2, "not_found": 1, "invalid": 1, "ambiguous": 1,
               "deleted": 1, "duplicate_in_file": 2})
    );
    assert_eq!(group(&app, g).await["case_count"], 4);
    let mut members = member_ids(&app, g).await;
    members.sort();
    let mut expected = vec![a.clone(), b.clone(), p.clone(), closed.clone()];
    expected.sort();
    assert_eq!(members, expected);

    // Every phone spelling names the same case.
    let again = change(&app, g, false, &[&a, "256772123456", "GUL-0002"]).await;
    assert_eq!(
        outcomes(&again),
        ["already_in_group", "already_in_group", "already_in_group"]
    );
    assert_eq!(again["results"][1]["case_id"].as_str(), Some(p.as_str()));
    assert_eq!(again["counts"], json!({"already_in_group": 3}));
    let removed = change(&app, g, true, &["0772 123456"]).await;
    assert_eq!(outcomes(&removed), ["removed"]);
    assert_eq!(removed["results"][0]["case_id"].as_str(), Some(p.as_str()));
    let added = change(&app, g, false, &["256772123456"]).await;
    assert_eq!(outcomes(&added), ["added"]);
    assert_eq!(added["results"][0]["case_id"].as_str(), Some(p.as_str()));
    let added = change(&app, g, true, &["+256 772 123 456"]).await;
    assert_eq!(outcomes(&added), ["removed"]);
    let added = change(&app, g, false, &["0772 123456"]).await;
    assert_eq!(outcomes(&added), ["added"]);
    assert_eq!(added["results"][0]["case_id"].as_str(), Some(p.as_str()));
    assert_eq!(group(&app, g).await["case_count"], 4);

    // Adding to a group that does not exist changes nothing anywhere.
    let (status, _) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/case-groups/999999/cases"),
        Some(&app.alpha_editor.token),
        Some(json!({"identifiers": [a]})),
    )
    .await;
    assert_eq!(status, 404);
}

async fn identifier_list_limits(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let a = alpha_case(&app, json!({"name": "Aber"})).await;
    let g = new_group(&app, "Study").await;
    let token = Some(app.alpha_editor.token.as_str());
    for path in ["/cases", "/cases/remove"] {
        let url = app.api("alpha", &format!("/case-groups/{g}{path}"));
        let mut many: Vec<String> = (0..1000).map(|i| format!("X-{i}")).collect();
        many[999] = a.clone();
        let (status, body) = call(
            &app,
            Method::POST,
            &url,
            token,
            Some(json!({"identifiers": many})),
        )
        .await;
        assert_eq!(status, 200, "1000 identifiers are allowed: {body}");
        assert_eq!(body["results"].as_array().unwrap().len(), 1000);
        assert_eq!(body["counts"]["not_found"], 999);
        many.push("X-1000".into());
        for bad in [
            json!({"identifiers": many}),
            json!({"identifiers": []}),
            json!({"identifiers": "GUL-1"}),
            json!({"identifiers": [5]}),
            json!({}),
            json!({"identifiers": ["A"], "group": 1}),
            json!({"identifiers": null}),
        ] {
            let (status, err) = call(&app, Method::POST, &url, token, Some(bad.clone())).await;
            let shown = bad.to_string();
            assert_eq!(
                status,
                422,
                "{path} {}: {err}",
                &shown[..shown.len().min(80)]
            );
        }
        let (status, err) = call(
            &app,
            Method::POST,
            &url,
            token,
            Some(json!({"identifiers": many})),
        )
        .await;
        assert!(
            err["error"]["message"].as_str().unwrap().contains("1000"),
            "{status} {err}"
        );
    }
    let long = "x".repeat(300);
    let body = change(&app, g, false, &[&long]).await;
    assert_eq!(outcomes(&body), ["invalid"]);
    let message = body["results"][0]["message"].as_str().unwrap();
    assert!(message.contains("255"), "{message}");
    // A NUL (which PostgreSQL refuses in text) is just an invalid identifier.
    for nul in ["a\u{0}b", "\u{0}"] {
        let body = change(&app, g, false, &[nul]).await;
        assert_eq!(outcomes(&body), ["invalid"], "{body}");
        assert_eq!(body["results"][0]["identifier"], nul);
    }
    // The add of 1000 then the remove of 1000: the case went in and out again.
    assert!(member_ids(&app, g).await.is_empty());
}

async fn remove_outcomes(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let a = alpha_case(&app, json!({"name": "Aber", "external_id": "GUL-0001"})).await;
    let b = alpha_case(
        &app,
        json!({"name": "Okello", "phone_number": "+256772000002"}),
    )
    .await;
    let outsider = alpha_case(&app, json!({"name": "Outsider", "external_id": "OUT-1"})).await;
    let closed = alpha_case(&app, json!({"name": "Shut", "external_id": "GUL-SHUT"})).await;
    let gone = alpha_case(&app, json!({"name": "Gone", "external_id": "GUL-GONE"})).await;
    let g = new_group(&app, "Study").await;
    let added = change(&app, g, false, &[&a, &b, &closed, &gone]).await;
    assert_eq!(added["counts"], json!({"added": 4}));
    let admin = Some(app.alpha_admin.token.as_str());
    call(
        &app,
        Method::POST,
        &app.api("alpha", &format!("/cases/{closed}/close")),
        admin,
        None,
    )
    .await;
    call(
        &app,
        Method::DELETE,
        &app.api("alpha", &format!("/cases/{gone}")),
        admin,
        None,
    )
    .await;
    assert_eq!(
        group(&app, g).await["case_count"],
        3,
        "deleted cases do not count"
    );

    let body = change(
        &app,
        g,
        true,
        &[
            "GUL-0001",
            "0772 000 002",
            "OUT-1",
            "GUL-SHUT",
            &a,
            "NOBODY",
            "GUL-GONE",
            "",
            "bad\u{1}",
        ],
    )
    .await;
    assert_eq!(
        outcomes(&body),
        [
            "removed",
            "removed",
            "not_in_group",
            "removed",
            "duplicate_in_file",
            "not_found",
            "deleted",
            "blank",
            "invalid"
        ],
        "{body}"
    );
    assert_eq!(body["results"][0]["case_id"].as_str(), Some(a.as_str()));
    assert_eq!(body["results"][1]["case_id"].as_str(), Some(b.as_str()));
    assert_eq!(
        body["results"][2]["case_id"].as_str(),
        Some(outsider.as_str())
    );
    assert_eq!(
        body["counts"],
        json!({"removed": 3, "not_in_group": 1, "duplicate_in_file": 1, "not_found": 1,
               "deleted": 1, "blank": 1, "invalid": 1})
    );
    assert!(member_ids(&app, g).await.is_empty());
    let again = change(&app, g, true, &[&a]).await;
    assert_eq!(outcomes(&again), ["not_in_group"]);

    // One member at a time.
    change(&app, g, false, &[&a, &b]).await;
    let token = Some(app.alpha_editor.token.as_str());
    let one = |case: &str| app.api("alpha", &format!("/case-groups/{g}/cases/{case}"));
    assert_eq!(
        call(&app, Method::DELETE, &one(&a), token, None).await.0,
        204
    );
    let (status, err) = call(&app, Method::DELETE, &one(&a), token, None).await;
    assert_eq!(
        (status, code(&err)),
        (404, "not_found"),
        "no longer a member"
    );
    assert_eq!(
        call(&app, Method::DELETE, &one(&outsider), token, None)
            .await
            .0,
        404
    );
    assert_eq!(
        call(&app, Method::DELETE, &one("no-such-case"), token, None)
            .await
            .0,
        404
    );
    assert_eq!(member_ids(&app, g).await, std::slice::from_ref(&b));
    let (status, _) = call(
        &app,
        Method::DELETE,
        &app.api("alpha", &format!("/case-groups/999999/cases/{b}")),
        token,
        None,
    )
    .await;
    assert_eq!(status, 404);
    // The case itself is untouched by leaving the group.
    let (status, case) = call(
        &app,
        Method::GET,
        &app.api("alpha", &format!("/cases/{a}")),
        token,
        None,
    )
    .await;
    assert_eq!((status, case["deleted"].as_bool()), (200, Some(false)));
}

async fn member_list_pages_and_search(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(
            alpha_case(
                &app,
                json!({"name": format!("Member {i:02}"), "external_id": format!("M-{i}"),
                       "phone_number": format!("+25677200{i:04}")}),
            )
            .await,
        );
    }
    alpha_case(
        &app,
        json!({"name": "Member 99", "external_id": "M-99", "phone_number": "+256772000099"}),
    )
    .await;
    let g = new_group(&app, "Study").await;
    let externals: Vec<String> = (0..12).map(|i| format!("M-{i}")).collect();
    let refs: Vec<&str> = externals.iter().map(String::as_str).collect();
    assert_eq!(
        change(&app, g, false, &refs).await["counts"],
        json!({"added": 12})
    );
    let admin = Some(app.alpha_admin.token.as_str());
    call(
        &app,
        Method::DELETE,
        &app.api("alpha", &format!("/cases/{}", ids[3])),
        admin,
        None,
    )
    .await;
    call(
        &app,
        Method::POST,
        &app.api("alpha", &format!("/cases/{}/close", ids[4])),
        admin,
        None,
    )
    .await;

    let list = |query: String| {
        let app = &app;
        async move {
            let mut names = Vec::new();
            let mut closed = Vec::new();
            let mut cursor = String::new();
            let mut pages = 0;
            loop {
                let (status, page) = call(
                    app,
                    Method::GET,
                    &app.api(
                        "alpha",
                        &format!("/case-groups/{g}/cases?{query}&cursor={cursor}"),
                    ),
                    Some(&app.alpha_viewer.token),
                    None,
                )
                .await;
                assert_eq!(status, 200, "{query}: {page}");
                pages += 1;
                for c in page["cases"].as_array().unwrap() {
                    let name = c["name"].as_str().unwrap().to_string();
                    if c["closed"].as_bool().unwrap() {
                        closed.push(name.clone());
                    }
                    names.push(name);
                }
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = c.to_string(),
                    None => return (names, closed, pages),
                }
            }
        }
    };
    let (names, closed, pages) = list("limit=5".into()).await;
    let expected: Vec<String> = (0..12)
        .filter(|i| *i != 3)
        .map(|i| format!("Member {i:02}"))
        .collect();
    assert_eq!(names, expected, "every live member once, in order");
    assert_eq!(closed, ["Member 04"], "closed members are listed, marked");
    assert_eq!(pages, 3);
    assert_eq!(group(&app, g).await["case_count"], 11);

    let (names, _, _) = list("q=member&limit=4".into()).await;
    assert_eq!(names, expected, "a search pages too");
    for (q, want) in [
        ("ber%2007", vec!["Member 07"]),
        ("M-8", vec!["Member 08"]),
        ("0772%20000%20009", vec!["Member 09"]),
        ("%2B256772000010", vec!["Member 10"]),
        (ids[11].as_str(), vec!["Member 11"]),
        ("Member%2099", vec![]),
        ("M-99", vec![]),
        ("Member%2003", vec![]),
        ("100%25", vec![]),
    ] {
        let (names, _, _) = list(format!("q={q}")).await;
        assert_eq!(names, want, "q={q}");
    }
    for bad in ["limit=0", "limit=501", "cursor=xyz", "limit=abc"] {
        let (status, err) = call(
            &app,
            Method::GET,
            &app.api("alpha", &format!("/case-groups/{g}/cases?{bad}")),
            Some(&app.alpha_viewer.token),
            None,
        )
        .await;
        assert_eq!((status, code(&err)), (422, "invalid"), "{bad}: {err}");
    }
    let (status, _) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/case-groups/999999/cases"),
        Some(&app.alpha_viewer.token),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

async fn deleting_a_group_keeps_its_cases(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let a = alpha_case(&app, json!({"name": "Aber", "external_id": "GUL-0001"})).await;
    let b = alpha_case(&app, json!({"name": "Okello"})).await;
    let first = new_group(&app, "First").await;
    let second = new_group(&app, "Second").await;
    change(&app, first, false, &[&a, &b]).await;
    change(&app, second, false, &[&a]).await;
    let token = Some(app.alpha_editor.token.as_str());
    let url = app.api("alpha", &format!("/case-groups/{first}"));
    assert_eq!(call(&app, Method::DELETE, &url, token, None).await.0, 204);
    assert_eq!(call(&app, Method::GET, &url, token, None).await.0, 404);
    assert_eq!(
        call(&app, Method::GET, &format!("{url}/cases"), token, None)
            .await
            .0,
        404
    );
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("{url}/cases"),
        token,
        Some(json!({"identifiers": [a]})),
    )
    .await;
    assert_eq!(status, 404, "no adding to a deleted group");
    for case in [&a, &b] {
        let (status, got) = call(
            &app,
            Method::GET,
            &app.api("alpha", &format!("/cases/{case}")),
            token,
            None,
        )
        .await;
        assert_eq!(
            (status, got["deleted"].as_bool()),
            (200, Some(false)),
            "{got}"
        );
    }
    assert_eq!(member_ids(&app, second).await, [a]);
    assert_eq!(group(&app, second).await["case_count"], 1);
    let (_, list) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/case-groups"),
        token,
        None,
    )
    .await;
    let ids: Vec<i64> = list["case_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [second]);
    // A new group starts empty even when it is given the old name.
    let again = new_group(&app, "First").await;
    assert!(member_ids(&app, again).await.is_empty());
}

async fn exports_hold_exactly_the_members(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let a = alpha_case(
        &app,
        json!({"case_id": "00123", "name": "Zoë Aber", "external_id": "007",
               "phone_number": "0772 123456", "language_code": "ach", "owner_id": "cm-1"}),
    )
    .await;
    let b = alpha_case(
        &app,
        json!({"name": "Okello, \"Jr\"", "external_id": "GUL-2"}),
    )
    .await;
    let gone = alpha_case(&app, json!({"name": "Gone", "external_id": "GUL-3"})).await;
    let left = alpha_case(&app, json!({"name": "Left", "external_id": "GUL-4"})).await;
    alpha_case(&app, json!({"name": "Outsider", "external_id": "GUL-5"})).await;
    let g = new_group(&app, "Study").await;
    change(&app, g, false, &[&a, &b, &gone, &left]).await;
    change(&app, g, true, &[&left]).await;
    let admin = Some(app.alpha_admin.token.as_str());
    call(
        &app,
        Method::DELETE,
        &app.api("alpha", &format!("/cases/{gone}")),
        admin,
        None,
    )
    .await;
    call(
        &app,
        Method::POST,
        &app.api("alpha", &format!("/cases/{b}/close")),
        admin,
        None,
    )
    .await;
    let token = &app.alpha_viewer.token;
    let csv = download(
        &app,
        &app.api("alpha", &format!("/case-groups/{g}/export.csv")),
        token,
        "text/csv",
    )
    .await;
    let xlsx = download(
        &app,
        &app.api("alpha", &format!("/case-groups/{g}/export.xlsx")),
        token,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    .await;
    for (bytes, name) in [(csv, "e.csv"), (xlsx, "e.xlsx")] {
        let table = sheet(&bytes, name);
        assert_eq!(
            table.headers.0,
            [
                "case_id",
                "external_id",
                "name",
                "phone_number",
                "case_type",
                "language_code",
                "owner_id",
                "closed"
            ],
            "{name}"
        );
        let rows: Vec<Vec<&str>> = table
            .rows
            .iter()
            .map(|r| (0..8).map(|c| r.get(c)).collect())
            .collect();
        assert_eq!(
            rows,
            [
                vec![
                    a.as_str(),
                    "007",
                    "Zoë Aber",
                    "+256772123456",
                    "case",
                    "ach",
                    "cm-1",
                    "false"
                ],
                vec![
                    b.as_str(),
                    "GUL-2",
                    "Okello, \"Jr\"",
                    "",
                    "case",
                    "",
                    "",
                    "true"
                ],
            ],
            "{name}: exactly the live members, IDs kept as text"
        );
    }
    // An empty group exports its header only.
    let empty = new_group(&app, "Empty").await;
    let csv = download(
        &app,
        &app.api("alpha", &format!("/case-groups/{empty}/export.csv")),
        token,
        "text/csv",
    )
    .await;
    let table = sheet(&csv, "e.csv");
    assert_eq!(table.headers.0.len(), 8);
    assert!(table.rows.is_empty());
    let (status, _) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/case-groups/999999/export.xlsx"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

async fn example_sheet_reads_back_as_text(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let bytes = download(
        &app,
        &app.api("alpha", "/case-groups/example.xlsx"),
        &app.alpha_viewer.token,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    .await;
    let table = sheet(&bytes, "cases_bulk_example.xlsx");
    let col = table
        .headers
        .find("case_identifier")
        .expect("a case_identifier header");
    let values: Vec<&str> = table.rows.iter().map(|r| r.get(col)).collect();
    assert!(!values.is_empty());
    assert!(
        values.contains(&"0772123456"),
        "leading zero kept: {values:?}"
    );
    assert!(values.contains(&"256772123456"), "not a number: {values:?}");
    assert!(
        values
            .iter()
            .all(|v| !v.is_empty() && !v.ends_with(".0") && !v.contains("E+")),
        "{values:?}"
    );
}

async fn ids_that_are_not_numbers_are_404(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let token = Some(app.alpha_admin.token.as_str());
    for (method, path) in [
        (Method::GET, "/case-groups/abc"),
        (Method::GET, "/case-groups/99999999999999999999"),
        (Method::GET, "/case-groups/1x/cases"),
        (Method::DELETE, "/case-groups/abc"),
        (Method::DELETE, "/case-groups/abc/cases/some-case"),
        (Method::GET, "/case-groups/abc/export.csv"),
        (Method::GET, "/uploads/abc"),
        (Method::GET, "/uploads/1.5/results.csv"),
        (Method::GET, "/uploads/-/results.xlsx"),
    ] {
        let (status, err) = call(&app, method.clone(), &app.api("alpha", path), token, None).await;
        assert_eq!(
            (status, code(&err)),
            (404, "not_found"),
            "{method} {path}: {err}"
        );
    }
}
