//! Case import sheets: which column is which, and one row into a set of case changes.

use std::collections::{BTreeMap, HashSet};

use crate::case::{self, CaseChanges, FieldError, STANDARD_FIELDS};
use crate::ids::{CaseId, CountryCode};
use crate::phone::PhoneNumber;
use crate::sheet::{header_key, Headers, Row};

/// Where each known column is; every other column is a property.
#[derive(Clone, Debug)]
pub struct ImportColumns {
    standard: BTreeMap<&'static str, usize>,
    properties: Vec<(usize, String)>,
}

/// One valid row: how to find the case, and what to change.
#[derive(Clone, Debug)]
pub struct ImportRow {
    pub number: usize,
    pub case_id: Option<CaseId>,
    pub external_id: Option<String>,
    pub changes: CaseChanges,
}

/// A row that could not be imported: where, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    pub row: usize,
    pub column: String,
    pub message: String,
}

/// Why a sheet's header row cannot be imported; the text is shown to the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Two columns have the same name (ignoring case); the second as written.
    #[error("the column '{0}' appears twice in the header row")]
    Repeated(String),
    /// No `name` column; `found` lists the header row (or says it has no names).
    #[error("the sheet has no 'name' column; the header row has {found}")]
    NoNameColumn { found: String },
    /// A column that would be a property, with a name no property may have.
    #[error("the column '{column}' cannot be a case property: {reason}")]
    BadProperty { column: String, reason: String },
}

impl ImportColumns {
    /// Maps header names (compared by `sheet::header_key`) to fields; refuses sheets without `name` or with repeated headers.
    pub fn from_headers(headers: &Headers) -> Result<Self, HeaderError> {
        let mut standard = BTreeMap::new();
        let mut properties = Vec::new();
        let mut seen = HashSet::new();
        for (i, raw) in headers.0.iter().enumerate() {
            let name = raw.trim();
            if name.is_empty() {
                continue;
            }
            let lower = name.to_ascii_lowercase();
            if !seen.insert(lower.clone()) {
                return Err(HeaderError::Repeated(name.to_string()));
            }
            let key = header_key(name);
            if let Some(field) = STANDARD_FIELDS.iter().find(|f| header_key(f) == key) {
                // `Phone Number` beside `phone_number` is the same column twice.
                if standard.insert(*field, i).is_some() {
                    return Err(HeaderError::Repeated(name.to_string()));
                }
            } else if lower == "created_at" || lower == "modified_at" {
                // An export's `modified_at`: the database keeps it, a sheet cannot set it.
                continue;
            } else {
                properties.push((i, name.to_string()));
            }
        }
        if !standard.contains_key("name") {
            return Err(HeaderError::NoNameColumn {
                found: if headers.0.iter().all(|h| h.trim().is_empty()) {
                    "no names".to_string()
                } else {
                    headers.list()
                },
            });
        }
        // Checked after the `name` column, so that a sheet of wrong headers hears about that first.
        for (_, name) in &properties {
            case::parse_property_name(name).map_err(|e| HeaderError::BadProperty {
                column: name.clone(),
                reason: e.message,
            })?;
        }
        // Any number of property columns (an export has one per property of all its cases):
        // each case's own limit is checked row by row.
        Ok(Self {
            standard,
            properties,
        })
    }

    fn cell<'r>(&self, row: &'r Row, field: &str) -> Option<&'r str> {
        let v = row.get(*self.standard.get(field)?).trim();
        (!v.is_empty()).then_some(v)
    }

    /// Reads one row. Blank cells leave the case's value as it is.
    pub fn parse_row(
        &self,
        row: &Row,
        country: Option<&CountryCode>,
    ) -> Result<ImportRow, RowError> {
        let err = |e: FieldError| RowError {
            row: row.number,
            column: e.field,
            message: e.message,
        };
        let mut changes = CaseChanges::default();
        let case_id = self
            .cell(row, "case_id")
            .map(|v| CaseId::parse(v).map_err(|e| FieldError::new("case_id", e.0)))
            .transpose()
            .map_err(err)?;
        let external_id = self
            .cell(row, "external_id")
            .map(case::parse_external_id)
            .transpose()
            .map_err(err)?;
        if case_id.is_none() && external_id.is_none() {
            return Err(err(FieldError::new(
                "case_id",
                "the row has neither a case_id nor an external_id; give one so that importing the sheet again updates this case instead of creating another",
            )));
        }
        changes.external_id = external_id.clone().map(Some);
        changes.name = self
            .cell(row, "name")
            .map(case::parse_name)
            .transpose()
            .map_err(err)?;
        changes.case_type = self
            .cell(row, "case_type")
            .map(case::parse_case_type)
            .transpose()
            .map_err(err)?;
        if let Some(v) = self.cell(row, "phone_number") {
            let phone = PhoneNumber::parse(v, country)
                .map_err(|e| err(FieldError::new("phone_number", e.to_string())))?;
            changes.phone_number = Some(Some(phone));
        }
        changes.language_code = self
            .cell(row, "language_code")
            .map(case::parse_language_code)
            .transpose()
            .map_err(err)?
            .map(Some);
        changes.owner_id = self
            .cell(row, "owner_id")
            .map(case::parse_owner_id)
            .transpose()
            .map_err(err)?
            .map(Some);
        changes.closed = self
            .cell(row, "closed")
            .map(case::parse_closed)
            .transpose()
            .map_err(err)?;
        for (col, name) in &self.properties {
            let v = row.get(*col);
            if !v.trim().is_empty() {
                let value = case::parse_property_value(name, v).map_err(err)?;
                changes.properties.insert(name.clone(), Some(value));
            }
        }
        Ok(ImportRow {
            number: row.number,
            case_id,
            external_id,
            changes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(h: &[&str]) -> Headers {
        Headers(h.iter().map(|s| s.to_string()).collect())
    }

    fn row(number: usize, cells: &[&str]) -> Row {
        Row {
            number,
            cells: cells.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn headers_match_ignoring_case_spaces_underscores_and_hyphens() {
        let h = headers(&["Name", "Phone Number", "Case Identifier", "EXTERNAL-ID"]);
        assert_eq!(h.find("phone_number"), Some(1));
        assert_eq!(h.find("case_identifier"), Some(2));
        assert_eq!(h.find("external_id"), Some(3));
        assert_eq!(h.find("case_id"), None, "a prefix is not a match");
        assert_eq!(header_key(" Case_ Identifier "), "caseidentifier");
        let cols = ImportColumns::from_headers(&headers(&[
            "Name",
            "Phone Number",
            "Case Type",
            "External ID",
        ]))
        .unwrap();
        let r = cols
            .parse_row(&row(2, &["Aber", "+256772123456", "mother", "P-1"]), None)
            .unwrap();
        assert_eq!(r.external_id.as_deref(), Some("P-1"));
        assert_eq!(r.changes.case_type.as_deref(), Some("mother"));
        assert_eq!(
            r.changes.phone_number.clone().flatten().unwrap().as_str(),
            "+256772123456"
        );
        assert!(
            r.changes.properties.is_empty(),
            "{:?}",
            r.changes.properties
        );
        let err = ImportColumns::from_headers(&headers(&["name", "Phone Number", "phone_number"]))
            .unwrap_err();
        assert_eq!(err, HeaderError::Repeated("phone_number".into()));
    }

    #[test]
    fn maps_columns_and_reads_a_row() {
        let cols = ImportColumns::from_headers(&headers(&[
            " Name ",
            "EXTERNAL_ID",
            "phone_number",
            "district",
            "closed",
        ]))
        .unwrap();
        let ug = CountryCode::parse("UG").unwrap();
        let r = cols
            .parse_row(
                &row(2, &["Aber Grace", "P-001", "0772 123456", "Gulu", "no"]),
                Some(&ug),
            )
            .unwrap();
        assert_eq!(r.external_id.as_deref(), Some("P-001"));
        assert_eq!(r.changes.name.as_deref(), Some("Aber Grace"));
        assert_eq!(
            r.changes.phone_number.clone().flatten().unwrap().as_str(),
            "+256772123456"
        );
        assert_eq!(r.changes.properties["district"].as_deref(), Some("Gulu"));
        assert_eq!(r.changes.closed, Some(false));
    }

    #[test]
    fn refuses_bad_headers_and_rows() {
        let err = ImportColumns::from_headers(&headers(&["full name", "phone"])).unwrap_err();
        assert!(matches!(err, HeaderError::NoNameColumn { .. }), "{err:?}");
        let err = err.to_string();
        assert!(
            err.contains("no 'name' column") && err.contains("'full name'"),
            "{err}"
        );
        let err = ImportColumns::from_headers(&headers(&[" ", ""])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the sheet has no 'name' column; the header row has no names"
        );
        let err = ImportColumns::from_headers(&headers(&["name", "Name"])).unwrap_err();
        assert_eq!(err, HeaderError::Repeated("Name".into()));
        assert_eq!(
            err.to_string(),
            "the column 'Name' appears twice in the header row"
        );
        let cols = ImportColumns::from_headers(&headers(&["name", "external_id", "phone_number"]))
            .unwrap();
        let e = cols
            .parse_row(&row(7, &["X", "E1", "+256 77"]), None)
            .unwrap_err();
        assert_eq!((e.row, e.column.as_str()), (7, "phone_number"));
        assert!(e.message.contains("+256 77"), "{}", e.message);
        let e = cols.parse_row(&row(8, &["X", "", ""]), None).unwrap_err();
        assert_eq!(e.column, "case_id");
    }

    #[test]
    fn an_exports_dates_are_ignored_and_deleted_is_refused() {
        let cols = ImportColumns::from_headers(&headers(&[
            "case_id",
            "name",
            "modified_at",
            "Created_At",
            "district",
        ]))
        .unwrap();
        let r = cols
            .parse_row(
                &row(
                    2,
                    &[
                        "c-1",
                        "Amina",
                        "2026-01-01T00:00:00Z",
                        "2025-01-01T00:00:00Z",
                        "Gulu",
                    ],
                ),
                None,
            )
            .unwrap();
        assert_eq!(
            r.changes.properties.keys().collect::<Vec<_>>(),
            ["district"],
            "the dates are not properties"
        );
        let err =
            ImportColumns::from_headers(&headers(&["name", "external_id", "deleted"])).unwrap_err();
        assert!(
            matches!(&err, HeaderError::BadProperty { column, .. } if column == "deleted"),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("the column 'deleted' cannot be a case property: "),
            "{err}"
        );
        for reserved in ["modified_at", "CREATED_AT", "deleted"] {
            assert!(case::parse_property_name(reserved).is_err(), "{reserved}");
        }
    }
}
