//! `casecast backup` and `casecast restore` (issue 19). Backups are taken from a running
//! `serve` while it applies a 100,000-row group upload and while it fans out a
//! 100,000-recipient broadcast: each copy holds whole batches only (an upload's results and
//! members with its progress, a fan-out's messages with its count), and a server started on
//! each restored copy finishes the work with every row and every case once. Then the
//! refusals: an existing database without `--force`, a file that is no database, a key that
//! does not open the credentials, and PostgreSQL (`pg_dump`).

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use casecast_core::broadcast::Draft;
use casecast_core::gateway::config::GatewayKind;
use casecast_core::identifier::GroupName;
use casecast_core::{CountryCode, ProjectSlug, TimeZoneName};
use casecast_store::case_groups::Actor;
use casecast_store::gateways::NewGateway;
use casecast_store::membership::Change;
use casecast_store::projects::NewProject;
use casecast_testkit::cli::{self, Server};
use casecast_testkit::{seed, Dialect, TestDb, Workflows};
use serde_json::json;
use sqlx::{Connection, SqliteConnection};

const BIN: &str = env!("CARGO_BIN_EXE_casecast");
/// Cases in the project, rows in the upload, recipients of the broadcast.
const ROWS: usize = 100_000;
const WITHIN: Duration = Duration::from_secs(120);

/// One value from a SQLite file, read as another process would.
async fn one<T>(file: &Path, sql: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + Send + Unpin,
{
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=ro", file.display()))
        .await
        .unwrap();
    let value: T = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    value
}

async fn scalar(file: &Path, sql: &str) -> i64 {
    one(file, sql).await
}

async fn text(file: &Path, sql: &str) -> String {
    one(file, sql).await
}

/// What a copy must hold whatever moment it was taken at: the upload's progress counts its
/// stored results, and its added rows are the group's members; the fan-out's count is its
/// messages, one per case.
async fn check_whole(file: &Path, upload: i64, group: i64, broadcast: i64) -> (i64, i64) {
    let processed = scalar(
        file,
        &format!("SELECT processed_rows FROM uploads WHERE id = {upload}"),
    )
    .await;
    let results = scalar(
        file,
        &format!("SELECT COUNT(*) FROM upload_results WHERE upload_id = {upload}"),
    )
    .await;
    assert_eq!(processed, results, "the upload's progress is its results");
    let added = scalar(
        file,
        &format!(
            "SELECT COUNT(*) FROM upload_results WHERE upload_id = {upload} AND outcome = 'added'"
        ),
    )
    .await;
    let members = scalar(
        file,
        &format!("SELECT COUNT(*) FROM case_group_members WHERE group_id = {group}"),
    )
    .await;
    assert_eq!(added, results, "every row of the sheet names a new member");
    assert_eq!(members, added, "the group's members are the rows added");
    let queued = scalar(
        file,
        &format!("SELECT COALESCE(SUM(queued), 0) FROM broadcast_occurrences WHERE broadcast_id = {broadcast}"),
    )
    .await;
    let messages = scalar(
        file,
        &format!("SELECT COUNT(*) FROM messages WHERE broadcast_id = {broadcast}"),
    )
    .await;
    let distinct = scalar(
        file,
        &format!("SELECT COUNT(DISTINCT case_pk) FROM messages WHERE broadcast_id = {broadcast}"),
    )
    .await;
    assert_eq!(queued, messages, "the fan-out's count is its messages");
    assert_eq!(distinct, messages, "one message per case");
    (processed, messages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_busy_server_restores_whole_and_finishes_its_work() {
    let t = TestDb::new(Dialect::Sqlite).await;
    let db = &t.db;
    let project = db
        .create_project(&NewProject {
            slug: ProjectSlug::parse("gulu").unwrap(),
            name: "Gulu".into(),
            time_zone: TimeZoneName::parse("Africa/Kampala").unwrap(),
            country: Some(CountryCode::parse("UG").unwrap()),
        })
        .await
        .unwrap();
    let ids: Vec<String> = (0..ROWS).map(|i| format!("case-{i:06}")).collect();
    let mut csv = String::from("case_id,name,phone_number\n");
    for (i, id) in ids.iter().enumerate() {
        csv.push_str(&format!("{id},Person {i},+25677{i:07}\n"));
    }
    assert_eq!(seed::import_cases(db, &project, csv).await, ROWS);
    let everyone = seed::group_of(db, project.id, "Everyone", &ids).await;
    db.create_gateway(
        project.id,
        &NewGateway {
            name: "Log".into(),
            kind: GatewayKind::Log,
            config: json!({}),
            callback_base_url: "http://127.0.0.1:9".into(),
            max_segments_per_second: None,
            max_attempts: None,
            prefixes: vec![],
            is_default: true,
        },
    )
    .await
    .unwrap();
    // The upload that the server applies: every case, by case ID, into a new group.
    let sheet_group = db
        .create_group(
            project.id,
            &GroupName::parse("From the sheet").unwrap(),
            Actor {
                user_id: None,
                via: "page",
            },
        )
        .await
        .unwrap()
        .id;
    let mut sheet = String::from("case_identifier\n");
    for id in &ids {
        sheet.push_str(id);
        sheet.push('\n');
    }

    // The server takes one job at a time: the upload, then the fan-out, which it holds after
    // its third batch (a fan-out is too quick to catch by timing).
    let mut server = Server::start(BIN, &t.url, &["--test-fault", "fanout-batch=3"]).await;
    let upload = db
        .create_upload(
            project.id,
            sheet_group,
            Change::Add,
            "everyone.csv",
            sheet.into_bytes(),
            None,
        )
        .await
        .unwrap()
        .id;
    let database = t.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let backup = |name: &str| {
        let copy = dir.path().join(name);
        let database = database.clone();
        async move {
            let out = cli::run(
                cli::command(BIN, Some(&database)),
                &["backup", copy.to_str().unwrap()],
                None,
            )
            .await;
            let printed = out.ok().to_string();
            assert!(printed.contains("1 projects, 100000 cases"), "{printed}");
            assert!(copy.with_extension("db.key").is_file());
            copy
        }
    };

    // A backup as soon as the upload has written a batch.
    let deadline = tokio::time::Instant::now() + WITHIN;
    let running =
        format!("SELECT COUNT(*) FROM uploads WHERE id = {upload} AND processed_rows > 0");
    while scalar(Path::new(&database), &running).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upload did not start:\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let during_upload = backup("during-upload.db").await;

    // A broadcast to everyone, and a backup while its fan-out is held.
    let draft = Draft::parse(&json!({
        "name": "Side effect notice",
        "recipients": {"case_groups": [everyone]},
        "content": {"sms": {"*": "Hello {case.name}, please call the clinic"}},
    }))
    .unwrap();
    let broadcast = db
        .create_broadcast(&project, &draft, None)
        .await
        .unwrap()
        .id;
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !server
        .stderr()
        .contains("held at fault point fanout-batch=3")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fan-out did not reach its third batch:\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let during_fan_out = backup("during-fan-out.db").await;
    server.kill();

    // Each copy holds whole batches: the upload's progress is its results and members, the
    // fan-out's count its messages.
    let (processed, messages) = check_whole(&during_upload, upload, sheet_group, broadcast).await;
    assert!(0 < processed && processed < ROWS as i64, "{processed}");
    assert_eq!(
        processed % 2000,
        0,
        "whole batches of 2,000 rows: {processed}"
    );
    assert_eq!(messages, 0, "the broadcast came after this copy");
    assert_eq!(
        text(
            &during_upload,
            &format!("SELECT status FROM uploads WHERE id = {upload}")
        )
        .await,
        "running"
    );
    let (processed, messages) = check_whole(&during_fan_out, upload, sheet_group, broadcast).await;
    assert_eq!(
        processed, ROWS as i64,
        "the upload was done before the fan-out began"
    );
    assert!(0 < messages && messages < ROWS as i64, "{messages}");

    // Restored elsewhere, a server finishes what each copy was doing: every row and every
    // case once.
    for (n, copy) in [during_upload, during_fan_out].into_iter().enumerate() {
        let restored = dir.path().join(format!("restored-{n}")).join("casecast.db");
        std::fs::create_dir(restored.parent().unwrap()).unwrap();
        let restored_url = restored.to_str().unwrap().to_string();
        let out = cli::run(
            cli::command(BIN, Some(&restored_url)),
            &["restore", copy.to_str().unwrap()],
            None,
        )
        .await;
        assert!(out.ok().contains("restored"), "{out:?}");
        let server = Server::start(BIN, &restored_url, &[]).await;
        let deadline = tokio::time::Instant::now() + WITHIN;
        let finished = format!(
            "SELECT (SELECT COUNT(*) FROM uploads WHERE id = {upload} AND status = 'done')
                  + (SELECT COUNT(*) FROM broadcast_occurrences WHERE broadcast_id = {broadcast} AND status = 'done')"
        );
        let expected = if n == 0 { 1 } else { 2 };
        while scalar(&restored, &finished).await < expected {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the restored server did not finish:\n{}",
                server.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (processed, messages) = check_whole(&restored, upload, sheet_group, broadcast).await;
        assert_eq!(processed, ROWS as i64, "{}", server.stderr());
        assert_eq!(messages, if n == 0 { 0 } else { ROWS as i64 });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_to_overwrite_bad_files_and_wrong_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("casecast.db");
    let db_url = db.to_str().unwrap().to_string();
    // The key from a key file this time (not CASECAST_SECRET_KEY).
    let without_env = || {
        let mut c = cli::command(BIN, Some(&db_url));
        c.env_remove("CASECAST_SECRET_KEY");
        c
    };
    cli::run(
        without_env(),
        &["project", "create", "alpha", "--country", "UG"],
        None,
    )
    .await
    .ok();
    let key = std::fs::read_to_string(dir.path().join("casecast.key")).unwrap();
    let copy = dir.path().join("copy.db");
    cli::run(without_env(), &["backup", copy.to_str().unwrap()], None)
        .await
        .ok();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("copy.db.key"))
            .unwrap()
            .trim(),
        key.trim(),
        "the backup's key file holds the installation's key"
    );
    // A backup never overwrites.
    cli::run(without_env(), &["backup", copy.to_str().unwrap()], None)
        .await
        .fails(&["copy.db exists"]);
    // The copy is private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");

    // An existing database is replaced only with --force, and never while a process has it
    // open.
    cli::run(without_env(), &["restore", copy.to_str().unwrap()], None)
        .await
        .fails(&["casecast.db exists", "--force"]);
    {
        // The installation's key, over the test key the helper puts in the environment.
        let _server = Server::start(BIN, &db_url, &["--secret-key", key.trim()]).await;
        cli::run(
            without_env(),
            &["restore", "--force", copy.to_str().unwrap()],
            None,
        )
        .await
        .fails(&["casecast.db is in use by another process"]);
    }
    // A name with `?`, `%41` and a space is a file name, not a URL.
    let odd = dir.path().join("odd name?%41.db");
    let out = cli::run(without_env(), &["backup", odd.to_str().unwrap()], None).await;
    assert!(out.ok().contains("1 projects"), "{out:?}");
    assert!(odd.is_file() && dir.path().join("odd name?%41.db.key").is_file());
    cli::run(
        without_env(),
        &["project", "create", "beta", "--country", "UG"],
        None,
    )
    .await
    .ok();
    let restored = cli::run(
        without_env(),
        &["restore", "--force", copy.to_str().unwrap()],
        None,
    )
    .await;
    assert!(
        restored.ok().contains("1 projects"),
        "the project made after the backup is gone: {restored:?}"
    );

    // Into a new installation: the backup's key file becomes its key file.
    let fresh = dir.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    let fresh_db = fresh.join("casecast.db");
    let mut c = cli::command(BIN, Some(fresh_db.to_str().unwrap()));
    c.env_remove("CASECAST_SECRET_KEY");
    let out = cli::run(c, &["restore", copy.to_str().unwrap()], None).await;
    assert!(out.ok().contains("wrote the backup's key"), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(fresh.join("casecast.key"))
            .unwrap()
            .trim(),
        key.trim()
    );

    // Another key than the backup's is refused before anything changes.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let other_db = other.join("casecast.db");
    let mut c = cli::command(BIN, Some(other_db.to_str().unwrap()));
    c.env("CASECAST_SECRET_KEY", "ab".repeat(32));
    cli::run(c, &["restore", copy.to_str().unwrap()], None)
        .await
        .fails(&["CASECAST_SECRET_KEY is not the key of this backup"]);
    assert!(!other_db.exists(), "nothing was written");
    // Without the backup's key file, the installation's key must open the credentials.
    std::fs::remove_file(dir.path().join("copy.db.key")).unwrap();
    let mut c = cli::command(BIN, Some(other_db.to_str().unwrap()));
    c.env("CASECAST_SECRET_KEY", "ab".repeat(32));
    cli::run(c, &["restore", copy.to_str().unwrap()], None)
        .await
        .fails(&["the key does not open this backup's gateway credentials"]);
    assert!(!other_db.exists(), "nothing was written");
    assert!(
        std::fs::read_dir(&other).unwrap().next().is_none(),
        "no partial copy is left behind"
    );

    // Not a database; not a Casecast database.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, "this is not a database, it is a sentence").unwrap();
    cli::run(
        cli::command(BIN, Some(other_db.to_str().unwrap())),
        &["restore", junk.to_str().unwrap()],
        None,
    )
    .await
    .fails(&["junk.db", "cannot be opened as a SQLite database"]);
    let foreign = dir.path().join("foreign.db");
    {
        let mut conn =
            SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", foreign.display()))
                .await
                .unwrap();
        sqlx::query("CREATE TABLE notes (body TEXT)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    cli::run(
        cli::command(BIN, Some(other_db.to_str().unwrap())),
        &["restore", foreign.to_str().unwrap()],
        None,
    )
    .await
    .fails(&["foreign.db is not a Casecast database"]);

    // PostgreSQL: the commands point at pg_dump and pg_restore, and touch nothing.
    for args in [vec!["backup", "x.dump"], vec!["restore", "x.dump"]] {
        cli::run(
            cli::command(BIN, Some("postgres://casecast@127.0.0.1:9/casecast")),
            &args,
            None,
        )
        .await
        .fails(&["pg_dump", "pg_restore"]);
    }
}
