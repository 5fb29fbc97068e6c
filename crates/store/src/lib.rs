//! Casecast storage: one code path over SQLite and PostgreSQL (sqlx `Any`).

pub mod accounts;
pub mod case_import;
pub mod cases;
pub mod db;
mod dialect;
pub mod error;
mod migrate;
pub mod projects;
pub mod secrets;
pub mod tokens;

pub use db::{Db, Engine};
pub use error::{StoreError, StoreResult};
