//! The dispatcher's side of the message table: claiming due messages of a gateway within its
//! shared rate limit, recording what the gateway said, and the sweeps that expire late messages
//! and take back messages whose dispatcher died.
//!
//! The rate limit is a GCRA kept in `gateway_rates`: `next_free_us` is the instant from which
//! the next segment may go. A claim reserves the slots of the segments it takes, under the row
//! lock, so dispatchers in every process share one limit.

use casecast_core::states::{MessageKind, MessageStatus};
use sqlx::Row;

use crate::dialect::{self, Placeholders};
use crate::error::StoreResult;
use crate::Db;

/// A message claimed for sending.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: i64,
    pub project_id: i64,
    pub phone: String,
    pub text: String,
    pub encoding: String,
    pub segments: i64,
    /// Attempts including this one.
    pub attempts: i64,
    pub expires_at: i64,
    /// When (epoch µs) its slot in the rate limit begins: do not hand it over before.
    pub not_before_us: i64,
}

/// What a claim found.
#[derive(Clone, Debug)]
pub enum Claim {
    /// Messages to send now (each at its slot).
    Messages(Vec<Claimed>),
    /// The gateway's rate limit is used up until this instant (epoch ms).
    Throttled { until_ms: i64 },
    /// Nothing due.
    Empty,
}

/// How to claim.
#[derive(Clone, Copy, Debug)]
pub struct ClaimRequest<'a> {
    pub gateway_id: i64,
    /// Segments per second; `None`: no limit.
    pub rate: Option<f64>,
    /// Most messages per claim.
    pub max_messages: usize,
    /// How far ahead a claim may reserve slots (ms).
    pub window_ms: i64,
    pub worker: &'a str,
    pub lease_ms: i64,
}

/// What the gateway said about one claimed message.
#[derive(Clone, Debug)]
pub enum Outcome {
    Sent {
        gateway_message_id: Option<String>,
    },
    /// A temporary failure: try again at `next_attempt_at` (if attempts and validity allow).
    Retry {
        error: String,
        next_attempt_at: i64,
    },
    Failed {
        error: String,
    },
}

/// One result to record.
#[derive(Clone, Debug)]
pub struct SendResult {
    pub id: i64,
    pub attempts: i64,
    pub max_attempts: i64,
    pub expires_at: i64,
    pub outcome: Outcome,
}

/// Now in epoch microseconds.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

const EXPIRED: &str = "not handed to a gateway within its validity period";

/// The `SET` of a message that expires unsent (`$1` is now): its last error, if any, is kept
/// before the reason. Used by claims and by the sweeper alike.
fn expire_set() -> String {
    format!(
        "status = 'expired', updated_at = $1, lease_until = NULL, leased_by = NULL,
         error = CASE WHEN error IS NULL THEN '{EXPIRED}' ELSE error || '; {EXPIRED}' END"
    )
}

/// Sent messages recorded per statement (SQLite allows 500 terms in a compound SELECT).
const SENT_PER_STATEMENT: usize = 192;

/// The number of rows a multi-row statement is written for: `n` rounded up to a multiple of 16
/// (the extra rows repeat the last one). A few shapes of statement, rather than one per count,
/// are prepared once per connection and then reused, where each new count would be parsed and
/// planned again.
fn padded(n: usize) -> usize {
    n.div_ceil(16) * 16
}

impl Db {
    /// Claims due messages of one gateway: expired ones are marked expired, ones to opted-out
    /// numbers cancelled, and as many as the rate limit allows are leased to `worker` as
    /// `sending`, each with its slot.
    pub async fn claim_outbound(&self, req: &ClaimRequest<'_>) -> StoreResult<Claim> {
        let now_us = now_us();
        let now = now_us / 1000;
        // A read first: an idle gateway costs no write transaction (on SQLite, every lane of
        // every process would otherwise take the database's write lock twice a second).
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM messages WHERE gateway_id = $1 AND status = 'queued' AND next_attempt_at <= $2 LIMIT 1",
        )
        .bind(req.gateway_id)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        if due.is_none() {
            return Ok(Claim::Empty);
        }
        let mut tx = self.begin_write().await?;
        let mut budget = req.max_messages as i64;
        let mut start_us = now_us;
        if let Some(rate) = req.rate {
            let next_free: Option<i64> = sqlx::query_scalar(&format!(
                "SELECT next_free_us FROM gateway_rates WHERE gateway_id = $1{}",
                dialect::for_update(self.dialect())
            ))
            .bind(req.gateway_id)
            .fetch_optional(&mut *tx)
            .await?;
            start_us = next_free.unwrap_or(0).max(now_us);
            let horizon = now_us + req.window_ms * 1000;
            if start_us > horizon {
                tx.rollback().await?;
                return Ok(Claim::Throttled {
                    until_ms: (start_us - req.window_ms * 1000) / 1000,
                });
            }
            let fits = ((horizon - start_us) as f64 * rate / 1e6).floor() as i64;
            budget = budget.min(fits.max(1));
        }
        let rows = sqlx::query(&format!(
            "SELECT m.id, m.project_id, m.phone, m.text, m.encoding, m.segments, m.attempts, m.expires_at, m.kind,
                CAST(CASE WHEN EXISTS (SELECT 1 FROM opt_outs o WHERE o.project_id = m.project_id AND o.phone = m.phone)
                     THEN 1 ELSE 0 END AS BIGINT) AS opted_out
             FROM messages m WHERE m.gateway_id = $1 AND m.status = 'queued' AND m.next_attempt_at <= $2
             ORDER BY m.next_attempt_at, m.id LIMIT $3{}",
            dialect::skip_locked(self.dialect())
        ))
        .bind(req.gateway_id)
        .bind(now)
        .bind(budget)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.rollback().await?;
            return Ok(Claim::Empty);
        }
        let mut expired = Vec::new();
        let mut opted_out = Vec::new();
        let mut claimed = Vec::new();
        let mut used: i64 = 0;
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            let expires_at: i64 = r.try_get("expires_at")?;
            let kind: MessageKind = crate::db::stored(r, "kind")?;
            if expires_at <= now {
                expired.push(id);
                continue;
            }
            if kind == MessageKind::Normal && r.try_get::<i64, _>("opted_out")? != 0 {
                opted_out.push(id);
                continue;
            }
            let segments: i64 = r.try_get("segments")?;
            if !claimed.is_empty() && used + segments > budget {
                continue;
            }
            let not_before_us = match req.rate {
                Some(rate) => start_us + (used as f64 * 1e6 / rate) as i64,
                None => now_us,
            };
            used += segments;
            claimed.push(Claimed {
                id,
                project_id: r.try_get("project_id")?,
                phone: r.try_get("phone")?,
                text: r.try_get("text")?,
                encoding: r.try_get("encoding")?,
                segments,
                attempts: r.try_get::<i64, _>("attempts")? + 1,
                expires_at,
                not_before_us,
            });
        }
        for (ids, sql) in [
            (
                &expired,
                format!("UPDATE messages SET {} WHERE id IN ", expire_set()),
            ),
            (
                &opted_out,
                "UPDATE messages SET status = 'cancelled', updated_at = $1, error = 'the number opted out' WHERE id IN "
                    .to_string(),
            ),
        ] {
            if ids.is_empty() {
                continue;
            }
            let mut p = Placeholders::new(self.dialect());
            let first = p.next();
            let sql = format!("{}({})", sql.replace("$1", &first), p.list(ids.len()));
            let mut q = sqlx::query(&sql).bind(now);
            for id in ids {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        if !claimed.is_empty() {
            let mut p = Placeholders::new(self.dialect());
            let (a, b, c) = (p.next(), p.next(), p.next());
            let sql = format!(
                "UPDATE messages SET status = 'sending', attempts = attempts + 1, lease_until = {a}, leased_by = {b},
                 updated_at = {c} WHERE id IN ({})",
                p.list(padded(claimed.len()))
            );
            let mut q = sqlx::query(&sql)
                .bind(now + req.lease_ms)
                .bind(req.worker)
                .bind(now);
            for m in &claimed {
                q = q.bind(m.id);
            }
            let last = claimed.last().map_or(0, |m| m.id);
            for _ in claimed.len()..padded(claimed.len()) {
                q = q.bind(last);
            }
            q.execute(&mut *tx).await?;
            if let Some(rate) = req.rate {
                let next_free = start_us + (used as f64 * 1e6 / rate).ceil() as i64;
                sqlx::query("UPDATE gateway_rates SET next_free_us = $1 WHERE gateway_id = $2")
                    .bind(next_free)
                    .bind(req.gateway_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(Claim::Messages(claimed))
    }

    /// Records what the gateway said about claimed messages, in one transaction. A message a
    /// delivery report already moved on keeps its newer status.
    pub async fn record_send_results(&self, results: &[SendResult]) -> StoreResult<()> {
        if results.is_empty() {
            return Ok(());
        }
        let now = casecast_core::time::now_ms();
        let mut tx = self.begin_write().await?;
        // Messages the gateway took, many per statement: the common case, thousands a second.
        let sent: Vec<(i64, Option<&str>)> = results
            .iter()
            .filter_map(|r| match &r.outcome {
                Outcome::Sent { gateway_message_id } => Some((r.id, gateway_message_id.as_deref())),
                _ => None,
            })
            .collect();
        for chunk in sent.chunks(SENT_PER_STATEMENT) {
            let mut p = Placeholders::new(self.dialect());
            let (sent_at, updated_at) = (p.next(), p.next());
            let rows: Vec<String> = (0..padded(chunk.len()))
                .map(|_| {
                    format!(
                        "SELECT CAST({} AS BIGINT) AS id, CAST({} AS TEXT) AS gateway_ref",
                        p.next(),
                        p.next()
                    )
                })
                .collect();
            let sql = format!(
                "UPDATE messages SET status = CASE WHEN status IN ('sending', 'queued') THEN 'sent' ELSE status END,
                    error = CASE WHEN status IN ('sending', 'queued') THEN NULL ELSE error END,
                    sent_at = COALESCE(sent_at, {sent_at}), gateway_message_id = v.gateway_ref, lease_until = NULL,
                    leased_by = NULL, updated_at = {updated_at}
                 FROM ({}) AS v WHERE messages.id = v.id",
                rows.join(" UNION ALL ")
            );
            let mut q = sqlx::query(&sql).bind(now).bind(now);
            let last = chunk[chunk.len() - 1];
            for (id, gateway_message_id) in chunk.iter().chain(std::iter::repeat_n(
                &last,
                padded(chunk.len()) - chunk.len(),
            )) {
                q = q.bind(*id).bind(*gateway_message_id);
            }
            q.execute(&mut *tx).await?;
        }
        for r in results {
            match &r.outcome {
                Outcome::Sent { .. } => {}
                Outcome::Retry {
                    error,
                    next_attempt_at,
                } => {
                    let (status, error, next) = if r.attempts >= r.max_attempts {
                        (
                            MessageStatus::Failed,
                            format!("gave up after {} attempts: {error}", r.attempts),
                            now,
                        )
                    } else if *next_attempt_at >= r.expires_at {
                        (MessageStatus::Expired, format!("{error}; {EXPIRED}"), now)
                    } else {
                        (MessageStatus::Queued, error.clone(), *next_attempt_at)
                    };
                    // Only the claim this answer belongs to: if the lease ran out and another
                    // dispatcher claimed the message again (one more attempt), its answer counts.
                    sqlx::query(
                        "UPDATE messages SET status = $1, error = $2, next_attempt_at = $3, lease_until = NULL,
                            leased_by = NULL, updated_at = $4 WHERE id = $5 AND status = 'sending' AND attempts = $6",
                    )
                    .bind(status.as_str())
                    .bind(error)
                    .bind(next)
                    .bind(now)
                    .bind(r.id)
                    .bind(r.attempts)
                    .execute(&mut *tx)
                    .await?;
                }
                Outcome::Failed { error } => {
                    sqlx::query(
                        "UPDATE messages SET status = 'failed', error = $1, lease_until = NULL, leased_by = NULL,
                            updated_at = $2 WHERE id = $3 AND status = 'sending' AND attempts = $4",
                    )
                    .bind(error)
                    .bind(now)
                    .bind(r.id)
                    .bind(r.attempts)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        // Survey sessions whose latest message this was start their timers from now.
        let done: Vec<i64> = results.iter().map(|r| r.id).collect();
        self.start_session_timers(&mut tx, &done, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Expires queued messages past their validity (also during quiet hours, when nothing is
    /// claimed) and queues again messages whose dispatcher's lease ran out mid-send: the
    /// gateway may or may not have taken those, so they may arrive twice (at-least-once).
    /// Returns (expired, taken back).
    pub async fn sweep_outbox(&self) -> StoreResult<(u64, u64)> {
        let now = casecast_core::time::now_ms();
        let expired = sqlx::query(&format!(
            "UPDATE messages SET {} WHERE status = 'queued' AND expires_at <= $1",
            expire_set()
        ))
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        // A message on its last attempt is not tried again: it is failed, saying why.
        let taken_back = sqlx::query(
            "UPDATE messages SET
                status = CASE WHEN attempts >= COALESCE((SELECT g.max_attempts FROM gateways g
                    WHERE g.id = messages.gateway_id), 1) THEN 'failed' ELSE 'queued' END,
                error = CASE WHEN attempts >= COALESCE((SELECT g.max_attempts FROM gateways g
                    WHERE g.id = messages.gateway_id), 1)
                  THEN 'the worker sending its last attempt stopped before recording the result: it may or may not have been sent'
                  ELSE 'the worker sending it stopped before recording the result: sent again, so it may arrive twice' END,
                lease_until = NULL, leased_by = NULL, next_attempt_at = $1, updated_at = $1
             WHERE status = 'sending' AND lease_until < $1",
        )
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        // Messages queued for a gateway deleted meanwhile (a retry or a take-back after its
        // queue was cancelled): no dispatcher serves it any more.
        let orphaned = sqlx::query(
            "UPDATE messages SET status = 'cancelled', error = 'its gateway was deleted before it was sent',
                updated_at = $1
             WHERE status = 'queued' AND gateway_id IN (SELECT id FROM gateways WHERE deleted_at IS NOT NULL)",
        )
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        if orphaned > 0 {
            tracing::info!(
                cancelled = orphaned,
                "outbox: messages of deleted gateways cancelled"
            );
        }
        Ok((expired, taken_back))
    }

    /// One gateway's messages per status.
    pub async fn gateway_message_counts(&self, gateway_id: i64) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM messages WHERE gateway_id = $1 GROUP BY status ORDER BY status",
        )
        .bind(gateway_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
            .collect()
    }

    /// Whether any message of the gateway is queued or being sent (cheap to poll: each half
    /// stops at the first row of a partial index).
    pub async fn gateway_has_unsent(&self, gateway_id: i64) -> StoreResult<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(1 AS BIGINT) FROM messages WHERE status = 'queued' AND gateway_id = $1
             UNION ALL SELECT CAST(1 AS BIGINT) FROM messages WHERE status = 'sending' AND gateway_id = $1 LIMIT 1",
        )
        .bind(gateway_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(found.is_some())
    }

    /// Outbound messages queued and being sent, all projects (for `/metrics`; read through the
    /// partial indexes of those statuses).
    pub async fn outbox_backlog(&self) -> StoreResult<(i64, i64)> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM messages WHERE status = 'queued') AS queued,
                    (SELECT COUNT(*) FROM messages WHERE status = 'sending') AS sending",
        )
        .fetch_one(self.pool())
        .await?;
        Ok((row.try_get("queued")?, row.try_get("sending")?))
    }

    /// Messages per status (for tests).
    pub async fn outbox_counts(&self) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM messages GROUP BY status ORDER BY status",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
            .collect()
    }
}
