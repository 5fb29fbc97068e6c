//! Sheets people download (a group's members, an upload's report, the example sheet), shared by
//! the API and the pages.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use casecast_core::sheet_out::{self, Table};
use casecast_store::{Db, StoreResult};

/// The content type of `.xlsx` files.
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
/// The columns of member exports.
pub const MEMBER_COLUMNS: [&str; 8] = [
    "case_id",
    "external_id",
    "name",
    "phone_number",
    "case_type",
    "language_code",
    "owner_id",
    "closed",
];
/// The columns of upload reports.
pub const RESULT_COLUMNS: [&str; 5] = ["row", "identifier", "outcome", "case_id", "message"];

/// A file download response.
pub fn download(bytes: Vec<u8>, content_type: &'static str, file_name: &str) -> Response {
    let disposition = format!(
        "attachment; filename=\"{}\"",
        file_name.replace(['"', '\\', '\r', '\n'], "_")
    );
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response()
}

/// A table as `{stem}.xlsx` (one sheet named `sheet`) or `{stem}.csv`.
pub fn sheet_download(
    table: &Table<'_>,
    xlsx: bool,
    stem: &str,
    sheet: &str,
) -> Result<Response, rust_xlsxwriter::XlsxError> {
    Ok(if xlsx {
        download(
            sheet_out::to_xlsx(table, sheet)?,
            XLSX,
            &format!("{stem}.xlsx"),
        )
    } else {
        download(
            sheet_out::to_csv(table),
            "text/csv; charset=utf-8",
            &format!("{stem}.csv"),
        )
    })
}

/// Every live member of a group, as a table with IDs and phone numbers kept as text.
pub async fn members_table(db: &Db, project_id: i64, group_id: i64) -> StoreResult<Table<'static>> {
    let mut rows = Vec::new();
    let mut cursor = None;
    loop {
        let page = db
            .group_members(project_id, group_id, None, 5000, cursor)
            .await?;
        rows.extend(page.items.into_iter().map(|c| {
            vec![
                c.case_id.as_str().to_string(),
                c.external_id.unwrap_or_default(),
                c.name,
                c.phone_number.map(String::from).unwrap_or_default(),
                c.case_type,
                c.language_code.unwrap_or_default(),
                c.owner_id.unwrap_or_default(),
                c.closed.to_string(),
            ]
        }));
        match page.next_cursor.and_then(|c| c.parse().ok()) {
            Some(c) => cursor = Some(c),
            None => {
                return Ok(Table {
                    headers: &MEMBER_COLUMNS,
                    rows,
                    text_columns: &[0, 1, 3],
                })
            }
        }
    }
}

/// Every result row of an upload, in row order.
pub async fn results_table(
    db: &Db,
    project_id: i64,
    upload_id: i64,
) -> StoreResult<Table<'static>> {
    let mut rows = Vec::new();
    let mut after = 0;
    loop {
        let page = db
            .upload_results(project_id, upload_id, after, 10_000)
            .await?;
        let Some(last) = page.last() else {
            return Ok(Table {
                headers: &RESULT_COLUMNS,
                rows,
                text_columns: &[1, 3],
            });
        };
        after = last.row;
        rows.extend(page.into_iter().map(|r| {
            vec![
                r.row.to_string(),
                r.identifier,
                r.outcome,
                r.case_id.unwrap_or_default(),
                r.message,
            ]
        }));
    }
}
