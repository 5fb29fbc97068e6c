//! Case queries: the small language that picks cases (smart groups, the case list and its
//! exports, reminders), its parser, its syntax tree and the one evaluator of a single case.
//!
//! # The language
//!
//! ```text
//! district = Gulu AND age >= 18
//! (study_arm = B OR study_arm = C) enrolled >= 2026-01-01 group = 12
//! properties.group = "arm B" AND closed = false
//! ```
//!
//! - A **condition** is `field op value`. Conditions are joined with `AND` and `OR`
//!   (written in any case); `AND` binds tighter than `OR`; parentheses group; a space between
//!   two conditions means `AND`. `NOT` is not part of the language: every operator has its
//!   opposite (`=`/`!=`, `<`/`>=`, `>`/`<=`).
//! - **Operators**: `=`, `!=`, `>`, `>=`, `<`, `<=`, and `~` (contains, ignoring case).
//! - **Fields**: the built-ins `case_id`, `name`, `external_id`, `phone_number`, `case_type`,
//!   `language_code`, `owner_id`, `closed`, `created_at`, `modified_at` and `group` (written in
//!   any case), and any other word is a case property. A property whose name is also one of
//!   those words (`group`, `GROUP`), or `and`/`or`, or begins with `properties.`, is written
//!   `properties.NAME`. Property names are compared exactly (they are case-sensitive keys);
//!   a name must be a valid property name (1 to 64 letters, digits, `_`, `-` or `.`, and not
//!   a standard case field: [`crate::case::parse_property_name`]). `deleted` is refused:
//!   queries only ever see live cases.
//! - **Values**: a bare word (any characters but white space and `( ) " = ! < > ~`), or
//!   `"quoted text"` in which `\"` is a quote and `\\` a backslash. Quoting never changes
//!   what a value means for a text field (`age > "18"` is `age > 18`), except for `group`,
//!   where a bare whole number is a group id and anything else (`"12"`, `Gulu`, `"Gulu
//!   mothers"`) a group name. A bare `and` or `or` is a keyword, not a value: quote it.
//!
//! # How a condition compares (one rule, in [`compare_text`])
//!
//! The built-in text fields (`case_id`, `name`, `external_id`, `phone_number` (compared as stored,
//! E.164: `phone_number = +256772123456`, not `0772 123456`), `case_type`, `language_code`, `owner_id`) and properties all follow these rules.
//! The SQL compiler in `store` must follow them too, and is tested against [`compare_text`]:
//!
//! 1. A missing value (a property the case does not have, an empty optional field) is the
//!    empty text `""`. So `field = ""` means "has no value" and `field != ""` "has a value".
//! 2. `!=` is exactly the opposite of `=`, for every stored value, so `district != Gulu` also
//!    matches the cases with no district (add `district != ""` to leave them out).
//! 3. `=` compares as **numbers** when both the stored text and the value are numbers, so
//!    `12.0 = 12` (and `-0 = 0`). Otherwise it compares the texts **ignoring case**: ASCII
//!    letters only, the way SQLite's `LOWER` does (store's `dialect::ascii_lower`), so that
//!    both engines agree; `É` and `é` differ. Dates need no rule of their own: two dates are
//!    equal when their texts are.
//! 4. `~` is "contains, ignoring case" (ASCII, as above) on the texts, numbers or not. A
//!    missing value contains nothing.
//! 5. `>`, `>=`, `<`, `<=` need a number or a date as the value (anything else is a parse
//!    error). A stored number compares with a number value as a number; a stored date
//!    with a date value as a date. A stored value that is not of the value's kind (`age > 18`
//!    where `age` is `eighteen`, or a number against a date) does not match and makes the
//!    condition **uncomparable**: [`CaseQuery::evaluate`] says so, for the page that counts
//!    such cases. A missing value does not match and is *not* uncomparable (there is no
//!    value to report).
//!
//! A **number** is `-?(0|[1-9][0-9]*)(\.[0-9]+)?`: an optional minus, digits without a
//! leading zero, an optional fraction. No `+`, no exponent, no `.5` or `5.`, no spaces.
//! Leading zeros make text, not a number: `007` and `0772123456` are codes and phone
//! numbers, not quantities, and `code = 7` must not match `007`. Numbers compare as 64-bit
//! floating point (exact up to 15 significant digits), as SQLite's `REAL` and PostgreSQL's
//! `double precision` do.
//!
//! A **date** is `YYYY-MM-DD`: four digits, a month 01–12, a day 01–31. Only the shape is
//! checked (so that plain SQL can check it on both engines), and dates of that shape
//! compare in the order of their text, which is the order of the dates.
//!
//! # The other built-ins
//!
//! - `closed` takes `true` or `false` (any case), with `=` or `!=`.
//! - `created_at` and `modified_at` take a real calendar date, with any operator but `~`,
//!   and compare the instant with that **day in the project's time zone** (from the
//!   [`QueryContext`]): `created_at = 2026-03-01` is "created that local day",
//!   `created_at > 2026-03-01` "created after that day", `created_at <= 2026-03-01` "created
//!   by the end of that day". [`day_bounds`] gives the day's first and next day's first
//!   instant, handling days that do not start at midnight.
//! - `group` takes a group id (`group = 12`) or name (`group = Gulu`, `group = "Gulu
//!   mothers"`), with `=` (is a member) or `!=` (is not). Whether a case is a member is
//!   the [`QueryContext`]'s answer; names are resolved by whoever stores the query.
//!
//! A deleted case matches no query.
//!
//! # Limits
//!
//! A query has at most [`MAX_QUERY_CHARS`] characters, [`MAX_CONDITIONS`] conditions and
//! [`MAX_DEPTH`] levels of parentheses; each is a [`QueryError`] at the place it was passed,
//! never a crash. Every error names a 1-based character position and what was expected:
//! `at 14: expected a value after '>='`.
//!
//! # For the SQL compiler
//!
//! Every rule above can be written in plain SQL on both engines, which is why they are what
//! they are: a number is `NOT GLOB '*[^0-9.]*'`-style tests on SQLite (after an optional
//! leading `-`: not empty, one `.` at most, not first or last, no `0` followed by a digit)
//! and `~ '^-?(0|[1-9][0-9]*)([.][0-9]+)?$'` on PostgreSQL, then `CAST(… AS REAL)` /
//! `::double precision`; a date is `GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]'` plus
//! the month and day ranges, or one regular expression; "ignoring case" is store's
//! `dialect::ascii_lower` on both sides; a missing property is `COALESCE(…, '')`; a time
//! field against a date is `created_at >= start AND created_at < end` with [`day_bounds`].
//! A condition is uncomparable exactly when [`compare_text`] says
//! [`Comparison::Uncomparable`]: an ordering operator, a non-empty stored text, and the
//! stored text is not a number (for a number value) or not a date (for a date value).
//! `case_query::strategies` (feature `proptest`) gives random queries and stored texts for the test
//! that the SQL and this evaluator agree.
//!
//! # Text form
//!
//! [`CaseQuery`]'s `Display` writes the canonical text (single spaces, `AND`/`OR` in capitals,
//! an explicit `AND` for a space, quotes only where needed), which parses back to the same
//! tree.

mod ast;
mod compare;
mod eval;
mod lex;
mod parse;
#[cfg(any(test, feature = "proptest"))]
pub mod strategies;
#[cfg(test)]
mod tests;

pub use ast::{Condition, EqOp, Expr, GroupRef, Op, TextField, TimeField, Value, BUILTIN_FIELDS};
pub use compare::{compare_text, is_date, parse_number, Comparison, ValueKind};
pub use eval::{day_bounds, Context, Evaluation, QueryContext};
pub use parse::QueryError;

/// The longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 10_000;
/// The most conditions one query may have.
pub const MAX_CONDITIONS: usize = 100;
/// The deepest nesting of parentheses.
pub const MAX_DEPTH: usize = 32;

/// A parsed case query.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseQuery {
    expr: Expr,
}

impl CaseQuery {
    /// Parses a query; blank text is an error (see [`CaseQuery::parse_optional`]).
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        parse::parse(text).map(|expr| Self { expr })
    }

    /// Parses a query that may be left empty (a reminder's `query`, a search box):
    /// blank text is `None`.
    pub fn parse_optional(text: &str) -> Result<Option<Self>, QueryError> {
        if text.trim().is_empty() {
            Ok(None)
        } else {
            Self::parse(text).map(Some)
        }
    }

    /// A query from a tree built by hand (tests, generators). The parser's limits are not
    /// checked; an `And` or `Or` should have two or more parts, as parsed ones do.
    pub fn from_expr(expr: Expr) -> Self {
        Self { expr }
    }

    /// The syntax tree.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Every condition, in the order written.
    pub fn conditions(&self) -> impl Iterator<Item = &Condition> {
        self.expr.conditions()
    }

    /// The groups named by `group =` / `group !=` conditions, in the order written (for the
    /// smart-group cycle check and for resolving names).
    pub fn groups_referenced(&self) -> impl Iterator<Item = &GroupRef> {
        self.conditions().filter_map(|c| match c {
            Condition::Group { group, .. } => Some(group),
            _ => None,
        })
    }

    /// The same query with every group reference replaced by `resolve`'s answer (a name by
    /// the group's id, say, so that renaming the group does not change a smart group), or
    /// `resolve`'s first error ("no case group named …").
    pub fn try_map_groups<E>(
        &self,
        mut resolve: impl FnMut(&GroupRef) -> Result<GroupRef, E>,
    ) -> Result<Self, E> {
        let mut expr = self.expr.clone();
        map_groups(&mut expr, &mut resolve)?;
        Ok(Self { expr })
    }

    /// The property names the query reads, in the order written (may repeat).
    pub fn properties_referenced(&self) -> impl Iterator<Item = &str> {
        self.conditions().filter_map(|c| match c {
            Condition::Text {
                field: TextField::Property(name),
                ..
            } => Some(name.as_str()),
            _ => None,
        })
    }
}

fn map_groups<E>(
    expr: &mut Expr,
    resolve: &mut impl FnMut(&GroupRef) -> Result<GroupRef, E>,
) -> Result<(), E> {
    match expr {
        Expr::And(parts) | Expr::Or(parts) => {
            parts.iter_mut().try_for_each(|p| map_groups(p, resolve))
        }
        Expr::Cond(Condition::Group { group, .. }) => {
            *group = resolve(group)?;
            Ok(())
        }
        Expr::Cond(_) => Ok(()),
    }
}

impl std::fmt::Display for CaseQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.expr.fmt(f)
    }
}

impl std::str::FromStr for CaseQuery {
    type Err = QueryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
