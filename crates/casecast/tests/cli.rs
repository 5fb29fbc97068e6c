//! The `casecast` binary as an operator runs it: exit codes, what goes to stdout, one-line
//! errors on stderr, and what the commands leave in the database. Every test runs on SQLite
//! and on PostgreSQL (`CASECAST_TEST_PG`).

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use casecast_testkit::Workflows;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use casecast_core::Role;
use casecast_store::accounts::LoginOutcome;
use casecast_store::cases::CaseFilter;
use casecast_store::{Db, StoreError};
use casecast_testkit::cli::{self, Run};
use casecast_testkit::{fresh_url, on_both_engines, Dialect, TestDb};

// ---------------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------------

const BIN: &str = env!("CARGO_BIN_EXE_casecast");

/// The binary, with `--db URL` and none of the `CASECAST_*` settings of the caller's environment.
fn casecast(url: Option<&str>) -> Command {
    cli::command(BIN, url)
}

/// Runs a command to its end off the async runtime, writing `stdin` (then closing it) if given.
async fn run_cmd(cmd: Command, args: &[&str], stdin: Option<&str>) -> Run {
    cli::run(cmd, args, stdin).await
}

/// `casecast --db URL ARGS…`.
async fn run(url: &str, args: &[&str]) -> Run {
    run_cmd(casecast(Some(url)), args, None).await
}

/// `casecast --db URL ARGS…` with `stdin` written to standard input.
async fn run_stdin(url: &str, args: &[&str], stdin: &str) -> Run {
    run_cmd(casecast(Some(url)), args, Some(stdin)).await
}

async fn login(db: &Db, email: &str, password: &str) -> LoginOutcome {
    db.login(email, password, "test").await.unwrap()
}

#[track_caller]
fn assert_login_ok(outcome: &LoginOutcome, what: &str) {
    assert!(
        matches!(outcome, LoginOutcome::Ok { .. }),
        "{what}: {outcome:?}"
    );
}

#[track_caller]
fn assert_login_wrong(outcome: &LoginOutcome, what: &str) {
    assert!(
        matches!(outcome, LoginOutcome::Wrong { .. }),
        "{what}: {outcome:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// migrate
// ---------------------------------------------------------------------------------------------

async fn migrate_creates_the_schema_and_is_idempotent(engine: Dialect) {
    let (url, _dir) = fresh_url(engine).await;
    if engine == Dialect::Sqlite {
        assert!(!Path::new(&url).exists());
    }
    let first = run(&url, &["migrate"]).await;
    assert_eq!(first.ok(), "the database is migrated\n");
    assert!(
        !first.stderr.contains('\u{1b}'),
        "no terminal colour codes when stderr is not a terminal:\n{first:?}"
    );
    if engine == Dialect::Sqlite {
        assert!(Path::new(&url).is_file(), "the SQLite file is created");
    }
    let second = run(&url, &["migrate"]).await;
    assert_eq!(second.ok(), "the database is migrated\n");

    // The schema is there without the library migrating: a lookup finds nothing, not a missing table.
    let db = Db::connect(&url).await.unwrap();
    assert_eq!(db.dialect(), engine);
    assert!(matches!(
        db.project_by_slug("nope").await,
        Err(StoreError::NotFound("project"))
    ));
    db.close().await;

    // And the commands work on it.
    run(&url, &["project", "create", "after-migrate"])
        .await
        .ok();
}

async fn db_from_the_environment(engine: Dialect) {
    let (url, _dir) = fresh_url(engine).await;
    let mut cmd = casecast(None);
    cmd.env("CASECAST_DB", &url);
    run_cmd(cmd, &["project", "create", "from-env"], None)
        .await
        .ok();
    let db = Db::open(&url).await.unwrap();
    assert_eq!(
        db.project_by_slug("from-env").await.unwrap().slug,
        "from-env"
    );
}

/// Without `--db` or `CASECAST_DB`: the file `casecast.db` in the working directory.
#[test]
fn default_db_is_casecast_db_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = casecast(None)
        .current_dir(dir.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(dir.path().join("casecast.db").is_file());
}

async fn unreachable_database_is_a_one_line_error(engine: Dialect) {
    let dir = tempfile::tempdir().unwrap();
    let url = match engine {
        // A file in a folder that does not exist.
        Dialect::Sqlite => dir
            .path()
            .join("no-such-folder")
            .join("casecast.db")
            .to_string_lossy()
            .to_string(),
        // Nothing listens on port 1. (The pool retries until its acquire timeout, about 30 s.)
        Dialect::Postgres => "postgres://postgres@127.0.0.1:1/x".to_string(),
    };
    run(&url, &["migrate"])
        .await
        .fails(&["cannot open the database"]);
}

// ---------------------------------------------------------------------------------------------
// project create
// ---------------------------------------------------------------------------------------------

async fn project_create(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let out = run(
        &t.url,
        &[
            "project",
            "create",
            "gulu-study",
            "--name",
            "Gulu HIV study",
            "--time-zone",
            "Africa/Kampala",
            "--country",
            "UG",
        ],
    )
    .await;
    let stdout = out.ok();
    assert_eq!(stdout.lines().count(), 1, "{out:?}");
    assert!(stdout.contains("gulu-study"), "{out:?}");
    let p = t.db.project_by_slug("gulu-study").await.unwrap();
    assert_eq!(p.name, "Gulu HIV study");
    assert_eq!(p.time_zone, "Africa/Kampala");
    assert_eq!(p.country.as_deref(), Some("UG"));

    // Defaults: the name is the slug, UTC, no country.
    run(&t.url, &["project", "create", "plain"]).await.ok();
    let p = t.db.project_by_slug("plain").await.unwrap();
    assert_eq!(p.name, "plain");
    assert_eq!(p.time_zone, "UTC");
    assert_eq!(p.country, None);

    // Bad values, each named in the one-line error.
    run(&t.url, &["project", "create", "Bad_Slug!"])
        .await
        .fails(&["Bad_Slug!"]);
    run(
        &t.url,
        &["project", "create", "mars", "--time-zone", "Mars/Olympus"],
    )
    .await
    .fails(&["Mars/Olympus"]);
    run(&t.url, &["project", "create", "nowhere", "--country", "XX"])
        .await
        .fails(&["XX"]);
    for slug in ["mars", "nowhere"] {
        assert!(matches!(
            t.db.project_by_slug(slug).await,
            Err(StoreError::NotFound(_))
        ));
    }

    // A slug that is taken, however it is asked for again.
    run(
        &t.url,
        &["project", "create", "gulu-study", "--name", "Other"],
    )
    .await
    .fails(&["gulu-study", "already exists"]);
    assert_eq!(
        t.db.project_by_slug("gulu-study").await.unwrap().name,
        "Gulu HIV study",
        "the first project is untouched"
    );

    // Missing the slug is a usage error, not a crash.
    let out = run(&t.url, &["project", "create"]).await;
    assert!(
        out.status.code().is_some_and(|c| c != 0),
        "expected failure:\n{out:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// user create
// ---------------------------------------------------------------------------------------------

async fn user_create(engine: Dialect) {
    let t = TestDb::new(engine).await;
    run(&t.url, &["project", "create", "clinic"]).await.ok();
    run(&t.url, &["project", "create", "other"]).await.ok();
    let create = |email: &'static str, project: &'static str, role: &'static str| {
        [
            "user",
            "create",
            email,
            "--project",
            project,
            "--role",
            role,
            "--password-stdin",
        ]
    };

    // The password from stdin, without its line ending.
    let out = run_stdin(
        &t.url,
        &create("nurse@example.org", "clinic", "editor"),
        "correct horse battery\r\n",
    )
    .await;
    let stdout = out.ok();
    assert_eq!(stdout.lines().count(), 1, "{out:?}");
    assert!(stdout.contains("nurse@example.org"), "{out:?}");
    assert!(
        !stdout.contains("correct horse battery"),
        "a password given on stdin is not echoed:\n{out:?}"
    );
    assert_login_ok(
        &login(&t.db, "nurse@example.org", "correct horse battery").await,
        "the stdin password",
    );
    let user = t.db.user_by_email("nurse@example.org").await.unwrap();
    let clinic = t.db.project_by_slug("clinic").await.unwrap();
    let other = t.db.project_by_slug("other").await.unwrap();
    assert_eq!(
        t.db.role_in_project(user.id, clinic.id).await.unwrap(),
        Some(Role::Editor)
    );
    assert_eq!(t.db.role_in_project(user.id, other.id).await.unwrap(), None);

    // Again for the same email: refused, pointing at `user add` and --reset-password; nothing
    // changes.
    let LoginOutcome::Ok { token: session, .. } =
        login(&t.db, "nurse@example.org", "correct horse battery").await
    else {
        panic!("login failed");
    };
    run_stdin(
        &t.url,
        &create("nurse@example.org", "other", "viewer"),
        "a brand new secret\n",
    )
    .await
    .fails(&["already has a login", "user add", "--reset-password"]);
    assert_login_wrong(
        &login(&t.db, "nurse@example.org", "a brand new secret").await,
        "the password is not replaced silently",
    );
    assert_eq!(t.db.role_in_project(user.id, other.id).await.unwrap(), None);
    // `user add`: a role in another project, the password unchanged.
    let out = run(
        &t.url,
        &[
            "user",
            "add",
            "nurse@example.org",
            "--project",
            "other",
            "--role",
            "viewer",
        ],
    )
    .await;
    assert!(out.ok().contains("password unchanged"), "{out:?}");
    assert_login_ok(
        &login(&t.db, "nurse@example.org", "correct horse battery").await,
        "the password after user add",
    );
    assert_eq!(
        t.db.role_in_project(user.id, other.id).await.unwrap(),
        Some(Role::Viewer)
    );
    run(
        &t.url,
        &[
            "user",
            "add",
            "nobody@example.org",
            "--project",
            "other",
            "--role",
            "viewer",
        ],
    )
    .await
    .fails(&["nobody@example.org", "user create"]);
    // --reset-password: a new password, the sessions end, the other project's role stays.
    let mut reset = create("nurse@example.org", "other", "editor").to_vec();
    reset.push("--reset-password");
    run_stdin(&t.url, &reset, "a brand new secret\n").await.ok();
    assert!(
        matches!(t.db.session(&session).await, Err(StoreError::NotFound(_))),
        "a reset ends the sessions"
    );
    assert_login_ok(
        &login(&t.db, "nurse@example.org", "a brand new secret").await,
        "the reset password",
    );
    assert_login_wrong(
        &login(&t.db, "nurse@example.org", "correct horse battery").await,
        "the old password after a reset",
    );
    assert_eq!(
        t.db.role_in_project(user.id, other.id).await.unwrap(),
        Some(Role::Editor)
    );
    assert_eq!(
        t.db.role_in_project(user.id, clinic.id).await.unwrap(),
        Some(Role::Editor),
        "the role in the first project stays"
    );
    // A common password is refused, whatever its case, at create and at reset.
    run_stdin(&t.url, &reset, "Password123\n")
        .await
        .fails(&["most common passwords"]);
    run_stdin(
        &t.url,
        &create("new@example.org", "clinic", "viewer"),
        "iloveyou\n",
    )
    .await
    .fails(&["most common passwords"]);

    // Without --password-stdin: a random password, printed.
    let out = run(
        &t.url,
        &[
            "user",
            "create",
            "boss@example.org",
            "--project",
            "clinic",
            "--role",
            "admin",
        ],
    )
    .await;
    let stdout = out.ok().trim_end();
    let printed = stdout
        .split_once("with password ")
        .unwrap_or_else(|| panic!("no password printed:\n{out:?}"))
        .1;
    assert!(printed.len() >= 8 && !printed.contains(' '), "{out:?}");
    assert_login_ok(
        &login(&t.db, "boss@example.org", printed).await,
        "the printed password",
    );

    // Refusals.
    run_stdin(
        &t.url,
        &create("short@example.org", "clinic", "viewer"),
        "1234567\n",
    )
    .await
    .fails(&["at least 8 characters"]);
    run_stdin(
        &t.url,
        &create("lost@example.org", "no-such-project", "viewer"),
        "long enough password\n",
    )
    .await
    .fails(&["no-such-project"]);
    run_stdin(
        &t.url,
        &create("god@example.org", "clinic", "superuser"),
        "long enough password\n",
    )
    .await
    .fails(&["superuser"]);
    run_stdin(
        &t.url,
        &create("not-an-email", "clinic", "viewer"),
        "long enough password\n",
    )
    .await
    .fails(&["not-an-email"]);
    for email in [
        "new@example.org",
        "short@example.org",
        "lost@example.org",
        "god@example.org",
        "not-an-email",
    ] {
        assert!(
            matches!(
                t.db.user_by_email(email).await,
                Err(StoreError::NotFound(_))
            ),
            "{email} was not created"
        );
    }
}

/// `user list`, `user remove` and `user unlock`.
async fn user_list_remove_unlock(engine: Dialect) {
    let t = TestDb::new(engine).await;
    run(&t.url, &["project", "create", "clinic"]).await.ok();
    run(&t.url, &["project", "create", "other"]).await.ok();
    for (email, project, role) in [
        ("boss@example.org", "clinic", "admin"),
        ("nurse@example.org", "clinic", "editor"),
    ] {
        run_stdin(
            &t.url,
            &[
                "user",
                "create",
                email,
                "--project",
                project,
                "--role",
                role,
                "--password-stdin",
            ],
            "long enough secret\n",
        )
        .await
        .ok();
    }
    run(
        &t.url,
        &[
            "user",
            "add",
            "nurse@example.org",
            "--project",
            "other",
            "--role",
            "viewer",
        ],
    )
    .await
    .ok();
    run(
        &t.url,
        &[
            "user",
            "add",
            "boss@example.org",
            "--project",
            "other",
            "--role",
            "admin",
        ],
    )
    .await
    .ok();
    assert_login_ok(
        &login(&t.db, "nurse@example.org", "long enough secret").await,
        "login",
    );
    let rows = |out: &str| -> Vec<Vec<String>> {
        out.lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    };
    let all = rows(run(&t.url, &["user", "list"]).await.ok());
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(all[0][..3], ["boss@example.org", "clinic", "admin"]);
    assert_eq!(all[0][3], "never");
    assert_eq!(all[2][..3], ["nurse@example.org", "clinic", "editor"]);
    assert!(all[2][3].starts_with("20"), "an RFC 3339 time: {all:?}");
    let clinic_rows = rows(
        run(&t.url, &["user", "list", "--project", "clinic"])
            .await
            .ok(),
    );
    assert_eq!(clinic_rows.len(), 2);
    assert!(clinic_rows.iter().all(|r| r[1] == "clinic"));

    // Removing from one project: its tokens there are revoked, its sessions end.
    let clinic = t.db.project_by_slug("clinic").await.unwrap();
    let other = t.db.project_by_slug("other").await.unwrap();
    let nurse = t.db.user_by_email("nurse@example.org").await.unwrap();
    let (_, clinic_token) = t.db.create_token(clinic.id, nurse.id, "a").await.unwrap();
    let (_, other_token) = t.db.create_token(other.id, nurse.id, "b").await.unwrap();
    let LoginOutcome::Ok { token: session, .. } =
        login(&t.db, "nurse@example.org", "long enough secret").await
    else {
        panic!("login failed");
    };
    run(
        &t.url,
        &["user", "remove", "nurse@example.org", "--project", "clinic"],
    )
    .await
    .ok();
    assert_eq!(
        t.db.role_in_project(nurse.id, clinic.id).await.unwrap(),
        None
    );
    assert!(matches!(
        t.db.check_token(&clinic_token).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(t.db.check_token(&other_token).await.is_ok());
    // The session stays for the other project.
    assert!(t.db.session(&session).await.is_ok());
    run(
        &t.url,
        &["user", "remove", "nurse@example.org", "--project", "clinic"],
    )
    .await
    .fails(&["not a member", "clinic"]);
    // The last admin stays.
    run(
        &t.url,
        &["user", "remove", "boss@example.org", "--project", "clinic"],
    )
    .await
    .fails(&["last admin"]);
    // Removing the login everywhere.
    run(&t.url, &["user", "remove", "nurse@example.org"])
        .await
        .ok();
    assert!(matches!(
        t.db.check_token(&other_token).await,
        Err(StoreError::NotFound(_))
    ));
    // Removed everywhere, the login's sessions end.
    assert!(matches!(
        t.db.session(&session).await,
        Err(StoreError::NotFound(_))
    ));
    assert_login_wrong(
        &login(&t.db, "nurse@example.org", "long enough secret").await,
        "a removed login",
    );
    let all = rows(run(&t.url, &["user", "list"]).await.ok());
    assert!(all.iter().all(|r| r[0] != "nurse@example.org"), "{all:?}");
    run(&t.url, &["user", "remove", "nurse@example.org"])
        .await
        .fails(&["has no login"]);

    // Unlock: five failures from one address make it wait; unlock forgets them.
    for _ in 0..5 {
        assert_login_wrong(&login(&t.db, "boss@example.org", "wrong").await, "a guess");
    }
    assert!(matches!(
        login(&t.db, "boss@example.org", "long enough secret").await,
        LoginOutcome::Throttled { .. }
    ));
    let out = run(&t.url, &["user", "unlock", "BOSS@example.org"]).await;
    assert!(out.ok().contains("forgot 5 failed logins"), "{out:?}");
    assert_login_ok(
        &login(&t.db, "boss@example.org", "long enough secret").await,
        "after unlock",
    );
}

// ---------------------------------------------------------------------------------------------
// token create / list / revoke
// ---------------------------------------------------------------------------------------------

/// `token list` rows: (id, name, email, state).
fn token_rows(stdout: &str) -> Vec<(i64, String, String, String)> {
    stdout
        .lines()
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 4, "a token list row: {line:?}");
            (
                cols[0].parse().unwrap(),
                cols[1].to_string(),
                cols[2].to_string(),
                cols[3].to_string(),
            )
        })
        .collect()
}

#[track_caller]
fn the_token(out: &Run) -> String {
    let stdout = out.ok();
    let token = stdout
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("one line:\n{out:?}"));
    assert!(!token.contains('\n'), "exactly one line:\n{out:?}");
    assert!(token.starts_with("cc_"), "{out:?}");
    assert!(
        token.len() > 20 && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "{out:?}"
    );
    token.to_string()
}

async fn tokens(engine: Dialect) {
    let t = TestDb::new(engine).await;
    run(&t.url, &["project", "create", "clinic"]).await.ok();
    run(&t.url, &["project", "create", "other"]).await.ok();
    run_stdin(
        &t.url,
        &[
            "user",
            "create",
            "ci@example.org",
            "--project",
            "clinic",
            "--role",
            "editor",
            "--password-stdin",
        ],
        "long enough password\n",
    )
    .await
    .ok();
    let clinic = t.db.project_by_slug("clinic").await.unwrap();
    let user = t.db.user_by_email("ci@example.org").await.unwrap();
    let create = [
        "token",
        "create",
        "--project",
        "clinic",
        "--user",
        "ci@example.org",
    ];

    let first = the_token(&run(&t.url, &create).await);
    let grant = t.db.check_token(&first).await.unwrap();
    assert_eq!(grant.project_id, clinic.id);
    assert_eq!(grant.user_id, user.id);
    assert_eq!(grant.role, Role::Editor);

    let mut named = create.to_vec();
    named.extend(["--name", "ci-bot"]);
    let second = the_token(&run(&t.url, &named).await);
    assert_ne!(first, second, "every token is new");
    t.db.check_token(&second).await.unwrap();

    // The list: both, active, never a secret.
    let out = run(&t.url, &["token", "list", "--project", "clinic"]).await;
    let listed = out.ok();
    assert!(!listed.contains(&first) && !listed.contains(&second));
    let rows = token_rows(listed);
    assert_eq!(rows.len(), 2, "{out:?}");
    assert!(rows
        .iter()
        .all(|(_, _, email, state)| email == "ci@example.org" && state == "active"));
    let first_id = grant.token_id;
    assert!(rows
        .iter()
        .any(|(id, name, ..)| *id == first_id && name == "cli"));
    assert!(rows
        .iter()
        .any(|(id, name, ..)| *id != first_id && name == "ci-bot"));
    let out = run(&t.url, &["token", "list", "--project", "other"]).await;
    assert_eq!(out.ok(), "", "another project's list is empty");

    // Who may not have a token.
    run(
        &t.url,
        &[
            "token",
            "create",
            "--project",
            "other",
            "--user",
            "ci@example.org",
        ],
    )
    .await
    .fails(&["ci@example.org", "not a member", "other"]);
    run(
        &t.url,
        &[
            "token",
            "create",
            "--project",
            "clinic",
            "--user",
            "ghost@example.org",
        ],
    )
    .await
    .fails(&["ghost@example.org"]);
    run(
        &t.url,
        &[
            "token",
            "create",
            "--project",
            "nowhere",
            "--user",
            "ci@example.org",
        ],
    )
    .await
    .fails(&["nowhere"]);

    // Revoking: from another project it is not found; in its own, it stops working at once.
    let id = first_id.to_string();
    run(&t.url, &["token", "revoke", "--project", "other", &id])
        .await
        .fails(&[&id]);
    t.db.check_token(&first).await.unwrap();
    run(&t.url, &["token", "revoke", "--project", "clinic", &id])
        .await
        .ok();
    assert!(
        t.db.check_token(&first).await.is_err(),
        "a revoked token fails"
    );
    t.db.check_token(&second).await.unwrap();
    let rows = token_rows(
        run(&t.url, &["token", "list", "--project", "clinic"])
            .await
            .ok(),
    );
    let state = |wanted: i64| {
        rows.iter()
            .find(|(id, ..)| *id == wanted)
            .map(|r| r.3.clone())
            .unwrap()
    };
    assert_eq!(state(first_id), "revoked");
    assert!(rows.iter().any(|r| r.0 != first_id && r.3 == "active"));
    // Twice is an error that names the token.
    run(&t.url, &["token", "revoke", "--project", "clinic", &id])
        .await
        .fails(&[&id]);
}

// ---------------------------------------------------------------------------------------------
// cases import
// ---------------------------------------------------------------------------------------------

const GOOD_AND_BAD: &str = "external_id,name,phone_number\n\
E1,Alice Akello,+256772123456\n\
E2,Bob Okello,0772 123457\n\
E3,Carol Atim,+254712345678\n\
E4,Dan Opio,12ab\n";

/// The smallest PNG: an image, whatever its name says.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\0\x01\0\0\x05\0\x01\r\n-\xb4\0\0\0\0IEND\xaeB`\x82";

async fn phone_of(db: &Db, project_id: i64, external_id: &str) -> Option<String> {
    let filter = CaseFilter {
        external_id: Some(external_id.to_string()),
        ..CaseFilter::default()
    };
    let page = db.list_cases(project_id, &filter, 10, None).await.unwrap();
    assert_eq!(page.items.len(), 1, "one case {external_id}");
    page.items[0]
        .phone_number
        .as_ref()
        .map(|p| p.as_str().to_string())
}

async fn cases_import(engine: Dialect) {
    let t = TestDb::new(engine).await;
    run(&t.url, &["project", "create", "clinic", "--country", "UG"])
        .await
        .ok();
    let clinic = t.db.project_by_slug("clinic").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("cases.csv");
    std::fs::write(&csv, GOOD_AND_BAD).unwrap();
    let csv = csv.to_str().unwrap();
    let import = |file: &str| {
        let file = file.to_string();
        let url = t.url.clone();
        async move { run(&url, &["cases", "import", "--project", "clinic", &file]).await }
    };

    // First import: three cases, one row refused with its row and column.
    let out = import(csv).await;
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("4 rows: 3 created, 0 updated, 0 unchanged, 0 blank, 1 with errors"),
        "{out:?}"
    );
    assert_eq!(lines.len(), 2, "{out:?}");
    // Row 1 is the header, so Dan is row 5.
    assert!(
        lines[1].starts_with("row 5, phone_number: ") && lines[1].contains("12ab"),
        "{out:?}"
    );
    assert_eq!(t.db.count_cases(clinic.id).await.unwrap(), 3);
    // A number without a country code takes the project's country.
    assert_eq!(
        phone_of(&t.db, clinic.id, "E2").await.as_deref(),
        Some("+256772123457")
    );
    assert_eq!(
        phone_of(&t.db, clinic.id, "E3").await.as_deref(),
        Some("+254712345678")
    );

    // The same file again changes nothing.
    let out = import(csv).await;
    assert_eq!(
        out.ok().lines().next(),
        Some("4 rows: 0 created, 0 updated, 3 unchanged, 0 blank, 1 with errors"),
        "{out:?}"
    );
    assert_eq!(t.db.count_cases(clinic.id).await.unwrap(), 3);

    // An .xlsx with one changed name, one blank row and a new case.
    let xlsx = dir.path().join("cases.xlsx");
    {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        let rows: [[&str; 3]; 5] = [
            ["external_id", "name", "phone_number"],
            ["E1", "Alice Akello", "+256772123456"],
            ["", "", ""],
            ["E3", "Caroline Atim", "+254712345678"],
            ["E5", "Esther Auma", "0701 000001"],
        ];
        for (r, row) in rows.iter().enumerate() {
            for (c, value) in row.iter().enumerate() {
                if !value.is_empty() {
                    sheet.write_string(r as u32, c as u16, *value).unwrap();
                }
            }
        }
        book.save(&xlsx).unwrap();
    }
    let out = import(xlsx.to_str().unwrap()).await;
    assert_eq!(
        out.ok(),
        "4 rows: 1 created, 1 updated, 1 unchanged, 1 blank, 0 with errors\n",
        "{out:?}"
    );
    assert_eq!(t.db.count_cases(clinic.id).await.unwrap(), 4);
    assert_eq!(
        phone_of(&t.db, clinic.id, "E5").await.as_deref(),
        Some("+256701000001")
    );

    // Not a spreadsheet, whatever its name: a one-line error naming the file, nothing imported.
    let png = dir.path().join("photo.csv");
    std::fs::write(&png, PNG).unwrap();
    import(png.to_str().unwrap()).await.fails(&["photo.csv"]);

    // A file that is not there.
    let missing = dir.path().join("missing.csv");
    import(missing.to_str().unwrap())
        .await
        .fails(&["missing.csv"]);

    // A project that is not there.
    run(&t.url, &["cases", "import", "--project", "nowhere", csv])
        .await
        .fails(&["nowhere"]);
    assert_eq!(t.db.count_cases(clinic.id).await.unwrap(), 4);
}

/// The CLI streams a file past the limits of uploads over HTTP (50 MB here): a CSV exported
/// from another system imports in one command.
async fn cases_import_streams_a_file_over_the_upload_limits(engine: Dialect) {
    let t = TestDb::new(engine).await;
    run(&t.url, &["project", "create", "clinic", "--country", "UG"])
        .await
        .ok();
    let clinic = t.db.project_by_slug("clinic").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.csv");
    let notes = "n".repeat(4_000);
    let mut csv = String::from("external_id,name,notes\n");
    let mut rows = 0;
    while csv.len() <= 50 * 1024 * 1024 {
        rows += 1;
        csv.push_str(&format!("E{rows},Person {rows},{notes}\n"));
    }
    std::fs::write(&path, csv).unwrap();
    let out = run(
        &t.url,
        &[
            "cases",
            "import",
            "--project",
            "clinic",
            path.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(
        out.ok(),
        format!("{rows} rows: {rows} created, 0 updated, 0 unchanged, 0 blank, 0 with errors\n"),
        "{out:?}"
    );
    assert_eq!(t.db.count_cases(clinic.id).await.unwrap(), rows as i64);
}

// ---------------------------------------------------------------------------------------------
// serve and worker: long-running processes
// ---------------------------------------------------------------------------------------------

/// How long a process may take to say it is ready (a cold PostgreSQL or a slow CI machine).
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long a process may take to stop after SIGTERM.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// A running `casecast` process; killed if the test ends without stopping it.
struct Running {
    child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    stdout: Vec<String>,
    stderr_file: tempfile::NamedTempFile,
}

impl Running {
    fn start(url: &str, args: &[&str]) -> Running {
        let stderr_file = tempfile::NamedTempFile::new().unwrap();
        let mut child = casecast(Some(url))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr_file.reopen().unwrap())
            .spawn()
            .expect("starting casecast");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            stdout: Vec::new(),
            stderr_file,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_file.path()).unwrap_or_default()
    }

    /// Reads stdout until a line contains `needle`; returns that line.
    async fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.stdout.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Ok(None) => panic!(
                    "casecast closed stdout before printing {needle:?} (exit: {:?})\nstdout: {:?}\nstderr:\n{}",
                    self.child.try_wait(),
                    self.stdout,
                    self.stderr()
                ),
                Err(_) => panic!(
                    "no {needle:?} within {READY_WITHIN:?}\nstdout: {:?}\nstderr:\n{}",
                    self.stdout,
                    self.stderr()
                ),
            }
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    async fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM").await
    }

    /// Sends a signal (`TERM`, `INT`) and waits (bounded) for the exit.
    async fn signal(&mut self, name: &str) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -{name} {pid}");
        let deadline = tokio::time::Instant::now() + STOP_WITHIN;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "casecast did not stop within {STOP_WITHIN:?} of SIG{name}\nstderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The address in "Casecast is ready at http://ADDR/ …".
fn ready_address(line: &str) -> String {
    let rest = line
        .split_once("ready at http://")
        .unwrap_or_else(|| panic!("not a ready line: {line:?}"))
        .1;
    let addr = rest.split_once('/').map_or(rest, |(a, _)| a);
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "the real port is printed: {line:?}"
    );
    addr.to_string()
}

/// The email and password in "Demo: log in at http://ADDR/login as EMAIL with password PW".
fn demo_login(line: &str, addr: &str) -> (String, String) {
    let rest = line
        .strip_prefix(&format!("Demo: log in at http://{addr}/login as "))
        .unwrap_or_else(|| panic!("not a demo line for {addr}: {line:?}"));
    let (email, password) = rest
        .split_once(" with password ")
        .unwrap_or_else(|| panic!("no password in {line:?}"));
    assert!(!password.is_empty() && !password.contains(' '), "{line:?}");
    (email.to_string(), password.to_string())
}

/// Starts `serve --demo` on a free port, checks it, stops it; returns the demo login.
async fn serve_demo_once(url: &str, engine: Dialect) -> (String, String) {
    let mut server = Running::start(url, &["serve", "--demo", "--listen", "127.0.0.1:0"]);
    let ready = server.wait_for_line("ready at http://").await;
    let addr = ready_address(&ready);
    assert!(
        ready.contains(engine.name()),
        "the engine is named: {ready}"
    );
    let demo = server.wait_for_line("Demo: log in").await;
    let (email, password) = demo_login(&demo, &addr);

    let resp = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap().trim_end(), "ok");

    let status = server.terminate().await;
    assert!(
        status.success(),
        "serve exits 0 on SIGTERM, got {status}\nstderr:\n{}",
        server.stderr()
    );
    (email, password)
}

/// How many of each feature the demo project has.
#[derive(Debug, PartialEq, Eq)]
struct DemoFeatures {
    groups: usize,
    smart_groups: usize,
    gateways: usize,
    surveys: usize,
    keywords: usize,
    reminders: usize,
    cases_with_next_visit: usize,
}

async fn demo_features(db: &Db, project_id: i64) -> DemoFeatures {
    let groups = db.list_groups(project_id).await.unwrap();
    let mut cases_with_next_visit = 0;
    let mut cursor = None;
    loop {
        let page = db
            .list_cases(
                project_id,
                &casecast_store::cases::CaseFilter::default(),
                1000,
                cursor,
            )
            .await
            .unwrap();
        cases_with_next_visit += page
            .items
            .iter()
            .filter(|c| c.properties.contains_key("next_visit"))
            .count();
        match page.next_cursor.and_then(|n| n.parse().ok()) {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    DemoFeatures {
        groups: groups.len(),
        smart_groups: groups.iter().filter(|g| g.query.is_some()).count(),
        gateways: db.list_gateways(project_id).await.unwrap().len(),
        surveys: db.list_surveys(project_id).await.unwrap().len(),
        keywords: db.list_keywords(project_id).await.unwrap().len(),
        reminders: db.list_reminders(project_id).await.unwrap().len(),
        cases_with_next_visit,
    }
}

async fn serve_demo_is_idempotent(engine: Dialect) {
    let (url, _dir) = fresh_url(engine).await;

    let (email, first_password) = serve_demo_once(&url, engine).await;
    let db = Db::open(&url)
        .await
        .unwrap()
        .with_secret_key(casecast_testkit::test_key());
    let demo = db.project_by_slug("demo").await.unwrap();
    assert_eq!(db.count_cases(demo.id).await.unwrap(), 500);
    let features = demo_features(&db, demo.id).await;
    assert_eq!(
        features,
        DemoFeatures {
            groups: 2,
            smart_groups: 1,
            gateways: 1,
            surveys: 1,
            keywords: 1,
            reminders: 1,
            cases_with_next_visit: 100,
        },
        "every feature has an example"
    );
    let admin = db.user_by_email(&email).await.unwrap();
    assert_eq!(
        db.role_in_project(admin.id, demo.id).await.unwrap(),
        Some(Role::Admin)
    );
    assert_login_ok(
        &login(&db, &email, &first_password).await,
        "the first demo password",
    );

    // Again on the same database: nothing doubled, a new password replaces the old one.
    let (email_again, second_password) = serve_demo_once(&url, engine).await;
    assert_eq!(email_again, email);
    assert_ne!(second_password, first_password);
    assert_eq!(db.count_cases(demo.id).await.unwrap(), 500);
    assert_eq!(
        demo_features(&db, demo.id).await,
        features,
        "nothing doubled"
    );
    assert_eq!(
        db.project_by_slug("demo").await.unwrap().id,
        demo.id,
        "the same demo project"
    );
    assert_login_ok(
        &login(&db, &email, &second_password).await,
        "the second demo password",
    );
    assert_login_wrong(
        &login(&db, &email, &first_password).await,
        "the first demo password after a restart",
    );
    db.close().await;
}

async fn serve_without_demo_and_a_taken_port(engine: Dialect) {
    let t = TestDb::new(engine).await;

    let mut server = Running::start(&t.url, &["serve", "--listen", "127.0.0.1:0"]);
    let ready = server.wait_for_line("ready at http://").await;
    let addr = ready_address(&ready);
    let resp = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        matches!(
            t.db.project_by_slug("demo").await,
            Err(StoreError::NotFound(_))
        ),
        "no demo without --demo"
    );
    assert!(
        !server.stdout.iter().any(|l| l.starts_with("Demo:")),
        "{:?}",
        server.stdout
    );

    // A second server on the same address cannot listen: a one-line error naming it.
    run(&t.url, &["serve", "--listen", &addr])
        .await
        .fails(&[&addr]);

    let status = server.terminate().await;
    assert!(status.success(), "{status}\nstderr:\n{}", server.stderr());
}

/// A signal sent as soon as the ready line is out is handled (not the default: killed).
async fn serve_stops_on_a_signal_right_after_ready(engine: Dialect) {
    let t = TestDb::new(engine).await;
    for signal in ["TERM", "INT"] {
        let mut server = Running::start(&t.url, &["serve", "--listen", "127.0.0.1:0"]);
        server.wait_for_line("ready at http://").await;
        let status = server.signal(signal).await;
        assert!(
            status.success(),
            "SIG{signal}: {status}\nstderr:\n{}",
            server.stderr()
        );
    }
}

async fn worker_starts_and_stops(engine: Dialect) {
    let (url, _dir) = fresh_url(engine).await;
    for signal in ["TERM", "INT"] {
        let mut worker = Running::start(&url, &["worker"]);
        let ready = worker.wait_for_line("ready").await;
        assert!(ready.contains(engine.name()), "{ready}");
        let status = worker.signal(signal).await;
        assert!(
            status.success(),
            "SIG{signal}: {status}\nstderr:\n{}",
            worker.stderr()
        );
    }
}

on_both_engines!(
    migrate_creates_the_schema_and_is_idempotent,
    db_from_the_environment,
    unreachable_database_is_a_one_line_error,
    project_create,
    user_create,
    user_list_remove_unlock,
    tokens,
    cases_import,
    cases_import_streams_a_file_over_the_upload_limits,
    serve_demo_is_idempotent,
    serve_without_demo_and_a_taken_port,
    serve_stops_on_a_signal_right_after_ready,
    worker_starts_and_stops,
);
