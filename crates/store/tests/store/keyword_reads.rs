//! Keywords as the pages and the API read and change them: the list by word, a change and a
//! deletion kept to the project, uniqueness ignoring case on a change, and the use counts'
//! windows (a message exactly 7 or 30 days old counts; replies and other projects do not).

use casecast_core::keyword::Keyword;
use casecast_store::messages::{MessageFilter, NewInbound};
use casecast_store::{Db, StoreError};
use casecast_testkit::{on_both_engines, Dialect, TestDb};
use serde_json::json;

use crate::gateways::log;
use crate::project;

on_both_engines!(
    keywords_are_listed_changed_and_deleted_within_their_project,
    use_counts_take_whole_windows_of_inbound_messages,
);

fn keyword(word: &str) -> Keyword {
    Keyword::parse(
        &json!({"keyword": word, "actions": [{"type": "reply", "text": "Thank you"}]}),
        &["STOP"],
    )
    .unwrap()
}

async fn keywords_are_listed_changed_and_deleted_within_their_project(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let alpha = project(db, "alpha", Some("UG")).await;
    let beta = project(db, "beta", Some("UG")).await;
    let join = db
        .create_keyword(alpha.id, &keyword("JOIN"), None)
        .await
        .unwrap();
    let anc = db
        .create_keyword(alpha.id, &keyword("anc"), None)
        .await
        .unwrap();
    db.create_keyword(beta.id, &keyword("JOIN"), None)
        .await
        .unwrap();
    let words = |list: Vec<casecast_store::keywords::StoredKeyword>| {
        list.into_iter()
            .map(|k| k.keyword.keyword)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        words(db.list_keywords(alpha.id).await.unwrap()),
        ["anc", "JOIN"]
    );
    // A change: the word and the definition, kept to the project, unique ignoring case.
    let changed = db
        .update_keyword(alpha.id, join.id, &keyword("Join2"))
        .await
        .unwrap();
    assert_eq!(changed.keyword.keyword, "Join2");
    assert_eq!(changed.created_at, join.created_at);
    assert!(changed.updated_at >= join.updated_at);
    let e = db
        .update_keyword(alpha.id, join.id, &keyword("ANC"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Conflict {
                code: "keyword_taken",
                ..
            }
        ),
        "{e:?}"
    );
    let e = db
        .update_keyword(beta.id, join.id, &keyword("X"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound("keyword")), "{e:?}");
    // The folded word follows the change: the router finds it by its new word only.
    let mut tx = db.begin_write().await.unwrap();
    assert!(db
        .keyword_by_word_tx(&mut tx, alpha.id, "join2")
        .await
        .unwrap()
        .is_some());
    assert!(db
        .keyword_by_word_tx(&mut tx, alpha.id, "join")
        .await
        .unwrap()
        .is_none());
    tx.commit().await.unwrap();
    // Deletion: another project's id is not found; the word is free again.
    let e = db.delete_keyword(beta.id, anc.id).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound("keyword")), "{e:?}");
    db.delete_keyword(alpha.id, anc.id).await.unwrap();
    assert!(matches!(
        db.delete_keyword(alpha.id, anc.id).await.unwrap_err(),
        StoreError::NotFound("keyword")
    ));
    db.create_keyword(alpha.id, &keyword("ANC"), None)
        .await
        .unwrap();
    assert_eq!(words(db.list_keywords(beta.id).await.unwrap()), ["JOIN"]);
}

/// Logs an inbound message of the project at `at` that matched `keyword_id`.
async fn matched(db: &Db, project_id: i64, gateway_id: i64, keyword_id: i64, at: i64) -> i64 {
    let mut tx = db.begin_write().await.unwrap();
    let id = db
        .insert_inbound(
            &mut tx,
            &NewInbound {
                project_id,
                case_pk: None,
                phone: "+256772000001",
                text: "REG",
                gateway_id,
                gateway_message_id: None,
                now: at,
            },
        )
        .await
        .unwrap()
        .unwrap();
    sqlx::query("UPDATE messages SET keyword_id = $1 WHERE id = $2")
        .bind(keyword_id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn use_counts_take_whole_windows_of_inbound_messages(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let alpha = project(db, "alpha", Some("UG")).await;
    let beta = project(db, "beta", Some("UG")).await;
    let g = db.create_gateway(alpha.id, &log("L", &[])).await.unwrap();
    let reg = db
        .create_keyword(alpha.id, &keyword("REG"), None)
        .await
        .unwrap();
    let idle = db
        .create_keyword(alpha.id, &keyword("IDLE"), None)
        .await
        .unwrap();
    let day = 24 * 3600 * 1000;
    let now = 100 * day;
    // At the windows' edges: exactly 7 and 30 days old count, a millisecond older does not.
    for age in [0, 7 * day, 7 * day + 1, 30 * day, 30 * day + 1] {
        matched(db, alpha.id, g.id, reg.id, now - age).await;
    }
    // An outbound message of the keyword (its reply) is not use.
    let first = matched(db, alpha.id, g.id, reg.id, now).await;
    sqlx_direction_outbound(db, first).await;
    let uses = db.keyword_uses(alpha.id, now).await.unwrap();
    let reg_use = uses[&reg.id];
    assert_eq!((reg_use.last_7_days, reg_use.last_30_days), (2, 4));
    assert!(!uses.contains_key(&idle.id));
    assert_eq!(
        db.keyword_use(alpha.id, reg.id, now).await.unwrap(),
        reg_use
    );
    let none = db.keyword_use(alpha.id, idle.id, now).await.unwrap();
    assert_eq!((none.last_7_days, none.last_30_days), (0, 0));
    // Another project reads none of it, even naming the keyword's id.
    assert!(db.keyword_uses(beta.id, now).await.unwrap().is_empty());
    let other = db.keyword_use(beta.id, reg.id, now).await.unwrap();
    assert_eq!((other.last_7_days, other.last_30_days), (0, 0));
    // The log's filter finds all six (five inbound, the reply), newest first.
    let filter = MessageFilter {
        keyword_id: Some(reg.id),
        ..Default::default()
    };
    let (found, _) = db
        .list_messages(alpha.id, &filter, 100, None)
        .await
        .unwrap();
    assert_eq!(found.len(), 6);
    assert!(found.iter().all(|m| m.keyword_id == Some(reg.id)));
    let (found, _) = db.list_messages(beta.id, &filter, 100, None).await.unwrap();
    assert!(found.is_empty());
    // The page's last messages: inbound only, newest first, at most the limit.
    let recent = db.keyword_messages(alpha.id, reg.id, 3).await.unwrap();
    let ages: Vec<i64> = recent.iter().map(|m| now - m.created_at).collect();
    assert_eq!(ages, [0, 7 * day, 7 * day + 1]);
}

/// Turns a logged message into an outbound one (what a keyword's reply is).
async fn sqlx_direction_outbound(db: &Db, id: i64) {
    let mut tx = db.begin_write().await.unwrap();
    sqlx::query("UPDATE messages SET direction = 'outbound' WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}
