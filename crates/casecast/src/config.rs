//! The one `Config` of a `casecast` process: every setting it takes from its flags and its
//! environment, read once by clap in `main` and passed down. Nothing else reads the
//! environment.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// The log format on stderr.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Settings every command shares.
#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Database: a SQLite file path (created on first use) or a postgres:// URL.
    #[arg(
        long,
        global = true,
        env = "CASECAST_DB",
        default_value = "casecast.db"
    )]
    pub db: String,
    /// Log format on stderr.
    #[arg(long, global = true, env = "CASECAST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// What to log, as tracing filter directives (e.g. `info,sqlx=warn`); servers log `info`
    /// and one-shot commands `warn` by default.
    #[arg(
        long = "log",
        global = true,
        env = "CASECAST_LOG",
        value_name = "FILTER"
    )]
    pub log_filter: Option<String>,
    /// The key that seals gateway credentials, as 64 hexadecimal digits (prefer the variable:
    /// a command line is visible to other users of the machine).
    #[arg(
        long,
        global = true,
        env = "CASECAST_SECRET_KEY",
        hide = true,
        hide_env_values = true
    )]
    pub secret_key: Option<String>,
    /// The file that holds the key sealing gateway credentials (default: `casecast.key` beside
    /// a SQLite file, or in the working directory); created with a new key when missing.
    #[arg(long, global = true, env = "CASECAST_KEY_FILE", value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// No colours in logs (the `NO_COLOR` convention: set to anything but empty).
    #[arg(long = "no-color", global = true, env = "NO_COLOR", hide = true, num_args = 0..=1, default_missing_value = "1")]
    pub no_color: Option<String>,
}

impl Config {
    /// Whether logs may be coloured (they also need a terminal).
    pub fn colour(&self) -> bool {
        self.no_color.as_deref().is_none_or(str::is_empty)
    }
}
