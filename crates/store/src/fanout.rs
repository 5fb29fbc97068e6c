//! Fan-out: one broadcast occurrence becomes outbox rows, batch by batch, and the preview that
//! walks the same recipients without writing.
//!
//! Recipients are read source by source (each case group in the order given, then the
//! individually chosen cases), in case row order, with keyset batches. A case in an earlier
//! source is skipped in later ones. Each case is classified (deleted, closed, no phone, opted
//! out) and the rest get their text rendered in their language. Each batch is one transaction
//! that inserts its messages (`ON CONFLICT DO NOTHING` on occurrence and phone: one message per
//! number per occurrence) and advances the occurrence's cursor, so a fan-out that dies half-way
//! resumes where it stopped and never writes a message twice.

use std::collections::{BTreeMap, HashMap, HashSet};

use casecast_core::case::Case;
use casecast_core::sms;
use casecast_core::template::Content;
use serde::Serialize;
use sqlx::{Any, Row};

use crate::broadcasts::{broadcast_from_row, Excluded};
use crate::error::{StoreError, StoreResult};
use crate::gateways::Router;
use crate::projects::Project;
use crate::Db;

/// Cases read per fan-out transaction.
const BATCH: i64 = 5000;
/// Rows per multi-row insert (6 parameters each).
const INSERT_ROWS: usize = 1000;
/// Sample messages shown per language in a preview.
const SAMPLES_PER_LANGUAGE: usize = 3;

/// Where an occurrence's recipients come from, in reading order.
#[derive(Debug)]
struct Sources {
    /// The broadcast's groups that still exist, in the order given.
    groups: Vec<i64>,
    /// Row ids of the individually chosen cases, ascending.
    case_pks: Vec<i64>,
}

impl Sources {
    /// Groups, then the list of cases.
    fn len(&self) -> i64 {
        self.groups.len() as i64 + 1
    }
}

/// A case read for a fan-out or preview.
struct Candidate {
    pk: i64,
    case: Case,
    opted_out: bool,
}

/// Why a case gets no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    Deleted,
    Closed,
    NoPhone,
    OptedOut,
    /// No gateway takes the number (the project has none).
    NoGateway,
}

impl Excluded {
    fn add(&mut self, reason: Reason) {
        match reason {
            Reason::Deleted => self.deleted += 1,
            Reason::Closed => self.closed += 1,
            Reason::NoPhone => self.no_phone += 1,
            Reason::OptedOut => self.opted_out += 1,
            Reason::NoGateway => self.no_gateway += 1,
        }
    }
}

/// One rendered message for one case.
struct Outgoing {
    case_pk: i64,
    /// The language key whose text was used (`*` for the default).
    language: String,
    phone: String,
    text: String,
    encoding: sms::Encoding,
    segments: i64,
    gateway_id: i64,
    missing: Vec<String>,
}

/// The exclusion rules, in the order a case is checked against them.
fn classify(c: &Candidate) -> Option<Reason> {
    if c.case.deleted {
        Some(Reason::Deleted)
    } else if c.case.closed {
        Some(Reason::Closed)
    } else if c.case.phone_number.is_none() {
        Some(Reason::NoPhone)
    } else if c.opted_out {
        Some(Reason::OptedOut)
    } else {
        None
    }
}

/// The message a candidate gets, or why it gets none.
fn outgoing(content: &Content, router: &Router, c: Candidate) -> Result<Outgoing, Reason> {
    if let Some(reason) = classify(&c) {
        return Err(reason);
    }
    let (language, template) = content.choose(c.case.language_code.as_deref());
    let rendered = template.render(&c.case);
    let info = sms::analyse(&rendered.text);
    let phone = c.case.phone_number.expect("classified as having a phone");
    let gateway_id = router.route(phone.as_str()).ok_or(Reason::NoGateway)?;
    Ok(Outgoing {
        case_pk: c.pk,
        language: language.to_string(),
        gateway_id,
        phone: phone.as_str().to_string(),
        text: rendered.text,
        encoding: info.encoding,
        segments: info.segments as i64,
        missing: rendered.missing,
    })
}

/// What a preview shows before a broadcast is sent.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Preview {
    /// Messages that would be queued now: one per phone number.
    pub recipients: i64,
    pub excluded: Excluded,
    /// Segments of all those messages.
    pub segments: i64,
    /// `gsm7` when every message is GSM-7, else `ucs2`.
    pub encoding: &'static str,
    /// Recipients and segments per text (`*` is the default).
    pub languages: Vec<LanguagePreview>,
    /// Per placeholder (`{case.ward}`), how many recipients lack its value.
    pub missing: BTreeMap<String, i64>,
    /// Rendered messages for a few real recipients of each text.
    pub samples: Vec<Sample>,
    /// Seconds to hand everything to the gateways at their rate limits; `None` without limits.
    pub estimated_seconds: Option<f64>,
}

/// One text of a preview.
#[derive(Clone, Debug, Serialize)]
pub struct LanguagePreview {
    pub language: String,
    pub recipients: i64,
    pub segments: i64,
}

/// A rendered message for one real recipient.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub case_id: String,
    pub name: String,
    pub phone_number: String,
    pub language: String,
    pub text: String,
    pub encoding: &'static str,
    pub segments: i64,
    pub missing: Vec<String>,
}

impl Db {
    /// The groups (still in the project) and case rows a broadcast's recipients name.
    async fn sources(
        &self,
        project_id: i64,
        recipients: &casecast_core::broadcast::Recipients,
    ) -> StoreResult<Sources> {
        let mut groups = Vec::new();
        for id in &recipients.case_groups {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT id FROM case_groups WHERE id = $1 AND project_id = $2")
                    .bind(id)
                    .bind(project_id)
                    .fetch_optional(self.pool())
                    .await?;
            groups.extend(found);
        }
        let mut case_pks: Vec<i64> = (self.case_pks(project_id, &recipients.cases).await?)
            .into_iter()
            .map(|(_, pk)| pk)
            .collect();
        case_pks.sort_unstable();
        Ok(Sources { groups, case_pks })
    }

    /// Up to `limit` cases of source `pos` after case row `after`, in row order, skipping cases
    /// an earlier source already gave.
    async fn candidates<'c, E>(
        &self,
        exec: E,
        project_id: i64,
        sources: &Sources,
        pos: i64,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<Candidate>>
    where
        E: sqlx::Executor<'c, Database = Any>,
    {
        let columns = crate::cases::CASE_COLUMNS
            .split(", ")
            .map(|c| format!("c.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        // Ids below are integers read from the database, written into the SQL as literals.
        let list = |ids: &[i64]| {
            ids.iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let opted_out = format!(
            "CAST(CASE WHEN EXISTS (SELECT 1 FROM opt_outs o WHERE o.project_id = {project_id}
                AND o.phone = c.phone_number) THEN 1 ELSE 0 END AS BIGINT) AS opted_out"
        );
        let pos_usize = pos as usize;
        let sql = if pos_usize < sources.groups.len() {
            let earlier = &sources.groups[..pos_usize];
            let skip = if earlier.is_empty() {
                String::new()
            } else {
                format!(
                    " AND NOT EXISTS (SELECT 1 FROM case_group_members e WHERE e.case_pk = m.case_pk AND e.group_id IN ({}))",
                    list(earlier)
                )
            };
            format!(
                "SELECT {columns}, {opted_out} FROM case_group_members m JOIN cases c ON c.id = m.case_pk
                 WHERE m.group_id = {} AND m.case_pk > $1 AND c.project_id = {project_id}{skip}
                 ORDER BY m.case_pk LIMIT $2",
                sources.groups[pos_usize]
            )
        } else {
            if sources.case_pks.is_empty() {
                return Ok(Vec::new());
            }
            let skip = if sources.groups.is_empty() {
                String::new()
            } else {
                format!(
                    " AND NOT EXISTS (SELECT 1 FROM case_group_members e WHERE e.case_pk = c.id AND e.group_id IN ({}))",
                    list(&sources.groups)
                )
            };
            format!(
                "SELECT {columns}, {opted_out} FROM cases c
                 WHERE c.id IN ({}) AND c.id > $1 AND c.project_id = {project_id}{skip}
                 ORDER BY c.id LIMIT $2",
                list(&sources.case_pks)
            )
        };
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(limit)
            .persistent(false)
            .fetch_all(exec)
            .await?;
        rows.iter()
            .map(|row| {
                let (pk, case) = crate::cases::case_from_row(row)?;
                Ok(Candidate {
                    pk,
                    case,
                    opted_out: row.try_get::<i64, _>("opted_out")? != 0,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Walks a draft's recipients as a fan-out would now, without writing anything.
    pub async fn preview_broadcast(
        &self,
        project: &Project,
        draft: &casecast_core::broadcast::Draft,
    ) -> StoreResult<Preview> {
        self.check_draft_refs(project, draft).await?;
        let sources = self.sources(project.id, &draft.recipients).await?;
        let router = match draft.gateway_id {
            Some(id) => Router::only(id),
            None => self.router(project.id).await?,
        };
        let mut preview = Preview::default();
        let mut phones: HashSet<String> = HashSet::new();
        let mut languages: BTreeMap<String, (i64, i64, usize)> = BTreeMap::new();
        let mut by_gateway: HashMap<i64, i64> = HashMap::new();
        let mut ucs2 = false;
        for pos in 0..sources.len() {
            let mut after = 0;
            loop {
                let batch = (self.candidates(self.pool(), project.id, &sources, pos, after, BATCH))
                    .await?;
                let full = batch.len() as i64 == BATCH;
                for c in batch {
                    after = c.pk;
                    let case_id = c.case.case_id.as_str().to_string();
                    let name = c.case.name.clone();
                    let m = match outgoing(&draft.content, &router, c) {
                        Ok(m) => m,
                        Err(reason) => {
                            preview.excluded.add(reason);
                            continue;
                        }
                    };
                    if !phones.insert(m.phone.clone()) {
                        preview.excluded.duplicate_phone += 1;
                        continue;
                    }
                    preview.recipients += 1;
                    preview.segments += m.segments;
                    ucs2 |= m.encoding == sms::Encoding::Ucs2;
                    for p in &m.missing {
                        *preview.missing.entry(p.clone()).or_default() += 1;
                    }
                    *by_gateway.entry(m.gateway_id).or_default() += m.segments;
                    let entry = languages.entry(m.language.clone()).or_default();
                    entry.0 += 1;
                    entry.1 += m.segments;
                    if entry.2 < SAMPLES_PER_LANGUAGE {
                        entry.2 += 1;
                        preview.samples.push(Sample {
                            case_id,
                            name,
                            phone_number: m.phone,
                            language: m.language,
                            text: m.text,
                            encoding: m.encoding.as_str(),
                            segments: m.segments,
                            missing: m.missing,
                        });
                    }
                }
                if !full {
                    break;
                }
            }
        }
        preview.encoding = if ucs2 { "ucs2" } else { "gsm7" };
        preview.languages = languages
            .into_iter()
            .map(|(language, (recipients, segments, _))| LanguagePreview {
                language,
                recipients,
                segments,
            })
            .collect();
        // Gateways send in parallel: the slowest one sets the time.
        let mut seconds: Option<f64> = None;
        for gateway in self.list_gateways(project.id).await? {
            if let (Some(segments), Some(rate)) =
                (by_gateway.get(&gateway.id), gateway.max_segments_per_second)
            {
                let s = *segments as f64 / rate;
                seconds = Some(seconds.map_or(s, |x: f64| x.max(s)));
            }
        }
        preview.estimated_seconds = seconds;
        Ok(preview)
    }

    /// The job body: fans an occurrence out into the outbox, batch by batch, resuming after the
    /// last batch a previous attempt committed.
    pub async fn process_fanout(
        &self,
        occurrence_id: i64,
        job_id: i64,
        worker: &str,
    ) -> StoreResult<()> {
        let row = sqlx::query(
            "SELECT o.status AS occurrence_status, o.due_at, b.id, b.project_id, b.name, b.recipients,
                b.content, b.schedule, b.gateway_id, b.state, b.next_run_at, b.next_index,
                b.last_run_at, b.created_at
             FROM broadcast_occurrences o JOIN broadcasts b ON b.id = o.broadcast_id WHERE o.id = $1",
        )
        .bind(occurrence_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("occurrence"))?;
        if row.try_get::<String, _>("occurrence_status")? != "fanning_out" {
            return Ok(());
        }
        let due: i64 = row.try_get("due_at")?;
        let broadcast = broadcast_from_row(&row)?;
        let project = self.project_by_id(broadcast.project_id).await?;
        let expires = due + project.messaging.validity_seconds * 1000;
        let now = casecast_core::time::now_ms();
        if now >= expires {
            return self
                .end_occurrence(
                    occurrence_id,
                    "missed",
                    Some("not sent: its fan-out could not start within the message validity"),
                )
                .await;
        }
        let router = match broadcast.gateway_id {
            Some(id) => match self.gateway(project.id, id).await {
                Ok(_) => Router::only(id),
                Err(StoreError::NotFound(_)) => {
                    return self
                        .end_occurrence(
                            occurrence_id,
                            "failed",
                            Some("not sent: the broadcast's gateway was deleted"),
                        )
                        .await
                }
                Err(e) => return Err(e),
            },
            None => self.router(project.id).await?,
        };
        if router.is_empty() {
            return self
                .end_occurrence(
                    occurrence_id,
                    "failed",
                    Some("not sent: no SMS gateway is set up (an admin can add one under Messaging → Gateways)"),
                )
                .await;
        }
        let sources = self.sources(project.id, &broadcast.recipients).await?;
        let target = Target {
            project_id: project.id,
            broadcast_id: broadcast.id,
            occurrence_id,
            expires,
        };
        tracing::info!(broadcast.id = broadcast.id, occurrence.id = occurrence_id, "fan-out started");
        while self
            .fanout_batch(&target, &broadcast.content, &router, &sources)
            .await?
        {
            self.wake_dispatchers();
            if !self.renew_job(job_id, worker).await? {
                return Err(StoreError::Conflict {
                    code: "lease_lost",
                    message: "another worker took the fan-out over".into(),
                });
            }
        }
        self.wake_dispatchers();
        tracing::info!(broadcast.id = broadcast.id, occurrence.id = occurrence_id, "fan-out done");
        Ok(())
    }

    /// Ends an occurrence that will queue nothing (more).
    pub(crate) async fn end_occurrence(
        &self,
        occurrence_id: i64,
        status: &str,
        error: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE broadcast_occurrences SET status = $1, error = $2, finished_at = $3
             WHERE id = $4 AND status = 'fanning_out'",
        )
        .bind(status)
        .bind(error)
        .bind(casecast_core::time::now_ms())
        .bind(occurrence_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// One fan-out transaction. True while there is more to do.
    async fn fanout_batch(
        &self,
        target: &Target,
        content: &Content,
        router: &Router,
        sources: &Sources,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        // Locks the occurrence: a cancel waits for this batch, and a second worker for the
        // same occurrence reads the cursor this batch leaves.
        let row = sqlx::query(&format!(
            "SELECT status, source_pos, cursor_pk FROM broadcast_occurrences WHERE id = $1{}",
            crate::dialect::for_update(self.engine())
        ))
        .bind(target.occurrence_id)
        .fetch_one(&mut *tx)
        .await?;
        if row.try_get::<String, _>("status")? != "fanning_out" {
            return Ok(false);
        }
        let pos: i64 = row.try_get("source_pos")?;
        let after: i64 = row.try_get("cursor_pk")?;
        let now = casecast_core::time::now_ms();
        if pos >= sources.len() {
            sqlx::query(
                "UPDATE broadcast_occurrences SET status = 'done', finished_at = $1,
                    started_at = COALESCE(started_at, $1) WHERE id = $2",
            )
            .bind(now)
            .bind(target.occurrence_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(false);
        }
        let batch = (self.candidates(&mut *tx, target.project_id, sources, pos, after, BATCH))
            .await?;
        let (next_pos, next_after) = match batch.last() {
            Some(c) if batch.len() as i64 == BATCH => (pos, c.pk),
            _ => (pos + 1, 0),
        };
        let mut excluded = Excluded::default();
        let mut messages = Vec::with_capacity(batch.len());
        let mut phones: HashSet<String> = HashSet::new();
        for c in batch {
            match outgoing(content, router, c) {
                Err(reason) => excluded.add(reason),
                Ok(m) if !phones.insert(m.phone.clone()) => excluded.duplicate_phone += 1,
                Ok(m) => messages.push(m),
            }
        }
        let mut queued = 0;
        let mut segments = 0;
        let mut missing = 0;
        for chunk in messages.chunks(INSERT_ROWS) {
            let inserted = insert_messages(&mut tx, self.engine(), target, now, chunk).await?;
            let by_case: HashMap<i64, &Outgoing> = chunk.iter().map(|m| (m.case_pk, m)).collect();
            for pk in inserted {
                let m = by_case[&pk];
                queued += 1;
                segments += m.segments;
                missing += i64::from(!m.missing.is_empty());
            }
        }
        // Numbers an earlier batch (or source) already took.
        excluded.duplicate_phone += messages.len() as i64 - queued;
        sqlx::query(
            "UPDATE broadcast_occurrences SET source_pos = $1, cursor_pk = $2, queued = queued + $3,
                segments = segments + $4, no_phone = no_phone + $5, opted_out = opted_out + $6,
                closed = closed + $7, deleted = deleted + $8, duplicate_phone = duplicate_phone + $9,
                missing_values = missing_values + $10, started_at = COALESCE(started_at, $11),
                no_gateway = no_gateway + $12
             WHERE id = $13",
        )
        .bind(next_pos)
        .bind(next_after)
        .bind(queued)
        .bind(segments)
        .bind(excluded.no_phone)
        .bind(excluded.opted_out)
        .bind(excluded.closed)
        .bind(excluded.deleted)
        .bind(excluded.duplicate_phone)
        .bind(missing)
        .bind(now)
        .bind(excluded.no_gateway)
        .bind(target.occurrence_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// The occurrence a fan-out writes for.
struct Target {
    project_id: i64,
    broadcast_id: i64,
    occurrence_id: i64,
    expires: i64,
}

/// Inserts one chunk of messages, skipping numbers the occurrence already has; returns the case
/// row ids of the messages written.
async fn insert_messages(
    tx: &mut sqlx::Transaction<'static, Any>,
    engine: crate::Engine,
    target: &Target,
    now: i64,
    chunk: &[Outgoing],
) -> StoreResult<Vec<i64>> {
    let mut p = crate::dialect::Placeholders::new(engine);
    let Target {
        project_id,
        broadcast_id,
        occurrence_id,
        expires,
    } = target;
    // Integers of our own are written as literals: only the six per-message values are bound.
    let rows: Vec<String> = chunk
        .iter()
        .map(|_| {
            format!(
                "({project_id}, 'outbound', 'normal', {}, 'queued', {}, {broadcast_id}, {occurrence_id}, 0, {now}, {now}, {expires}, {now})",
                p.list(5),
                p.next()
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO messages (project_id, direction, kind, case_pk, phone, text, encoding, segments,
            status, gateway_id, broadcast_id, occurrence_id, attempts, next_attempt_at, created_at,
            expires_at, updated_at)
         VALUES {} ON CONFLICT DO NOTHING RETURNING case_pk",
        rows.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for m in chunk {
        q = q
            .bind(m.case_pk)
            .bind(m.phone.as_str())
            .bind(m.text.as_str())
            .bind(m.encoding.as_str())
            .bind(m.segments)
            .bind(m.gateway_id);
    }
    let rows = q.persistent(false).fetch_all(&mut **tx).await?;
    rows.iter()
        .map(|r| r.try_get::<i64, _>("case_pk"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::from)
}
