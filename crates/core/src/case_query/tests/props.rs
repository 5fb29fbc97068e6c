//! Properties: text round trips, the parser never panics, the evaluator's invariants.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::super::{compare_text, strategies, CaseQuery, Comparison, Context, GroupRef, Op, Value};
use crate::case::Case;
use crate::ids::CaseId;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_tree_written_out_parses_back_to_itself(query in strategies::query()) {
        let text = query.to_string();
        let back = CaseQuery::parse(&text);
        prop_assert_eq!(back.as_ref(), Ok(&query), "text: {}", text);
    }

    #[test]
    fn parse_never_panics_on_any_text(text in any::<String>()) {
        let _ = CaseQuery::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_query_like_text(
        text in r#"([a-z_.]{1,6}|AND|or|[()"\\=!<>~]|[0-9-]{1,4}| ){0,40}"#,
    ) {
        // What parses is written out canonically and reads back the same; what does not
        // names a position inside the text or one past its end.
        match CaseQuery::parse(&text) {
            Ok(q) => prop_assert_eq!(CaseQuery::parse(&q.to_string()), Ok(q)),
            Err(e) => prop_assert!(e.position >= 1 && e.position <= text.chars().count() + 1),
        }
    }

    #[test]
    fn not_equal_is_the_opposite_of_equal(stored in strategies::text(), value in strategies::text()) {
        let value = Value::new(value);
        prop_assert_eq!(
            compare_text(&stored, Op::Ne, &value).matched(),
            !compare_text(&stored, Op::Eq, &value).matched()
        );
    }

    #[test]
    fn orderings_agree_with_each_other(stored in strategies::text(), value in strategies::text()) {
        let value = Value::new(value);
        let lt = compare_text(&stored, Op::Lt, &value);
        let ge = compare_text(&stored, Op::Ge, &value);
        let gt = compare_text(&stored, Op::Gt, &value);
        let le = compare_text(&stored, Op::Le, &value);
        if lt == Comparison::Uncomparable || stored.is_empty() {
            prop_assert_eq!([lt, ge, gt, le].iter().filter(|c| c.matched()).count(), 0);
        } else {
            prop_assert_ne!(lt.matched(), ge.matched());
            prop_assert_ne!(gt.matched(), le.matched());
        }
    }

    #[test]
    fn matches_agrees_with_evaluate(
        query in strategies::query(),
        props in prop::collection::btree_map(strategies::property_name(), strategies::text(), 0..5),
        closed in any::<bool>(),
        created_at in 1_700_000_000_000i64..1_900_000_000_000,
    ) {
        let case = Case {
            case_id: CaseId::from_stored("c".into()),
            case_type: "case".into(),
            name: "n".into(),
            external_id: None,
            phone_number: None,
            language_code: None,
            owner_id: None,
            closed,
            deleted: false,
            properties: props.into_iter().collect::<BTreeMap<_, _>>(),
            created_at,
            modified_at: created_at,
        };
        let ctx = Context {
            time_zone: jiff::tz::TimeZone::UTC,
            is_member: |g: &GroupRef| matches!(g, GroupRef::Id(id) if id % 2 == 0),
        };
        prop_assert_eq!(query.matches(&case, &ctx), query.evaluate(&case, &ctx).matched);
    }
}
