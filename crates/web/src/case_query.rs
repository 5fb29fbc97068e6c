//! The case list's filters as query parameters: one reading for `GET /cases`, the case
//! exports and the case list page, so that an export holds what the list shows.

use casecast_core::case;
use casecast_core::PhoneNumber;
use casecast_store::cases::CaseFilter;
use casecast_store::projects::Project;
use casecast_store::{Db, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

/// Filters of the case list (every one optional; together they narrow the list).
#[derive(Clone, Debug, Default, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CaseQuery {
    /// A case ID or phone number, the start of an external ID, or part of the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// Exactly this case type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_type: Option<String>,
    /// `true`: closed cases only; `false`: open cases only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<bool>)]
    pub closed: Option<String>,
    /// Members of this case group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<i64>)]
    pub group_id: Option<String>,
    /// `true`: cases with a phone number; `false`: cases without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<bool>)]
    pub has_phone: Option<String>,
    /// Cases changed at or after this instant: RFC 3339 (`2026-11-01T08:00:00Z`) or a date
    /// (`2026-11-01`, from midnight in the project's time zone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_since: Option<String>,
    /// Exact external ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Any common way of writing the number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// A case query: `district = Gulu AND age >= 18` (the language is in docs/cases.md, Case queries). An error
    /// says where: `query: at 14: expected a value after '>='`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Include soft-deleted cases (not with exports, which hold live cases only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<bool>)]
    pub include_deleted: Option<String>,
}

/// Why the filters could not be read: the parameter and what is wrong, or a missing group.
#[derive(Debug)]
pub enum QueryError {
    Invalid(String),
    /// The case query is wrong (the API's `invalid_query`).
    BadQuery(String),
    GroupNotFound,
    Store(StoreError),
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn yes_no(field: &str, v: &Option<String>) -> Result<Option<bool>, QueryError> {
    match given(v).map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(QueryError::Invalid(format!(
            "{field}: '{other}' is not true or false"
        ))),
    }
}

/// Longest text filter, in characters.
const MAX_TEXT: usize = 255;

impl CaseQuery {
    /// Every parameter with its name, in the order of query strings.
    fn fields(&self) -> [(&'static str, &Option<String>); 10] {
        [
            ("q", &self.q),
            ("query", &self.query),
            ("case_type", &self.case_type),
            ("closed", &self.closed),
            ("group_id", &self.group_id),
            ("has_phone", &self.has_phone),
            ("modified_since", &self.modified_since),
            ("external_id", &self.external_id),
            ("phone_number", &self.phone_number),
            ("include_deleted", &self.include_deleted),
        ]
    }

    /// Whether any filter is set (the page then counts what matches).
    pub fn is_filtered(&self) -> bool {
        self.fields().iter().any(|(_, v)| given(v).is_some())
    }

    /// The filter for the store; a group must be the project's.
    pub async fn filter(&self, db: &Db, project: &Project) -> Result<CaseFilter, QueryError> {
        for (field, v) in [
            ("q", &self.q),
            ("case_type", &self.case_type),
            ("external_id", &self.external_id),
            ("phone_number", &self.phone_number),
        ] {
            if given(v).is_some_and(|v| v.chars().count() > MAX_TEXT) {
                return Err(QueryError::Invalid(format!(
                    "{field}: longer than {MAX_TEXT} characters"
                )));
            }
        }
        let query = match given(&self.query) {
            Some(text) => {
                casecast_core::case_query::CaseQuery::parse(text)
                    .map_err(|e| QueryError::BadQuery(format!("query: {e}")))?;
                Some(text.to_string())
            }
            None => None,
        };
        let country = project.country_code();
        let phone_number = match given(&self.phone_number) {
            Some(p) => Some(
                PhoneNumber::parse(p, country.as_ref())
                    .map_err(|e| QueryError::Invalid(format!("phone_number: {e}")))?,
            ),
            None => None,
        };
        let case_type = given(&self.case_type)
            .map(case::parse_case_type)
            .transpose()
            .map_err(|e| QueryError::Invalid(format!("case_type: {}", e.message)))?;
        let group_id = match given(&self.group_id) {
            Some(g) => {
                let id = g.parse::<i64>().map_err(|_| {
                    QueryError::Invalid(format!("group_id: '{g}' is not a case group ID"))
                })?;
                match db.get_group(project.id, id).await {
                    Ok(_) => Some(id),
                    Err(StoreError::NotFound(_)) => return Err(QueryError::GroupNotFound),
                    Err(e) => return Err(QueryError::Store(e)),
                }
            }
            None => None,
        };
        let modified_since = match given(&self.modified_since) {
            Some(v) => Some(instant(v, project).ok_or_else(|| {
                QueryError::Invalid(format!(
                    "modified_since: '{v}' is neither a date (2026-11-01) nor an RFC 3339 time (2026-11-01T08:00:00Z)"
                ))
            })?),
            None => None,
        };
        Ok(CaseFilter {
            external_id: given(&self.external_id).map(str::to_string),
            phone_number,
            q: given(&self.q).map(str::to_string),
            country,
            include_deleted: yes_no("include_deleted", &self.include_deleted)?.unwrap_or(false),
            case_type,
            closed: yes_no("closed", &self.closed)?,
            group_id,
            has_phone: yes_no("has_phone", &self.has_phone)?,
            modified_since,
            query,
            time_zone: Some(project.zone()),
        })
    }

    /// The filters as a query string (without `?`), for links that keep them.
    pub fn query_string(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.fields() {
            if let Some(v) = given(v) {
                out.append_pair(k, v);
            }
        }
        out.finish()
    }
}

/// An RFC 3339 instant, or a date read as midnight in the project's time zone.
fn instant(v: &str, project: &Project) -> Option<i64> {
    if let Some(ms) = casecast_core::time::parse_rfc3339(v) {
        return Some(ms);
    }
    let date: jiff::civil::Date = v.parse().ok()?;
    let zoned = date.to_zoned(project.zone()).ok()?;
    Some(zoned.timestamp().as_millisecond())
}
