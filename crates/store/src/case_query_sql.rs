//! Case queries compiled to SQL (issue 16), on both engines: the same answers as the Rust
//! evaluator (`casecast_core::case_query`), whose rules (in `compare_text`) this module writes
//! in SQL, condition by condition. A property test in the store's tests checks that the two
//! agree on random cases and queries.
//!
//! How each piece is written (`v` is the field's stored text, `''` when missing):
//! - a property is read from the case's JSON (`json_extract` on SQLite, `->>` on PostgreSQL),
//!   its name inlined (quotes removed; the core allows letters, digits, `_`, `-` and `.`), as
//!   `property_index` writes it, so that the property indexes match the condition;
//! - "a number" is the core's `-?(0|[1-9][0-9]*)([.][0-9]+)?`: a regular expression on
//!   PostgreSQL, `GLOB` tests on SQLite (which has no regular expressions built in);
//! - "a date" is `YYYY-MM-DD` with month 01–12 and day 01–31, compared as text in the "C"
//!   collation (byte order, the order of the dates);
//! - "ignoring case" is `dialect::ascii_lower` on the stored side and `to_ascii_lowercase` on
//!   the value, as the core does;
//! - group names are compared trimmed and ignoring ASCII case, as the engine resolves them.

use casecast_core::case_query::{
    day_bounds, parse_number, CaseQuery, Condition, EqOp, Expr, GroupRef, Op, TextField, TimeField,
    ValueKind,
};
use jiff::tz::TimeZone;
use sqlx::any::AnyArguments;
use sqlx::query::QueryScalar;
use sqlx::Any;

use crate::dialect::{ascii_lower, Placeholders};
use crate::Dialect;

/// A value bound to a placeholder of a compiled query.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
    Real(f64),
}

/// A boolean SQL expression over the cases table (aliased `c`) and the values of its
/// placeholders, in order.
#[derive(Clone, Debug, Default)]
pub(crate) struct SqlExpr {
    pub sql: String,
    pub binds: Vec<Bind>,
}

macro_rules! bind_all {
    ($q:expr, $binds:expr) => {{
        let mut q = $q;
        for b in $binds {
            q = match b {
                Bind::Text(t) => q.bind(t.clone()),
                Bind::Int(i) => q.bind(*i),
                Bind::Real(r) => q.bind(*r),
            };
        }
        q
    }};
}

impl SqlExpr {
    /// Binds the values to a `query` whose placeholders before these are bound already.
    pub(crate) fn bind_query<'q>(
        &'q self,
        q: sqlx::query::Query<'q, Any, AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, Any, AnyArguments<'q>> {
        bind_all!(q, &self.binds)
    }

    /// Binds the values to a `query_scalar`, likewise.
    pub(crate) fn bind_scalar<'q, O>(
        &'q self,
        q: QueryScalar<'q, Any, O, AnyArguments<'q>>,
    ) -> QueryScalar<'q, Any, O, AnyArguments<'q>> {
        bind_all!(q, &self.binds)
    }
}

struct Compiler<'a> {
    engine: Dialect,
    p: &'a mut Placeholders,
    zone: &'a TimeZone,
    binds: Vec<Bind>,
}

/// The cases (alias `c`, live ones only) the query matches.
pub(crate) fn matches(
    query: &CaseQuery,
    engine: Dialect,
    p: &mut Placeholders,
    zone: &TimeZone,
) -> SqlExpr {
    let mut c = Compiler {
        engine,
        p,
        zone,
        binds: Vec::new(),
    };
    let body = c.expr(query.expr());
    SqlExpr {
        sql: format!("(c.deleted = 0 AND {body})"),
        binds: c.binds,
    }
}

/// The cases (alias `c`, live ones only) for which at least one condition of the query is
/// uncomparable (an ordering against a stored value that is not of the value's kind), as the
/// core's `CaseQuery::evaluate` reports.
pub(crate) fn uncomparable(
    query: &CaseQuery,
    engine: Dialect,
    p: &mut Placeholders,
    zone: &TimeZone,
) -> SqlExpr {
    let mut c = Compiler {
        engine,
        p,
        zone,
        binds: Vec::new(),
    };
    let mut parts = Vec::new();
    c.uncomparable(query.expr(), &mut parts);
    let body = if parts.is_empty() {
        "1 = 0".to_string()
    } else {
        parts.join(" OR ")
    };
    SqlExpr {
        sql: format!("(c.deleted = 0 AND ({body}))"),
        binds: c.binds,
    }
}

impl Compiler<'_> {
    fn bind(&mut self, b: Bind) -> String {
        self.binds.push(b);
        self.p.next()
    }

    fn expr(&mut self, e: &Expr) -> String {
        match e {
            Expr::And(parts) => self.join(parts, " AND "),
            Expr::Or(parts) => self.join(parts, " OR "),
            Expr::Cond(c) => self.condition(c),
        }
    }

    fn join(&mut self, parts: &[Expr], with: &str) -> String {
        let parts: Vec<String> = parts.iter().map(|p| self.expr(p)).collect();
        format!("({})", parts.join(with))
    }

    /// The stored text of a field, `''` when missing.
    fn text(&mut self, field: &TextField) -> String {
        let column = match field {
            TextField::CaseId => "c.case_id",
            TextField::Name => "c.name",
            TextField::ExternalId => "c.external_id",
            TextField::PhoneNumber => "c.phone_number",
            TextField::CaseType => "c.case_type",
            TextField::LanguageCode => "c.language_code",
            TextField::OwnerId => "c.owner_id",
            TextField::Property(name) => {
                // Written as `property_index` indexes it, so that its indexes serve it.
                return crate::property_index::property_text(self.engine, "c.", name);
            }
        };
        format!("COALESCE({column}, '')")
    }

    /// Whether `v` (an expression) is a number as the core reads one.
    fn is_number(&self, v: &str) -> String {
        match self.engine {
            Dialect::Postgres => format!("({v} ~ '^-?(0|[1-9][0-9]*)([.][0-9]+)?$')"),
            Dialect::Sqlite => {
                // d: v without one leading minus.
                let d =
                    format!("(CASE WHEN substr({v}, 1, 1) = '-' THEN substr({v}, 2) ELSE {v} END)");
                format!(
                    "({d} <> '' AND {d} NOT GLOB '*[^0-9.]*' AND {d} NOT GLOB '*.*.*' \
                     AND {d} NOT GLOB '.*' AND {d} NOT GLOB '*.' AND {d} NOT GLOB '0[0-9]*')"
                )
            }
        }
    }

    /// `v` as a number (only where [`Self::is_number`] holds).
    fn number(&self, v: &str) -> String {
        match self.engine {
            Dialect::Postgres => format!("CAST({v} AS double precision)"),
            Dialect::Sqlite => format!("CAST({v} AS REAL)"),
        }
    }

    /// Whether `v` has a date's shape.
    fn is_date(&self, v: &str) -> String {
        match self.engine {
            Dialect::Postgres => format!(
                "({v} ~ '^[0-9]{{4}}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$')"
            ),
            Dialect::Sqlite => format!(
                "({v} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' \
                 AND substr({v}, 6, 2) BETWEEN '01' AND '12' AND substr({v}, 9, 2) BETWEEN '01' AND '31')"
            ),
        }
    }

    fn collate_c(&self) -> &'static str {
        match self.engine {
            Dialect::Postgres => " COLLATE \"C\"",
            Dialect::Sqlite => "",
        }
    }

    fn condition(&mut self, c: &Condition) -> String {
        match c {
            Condition::Text { field, op, value } => {
                let v = self.text(field);
                match op {
                    Op::Eq => self.equal(&v, value.as_str()),
                    Op::Ne => format!("(NOT {})", self.equal(&v, value.as_str())),
                    Op::Contains => {
                        let wanted = self.bind(Bind::Text(value.as_str().to_ascii_lowercase()));
                        let lower = ascii_lower(self.engine, &v);
                        match self.engine {
                            Dialect::Sqlite => format!("(instr({lower}, {wanted}) > 0)"),
                            Dialect::Postgres => format!("(strpos({lower}, {wanted}) > 0)"),
                        }
                    }
                    Op::Gt | Op::Ge | Op::Lt | Op::Le => {
                        let sign = op.as_str();
                        match value.kind() {
                            ValueKind::Number(n) => {
                                let n = self.bind(Bind::Real(n));
                                format!(
                                    "({} AND {} {sign} {n})",
                                    self.is_number(&v),
                                    self.number(&v)
                                )
                            }
                            ValueKind::Date => {
                                // First a test a property index serves (its lower-case text
                                // against the date: a date has no letters, so every date that
                                // passes the exact test passes this one), then the exact one.
                                let lower = ascii_lower(self.engine, &v);
                                let coarse = self.bind(Bind::Text(value.as_str().to_string()));
                                let d = self.bind(Bind::Text(value.as_str().to_string()));
                                let collate = self.collate_c();
                                format!(
                                    "({lower} {sign} {coarse} AND {} AND {v}{collate} {sign} {d})",
                                    self.is_date(&v)
                                )
                            }
                            // The parser refuses it; built by hand, it matches nothing.
                            ValueKind::Text => "(1 = 0)".to_string(),
                        }
                    }
                }
            }
            Condition::Closed { op, value } => {
                let want = if *value { 1 } else { 0 };
                match op {
                    EqOp::Eq => format!("(c.closed = {want})"),
                    EqOp::Ne => format!("(c.closed <> {want})"),
                }
            }
            Condition::Time { field, op, date } => {
                let column = match field {
                    TimeField::CreatedAt => "c.created_at",
                    TimeField::ModifiedAt => "c.modified_at",
                };
                let (start, end) = day_bounds(*date, self.zone);
                match op {
                    Op::Eq => {
                        let (s, e) = (self.bind(Bind::Int(start)), self.bind(Bind::Int(end)));
                        format!("({column} >= {s} AND {column} < {e})")
                    }
                    Op::Ne => {
                        let (s, e) = (self.bind(Bind::Int(start)), self.bind(Bind::Int(end)));
                        format!("({column} < {s} OR {column} >= {e})")
                    }
                    Op::Gt => format!("({column} >= {})", self.bind(Bind::Int(end))),
                    Op::Ge => format!("({column} >= {})", self.bind(Bind::Int(start))),
                    Op::Lt => format!("({column} < {})", self.bind(Bind::Int(start))),
                    Op::Le => format!("({column} < {})", self.bind(Bind::Int(end))),
                    Op::Contains => "(1 = 0)".to_string(),
                }
            }
            Condition::Group { op, group } => {
                let member = match group {
                    GroupRef::Id(id) => {
                        let id = self.bind(Bind::Int(*id));
                        format!(
                            "EXISTS (SELECT 1 FROM case_group_members m WHERE m.case_pk = c.id AND m.group_id = {id})"
                        )
                    }
                    GroupRef::Name(name) => {
                        let name = self.bind(Bind::Text(name.trim().to_ascii_lowercase()));
                        let lower = ascii_lower(self.engine, "TRIM(g.name)");
                        format!(
                            "EXISTS (SELECT 1 FROM case_group_members m JOIN case_groups g ON g.id = m.group_id \
                             WHERE m.case_pk = c.id AND {lower} = {name})"
                        )
                    }
                };
                match op {
                    EqOp::Eq => member,
                    EqOp::Ne => format!("(NOT {member})"),
                }
            }
        }
    }

    /// `v = value` under the core's rule: as numbers when both are, else the texts ignoring
    /// ASCII case.
    fn equal(&mut self, v: &str, value: &str) -> String {
        // Placeholders are made in the order they appear (SQLite's `?` bind in that order).
        let lower = ascii_lower(self.engine, v);
        match parse_number(value) {
            Some(n) => {
                let n = self.bind(Bind::Real(n));
                let text = self.bind(Bind::Text(value.to_ascii_lowercase()));
                format!(
                    "(CASE WHEN {} THEN {} = {n} ELSE {lower} = {text} END)",
                    self.is_number(v),
                    self.number(v)
                )
            }
            None => {
                let text = self.bind(Bind::Text(value.to_ascii_lowercase()));
                format!("({lower} = {text})")
            }
        }
    }

    /// The uncomparable tests of the ordering conditions under `e` (against a text value,
    /// which the parser refuses, every stored value is uncomparable, as in the core).
    fn uncomparable(&mut self, e: &Expr, out: &mut Vec<String>) {
        match e {
            Expr::And(parts) | Expr::Or(parts) => {
                for p in parts {
                    self.uncomparable(p, out);
                }
            }
            Expr::Cond(Condition::Text { field, op, value }) if op.is_ordering() => {
                let v = self.text(field);
                let of_kind = match value.kind() {
                    ValueKind::Number(_) => self.is_number(&v),
                    ValueKind::Date => self.is_date(&v),
                    ValueKind::Text => "(1 = 0)".to_string(),
                };
                out.push(format!("({v} <> '' AND NOT {of_kind})"));
            }
            Expr::Cond(_) => {}
        }
    }
}

/// What a query counts in a project.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueryCounts {
    /// Live cases that match.
    pub matched: i64,
    /// Live cases with a value one of the query's conditions could not compare.
    pub uncomparable: i64,
}

impl crate::Db {
    /// The case IDs of the project's live cases that match, in case ID order (at most
    /// `limit`).
    pub async fn case_ids_matching(
        &self,
        project_id: i64,
        query: &CaseQuery,
        zone: &TimeZone,
        limit: usize,
    ) -> crate::StoreResult<Vec<String>> {
        let mut p = Placeholders::new(self.dialect());
        let project = p.next();
        let cond = matches(query, self.dialect(), &mut p, zone);
        let lim = p.next();
        let sql = format!(
            "SELECT c.case_id FROM cases c WHERE c.project_id = {project} AND {} ORDER BY c.case_id LIMIT {lim}",
            cond.sql
        );
        let q = sqlx::query_scalar::<_, String>(&sql).bind(project_id);
        let q = cond.bind_scalar(q).bind(limit as i64);
        Ok(q.persistent(false).fetch_all(self.pool()).await?)
    }

    /// The plan the database chooses for counting the query's matches (SQLite's `EXPLAIN QUERY
    /// PLAN`, PostgreSQL's `EXPLAIN`), one line per step; `no_scans` asks PostgreSQL to avoid a
    /// sequential scan if it can (to see whether an index can serve the query on a small
    /// table). For tests and benchmarks.
    pub async fn count_plan(
        &self,
        project_id: i64,
        query: &CaseQuery,
        zone: &TimeZone,
        no_scans: bool,
    ) -> crate::StoreResult<Vec<String>> {
        let mut p = Placeholders::new(self.dialect());
        let project = p.next();
        let m = matches(query, self.dialect(), &mut p, zone);
        let count = format!(
            "SELECT COUNT(*) FROM cases c WHERE c.project_id = {project} AND {}",
            m.sql
        );
        let mut tx = self.pool().begin().await?;
        let lines = match self.dialect() {
            Dialect::Sqlite => {
                // An EXPLAIN never opens the database file, so it plans with the schema this
                // connection last read, without an index another connection has made since.
                // A read first brings the schema (and the statistics) up to date.
                sqlx::query("SELECT 1 FROM sqlite_master LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await?;
                let sql = format!("EXPLAIN QUERY PLAN {count}");
                let q = sqlx::query_as::<_, (i64, i64, i64, String)>(&sql).bind(project_id);
                let q = bind_all!(q, &m.binds);
                q.persistent(false)
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .map(|r| r.3)
                    .collect()
            }
            Dialect::Postgres => {
                if no_scans {
                    sqlx::query("SET LOCAL enable_seqscan = off")
                        .execute(&mut *tx)
                        .await?;
                }
                let sql = format!("EXPLAIN {count}");
                let q = sqlx::query_scalar::<_, String>(&sql).bind(project_id);
                let q = m.bind_scalar(q);
                q.persistent(false).fetch_all(&mut *tx).await?
            }
        };
        tx.rollback().await?;
        Ok(lines)
    }

    /// How many of the project's live cases match, and how many met a value that could not be
    /// compared.
    pub async fn count_matching(
        &self,
        project_id: i64,
        query: &CaseQuery,
        zone: &TimeZone,
    ) -> crate::StoreResult<QueryCounts> {
        // Two counts, each with its condition in WHERE, so that a property index serves the
        // first; the second runs only when the query has an ordering (else nothing is ever
        // uncomparable).
        let mut p = Placeholders::new(self.dialect());
        let project = p.next();
        let m = matches(query, self.dialect(), &mut p, zone);
        let sql = format!(
            "SELECT COUNT(*) FROM cases c WHERE c.project_id = {project} AND {}",
            m.sql
        );
        let q = m.bind_scalar(sqlx::query_scalar::<_, i64>(&sql).bind(project_id));
        let matched = q.persistent(false).fetch_one(self.pool()).await?;
        let ordering = query.conditions().any(|c| {
            matches!(c, casecast_core::case_query::Condition::Text { op, .. } if op.is_ordering())
        });
        let uncomparable = if ordering {
            let mut p = Placeholders::new(self.dialect());
            let project = p.next();
            let u = uncomparable(query, self.dialect(), &mut p, zone);
            let sql = format!(
                "SELECT COUNT(*) FROM cases c WHERE c.project_id = {project} AND {}",
                u.sql
            );
            let q = u.bind_scalar(sqlx::query_scalar::<_, i64>(&sql).bind(project_id));
            q.persistent(false).fetch_one(self.pool()).await?
        } else {
            0
        };
        Ok(QueryCounts {
            matched,
            uncomparable,
        })
    }
}
