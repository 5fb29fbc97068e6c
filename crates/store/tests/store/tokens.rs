//! API tokens: creation for members only, what a token grants, revocation, listing, storage.

use casecast_core::{Email, Role};
use casecast_store::tokens::TOKEN_PREFIX;
use casecast_store::StoreError;
use casecast_testkit::{on_both_engines, Dialect, TestDb};
use sqlx::Row;

use crate::{project, raw_pool};

on_both_engines!(
    create_token_grants_the_members_project_and_role,
    create_token_refuses_a_non_member,
    check_token_follows_the_current_role,
    revoke_token_stops_the_token,
    revoke_token_of_another_project_is_not_found,
    list_tokens_shows_the_projects_tokens_newest_first,
    token_secrets_are_never_stored,
);

fn email(text: &str) -> Email {
    Email::parse(text).unwrap()
}

async fn create_token_grants_the_members_project_and_role(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let user = db
        .upsert_user(&email("a@example.org"), "pw", p.id, Role::Editor)
        .await
        .unwrap();
    let (id, secret) = db.create_token(p.id, user.id, "sync script").await.unwrap();
    assert!(secret.starts_with(TOKEN_PREFIX), "{secret}");
    let grant = db.check_token(&secret).await.unwrap();
    assert_eq!(
        (grant.token_id, grant.project_id, grant.user_id, grant.role),
        (id, p.id, user.id, Role::Editor)
    );
    // Surrounding white space (as pasted into a header) is tolerated.
    assert_eq!(
        db.check_token(&format!(" {secret}\n"))
            .await
            .unwrap()
            .token_id,
        id
    );
    let (second, other_secret) = db.create_token(p.id, user.id, "another").await.unwrap();
    assert_ne!(second, id);
    assert_ne!(other_secret, secret);
    assert!(matches!(
        db.check_token("cc_not-a-real-token").await,
        Err(StoreError::NotFound(_))
    ));
}

async fn create_token_refuses_a_non_member(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let mine = project(db, "mine", None).await;
    let theirs = project(db, "theirs", None).await;
    let user = db
        .upsert_user(&email("a@example.org"), "pw", mine.id, Role::Admin)
        .await
        .unwrap();
    assert!(matches!(
        db.create_token(theirs.id, user.id, "x").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.create_token(mine.id, 9_999_999, "x").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(db.list_tokens(theirs.id).await.unwrap().is_empty());
    assert!(db.list_tokens(mine.id).await.unwrap().is_empty());
}

async fn check_token_follows_the_current_role(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let e = email("a@example.org");
    let user = db.upsert_user(&e, "pw", p.id, Role::Admin).await.unwrap();
    let (_, secret) = db.create_token(p.id, user.id, "t").await.unwrap();
    assert_eq!(db.check_token(&secret).await.unwrap().role, Role::Admin);
    db.upsert_user(&e, "pw", p.id, Role::Viewer).await.unwrap();
    assert_eq!(
        db.check_token(&secret).await.unwrap().role,
        Role::Viewer,
        "a demoted user's token is demoted too"
    );
}

async fn revoke_token_stops_the_token(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let user = db
        .upsert_user(&email("a@example.org"), "pw", p.id, Role::Admin)
        .await
        .unwrap();
    let (id, secret) = db.create_token(p.id, user.id, "old").await.unwrap();
    let (_, kept) = db.create_token(p.id, user.id, "kept").await.unwrap();
    db.revoke_token(p.id, id).await.unwrap();
    assert!(matches!(
        db.check_token(&secret).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        db.check_token(&kept).await.is_ok(),
        "other tokens keep working"
    );
    assert!(
        matches!(
            db.revoke_token(p.id, id).await,
            Err(StoreError::NotFound(_))
        ),
        "revoking twice is NotFound"
    );
    let listed = db.list_tokens(p.id).await.unwrap();
    let old = listed.iter().find(|t| t.id == id).unwrap();
    assert!(old.revoked_at.is_some());
    assert!(listed
        .iter()
        .find(|t| t.id != id)
        .unwrap()
        .revoked_at
        .is_none());
}

async fn revoke_token_of_another_project_is_not_found(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let a = project(db, "alpha", None).await;
    let b = project(db, "beta", None).await;
    let user = db
        .upsert_user(&email("a@example.org"), "pw", a.id, Role::Admin)
        .await
        .unwrap();
    db.upsert_user(&email("a@example.org"), "pw", b.id, Role::Admin)
        .await
        .unwrap();
    let (id, secret) = db.create_token(a.id, user.id, "alpha token").await.unwrap();
    assert!(matches!(
        db.revoke_token(b.id, id).await,
        Err(StoreError::NotFound(_))
    ));
    let grant = db.check_token(&secret).await.unwrap();
    assert_eq!(
        grant.project_id, a.id,
        "the token still works, for its own project"
    );
    assert!(db.list_tokens(a.id).await.unwrap()[0].revoked_at.is_none());
    assert!(matches!(
        db.revoke_token(a.id, 9_999_999).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn list_tokens_shows_the_projects_tokens_newest_first(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let a = project(db, "alpha", None).await;
    let b = project(db, "beta", None).await;
    let ann = db
        .upsert_user(&email("ann@example.org"), "pw", a.id, Role::Admin)
        .await
        .unwrap();
    let bob = db
        .upsert_user(&email("bob@example.org"), "pw", b.id, Role::Admin)
        .await
        .unwrap();
    let (first, _) = db.create_token(a.id, ann.id, "first").await.unwrap();
    let (second, _) = db.create_token(a.id, ann.id, "second").await.unwrap();
    let (theirs, _) = db.create_token(b.id, bob.id, "theirs").await.unwrap();
    let listed = db.list_tokens(a.id).await.unwrap();
    let summary: Vec<(i64, &str, &str)> = listed
        .iter()
        .map(|t| (t.id, t.name.as_str(), t.user_email.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (second, "second", "ann@example.org"),
            (first, "first", "ann@example.org")
        ]
    );
    assert!(listed.iter().all(|t| t.last_used_at.is_none()));
    db.touch_token(first).await.unwrap();
    let listed = db.list_tokens(a.id).await.unwrap();
    let used = |id| listed.iter().find(|t| t.id == id).unwrap().last_used_at;
    assert!(used(first).is_some(), "touch_token records the use");
    assert!(used(second).is_none());
    assert_eq!(
        db.list_tokens(b.id)
            .await
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect::<Vec<_>>(),
        [theirs]
    );
}

async fn token_secrets_are_never_stored(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let user = db
        .upsert_user(&email("a@example.org"), "pw", p.id, Role::Admin)
        .await
        .unwrap();
    let (_, secret) = db.create_token(p.id, user.id, "script").await.unwrap();
    let pool = raw_pool(&t.url).await;
    let rows = sqlx::query("SELECT token_hash, name FROM api_tokens")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let hash: String = rows[0].try_get("token_hash").unwrap();
    let name: String = rows[0].try_get("name").unwrap();
    let random_part = secret.trim_start_matches(TOKEN_PREFIX);
    assert!(!hash.contains(random_part) && !name.contains(random_part));
    assert_eq!(hash, casecast_store::secrets::token_digest(&secret));
    pool.close().await;
}
