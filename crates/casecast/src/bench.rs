//! `bench`: measures imports on the chosen database and prints rows/s and peak memory (the
//! case-group and delivery figures are in `bench_groups` and `bench_dispatch`).
//!
//! `bench import` writes a sheet to a temporary folder, then runs the import in a child
//! process (`bench run-import`) so that the peak memory it reports is the import's alone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use casecast_core::{CountryCode, ProjectSlug, TimeZoneName};
use casecast_store::projects::NewProject;
use clap::{Subcommand, ValueEnum};

use crate::admin::open;

#[derive(Clone, Copy, ValueEnum)]
pub enum SheetFormat {
    Csv,
    Xlsx,
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Import N generated cases into a new project and print rows/s and peak RSS.
    Import {
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        #[arg(long, value_enum, default_value_t = SheetFormat::Csv)]
        format: SheetFormat,
    },
    /// Case-group figures: upload N identifiers, the members page, server memory.
    Groups {
        /// Cases in the project (and members of the big group).
        #[arg(long, default_value_t = 1_000_000)]
        cases: usize,
        /// Identifiers in the uploaded sheet.
        #[arg(long, default_value_t = 100_000)]
        identifiers: usize,
    },
    /// Broadcast figures: the preview and fan-out of a broadcast to a group of N cases.
    Broadcast {
        /// Cases in the project, all in the group.
        #[arg(long, default_value_t = 1_000_000)]
        cases: usize,
    },
    /// Case-export figures: CSV and .xlsx exports of N cases through `casecast serve`, and the
    /// background .xlsx export.
    Export {
        #[arg(long, default_value_t = 1_000_000)]
        cases: usize,
    },
    /// (internal) The measured preview of `bench broadcast`.
    #[command(hide = true)]
    RunPreview {
        #[arg(long)]
        project_id: i64,
        #[arg(long)]
        group_id: i64,
    },
    /// (internal) The measured fan-out of `bench broadcast`.
    #[command(hide = true)]
    RunFanout {
        #[arg(long)]
        project_id: i64,
        #[arg(long)]
        occurrence: i64,
    },
    /// Delivery figures: dispatch to a local HTTP sink, through Kannel, a shared rate limit.
    #[command(subcommand)]
    Dispatch(crate::bench_dispatch::DispatchBench),
    /// (internal) The measured part of `bench import`.
    #[command(hide = true)]
    RunImport {
        #[arg(long)]
        project: String,
        file: PathBuf,
    },
}

/// CPU time (user + system) this process has used, in seconds (Linux, from /proc/self/stat;
/// assumes the usual 100 ticks per second).
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Peak resident memory of this process, in MiB (Linux), from /proc/self/status.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn write_sheet(path: &Path, rows: usize, format: SheetFormat) -> anyhow::Result<()> {
    let headers = [
        "external_id",
        "name",
        "phone_number",
        "case_type",
        "language_code",
        "district",
        "study_arm",
        "hiv_status",
    ];
    let row = |i: usize| -> [String; 8] {
        [
            format!("B-{i:07}"),
            format!("Participant {i}"),
            format!("+2567{}{:07}", [0, 1, 5, 7, 8][i % 5], i % 10_000_000),
            "participant".into(),
            ["en", "lg", "ach"][i % 3].into(),
            ["Gulu", "Kampala", "Lira", "Mbarara"][i % 4].into(),
            ["intervention", "control"][i % 2].into(),
            ["positive", "negative", "unknown"][i % 3].into(),
        ]
    };
    match format {
        SheetFormat::Csv => {
            let mut out = headers.join(",");
            out.push('\n');
            for i in 0..rows {
                out.push_str(&row(i).join(","));
                out.push('\n');
            }
            std::fs::write(path, out)?;
        }
        SheetFormat::Xlsx => {
            let mut wb = rust_xlsxwriter::Workbook::new();
            let ws = wb.add_worksheet();
            for (c, h) in headers.iter().enumerate() {
                ws.write_string(0, c as u16, *h)?;
            }
            for i in 0..rows {
                for (c, v) in row(i).iter().enumerate() {
                    ws.write_string(i as u32 + 1, c as u16, v)?;
                }
            }
            wb.save(path)?;
        }
    }
    Ok(())
}

pub async fn bench(url: &str, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Dispatch(bench) => crate::bench_dispatch::run(url, bench).await,
        BenchCommand::Broadcast { cases } => crate::bench_broadcast::run(url, cases).await,
        BenchCommand::Export { cases } => crate::bench_export::run(url, cases).await,
        BenchCommand::RunPreview {
            project_id,
            group_id,
        } => crate::bench_broadcast::run_preview(url, project_id, group_id).await,
        BenchCommand::RunFanout {
            project_id,
            occurrence,
        } => crate::bench_broadcast::run_fanout(url, project_id, occurrence).await,
        BenchCommand::Groups { cases, identifiers } => {
            crate::bench_groups::run(url, cases, identifiers).await
        }
        BenchCommand::Import { rows, format } => {
            let dir = tempfile::tempdir()?;
            let ext = match format {
                SheetFormat::Csv => "csv",
                SheetFormat::Xlsx => "xlsx",
            };
            let file = dir.path().join(format!("bench.{ext}"));
            write_sheet(&file, rows, format)?;
            let slug = format!("bench-{}", &casecast_store::secrets::random_hex(4));
            let db = open(url).await?;
            db.create_project(&NewProject {
                slug: ProjectSlug::parse(&slug)?,
                name: "Benchmark".into(),
                time_zone: TimeZoneName::parse("Africa/Kampala")?,
                country: Some(CountryCode::parse("UG")?),
            })
            .await?;
            let engine = db.dialect().name();
            db.close().await;
            let out = Command::new(std::env::current_exe()?)
                .args(["--db", url, "bench", "run-import", "--project", &slug])
                .arg(&file)
                .output()
                .context("running the measured import")?;
            if !out.status.success() {
                bail!(
                    "the measured import failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let figures = String::from_utf8_lossy(&out.stdout);
            println!(
                "import {rows} rows from {ext} on {engine}: {}",
                figures.trim()
            );
            Ok(())
        }
        BenchCommand::RunImport { project, file } => {
            let started = Instant::now();
            let report = crate::import::import_file(url, &project, &file, false).await?;
            let secs = started.elapsed().as_secs_f64();
            if !report.errors.is_empty() || report.created != report.rows {
                bail!(
                    "expected {} created cases, got {} ({} errors)",
                    report.rows,
                    report.created,
                    report.errors.len()
                );
            }
            println!(
                "{:.2} s, {:.0} rows/s, peak RSS {:.0} MiB",
                secs,
                report.rows as f64 / secs,
                peak_rss_mib().unwrap_or(f64::NAN)
            );
            Ok(())
        }
    }
}
