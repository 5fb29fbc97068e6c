//! Case queries: whatever parses is within the limits, writes out as text that parses back to
//! the same query (and writes out the same again), and evaluates on a case of the fuzzer's
//! without panic, `matches` agreeing with `evaluate`. A syntax error's position is inside the
//! text.
#![no_main]

use arbitrary::Unstructured;
use casecast_core::case_query::{CaseQuery, Context, GroupRef};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    casecast_fuzz::init();
    let Some(split) = data.iter().position(|b| *b == 0) else {
        return;
    };
    let (text, rest) = data.split_at(split);
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let query = match CaseQuery::parse(text) {
        Ok(q) => q,
        Err(e) => {
            let chars = text.chars().count();
            assert!(
                e.position >= 1 && e.position <= chars + 1,
                "{e:?} in {chars} characters"
            );
            assert!(!e.message.is_empty());
            return;
        }
    };
    assert!(query.conditions().count() <= casecast_core::case_query::MAX_CONDITIONS);
    let written = query.to_string();
    let again = CaseQuery::parse(&written)
        .unwrap_or_else(|e| panic!("{text:?} wrote out as {written:?}, which does not parse: {e}"));
    assert_eq!(again, query, "{text:?} -> {written:?}");
    assert_eq!(again.to_string(), written);
    let mut u = Unstructured::new(&rest[1..]);
    let Ok(case) = casecast_fuzz::case(&mut u) else {
        return;
    };
    let member: bool = u.arbitrary().unwrap_or(false);
    let zone = casecast_fuzz::zone(u.arbitrary().unwrap_or(0));
    let ctx = Context {
        time_zone: zone,
        is_member: |_: &GroupRef| member,
    };
    let evaluation = query.evaluate(&case, &ctx);
    assert_eq!(evaluation.matched, query.matches(&case, &ctx));
});
