//! Storage integration tests: every storage function, run on SQLite and on PostgreSQL.
//!
//! One binary (one link, one process) whose modules are named for what they exercise. Each
//! test gets a fresh migrated database from `casecast_testkit::TestDb`.

mod accounts;
mod case_import;
mod case_import_files;
mod case_import_row_errors;
mod cases;
mod projects;
mod tokens;

use std::collections::BTreeMap;

use casecast_core::case::{Case, CaseChanges};
use casecast_core::sheet::Limits;
use casecast_core::{CountryCode, ProjectSlug, TimeZoneName};
use casecast_store::case_import::{ImportError, ImportReport};
use casecast_store::cases::CaseFilter;
use casecast_store::projects::{NewProject, Project};
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
    db.import_cases(
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
