//! The `casecast` command: serve, worker, migrate, and the admin and data commands.

mod admin;
mod demo;
mod groups;
mod import;
mod serve;

use clap::{Parser, Subcommand, ValueEnum};

/// Casecast: SMS to case groups for health and field programs.
#[derive(Parser)]
#[command(name = "casecast", version, about)]
struct Cli {
    /// Database: a SQLite file path (created on first use) or a postgres:// URL.
    #[arg(
        long,
        global = true,
        env = "CASECAST_DB",
        default_value = "casecast.db"
    )]
    db: String,
    /// Log format on stderr.
    #[arg(long, global = true, env = "CASECAST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
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
}

fn init_logging(format: LogFormat, long_running: bool) {
    use std::io::IsTerminal;
    // Servers log their work; one-shot commands stay quiet so that a failure is one line.
    let default = if long_running {
        "info,sqlx=warn"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CASECAST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: not in log files, journald or a container's log.
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::serve(&cli.db, args).await,
        Command::Worker(args) => serve::worker(&cli.db, args).await,
        Command::Migrate => {
            let db = casecast_store::Db::open(&cli.db)
                .await
                .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
            db.close().await;
            println!("the database is migrated");
            Ok(())
        }
        Command::Project(c) => admin::project(&cli.db, c).await,
        Command::User(c) => admin::user(&cli.db, c).await,
        Command::Token(c) => admin::token(&cli.db, c).await,
        Command::Cases(c) => import::cases(&cli.db, c).await,
        Command::Groups(c) => groups::groups(&cli.db, c).await,
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let long_running = matches!(cli.command, Command::Serve(_) | Command::Worker(_));
    init_logging(cli.log_format, long_running);
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
