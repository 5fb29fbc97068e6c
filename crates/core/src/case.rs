//! Cases: the fields a case has, their rules, and how a set of changes applies to one.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ids::CaseId;
use crate::phone::PhoneNumber;

/// The most properties one case may hold.
pub const MAX_PROPERTIES: usize = 200;
/// The longest property value, in characters.
pub const MAX_PROPERTY_VALUE: usize = 4096;
/// Column names with a meaning of their own; every other column of an import is a property.
pub const STANDARD_FIELDS: [&str; 8] = [
    "case_id",
    "external_id",
    "name",
    "phone_number",
    "case_type",
    "language_code",
    "owner_id",
    "closed",
];

/// Fields the database keeps, which no sheet or request sets: like the standard fields, they
/// cannot be property names (imports ignore `created_at` and `modified_at` columns, so that an
/// export can be imported again).
pub const READ_ONLY_FIELDS: [&str; 3] = ["deleted", "created_at", "modified_at"];

/// A case as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Case {
    pub case_id: CaseId,
    pub case_type: String,
    pub name: String,
    pub external_id: Option<String>,
    pub phone_number: Option<PhoneNumber>,
    pub language_code: Option<String>,
    pub owner_id: Option<String>,
    pub closed: bool,
    pub deleted: bool,
    pub properties: BTreeMap<String, String>,
    pub created_at: i64,
    pub modified_at: i64,
}

/// A field that failed its rule: which one, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Changes to a case. `None` leaves a field as it is; `Some(None)` clears a field that may be empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaseChanges {
    pub name: Option<String>,
    pub case_type: Option<String>,
    pub external_id: Option<Option<String>>,
    pub phone_number: Option<Option<PhoneNumber>>,
    pub language_code: Option<Option<String>>,
    pub owner_id: Option<Option<String>>,
    pub closed: Option<bool>,
    /// `None` removes the property.
    pub properties: BTreeMap<String, Option<String>>,
}

impl CaseChanges {
    /// Builds a new case from these changes; `name` is required.
    pub fn create(&self, case_id: CaseId, now: i64) -> Result<Case, FieldError> {
        let name = self
            .name
            .clone()
            .ok_or_else(|| FieldError::new("name", "a new case needs a name"))?;
        let mut case = Case {
            case_id,
            case_type: DEFAULT_CASE_TYPE.to_string(),
            name,
            external_id: None,
            phone_number: None,
            language_code: None,
            owner_id: None,
            closed: false,
            deleted: false,
            properties: BTreeMap::new(),
            created_at: now,
            modified_at: now,
        };
        self.apply(&mut case);
        Ok(case)
    }

    /// Applies the changes; returns whether anything differs (so a re-import changes nothing).
    pub fn apply(&self, case: &mut Case) -> bool {
        let before = case.clone();
        if let Some(v) = &self.name {
            case.name.clone_from(v);
        }
        if let Some(v) = &self.case_type {
            case.case_type.clone_from(v);
        }
        if let Some(v) = &self.external_id {
            case.external_id.clone_from(v);
        }
        if let Some(v) = &self.phone_number {
            case.phone_number.clone_from(v);
        }
        if let Some(v) = &self.language_code {
            case.language_code.clone_from(v);
        }
        if let Some(v) = &self.owner_id {
            case.owner_id.clone_from(v);
        }
        if let Some(v) = self.closed {
            case.closed = v;
        }
        for (k, v) in &self.properties {
            match v {
                Some(v) => {
                    case.properties.insert(k.clone(), v.clone());
                }
                None => {
                    case.properties.remove(k);
                }
            }
        }
        *case != before
    }

    /// Checks the rules that need the whole case (the property count).
    pub fn check_result(case: &Case) -> Result<(), FieldError> {
        if case.properties.len() > MAX_PROPERTIES {
            return Err(FieldError::new(
                "properties",
                format!("a case may have at most {MAX_PROPERTIES} properties"),
            ));
        }
        Ok(())
    }
}

/// The case type given to cases created without one.
pub const DEFAULT_CASE_TYPE: &str = "case";

fn bounded(field: &str, value: &str, max: usize) -> Result<String, FieldError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if v.chars().any(|c| c.is_control()) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(v.to_string())
}

/// A case name: trimmed, 1–255 characters.
pub fn parse_name(value: &str) -> Result<String, FieldError> {
    bounded("name", value, 255)
}

/// An external ID: trimmed, 1–255 characters, exact match when looked up.
pub fn parse_external_id(value: &str) -> Result<String, FieldError> {
    bounded("external_id", value, 255)
}

/// An owner ID: trimmed, 1–255 characters.
pub fn parse_owner_id(value: &str) -> Result<String, FieldError> {
    bounded("owner_id", value, 255)
}

/// A case type: 1–64 letters, digits, `_` or `-`.
pub fn parse_case_type(value: &str) -> Result<String, FieldError> {
    let v = bounded("case_type", value, 64)?;
    if v.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        Ok(v)
    } else {
        Err(FieldError::new(
            "case_type",
            format!("'{v}' may only have letters, digits, '_' and '-'"),
        ))
    }
}

/// A language code such as `en`, `lg`, `ach` or `pt-BR`.
pub fn parse_language_code(value: &str) -> Result<String, FieldError> {
    let v = value.trim();
    let mut parts = v.split('-');
    let primary_ok = parts
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphabetic()));
    let rest_ok =
        parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if primary_ok && rest_ok && v.len() <= 35 {
        Ok(v.to_string())
    } else {
        Err(FieldError::new(
            "language_code",
            format!("'{v}' is not a language code (such as en, lg or pt-BR)"),
        ))
    }
}

/// A yes/no cell or value: true/false, yes/no, 1/0, closed/open.
pub fn parse_closed(value: &str) -> Result<bool, FieldError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "closed" => Ok(true),
        "false" | "no" | "n" | "0" | "open" => Ok(false),
        other => Err(FieldError::new(
            "closed",
            format!("'{other}' is not a yes/no value (use true or false)"),
        )),
    }
}

/// A property name: 1–64 letters, digits, `_`, `-` or `.`, and not one of the standard fields.
pub fn parse_property_name(value: &str) -> Result<String, FieldError> {
    let v = value.trim();
    let ok = (1..=64).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        return Err(FieldError::new(
            v,
            "a property name has 1 to 64 letters, digits, '_', '-' or '.'",
        ));
    }
    if STANDARD_FIELDS.contains(&v.to_ascii_lowercase().as_str())
        || READ_ONLY_FIELDS.iter().any(|f| v.eq_ignore_ascii_case(f))
    {
        return Err(FieldError::new(
            v,
            "is a standard case field, not a property",
        ));
    }
    Ok(v.to_string())
}

/// A property value: at most 4096 characters (kept as written, without surrounding spaces).
pub fn parse_property_value(name: &str, value: &str) -> Result<String, FieldError> {
    let v = value.trim();
    if v.contains('\0') {
        return Err(FieldError::new(name, "must not contain a NUL character"));
    }
    if v.chars().count() > MAX_PROPERTY_VALUE {
        return Err(FieldError::new(
            name,
            format!("must be at most {MAX_PROPERTY_VALUE} characters"),
        ));
    }
    Ok(v.to_string())
}

/// A JSON number as a property's text: plain decimals, never an exponent. JSON writes 0.000008
/// as `8e-6`, which a survey reply, a case query and a spreadsheet would not read as that number
/// (found by the `survey_answer` fuzz target).
pub fn number_text(n: &serde_json::Number) -> String {
    match (n.as_i64(), n.as_u64(), n.as_f64()) {
        (Some(i), _, _) => i.to_string(),
        (None, Some(u), _) => u.to_string(),
        // Rust writes a float in full, the shortest digits that read back as it.
        (None, None, Some(f)) => f.to_string(),
        (None, None, None) => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_without_exponents() {
        let text = |v: serde_json::Value| match v {
            serde_json::Value::Number(n) => number_text(&n),
            other => panic!("{other} is no number"),
        };
        // serde_json writes these `8e-6` and `1e21`.
        assert_eq!(text(serde_json::json!(0.000008)), "0.000008");
        assert_eq!(text(serde_json::json!(1e21)), "1000000000000000000000");
        assert_eq!(text(serde_json::json!(12)), "12");
        assert_eq!(text(serde_json::json!(-0.25)), "-0.25");
        assert_eq!(text(serde_json::json!(u64::MAX)), u64::MAX.to_string());
    }

    #[test]
    fn apply_reports_real_changes_only() {
        let changes = CaseChanges {
            name: Some("Aber Grace".into()),
            phone_number: Some(Some(PhoneNumber::parse("+256772123456", None).unwrap())),
            properties: [("district".to_string(), Some("Gulu".to_string()))].into(),
            ..Default::default()
        };
        let mut case = changes.create(CaseId::new(), 1).unwrap();
        assert_eq!(case.case_type, "case");
        assert!(
            !changes.apply(&mut case),
            "the same changes again change nothing"
        );
        let clear = CaseChanges {
            phone_number: Some(None),
            properties: [("district".to_string(), None)].into(),
            ..Default::default()
        };
        assert!(clear.apply(&mut case));
        assert_eq!(case.phone_number, None);
        assert!(case.properties.is_empty());
    }

    #[test]
    fn field_rules() {
        assert!(parse_name("  ").is_err());
        assert_eq!(parse_name(" Okello ").unwrap(), "Okello");
        assert!(parse_name(&"x".repeat(256)).is_err());
        assert!(parse_language_code("en").is_ok());
        assert!(parse_language_code("pt-BR").is_ok());
        assert!(parse_language_code("english").is_err());
        assert!(parse_closed("Yes").unwrap());
        assert!(!parse_closed("false").unwrap());
        assert!(parse_closed("maybe").is_err());
        assert!(parse_property_name("hiv_status").is_ok());
        assert!(parse_property_name("Name").is_err());
        assert!(parse_property_name("has space").is_err());
        assert!(parse_case_type("household").is_ok());
        assert!(parse_case_type("house hold").is_err());
        assert!(CaseChanges::default().create(CaseId::new(), 0).is_err());
    }
}
