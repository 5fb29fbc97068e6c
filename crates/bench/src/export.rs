//! `export`: case-export figures on a project of N cases (1,000,000 by default) with five
//! properties each: `GET /cases/export.csv` and `/cases/export.xlsx` through `casecast serve`
//! (time to the first byte, rows/s, the server's peak memory), and the background `.xlsx`
//! export that the case list page starts, made by the server's worker. A fresh server serves
//! each figure, so that each peak is that export's own.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use casecast_core::{Email, Role};
use casecast_store::case_export::ExportFormat;
use casecast_store::cases::CaseFilter;

use crate::common::{new_project, Bench};
use crate::groups::{import_generated, phone_digits};

const DISTRICTS: [&str; 5] = ["Gulu", "Kitgum", "Lira", "Arua", "Mbarara"];

/// Cases `ex-0000000`…, with an owner, a language and five properties.
fn write_cases(path: &Path, from: usize, to: usize) -> anyhow::Result<()> {
    let mut out = String::from(
        "case_id,external_id,name,phone_number,case_type,language_code,owner_id,district,study_arm,hiv_status,enrolled_on,visit\n",
    );
    for i in from..to {
        out.push_str(&format!(
            "ex-{i:07},EX-{i:07},Participant {i},+256{},participant,{},chw-{:03},{},{},{},2026-{:02}-{:02},{}\n",
            phone_digits(i),
            if i % 5 == 0 { "sw" } else { "en" },
            i % 200,
            DISTRICTS[i % DISTRICTS.len()],
            if i % 2 == 0 { "control" } else { "intervention" },
            if i % 7 == 0 { "positive" } else { "negative" },
            1 + i % 12,
            1 + i % 28,
            i % 12,
        ));
    }
    std::fs::write(path, out)?;
    Ok(())
}

/// What one download measured.
pub(crate) struct Fetched {
    pub(crate) first_byte: f64,
    pub(crate) total: f64,
    pub(crate) bytes: u64,
    pub(crate) lines: u64,
}

/// Downloads `url` with the token, timing the first byte and the whole.
pub(crate) async fn fetch(
    http: &reqwest::Client,
    url: &str,
    token: &str,
) -> anyhow::Result<Fetched> {
    let started = Instant::now();
    let mut resp = http.get(url).bearer_auth(token).send().await?;
    if !resp.status().is_success() {
        bail!("{url}: {} {}", resp.status(), resp.text().await?);
    }
    let mut first_byte = None;
    let (mut bytes, mut lines) = (0u64, 0u64);
    while let Some(chunk) = resp.chunk().await? {
        if first_byte.is_none() && !chunk.is_empty() {
            first_byte = Some(started.elapsed().as_secs_f64());
        }
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    Ok(Fetched {
        first_byte: first_byte.unwrap_or(f64::NAN),
        total: started.elapsed().as_secs_f64(),
        bytes,
        lines,
    })
}

pub async fn run(bench: &Bench, cases: usize) -> anyhow::Result<()> {
    let db = bench.open().await?;
    let engine = db.dialect().name();
    let project = new_project(&db).await?;
    let slug = project.slug.clone();
    let started = Instant::now();
    let created = import_generated(&db, &slug, cases, write_cases).await?;
    println!(
        "[{engine}] setup: imported {created} cases with 5 properties in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let password = casecast_store::secrets::random_hex(12);
    let user = db
        .upsert_user(
            &Email::parse("bench@bench.example.org")?,
            &password,
            project.id,
            Role::Admin,
        )
        .await?;
    let (_, token) = db.create_token(project.id, user.id, "bench").await?;
    db.close().await;
    let http = reqwest::Client::new();
    let rows = created as f64;

    for path in ["export.csv", "export.xlsx"] {
        let (server, base) = bench.start_server()?;
        let got = fetch(
            &http,
            &format!("{base}/api/v1/projects/{slug}/cases/{path}"),
            &token,
        )
        .await;
        let peak = server.peak_rss_mib().unwrap_or(f64::NAN);
        drop(server);
        let got = got?;
        if path.ends_with(".csv") && got.lines != created as u64 + 1 {
            bail!("the CSV export has {} lines for {created} cases", got.lines);
        }
        println!(
            "[{engine}] GET /cases/{path} of {created} cases through `casecast serve`: first byte after {:.2} s, \
             all {:.1} MB in {:.1} s ({:.0} rows/s), server peak RSS {peak:.0} MiB",
            got.first_byte,
            got.bytes as f64 / 1e6,
            got.total,
            rows / got.total,
        );
    }

    // The case list's "Export Excel": queued here, made by the server's worker, kept in chunks.
    let (server, _base) = bench.start_server()?;
    let db = bench.open().await?;
    let project = db.project_by_id(project.id).await?;
    let started = Instant::now();
    let export = db
        .create_export(
            &project,
            Some(user.id),
            &CaseFilter {
                country: project.country_code(),
                ..Default::default()
            },
            ExportFormat::Xlsx,
        )
        .await?;
    let done = loop {
        let e = db.get_export(project.id, export.id).await?;
        match e.status {
            casecast_core::states::JobStatus::Done => break e,
            casecast_core::states::JobStatus::Failed => {
                bail!("the export failed: {}", e.error.unwrap_or_default())
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let secs = started.elapsed().as_secs_f64();
    let peak = server.peak_rss_mib().unwrap_or(f64::NAN);
    drop(server);
    db.close().await;
    if done.processed_rows != created as i64 {
        bail!(
            "the background export wrote {} rows for {created} cases",
            done.processed_rows
        );
    }
    println!(
        "[{engine}] background .xlsx export of {created} cases (the page's button), made by the server's worker: \
         {secs:.1} s ({:.0} rows/s), {:.1} MB, server peak RSS {peak:.0} MiB",
        rows / secs,
        done.size_bytes as f64 / 1e6,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_cases_import_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.csv");
        write_cases(&path, 0, 3).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let t = casecast_core::sheet::read_table(&bytes, "c.csv", &Default::default()).unwrap();
        assert_eq!(t.rows.len(), 3);
        assert_eq!(t.headers.0.len(), 12);
        assert!(t.rows.iter().all(|r| r.cells.len() == 12));
    }
}
