//! `surveys …`: survey definitions from the command line, read as the API answers them.
//! (`surveys responses` writes a survey's responses; it lives beside these as a variant of
//! [`SurveysCommand`].)

use anyhow::{anyhow, Context};
use casecast_store::projects::Project;
use casecast_store::{Db, StoreError};
use casecast_web::api::surveys::SurveyJson;
use clap::Subcommand;

use crate::admin::open;
use crate::config::Config;

/// Surveys read per page when listing.
const PAGE: usize = 500;

#[derive(Subcommand)]
pub enum SurveysCommand {
    /// List the project's surveys, newest first: ID, name, number of questions, and sessions
    /// active, completed, expired and cancelled, tab-separated.
    List {
        #[arg(long)]
        project: String,
    },
    /// Print a survey as JSON, as the API's GET /surveys/{id} answers it.
    Show {
        #[arg(long)]
        project: String,
        id: String,
    },
    /// Write a survey's responses to an .xlsx or .csv file: one row per session (case_id,
    /// external_id, name, phone_number, status, started_at, completed_at), then one column per
    /// question key.
    Responses(crate::survey_responses::ResponsesArgs),
}

pub async fn surveys(cfg: &Config, command: SurveysCommand) -> anyhow::Result<()> {
    let db = open(cfg).await?;
    let result = run(&db, command).await;
    db.close().await;
    result
}

async fn run(db: &Db, command: SurveysCommand) -> anyhow::Result<()> {
    match command {
        SurveysCommand::Responses(args) => crate::survey_responses::run(db, args).await?,
        SurveysCommand::List { project } => {
            let p = project_of(db, &project).await?;
            let mut cursor = None;
            loop {
                let page = db.survey_overviews(p.id, PAGE, cursor).await?;
                for o in &page.items {
                    let n = |status: &str| o.sessions.get(status).copied().unwrap_or(0);
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        o.stored.id,
                        field(&o.stored.survey.name),
                        o.stored.survey.questions.len(),
                        n("active"),
                        n("completed"),
                        n("expired"),
                        n("cancelled"),
                    );
                }
                match page.next_cursor.and_then(|c| c.parse::<i64>().ok()) {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        SurveysCommand::Show { project, id } => {
            let p = project_of(db, &project).await?;
            let number: i64 = id
                .trim()
                .parse()
                .map_err(|_| anyhow!("'{id}' is not a survey ID (a number)"))?;
            let overview = db
                .survey_overview(p.id, number)
                .await
                .map_err(|e| not_found(e, &p, &id))?;
            let json = serde_json::to_string_pretty(&SurveyJson::from(overview))?;
            println!("{json}");
        }
    }
    Ok(())
}

async fn project_of(db: &Db, slug: &str) -> anyhow::Result<Project> {
    db.project_by_slug(slug)
        .await
        .with_context(|| format!("project '{slug}'"))
}

fn not_found(e: StoreError, project: &Project, id: &str) -> anyhow::Error {
    match e {
        StoreError::NotFound("survey") => anyhow!(
            "survey {} not found in project '{}'",
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
