//! Storage integration tests: every storage function, run on SQLite and on PostgreSQL.
//!
//! One binary (one link, one process) whose modules are named for what they exercise. Each
//! test gets a fresh migrated database from `casecast_testkit::TestDb`.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

mod accounts;
mod broadcast_cancel;
mod broadcast_reruns;
mod broadcast_schedule;
mod broadcasts;
mod case_export;
mod case_groups;
mod case_import;
mod case_import_files;
mod case_import_row_errors;
mod case_queries;
mod cases;
mod gateways;
mod inbound;
mod jobs;
mod keyword_actions;
mod keyword_reads;
mod membership;
mod outbox;
mod projects;
mod reminders;
mod schema;
mod smart_groups;
mod survey_batches;
mod survey_broadcasts;
mod survey_definitions;
mod survey_order;
mod survey_responses;
mod surveys;
mod tokens;
mod uploads;

use casecast_testkit::Workflows;
use std::collections::BTreeMap;

use casecast_core::case::{Case, CaseChanges};
use casecast_core::identifier::{GroupName, Outcome};
use casecast_core::sheet::Limits;
use casecast_core::{CaseId, CountryCode, PhoneNumber, ProjectSlug, TimeZoneName};
use casecast_store::case_groups::{Actor, CaseGroup};
use casecast_store::case_import::{ImportError, ImportReport};
use casecast_store::cases::CaseFilter;
use casecast_store::membership::{Change, ItemResult};
use casecast_store::projects::{NewProject, Project};
use casecast_store::uploads::{ResultRow, Upload};
use casecast_store::Db;

/// A project with this slug, in Kampala, with an optional default phone country.
pub async fn project(db: &Db, slug: &str, country: Option<&str>) -> Project {
    db.create_project(&NewProject {
        slug: ProjectSlug::parse(slug).unwrap(),
        name: format!("Project {slug}"),
        time_zone: TimeZoneName::parse("Africa/Kampala").unwrap(),
        country: country.map(|c| CountryCode::parse(c).unwrap()),
    })
    .await
    .unwrap()
}

/// Changes that create a case with just a name.
pub fn named(name: &str) -> CaseChanges {
    CaseChanges {
        name: Some(name.to_string()),
        ..Default::default()
    }
}

/// Every case the filter lists, walking all pages of `limit`.
pub async fn all_cases(db: &Db, project_id: i64, filter: &CaseFilter, limit: usize) -> Vec<Case> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = db
            .list_cases(project_id, filter, limit, cursor)
            .await
            .unwrap();
        assert!(page.items.len() <= limit, "a page is longer than its limit");
        out.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next.parse::<i64>().expect("a numeric cursor")),
            None => return out,
        }
    }
}

/// A plain connection to the test database, to look at rows the API does not show.
pub async fn raw_pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&casecast_store::db::normalise_url(url).1)
        .await
        .unwrap()
}

/// Imports a file into a project (with the project's default country) under default limits.
pub async fn import(db: &Db, project: &Project, bytes: &[u8], file_name: &str) -> ImportResult {
    import_with(db, project, bytes, file_name, Limits::default()).await
}

/// Imports a file under the given limits.
pub async fn import_with(
    db: &Db,
    project: &Project,
    bytes: &[u8],
    file_name: &str,
    limits: Limits,
) -> ImportResult {
    casecast_engine::import::import_cases(
        db,
        project.id,
        project.country_code(),
        bytes.to_vec(),
        file_name,
        limits,
        &|_| {},
    )
    .await
}

type ImportResult = Result<ImportReport, ImportError>;

/// An .xlsx whose first sheet holds these rows of text cells (an empty text leaves the cell empty).
pub fn xlsx_of_text(rows: &[&[&str]]) -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (r, cells) in rows.iter().enumerate() {
        for (c, text) in cells.iter().enumerate() {
            if !text.is_empty() {
                sheet.write_string(r as u32, c as u16, *text).unwrap();
            }
        }
    }
    book.save_to_buffer().unwrap()
}

/// The project's live cases keyed by external ID.
pub async fn by_external_id(db: &Db, project_id: i64) -> BTreeMap<String, Case> {
    all_cases(db, project_id, &CaseFilter::default(), 500)
        .await
        .into_iter()
        .map(|c| (c.external_id.clone().unwrap_or_default(), c))
        .collect()
}

/// A change made from the web page by nobody in particular.
pub const PAGE: Actor = Actor {
    user_id: None,
    via: "page",
};

/// A case with an optional given case ID, external ID and phone number (read with the
/// project's country `UG`).
pub async fn case_with(
    db: &Db,
    project_id: i64,
    case_id: Option<&str>,
    name: &str,
    external_id: Option<&str>,
    phone: Option<&str>,
) -> Case {
    let ug = CountryCode::parse("UG").unwrap();
    let changes = CaseChanges {
        name: Some(name.to_string()),
        external_id: external_id.map(|e| Some(e.to_string())),
        phone_number: phone.map(|p| Some(PhoneNumber::parse(p, Some(&ug)).unwrap())),
        ..Default::default()
    };
    db.create_case(
        project_id,
        case_id.map(|c| CaseId::parse(c).unwrap()),
        &changes,
    )
    .await
    .unwrap()
}

/// A new case group with this name.
pub async fn group(db: &Db, project_id: i64, name: &str) -> CaseGroup {
    db.create_group(project_id, &GroupName::parse(name).unwrap(), PAGE)
        .await
        .unwrap()
}

/// Owned identifiers.
pub fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Adds or removes identifiers from the page.
pub async fn change(
    db: &Db,
    project_id: i64,
    group_id: i64,
    change: Change,
    identifiers: &[&str],
) -> Vec<ItemResult> {
    db.change_members(project_id, group_id, change, &ids(identifiers), PAGE)
        .await
        .unwrap()
}

/// The outcomes of results, in order.
pub fn outcomes(results: &[ItemResult]) -> Vec<Outcome> {
    results.iter().map(|r| r.outcome).collect()
}

/// Every live member of the group, walking all pages of `limit`.
pub async fn all_members(db: &Db, project_id: i64, group_id: i64, limit: usize) -> Vec<Case> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = db
            .group_members(project_id, group_id, None, limit, cursor)
            .await
            .unwrap();
        assert!(page.items.len() <= limit, "a page is longer than its limit");
        out.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next.parse::<i64>().expect("a numeric cursor")),
            None => return out,
        }
    }
}

/// The case IDs of the group's live members, in list order.
pub async fn member_ids(db: &Db, project_id: i64, group_id: i64) -> Vec<String> {
    all_members(db, project_id, group_id, 1000)
        .await
        .into_iter()
        .map(|c| c.case_id.as_str().to_string())
        .collect()
}

/// Stores an upload and runs its job to the end, as a worker would.
pub async fn upload_and_process(
    db: &Db,
    project_id: i64,
    group_id: i64,
    change: Change,
    file_name: &str,
    bytes: Vec<u8>,
    user_id: Option<i64>,
) -> Upload {
    let created = db
        .create_upload(project_id, group_id, change, file_name, bytes, user_id)
        .await
        .unwrap();
    assert_eq!(created.status, "queued");
    let job = db.claim_job("t").await.unwrap().expect("the upload's job");
    assert_eq!(
        (job.kind, job.ref_id),
        (Some(casecast_store::jobs::JobKind::Upload), created.id)
    );
    db.process_upload(job.ref_id, job.id, "t").await.unwrap();
    db.finish_job(job.id).await.unwrap();
    db.get_upload(project_id, created.id).await.unwrap()
}

/// Every result row of an upload, walking pages of `limit`.
pub async fn all_results(db: &Db, project_id: i64, upload_id: i64, limit: usize) -> Vec<ResultRow> {
    let mut out: Vec<ResultRow> = Vec::new();
    loop {
        let after = out.last().map_or(0, |r| r.row);
        let page = db
            .upload_results(project_id, upload_id, after, limit)
            .await
            .unwrap();
        assert!(page.len() <= limit, "a page is longer than its limit");
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// A CSV of these lines under a header.
pub fn csv(header: &str, lines: &[&str]) -> Vec<u8> {
    let mut text = format!("{header}\n");
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    text.into_bytes()
}
