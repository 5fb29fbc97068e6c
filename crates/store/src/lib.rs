//! Casecast storage: one code path over SQLite and PostgreSQL (sqlx `Any`).

pub mod accounts;
pub mod broadcast_runs;
pub mod broadcasts;
pub mod case_export;
pub mod case_groups;
pub mod case_import;
pub mod case_query_sql;
pub mod cases;
pub mod db;
mod dialect;
pub mod error;
pub mod fanout;
pub mod gateways;
pub mod import_jobs;
pub mod inbound_batch;
pub mod jobs;
pub mod keyword_actions;
pub mod keywords;
pub mod membership;
pub mod messages;
mod migrate;
pub mod opt_outs;
pub mod outbox;
pub mod projects;
pub mod recipients;
pub mod reminders;
pub mod sealed;
pub mod secrets;
pub mod settings;
pub mod survey_responses;
pub mod survey_sessions;
pub mod surveys;
pub mod tokens;
pub mod uploads;

pub use db::{Db, Dialect, Tx};
pub use error::{StoreError, StoreResult};
