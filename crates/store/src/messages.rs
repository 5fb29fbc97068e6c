//! Messages: the outbox (outbound rows the dispatcher sends) and the log of everything sent and
//! received, with delivery reports, inbound messages and the opt-out list.

use casecast_core::case::FieldError;
use casecast_core::gateway::{DeliveryStatus, MessageRef};
use casecast_core::sms;
use casecast_core::states::{Direction, MessageKind, MessageStatus};
use casecast_core::PhoneNumber;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::error::{StoreError, StoreResult};
use crate::gateways::Gateway;
use crate::projects::Project;
use crate::Db;

/// Most characters in a message a user writes (ten GSM-7 segments).
pub const MAX_TEXT_CHARS: usize = 1530;
/// Most characters of an inbound message kept (longer ones are cut, and say so).
pub const MAX_INBOUND_CHARS: usize = 4000;

/// A message in the log.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Message {
    pub id: i64,
    #[serde(skip)]
    pub project_id: i64,
    pub direction: Direction,
    /// `normal`, or `confirmation` (the reply to STOP/START).
    pub kind: MessageKind,
    pub case_id: Option<String>,
    /// The case's name and external ID, for pages (not in the API's message).
    #[serde(skip)]
    pub case_name: Option<String>,
    #[serde(skip)]
    pub case_external_id: Option<String>,
    pub phone_number: String,
    pub text: String,
    pub status: MessageStatus,
    pub encoding: String,
    pub segments: i64,
    pub gateway_id: Option<i64>,
    pub broadcast_id: Option<i64>,
    /// The keyword an inbound message matched, or whose reply an outbound one is.
    pub keyword_id: Option<i64>,
    /// The reminder rule that sent it.
    pub reminder_id: Option<i64>,
    pub attempts: i64,
    pub error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub expires_at: i64,
}

pub(crate) const COLUMNS: &str = "m.id, m.project_id, m.direction, m.kind, c.case_id AS case_public_id, \
    c.name AS case_name, c.external_id AS case_external_id, m.phone, m.text, \
    m.status, m.encoding, m.segments, m.gateway_id, m.broadcast_id, m.keyword_id, m.reminder_id, m.attempts, m.error, m.created_at, \
    m.sent_at, m.delivered_at, m.expires_at";

pub(crate) fn from_row(row: &AnyRow) -> Result<Message, sqlx::Error> {
    Ok(Message {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        direction: crate::db::stored(row, "direction")?,
        kind: crate::db::stored(row, "kind")?,
        case_id: row.try_get("case_public_id")?,
        case_name: row.try_get("case_name")?,
        case_external_id: row.try_get("case_external_id")?,
        phone_number: row.try_get("phone")?,
        text: row.try_get("text")?,
        status: crate::db::stored(row, "status")?,
        encoding: row.try_get("encoding")?,
        segments: row.try_get("segments")?,
        gateway_id: row.try_get("gateway_id")?,
        broadcast_id: row.try_get("broadcast_id")?,
        keyword_id: row.try_get("keyword_id")?,
        reminder_id: row.try_get("reminder_id")?,
        attempts: row.try_get("attempts")?,
        error: row.try_get("error")?,
        created_at: row.try_get("created_at")?,
        sent_at: row.try_get("sent_at")?,
        delivered_at: row.try_get("delivered_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

/// What to list from the message log.
#[derive(Clone, Debug, Default)]
pub struct MessageFilter {
    pub direction: Option<Direction>,
    pub status: Option<MessageStatus>,
    pub case_id: Option<String>,
    pub phone_number: Option<String>,
    pub broadcast_id: Option<i64>,
    /// One occurrence of a broadcast.
    pub occurrence_id: Option<i64>,
    /// Messages that matched this keyword (inbound) or are its replies (outbound).
    pub keyword_id: Option<i64>,
    /// Messages this reminder rule sent.
    pub reminder_id: Option<i64>,
    /// Created at or after (epoch ms).
    pub since: Option<i64>,
    /// Created before (epoch ms).
    pub until: Option<i64>,
}

/// A case as a message to it needs it.
#[derive(Clone, Debug)]
pub struct CaseRecipient {
    pub case_pk: i64,
    pub phone: Option<String>,
    pub closed: bool,
    pub deleted: bool,
}

/// A message to queue.
#[derive(Clone, Debug)]
pub struct NewOutbound {
    pub case_pk: Option<i64>,
    pub phone: PhoneNumber,
    pub text: String,
    pub gateway_id: i64,
    pub user_id: Option<i64>,
    pub kind: MessageKind,
    /// The survey session that sends it and the session's step when it is queued.
    pub survey: Option<(i64, i64)>,
    /// An automatic reply: the inbound message it answers and the keyword that sends it (none:
    /// the default reply). Counted by the per-number reply limit.
    pub reply_to: Option<(i64, Option<i64>)>,
    /// The reminder rule that sends it.
    pub reminder_id: Option<i64>,
}

/// Checks the text of a message a user writes.
pub fn check_text(text: &str) -> Result<(), FieldError> {
    if text.trim().is_empty() {
        return Err(FieldError::new("text", "write the message"));
    }
    let n = text.chars().count();
    if n > MAX_TEXT_CHARS {
        return Err(FieldError::new(
            "text",
            format!("is {n} characters; a message may have at most {MAX_TEXT_CHARS}"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(FieldError::new(
            "text",
            "must not contain control characters",
        ));
    }
    Ok(())
}

impl Db {
    /// Queues one outbound message (inside the caller's transaction).
    pub async fn queue_outbound(
        tx: &mut Transaction<'static, Any>,
        project: &Project,
        new: &NewOutbound,
    ) -> StoreResult<i64> {
        let info = sms::analyse(&new.text);
        let now = casecast_core::time::now_ms();
        let expires = now + project.validity_seconds() * 1000;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO messages (project_id, direction, kind, case_pk, phone, text, status, encoding, segments,
                gateway_id, user_id, next_attempt_at, created_at, expires_at, updated_at,
                survey_session_id, survey_step, reply_to, keyword_id, reminder_id)
             VALUES ($1, 'outbound', $2, $3, $4, $5, 'queued', $6, $7, $8, $9, $10, $10, $11, $10, $12, $13, $14, $15, $16)
             RETURNING id",
        )
        .bind(project.id)
        .bind(new.kind.as_str())
        .bind(new.case_pk)
        .bind(new.phone.as_str())
        .bind(&new.text)
        .bind(info.encoding.as_str())
        .bind(info.segments as i64)
        .bind(new.gateway_id)
        .bind(new.user_id)
        .bind(now)
        .bind(expires)
        .bind(new.survey.map(|(session, _)| session))
        .bind(new.survey.map(|(_, step)| step))
        .bind(new.reply_to.map(|(to, _)| to))
        .bind(new.reply_to.and_then(|(_, keyword)| keyword))
        .bind(new.reminder_id)
        .fetch_one(&mut **tx)
        .await?;
        Ok(id)
    }

    /// The messages of a survey session (those it sent and the replies it took), in order.
    pub async fn messages_of_session(
        &self,
        project_id: i64,
        session_id: i64,
    ) -> StoreResult<Vec<Message>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM messages m LEFT JOIN cases c ON c.id = m.case_pk
             WHERE m.project_id = $1 AND m.survey_session_id = $2 ORDER BY m.id LIMIT 1000"
        ))
        .bind(project_id)
        .bind(session_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// The case with this case ID as a message would reach it: (row id, phone number,
    /// closed, deleted); `None` when the project has no such case.
    pub async fn case_recipient(
        &self,
        project_id: i64,
        case_id: &str,
    ) -> StoreResult<Option<CaseRecipient>> {
        let row = sqlx::query(
            "SELECT id, phone_number, closed, deleted FROM cases WHERE project_id = $1 AND case_id = $2",
        )
        .bind(project_id)
        .bind(case_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(CaseRecipient {
                case_pk: row.try_get("id")?,
                phone: row.try_get("phone_number")?,
                closed: row.try_get::<i64, _>("closed")? != 0,
                deleted: row.try_get::<i64, _>("deleted")? != 0,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| e.into())
    }

    /// Whether the gateway is the project's and not deleted, inside the caller's transaction.
    pub async fn gateway_is_live(
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        gateway_id: i64,
    ) -> StoreResult<bool> {
        let live: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM gateways WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL",
        )
        .bind(gateway_id)
        .bind(project_id)
        .fetch_optional(&mut **tx)
        .await?;
        Ok(live.is_some())
    }

    /// One message of the project.
    pub async fn message(&self, project_id: i64, id: i64) -> StoreResult<Message> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM messages m LEFT JOIN cases c ON c.id = m.case_pk AND c.project_id = m.project_id WHERE m.id = $1 AND m.project_id = $2"
        ))
        .bind(id)
        .bind(project_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("message"))?;
        Ok(from_row(&row)?)
    }

    /// A page of the message log, newest first; `cursor` is the previous page's last id.
    pub async fn list_messages(
        &self,
        project_id: i64,
        filter: &MessageFilter,
        limit: i64,
        cursor: Option<i64>,
    ) -> StoreResult<(Vec<Message>, Option<i64>)> {
        let mut sql = format!(
            "SELECT {COLUMNS} FROM messages m LEFT JOIN cases c ON c.id = m.case_pk AND c.project_id = m.project_id WHERE m.project_id = $1"
        );
        let mut n = 1;
        let mut next = |sql: &mut String, clause: &str| {
            n += 1;
            sql.push_str(&clause.replace('?', &format!("${n}")));
        };
        // The case is looked up first so that the message index on case_pk is used.
        let case_pk: Option<i64> = match &filter.case_id {
            Some(case_id) => Some(
                sqlx::query_scalar("SELECT id FROM cases WHERE project_id = $1 AND case_id = $2")
                    .bind(project_id)
                    .bind(case_id)
                    .fetch_optional(self.pool())
                    .await?
                    .unwrap_or(-1),
            ),
            None => None,
        };
        if case_pk.is_some() {
            next(&mut sql, " AND m.case_pk = ?");
        }
        if filter.direction.is_some() {
            next(&mut sql, " AND m.direction = ?");
        }
        if filter.status.is_some() {
            next(&mut sql, " AND m.status = ?");
        }
        if filter.phone_number.is_some() {
            next(&mut sql, " AND m.phone = ?");
        }
        if filter.broadcast_id.is_some() {
            next(&mut sql, " AND m.broadcast_id = ?");
        }
        if filter.occurrence_id.is_some() {
            next(&mut sql, " AND m.occurrence_id = ?");
        }
        if filter.keyword_id.is_some() {
            next(&mut sql, " AND m.keyword_id = ?");
        }
        if filter.reminder_id.is_some() {
            next(&mut sql, " AND m.reminder_id = ?");
        }
        if filter.since.is_some() {
            next(&mut sql, " AND m.created_at >= ?");
        }
        if filter.until.is_some() {
            next(&mut sql, " AND m.created_at < ?");
        }
        if cursor.is_some() {
            next(&mut sql, " AND m.id < ?");
        }
        next(&mut sql, " ORDER BY m.id DESC LIMIT ?");
        let mut q = sqlx::query(&sql).bind(project_id);
        if let Some(pk) = case_pk {
            q = q.bind(pk);
        }
        for v in [
            filter.direction.map(Direction::as_str),
            filter.status.map(MessageStatus::as_str),
            filter.phone_number.as_deref(),
        ]
        .into_iter()
        .flatten()
        {
            q = q.bind(v.to_string());
        }
        for v in [
            filter.broadcast_id,
            filter.occurrence_id,
            filter.keyword_id,
            filter.reminder_id,
            filter.since,
            filter.until,
            cursor,
        ]
        .into_iter()
        .flatten()
        {
            q = q.bind(v);
        }
        let rows = q
            .bind(limit + 1)
            .persistent(false)
            .fetch_all(self.pool())
            .await?;
        let mut items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|m| m.id)
        } else {
            None
        };
        Ok((items, next_cursor))
    }

    /// Applies a delivery report from `gateway`. Reports may come in any order: a message that
    /// is delivered stays delivered, and `sent` never overwrites a final status. Returns whether
    /// the report named a message of this gateway.
    pub async fn apply_delivery_report(
        &self,
        gateway: &Gateway,
        message: &MessageRef,
        status: DeliveryStatus,
        detail: &str,
    ) -> StoreResult<bool> {
        let now = casecast_core::time::now_ms();
        let (target, bind_id, bind_ref) = match message {
            MessageRef::Ours(id) => ("id = $3", Some(*id), None),
            MessageRef::Gateway(r) => ("gateway_message_id = $3", None, Some(r.clone())),
        };
        let (set, from) = match status {
            DeliveryStatus::Delivered => (
                // A delivered message was sent, even when its report overtakes the
                // dispatcher's record of the gateway's answer.
                "status = 'delivered', delivered_at = $1, sent_at = COALESCE(sent_at, $1), error = NULL, \
                 lease_until = NULL, leased_by = NULL",
                // An expired message that the gateway did take after all (its answer was
                // lost, then the retry came too late) is put right by its report.
                "'queued', 'sending', 'sent', 'failed', 'expired'",
            ),
            DeliveryStatus::Sent => (
                "status = 'sent', sent_at = COALESCE(sent_at, $1), lease_until = NULL, leased_by = NULL",
                "'queued', 'sending', 'expired'",
            ),
            DeliveryStatus::Failed => (
                "status = 'failed', error = $4, lease_until = NULL, leased_by = NULL",
                "'queued', 'sending', 'sent'",
            ),
            // Nothing final: the message stays as it is.
            DeliveryStatus::Pending => ("error = error", "'sending', 'sent'"),
        };
        let sql = format!(
            "UPDATE messages SET updated_at = $1, {set} WHERE gateway_id = $2 AND direction = 'outbound' \
             AND {target} AND status IN ({from})"
        );
        let mut q = sqlx::query(&sql).bind(now).bind(gateway.id);
        q = match (bind_id, bind_ref) {
            (Some(id), _) => q.bind(id),
            (_, Some(r)) => q.bind(r),
            _ => unreachable!("one of the two is set"),
        };
        if status == DeliveryStatus::Failed {
            let detail: String = detail
                .chars()
                .filter(|c| !c.is_control())
                .take(300)
                .collect();
            q = q.bind(format!("delivery report: {detail}"));
        }
        let done = q.execute(self.pool()).await?;
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        // Nothing changed: either the status was already final, or no such message.
        let exists: Option<i64> = match message {
            MessageRef::Ours(id) => {
                sqlx::query_scalar("SELECT id FROM messages WHERE id = $1 AND gateway_id = $2")
                    .bind(*id)
                    .bind(gateway.id)
                    .fetch_optional(self.pool())
                    .await?
            }
            MessageRef::Gateway(r) => {
                sqlx::query_scalar(
                    "SELECT id FROM messages WHERE gateway_id = $1 AND gateway_message_id = $2",
                )
                .bind(gateway.id)
                .bind(r)
                .fetch_optional(self.pool())
                .await?
            }
        };
        Ok(exists.is_some())
    }

    /// The inbound message this gateway already delivered with this id, if any.
    pub async fn inbound_seen(
        tx: &mut Transaction<'static, Any>,
        gateway_id: i64,
        gateway_message_id: &str,
    ) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM messages WHERE gateway_id = $1 AND gateway_message_id = $2
             AND direction = 'inbound' AND gateway_message_id IS NOT NULL",
        )
        .bind(gateway_id)
        .bind(gateway_message_id)
        .fetch_optional(&mut **tx)
        .await?)
    }

    /// The live case with this number: an open one before a closed one, then the newest.
    pub async fn case_for_phone(
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        phone: &str,
    ) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM cases WHERE project_id = $1 AND phone_number = $2 AND deleted = 0
             ORDER BY closed, modified_at DESC, id DESC LIMIT 1",
        )
        .bind(project_id)
        .bind(phone)
        .fetch_optional(&mut **tx)
        .await?)
    }

    /// Logs an inbound message as `received`; `None` when the gateway's message id is already
    /// stored (the same message delivered again, at the same instant or within the same
    /// transaction): nothing is written then, and the transaction goes on.
    pub async fn insert_inbound(
        &self,
        tx: &mut Transaction<'static, Any>,
        new: &NewInbound<'_>,
    ) -> StoreResult<Option<i64>> {
        let mut ids = self
            .insert_inbound_many(tx, std::slice::from_ref(new))
            .await?;
        Ok(ids.pop().flatten())
    }

    /// Logs inbound messages as `received`, in one statement a [`MAX_INBOUND_ROWS`]; returns
    /// each one's row id, in order, `None` for one whose gateway message id is stored already
    /// (before, or earlier in `news`): nothing is written for it.
    ///
    /// The rows written get increasing ids in the order of `news` (a multi-row insert takes
    /// its ids in order on both engines); which were written is read from the gateway message
    /// ids returned, and a returned row that does not match its message (number, gateway
    /// message id) is an error, never a wrong id.
    pub async fn insert_inbound_many(
        &self,
        tx: &mut Transaction<'static, Any>,
        news: &[NewInbound<'_>],
    ) -> StoreResult<Vec<Option<i64>>> {
        let mut ids = Vec::with_capacity(news.len());
        for chunk in news.chunks(MAX_INBOUND_ROWS) {
            let mut p = crate::dialect::Placeholders::new(self.dialect());
            let rows: Vec<String> = chunk
                .iter()
                .map(|_| {
                    let v: Vec<String> = (0..12).map(|_| p.next()).collect();
                    format!(
                        "({}, 'inbound', 'normal', {}, 'received', {})",
                        v[0],
                        v[1..4].join(", "),
                        v[4..].join(", ")
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO messages (project_id, direction, kind, case_pk, phone, text, status, encoding, segments,
                    gateway_id, gateway_message_id, next_attempt_at, created_at, expires_at, updated_at)
                 VALUES {} ON CONFLICT DO NOTHING RETURNING id, phone, gateway_id, gateway_message_id",
                rows.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for new in chunk {
                let info = sms::analyse(new.text);
                q = q
                    .bind(new.project_id)
                    .bind(new.case_pk)
                    .bind(new.phone)
                    .bind(new.text)
                    .bind(info.encoding.as_str())
                    .bind(info.segments as i64)
                    .bind(new.gateway_id)
                    .bind(new.gateway_message_id)
                    .bind(new.now)
                    .bind(new.now)
                    .bind(new.now)
                    .bind(new.now);
            }
            let mut written: Vec<(i64, String, i64, Option<String>)> = q
                .persistent(false)
                .fetch_all(&mut **tx)
                .await?
                .iter()
                .map(|r| {
                    Ok((
                        r.try_get("id")?,
                        r.try_get("phone")?,
                        r.try_get("gateway_id")?,
                        r.try_get("gateway_message_id")?,
                    ))
                })
                .collect::<Result<_, sqlx::Error>>()?;
            written.sort_unstable_by_key(|w| w.0);
            let returned: std::collections::HashSet<(i64, &str)> = written
                .iter()
                .filter_map(|(_, _, g, m)| m.as_deref().map(|m| (*g, m)))
                .collect();
            let mut seen: std::collections::HashSet<(i64, &str)> = Default::default();
            let mut written = written.iter();
            for new in chunk {
                let stored_now = match new.gateway_message_id {
                    None => true,
                    Some(m) => {
                        seen.insert((new.gateway_id, m)) && returned.contains(&(new.gateway_id, m))
                    }
                };
                if !stored_now {
                    ids.push(None);
                    continue;
                }
                match written.next() {
                    Some((id, phone, g, m))
                        if phone == new.phone
                            && *g == new.gateway_id
                            && m.as_deref() == new.gateway_message_id =>
                    {
                        ids.push(Some(*id))
                    }
                    _ => {
                        return Err(StoreError::internal(
                            "the inbound messages written do not match the messages given",
                        ))
                    }
                }
            }
            if written.next().is_some() {
                return Err(StoreError::internal(
                    "more inbound messages were written than given",
                ));
            }
        }
        Ok(ids)
    }
}

/// Rows per multi-row insert of [`Db::insert_inbound_many`] (12 parameters each).
pub const MAX_INBOUND_ROWS: usize = 500;

/// An inbound message to log.
#[derive(Clone, Debug)]
pub struct NewInbound<'a> {
    pub project_id: i64,
    pub case_pk: Option<i64>,
    pub phone: &'a str,
    pub text: &'a str,
    pub gateway_id: i64,
    pub gateway_message_id: Option<&'a str>,
    pub now: i64,
}

/// Rows per multi-row insert of [`Db::queue_outbound_bulk`] (11 parameters each).
const BULK_ROWS: usize = 1000;

impl Db {
    /// Queues many outbound messages through one gateway at once, in multi-row inserts inside
    /// one transaction, for tests and benchmarks. Each item is (case row id, number, text). The
    /// texts are checked as a user's would be; cases and opt-outs are not (the dispatcher still
    /// cancels messages to opted-out numbers when it claims them). Returns how many were queued.
    pub async fn queue_outbound_bulk(
        &self,
        project: &Project,
        gateway_id: i64,
        items: &[(Option<i64>, PhoneNumber, String)],
    ) -> StoreResult<u64> {
        for (_, _, text) in items {
            check_text(text)?;
        }
        let now = casecast_core::time::now_ms();
        let expires = now + project.validity_seconds() * 1000;
        let mut tx = self.begin_write().await?;
        let mut queued = 0;
        for chunk in items.chunks(BULK_ROWS) {
            let mut p = crate::dialect::Placeholders::new(self.dialect());
            let rows: Vec<String> = chunk
                .iter()
                .map(|_| {
                    format!(
                        "({}, 'outbound', 'normal', {}, 'queued', {}, NULL, {}, 0)",
                        p.list(2),
                        p.list(4),
                        p.next(),
                        p.list(4)
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO messages (project_id, case_pk, direction, kind, phone, text, encoding, segments,
                    status, gateway_id, user_id, next_attempt_at, created_at, expires_at, updated_at, attempts)
                 VALUES {}",
                rows.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for (case_pk, phone, text) in chunk {
                let info = sms::analyse(text);
                q = q
                    .bind(project.id)
                    .bind(*case_pk)
                    .bind(phone.as_str())
                    .bind(text.as_str())
                    .bind(info.encoding.as_str())
                    .bind(info.segments as i64)
                    .bind(gateway_id)
                    .bind(now)
                    .bind(now)
                    .bind(expires)
                    .bind(now);
            }
            queued += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        self.wake_dispatchers();
        Ok(queued)
    }
}
