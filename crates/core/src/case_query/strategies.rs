//! Proptest strategies for random queries and stored values, drawn from small pools so
//! that random cases and queries meet often (for the SQL-against-Rust agreement test in
//! `store`). Built with the `proptest` feature, and in this crate's tests.

use jiff::civil::Date;
use proptest::prelude::*;

use super::{CaseQuery, Condition, EqOp, Expr, GroupRef, Op, TextField, TimeField, Value};

/// Property names: common ones, and ones that must be written `properties.NAME`.
pub fn property_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["district", "age", "visit", "arm", "score"]),
        1 => prop::sample::select(vec!["group", "GROUP", "and", "Or", "properties.x", "a-b.c_1"]),
    ]
    .prop_map(str::to_string)
}

/// Stored texts (and query values): numbers in several spellings, dates, words in several
/// cases, text that needs quoting, and the empty text.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "", "18", "18.0", "-3", "0", "-0", "007", "12.5", "1e3", "+5", ".5",
            "2026-01-05", "2026-12-31", "2026-02-30", "2026-13-01", "2026-1-5",
            "Gulu", "gulu", "GULU", "Gulu East", "eighteen", "Émile", "émile",
            "and", "OR", "a\"b", "back\\slash", "x = y", "(p)", "~!<>",
        ])
        .prop_map(str::to_string),
        1 => any::<String>(),
        1 => (-1000i64..1000).prop_map(|n| n.to_string()),
        1 => (0u32..40).prop_map(|d| format!("2026-02-{:02}", d % 31 + 1)),
    ]
}

fn text_field() -> impl Strategy<Value = TextField> {
    prop_oneof![
        4 => property_name().prop_map(TextField::Property),
        1 => prop::sample::select(vec![
            TextField::CaseId,
            TextField::Name,
            TextField::ExternalId,
            TextField::PhoneNumber,
            TextField::CaseType,
            TextField::LanguageCode,
            TextField::OwnerId,
        ]),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop::sample::select(vec![
        Op::Eq,
        Op::Ne,
        Op::Gt,
        Op::Ge,
        Op::Lt,
        Op::Le,
        Op::Contains,
    ])
}

fn eq_op() -> impl Strategy<Value = EqOp> {
    prop::sample::select(vec![EqOp::Eq, EqOp::Ne])
}

/// A calendar date (years 1000–9999, which are written with four digits).
pub fn date() -> impl Strategy<Value = Date> {
    (1000i16..=9999, 1i8..=12, 1i8..=28)
        .prop_map(|(y, m, d)| Date::new(y, m, d).unwrap_or(jiff::civil::date(2026, 1, 1)))
}

/// One condition as the parser could produce it.
pub fn condition() -> impl Strategy<Value = Condition> {
    let text_cond = (text_field(), op(), text()).prop_filter_map(
        "ordering needs a number or a date, ~ and ordering need a value",
        |(field, op, text)| {
            let value = Value::new(text);
            let ok = if op.is_ordering() {
                super::ast::orderable(value.kind())
            } else {
                op != Op::Contains || !value.is_empty()
            };
            ok.then_some(Condition::Text { field, op, value })
        },
    );
    let time_op = prop::sample::select(vec![Op::Eq, Op::Ne, Op::Gt, Op::Ge, Op::Lt, Op::Le]);
    let time_field = prop::sample::select(vec![TimeField::CreatedAt, TimeField::ModifiedAt]);
    let group = prop_oneof![
        (0i64..=i64::MAX).prop_map(GroupRef::Id),
        text()
            .prop_map(|t| t.trim().to_string())
            .prop_filter("a name", |t| !t.is_empty())
            .prop_map(GroupRef::Name),
    ];
    prop_oneof![
        6 => text_cond,
        1 => (eq_op(), any::<bool>()).prop_map(|(op, value)| Condition::Closed { op, value }),
        1 => (time_field, time_op, date()).prop_map(|(field, op, date)| Condition::Time { field, op, date }),
        1 => (eq_op(), group).prop_map(|(op, group)| Condition::Group { op, group }),
    ]
}

/// A tree as the parser could produce it: every `And`/`Or` has two to four parts.
pub fn expr() -> impl Strategy<Value = Expr> {
    condition()
        .prop_map(Expr::Cond)
        .prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 2..=4).prop_map(Expr::And),
                prop::collection::vec(inner, 2..=4).prop_map(Expr::Or),
            ]
        })
}

/// A query as the parser could produce it.
pub fn query() -> impl Strategy<Value = CaseQuery> {
    expr().prop_map(CaseQuery::from_expr)
}
