//! `cases import`: a sheet of cases into a project; `cases export`: the project's cases (all,
//! or those some filters select) into a sheet. Both with a progress bar.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context};
use casecast_engine::import::{Source, FILE_LIMITS};
use casecast_store::case_export::ExportFormat;
use casecast_store::case_import::ImportReport;
use casecast_store::{Db, StoreError};
use casecast_web::case_query::{CaseQuery, QueryError};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

use crate::admin::open;
use crate::config::Config;
use crate::groups::SheetFormat;

#[derive(Subcommand)]
pub enum CasesCommand {
    /// Create and update cases from an .xlsx or .csv file.
    Import {
        #[arg(long)]
        project: String,
        file: PathBuf,
    },
    /// Write the project's cases (those the filters select) to an .xlsx or .csv file: the
    /// sheet `cases import` reads back, and whose case_id column fills a case group.
    Export {
        #[arg(long)]
        project: String,
        /// The file's format; by default `.xlsx` for a name ending in .xlsx, else CSV.
        #[arg(long, value_enum)]
        format: Option<SheetFormat>,
        /// Only cases whose name contains this, or whose case ID, phone number or external ID
        /// (its start) is this.
        #[arg(long)]
        search: Option<String>,
        /// Only cases of this type.
        #[arg(long)]
        case_type: Option<String>,
        /// Only closed cases (true) or open ones (false).
        #[arg(long)]
        closed: Option<bool>,
        /// Only members of this case group (its ID).
        #[arg(long)]
        group: Option<i64>,
        /// Only cases with a phone number (true) or without one (false).
        #[arg(long)]
        has_phone: Option<bool>,
        /// Only cases changed since this date (2026-11-01, in the project's time zone) or
        /// RFC 3339 time.
        #[arg(long)]
        modified_since: Option<String>,
        /// Only cases this case query selects: `--query 'district = Gulu AND age >= 18'`.
        #[arg(long)]
        query: Option<String>,
        file: PathBuf,
    },
}

pub async fn cases(cfg: &Config, command: CasesCommand) -> anyhow::Result<()> {
    match command {
        CasesCommand::Import { project, file } => {
            let report = import_file(cfg, &project, &file).await?;
            print_report(&report);
        }
        CasesCommand::Export {
            project,
            format,
            search,
            case_type,
            closed,
            group,
            has_phone,
            modified_since,
            query: case_query,
            file,
        } => {
            let query = CaseQuery {
                query: case_query,
                q: search,
                case_type,
                closed: closed.map(|b| b.to_string()),
                group_id: group.map(|g| g.to_string()),
                has_phone: has_phone.map(|b| b.to_string()),
                modified_since,
                ..Default::default()
            };
            let db = open(cfg).await?;
            let result =
                export_file(&db, &project, &query, SheetFormat::of(format, &file), &file).await;
            db.close().await;
            result?;
        }
    }
    Ok(())
}

/// Writes the export next to `out`, then renames it into place: a failed export leaves no
/// half-written file.
async fn export_file(
    db: &Db,
    slug: &str,
    query: &CaseQuery,
    format: SheetFormat,
    out: &Path,
) -> anyhow::Result<()> {
    let p = db
        .project_by_slug(slug)
        .await
        .with_context(|| format!("project '{slug}'"))?;
    let filter = query.filter(db, &p).await.map_err(|e| match e {
        QueryError::Invalid(m) | QueryError::BadQuery(m) => anyhow!("{m}"),
        QueryError::GroupNotFound => anyhow!(
            "case group {} not found in project '{slug}'",
            query.group_id.as_deref().unwrap_or_default()
        ),
        QueryError::Store(e) => e.into(),
    })?;
    let format = match format {
        SheetFormat::Csv => ExportFormat::Csv,
        SheetFormat::Xlsx => ExportFormat::Xlsx,
    };
    let total = db
        .count_for_export(p.id, &filter, format)
        .await
        .map_err(|e| match e {
            StoreError::Invalid(f) => anyhow!("{}", f.message),
            e => e.into(),
        })?;
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let part = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in '{}'", dir.display()))?;
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} exporting: {human_pos}/{human_len} cases [{elapsed_precise}, {per_sec}]",
        )
        .expect("a valid template"),
    );
    let rows =
        casecast_engine::export::write_case_export(db, p.id, &filter, format, part.path(), |n| {
            bar.set_position(n);
            std::future::ready(Ok(()))
        })
        .await;
    bar.finish_and_clear();
    let rows = rows.map_err(|e| match e {
        StoreError::Invalid(f) => anyhow!("{}", f.message),
        e => e.into(),
    })?;
    part.persist(out)
        .with_context(|| format!("cannot write '{}'", out.display()))?;
    let noun = if rows == 1 { "case" } else { "cases" };
    println!("wrote {rows} {noun} to '{}'", out.display());
    Ok(())
}

/// Imports a file, streamed (a CSV of any size: see `FILE_LIMITS`), with a progress bar on a
/// terminal.
async fn import_file(cfg: &Config, project: &str, file: &PathBuf) -> anyhow::Result<ImportReport> {
    std::fs::metadata(file).with_context(|| format!("cannot read '{}'", file.display()))?;
    let db = open(cfg).await?;
    let p = db
        .project_by_slug(project)
        .await
        .with_context(|| format!("project '{project}'"))?;
    let bar = ProgressBar::new_spinner();
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
    let result = casecast_engine::import::import_source(
        &db,
        p.id,
        p.country_code(),
        Source::File(file.clone()),
        &name,
        FILE_LIMITS,
        &progress,
    )
    .await;
    bar.finish_and_clear();
    db.close().await;
    match result {
        Ok(report) => Ok(report),
        Err(e) if e.written.rows > 0 => {
            print_report(&e.written);
            Err(anyhow::Error::new(e.cause).context(format!(
                "the import stopped after the {} rows above were written; run the same command again to finish (rows already written come out unchanged)",
                e.written.rows
            )))
        }
        Err(e) => Err(e.cause.into()),
    }
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
