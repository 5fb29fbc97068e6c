//! Cases: create, read, list with keyset pagination, change, close, soft delete.

use std::collections::{BTreeMap, HashMap};

use casecast_core::case::{Case, CaseChanges};
use casecast_core::{CaseId, CountryCode, PhoneNumber};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::dialect::{Placeholders, MAX_BIND_PARAMS};
use crate::error::{is_unique_violation, StoreError, StoreResult};
use crate::{Db, Dialect};

/// Which cases to list or export. Every filter narrows the list; none given means every live case.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CaseFilter {
    pub external_id: Option<String>,
    pub phone_number: Option<PhoneNumber>,
    /// Matches a case ID or phone number exactly, the start of an external ID, or part of the name.
    pub q: Option<String>,
    /// The project's default country, for reading a national number in `q` (not stored with a
    /// background export: its job reads the project's).
    #[serde(skip)]
    pub country: Option<CountryCode>,
    pub include_deleted: bool,
    /// Exactly this case type.
    #[serde(default)]
    pub case_type: Option<String>,
    /// Closed cases only (`true`) or open ones only (`false`).
    #[serde(default)]
    pub closed: Option<bool>,
    /// Members of this case group (of the same project).
    #[serde(default)]
    pub group_id: Option<i64>,
    /// Cases with a phone number (`true`) or without one (`false`).
    #[serde(default)]
    pub has_phone: Option<bool>,
    /// Cases changed at or after this instant (epoch ms).
    #[serde(default)]
    pub modified_since: Option<i64>,
    /// A case query (`district = Gulu AND age >= 18`), checked by the caller; text that does
    /// not parse matches nothing.
    #[serde(default)]
    pub query: Option<String>,
    /// The project's time zone, for the query's `created_at`/`modified_at` days (UTC when
    /// unset; not stored with a background export: its job reads the project's).
    #[serde(skip)]
    pub time_zone: Option<jiff::tz::TimeZone>,
}

/// A value bound to a filtered query.
#[derive(Clone, Debug)]
pub(crate) enum Bind {
    Int(i64),
    Text(String),
    Real(f64),
}

/// A filtered case query: `FROM … WHERE …` with the cases as `c`, the column to page and
/// order by, and the values to bind in order.
pub(crate) struct FilterSql {
    pub(crate) from_where: String,
    pub(crate) order_by: &'static str,
    pub(crate) binds: Vec<Bind>,
}

impl FilterSql {
    /// Binds the values in order.
    pub(crate) fn bind<'q>(
        &self,
        mut q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
        for b in &self.binds {
            q = match b {
                Bind::Int(v) => q.bind(*v),
                Bind::Text(v) => q.bind(v.clone()),
                Bind::Real(v) => q.bind(*v),
            };
        }
        q
    }
}

/// The case columns prefixed with `c.`.
pub(crate) fn case_columns_c() -> &'static str {
    static COLUMNS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    COLUMNS.get_or_init(|| {
        CASE_COLUMNS
            .split(", ")
            .map(|c| format!("c.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

impl CaseFilter {
    /// The query of the project's cases that pass, after row id `after` (keyset pagination).
    /// A group filter walks the group's members in order rather than the whole project.
    pub(crate) fn sql(&self, engine: Dialect, project_id: i64, after: i64) -> FilterSql {
        let mut p = Placeholders::new(engine);
        let mut binds = Vec::new();
        let (mut sql, order_by) = match self.group_id {
            Some(group_id) => {
                // Bounded on both sides: PostgreSQL's merge join otherwise reads the cases from
                // the first one at every page.
                let sql = format!(
                    "FROM case_group_members m CROSS JOIN cases c WHERE m.group_id = {} AND m.case_pk > {} \
                     AND c.id = m.case_pk AND c.id > {} AND c.project_id = {}",
                    p.next(),
                    p.next(),
                    p.next(),
                    p.next()
                );
                binds.extend([
                    Bind::Int(group_id),
                    Bind::Int(after),
                    Bind::Int(after),
                    Bind::Int(project_id),
                ]);
                (sql, "m.case_pk")
            }
            None => {
                let sql = format!(
                    "FROM cases c WHERE c.project_id = {} AND c.id > {}",
                    p.next(),
                    p.next()
                );
                binds.extend([Bind::Int(project_id), Bind::Int(after)]);
                (sql, "c.id")
            }
        };
        let mut clause = |sql: &mut String, text: &str, value: Bind| {
            sql.push_str(&text.replace("$?", &p.next()));
            binds.push(value);
        };
        if !self.include_deleted {
            sql.push_str(" AND c.deleted = 0");
        }
        if let Some(e) = &self.external_id {
            clause(&mut sql, " AND c.external_id = $?", Bind::Text(e.clone()));
        }
        if let Some(phone) = &self.phone_number {
            clause(
                &mut sql,
                " AND c.phone_number = $?",
                Bind::Text(phone.as_str().to_string()),
            );
        }
        if let Some(t) = &self.case_type {
            clause(&mut sql, " AND c.case_type = $?", Bind::Text(t.clone()));
        }
        if let Some(closed) = self.closed {
            sql.push_str(if closed {
                " AND c.closed = 1"
            } else {
                " AND c.closed = 0"
            });
        }
        if let Some(has) = self.has_phone {
            sql.push_str(if has {
                " AND c.phone_number IS NOT NULL"
            } else {
                " AND c.phone_number IS NULL"
            });
        }
        if let Some(since) = self.modified_since {
            clause(&mut sql, " AND c.modified_at >= $?", Bind::Int(since));
        }
        if let Some(q) = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            let phone = PhoneNumber::parse(q, self.country.as_ref())
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            clause(&mut sql, " AND (c.case_id = $?", Bind::Text(q.to_string()));
            clause(
                &mut sql,
                &format!(
                    " OR c.external_id {} $? ESCAPE '\\'",
                    crate::dialect::ilike(engine)
                ),
                Bind::Text(like_escape(q, false) + "%"),
            );
            clause(&mut sql, " OR c.phone_number = $?", Bind::Text(phone));
            clause(
                &mut sql,
                " OR c.name_lower LIKE $? ESCAPE '\\')",
                Bind::Text(like_contains(q)),
            );
        }
        if let Some(text) = self
            .query
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
        {
            match casecast_core::case_query::CaseQuery::parse(text) {
                Ok(query) => {
                    let zone = self.time_zone.clone().unwrap_or(jiff::tz::TimeZone::UTC);
                    let e = crate::case_query_sql::matches(&query, engine, &mut p, &zone);
                    sql.push_str(" AND ");
                    sql.push_str(&e.sql);
                    binds.extend(e.binds.into_iter().map(|b| match b {
                        crate::case_query_sql::Bind::Int(v) => Bind::Int(v),
                        crate::case_query_sql::Bind::Text(v) => Bind::Text(v),
                        crate::case_query_sql::Bind::Real(v) => Bind::Real(v),
                    }));
                }
                Err(_) => sql.push_str(" AND 1 = 0"),
            }
        }
        FilterSql {
            from_where: sql,
            order_by,
            binds,
        }
    }
}

/// One page of a list and where the next one starts.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// No items and nothing after.
    pub fn empty() -> Self {
        Page {
            items: Vec::new(),
            next_cursor: None,
        }
    }
}

pub(crate) const CASE_COLUMNS: &str = "id, case_id, case_type, name, external_id, phone_number, language_code, owner_id, closed, deleted, properties, created_at, modified_at";

/// A case with its row id (for keyset pagination and joins).
pub(crate) fn case_from_row(row: &AnyRow) -> StoreResult<(i64, Case)> {
    let properties: String = row.try_get("properties")?;
    let properties: BTreeMap<String, String> = serde_json::from_str(&properties)
        .map_err(|e| StoreError::corrupt_json("case properties", &e))?;
    Ok((
        row.try_get("id")?,
        Case {
            case_id: CaseId::from_stored(row.try_get("case_id")?),
            case_type: row.try_get("case_type")?,
            name: row.try_get("name")?,
            external_id: row.try_get("external_id")?,
            phone_number: row
                .try_get::<Option<String>, _>("phone_number")?
                .map(PhoneNumber::from_stored),
            language_code: row.try_get("language_code")?,
            owner_id: row.try_get("owner_id")?,
            closed: row.try_get::<i64, _>("closed")? != 0,
            deleted: row.try_get::<i64, _>("deleted")? != 0,
            properties,
            created_at: row.try_get("created_at")?,
            modified_at: row.try_get("modified_at")?,
        },
    ))
}

/// A case as [`Db::filtered_cases`] reads it from SQLite's JSON: the columns of
/// [`CASE_COLUMNS`] in order.
type JsonCase = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
    BTreeMap<String, String>,
    i64,
    i64,
);

fn case_from_json(r: JsonCase) -> (i64, Case) {
    (
        r.0,
        Case {
            case_id: CaseId::from_stored(r.1),
            case_type: r.2,
            name: r.3,
            external_id: r.4,
            phone_number: r.5.map(PhoneNumber::from_stored),
            language_code: r.6,
            owner_id: r.7,
            closed: r.8 != 0,
            deleted: r.9 != 0,
            properties: r.10,
            created_at: r.11,
            modified_at: r.12,
        },
    )
}

pub(crate) fn properties_json(case: &Case) -> String {
    serde_json::to_string(&case.properties).expect("a map of strings serialises")
}

/// The names of a case's properties, sorted and comma-separated (its `property_keys` column):
/// exports learn their columns from these.
pub(crate) fn property_keys(case: &Case) -> String {
    let keys: Vec<&str> = case.properties.keys().map(String::as_str).collect();
    keys.join(",")
}

const INSERT_COLUMNS: &str = "project_id, case_id, case_type, name, name_lower, external_id, phone_number, language_code, owner_id, closed, deleted, properties, property_keys, created_at, modified_at";
const INSERT_WIDTH: usize = 15;

/// A name as searches compare it (`name_lower`): lower case, beyond ASCII too.
pub(crate) fn name_lower(name: &str) -> String {
    name.to_lowercase()
}

/// Lowers again, in Rust, the stored names that have letters other than ASCII (the migration
/// that added `name_lower` lowered them in SQL, which SQLite does for ASCII only).
pub(crate) async fn relower_names(
    tx: &mut Transaction<'static, Any>,
    engine: Dialect,
) -> Result<(), sqlx::Error> {
    let sql = match engine {
        Dialect::Sqlite => "SELECT id, name FROM cases WHERE name GLOB '*[^ -~]*'",
        Dialect::Postgres => "SELECT id, name FROM cases WHERE name ~ '[^ -~]'",
    };
    let rows: Vec<(i64, String)> = sqlx::query_as(sql).fetch_all(&mut **tx).await?;
    for (id, name) in rows {
        sqlx::query("UPDATE cases SET name_lower = $1 WHERE id = $2")
            .bind(name_lower(&name))
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Inserts cases with multi-row statements, chunked under the bind-parameter limit.
pub(crate) async fn insert_cases(
    tx: &mut Transaction<'static, Any>,
    engine: Dialect,
    project_id: i64,
    cases: &[Case],
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let mut ids = Vec::with_capacity(cases.len());
    for chunk in cases.chunks(MAX_BIND_PARAMS / INSERT_WIDTH) {
        let mut params = Placeholders::new(engine);
        let rows: Vec<String> = chunk
            .iter()
            .map(|_| format!("({})", params.list(INSERT_WIDTH)))
            .collect();
        let sql = format!(
            "INSERT INTO cases ({INSERT_COLUMNS}) VALUES {} RETURNING case_id, id",
            rows.join(",")
        );
        let mut q = sqlx::query_as::<_, (String, i64)>(&sql);
        for c in chunk {
            q = q
                .bind(project_id)
                .bind(c.case_id.as_str().to_string())
                .bind(c.case_type.clone())
                .bind(c.name.clone())
                .bind(name_lower(&c.name))
                .bind(c.external_id.clone())
                .bind(c.phone_number.as_ref().map(|p| p.as_str().to_string()))
                .bind(c.language_code.clone())
                .bind(c.owner_id.clone())
                .bind(i64::from(c.closed))
                .bind(i64::from(c.deleted))
                .bind(properties_json(c))
                .bind(property_keys(c))
                .bind(c.created_at)
                .bind(c.modified_at);
        }
        ids.extend(q.persistent(false).fetch_all(&mut **tx).await?);
    }
    Ok(ids)
}

/// Writes a case's fields back to its row (never `deleted`: only `delete_case` changes that).
pub(crate) async fn update_case_row(
    tx: &mut Transaction<'static, Any>,
    id: i64,
    c: &Case,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE cases SET case_type = $1, name = $2, external_id = $3, phone_number = $4, language_code = $5,
         owner_id = $6, closed = $7, properties = $8, property_keys = $9, modified_at = $10, name_lower = $11
         WHERE id = $12",
    )
    .bind(c.case_type.clone())
    .bind(c.name.clone())
    .bind(c.external_id.clone())
    .bind(c.phone_number.as_ref().map(|p| p.as_str().to_string()))
    .bind(c.language_code.clone())
    .bind(c.owner_id.clone())
    .bind(i64::from(c.closed))
    .bind(properties_json(c))
    .bind(property_keys(c))
    .bind(c.modified_at)
    .bind(name_lower(&c.name))
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn case_id_taken(case_id: &CaseId) -> StoreError {
    StoreError::Conflict {
        code: "case_id_taken",
        message: format!("a case with ID '{case_id}' already exists in this project"),
    }
}

/// A LIKE pattern matching `text` anywhere, ignoring case (with `ESCAPE '\'`).
pub(crate) fn like_contains(text: &str) -> String {
    format!("%{}%", like_escape(text, true))
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
pub(crate) fn like_escape(text: &str, lowercase: bool) -> String {
    let text = if lowercase {
        text.to_lowercase()
    } else {
        text.to_string()
    };
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Db {
    /// Creates a case (with a new UUID unless one is given).
    pub async fn create_case(
        &self,
        project_id: i64,
        case_id: Option<CaseId>,
        changes: &CaseChanges,
    ) -> StoreResult<Case> {
        let now = casecast_core::time::now_ms();
        let case = changes.create(case_id.unwrap_or_default(), now)?;
        CaseChanges::check_result(&case)?;
        let mut tx = self.begin_write().await?;
        insert_cases(
            &mut tx,
            self.dialect(),
            project_id,
            std::slice::from_ref(&case),
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                case_id_taken(&case.case_id)
            } else {
                e.into()
            }
        })?;
        tx.commit().await?;
        Ok(case)
    }

    /// The case with this ID in the project (deleted ones included, marked).
    pub async fn get_case(&self, project_id: i64, case_id: &str) -> StoreResult<Case> {
        let row = sqlx::query(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE project_id = $1 AND case_id = $2"
        ))
        .bind(project_id)
        .bind(case_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("case"))?;
        Ok(case_from_row(&row)?.1)
    }

    /// A page of the project's cases in creation order; `cursor` is the previous page's `next_cursor`.
    pub async fn list_cases(
        &self,
        project_id: i64,
        filter: &CaseFilter,
        limit: usize,
        cursor: Option<i64>,
    ) -> StoreResult<Page<Case>> {
        let (rows, next) = self
            .filtered_cases(project_id, filter, limit, cursor.unwrap_or(0))
            .await?;
        Ok(Page {
            items: rows.into_iter().map(|(_, c)| c).collect(),
            next_cursor: next.map(|id| id.to_string()),
        })
    }

    /// Up to `limit` cases that pass the filter after row id `after`, with their row ids, and
    /// the row id the next page starts after (None at the end).
    pub(crate) async fn filtered_cases(
        &self,
        project_id: i64,
        filter: &CaseFilter,
        limit: usize,
        after: i64,
    ) -> StoreResult<(Vec<(i64, Case)>, Option<i64>)> {
        let f = filter.sql(self.dialect(), project_id, after);
        let sql = format!(
            "SELECT {} {} ORDER BY {} LIMIT {}",
            case_columns_c(),
            f.from_where,
            f.order_by,
            limit + 1
        );
        let mut items = if crate::dialect::batch_as_json(self.dialect()) {
            // The page as one JSON row: row by row, SQLite's driver hands each row over from
            // its thread on its own, which was most of an export's time.
            let sql = format!(
                "SELECT json_group_array(json_array(t.id, t.case_id, t.case_type, t.name, t.external_id,
                    t.phone_number, t.language_code, t.owner_id, t.closed, t.deleted, json(t.properties),
                    t.created_at, t.modified_at)) FROM ({sql}) t"
            );
            let row = f
                .bind(sqlx::query(&sql))
                .persistent(false)
                .fetch_one(self.pool())
                .await?;
            let json: String = row.try_get(0)?;
            // The error says where, never what (it would be a case's data, into the log).
            let rows: Vec<JsonCase> = serde_json::from_str(&json).map_err(|e| {
                StoreError::Internal(format!(
                    "a page of cases could not be decoded (column {})",
                    e.column()
                ))
            })?;
            let mut rows: Vec<(i64, Case)> = rows.into_iter().map(case_from_json).collect();
            // SQLite does not promise an aggregate's order: the page is put in order here.
            rows.sort_by_key(|(id, _)| *id);
            rows
        } else {
            // Not prepared once for all: a generic plan ignores which filters are set.
            let rows = f
                .bind(sqlx::query(&sql))
                .persistent(false)
                .fetch_all(self.pool())
                .await?;
            rows.iter()
                .map(case_from_row)
                .collect::<Result<Vec<_>, _>>()?
        };
        let more = items.len() > limit;
        items.truncate(limit);
        let next = more.then(|| items.last().map(|(id, _)| *id)).flatten();
        Ok((items, next))
    }

    /// How many cases pass the filter.
    pub async fn count_filtered_cases(
        &self,
        project_id: i64,
        filter: &CaseFilter,
    ) -> StoreResult<i64> {
        let f = filter.sql(self.dialect(), project_id, 0);
        let sql = format!("SELECT CAST(COUNT(*) AS BIGINT) {}", f.from_where);
        Ok(f.bind(sqlx::query(&sql))
            .persistent(false)
            .fetch_one(self.pool())
            .await?
            .try_get(0)?)
    }

    /// Applies changes to a live case; a deleted case is `NotFound`.
    pub async fn update_case(
        &self,
        project_id: i64,
        case_id: &str,
        changes: &CaseChanges,
    ) -> StoreResult<Case> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE project_id = $1 AND case_id = $2 AND deleted = 0{}",
            crate::dialect::for_update(self.dialect())
        ))
            .bind(project_id)
            .bind(case_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("case"))?;
        let (id, mut case) = case_from_row(&row)?;
        if changes.apply(&mut case) {
            CaseChanges::check_result(&case)?;
            case.modified_at = casecast_core::time::now_ms();
            update_case_row(&mut tx, id, &case).await?;
        }
        tx.commit().await?;
        Ok(case)
    }

    /// Sets properties of a case (by row id) inside the caller's transaction: a survey's
    /// answers. A deleted case is left as it is; returns whether the case was written.
    pub async fn set_case_properties_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        case_pk: i64,
        properties: &[(String, String)],
        now: i64,
    ) -> StoreResult<bool> {
        let row = sqlx::query(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE id = $1 AND deleted = 0{}",
            crate::dialect::for_update(self.dialect())
        ))
        .bind(case_pk)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let (id, mut case) = case_from_row(&row)?;
        for (key, value) in properties {
            case.properties.insert(key.clone(), value.clone());
        }
        case.modified_at = now;
        update_case_row(tx, id, &case).await?;
        Ok(true)
    }

    /// Closes a case: it stays, but receives no messages.
    pub async fn close_case(&self, project_id: i64, case_id: &str) -> StoreResult<Case> {
        self.update_case(
            project_id,
            case_id,
            &CaseChanges {
                closed: Some(true),
                ..Default::default()
            },
        )
        .await
    }

    /// Soft-deletes a case: kept for history, hidden from lists and groups.
    pub async fn delete_case(&self, project_id: i64, case_id: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let pk: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM cases WHERE project_id = $1 AND case_id = $2 AND deleted = 0",
        )
        .bind(project_id)
        .bind(case_id)
        .fetch_optional(&mut *tx)
        .await?;
        let pk = pk.ok_or(StoreError::NotFound("case"))?;
        // Guarded: of two concurrent deletes only one changes the row (and the counts).
        let done = sqlx::query(
            "UPDATE cases SET deleted = 1, modified_at = $1 WHERE id = $2 AND deleted = 0",
        )
        .bind(casecast_core::time::now_ms())
        .bind(pk)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("case"));
        }
        // A deleted case stops counting as a member of its groups (its memberships stay, hidden).
        sqlx::query(
            "UPDATE case_groups SET member_count = member_count - 1
             WHERE id IN (SELECT group_id FROM case_group_members WHERE case_pk = $1)",
        )
        .bind(pk)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many live cases the project has.
    pub async fn count_cases(&self, project_id: i64) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM cases WHERE project_id = $1 AND deleted = 0")
                .bind(project_id)
                .fetch_one(self.pool())
                .await?,
        )
    }
}

impl Db {
    /// Case ID and name of a few case rows, by row id.
    pub async fn case_names(&self, pks: &[i64]) -> StoreResult<HashMap<i64, (String, String)>> {
        if pks.is_empty() {
            return Ok(HashMap::new());
        }
        let mut p = crate::dialect::Placeholders::new(self.dialect());
        let sql = format!(
            "SELECT id, case_id, name FROM cases WHERE id IN ({})",
            p.list(pks.len())
        );
        let mut q = sqlx::query(&sql);
        for pk in pks {
            q = q.bind(pk);
        }
        let mut names = HashMap::new();
        for row in q.persistent(false).fetch_all(self.pool()).await? {
            names.insert(
                row.try_get("id")?,
                (row.try_get("case_id")?, row.try_get("name")?),
            );
        }
        Ok(names)
    }
}
