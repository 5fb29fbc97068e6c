//! What reminder rules left in a test database, read past the store (which keeps a message's
//! rule to itself): each rule's messages with their case, for the multi-process and Kannel
//! tests that count what was queued per (case, occurrence).

use sqlx::Connection;

use crate::TestDb;

/// One message a reminder rule queued, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReminderMessage {
    pub id: i64,
    /// The case's public id (`None` once the case is gone).
    pub case_id: Option<String>,
    pub phone: String,
    pub text: String,
    pub status: String,
    /// When it was queued (real epoch ms: the outbox's clock, not a test clock).
    pub created_at: i64,
}

impl TestDb {
    /// Every message that rule `reminder_id` queued, oldest first.
    pub async fn reminder_messages(&self, reminder_id: i64) -> Vec<ReminderMessage> {
        sqlx::any::install_default_drivers();
        let mut conn =
            sqlx::AnyConnection::connect(&casecast_store::db::normalise_url(&self.url).1)
                .await
                .expect("connecting to the test database");
        let rows: Vec<(i64, Option<String>, String, String, String, i64)> = sqlx::query_as(
            "SELECT m.id, c.case_id, m.phone, m.text, m.status, m.created_at
             FROM messages m LEFT JOIN cases c ON c.id = m.case_pk
             WHERE m.reminder_id = $1 ORDER BY m.id",
        )
        .bind(reminder_id)
        .fetch_all(&mut conn)
        .await
        .expect("reading the rule's messages");
        conn.close().await.ok();
        rows.into_iter()
            .map(
                |(id, case_id, phone, text, status, created_at)| ReminderMessage {
                    id,
                    case_id,
                    phone,
                    text,
                    status,
                    created_at,
                },
            )
            .collect()
    }
}
