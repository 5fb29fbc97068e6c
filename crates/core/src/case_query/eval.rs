//! The evaluator of one case: what the engine runs when a case is written, to keep smart
//! groups and reminders current. The SQL compiler in `store` must agree with it.

use jiff::tz::TimeZone;

use super::ast::{Condition, EqOp, Expr, GroupRef, Op, TextField, TimeField};
use super::compare::{compare_text, holds, Comparison};
use super::CaseQuery;
use crate::case::Case;

/// What a query needs to know beyond the case itself.
pub trait QueryContext {
    /// Whether the case being evaluated is a member of the group.
    fn is_member(&self, group: &GroupRef) -> bool;
    /// The project's time zone, for `created_at` and `modified_at` against a date.
    fn time_zone(&self) -> &TimeZone;
}

/// A [`QueryContext`] from a time zone and a membership function.
pub struct Context<F> {
    pub time_zone: TimeZone,
    pub is_member: F,
}

impl<F: Fn(&GroupRef) -> bool> QueryContext for Context<F> {
    fn is_member(&self, group: &GroupRef) -> bool {
        (self.is_member)(group)
    }
    fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }
}

/// The outcome of a query on one case.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// Whether the case matches.
    pub matched: bool,
    /// Whether at least one condition of the query was uncomparable for this case, whether
    /// or not that condition decided the outcome (so the count does not depend on the order
    /// of evaluation, and SQL can compute it as an OR of the conditions' tests).
    pub uncomparable: bool,
}

impl CaseQuery {
    /// Whether the case matches (a deleted case never does).
    pub fn matches(&self, case: &Case, ctx: &impl QueryContext) -> bool {
        !case.deleted && matches_expr(self.expr(), case, ctx)
    }

    /// Whether the case matches, and whether it met a value that could not be compared.
    /// Evaluates every condition; [`CaseQuery::matches`] stops as soon as it knows.
    pub fn evaluate(&self, case: &Case, ctx: &impl QueryContext) -> Evaluation {
        if case.deleted {
            return Evaluation::default();
        }
        let mut uncomparable = false;
        let matched = evaluate_expr(self.expr(), case, ctx, &mut uncomparable);
        Evaluation {
            matched,
            uncomparable,
        }
    }
}

fn matches_expr(expr: &Expr, case: &Case, ctx: &impl QueryContext) -> bool {
    match expr {
        Expr::And(parts) => parts.iter().all(|p| matches_expr(p, case, ctx)),
        Expr::Or(parts) => parts.iter().any(|p| matches_expr(p, case, ctx)),
        Expr::Cond(c) => c.evaluate(case, ctx).matched(),
    }
}

fn evaluate_expr(expr: &Expr, case: &Case, ctx: &impl QueryContext, unc: &mut bool) -> bool {
    match expr {
        // Every part is evaluated, none skipped, so that `unc` sees every condition.
        Expr::And(parts) => {
            let results: Vec<bool> = parts
                .iter()
                .map(|p| evaluate_expr(p, case, ctx, unc))
                .collect();
            results.iter().all(|m| *m)
        }
        Expr::Or(parts) => {
            let results: Vec<bool> = parts
                .iter()
                .map(|p| evaluate_expr(p, case, ctx, unc))
                .collect();
            results.iter().any(|m| *m)
        }
        Expr::Cond(c) => {
            let outcome = c.evaluate(case, ctx);
            *unc |= outcome == Comparison::Uncomparable;
            outcome.matched()
        }
    }
}

impl Condition {
    /// This condition on one case (ignoring `deleted`).
    pub fn evaluate(&self, case: &Case, ctx: &impl QueryContext) -> Comparison {
        match self {
            Condition::Text { field, op, value } => compare_text(text_of(case, field), *op, value),
            Condition::Closed { op, value } => equality(*op, case.closed == *value),
            Condition::Time { field, op, date } => {
                let at = match field {
                    TimeField::CreatedAt => case.created_at,
                    TimeField::ModifiedAt => case.modified_at,
                };
                let (start, end) = day_bounds(*date, ctx.time_zone());
                let ordering = if at < start {
                    std::cmp::Ordering::Less
                } else if at >= end {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                };
                Comparison::of(*op != Op::Contains && holds(*op, ordering))
            }
            Condition::Group { op, group } => equality(*op, ctx.is_member(group)),
        }
    }
}

fn equality(op: EqOp, is: bool) -> Comparison {
    Comparison::of(match op {
        EqOp::Eq => is,
        EqOp::Ne => !is,
    })
}

/// The stored text of a text field, `""` when the case has none.
fn text_of<'c>(case: &'c Case, field: &TextField) -> &'c str {
    match field {
        TextField::CaseId => case.case_id.as_str(),
        TextField::Name => &case.name,
        TextField::ExternalId => case.external_id.as_deref().unwrap_or(""),
        TextField::PhoneNumber => case.phone_number.as_ref().map_or("", |p| p.as_str()),
        TextField::CaseType => &case.case_type,
        TextField::LanguageCode => case.language_code.as_deref().unwrap_or(""),
        TextField::OwnerId => case.owner_id.as_deref().unwrap_or(""),
        TextField::Property(name) => case.properties.get(name).map_or("", String::as_str),
    }
}

/// A local day as epoch milliseconds: its first instant and the next day's first instant
/// (`[start, end)`), in `zone`. A day that does not begin at midnight (a DST change at
/// 00:00) begins at its first instant. The ends of the calendar give `i64::MIN`/`i64::MAX`.
pub fn day_bounds(date: jiff::civil::Date, zone: &TimeZone) -> (i64, i64) {
    let start_of = |d: jiff::civil::Date| {
        d.to_zoned(zone.clone())
            .and_then(|z| z.start_of_day())
            .map(|z| z.timestamp().as_millisecond())
            .ok()
    };
    let start = start_of(date).unwrap_or(i64::MIN);
    let end = date.tomorrow().ok().and_then(start_of).unwrap_or(i64::MAX);
    (start, end)
}
