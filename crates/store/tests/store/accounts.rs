//! Accounts: users and roles, password login with its throttle, and sessions.

use casecast_core::{Email, Role};
use casecast_store::accounts::LoginOutcome;
use casecast_store::{Db, StoreError};
use casecast_testkit::Workflows;
use casecast_testkit::{on_both_engines, Dialect, TestDb};
use sqlx::Row;

use crate::{project, raw_pool};

on_both_engines!(
    upsert_user_creates_then_changes_password_and_role,
    role_in_project_is_none_for_non_members,
    login_opens_a_session_that_end_session_closes,
    login_refuses_wrong_password_and_unknown_email,
    login_slows_down_a_pair_after_five_failures,
    the_delay_doubles_up_to_a_minute,
    one_address_guessing_many_emails_is_slowed,
    removing_and_resetting_end_sessions_and_tokens,
    a_project_keeps_its_last_admin,
    login_throttle_is_per_email,
    session_tokens_are_stored_only_as_digests,
);

fn email(text: &str) -> Email {
    Email::parse(text).unwrap()
}

async fn login(db: &Db, email: &str, password: &str) -> LoginOutcome {
    db.login(email, password, "192.0.2.10").await.unwrap()
}

async fn upsert_user_creates_then_changes_password_and_role(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let created = db
        .upsert_user(
            &email(" Nurse@Example.org "),
            "first-pw",
            p.id,
            Role::Viewer,
        )
        .await
        .unwrap();
    assert_eq!(created.email, "nurse@example.org");
    assert_eq!(
        db.role_in_project(created.id, p.id).await.unwrap(),
        Some(Role::Viewer)
    );

    let again = db
        .upsert_user(&email("nurse@example.org"), "second-pw", p.id, Role::Admin)
        .await
        .unwrap();
    assert_eq!(again.id, created.id, "the same email is the same user");
    assert_eq!(
        db.role_in_project(created.id, p.id).await.unwrap(),
        Some(Role::Admin)
    );
    assert!(matches!(
        login(db, "nurse@example.org", "first-pw").await,
        LoginOutcome::Wrong { .. }
    ));
    assert!(matches!(
        login(db, "nurse@example.org", "second-pw").await,
        LoginOutcome::Ok { .. }
    ));

    let found = db.user_by_email("  NURSE@example.org").await.unwrap();
    assert_eq!(
        (found.id, found.email.as_str()),
        (created.id, "nurse@example.org")
    );
    assert!(matches!(
        db.user_by_email("nobody@example.org").await,
        Err(StoreError::NotFound(_))
    ));
}

async fn role_in_project_is_none_for_non_members(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let mine = project(db, "mine", None).await;
    let theirs = project(db, "theirs", None).await;
    let user = db
        .upsert_user(&email("a@example.org"), "pw", mine.id, Role::Editor)
        .await
        .unwrap();
    assert_eq!(
        db.role_in_project(user.id, mine.id).await.unwrap(),
        Some(Role::Editor)
    );
    assert_eq!(db.role_in_project(user.id, theirs.id).await.unwrap(), None);
    assert_eq!(db.role_in_project(9_999_999, mine.id).await.unwrap(), None);
}

async fn login_opens_a_session_that_end_session_closes(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let user = db
        .upsert_user(&email("a@example.org"), "correct horse", p.id, Role::Admin)
        .await
        .unwrap();
    let LoginOutcome::Ok { token, user: who } = db
        .login(" A@Example.org ", "correct horse", "192.0.2.1")
        .await
        .unwrap()
    else {
        panic!("the right password must log in");
    };
    assert_eq!(who.id, user.id);
    assert!(token.len() >= 32);

    let session = db.session(&token).await.unwrap();
    assert_eq!(session.user.id, user.id);
    assert_eq!(session.user.email, "a@example.org");
    assert!(!session.csrf_token.is_empty());
    assert_ne!(session.csrf_token, token);

    // A second login is a second, independent session.
    let LoginOutcome::Ok { token: other, .. } = login(db, "a@example.org", "correct horse").await
    else {
        panic!("a second login must work");
    };
    assert_ne!(other, token);

    db.end_session(&token).await.unwrap();
    assert!(matches!(
        db.session(&token).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        db.session(&other).await.unwrap().user.id,
        user.id,
        "logging out ends only that session"
    );
    assert!(matches!(
        db.session("not-a-token").await,
        Err(StoreError::NotFound(_))
    ));
}

async fn login_refuses_wrong_password_and_unknown_email(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    db.upsert_user(&email("a@example.org"), "right", p.id, Role::Viewer)
        .await
        .unwrap();
    assert!(matches!(
        login(db, "a@example.org", "wrong").await,
        LoginOutcome::Wrong { .. }
    ));
    assert!(matches!(
        login(db, "a@example.org", "").await,
        LoginOutcome::Wrong { .. }
    ));
    assert!(matches!(
        login(db, "nobody@example.org", "right").await,
        LoginOutcome::Wrong { .. }
    ));
}

async fn login_slows_down_a_pair_after_five_failures(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    db.upsert_user(&email("a@example.org"), "right", p.id, Role::Viewer)
        .await
        .unwrap();
    for attempt in 1..=5 {
        match login(db, "a@example.org", &format!("guess-{attempt}")).await {
            LoginOutcome::Wrong {
                attempts_left,
                next_wait_secs,
            } => {
                assert_eq!(attempts_left, 5 - attempt, "attempt {attempt}");
                let wait = if attempt < 5 { 0 } else { 4 };
                assert_eq!(next_wait_secs, wait, "attempt {attempt}");
            }
            other => panic!("attempt {attempt}: {other:?}"),
        }
    }
    // From the same address, even the right password waits (unchecked) for a few seconds...
    for password in ["right", "guess-6"] {
        match login(db, "a@example.org", password).await {
            LoginOutcome::Throttled { seconds } => {
                assert!((1..=4).contains(&seconds), "{seconds} seconds")
            }
            other => panic!("expected a delay with {password:?}, got {other:?}"),
        }
    }
    // The address is counted per email whatever its case or spacing.
    assert!(matches!(
        login(db, " A@EXAMPLE.ORG ", "right").await,
        LoginOutcome::Throttled { .. }
    ));
    // ...while from another address the right password gets in at once: nobody can lock
    // another person out.
    assert!(matches!(
        db.login("a@example.org", "right", "198.51.100.7")
            .await
            .unwrap(),
        LoginOutcome::Ok { .. }
    ));
    assert_eq!(db.failed_logins("a@example.org").await.unwrap(), 5);
    // An admin's unlock forgets the failures: the first address gets in again.
    assert_eq!(db.unlock_login("A@example.org").await.unwrap(), 5);
    assert_eq!(db.failed_logins("a@example.org").await.unwrap(), 0);
    assert!(matches!(
        login(db, "a@example.org", "right").await,
        LoginOutcome::Ok { .. }
    ));
}

async fn the_delay_doubles_up_to_a_minute(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    db.upsert_user(&email("a@example.org"), "right", p.id, Role::Viewer)
        .await
        .unwrap();
    for _ in 0..5 {
        login(db, "a@example.org", "wrong").await;
    }
    // Failures written as if made long enough apart that each attempt was allowed.
    let pool = raw_pool(&t.url).await;
    let mut waits = Vec::new();
    for extra in 1..=6 {
        sqlx::query("UPDATE login_failures SET at = at - 61000")
            .execute(&pool)
            .await
            .unwrap();
        let LoginOutcome::Wrong {
            next_wait_secs,
            attempts_left,
        } = login(db, "a@example.org", "wrong").await
        else {
            panic!("failure {extra} was not let through");
        };
        assert_eq!(attempts_left, 0);
        waits.push(next_wait_secs);
    }
    assert_eq!(waits, [8, 16, 32, 60, 60, 60]);
    pool.close().await;
}

async fn one_address_guessing_many_emails_is_slowed(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    db.upsert_user(&email("a@example.org"), "right", p.id, Role::Viewer)
        .await
        .unwrap();
    for i in 0..20 {
        let outcome = login(db, &format!("user{i}@example.org"), "Summer2024!").await;
        assert!(
            matches!(outcome, LoginOutcome::Wrong { .. }),
            "{i}: {outcome:?}"
        );
    }
    // The 21st email from that address waits, though that email never failed.
    assert!(matches!(
        login(db, "someone-else@example.org", "Summer2024!").await,
        LoginOutcome::Throttled { .. }
    ));
    // Another address is not slowed by it.
    assert!(matches!(
        db.login("a@example.org", "right", "198.51.100.7")
            .await
            .unwrap(),
        LoginOutcome::Ok { .. }
    ));
}

async fn login_throttle_is_per_email(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    db.upsert_user(&email("a@example.org"), "right-a", p.id, Role::Viewer)
        .await
        .unwrap();
    db.upsert_user(&email("b@example.org"), "right-b", p.id, Role::Viewer)
        .await
        .unwrap();
    for _ in 0..5 {
        login(db, "a@example.org", "wrong").await;
    }
    assert!(matches!(
        login(db, "a@example.org", "right-a").await,
        LoginOutcome::Throttled { .. }
    ));
    // Same client address, different email: not slowed (the per-address allowance is 20).
    assert!(matches!(
        login(db, "b@example.org", "right-b").await,
        LoginOutcome::Ok { .. }
    ));
}

async fn session_tokens_are_stored_only_as_digests(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    db.upsert_user(&email("a@example.org"), "right", p.id, Role::Viewer)
        .await
        .unwrap();
    let LoginOutcome::Ok { token, .. } = login(db, "a@example.org", "right").await else {
        panic!("login failed");
    };
    let pool = raw_pool(&t.url).await;
    let rows = sqlx::query("SELECT token_hash, csrf_token FROM sessions")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    for row in &rows {
        for column in ["token_hash", "csrf_token"] {
            let value: String = row.try_get(column).unwrap();
            assert!(
                !value.contains(&token),
                "sessions.{column} holds the session token"
            );
        }
    }
    let hash: String = rows[0].try_get("token_hash").unwrap();
    assert_eq!(hash, casecast_store::secrets::token_digest(&token));
    let stored_password: String =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE email = 'a@example.org'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(stored_password.starts_with("$argon2id$"));
    assert!(!stored_password.contains("right"));
    pool.close().await;
}

async fn removing_and_resetting_end_sessions_and_tokens(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let a = project(db, "alpha", None).await;
    let b = project(db, "beta", None).await;
    let admin = db
        .create_login(&email("admin@example.org"), "admin-pw-1")
        .await
        .unwrap();
    db.set_role(a.id, admin.id, Role::Admin).await.unwrap();
    db.set_role(b.id, admin.id, Role::Admin).await.unwrap();
    let nurse = db
        .create_login(&email("nurse@example.org"), "first-pw-1")
        .await
        .unwrap();
    // An existing login is never silently given a new password.
    assert!(matches!(
        db.create_login(&email("Nurse@example.org"), "other-pw-1")
            .await,
        Err(StoreError::Conflict {
            code: "user_taken",
            ..
        })
    ));
    db.set_role(a.id, nurse.id, Role::Editor).await.unwrap();
    db.set_role(b.id, nurse.id, Role::Viewer).await.unwrap();
    let (_, token_a) = db.create_token(a.id, nurse.id, "a").await.unwrap();
    let (_, token_b) = db.create_token(b.id, nurse.id, "b").await.unwrap();
    let LoginOutcome::Ok { token: session, .. } =
        login(db, "nurse@example.org", "first-pw-1").await
    else {
        panic!("login failed");
    };

    // A reset ends the sessions; the new password works, the old does not.
    db.set_password(nurse.id, "second-pw-2").await.unwrap();
    assert!(matches!(
        db.session(&session).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        login(db, "nurse@example.org", "first-pw-1").await,
        LoginOutcome::Wrong { .. }
    ));
    let LoginOutcome::Ok { token: session, .. } =
        login(db, "nurse@example.org", "second-pw-2").await
    else {
        panic!("the new password must log in");
    };

    // Leaving one project: its tokens are revoked, the other project's stay; the session stays
    // (the other project's), without a role here.
    db.remove_from_project(a.id, nurse.id).await.unwrap();
    assert_eq!(db.role_in_project(nurse.id, a.id).await.unwrap(), None);
    assert!(matches!(
        db.check_token(&token_a).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(db.check_token(&token_b).await.unwrap().project_id, b.id);
    let kept = db.session(&session).await.unwrap();
    assert_eq!(db.role_in_project(kept.user.id, a.id).await.unwrap(), None);
    assert_eq!(
        db.role_in_project(kept.user.id, b.id).await.unwrap(),
        Some(Role::Viewer)
    );
    // Coming back does not bring the revoked token back.
    db.set_role(a.id, nurse.id, Role::Viewer).await.unwrap();
    assert!(matches!(
        db.check_token(&token_a).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.remove_from_project(a.id, 9_999_999).await,
        Err(StoreError::NotFound(_))
    ));
    let listed: Vec<(String, String, Role)> = db
        .list_memberships(None)
        .await
        .unwrap()
        .into_iter()
        .map(|(slug, m)| (m.user.email, slug, m.role))
        .collect();
    assert_eq!(
        listed,
        [
            (
                "admin@example.org".to_string(),
                "alpha".to_string(),
                Role::Admin
            ),
            ("admin@example.org".into(), "beta".into(), Role::Admin),
            ("nurse@example.org".into(), "alpha".into(), Role::Viewer),
            ("nurse@example.org".into(), "beta".into(), Role::Viewer),
        ]
    );
    let members = db.members(b.id).await.unwrap();
    assert_eq!(members.len(), 2);
    assert!(members[1].last_login_at.is_some(), "the nurse logged in");

    // Removing the whole login: no project, no token, no session, no password.
    let LoginOutcome::Ok { token: session, .. } =
        login(db, "nurse@example.org", "second-pw-2").await
    else {
        panic!("login failed");
    };
    db.remove_login(nurse.id).await.unwrap();
    assert!(db
        .list_memberships(Some(b.id))
        .await
        .unwrap()
        .iter()
        .all(|(_, m)| m.user.id != nurse.id));
    assert!(matches!(
        db.check_token(&token_b).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.session(&session).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        login(db, "nurse@example.org", "second-pw-2").await,
        LoginOutcome::Wrong { .. }
    ));
    let found = db
        .find_login(&email("nurse@example.org"))
        .await
        .unwrap()
        .unwrap();
    assert!(!found.active);
    // The email can be created again, as the same row, with a new password.
    let again = db
        .create_login(&email("nurse@example.org"), "third-pw-3")
        .await
        .unwrap();
    assert_eq!(again.id, nurse.id);
    assert!(matches!(
        login(db, "nurse@example.org", "third-pw-3").await,
        LoginOutcome::Ok { .. }
    ));
}

async fn a_project_keeps_its_last_admin(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "alpha", None).await;
    let ann = db
        .create_login(&email("ann@example.org"), "ann-pw-123")
        .await
        .unwrap();
    let bob = db
        .create_login(&email("bob@example.org"), "bob-pw-123")
        .await
        .unwrap();
    db.set_role(p.id, ann.id, Role::Admin).await.unwrap();
    db.set_role(p.id, bob.id, Role::Editor).await.unwrap();
    let last_admin = |r: Result<(), StoreError>| {
        matches!(
            r,
            Err(StoreError::Conflict {
                code: "last_admin",
                ..
            })
        )
    };
    assert!(last_admin(db.remove_from_project(p.id, ann.id).await));
    assert!(last_admin(db.set_role(p.id, ann.id, Role::Viewer).await));
    assert!(last_admin(db.remove_login(ann.id).await));
    assert_eq!(
        db.role_in_project(ann.id, p.id).await.unwrap(),
        Some(Role::Admin)
    );
    // With a second admin, either may go.
    db.set_role(p.id, bob.id, Role::Admin).await.unwrap();
    db.set_role(p.id, ann.id, Role::Viewer).await.unwrap();
    assert!(last_admin(db.remove_from_project(p.id, bob.id).await));
    db.remove_from_project(p.id, ann.id).await.unwrap();
}

/// The SQLite database and its `-wal` and `-shm` files hold case data and password hashes:
/// readable by their owner only, whatever the umask, and an existing database is tightened.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // The umask of this process lets group and others read what it creates (the test would
    // prove nothing otherwise).
    let probe = dir.path().join("probe");
    std::fs::write(&probe, "x").unwrap();
    assert_ne!(mode(&probe) & 0o044, 0, "the umask hides the defect");

    let path = dir.path().join("casecast.db");
    let db = Db::open(path.to_str().unwrap()).await.unwrap();
    let p = project(&db, "demo", None).await;
    db.upsert_user(&email("a@example.org"), "right-pw-1", p.id, Role::Viewer)
        .await
        .unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = dir.path().join(format!("casecast.db{suffix}"));
        assert!(
            file.exists(),
            "{} is there while the database is open",
            file.display()
        );
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    db.close().await;

    // A database made before (or by hand) with a looser mode is tightened when opened.
    let old = dir.path().join("old.db");
    std::fs::write(&old, "").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    let db = Db::open(old.to_str().unwrap()).await.unwrap();
    assert_eq!(mode(&old), 0o600);
    db.close().await;
}
