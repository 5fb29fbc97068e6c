//! `contention`: how long another project's writes wait while a large case import runs. It
//! starts `casecast serve`, then imports a generated CSV of N cases into one project, through
//! the server's API (`--via api`: the import runs in the server, beside the writes it must let
//! in) or with `casecast cases import` on the same database (`--via cli`: another process), and
//! meanwhile creates a case in another project through the API every 100 ms, one after the
//! other. It prints the import's time and the writes' waits: the longest, the median, the 99th
//! percentile, and any answer that was not 201 (a 503 or a 500 on a busy database).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use casecast_core::{Email, Role};
use clap::ValueEnum;

use crate::common::{new_project, Bench};

/// How the import is run.
#[derive(Clone, Copy, ValueEnum)]
pub enum Via {
    /// `POST /cases/import` to the server (at most 50 MB and 1,000,000 rows).
    Api,
    /// `casecast cases import` in a process of its own, on the same database.
    Cli,
}

/// A narrow sheet (external ID, name, phone number), so that a million rows fit in the API's
/// 50 MB.
fn write_sheet(path: &Path, rows: usize) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "external_id,name,phone_number")?;
    for i in 0..rows {
        writeln!(out, "C-{i:07},P {i},+25677{:07}", i % 10_000_000)?;
    }
    out.flush()?;
    Ok(())
}

/// The waits' summary, in seconds.
fn summary(waits: &mut [f64]) -> String {
    if waits.is_empty() {
        return "no write".into();
    }
    waits.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| waits[((waits.len() - 1) as f64 * q).round() as usize];
    format!(
        "{} writes, longest wait {:.3} s, median {:.3} s, p99 {:.3} s",
        waits.len(),
        at(1.0),
        at(0.5),
        at(0.99)
    )
}

pub async fn run(bench: &Bench, rows: usize, via: Via) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("contention.csv");
    write_sheet(&file, rows)?;
    let db = bench.open().await?;
    let engine = db.dialect().name();
    let importing = new_project(&db).await?;
    let other = new_project(&db).await?;
    let password = casecast_store::secrets::random_hex(12);
    let mut tokens = Vec::new();
    for p in [&importing, &other] {
        let user = db
            .upsert_user(
                &Email::parse(&format!("bench@{}.example.org", p.slug))?,
                &password,
                p.id,
                Role::Admin,
            )
            .await?;
        tokens.push(db.create_token(p.id, user.id, "bench").await?.1);
    }
    db.close().await;
    let (server, base) = bench.start_server()?;
    let http = reqwest::Client::new();

    // The other project's writes, one after the other, until the import ends.
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (http, done) = (http.clone(), done.clone());
        let url = format!("{base}/api/v1/projects/{}/cases", other.slug);
        let token = tokens[1].clone();
        tokio::spawn(async move {
            let (mut waits, mut failures) = (Vec::new(), Vec::new());
            let mut i = 0;
            while !done.load(Ordering::SeqCst) {
                i += 1;
                let started = Instant::now();
                let sent = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"name": format!("Other {i}"), "external_id": format!("O-{i}")}))
                    .send()
                    .await;
                waits.push(started.elapsed().as_secs_f64());
                match sent {
                    Ok(r) if r.status() == 201 => {}
                    Ok(r) => failures.push(r.status().as_u16().to_string()),
                    Err(e) => failures.push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (waits, failures)
        })
    };

    let started = Instant::now();
    match via {
        Via::Api => {
            let bytes = std::fs::read(&file)?;
            let form = reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name("contention.csv"),
            );
            let resp = http
                .post(format!(
                    "{base}/api/v1/projects/{}/cases/import",
                    importing.slug
                ))
                .bearer_auth(&tokens[0])
                .multipart(form)
                .send()
                .await?;
            let status = resp.status();
            let body = resp.text().await?;
            if status != 200 {
                bail!("the import answered {status}: {body}");
            }
        }
        Via::Cli => {
            let out = bench
                .casecast_command(&[
                    "cases",
                    "import",
                    "--project",
                    importing.slug.as_str(),
                    file.to_str().context("the temporary path is not UTF-8")?,
                ])?
                .output()?;
            if !out.status.success() {
                bail!(
                    "casecast cases import failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::SeqCst);
    let (mut waits, failures) = writer.await?;
    drop(server);
    let via = match via {
        Via::Api => "the API",
        Via::Cli => "casecast cases import",
    };
    println!(
        "[{engine}] import of {rows} rows through {via}: {secs:.1} s ({:.0} rows/s); meanwhile another project's POST /cases: {}; {} not 201{}",
        rows as f64 / secs,
        summary(&mut waits),
        failures.len(),
        if failures.is_empty() {
            String::new()
        } else {
            format!(" ({})", failures[..failures.len().min(5)].join(", "))
        }
    );
    Ok(())
}
