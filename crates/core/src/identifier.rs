//! Identifier resolution rules: what a text written by a user may be (a case ID, an external ID,
//! a phone number), and the outcomes of adding or removing the case it names.

use serde::Serialize;

use crate::ids::{CaseId, CountryCode};
use crate::phone::{PhoneError, PhoneNumber};
use crate::sheet::{self, Headers, Limits, Row, RowSink, SheetError};

/// Which kinds a value may be looked up as: a `case_identifier` is any kind; typed columns one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentifierKind {
    Any,
    CaseId,
    ExternalId,
    PhoneNumber,
}

impl IdentifierKind {
    /// The column name in sheets.
    pub fn column(self) -> &'static str {
        match self {
            IdentifierKind::Any => "case_identifier",
            IdentifierKind::CaseId => "case_id",
            IdentifierKind::ExternalId => "external_id",
            IdentifierKind::PhoneNumber => "phone_number",
        }
    }
}

/// A trimmed identifier and the forms it can be looked up as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identifier {
    pub text: String,
    pub case_id: Option<CaseId>,
    pub external_id: Option<String>,
    pub phone: Option<PhoneNumber>,
}

/// Why a text can be none of the kinds of identifier allowed; the text is shown to the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    /// A `phone_number` value that is not a phone number.
    #[error(transparent)]
    Phone(#[from] PhoneError),
    /// A `case_id` value that is not a case ID.
    #[error("'{0}' is not a valid case ID")]
    NotACaseId(String),
    #[error("the identifier is longer than 255 characters")]
    TooLong,
    #[error("'{0}' cannot be a case ID, an external ID or a phone number")]
    Unrecognised(String),
}

/// Reads a user-written identifier; `Err` says why it can be none of the kinds allowed.
pub fn classify(
    raw: &str,
    kind: IdentifierKind,
    country: Option<&CountryCode>,
) -> Result<Identifier, IdentifierError> {
    let text = raw.trim().to_string();
    let any = kind == IdentifierKind::Any;
    let case_id = (any || kind == IdentifierKind::CaseId)
        .then(|| CaseId::parse(&text).ok())
        .flatten();
    let external_ok =
        !text.is_empty() && text.chars().count() <= 255 && !text.chars().any(char::is_control);
    let external_id =
        ((any || kind == IdentifierKind::ExternalId) && external_ok).then(|| text.clone());
    let phone_result =
        (any || kind == IdentifierKind::PhoneNumber).then(|| PhoneNumber::parse(&text, country));
    let phone = phone_result.clone().and_then(Result::ok);
    if case_id.is_none() && external_id.is_none() && phone.is_none() {
        return Err(match (kind, phone_result) {
            (IdentifierKind::PhoneNumber, Some(Err(e))) => IdentifierError::Phone(e),
            (IdentifierKind::CaseId, _) => IdentifierError::NotACaseId(text),
            _ if text.chars().count() > 255 => IdentifierError::TooLong,
            _ => IdentifierError::Unrecognised(text),
        });
    }
    Ok(Identifier {
        text,
        case_id,
        external_id,
        phone,
    })
}

/// Identifier columns of an upload sheet, typed ones first: a row uses the first not blank.
const UPLOAD_COLUMNS: [IdentifierKind; 4] = [
    IdentifierKind::CaseId,
    IdentifierKind::ExternalId,
    IdentifierKind::PhoneNumber,
    IdentifierKind::Any,
];

/// Finds an upload sheet's identifier columns (headers compared by `sheet::header_key`); the
/// error lists the headers found when there is none.
pub fn identifier_columns(headers: &Headers) -> Result<Vec<(usize, IdentifierKind)>, SheetError> {
    let cols: Vec<(usize, IdentifierKind)> = UPLOAD_COLUMNS
        .iter()
        .filter_map(|k| headers.find(k.column()).map(|i| (i, *k)))
        .collect();
    if cols.is_empty() {
        let found = if headers.0.iter().all(|h| h.trim().is_empty()) {
            "no names".to_string()
        } else {
            headers.list()
        };
        return Err(SheetError::Sink(format!(
            "the sheet has no case_identifier column (nor case_id, external_id or phone_number); its header row has {found}"
        )));
    }
    Ok(cols)
}

/// Reads only an upload sheet's header row and checks that it has an identifier column, so
/// that a sheet without one is refused when it is uploaded rather than failing as a job.
/// `Ok` when the header row could not be read at all (the job says why).
pub fn check_upload_headers(bytes: &[u8], file_name: &str) -> Result<(), SheetError> {
    /// Stops the read at the first data row: only the header row matters here.
    struct HeaderRow<'a>(&'a str, Option<Result<(), SheetError>>);
    impl RowSink for HeaderRow<'_> {
        fn headers(&mut self, headers: &Headers) -> Result<(), SheetError> {
            let verdict = identifier_columns(headers).map(|_| ());
            self.1 = Some(verdict.map_err(|e| SheetError::Sink(format!("'{}': {e}", self.0))));
            Err(SheetError::Sink(String::new()))
        }
        fn row(&mut self, _: Row) -> Result<(), SheetError> {
            Err(SheetError::Sink(String::new()))
        }
    }
    let mut sink = HeaderRow(file_name, None);
    // Only the header row's verdict counts: a file that cannot be read is left to the job,
    // which reads it whole and reports that with the rest.
    let _ = sheet::read_sheet(bytes, file_name, &Limits::default(), &mut sink);
    sink.1.unwrap_or(Ok(()))
}

/// What happened to one identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Added,
    AlreadyInGroup,
    Removed,
    NotInGroup,
    DuplicateInFile,
    NotFound,
    Ambiguous,
    Deleted,
    Invalid,
    Blank,
}

impl Outcome {
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Added => "added",
            Outcome::AlreadyInGroup => "already_in_group",
            Outcome::Removed => "removed",
            Outcome::NotInGroup => "not_in_group",
            Outcome::DuplicateInFile => "duplicate_in_file",
            Outcome::NotFound => "not_found",
            Outcome::Ambiguous => "ambiguous",
            Outcome::Deleted => "deleted",
            Outcome::Invalid => "invalid",
            Outcome::Blank => "blank",
        }
    }

    /// The outcome in words, as pages show it.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Added => "added",
            Outcome::AlreadyInGroup => "already in the group",
            Outcome::Removed => "removed",
            Outcome::NotInGroup => "not in the group",
            Outcome::DuplicateInFile => "repeats an earlier row",
            Outcome::NotFound => "no such case",
            Outcome::Ambiguous => "matches several cases",
            Outcome::Deleted => "the case was deleted",
            Outcome::Invalid => "not an identifier",
            Outcome::Blank => "blank row",
        }
    }

    /// Whether a person should look at the row: nothing happened because the identifier
    /// named no single live case (or named one already met in the file).
    pub fn is_problem(self) -> bool {
        matches!(
            self,
            Outcome::DuplicateInFile
                | Outcome::NotFound
                | Outcome::Ambiguous
                | Outcome::Deleted
                | Outcome::Invalid
        )
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Outcome> {
        ALL_OUTCOMES.iter().copied().find(|o| o.as_str() == s)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every outcome, in report order.
pub const ALL_OUTCOMES: [Outcome; 10] = [
    Outcome::Added,
    Outcome::AlreadyInGroup,
    Outcome::Removed,
    Outcome::NotInGroup,
    Outcome::DuplicateInFile,
    Outcome::NotFound,
    Outcome::Ambiguous,
    Outcome::Deleted,
    Outcome::Invalid,
    Outcome::Blank,
];

/// A case group's name: trimmed, 1–255 characters; compared ignoring case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupName(String);

impl GroupName {
    /// Checks the name.
    pub fn parse(s: &str) -> Result<Self, crate::InvalidValue> {
        let v = s.trim();
        if v.is_empty() {
            return Err(crate::InvalidValue("name: a group needs a name".into()));
        }
        if v.chars().count() > 255 {
            return Err(crate::InvalidValue(format!(
                "name: must be at most 255 characters (it has {})",
                v.chars().count()
            )));
        }
        if v.chars().any(char::is_control) {
            return Err(crate::InvalidValue(
                "name: must not contain control characters".into(),
            ));
        }
        Ok(Self(v.to_string()))
    }
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The key that must be unique in a project.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_identifiers() {
        let ug = CountryCode::parse("UG").unwrap();
        let id = classify(" +256 772 123 456 ", IdentifierKind::Any, Some(&ug)).unwrap();
        assert_eq!(id.text, "+256 772 123 456");
        assert_eq!(id.phone.unwrap().as_str(), "+256772123456");
        assert!(id.case_id.is_none(), "spaces and '+' are not in case IDs");
        assert_eq!(id.external_id.as_deref(), Some("+256 772 123 456"));
        let id = classify("GUL-0001", IdentifierKind::Any, Some(&ug)).unwrap();
        assert!(id.case_id.is_some() && id.external_id.is_some() && id.phone.is_none());
        let id = classify("0772123456", IdentifierKind::ExternalId, Some(&ug)).unwrap();
        assert!(id.phone.is_none() && id.case_id.is_none());
        let err = classify("+256 77", IdentifierKind::PhoneNumber, Some(&ug)).unwrap_err();
        assert_eq!(
            err,
            IdentifierError::Phone(PhoneError::TooShort("+256 77".into()))
        );
        assert_eq!(
            err.to_string(),
            "'+256 77' is too short to be a phone number"
        );
        let err = classify(&"x".repeat(300), IdentifierKind::Any, None).unwrap_err();
        assert_eq!(err, IdentifierError::TooLong);
        assert_eq!(
            err.to_string(),
            "the identifier is longer than 255 characters"
        );
        let err = classify("a\u{7}b", IdentifierKind::Any, None).unwrap_err();
        assert_eq!(err, IdentifierError::Unrecognised("a\u{7}b".into()));
        let err = classify(" x y ", IdentifierKind::CaseId, None).unwrap_err();
        assert_eq!(err.to_string(), "'x y' is not a valid case ID");
        // A typed phone column names the phone rule; other columns say what it cannot be.
        let err = classify("abc", IdentifierKind::PhoneNumber, Some(&ug)).unwrap_err();
        assert!(
            matches!(err, IdentifierError::Phone(PhoneError::Letters(_))),
            "{err:?}"
        );
        let err = classify(&"9".repeat(256), IdentifierKind::ExternalId, None).unwrap_err();
        assert_eq!(err, IdentifierError::TooLong);
    }

    #[test]
    fn an_upload_without_an_identifier_column_is_found_from_its_header_row() {
        let e = check_upload_headers(b"Name,Mobile\nAber,0772\n", "people.csv").unwrap_err();
        assert_eq!(
            e.to_string(),
            "'people.csv': the sheet has no case_identifier column (nor case_id, external_id or \
             phone_number); its header row has 'Name', 'Mobile'"
        );
        assert!(check_upload_headers(b"Name, Case Identifier\nA,1\n", "a.csv").is_ok());
        assert!(check_upload_headers(b"Phone Number\n0772\n", "a.csv").is_ok());
    }

    #[test]
    fn group_names() {
        assert_eq!(GroupName::parse("  Study A ").unwrap().as_str(), "Study A");
        assert_eq!(
            GroupName::parse("Study A").unwrap().key(),
            GroupName::parse("STUDY a").unwrap().key()
        );
        assert!(GroupName::parse(" ").is_err());
        assert!(GroupName::parse(&"n".repeat(256)).is_err());
        assert!(GroupName::parse(&"n".repeat(255)).is_ok());
        assert_eq!(
            Outcome::parse("already_in_group"),
            Some(Outcome::AlreadyInGroup)
        );
    }
}
