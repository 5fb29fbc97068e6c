//! `cases import`: a sheet of cases into a project, with a progress bar.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use casecast_core::sheet::Limits;
use casecast_store::case_import::ImportReport;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

use crate::admin::open;

#[derive(Subcommand)]
pub enum CasesCommand {
    /// Create and update cases from an .xlsx or .csv file.
    Import {
        #[arg(long)]
        project: String,
        file: PathBuf,
    },
}

pub async fn cases(url: &str, command: CasesCommand) -> anyhow::Result<()> {
    let CasesCommand::Import { project, file } = command;
    let report = import_file(url, &project, &file, true).await?;
    print_report(&report);
    Ok(())
}

/// Imports a file; shows a progress bar on a terminal when `show_progress`.
pub async fn import_file(
    url: &str,
    project: &str,
    file: &PathBuf,
    show_progress: bool,
) -> anyhow::Result<ImportReport> {
    let limits = Limits::default();
    let size = std::fs::metadata(file)
        .with_context(|| format!("cannot read '{}'", file.display()))?
        .len();
    if size > limits.max_file_bytes {
        anyhow::bail!(
            "'{}' is {:.1} MB; the limit is {} MB",
            file.display(),
            size as f64 / 1_048_576.0,
            limits.max_file_bytes / 1_048_576
        );
    }
    let bytes = std::fs::read(file).with_context(|| format!("cannot read '{}'", file.display()))?;
    let db = open(url).await?;
    let p = db
        .project_by_slug(project)
        .await
        .with_context(|| format!("project '{project}'"))?;
    let bar = if show_progress {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} importing {msg}: {human_pos} rows [{elapsed_precise}, {per_sec}]",
        )
        .expect("a valid template"),
    );
    bar.set_message(file.display().to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let progress = |n: usize| bar.set_position(n as u64);
    let result = db
        .import_cases(p.id, p.country_code(), bytes, &name, limits, &progress)
        .await;
    bar.finish_and_clear();
    db.close().await;
    Ok(result?)
}

fn print_report(r: &ImportReport) {
    println!(
        "{} rows: {} created, {} updated, {} unchanged, {} blank, {} with errors",
        r.rows,
        r.created,
        r.updated,
        r.unchanged,
        r.blank,
        r.errors.len()
    );
    for e in &r.errors {
        println!("row {}, {}: {}", e.row, e.column, e.message);
    }
}
