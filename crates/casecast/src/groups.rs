//! `groups …`: case groups from the command line. Uploads are processed in this process, with a
//! progress bar on a terminal, through the same job and code path as the workers use.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use casecast_core::identifier::{GroupName, ALL_OUTCOMES};
use casecast_core::sheet::Limits;
use casecast_core::sheet_out::{to_csv, to_xlsx, Table};
use casecast_store::case_groups::{Actor, CaseGroup};
use casecast_store::jobs::LEASE_MS;
use casecast_store::membership::{Change, ItemResult};
use casecast_store::projects::Project;
use casecast_store::uploads::Upload;
use casecast_store::{Db, StoreError};
use clap::{Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use crate::admin::open;
use crate::config::Config;

const CLI: Actor = Actor {
    user_id: None,
    via: "cli",
};
/// Rows per page when reading members and upload results.
const PAGE: usize = 1000;
/// How often the progress bar reads the upload's progress.
const POLL: Duration = Duration::from_millis(200);

#[derive(Subcommand)]
pub enum GroupsCommand {
    /// List the project's case groups: ID, name and number of cases, tab-separated.
    List {
        #[arg(long)]
        project: String,
    },
    /// Create a case group; with `--query`, a smart group (its members are the cases matching
    /// the query, kept current).
    Create {
        #[arg(long)]
        project: String,
        name: String,
        /// A case query, e.g. "district = Gulu AND age >= 18".
        #[arg(long)]
        query: Option<String>,
    },
    /// Rename a case group.
    Rename {
        #[arg(long)]
        project: String,
        id: String,
        name: String,
    },
    /// Delete a case group (its cases stay).
    Delete {
        #[arg(long)]
        project: String,
        id: String,
    },
    /// Add cases by case ID, external ID or phone number.
    Add {
        #[arg(long)]
        project: String,
        id: String,
        #[arg(required = true)]
        identifiers: Vec<String>,
    },
    /// Remove cases by case ID, external ID or phone number.
    Remove {
        #[arg(long)]
        project: String,
        id: String,
        #[arg(required = true)]
        identifiers: Vec<String>,
    },
    /// Add (or remove) the cases listed in an .xlsx or .csv file.
    Upload {
        #[arg(long)]
        project: String,
        id: String,
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Mode::Add)]
        mode: Mode,
        /// Write the result of every row to this file (.csv, or .xlsx by its name).
        #[arg(long)]
        results: Option<PathBuf>,
    },
    /// Write the group's cases to a file.
    Export {
        #[arg(long)]
        project: String,
        id: String,
        /// The file's format; by default `.xlsx` for a name ending in .xlsx, else CSV.
        #[arg(long, value_enum)]
        format: Option<SheetFormat>,
        file: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Mode {
    Add,
    Remove,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SheetFormat {
    Csv,
    Xlsx,
}

impl SheetFormat {
    /// The format named, or the one the file name suggests.
    pub(crate) fn of(format: Option<SheetFormat>, file: &Path) -> SheetFormat {
        format.unwrap_or_else(|| {
            let xlsx = file
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("xlsx"));
            if xlsx {
                SheetFormat::Xlsx
            } else {
                SheetFormat::Csv
            }
        })
    }
}

pub async fn groups(cfg: &Config, command: GroupsCommand) -> anyhow::Result<()> {
    let db = open(cfg).await?;
    let result = run(&db, command).await;
    db.close().await;
    result
}

async fn run(db: &Db, command: GroupsCommand) -> anyhow::Result<()> {
    match command {
        GroupsCommand::List { project } => {
            let p = project_of(db, &project).await?;
            for g in db.list_groups(p.id).await? {
                println!("{}\t{}\t{}", g.id, g.name, g.case_count);
            }
        }
        GroupsCommand::Create {
            project,
            name,
            query,
        } => {
            let name = GroupName::parse(&name)?;
            let p = project_of(db, &project).await?;
            match query {
                None => {
                    let g = db.create_group(p.id, &name, CLI).await?;
                    println!("created case group {} '{}'", g.id, g.name);
                }
                Some(query) => {
                    let clock = casecast_engine::clock::SystemClock;
                    let g =
                        casecast_engine::smart_groups::create(db, &clock, &p, &name, &query, CLI)
                            .await
                            .map_err(|e| match e {
                                casecast_engine::smart_groups::SaveError::Query(m) => {
                                    anyhow!("query: {m}")
                                }
                                casecast_engine::smart_groups::SaveError::Store(e) => e.into(),
                            })?;
                    println!(
                        "created smart group {} '{}' with {} cases",
                        g.id, g.name, g.case_count
                    );
                }
            }
        }
        GroupsCommand::Rename { project, id, name } => {
            let name = GroupName::parse(&name)?;
            let p = project_of(db, &project).await?;
            let old = group_of(db, &p, &id).await?;
            let g = db.rename_group(p.id, old.id, &name, CLI).await?;
            println!(
                "renamed case group {} from '{}' to '{}'",
                g.id, old.name, g.name
            );
        }
        GroupsCommand::Delete { project, id } => {
            let p = project_of(db, &project).await?;
            let g = group_of(db, &p, &id).await?;
            db.delete_group(p.id, g.id)
                .await
                .map_err(|e| not_found(e, &p, &id))?;
            println!("deleted case group {} '{}'", g.id, g.name);
        }
        GroupsCommand::Add {
            project,
            id,
            identifiers,
        } => change(db, &project, &id, Change::Add, &identifiers).await?,
        GroupsCommand::Remove {
            project,
            id,
            identifiers,
        } => change(db, &project, &id, Change::Remove, &identifiers).await?,
        GroupsCommand::Upload {
            project,
            id,
            file,
            mode,
            results,
        } => upload(db, &project, &id, &file, mode, results.as_deref()).await?,
        GroupsCommand::Export {
            project,
            id,
            format,
            file,
        } => export(db, &project, &id, SheetFormat::of(format, &file), &file).await?,
    }
    Ok(())
}

async fn project_of(db: &Db, slug: &str) -> anyhow::Result<Project> {
    db.project_by_slug(slug)
        .await
        .with_context(|| format!("project '{slug}'"))
}

/// The group `id` of the project; any other project's group is "not found", like a missing one.
async fn group_of(db: &Db, project: &Project, id: &str) -> anyhow::Result<CaseGroup> {
    let number: i64 = id
        .trim()
        .parse()
        .map_err(|_| anyhow!("'{id}' is not a case group ID (a number)"))?;
    db.get_group(project.id, number)
        .await
        .map_err(|e| not_found(e, project, id))
}

fn not_found(e: StoreError, project: &Project, id: &str) -> anyhow::Error {
    match e {
        StoreError::NotFound("case group") => anyhow!(
            "case group {} not found in project '{}'",
            id.trim(),
            project.slug
        ),
        e => e.into(),
    }
}

/// One field of a tab-separated line: no tabs or line breaks inside.
fn field(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

/// `2 added, 1 not_found`, in report order.
fn counts_line(counts: &BTreeMap<String, i64>) -> String {
    let parts: Vec<String> = ALL_OUTCOMES
        .iter()
        .filter_map(|o| {
            counts
                .get(o.as_str())
                .filter(|n| **n > 0)
                .map(|n| format!("{n} {}", o.as_str()))
        })
        .collect();
    if parts.is_empty() {
        "0 rows".to_string()
    } else {
        parts.join(", ")
    }
}

async fn change(
    db: &Db,
    project: &str,
    id: &str,
    change: Change,
    identifiers: &[String],
) -> anyhow::Result<()> {
    let p = project_of(db, project).await?;
    let g = group_of(db, &p, id).await?;
    let results = db
        .change_members(p.id, g.id, change, identifiers, CLI)
        .await
        .map_err(|e| not_found(e, &p, id))?;
    let mut counts = BTreeMap::new();
    for ItemResult {
        identifier,
        outcome,
        case_id,
        message,
        ..
    } in &results
    {
        println!(
            "{}\t{}\t{}\t{}",
            field(identifier),
            outcome.as_str(),
            case_id.as_deref().unwrap_or(""),
            field(message)
        );
        *counts.entry(outcome.as_str().to_string()).or_insert(0) += 1;
    }
    println!("{}", counts_line(&counts));
    Ok(())
}

/// This process's name in job leases.
fn worker_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    format!("cli@{host}:{}", std::process::id())
}

/// Claims the upload's job, unless a running server or worker holds it.
async fn claim_upload_job(
    db: &Db,
    upload_id: i64,
    worker: &str,
) -> anyhow::Result<Option<casecast_store::jobs::Job>> {
    Ok(db
        .claim_job_for(casecast_store::jobs::JobKind::Upload, upload_id, worker)
        .await?)
}

fn progress_bar(file: &Path) -> ProgressBar {
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::no_length()
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} checking {msg} [{elapsed_precise}]")
            .expect("a valid template"),
    );
    bar.set_message(file.display().to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Moves the bar; once the sheet is checked and its rows counted, it shows them.
fn show(bar: &ProgressBar, upload: &Upload) {
    if upload.total_rows <= 0 {
        return;
    }
    if bar.length().is_none() {
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {human_pos}/{human_len} rows [{elapsed_precise}, {per_sec}]",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
    }
    bar.set_length(upload.total_rows as u64);
    bar.set_position(upload.processed_rows.max(0) as u64);
}

fn finished(upload: &Upload) -> bool {
    upload.status.is_finished()
}

/// Processes the upload here, or follows a worker that took it; returns it finished.
async fn process(
    db: &Db,
    project_id: i64,
    upload_id: i64,
    bar: &ProgressBar,
) -> anyhow::Result<Upload> {
    let worker = worker_name();
    // When the upload last moved, and how far it was then.
    let mut moved = (tokio::time::Instant::now(), 0_i64);
    let mut first = true;
    loop {
        let upload = db.get_upload(project_id, upload_id).await?;
        show(bar, &upload);
        if finished(&upload) {
            return Ok(upload);
        }
        if upload.processed_rows != moved.1 {
            moved = (tokio::time::Instant::now(), upload.processed_rows);
        }
        // At first, and again when a worker that took the upload seems gone (its lease ran out).
        let stalled = moved.0.elapsed() > Duration::from_millis(LEASE_MS as u64 + 1000);
        if first || stalled {
            first = false;
            moved.0 = tokio::time::Instant::now();
            if let Some(job) = claim_upload_job(db, upload_id, &worker).await? {
                run_job(db, project_id, upload_id, &job, &worker, bar).await?;
                continue;
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Runs the upload's job with a concurrent task that moves the progress bar.
async fn run_job(
    db: &Db,
    project_id: i64,
    upload_id: i64,
    job: &casecast_store::jobs::Job,
    worker: &str,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let poller = {
        let (db, bar) = (db.clone(), bar.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(POLL).await;
                if let Ok(upload) = db.get_upload(project_id, upload_id).await {
                    show(&bar, &upload);
                }
            }
        })
    };
    let result = casecast_engine::upload::process_upload(
        db,
        upload_id,
        job.id,
        worker,
        &casecast_engine::faults::Faults::none(),
    )
    .await;
    poller.abort();
    match result {
        Ok(()) => {
            db.finish_job(job.id).await?;
            Ok(())
        }
        Err(e) => {
            // Left for a worker (`casecast serve` or `casecast worker`) to resume; a worker that
            // took the job over keeps its lease.
            let taken_over = matches!(&e, casecast_engine::JobError::LeaseLost(_));
            if !taken_over {
                let _ = db
                    .retry_job(job.id, 1000 * job.attempts * job.attempts)
                    .await;
            }
            Err(anyhow!(
                "upload {upload_id} stopped ({e}); a worker (casecast serve or casecast worker) will resume it"
            ))
        }
    }
}

async fn upload(
    db: &Db,
    project: &str,
    id: &str,
    file: &Path,
    mode: Mode,
    results: Option<&Path>,
) -> anyhow::Result<()> {
    let limits = Limits::default();
    let size = std::fs::metadata(file)
        .with_context(|| format!("cannot read '{}'", file.display()))?
        .len();
    if size > limits.max_file_bytes {
        bail!(
            "'{}' is {:.1} MB; the limit is {} MB",
            file.display(),
            size as f64 / 1_048_576.0,
            limits.max_file_bytes / 1_048_576
        );
    }
    let bytes = std::fs::read(file).with_context(|| format!("cannot read '{}'", file.display()))?;
    let p = project_of(db, project).await?;
    let g = group_of(db, &p, id).await?;
    let change = match mode {
        Mode::Add => Change::Add,
        Mode::Remove => Change::Remove,
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let created = db
        .create_upload(p.id, g.id, change, &name, bytes, None)
        .await
        .map_err(|e| match e {
            casecast_store::case_import::ImportError::Store(e) => not_found(e, &p, id),
            e => e.into(),
        })?;
    let bar = progress_bar(file);
    let done = process(db, p.id, created.id, &bar).await;
    bar.finish_and_clear();
    let done = done?;
    if done.status == casecast_core::states::JobStatus::Failed {
        bail!(
            "the upload of '{}' failed: {}",
            file.display(),
            done.error.as_deref().unwrap_or("no reason was recorded")
        );
    }
    if let Some(out) = results {
        write_results(db, p.id, done.id, out).await?;
    }
    println!("{}", counts_line(&done.counts));
    Ok(())
}

async fn write_results(db: &Db, project_id: i64, upload_id: i64, out: &Path) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let mut after = 0;
    loop {
        let page = db
            .upload_results(project_id, upload_id, after, PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.row;
        let full = page.len() == PAGE;
        rows.extend(page.into_iter().map(|r| {
            vec![
                r.row.to_string(),
                r.identifier,
                r.outcome.to_string(),
                r.case_id.unwrap_or_default(),
                r.message,
            ]
        }));
        if !full {
            break;
        }
    }
    let table = Table {
        headers: &["row", "identifier", "outcome", "case_id", "message"],
        rows,
        text_columns: &[1, 3],
    };
    write_table(&table, SheetFormat::of(None, out), "results", out)
}

fn write_table(
    table: &Table<'_>,
    format: SheetFormat,
    sheet: &str,
    out: &Path,
) -> anyhow::Result<()> {
    let bytes = match format {
        SheetFormat::Csv => to_csv(table),
        SheetFormat::Xlsx => {
            to_xlsx(table, sheet).map_err(|e| anyhow!("cannot make the .xlsx file: {e}"))?
        }
    };
    std::fs::write(out, bytes).with_context(|| format!("cannot write '{}'", out.display()))
}

async fn export(
    db: &Db,
    project: &str,
    id: &str,
    format: SheetFormat,
    out: &Path,
) -> anyhow::Result<()> {
    let p = project_of(db, project).await?;
    let g = group_of(db, &p, id).await?;
    let table = casecast_web::downloads::members_table(db, p.id, g.id)
        .await
        .map_err(|e| not_found(e, &p, id))?;
    let count = table.rows.len();
    write_table(&table, format, "members", out)?;
    println!(
        "wrote {count} cases of case group {} '{}' to '{}'",
        g.id,
        g.name,
        out.display()
    );
    Ok(())
}
