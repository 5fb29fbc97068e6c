//! The few places where SQLite and PostgreSQL differ, named in one spot.

use crate::db::Dialect;

/// The statement that opens a write transaction. SQLite takes the write lock up front
/// (`IMMEDIATE`) so that two writers wait for each other instead of failing with SQLITE_BUSY
/// when a read transaction tries to upgrade.
pub(crate) fn begin_write(engine: Dialect) -> &'static str {
    match engine {
        Dialect::Sqlite => "BEGIN IMMEDIATE",
        Dialect::Postgres => "BEGIN",
    }
}

/// The suffix that lets concurrent claimers skip rows another transaction holds. SQLite has no
/// row locks: its write transaction (`BEGIN IMMEDIATE`) already serialises claimers.
pub(crate) fn skip_locked(engine: Dialect) -> &'static str {
    match engine {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
    }
}

/// The suffix that locks the rows a SELECT reads until the transaction ends. SQLite needs none:
/// its write transaction (`BEGIN IMMEDIATE`) already excludes every other writer.
pub(crate) fn for_update(engine: Dialect) -> &'static str {
    match engine {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE",
    }
}

/// `FOR UPDATE OF alias` on PostgreSQL (a join's other tables stay unlocked); nothing on
/// SQLite, whose write transaction already excludes other writers.
pub(crate) fn for_update_of(engine: Dialect, alias: &str) -> String {
    match engine {
        Dialect::Sqlite => String::new(),
        Dialect::Postgres => format!(" FOR UPDATE OF {alias}"),
    }
}

/// Whether a batch of recipients is read as one JSON row ([`json_rows`]) rather than row by
/// row. On SQLite each row crosses from the driver's thread on its own, which made that most of
/// a preview's time; PostgreSQL builds JSON slowly (2 µs a row, ten times its plain rows).
pub(crate) fn batch_as_json(engine: Dialect) -> bool {
    engine == Dialect::Sqlite
}

/// A SQLite query that returns the rows of `inner` as one row: `json_rows`, a JSON text with
/// one array per row holding `columns` in order and then an array of the `nested` columns; `n`,
/// how many rows; `last`, the largest `id`.
pub(crate) fn json_rows(inner: &str, columns: &[&str], nested: &[String]) -> String {
    let list = |names: &mut dyn Iterator<Item = &str>| {
        names
            .map(|c| format!("t.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let columns = list(&mut columns.iter().copied());
    let nested = list(&mut nested.iter().map(String::as_str));
    format!(
        "SELECT json_group_array(json_array({columns}, json_array({nested}))) AS json_rows,
            COUNT(*) AS n, MAX(t.id) AS last FROM ({inner}) t"
    )
}

/// The text value at a key of a JSON object column; the key is bind parameter `$param`,
/// bound to [`json_text_key`] of the name.
pub(crate) fn json_text(engine: Dialect, column: &str, param: usize) -> String {
    match engine {
        Dialect::Sqlite => format!("json_extract({column}, ${param})"),
        Dialect::Postgres => format!("(({column})::jsonb ->> ${param})"),
    }
}

/// What to bind for a key in [`json_text`]: a JSON path on SQLite, the plain key on PostgreSQL.
/// Property names hold only letters, digits, `_`, `-` and `.`, so quoting them is enough.
pub(crate) fn json_text_key(engine: Dialect, key: &str) -> String {
    match engine {
        Dialect::Sqlite => format!("$.\"{key}\""),
        Dialect::Postgres => key.to_string(),
    }
}

/// The statement that refreshes the planner's statistics of a table after a bulk change.
/// PostgreSQL plans joins from them (a stale count chose a plan that read a million cases per
/// batch); SQLite's planner does without.
pub(crate) fn analyze(engine: Dialect, table: &str) -> Option<String> {
    match engine {
        Dialect::Sqlite => None,
        Dialect::Postgres => Some(format!("ANALYZE {table}")),
    }
}

/// Session settings run on every new connection.
pub(crate) fn connection_setup(engine: Dialect) -> &'static [&'static str] {
    match engine {
        Dialect::Sqlite => &[
            "PRAGMA journal_mode = WAL",
            "PRAGMA synchronous = NORMAL",
            "PRAGMA foreign_keys = ON",
            "PRAGMA busy_timeout = 10000",
        ],
        Dialect::Postgres => &[],
    }
}

/// The version of the newest migration this build has.
pub(crate) fn latest_migration(engine: Dialect) -> i64 {
    migrations(engine).last().map_or(0, |m| m.0)
}

/// The migration scripts of an engine, in order.
pub(crate) fn migrations(engine: Dialect) -> &'static [(i64, &'static str, &'static str)] {
    match engine {
        Dialect::Sqlite => &[
            (
                1,
                "foundation",
                include_str!("../migrations/sqlite/0001_foundation.sql"),
            ),
            (
                2,
                "case groups",
                include_str!("../migrations/sqlite/0002_case_groups.sql"),
            ),
            (
                3,
                "messaging",
                include_str!("../migrations/sqlite/0003_messaging.sql"),
            ),
            (
                4,
                "broadcasts",
                include_str!("../migrations/sqlite/0004_broadcasts.sql"),
            ),
            (
                5,
                "case export",
                include_str!("../migrations/sqlite/0005_case_export.sql"),
            ),
            (
                6,
                "accounts",
                include_str!("../migrations/sqlite/0006_accounts.sql"),
            ),
            (
                7,
                "external IDs ignoring case, history names cases",
                include_str!("../migrations/sqlite/0007_external_id_case.sql"),
            ),
            (
                8,
                "case imports",
                include_str!("../migrations/sqlite/0008_case_imports.sql"),
            ),
            (
                9,
                "surveys",
                include_str!("../migrations/sqlite/0009_surveys.sql"),
            ),
            (
                10,
                "keywords",
                include_str!("../migrations/sqlite/0010_keywords.sql"),
            ),
            (
                11,
                "reminders",
                include_str!("../migrations/sqlite/0011_reminders.sql"),
            ),
            (
                12,
                "reminder series",
                include_str!("../migrations/sqlite/0012_reminder_series.sql"),
            ),
            (
                13,
                "smart groups",
                include_str!("../migrations/sqlite/0013_smart_groups.sql"),
            ),
            (
                14,
                "one reminder message a number an occurrence",
                include_str!("../migrations/sqlite/0014_reminder_phone_once.sql"),
            ),
            (
                15,
                "lighter reminder writes",
                include_str!("../migrations/sqlite/0015_reminder_writes.sql"),
            ),
        ],
        Dialect::Postgres => &[
            (
                1,
                "foundation",
                include_str!("../migrations/postgres/0001_foundation.sql"),
            ),
            (
                2,
                "case groups",
                include_str!("../migrations/postgres/0002_case_groups.sql"),
            ),
            (
                3,
                "messaging",
                include_str!("../migrations/postgres/0003_messaging.sql"),
            ),
            (
                4,
                "broadcasts",
                include_str!("../migrations/postgres/0004_broadcasts.sql"),
            ),
            (
                5,
                "case export",
                include_str!("../migrations/postgres/0005_case_export.sql"),
            ),
            (
                6,
                "accounts",
                include_str!("../migrations/postgres/0006_accounts.sql"),
            ),
            (
                7,
                "external IDs ignoring case, history names cases",
                include_str!("../migrations/postgres/0007_external_id_case.sql"),
            ),
            (
                8,
                "case imports",
                include_str!("../migrations/postgres/0008_case_imports.sql"),
            ),
            (
                9,
                "surveys",
                include_str!("../migrations/postgres/0009_surveys.sql"),
            ),
            (
                10,
                "keywords",
                include_str!("../migrations/postgres/0010_keywords.sql"),
            ),
            (
                11,
                "reminders",
                include_str!("../migrations/postgres/0011_reminders.sql"),
            ),
            (
                12,
                "reminder series",
                include_str!("../migrations/postgres/0012_reminder_series.sql"),
            ),
            (
                13,
                "smart groups",
                include_str!("../migrations/postgres/0013_smart_groups.sql"),
            ),
            (
                14,
                "one reminder message a number an occurrence",
                include_str!("../migrations/postgres/0014_reminder_phone_once.sql"),
            ),
            (
                15,
                "lighter reminder writes",
                include_str!("../migrations/postgres/0015_reminder_writes.sql"),
            ),
        ],
    }
}

/// The largest number of bind parameters we put in one statement (SQLite allows 32766,
/// PostgreSQL 65535); multi-row statements are chunked below this.
pub(crate) const MAX_BIND_PARAMS: usize = 30_000;

/// Numbers bind placeholders in order for statements with many parameters. SQLite gets
/// anonymous `?`: for a named `$N` parameter sqlx asks SQLite for its name, which SQLite finds
/// by a linear search, so a 26,000-parameter insert spent 90 % of an import there. PostgreSQL
/// needs `$N`. Either way the values are bound in the order the placeholders were made.
pub(crate) struct Placeholders {
    engine: Dialect,
    next: usize,
}

/// `column` with its ASCII letters in lower case, written exactly as the expression index
/// `cases_external_id_lower` (migration 6) is, so that lookups use it. ASCII only on both
/// engines: SQLite's LOWER folds nothing else, and the two engines must match alike.
pub(crate) fn ascii_lower(engine: Dialect, column: &str) -> String {
    match engine {
        Dialect::Sqlite => format!("LOWER({column})"),
        Dialect::Postgres => format!(
            "translate({column}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"
        ),
    }
}

/// The LIKE that ignores case (ASCII on SQLite, whose LIKE already does; any on PostgreSQL).
pub(crate) fn ilike(engine: Dialect) -> &'static str {
    match engine {
        Dialect::Sqlite => "LIKE",
        Dialect::Postgres => "ILIKE",
    }
}

impl Placeholders {
    /// Placeholders starting at the first parameter.
    pub(crate) fn new(engine: Dialect) -> Self {
        Placeholders { engine, next: 1 }
    }

    /// The next placeholder.
    pub(crate) fn next(&mut self) -> String {
        let n = self.next;
        self.next += 1;
        match self.engine {
            Dialect::Sqlite => "?".to_string(),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// `count` placeholders separated by commas.
    pub(crate) fn list(&mut self, count: usize) -> String {
        (0..count)
            .map(|_| self.next())
            .collect::<Vec<_>>()
            .join(",")
    }
}
