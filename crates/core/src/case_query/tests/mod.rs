//! Tests of the case query language: the parser, the evaluator, and properties of both.

mod eval;
mod parse;
mod props;

use super::{Condition, EqOp, Expr, GroupRef, Op, TextField, Value};

/// `NAME op value` on a property, as a tree.
fn prop(name: &str, op: Op, value: &str) -> Expr {
    Expr::Cond(Condition::Text {
        field: TextField::Property(name.to_string()),
        op,
        value: Value::new(value),
    })
}

fn text(field: TextField, op: Op, value: &str) -> Expr {
    Expr::Cond(Condition::Text {
        field,
        op,
        value: Value::new(value),
    })
}

fn group(op: EqOp, group: GroupRef) -> Expr {
    Expr::Cond(Condition::Group { op, group })
}
