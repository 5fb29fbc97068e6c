//! The OpenAPI document behind `/api/docs`: every operation declares what "Try it out" needs.

use casecast_testkit::{Dialect, TestApp};
use serde_json::Value;

/// The `{name}`s of a path template, in order.
fn path_names(path: &str) -> Vec<&str> {
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .collect()
}

/// Every path parameter is declared (in: path, required) and named in the template; every
/// other parameter is an optional query parameter; the bearer scheme says how to get a token.
#[tokio::test]
async fn every_operation_declares_its_parameters() {
    let app = TestApp::spawn(Dialect::Sqlite).await;
    let resp = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    let mut query_params = 0;
    let mut problems = Vec::new();
    for (path, item) in paths {
        let names = path_names(path);
        for (method, op) in item.as_object().unwrap() {
            if ![
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                continue;
            }
            operations += 1;
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let at = format!("{} {path}", method.to_uppercase());
            for name in &names {
                let declared = params
                    .iter()
                    .find(|p| p["name"] == *name && p["in"] == "path");
                match declared {
                    None => problems.push(format!("{at}: {{{name}}} is not declared in: path")),
                    Some(p) if p["required"] != true => {
                        problems.push(format!("{at}: path parameter {name} is not required"))
                    }
                    Some(_) => {}
                }
            }
            for p in &params {
                let name = p["name"].as_str().unwrap_or_default();
                match p["in"].as_str() {
                    Some("path") if !names.contains(&name) => problems.push(format!(
                        "{at}: {name} is declared in: path but the path has no {{{name}}}"
                    )),
                    Some("path") => {}
                    Some("query") => {
                        query_params += 1;
                        if p["required"] == true {
                            problems.push(format!("{at}: query parameter {name} is required"));
                        }
                    }
                    other => problems.push(format!("{at}: {name} is in {other:?}")),
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Not vacuous: the whole API, with its lists' limit/cursor and filters.
    assert!(operations >= 40, "only {operations} operations");
    assert!(query_params >= 20, "only {query_params} query parameters");
    let list = &paths["/api/v1/projects/{project}/messages"]["get"]["parameters"];
    for name in ["limit", "cursor", "status"] {
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == name && p["in"] == "query"),
            "messages list: {name}"
        );
    }
    // The reminders' operations, the upcoming list with its window.
    let prefix = "/api/v1/projects/{project}";
    for (path, methods) in [
        ("/reminders", &["get", "post"][..]),
        ("/reminders/preview", &["post"]),
        ("/reminders/{id}", &["get", "patch", "delete"]),
        ("/reminders/{id}/upcoming", &["get"]),
    ] {
        for method in methods {
            assert!(
                paths[&format!("{prefix}{path}")][*method].is_object(),
                "{method} {path}"
            );
        }
    }
    let upcoming = &paths[&format!("{prefix}/reminders/{{id}}/upcoming")]["get"]["parameters"];
    assert!(upcoming
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "days" && p["in"] == "query"));
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(bearer["scheme"], "bearer");
    let help = bearer["description"].as_str().unwrap_or_default();
    assert!(
        help.contains("casecast token create --project SLUG --user EMAIL"),
        "the bearer scheme's description: {help:?}"
    );
}
