//! The `casecast` command: serve, worker, migrate, and the admin and data commands.

mod admin;
mod backup;
mod config;
mod demo;
mod groups;
mod import;
mod serve;
mod survey_responses;
mod surveys;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use config::{Config, LogFormat};

/// Casecast: SMS to case groups for health and field programs.
#[derive(Parser)]
#[command(name = "casecast", version, about)]
struct Cli {
    #[command(flatten)]
    config: config::Config,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web UI, the API and the background workers.
    Serve(serve::ServeArgs),
    /// Run the background workers only (scale-out on PostgreSQL).
    Worker(serve::WorkerArgs),
    /// Create or upgrade the database schema.
    Migrate,
    /// Manage projects.
    #[command(subcommand)]
    Project(admin::ProjectCommand),
    /// Manage logins.
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(admin::TokenCommand),
    /// Import and export cases.
    #[command(subcommand)]
    Cases(import::CasesCommand),
    /// Manage case groups and their members.
    #[command(subcommand)]
    Groups(groups::GroupsCommand),
    /// Read surveys and their responses.
    #[command(subcommand)]
    Surveys(surveys::SurveysCommand),
    /// Copy a SQLite database to FILE while it is in use, with its key in FILE.key
    /// (PostgreSQL: use pg_dump).
    Backup {
        /// The copy to write (must not exist).
        file: std::path::PathBuf,
    },
    /// Put a backup made by `casecast backup` in place of the database (stop every casecast
    /// process first).
    Restore {
        /// The backup to restore (its key is read from FILE.key).
        file: std::path::PathBuf,
        /// Replace an existing database (and a key file holding another key).
        #[arg(long)]
        force: bool,
    },
}

fn init_logging(config: &Config, long_running: bool) {
    use std::io::IsTerminal;
    // Servers log their work; one-shot commands stay quiet so that a failure is one line.
    let default = if long_running {
        "info,sqlx=warn"
    } else {
        "warn"
    };
    let filter = (config.log_filter.as_deref())
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: not in log files, journald or a container's log.
        .with_ansi(std::io::stderr().is_terminal() && config.colour());
    match config.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg = &cli.config;
    match cli.command {
        Command::Serve(args) => serve::serve(cfg, args).await,
        Command::Worker(args) => serve::worker(cfg, args).await,
        Command::Migrate => {
            let db = casecast_store::Db::open(&cfg.db)
                .await
                .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
            db.close().await;
            println!("the database is migrated");
            Ok(())
        }
        Command::Project(c) => admin::project(cfg, c).await,
        Command::User(c) => admin::user(cfg, c).await,
        Command::Token(c) => admin::token(cfg, c).await,
        Command::Cases(c) => import::cases(cfg, c).await,
        Command::Groups(c) => groups::groups(cfg, c).await,
        Command::Surveys(c) => surveys::surveys(cfg, c).await,
        Command::Backup { file } => backup::backup(cfg, &file).await,
        Command::Restore { file, force } => backup::restore(cfg, &file, force).await,
    }
}

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A refused value is one line, like every other error of ours (the usage hint that
        // clap adds is for mistyped commands, where it helps).
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ValueValidation | ErrorKind::InvalidValue
            ) =>
        {
            let text = e.render().to_string();
            eprintln!("{}", text.lines().next().unwrap_or("error: invalid value"));
            return std::process::ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    let long_running = matches!(cli.command, Command::Serve(_) | Command::Worker(_));
    init_logging(&cli.config, long_running);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: the reason and its context.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
