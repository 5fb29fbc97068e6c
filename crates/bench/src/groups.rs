//! `groups`: case-group figures on a project of N cases: a sheet upload of identifiers
//! in mixed forms, the members page of a group of every case (first page and deep), and the
//! peak memory of a `casecast serve` process while it takes a one-row-per-case CSV upload.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use casecast_core::identifier::GroupName;
use casecast_core::{Email, Role};
use casecast_store::case_groups::Actor;
use casecast_store::membership::Change;
use casecast_store::Db;

use crate::common::{import_sheet, new_project, Bench};

pub(crate) const ACTOR: Actor = Actor {
    user_id: None,
    via: "cli",
};

pub(crate) fn phone_digits(i: usize) -> String {
    format!("7{}{:07}", [0, 1, 5, 7, 8][i % 5], i % 10_000_000)
}

fn write_cases(path: &Path, from: usize, to: usize) -> anyhow::Result<()> {
    let mut out = String::from("case_id,external_id,name,phone_number,district,language_code\n");
    for i in from..to {
        out.push_str(&format!(
            "bc-{i:07},BX-{i:07},Participant {i},+256{},Gulu,{}\n",
            phone_digits(i),
            if i % 5 == 0 { "sw" } else { "en" }
        ));
    }
    std::fs::write(path, out)?;
    Ok(())
}

/// A third case IDs, a third external IDs, a third phone numbers written four ways.
fn identifier(i: usize) -> String {
    let d = phone_digits(i);
    match i % 3 {
        0 => format!("bc-{i:07}"),
        1 => format!("BX-{i:07}"),
        _ => match i % 4 {
            0 => format!("+256 {} {} {}", &d[..3], &d[3..6], &d[6..]),
            1 => format!("0{} {}", &d[..3], &d[3..]),
            2 => format!("256{d}"),
            _ => format!("(256) {}.{}.{}", &d[..3], &d[3..6], &d[6..]),
        },
    }
}

pub(crate) async fn upload_in_process(
    db: &Db,
    project_id: i64,
    group_id: i64,
    name: &str,
    bytes: Vec<u8>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let upload = db
        .create_upload(project_id, group_id, Change::Add, name, bytes, None)
        .await?;
    let worker = "bench";
    let job = db
        .claim_job_for(casecast_store::jobs::JobKind::Upload, upload.id, worker)
        .await?
        .context("the upload's job was not found")?;
    casecast_engine::upload::process_upload(
        db,
        upload.id,
        job.id,
        worker,
        &casecast_engine::faults::Faults::none(),
    )
    .await?;
    db.finish_job(job.id).await?;
    let done = db.get_upload(project_id, upload.id).await?;
    if done.status != casecast_core::states::JobStatus::Done {
        bail!(
            "the upload ended {}: {}",
            done.status,
            done.error.unwrap_or_default()
        );
    }
    Ok(started.elapsed().as_secs_f64())
}

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Imports cases `bc-0000000`… (every fifth with language `sw`) into a project; returns how
/// many were created.
pub(crate) async fn import_cases(db: &Db, slug: &str, cases: usize) -> anyhow::Result<usize> {
    import_generated(db, slug, cases, write_cases).await
}

/// Imports cases from sheets that `write` makes (rows `from..to` into a file), a part at a time.
pub(crate) async fn import_generated(
    db: &Db,
    slug: &str,
    cases: usize,
    write: impl Fn(&Path, usize, usize) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    let dir = tempfile::tempdir()?;
    // Imported in parts of 200,000: a single file of a million cases is over the 50 MB limit.
    let mut created = 0;
    for (part, start) in (0..cases).step_by(200_000).enumerate() {
        let file = dir.path().join(format!("cases-{part}.csv"));
        write(&file, start, (start + 200_000).min(cases))?;
        created += import_sheet(db, slug, &file).await?.created;
    }
    Ok(created)
}

pub async fn run(bench: &Bench, cases: usize, identifiers: usize) -> anyhow::Result<()> {
    let db = bench.open().await?;
    let engine = db.dialect().name();
    let project = new_project(&db).await?;
    let slug = project.slug.clone();
    let started = Instant::now();
    let created = import_cases(&db, &slug, cases).await?;
    println!(
        "[{engine}] setup: imported {created} cases in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // 1. A sheet of identifiers in mixed forms, end to end from upload to results stored.
    let step = (cases / identifiers.max(1)).max(1);
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "case_identifier")?;
    for (row, i) in (0..cases).step_by(step).take(identifiers).enumerate() {
        ws.write_string(row as u32 + 1, 0, identifier(i))?;
    }
    let xlsx = wb.save_to_buffer()?;
    let group = db
        .create_group(project.id, &GroupName::parse("Sample")?, ACTOR)
        .await?;
    let secs = upload_in_process(&db, project.id, group.id, "sample.xlsx", xlsx).await?;
    let added = db.get_group(project.id, group.id).await?.case_count;
    println!("[{engine}] upload {identifiers} identifiers (.xlsx, mixed forms) to a group: {secs:.2} s ({added} added)");

    // 2. A `casecast serve` takes a CSV of every case; its peak memory is read from /proc.
    let email = "bench@bench.example.org";
    let password = casecast_store::secrets::random_hex(12);
    let user = db
        .upsert_user(&Email::parse(email)?, &password, project.id, Role::Admin)
        .await?;
    let (_, token) = db.create_token(project.id, user.id, "bench").await?;
    let everyone = db
        .create_group(project.id, &GroupName::parse("Everyone")?, ACTOR)
        .await?;
    db.close().await;
    let mut csv = String::from("case_identifier\n");
    for i in 0..cases {
        csv.push_str(&format!("bc-{i:07}\n"));
    }
    let (server, base) = bench.start_server()?;
    let http = reqwest::Client::new();
    let api = format!("{base}/api/v1/projects/{slug}");
    let started = Instant::now();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("everyone.csv"),
    );
    let created: serde_json::Value = http
        .post(format!("{api}/case-groups/{}/uploads", everyone.id))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await?
        .json()
        .await?;
    let upload_id = created["upload_id"].as_i64().context("no upload id")?;
    loop {
        let status: serde_json::Value = http
            .get(format!("{api}/uploads/{upload_id}"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        match status["status"].as_str() {
            Some("done") => break,
            Some("failed") => bail!("the upload failed: {}", status["error"]),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let peak = server.peak_rss_mib().unwrap_or(f64::NAN);
    println!("[{engine}] upload {cases} rows (.csv) through `casecast serve`: {secs:.1} s, server peak RSS {peak:.0} MiB");

    // 3. The members page of a group of every case: first page and one deep in the list.
    let first: serde_json::Value = http
        .get(format!("{api}/case-groups/{}/cases?limit=50", everyone.id))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let first_cursor: i64 = first["next_cursor"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .context("no cursor")?;
    let deep_cursor = first_cursor + cases as i64 - 100;
    let login_page = http.get(format!("{base}/login")).send().await?;
    let pre = login_page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("casecast_login_csrf="))
        .and_then(|v| v.split(';').next())
        .context("no login cookie")?
        .to_string();
    let page_html = login_page.text().await?;
    let csrf = page_html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .context("no csrf")?
        .to_string();
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let login = no_redirect
        .post(format!("{base}/login"))
        .header("cookie", format!("casecast_login_csrf={pre}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", password.as_str()),
        ])
        .send()
        .await?;
    let session = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("casecast_session="))
        .and_then(|v| v.split(';').next())
        .context("login failed")?
        .to_string();
    let page = format!("{base}/a/{slug}/messaging/case-groups/{}", everyone.id);
    let near_end = cases - 7;
    let pages = [
        ("first page", page.clone()),
        ("deep page", format!("{page}?cursor={deep_cursor}")),
        (
            "search by external ID",
            format!("{page}?q=BX-{near_end:07}"),
        ),
        (
            "search by part of a name",
            format!("{page}?q=participant%20{near_end}"),
        ),
    ];
    for (label, url) in pages {
        let mut times = Vec::new();
        for _ in 0..21 {
            let t = Instant::now();
            let resp = http
                .get(&url)
                .header("cookie", format!("casecast_session={session}"))
                .send()
                .await?;
            let ok = resp.status().is_success();
            let body = resp.text().await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            if !ok || !body.contains("table class=\"members\"") {
                bail!("the members page did not answer with members");
            }
        }
        println!("[{engine}] members page of a {cases}-member group, {label}: median {:.1} ms (21 requests, loopback)", median_ms(times));
    }
    drop(server);
    Ok(())
}
