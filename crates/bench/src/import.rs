//! `import`: measures imports on the chosen database and prints rows/s and peak memory.
//!
//! It writes a sheet to a temporary folder, then runs the import in a child process
//! (`run-import`) so that the peak memory it reports is the import's alone.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::ValueEnum;

use crate::common::{import_sheet, new_project, peak_rss_mib, Bench};

#[derive(Clone, Copy, ValueEnum)]
pub enum SheetFormat {
    Csv,
    Xlsx,
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

/// Writes a sheet of `rows` new participants, then imports it into a new project in a child
/// process (`run-import`) and prints its figures.
pub async fn run(bench: &Bench, rows: usize, format: SheetFormat) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ext = match format {
        SheetFormat::Csv => "csv",
        SheetFormat::Xlsx => "xlsx",
    };
    let file = dir.path().join(format!("bench.{ext}"));
    write_sheet(&file, rows, format)?;
    let db = bench.open().await?;
    let project = new_project(&db).await?;
    let engine = db.dialect().name();
    db.close().await;
    let file = file
        .to_str()
        .context("the temporary folder's path is not UTF-8")?;
    let figures = bench.measure(&["run-import", "--project", project.slug.as_str(), file])?;
    println!("import {rows} rows from {ext} on {engine}: {figures}");
    Ok(())
}

/// The measured import: prints its time, rows/s and this process's peak memory.
pub async fn run_import(bench: &Bench, project: &str, file: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let db = bench.open().await?;
    let report = import_sheet(&db, project, file).await;
    db.close().await;
    let report = report?;
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
