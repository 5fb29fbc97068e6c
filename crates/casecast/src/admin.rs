//! `project`, `user` and `token` commands.

use crate::config::Config;
use std::io::Read;

use anyhow::{anyhow, bail, Context};
use casecast_core::{CountryCode, Email, ProjectSlug, Role, TimeZoneName};
use casecast_store::projects::NewProject;
use casecast_store::sealed::{self, SecretKey};
use casecast_store::Db;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ProjectCommand {
    /// Create a project (a tenant).
    Create {
        slug: String,
        #[arg(long)]
        name: Option<String>,
        /// IANA time zone in which schedules are read.
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        /// Default country for phone numbers written without a country code (UG, KE…).
        #[arg(long)]
        country: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a login (or reset its password) with a role in a project.
    Create {
        email: String,
        #[arg(long)]
        project: String,
        #[arg(long)]
        role: String,
        /// Read the password from standard input; otherwise a random one is made and printed.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it (alone on stdout); it is not shown again.
    Create {
        #[arg(long)]
        project: String,
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List the project's tokens (never their secrets).
    List {
        #[arg(long)]
        project: String,
    },
    /// Revoke a token by its id.
    Revoke {
        #[arg(long)]
        project: String,
        id: i64,
    },
}

/// Opens and migrates the database, with a one-line reason on failure.
pub async fn open(cfg: &Config) -> anyhow::Result<Db> {
    let key = secret_key(cfg)?;
    let db = Db::open(&cfg.db)
        .await
        .map_err(|e| anyhow!("cannot open the database: {e}"))?
        .with_secret_key(key);
    db.check_secret_key().await?;
    Ok(db)
}

/// The key that seals gateway credentials: `CASECAST_SECRET_KEY` (64 hex digits), else the key
/// file `CASECAST_KEY_FILE`, by default `casecast.key` beside a SQLite database file or in the
/// working directory for PostgreSQL. A missing key file is created with a new random key
/// (readable by its owner only). Every process sharing a database must use the same key.
fn secret_key(cfg: &Config) -> anyhow::Result<SecretKey> {
    if let Some(hex) = &cfg.secret_key {
        return SecretKey::from_hex(hex).map_err(|e| anyhow!("CASECAST_SECRET_KEY: {e}"));
    }
    let path = match &cfg.key_file {
        Some(p) => p.clone(),
        None => sealed::default_key_file(&cfg.db),
    };
    let (key, created) = sealed::read_or_create_key_file(&path).map_err(|e| anyhow!(e))?;
    if created {
        eprintln!(
            "created a new secret key for gateway credentials in {} (keep it with the database)",
            path.display()
        );
    }
    Ok(key)
}

pub async fn project(cfg: &Config, command: ProjectCommand) -> anyhow::Result<()> {
    let ProjectCommand::Create {
        slug,
        name,
        time_zone,
        country,
    } = command;
    let new = NewProject {
        slug: ProjectSlug::parse(&slug)?,
        name: name.unwrap_or_else(|| slug.clone()),
        time_zone: TimeZoneName::parse(&time_zone)?,
        country: country.as_deref().map(CountryCode::parse).transpose()?,
    };
    let db = open(cfg).await?;
    let p = db.create_project(&new).await?;
    println!(
        "created project '{}' ({}, time zone {})",
        p.slug, p.name, p.time_zone
    );
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut s)
        .context("reading the password from stdin")?;
    let password = s.trim_end_matches(['\n', '\r']).to_string();
    if password.chars().count() < 8 {
        bail!("the password must have at least 8 characters");
    }
    if password.len() > 1024 {
        bail!("the password must have at most 1024 bytes");
    }
    Ok(password)
}

pub async fn user(cfg: &Config, command: UserCommand) -> anyhow::Result<()> {
    let UserCommand::Create {
        email,
        project,
        role,
        password_stdin,
    } = command;
    let email = Email::parse(&email)?;
    let role: Role = role.parse()?;
    let password = if password_stdin {
        read_password()?
    } else {
        casecast_store::secrets::random_hex(10)
    };
    let db = open(cfg).await?;
    let p = db
        .project_by_slug(&project)
        .await
        .with_context(|| format!("project '{project}'"))?;
    db.upsert_user(&email, &password, p.id, role).await?;
    if password_stdin {
        println!(
            "{} can log in to '{}' as {}",
            email.as_str(),
            p.slug,
            role.as_str()
        );
    } else {
        println!(
            "{} can log in to '{}' as {} with password {password}",
            email.as_str(),
            p.slug,
            role.as_str()
        );
    }
    Ok(())
}

pub async fn token(cfg: &Config, command: TokenCommand) -> anyhow::Result<()> {
    let db = open(cfg).await?;
    match command {
        TokenCommand::Create {
            project,
            user,
            name,
        } => {
            let p = db
                .project_by_slug(&project)
                .await
                .with_context(|| format!("project '{project}'"))?;
            let u = db
                .user_by_email(&user)
                .await
                .with_context(|| format!("user '{user}'"))?;
            let (_, secret) = db
                .create_token(p.id, u.id, &name)
                .await
                .with_context(|| format!("'{user}' is not a member of project '{project}'"))?;
            println!("{secret}");
        }
        TokenCommand::List { project } => {
            let p = db
                .project_by_slug(&project)
                .await
                .with_context(|| format!("project '{project}'"))?;
            for t in db.list_tokens(p.id).await? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!("{}\t{}\t{}\t{}", t.id, t.name, t.user_email, state);
            }
        }
        TokenCommand::Revoke { project, id } => {
            let p = db
                .project_by_slug(&project)
                .await
                .with_context(|| format!("project '{project}'"))?;
            db.revoke_token(p.id, id)
                .await
                .with_context(|| format!("token {id}"))?;
            println!("revoked token {id}");
        }
    }
    Ok(())
}
