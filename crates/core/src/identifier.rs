//! Identifier resolution rules: what a text written by a user may be (a case ID, an external ID,
//! a phone number), and the outcomes of adding or removing the case it names.

use serde::Serialize;

use crate::ids::{CaseId, CountryCode};
use crate::phone::PhoneNumber;

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

/// Reads a user-written identifier; `Err` carries why it can be none of the kinds allowed.
pub fn classify(
    raw: &str,
    kind: IdentifierKind,
    country: Option<&CountryCode>,
) -> Result<Identifier, String> {
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
        let why = match (kind, phone_result) {
            (IdentifierKind::PhoneNumber, Some(Err(e))) => e.to_string(),
            (IdentifierKind::CaseId, _) => format!("'{text}' is not a valid case ID"),
            _ if text.chars().count() > 255 => {
                "the identifier is longer than 255 characters".to_string()
            }
            _ => format!("'{text}' cannot be a case ID, an external ID or a phone number"),
        };
        return Err(why);
    }
    Ok(Identifier {
        text,
        case_id,
        external_id,
        phone,
    })
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
        assert!(err.contains("too short"), "{err}");
        assert!(classify(&"x".repeat(300), IdentifierKind::Any, None)
            .unwrap_err()
            .contains("255"));
        assert!(classify("a\u{7}b", IdentifierKind::Any, None).is_err());
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
