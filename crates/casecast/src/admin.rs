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
    /// Create a login with a role in a project. An existing email is refused unless
    /// --reset-password is given (`user add` gives an existing login a role without touching
    /// its password).
    Create {
        email: String,
        #[arg(long)]
        project: String,
        #[arg(long)]
        role: String,
        /// Read the password from standard input; otherwise a random one is made and printed.
        #[arg(long)]
        password_stdin: bool,
        /// For an existing login: replace its password (ending all its sessions) and set its
        /// role in the project.
        #[arg(long)]
        reset_password: bool,
    },
    /// Give an existing login a role in a project, or change its role there; the password
    /// stays as it is.
    Add {
        email: String,
        #[arg(long)]
        project: String,
        #[arg(long)]
        role: String,
    },
    /// List logins: email, project, role and last login, one membership a line.
    List {
        #[arg(long)]
        project: Option<String>,
    },
    /// Remove a login from a project (or, without --project, from every project, with its
    /// password), revoking its API tokens there and ending its sessions.
    Remove {
        email: String,
        #[arg(long)]
        project: Option<String>,
    },
    /// Forget an email's failed logins, so that no address has to wait before trying again.
    Unlock { email: String },
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
    open_with_key(cfg, secret_key(cfg)?).await
}

/// [`open`] with the key already read.
pub async fn open_with_key(cfg: &Config, key: SecretKey) -> anyhow::Result<Db> {
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
pub(crate) fn secret_key(cfg: &Config) -> anyhow::Result<SecretKey> {
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
    casecast_core::password::check_new(&password)?;
    Ok(password)
}

async fn project_named(db: &Db, slug: &str) -> anyhow::Result<casecast_store::projects::Project> {
    db.project_by_slug(slug)
        .await
        .with_context(|| format!("project '{slug}'"))
}

/// The active login with this email, or a one-line reason.
async fn login_named(db: &Db, email: &Email) -> anyhow::Result<casecast_store::accounts::User> {
    match db.find_login(email).await? {
        Some(l) if l.active => Ok(l.user),
        _ => bail!(
            "{} has no login: `casecast user create` makes one",
            email.as_str()
        ),
    }
}

pub async fn user(cfg: &Config, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create {
            email,
            project,
            role,
            password_stdin,
            reset_password,
        } => {
            let email = Email::parse(&email)?;
            let role: Role = role.parse()?;
            let password = if password_stdin {
                read_password()?
            } else {
                casecast_store::secrets::random_hex(10)
            };
            let db = open(cfg).await?;
            let p = project_named(&db, &project).await?;
            let existing = db.find_login(&email).await?.filter(|l| l.active);
            let replaced = existing.is_some();
            match existing {
                Some(_) if !reset_password => bail!(
                    "{e} already has a login: `casecast user add {e} --project {slug} --role {r}` \
                     gives it this role without changing its password; add --reset-password to \
                     replace its password (its sessions end)",
                    e = email.as_str(),
                    slug = p.slug,
                    r = role.as_str()
                ),
                Some(login) => {
                    // The role first: refused for a project's last admin, before the password
                    // changes.
                    db.set_role(p.id, login.user.id, role).await?;
                    db.set_password(login.user.id, &password).await?;
                }
                None => {
                    let user = db.create_login(&email, &password).await?;
                    db.set_role(p.id, user.id, role).await?;
                }
            }
            let what = if replaced {
                "the password was replaced and its sessions ended; "
            } else {
                ""
            };
            if password_stdin {
                println!(
                    "{what}{} can log in to '{}' as {}",
                    email.as_str(),
                    p.slug,
                    role.as_str()
                );
            } else {
                println!(
                    "{what}{} can log in to '{}' as {} with password {password}",
                    email.as_str(),
                    p.slug,
                    role.as_str()
                );
            }
        }
        UserCommand::Add {
            email,
            project,
            role,
        } => {
            let email = Email::parse(&email)?;
            let role: Role = role.parse()?;
            let db = open(cfg).await?;
            let p = project_named(&db, &project).await?;
            let user = login_named(&db, &email).await?;
            db.set_role(p.id, user.id, role).await?;
            println!(
                "{} is {} in '{}' (password unchanged)",
                email.as_str(),
                role.as_str(),
                p.slug
            );
        }
        UserCommand::List { project } => {
            let db = open(cfg).await?;
            let project_id = match &project {
                Some(slug) => Some(project_named(&db, slug).await?.id),
                None => None,
            };
            for (slug, m) in db.list_memberships(project_id).await? {
                let last = m
                    .last_login_at
                    .map_or_else(|| "never".to_string(), casecast_core::time::rfc3339);
                println!("{}\t{}\t{}\t{}", m.user.email, slug, m.role.as_str(), last);
            }
        }
        UserCommand::Remove { email, project } => {
            let email = Email::parse(&email)?;
            let db = open(cfg).await?;
            let user = login_named(&db, &email).await?;
            match project {
                Some(slug) => {
                    let p = project_named(&db, &slug).await?;
                    db.remove_from_project(p.id, user.id)
                        .await
                        .map_err(|e| match e {
                            casecast_store::StoreError::NotFound(_) => {
                                anyhow!(
                                    "{} is not a member of project '{}'",
                                    email.as_str(),
                                    p.slug
                                )
                            }
                            other => other.into(),
                        })?;
                    println!(
                        "removed {} from '{}': its tokens there are revoked and its sessions ended",
                        email.as_str(),
                        p.slug
                    );
                }
                None => {
                    db.remove_login(user.id).await?;
                    println!(
                        "removed the login {}: no project, token, session or password is left",
                        email.as_str()
                    );
                }
            }
        }
        UserCommand::Unlock { email } => {
            let email = Email::parse(&email)?;
            let db = open(cfg).await?;
            let n = db.unlock_login(email.as_str()).await?;
            println!(
                "forgot {n} failed login{} of {}",
                if n == 1 { "" } else { "s" },
                email.as_str()
            );
        }
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
