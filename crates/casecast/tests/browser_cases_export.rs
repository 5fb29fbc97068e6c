//! Exporting cases as a person does it in headless Chromium, against the real binary: filter
//! the case list (closed cases of one group), see how many match, download the CSV the list
//! links to, ask for the Excel file, watch it being made and download it; both files hold
//! exactly the filtered cases.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use casecast_core::sheet::{read_table, Table};
use casecast_testkit::cli::{self, Server};
use casecast_testkit::{Browser, Dialect};

const BIN: &str = env!("CARGO_BIN_EXE_casecast");

/// `casecast --db URL ARGS…`, which must succeed; returns its stdout.
async fn casecast(url: &str, args: &[&str], stdin: Option<&str>) -> String {
    cli::run(cli::command(BIN, Some(url)), args, stdin)
        .await
        .ok()
        .to_string()
}

casecast_testkit::on_both_engines!(browser_filter_and_export_cases);

/// A GET with the browser's session; asserts 200 and returns the body and the content type.
async fn fetch(base: &str, path: &str, session: &str) -> (Vec<u8>, String) {
    let resp = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header("cookie", format!("casecast_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    (resp.bytes().await.unwrap().to_vec(), content_type)
}

/// Columns of the rows of a downloaded sheet: case_id, name, closed, district.
fn summary(table: &Table) -> Vec<[String; 4]> {
    let col = |h: &str| {
        table
            .headers
            .find(h)
            .unwrap_or_else(|| panic!("no {h} in {:?}", table.headers))
    };
    let (id, name, closed, district) =
        (col("case_id"), col("name"), col("closed"), col("district"));
    table
        .rows
        .iter()
        .map(|r| {
            [
                r.get(id).to_string(),
                r.get(name).to_string(),
                r.get(closed).to_string(),
                r.get(district).to_string(),
            ]
        })
        .collect()
}

async fn browser_filter_and_export_cases(engine: Dialect) {
    let (url, _dir) = casecast_testkit::fresh_url(engine).await;
    casecast(
        &url,
        &[
            "project",
            "create",
            "gulu",
            "--time-zone",
            "Africa/Kampala",
            "--country",
            "UG",
        ],
        None,
    )
    .await;
    casecast(
        &url,
        &[
            "user",
            "create",
            "officer@gulu.example.org",
            "--project",
            "gulu",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        Some("data officer\n"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.csv");
    std::fs::write(
        &cases,
        "case_id,external_id,name,phone_number,case_type,closed,district\n\
         c-aber,GUL-0001,Aber Grace,0772 100001,patient,false,Gulu\n\
         c-okello,GUL-0002,Okello Moses,0772 100002,patient,true,Gulu\n\
         c-auma,GUL-0003,\"Auma, Joan\",,contact,true,=cmd\n\
         c-nakato,KLA-0004,Nakato Sarah,0772 100004,contact,true,Kampala\n\
         c-kato,KLA-0005,Kato Ivan,0772 100005,patient,false,\n",
    )
    .unwrap();
    casecast(
        &url,
        &[
            "cases",
            "import",
            "--project",
            "gulu",
            cases.to_str().unwrap(),
        ],
        None,
    )
    .await;
    let created = casecast(
        &url,
        &["groups", "create", "--project", "gulu", "Follow-up"],
        None,
    )
    .await;
    let group = created
        .trim_start_matches("created case group ")
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    group.parse::<i64>().expect("a group ID");
    casecast(
        &url,
        &[
            "groups",
            "add",
            "--project",
            "gulu",
            &group,
            "c-aber",
            "c-auma",
            "c-nakato",
        ],
        None,
    )
    .await;
    let server = Server::start(BIN, &url, &[]).await;
    let base = server.base.clone();

    let b = Browser::start().await;
    b.goto(&format!("{base}/a/gulu/cases")).await;
    b.log_in("officer@gulu.example.org", "data officer").await;
    b.wait_for_url("the case list", |u| u.ends_with("/a/gulu/cases"))
        .await;
    let heading = b.text(&b.find("h1").await).await;
    assert!(heading.contains("5 cases in all"), "{heading}");
    assert!(
        !b.source().await.contains("id=\"matching\""),
        "no count of matches without a filter"
    );

    // Closed cases of the group.
    let form = b.find("#case-filters").await;
    b.click(
        &b.find("#case-filters select[name=closed] option[value=true]")
            .await,
    )
    .await;
    b.click(
        &b.find(&format!(
            "#case-filters select[name=group_id] option[value=\"{group}\"]"
        ))
        .await,
    )
    .await;
    b.click(&b.find("#case-filters button[type=submit]").await)
        .await;
    b.wait_for_new("#case-filters", &form).await;
    let list_url = b
        .wait_for_url("the filtered list", |u| {
            u.contains("closed=true") && u.contains(&format!("group_id={group}"))
        })
        .await;
    assert_eq!(b.text(&b.find("#matching").await).await, "2", "{list_url}");
    let table = b.text(&b.find("table.cases").await).await;
    assert!(
        table.contains("Auma, Joan") && table.contains("Nakato Sarah"),
        "{table}"
    );
    for other in ["Aber Grace", "Okello Moses", "Kato Ivan"] {
        assert!(!table.contains(other), "{other} in {table}");
    }
    // The form shows the filters it applied.
    let closed = b
        .find("#case-filters select[name=closed] option[value=true]")
        .await;
    assert_eq!(b.attr(&closed, "selected").await.as_deref(), Some("true"));

    let expected = vec![
        [
            "c-auma".to_string(),
            "Auma, Joan".into(),
            "true".into(),
            "=cmd".into(),
        ],
        [
            "c-nakato".to_string(),
            "Nakato Sarah".into(),
            "true".into(),
            "Kampala".into(),
        ],
    ];
    let session = b
        .cookie("casecast_session")
        .await
        .expect("a session cookie");

    // The CSV the list links to holds exactly the filtered cases.
    let href = b.attr(&b.find("#export-csv").await, "href").await.unwrap();
    let path = href.trim_start_matches(&base).to_string();
    assert!(
        path.starts_with("/a/gulu/cases/export.csv?")
            && path.contains("closed=true")
            && path.contains(&format!("group_id={group}")),
        "{path}"
    );
    let (csv, content_type) = fetch(&base, &path, &session).await;
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    assert!(
        String::from_utf8_lossy(&csv).contains(",'=cmd"),
        "a formula is written as text"
    );
    let csv = read_table(&csv, "cases.csv", &Default::default()).unwrap();
    assert_eq!(csv.headers.0[0], "case_id");
    assert_eq!(summary(&csv), expected, "the CSV");

    // The Excel file is made in the background: its page follows it to the download.
    b.click(&b.find("#export-xlsx").await).await;
    let export_url = b
        .wait_for_url("the export's page", |u| {
            u.contains("/a/gulu/cases/exports/")
        })
        .await;
    b.wait_for_text("#export-status", |t| t == "done").await;
    // The page reloads when the export ends, with the link.
    let link = b.find("#export-download").await;
    let href = b.attr(&link, "href").await.unwrap();
    let path = href.trim_start_matches(&base).to_string();
    assert!(
        path.starts_with("/a/gulu/cases/exports/") && path.ends_with("/file"),
        "{path}"
    );
    assert!(b.text(&link).await.contains(".xlsx"));
    assert_eq!(
        b.text(&b.find("#export-processed").await).await,
        "2",
        "{export_url}"
    );
    let (xlsx, content_type) = fetch(&base, &path, &session).await;
    assert!(content_type.contains("spreadsheetml"), "{content_type}");
    let xlsx = read_table(&xlsx, "cases.xlsx", &Default::default()).unwrap();
    assert_eq!(xlsx.headers, csv.headers);
    assert_eq!(summary(&xlsx), expected, "the .xlsx");

    // What the page polled.
    let status_path = format!(
        "{}/status.json",
        export_url.trim_start_matches(&base).trim_end_matches('/')
    );
    let (status, _) = fetch(&base, &status_path, &session).await;
    let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
    assert_eq!(status["status"], "done", "{status}");
    assert_eq!(status["format"], "xlsx", "{status}");
    assert_eq!(status["total_rows"], 2, "{status}");
    assert_eq!(status["processed_rows"], 2, "{status}");

    if let Ok(shots) = std::env::var("CASECAST_SCREENSHOTS") {
        b.screenshot(
            &std::path::Path::new(&shots).join(format!("cases-export-{}.png", engine.name())),
        )
        .await;
    }
    b.quit().await;
    drop(server);
}
