//! `surveys responses`: a survey's responses (one row per session, one column per question)
//! written to an `.xlsx` or `.csv` file, read from the database a page at a time.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use casecast_store::case_export::ExportFormat;
use casecast_store::{Db, StoreError};
use clap::Args;

use crate::groups::SheetFormat;

/// `surveys responses`' arguments (a variant of `surveys::SurveysCommand`).
#[derive(Args)]
pub struct ResponsesArgs {
    #[arg(long)]
    project: String,
    /// The survey's ID.
    id: String,
    /// The file's format; by default `.xlsx` for a name ending in .xlsx, else CSV.
    #[arg(long, value_enum)]
    format: Option<SheetFormat>,
    /// The file to write (or give it after the ID).
    #[arg(long, conflicts_with = "file")]
    output: Option<PathBuf>,
    file: Option<PathBuf>,
}

/// Writes the survey's responses to the file named.
pub async fn run(db: &Db, args: ResponsesArgs) -> anyhow::Result<()> {
    let out = args
        .output
        .or(args.file)
        .ok_or_else(|| anyhow!("name the file to write: --output FILE"))?;
    let format = SheetFormat::of(args.format, &out);
    responses(db, &args.project, &args.id, format, &out).await
}

/// Writes the responses next to `out`, then renames the file into place: a failed export
/// leaves no half-written file.
async fn responses(
    db: &Db,
    slug: &str,
    id: &str,
    format: SheetFormat,
    out: &Path,
) -> anyhow::Result<()> {
    let p = db
        .project_by_slug(slug)
        .await
        .with_context(|| format!("project '{slug}'"))?;
    let not_found = || anyhow!("survey {id} not found in project '{slug}'");
    let number: i64 = id.trim().parse().map_err(|_| not_found())?;
    let survey = match db.survey(p.id, number).await {
        Err(StoreError::NotFound(_)) => return Err(not_found()),
        other => other?,
    };
    let format = match format {
        SheetFormat::Csv => ExportFormat::Csv,
        SheetFormat::Xlsx => ExportFormat::Xlsx,
    };
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let part = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in '{}'", dir.display()))?;
    let rows =
        casecast_engine::survey_export::write_responses(db, &p, &survey, format, part.path())
            .await
            .map_err(|e| match e {
                StoreError::Invalid(f) => anyhow!("{}", f.message),
                e => e.into(),
            })?;
    part.persist(out)
        .with_context(|| format!("cannot write '{}'", out.display()))?;
    let noun = if rows == 1 { "session" } else { "sessions" };
    println!(
        "wrote the responses of {rows} {noun} of survey {} '{}' to '{}'",
        survey.id,
        survey.survey.name,
        out.display()
    );
    Ok(())
}
