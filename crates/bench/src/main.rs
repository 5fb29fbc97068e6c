//! `casecast-bench`: speed and memory figures of Casecast on data it makes: imports, case
//! groups, delivery, broadcasts, surveys, keywords, reminders, case queries and case exports. Where a figure is a `casecast serve` or
//! `casecast worker` process's, it starts the `casecast` binary (`--casecast PATH`, by default
//! the one beside this program); `scripts/bench` builds both and runs every benchmark on SQLite
//! and PostgreSQL.

mod broadcast;
mod common;
mod contention;
mod dispatch;
mod export;
mod groups;
mod hardening;
mod import;
mod keywords;
mod queries;
mod reminders;
mod survey_export;
mod surveys;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::common::Bench;

/// Measure Casecast's speed and memory (every benchmark makes its own data).
#[derive(Parser)]
#[command(name = "casecast-bench", version, about)]
struct Cli {
    /// Database: a SQLite file path (created on first use) or a postgres:// URL.
    #[arg(
        long,
        global = true,
        env = "CASECAST_DB",
        default_value = "casecast.db"
    )]
    db: String,
    /// The `casecast` binary to start as `serve` or `worker` [default: `casecast` in this
    /// program's folder].
    #[arg(long, global = true, value_name = "PATH")]
    casecast: Option<PathBuf>,
    /// The key that seals gateway credentials, 64 hex digits; the `casecast` processes started
    /// get the same key.
    #[arg(
        long,
        global = true,
        env = "CASECAST_SECRET_KEY",
        hide_env_values = true
    )]
    secret_key: Option<String>,
    /// The key file when no key is given (created when missing) [default: `casecast.key` beside
    /// a SQLite database file, else in the working directory].
    #[arg(long, global = true, env = "CASECAST_KEY_FILE", value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// Log filter of this program on stderr (the processes it starts log warnings only).
    #[arg(long, global = true, env = "CASECAST_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Import N generated cases into a new project and print rows/s and peak RSS.
    Import {
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        #[arg(long, value_enum, default_value_t = import::SheetFormat::Csv)]
        format: import::SheetFormat,
    },
    /// How long another project's writes wait while an import of N cases runs through
    /// `casecast serve`'s API or `casecast cases import` on the same database.
    Contention {
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        #[arg(long, value_enum, default_value_t = contention::Via::Api)]
        via: contention::Via,
    },
    /// Case-group figures: upload N identifiers, the members page, server memory.
    Groups {
        /// Cases in the project (and members of the big group).
        #[arg(long, default_value_t = 1_000_000)]
        cases: usize,
        /// Identifiers in the uploaded sheet.
        #[arg(long, default_value_t = 100_000)]
        identifiers: usize,
    },
    /// Broadcast figures: the preview and fan-out of a broadcast to a group of N cases.
    Broadcast {
        /// Cases in the project, all in the group.
        #[arg(long, default_value_t = 1_000_000)]
        cases: usize,
    },
    /// Survey figures (issue 13): a survey broadcast to a group of N cases, timed from firing
    /// to every session and first message written; then R replies handled end to end by the
    /// inbound router from several tasks (replies/s, p99 latency, peak RSS).
    Surveys {
        /// Cases in the project, all in the group (each gets a session).
        #[arg(long, default_value_t = 100_000)]
        cases: usize,
        /// Replies, each from another recipient (0: the start only).
        #[arg(long, default_value_t = 20_000)]
        replies: usize,
        /// Replies in flight at once (as a gateway delivers them: Kannel's smsbox keeps up to
        /// 512 requests open; the router takes those that arrive together as one batch).
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Keyword figures (issue 14): M inbound keyword messages from M numbers, half REG from
    /// unknown numbers (each makes a case and gets a reply), half JOIN from known cases (each
    /// joins a group and gets a reply), through the inbound router (messages/s, p99 latency,
    /// peak RSS)
    Keywords {
        /// Known cases in the project (the JOIN senders).
        #[arg(long, default_value_t = 25_000)]
        cases: usize,
        /// Messages, each from its own number.
        #[arg(long, default_value_t = 50_000)]
        messages: usize,
        /// Messages in flight at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Reminder figures (issue 15), each part on a project of its own: a rule over N cases
    /// created and evaluated (seconds, cases/s, schedule rows, peak RSS); D occurrences due in
    /// one minute queued into the outbox by `fire_due` (occurrences/s, checked against the
    /// outbox); an import of I cases into a project with 10 active rules (rows/s) and the
    /// re-evaluation it queues (cases/s).
    Reminders {
        /// The part to run.
        #[arg(long, value_enum, default_value_t = reminders::Part::All)]
        part: reminders::Part,
        /// Cases of the evaluation part, every one taken by the rule.
        #[arg(long, default_value_t = 1_000_000)]
        cases: usize,
        /// Cases of the firing part, each with an occurrence due in the same minute.
        #[arg(long, default_value_t = 100_000)]
        due: usize,
        /// New cases imported in the import part.
        #[arg(long, default_value_t = 100_000)]
        import: usize,
        /// Cases of the import part's project before the import (its 10 rules evaluated over
        /// them).
        #[arg(long, default_value_t = 100_000)]
        existing: usize,
    },
    /// Case-query and smart-group figures (issue 16), on a project of N cases with 10
    /// properties: a query's count and first page, the member search in a group of every case,
    /// a smart group of a quarter of the cases created; then with 20 smart groups, K single-case
    /// writes and an import of I cases with their upkeep, each against a project without smart
    /// groups.
    Queries {
        /// Cases of each of the two projects.
        #[arg(long, default_value_t = 1_000_000)]
        cases: usize,
        /// Single-case writes timed in each project.
        #[arg(long, default_value_t = 1_000)]
        writes: usize,
        /// New cases imported into each project.
        #[arg(long, default_value_t = 100_000)]
        import: usize,
        /// Runs of each read (the first, cold, and the median are printed).
        #[arg(long, default_value_t = 7)]
        repeats: usize,
    },
    /// Case-export figures: CSV and .xlsx exports of N cases through `casecast serve`, and the
    /// background .xlsx export.
    Export {
        #[arg(long, default_value_t = 1_000_000)]
        cases: usize,
    },
    /// Survey-responses figures: CSV and .xlsx of a survey's N sessions through `casecast
    /// serve` (first byte, rows/s, server peak memory).
    SurveyExport {
        #[arg(long, default_value_t = 100_000)]
        sessions: usize,
    },
    /// Delivery figures: dispatch to a local HTTP sink, through Kannel, a shared rate limit.
    #[command(subcommand)]
    Dispatch(dispatch::DispatchBench),
    /// Issue 12's hardening figures through `casecast serve`: memory after made-up methods,
    /// shared-strings bombs, /healthz under held idle connections, concurrent logins.
    Hardening(hardening::Hardening),
    /// (internal) The measured part of `import`.
    #[command(hide = true)]
    RunImport {
        #[arg(long)]
        project: String,
        file: PathBuf,
    },
    /// (internal) The measured preview of `broadcast`.
    #[command(hide = true)]
    RunPreview {
        #[arg(long)]
        project_id: i64,
        #[arg(long)]
        group_id: i64,
    },
    /// (internal) The measured start of `surveys`.
    #[command(hide = true)]
    RunSurveyStart {
        #[arg(long)]
        project_id: i64,
        #[arg(long)]
        occurrence: i64,
    },
    /// (internal) The measured replies of `surveys`.
    #[command(hide = true)]
    RunSurveyReplies {
        #[arg(long)]
        project_id: i64,
        #[arg(long)]
        survey_id: i64,
        #[arg(long)]
        replies: usize,
        #[arg(long)]
        cases: usize,
        #[arg(long)]
        concurrency: usize,
    },
    /// (internal) The measured messages of `keywords`.
    #[command(hide = true)]
    RunKeywords {
        #[arg(long)]
        project_id: i64,
        #[arg(long)]
        group_id: i64,
        #[arg(long)]
        messages: usize,
        #[arg(long)]
        concurrency: usize,
    },
    /// (internal) The measured evaluation of `reminders`.
    #[command(hide = true)]
    RunRemindersEval {
        #[arg(long)]
        project_id: i64,
        #[arg(long)]
        now_ms: i64,
    },
    /// (internal) The measured firing of `reminders`.
    #[command(hide = true)]
    RunRemindersFire {
        #[arg(long)]
        project_id: i64,
        #[arg(long)]
        reminder_id: i64,
        #[arg(long)]
        at_ms: i64,
        #[arg(long)]
        due: usize,
    },
    /// (internal) The measured import and re-evaluation of `reminders`.
    #[command(hide = true)]
    RunRemindersImport {
        #[arg(long)]
        project: String,
        #[arg(long)]
        plain_project: String,
        #[arg(long)]
        rows: usize,
        #[arg(long, value_delimiter = ',')]
        reminder_ids: Vec<i64>,
        files: Vec<PathBuf>,
    },
    /// (internal) The measured reads and smart group of `queries`.
    #[command(hide = true)]
    RunQueriesRead {
        #[arg(long)]
        project_id: i64,
        #[arg(long)]
        group_id: i64,
        #[arg(long)]
        cases: usize,
        #[arg(long)]
        repeats: usize,
    },
    /// (internal) The measured writes and import of `queries`.
    #[command(hide = true)]
    RunQueriesWrite {
        #[arg(long)]
        project: String,
        #[arg(long)]
        plain_project: String,
        #[arg(long)]
        cases: usize,
        #[arg(long)]
        writes: usize,
        #[arg(long)]
        rows: usize,
        files: Vec<PathBuf>,
    },
    /// (internal) The measured fan-out of `broadcast`.
    #[command(hide = true)]
    RunFanout {
        #[arg(long)]
        project_id: i64,
        #[arg(long)]
        occurrence: i64,
    },
}

impl Command {
    /// Whether the benchmark starts `casecast` processes (found before it makes its data).
    fn starts_casecast(&self) -> bool {
        matches!(
            self,
            Command::Groups { .. }
                | Command::Export { .. }
                | Command::SurveyExport { .. }
                | Command::Hardening(_)
                | Command::Contention { .. }
                | Command::Dispatch(dispatch::DispatchBench::Rate { .. })
        )
    }
}

async fn run(bench: &Bench, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Import { rows, format } => import::run(bench, rows, format).await,
        Command::RunImport { project, file } => import::run_import(bench, &project, &file).await,
        Command::Groups { cases, identifiers } => groups::run(bench, cases, identifiers).await,
        Command::Broadcast { cases } => broadcast::run(bench, cases).await,
        Command::RunPreview {
            project_id,
            group_id,
        } => broadcast::run_preview(bench, project_id, group_id).await,
        Command::RunFanout {
            project_id,
            occurrence,
        } => broadcast::run_fanout(bench, project_id, occurrence).await,
        Command::Surveys {
            cases,
            replies,
            concurrency,
        } => surveys::run(bench, cases, replies, concurrency).await,
        Command::RunSurveyStart {
            project_id,
            occurrence,
        } => surveys::run_start(bench, project_id, occurrence).await,
        Command::RunSurveyReplies {
            project_id,
            survey_id,
            replies,
            cases,
            concurrency,
        } => {
            let r = surveys::Replies {
                project_id,
                survey_id,
                replies,
                cases,
                concurrency,
            };
            surveys::run_replies(bench, r).await
        }
        Command::Keywords {
            cases,
            messages,
            concurrency,
        } => keywords::run(bench, cases, messages, concurrency).await,
        Command::RunKeywords {
            project_id,
            group_id,
            messages,
            concurrency,
        } => {
            let m = keywords::Messages {
                project_id,
                group_id,
                messages,
                concurrency,
            };
            keywords::run_messages(bench, m).await
        }
        Command::Reminders {
            part,
            cases,
            due,
            import,
            existing,
        } => {
            let sizes = reminders::Sizes {
                cases,
                due,
                import,
                existing,
            };
            reminders::run(bench, part, sizes).await
        }
        Command::RunRemindersEval { project_id, now_ms } => {
            reminders::run_eval(bench, project_id, now_ms).await
        }
        Command::RunRemindersFire {
            project_id,
            reminder_id,
            at_ms,
            due,
        } => {
            let f = reminders::Fire {
                project_id,
                reminder_id,
                at_ms,
                due,
            };
            reminders::run_fire(bench, f).await
        }
        Command::RunRemindersImport {
            project,
            plain_project,
            rows,
            reminder_ids,
            files,
        } => {
            let i = reminders::Import {
                project,
                plain_project,
                rows,
                reminder_ids,
                files,
            };
            reminders::run_import(bench, i).await
        }
        Command::Queries {
            cases,
            writes,
            import,
            repeats,
        } => {
            let sizes = queries::Sizes {
                cases,
                writes,
                import,
                repeats,
            };
            queries::run(bench, sizes).await
        }
        Command::RunQueriesRead {
            project_id,
            group_id,
            cases,
            repeats,
        } => {
            let r = queries::Read {
                project_id,
                group_id,
                cases,
                repeats,
            };
            queries::run_read(bench, r).await
        }
        Command::RunQueriesWrite {
            project,
            plain_project,
            cases,
            writes,
            rows,
            files,
        } => {
            let w = queries::Write {
                project,
                plain_project,
                cases,
                writes,
                rows,
                files,
            };
            queries::run_write(bench, w).await
        }
        Command::Export { cases } => export::run(bench, cases).await,
        Command::SurveyExport { sessions } => survey_export::run(bench, sessions).await,
        Command::Contention { rows, via } => contention::run(bench, rows, via).await,
        Command::Dispatch(command) => dispatch::run(bench, command).await,
        Command::Hardening(h) => hardening::run(bench, h).await,
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .map_err(|e| anyhow::anyhow!("--log: {e}"))
        .and_then(|filter| {
            use std::io::IsTerminal;
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .init();
            let casecast = cli
                .command
                .starts_casecast()
                .then(|| common::casecast_binary(cli.casecast))
                .transpose()?;
            let bench = Bench::new(cli.db, cli.secret_key.as_deref(), cli.key_file, casecast)?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| anyhow::anyhow!("cannot start the runtime: {e}"))?
                .block_on(run(&bench, cli.command))
        });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
