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
    login_is_throttled_after_five_failures_even_with_the_right_password,
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
        LoginOutcome::Wrong
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
        LoginOutcome::Wrong
    ));
    assert!(matches!(
        login(db, "a@example.org", "").await,
        LoginOutcome::Wrong
    ));
    assert!(matches!(
        login(db, "nobody@example.org", "right").await,
        LoginOutcome::Wrong
    ));
}

async fn login_is_throttled_after_five_failures_even_with_the_right_password(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    db.upsert_user(&email("a@example.org"), "right", p.id, Role::Viewer)
        .await
        .unwrap();
    for attempt in 1..=5 {
        let outcome = login(db, "a@example.org", &format!("guess-{attempt}")).await;
        assert!(
            matches!(outcome, LoginOutcome::Wrong),
            "attempt {attempt}: {outcome:?}"
        );
    }
    for password in ["right", "guess-6"] {
        match login(db, "a@example.org", password).await {
            LoginOutcome::Throttled { minutes } => {
                assert!((1..=15).contains(&minutes), "{minutes} minutes")
            }
            other => panic!("expected a throttle with {password:?}, got {other:?}"),
        }
    }
    // The address is counted per email whatever its case or spacing.
    assert!(matches!(
        login(db, " A@EXAMPLE.ORG ", "right").await,
        LoginOutcome::Throttled { .. }
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
    // Same client address, different email: not throttled (the per-address cap is 20).
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
