//! The small parsers of identifiers users type: case IDs, external IDs, project slugs,
//! countries, time zones, e-mail addresses, roles, case property names and values, and the
//! identifier of a group upload's row of each kind. No panic; what is accepted is trimmed,
//! within its length, and parses again to itself.
#![no_main]

use casecast_core::case::{parse_external_id, parse_property_name, parse_property_value};
use casecast_core::identifier::{classify, IdentifierKind};
use casecast_core::{CaseId, CountryCode, Email, ProjectSlug, Role, TimeZoneName};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    casecast_fuzz::init();
    let Some((pick, text)) = casecast_fuzz::pick_and_text(data) else {
        return;
    };
    if let Ok(id) = CaseId::parse(text) {
        assert!((1..=64).contains(&id.as_str().len()));
        assert_eq!(CaseId::parse(id.as_str()).as_ref(), Ok(&id));
    }
    if let Ok(e) = parse_external_id(text) {
        assert_eq!(parse_external_id(&e).as_deref(), Ok(e.as_str()));
    }
    if let Ok(slug) = ProjectSlug::parse(text) {
        assert_eq!(ProjectSlug::parse(slug.as_str()).as_ref(), Ok(&slug));
    }
    if let Ok(c) = CountryCode::parse(text) {
        assert_eq!(
            CountryCode::parse(c.as_str()).map(|d| d.as_str().to_string()),
            Ok(c.as_str().to_string())
        );
    }
    if let Ok(z) = TimeZoneName::parse(text) {
        let _ = z.zone();
    }
    let _ = Email::parse(text);
    let _ = text.parse::<Role>();
    if let Ok(name) = parse_property_name(text) {
        assert_eq!(parse_property_name(&name).as_deref(), Ok(name.as_str()));
        let _ = parse_property_value(&name, text);
    }
    let kinds = [
        IdentifierKind::Any,
        IdentifierKind::CaseId,
        IdentifierKind::ExternalId,
        IdentifierKind::PhoneNumber,
    ];
    let kind = kinds[usize::from(pick) % kinds.len()];
    let country = casecast_fuzz::country(pick / 4);
    let _ = classify(text, kind, country.as_ref());
});
