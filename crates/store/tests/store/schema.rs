//! The two copies of the migrations (`migrations/sqlite` and `migrations/postgres`) must build
//! the same schema: a fresh database on each engine, migrated, has the same tables, the same
//! columns per table (names, a type family and nullability), the same primary keys, and the
//! same indexes per table (names, key columns in order, uniqueness, whether partial). An index
//! behind a UNIQUE constraint is compared by its columns alone: SQLite names it
//! `sqlite_autoindex_…` whatever the constraint is called. The migrator's own table is left out.
//!
//! This test needs both engines at once, so unlike the others it is not run per engine; like
//! the others, it needs `CASECAST_TEST_PG` (scripts/test starts a private PostgreSQL).

use std::collections::BTreeSet;

use casecast_testkit::{Dialect, TestDb};
use sqlx::Row;

/// Where the schemas differ on purpose: each a line of [`differences`], with the reason.
const KNOWN_DIFFERENCES: &[&str] = &[
    // Migration 0004: on PostgreSQL the status rides in messages_occurrence_phone as an
    // INCLUDE column (not a key column, so not compared here); SQLite has no INCLUDE and keeps
    // a second index for the per-status counts of an occurrence.
    "only on sqlite: index messages messages_occurrence_status (occurrence_id, status) partial",
];

/// The migrator's bookkeeping, not part of the schema the migrations build.
const MIGRATOR_TABLE: &str = "casecast_migrations";

/// A declared column type reduced to the family both engines store the same way.
fn family(declared: &str) -> String {
    let t = declared.to_ascii_lowercase();
    let family = if t.contains("int") {
        "integer"
    } else if t.contains("char") || t.contains("text") || t.contains("clob") {
        "text"
    } else if t.contains("real") || t.contains("floa") || t.contains("doub") || t == "numeric" {
        "real"
    } else if t.contains("blob") || t == "bytea" {
        "blob"
    } else {
        // Anything else (boolean, jsonb, timestamp…) stays as it is, and so differs.
        return t;
    };
    family.to_string()
}

/// The schema as one line per fact, so that two schemas compare as two sets of lines.
type Facts = BTreeSet<String>;

fn column(table: &str, name: &str, declared: &str, nullable: bool) -> String {
    let null = if nullable { "null" } else { "not null" };
    format!("column {table}.{name} {} {null}", family(declared))
}

/// An index made by CREATE INDEX has its name compared; one behind a UNIQUE constraint does not.
fn index(
    table: &str,
    name: Option<&str>,
    columns: &[String],
    unique: bool,
    partial: bool,
) -> String {
    let columns = columns.join(", ");
    let partial = if partial { " partial" } else { "" };
    match (name, unique) {
        (Some(name), true) => format!("unique index {table} {name} ({columns}){partial}"),
        (Some(name), false) => format!("index {table} {name} ({columns}){partial}"),
        (None, _) => format!("unique constraint {table} ({columns})"),
    }
}

async fn sqlite_facts(url: &str) -> Facts {
    let pool = sqlx::SqlitePool::connect(&casecast_store::db::normalise_url(url).1)
        .await
        .unwrap();
    let mut facts = Facts::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> ?",
    )
    .bind(MIGRATOR_TABLE)
    .fetch_all(&pool)
    .await
    .unwrap();
    for table in tables {
        facts.insert(format!("table {table}"));
        let mut primary_key = Vec::new();
        let columns = sqlx::query(
            r#"SELECT name, type, "notnull", pk FROM pragma_table_info(?) ORDER BY cid"#,
        )
        .bind(&table)
        .fetch_all(&pool)
        .await
        .unwrap();
        for c in columns {
            let (name, declared): (String, String) = (c.get("name"), c.get("type"));
            let pk: i64 = c.get("pk");
            if pk > 0 {
                primary_key.push((pk, name.clone()));
            }
            // A primary key column never holds NULL on PostgreSQL; on SQLite only an INTEGER
            // PRIMARY KEY is sure not to, but the store never writes NULL into another one.
            let nullable = c.get::<i64, _>("notnull") == 0 && pk == 0;
            facts.insert(column(&table, &name, &declared, nullable));
        }
        if !primary_key.is_empty() {
            primary_key.sort();
            let primary_key: Vec<String> = primary_key.into_iter().map(|(_, n)| n).collect();
            facts.insert(format!("primary key {table} ({})", primary_key.join(", ")));
        }
        let indexes =
            sqlx::query(r#"SELECT name, "unique", origin, partial FROM pragma_index_list(?)"#)
                .bind(&table)
                .fetch_all(&pool)
                .await
                .unwrap();
        for i in indexes {
            let (name, origin): (String, String) = (i.get("name"), i.get("origin"));
            if origin == "pk" {
                continue; // the primary key, compared above
            }
            let columns: Vec<String> =
                // An expression (`LOWER(external_id)`) has no name: both engines show it alike.
                sqlx::query_scalar(
                    "SELECT COALESCE(name, '(expression)') FROM pragma_index_info(?) ORDER BY seqno",
                )
                    .bind(&name)
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            let name = (origin == "c").then_some(name.as_str());
            let (unique, partial): (i64, i64) = (i.get("unique"), i.get("partial"));
            facts.insert(index(&table, name, &columns, unique != 0, partial != 0));
        }
    }
    pool.close().await;
    facts
}

async fn postgres_facts(url: &str) -> Facts {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let mut facts = Facts::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> $1",
    )
    .bind(MIGRATOR_TABLE)
    .fetch_all(&pool)
    .await
    .unwrap();
    for table in tables {
        facts.insert(format!("table {table}"));
        let columns = sqlx::query(
            "SELECT column_name::text AS name, data_type::text AS type, is_nullable = 'YES' AS nullable
             FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1",
        )
        .bind(&table)
        .fetch_all(&pool)
        .await
        .unwrap();
        for c in columns {
            let (name, declared): (String, String) = (c.get("name"), c.get("type"));
            facts.insert(column(&table, &name, &declared, c.get("nullable")));
        }
        // Key columns only: an INCLUDE column is carried, not indexed on.
        let indexes = sqlx::query(
            "SELECT i.relname::text AS name, x.indisunique AS unique, x.indisprimary AS primary,
                    x.indpred IS NOT NULL AS partial,
                    EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid) AS constraint,
                    ARRAY(SELECT COALESCE(a.attname::text, '(expression)')
                          FROM generate_series(0, x.indnkeyatts - 1) AS n(i)
                          LEFT JOIN pg_attribute a
                            ON a.attrelid = x.indrelid AND a.attnum = x.indkey[n.i]
                          ORDER BY n.i) AS columns
             FROM pg_index x
             JOIN pg_class i ON i.oid = x.indexrelid
             JOIN pg_class t ON t.oid = x.indrelid
             WHERE t.relname = $1 AND t.relnamespace = current_schema()::regnamespace",
        )
        .bind(&table)
        .fetch_all(&pool)
        .await
        .unwrap();
        for i in indexes {
            let (name, columns): (String, Vec<String>) = (i.get("name"), i.get("columns"));
            if i.get("primary") {
                facts.insert(format!("primary key {table} ({})", columns.join(", ")));
                continue;
            }
            let name = (!i.get::<bool, _>("constraint")).then_some(name.as_str());
            facts.insert(index(
                &table,
                name,
                &columns,
                i.get("unique"),
                i.get("partial"),
            ));
        }
    }
    pool.close().await;
    facts
}

/// The facts of one schema that the other lacks, each line prefixed with where it holds.
fn differences(sqlite: &Facts, postgres: &Facts) -> Vec<String> {
    let only = |engine: &str, a: &Facts, b: &Facts| {
        a.difference(b)
            .map(|f| format!("only on {engine}: {f}"))
            .collect::<Vec<_>>()
    };
    let mut out = only("sqlite", sqlite, postgres);
    out.extend(only("postgres", postgres, sqlite));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_engines_migrate_to_the_same_schema() {
    let sqlite = TestDb::new(Dialect::Sqlite).await;
    let postgres = TestDb::new(Dialect::Postgres).await;
    let sqlite_facts = sqlite_facts(&sqlite.url).await;
    let postgres_facts = postgres_facts(&postgres.url).await;
    // The walk found the schema, not an empty database or only part of it.
    for facts in [&sqlite_facts, &postgres_facts] {
        assert!(facts.contains("table messages"), "{facts:#?}");
        assert!(facts.contains("primary key case_group_members (group_id, case_pk)"));
        assert!(facts.contains("unique constraint cases (project_id, case_id)"));
        assert!(facts.contains("column uploads.file_bytes blob null"));
        assert!(!facts.iter().any(|f| f.contains(MIGRATOR_TABLE)));
    }
    let found = differences(&sqlite_facts, &postgres_facts);
    let known: Vec<String> = KNOWN_DIFFERENCES.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        found, known,
        "the SQLite and PostgreSQL migrations build different schemas: fix the copy that drifted \
         with a new migration, or list a difference made on purpose in KNOWN_DIFFERENCES"
    );
}

#[test]
fn types_fall_into_families_and_differences_name_their_side() {
    for (declared, expected) in [
        ("INTEGER", "integer"),
        ("BIGINT", "integer"),
        ("bigint", "integer"),
        ("TEXT", "text"),
        ("character varying", "text"),
        ("DOUBLE PRECISION", "real"),
        ("double precision", "real"),
        ("BLOB", "blob"),
        ("bytea", "blob"),
        ("boolean", "boolean"),
        ("jsonb", "jsonb"),
    ] {
        assert_eq!(family(declared), expected, "{declared}");
    }
    let a: Facts = ["table t".into(), column("t", "x", "BIGINT", false)].into();
    let b: Facts = ["table t".into(), column("t", "x", "text", false)].into();
    assert_eq!(
        differences(&a, &b),
        [
            "only on sqlite: column t.x integer not null",
            "only on postgres: column t.x text not null",
        ]
    );
    assert_eq!(
        index("t", None, &["a".into(), "b".into()], true, false),
        "unique constraint t (a, b)"
    );
}
