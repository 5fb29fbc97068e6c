//! Phone numbers as users write them, in every country's default and none: whatever `parse`
//! accepts is E.164 of at most 15 digits, and reads back from storage as the same number.
#![no_main]

use casecast_core::PhoneNumber;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    casecast_fuzz::init();
    let Some((pick, text)) = casecast_fuzz::pick_and_text(data) else {
        return;
    };
    let country = casecast_fuzz::country(pick);
    let Ok(number) = PhoneNumber::parse(text, country.as_ref()) else {
        return;
    };
    let stored = number.as_str();
    let digits = stored
        .strip_prefix('+')
        .expect("stored numbers start with +");
    assert!(
        !digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()),
        "{text:?} in {country:?} was stored as {stored:?}, not E.164"
    );
    let again = PhoneNumber::try_from(stored.to_string()).unwrap_or_else(|e| {
        panic!("{text:?} in {country:?} was stored as {stored:?}, which reads back as {e}")
    });
    assert_eq!(
        again, number,
        "{text:?} in {country:?}: stored and read back differ"
    );
});
