//! The inbound router: what happens to an SMS a gateway delivers. It becomes a row first, in
//! its own transaction (nothing is lost if the process dies) under the number's lock (so that
//! its id follows the order in which the number's messages were stored), matched to the case
//! with that number; then it is handled with the number's other waiting messages, in arrival
//! order under the number's lock: stop/start keywords (the opt-out list changes, queued
//! messages are cancelled, a stop ends the number's survey sessions, one confirmation is queued
//! through the same gateway); else the reply to the number's active survey session
//! (`crate::surveys`); otherwise it is only logged on the case. A message whose process died
//! before handling it is handled by a worker's sweep ([`handle_unhandled`]). Keywords (a later
//! issue) add their step here.
//!
//! Throughput: messages that arrive while the process is busy with others are taken together
//! ([`handle_inbound`]): stored in one transaction, then handled in one more, with one statement
//! per table for the whole batch ([`handle_numbers`]); what does not fit that (a keyword,
//! several messages of one number waiting) is handled number by number ([`handle_number`]),
//! one message per transaction.

use casecast_core::opt_out::Intent;
use casecast_core::states::MessageKind;
use casecast_core::survey::session::Event;
use casecast_core::PhoneNumber;
use casecast_gateways::InboundSms;
use casecast_store::gateways::Gateway;
use casecast_store::messages::{Message, NewInbound, NewOutbound, MAX_INBOUND_CHARS};
use casecast_store::projects::Project;
use casecast_store::survey_sessions::{SurveySession, Unhandled};
use casecast_store::{Db, StoreError, StoreResult};

use crate::clock::Clock;
use crate::faults::Faults;

/// What happened to an inbound message.
#[derive(Clone, Debug)]
pub struct InboundOutcome {
    pub message: Message,
    /// The opt-out or opt-in it asked for, and whether that changed the list (a second STOP
    /// changes nothing and gets no second confirmation).
    pub intent: Option<(Intent, bool)>,
    /// The survey session it answered, if any.
    pub session_id: Option<i64>,
    /// False when the gateway delivered the same message twice (nothing recorded again).
    pub recorded: bool,
}

/// What handling one stored inbound message did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handled {
    pub message_id: i64,
    /// The opt-out or opt-in it asked for, and whether that changed the list.
    pub intent: Option<(Intent, bool)>,
    /// The survey session it answered or (a keyword) started; none with a stop keyword.
    pub session_id: Option<i64>,
    /// The keyword it matched.
    pub keyword_id: Option<i64>,
}

/// Most inbound messages of one number handled per call of [`handle_number`] (the rest wait
/// for the next message or the sweep).
const PER_NUMBER: usize = 1000;

/// Handles a number's stored inbound messages that are not handled yet, oldest first, each in
/// its own transaction holding the number's lock (whichever process gets the lock handles
/// them; the others find them handled). In order: a stop or start keyword (a stop also
/// cancels the number's survey sessions); else the reply to the number's active survey
/// session asked most recently; else the message is only logged on the case.
pub async fn handle_number(
    db: &Db,
    clock: &dyn Clock,
    project: &Project,
    phone: &str,
) -> StoreResult<Vec<Handled>> {
    handle_number_with_faults(db, clock, &Faults::none(), project, phone).await
}

/// [`handle_number`], holding at the fault point `survey-reply=N` (tests only: see
/// `crate::faults`).
pub async fn handle_number_with_faults(
    db: &Db,
    clock: &dyn Clock,
    faults: &Faults,
    project: &Project,
    phone: &str,
) -> StoreResult<Vec<Handled>> {
    let messaging = project.inbound_settings();
    // Stored settings are checked as they are read: their keywords are usable.
    let keywords = messaging.keywords().unwrap_or_default();
    let number = PhoneNumber::parse(phone, project.country_code().as_ref()).ok();
    let mut handled = Vec::new();
    let mut wake = false;
    while handled.len() < PER_NUMBER {
        let mut tx = db.begin_write().await?;
        db.lock_number(&mut tx, project.id, phone).await?;
        // Two: the second says whether to look again after this one.
        let mut waiting = Db::unhandled_inbound(&mut tx, project.id, phone, 2).await?;
        let more = waiting.len() > 1;
        let Some(message) = waiting.drain(..).next() else {
            tx.rollback().await?;
            break;
        };
        let now = clock.now_ms();
        let asked = number
            .as_ref()
            .and_then(|_| casecast_core::opt_out::intent(&message.text, &keywords));
        let mut outcome = Handled {
            message_id: message.id,
            intent: None,
            session_id: None,
            keyword_id: None,
        };
        let mut case_pk = None;
        match (asked, number.as_ref()) {
            (Some(asked), Some(number)) => {
                let (changed, reply) = match asked {
                    Intent::OptOut => {
                        crate::surveys::stop_sessions_of_phone(db, &mut tx, project, phone, now)
                            .await?;
                        (
                            db.opt_out_tx(&mut tx, project.id, number.as_str(), "keyword")
                                .await?,
                            &messaging.opt_out_reply,
                        )
                    }
                    Intent::OptIn => (
                        db.opt_in_tx(&mut tx, project.id, number.as_str()).await?,
                        &messaging.opt_in_reply,
                    ),
                };
                // A keyword that changes nothing (a second STOP) gets no second confirmation.
                if changed {
                    if let Some(gateway_id) = message.gateway_id {
                        Db::queue_outbound(
                            &mut tx,
                            project,
                            &NewOutbound {
                                case_pk: message.case_pk,
                                phone: number.clone(),
                                text: reply.clone(),
                                gateway_id,
                                user_id: None,
                                kind: MessageKind::Confirmation,
                                survey: None,
                                reply_to: None,
                                reminder_id: None,
                            },
                        )
                        .await?;
                        wake = true;
                    }
                }
                outcome.intent = Some((asked, changed));
            }
            _ => {
                // Keywords come after a survey's answer, unless the keyword overrides an open
                // survey (its sessions are cancelled first).
                let keyword = match casecast_core::keyword::first_word(&message.text) {
                    Some((word, _)) => {
                        db.keyword_by_word_tx(
                            &mut tx,
                            project.id,
                            &casecast_core::keyword::fold(word),
                        )
                        .await?
                    }
                    None => None,
                };
                let overrides = keyword.as_ref().filter(|k| {
                    k.keyword.override_open_survey
                        && casecast_core::keyword::match_message(
                            &message.text,
                            std::iter::once(&k.keyword),
                        )
                        .is_some()
                });
                let mut answered = false;
                if let Some(k) = overrides {
                    let why = format!("the keyword {} was sent", k.keyword.keyword);
                    crate::surveys::cancel_sessions_of_phone(
                        db, &mut tx, project, phone, now, &why,
                    )
                    .await?;
                } else if let Some((session, done)) = crate::surveys::answer(
                    db,
                    &mut tx,
                    project,
                    phone,
                    &message.text,
                    message.gateway_id,
                    now,
                )
                .await?
                {
                    outcome.session_id = Some(session.id);
                    case_pk = Some(session.case_pk);
                    wake |= done.queued > 0;
                    answered = true;
                }
                if !answered {
                    let acted = match &keyword {
                        Some(k) => {
                            let sender =
                                crate::keywords::Sender::load(db, &mut tx, project, phone, now)
                                    .await?;
                            let mut deferred = crate::keywords::Deferred::default();
                            let job = crate::keywords::Job {
                                message: &message,
                                keyword: k,
                                sender: &sender,
                            };
                            let acted = crate::keywords::act(
                                db,
                                &mut tx,
                                project,
                                std::slice::from_ref(&job),
                                &mut deferred,
                                now,
                            )
                            .await?
                            .pop()
                            .flatten();
                            deferred.flush(db, &mut tx, project, now).await?;
                            acted
                        }
                        None => None,
                    };
                    match (acted, &keyword) {
                        (Some(acted), Some(k)) => {
                            outcome.keyword_id = Some(k.id);
                            outcome.session_id = acted.session_id;
                            case_pk = acted.case_pk;
                            wake |= acted.queued > 0;
                        }
                        _ => {
                            let queued = crate::keywords::default_reply(
                                db,
                                &mut tx,
                                project,
                                &message,
                                message.case_pk,
                                now,
                            )
                            .await?;
                            wake |= queued > 0;
                        }
                    }
                }
            }
        }
        if let Some(keyword_id) = outcome.keyword_id {
            let mark = (message.id, case_pk, None, Some(keyword_id));
            db.mark_inbound_handled_many(&mut tx, &[mark], now).await?;
        } else {
            Db::mark_inbound_handled(&mut tx, message.id, case_pk, outcome.session_id, now).await?;
        }
        if outcome.session_id.is_some() && outcome.keyword_id.is_none() {
            // A test's kill -9 lands here: everything written, nothing committed.
            faults.survey_reply().await;
        }
        tx.commit().await?;
        handled.push(outcome);
        if !more {
            break;
        }
    }
    if wake {
        db.wake_dispatchers();
    }
    Ok(handled)
}

/// How long an inbound message may wait unhandled before a worker's sweep handles it (the
/// process that stored it normally handles it at once).
pub const UNHANDLED_AFTER_MS: i64 = 5_000;

/// Handles the inbound messages that were stored more than [`UNHANDLED_AFTER_MS`] ago and
/// are still not handled (the process that stored them died first); returns how many.
pub async fn handle_unhandled(db: &Db, clock: &dyn Clock) -> StoreResult<usize> {
    handle_unhandled_with_faults(db, clock, &Faults::none()).await
}

/// [`handle_unhandled`], holding at the fault point `survey-reply=N` (the worker's sweep, which
/// a test can make hold: see `crate::faults`).
pub async fn handle_unhandled_with_faults(
    db: &Db,
    clock: &dyn Clock,
    faults: &Faults,
) -> StoreResult<usize> {
    let before = clock.now_ms() - UNHANDLED_AFTER_MS;
    let numbers = db.numbers_with_unhandled(before, 100).await?;
    let mut done = 0;
    for (project_id, phone) in numbers {
        let project = db.project_by_id(project_id).await?;
        // One number's failure (logged) does not hold up the others'.
        match handle_number_with_faults(db, clock, faults, &project, &phone).await {
            Ok(handled) => done += handled.len(),
            Err(e) => tracing::error!(
                project.id = project_id,
                error = %e,
                "handling a number's waiting inbound messages failed"
            ),
        }
    }
    Ok(done)
}

/// What gateways send is stored as text: no NUL (PostgreSQL refuses it) and no other control
/// characters but line breaks and tabs; every field cut to a sane length.
fn clean(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        .take(max)
        .collect()
}

/// Records an inbound message from `gateway` and acts on it (see the module's description),
/// returning once it is stored and handled. A message the gateway delivers again (same gateway
/// message id) is recorded once.
///
/// Messages that arrive while this process is storing others wait and are then taken together,
/// as one batch (at most [`MAX_BATCH`]): stored in one transaction, then handled in another,
/// with one statement per table for the whole batch (see [`handle_numbers`]). One caller at a
/// time leads: it takes what is waiting, runs it in a task of its own (so that a caller whose
/// client hangs up does not abandon the others' messages) and answers every caller of the
/// batch. A batch that fails is done again message by message, each with its own error.
pub async fn handle_inbound(
    db: &Db,
    clock: &dyn Clock,
    gateway: &Gateway,
    sms: &InboundSms,
) -> StoreResult<InboundOutcome> {
    let batcher = db.local::<Batcher>();
    let now = clock.now_ms();
    let (reply, mut answer) = tokio::sync::oneshot::channel();
    batcher.push(Pending {
        gateway: gateway.clone(),
        sms: sms.clone(),
        now,
        reply,
    });
    loop {
        tokio::select! {
            biased;
            outcome = &mut answer => {
                return match outcome {
                    Ok(outcome) => outcome,
                    // Its batch's task died (a panic, logged by the runtime) before answering:
                    // done again on its own, where a failure is this message's alone.
                    Err(_) => handle_one(db, gateway, sms, now).await,
                };
            }
            lead = batcher.leader.lock() => {
                // Leads until its own message is done (the next caller waiting takes over, so
                // that no caller leads for ever while others keep coming).
                while let Some(batch) = batcher.take() {
                    let n = batch.len();
                    let task = tokio::spawn(process_batch(db.clone(), batch));
                    if let Err(e) = task.await {
                        tracing::error!(error = %e, "a batch of inbound messages stopped");
                    }
                    let stored = batcher.stored.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
                    if stored >= REFRESH_EVERY {
                        batcher.stored.store(0, std::sync::atomic::Ordering::Relaxed);
                        // Beside the batches, not in their way (an analyse takes a while).
                        let db = db.clone();
                        tokio::spawn(async move {
                            db.refresh_statistics("messages", stored).await;
                            db.refresh_statistics("cases", stored).await;
                        });
                    }
                    match answer.try_recv() {
                        Ok(outcome) => return outcome,
                        Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
                        Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                            drop(lead);
                            return handle_one(db, gateway, sms, now).await;
                        }
                    }
                }
                drop(lead);
            }
        }
    }
}

/// Most inbound messages stored and handled together.
pub const MAX_BATCH: usize = 200;

/// An inbound message waiting for its batch, and where its outcome goes.
struct Pending {
    gateway: Gateway,
    sms: InboundSms,
    now: i64,
    reply: tokio::sync::oneshot::Sender<StoreResult<InboundOutcome>>,
}

/// This process's inbound messages waiting to be stored, per database ([`Db::local`]).
#[derive(Default)]
struct Batcher {
    pending: std::sync::Mutex<Vec<Pending>>,
    /// Held by the caller that runs the batches.
    leader: tokio::sync::Mutex<()>,
    /// Inbound messages this process stored since it last refreshed the planner's statistics.
    stored: std::sync::atomic::AtomicUsize,
}

/// Inbound messages stored by a process between two refreshes of the planner's statistics of
/// `messages` and `cases`: a burst of replies or keywords (each may make a case) changes them
/// faster than PostgreSQL's automatic analyse follows, and plans made for the tables' old
/// size read whole projects (see `Db::refresh_statistics`).
const REFRESH_EVERY: usize = 10_000;

impl Batcher {
    fn push(&self, pending: Pending) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(pending);
    }

    /// The next batch: the oldest waiting messages, at most [`MAX_BATCH`].
    fn take(&self) -> Option<Vec<Pending>> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.is_empty() {
            return None;
        }
        let n = pending.len().min(MAX_BATCH);
        Some(pending.drain(..n).collect())
    }
}

/// A message ready to store: its sender's number as stored, its text cleaned.
struct Prepared {
    phone: String,
    text: String,
    gateway_message_id: Option<String>,
}

fn prepare(project: &Project, sms: &InboundSms) -> Prepared {
    let number = PhoneNumber::parse(&sms.from, project.country_code().as_ref()).ok();
    let phone = number
        .as_ref()
        .map(|n| n.as_str().to_string())
        .unwrap_or_else(|| sms.from.chars().take(64).collect());
    let mut text = clean(&sms.text, MAX_INBOUND_CHARS);
    if sms.text.chars().count() > MAX_INBOUND_CHARS {
        text.push_str(" […]");
    }
    Prepared {
        phone: clean(&phone, 64),
        text,
        gateway_message_id: sms.gateway_message_id.as_deref().map(|id| clean(id, 128)),
    }
}

/// Stores and handles one batch, answering each of its callers.
async fn process_batch(db: Db, batch: Vec<Pending>) {
    let mut by_project: std::collections::BTreeMap<i64, Vec<Pending>> = Default::default();
    for p in batch {
        by_project.entry(p.gateway.project_id).or_default().push(p);
    }
    for (project_id, items) in by_project {
        let project = match db.project_by_id(project_id).await {
            Ok(project) => project,
            Err(e) => {
                tracing::warn!(project.id = project_id, error = %e, "reading a batch's project failed; storing its messages one by one");
                one_by_one(&db, items).await;
                continue;
            }
        };
        let prepared: Vec<Prepared> = items.iter().map(|p| prepare(&project, &p.sms)).collect();
        let stored = match store_batch(&db, &project, &items, &prepared).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(project.id = project_id, error = %e, "storing a batch of inbound messages failed; storing them one by one");
                one_by_one(&db, items).await;
                continue;
            }
        };
        let mut phones: Vec<&str> = prepared.iter().map(|p| p.phone.as_str()).collect();
        phones.sort_unstable();
        phones.dedup();
        let now = items.iter().map(|p| p.now).max().unwrap_or_default();
        let handled = handle_numbers(&db, &project, &phones, now).await;
        let ids: Vec<i64> = stored.iter().map(|(id, _)| *id).collect();
        let messages = match db.messages_by_ids(project.id, &ids).await {
            Ok(messages) => messages,
            Err(e) => {
                for p in items {
                    let _ = p.reply.send(Err(StoreError::internal(format!(
                        "reading back stored inbound messages failed: {e}"
                    ))));
                }
                continue;
            }
        };
        let messages: std::collections::HashMap<i64, Message> =
            messages.into_iter().map(|m| (m.id, m)).collect();
        for (p, (id, recorded)) in items.into_iter().zip(stored) {
            let ours = handled
                .iter()
                .find(|h| h.message_id == id)
                .filter(|_| recorded);
            let outcome = messages
                .get(&id)
                .cloned()
                .ok_or(StoreError::NotFound("message"))
                .map(|message| InboundOutcome {
                    message,
                    intent: ours.and_then(|h| h.intent),
                    session_id: ours.and_then(|h| h.session_id),
                    recorded,
                });
            let _ = p.reply.send(outcome);
        }
    }
}

/// Stores and handles a batch's messages one at a time (a batch that failed).
async fn one_by_one(db: &Db, items: Vec<Pending>) {
    for p in items {
        let outcome = handle_one(db, &p.gateway, &p.sms, p.now).await;
        let _ = p.reply.send(outcome);
    }
}

/// Stores a batch's messages in one transaction, under their numbers' locks (so that a number's
/// ids follow the order in which its messages were stored, in every process): each is
/// `(message id, whether it was stored now)`, in the batch's order; a message delivered again
/// (its gateway message id already stored, or twice in the batch) is the one stored first.
/// (Seen ones are not looked up beforehand in one statement: with the table's statistics
/// behind a burst of replies, PostgreSQL read every inbound message of the gateway for it.)
async fn store_batch(
    db: &Db,
    project: &Project,
    items: &[Pending],
    prepared: &[Prepared],
) -> StoreResult<Vec<(i64, bool)>> {
    let mut phones: Vec<&str> = prepared.iter().map(|p| p.phone.as_str()).collect();
    phones.sort_unstable();
    phones.dedup();
    let mut tx = db.begin_write().await?;
    db.lock_numbers(&mut tx, project.id, &phones).await?;
    let cases = db.cases_for_phones(&mut tx, project.id, &phones).await?;
    let news: Vec<NewInbound> = items
        .iter()
        .zip(prepared)
        .map(|(item, p)| NewInbound {
            project_id: project.id,
            case_pk: cases.get(&p.phone).copied(),
            phone: &p.phone,
            text: &p.text,
            gateway_id: item.gateway.id,
            gateway_message_id: p.gateway_message_id.as_deref(),
            now: item.now,
        })
        .collect();
    let inserted = db.insert_inbound_many(&mut tx, &news).await?;
    let mut stored = Vec::with_capacity(items.len());
    for (new, inserted) in news.iter().zip(inserted) {
        match (inserted, new.gateway_message_id) {
            (Some(id), _) => stored.push((id, true)),
            // Its gateway message id is stored already (before, or earlier in this batch).
            (None, Some(gid)) => {
                let id = Db::inbound_seen(&mut tx, new.gateway_id, gid)
                    .await?
                    .ok_or(StoreError::NotFound("message"))?;
                stored.push((id, false));
            }
            (None, None) => {
                return Err(StoreError::internal(
                    "an inbound message without a gateway message id was refused",
                ))
            }
        }
    }
    tx.commit().await?;
    Ok(stored)
}

/// Handles the waiting inbound messages of these numbers of `project`; returns what each did.
/// The numbers whose only waiting message answers a survey session, or is for no session, are
/// handled together in one transaction under all their locks, with one statement per table
/// ([`reply_batch`]); the others (a stop or start keyword, several messages waiting) and, if
/// that transaction fails, all of them, are handled number by number ([`handle_number`]). A
/// failure is logged: the messages stay stored, for the sweep.
pub async fn handle_numbers(db: &Db, project: &Project, phones: &[&str], now: i64) -> Vec<Handled> {
    let (mut handled, rest) = match reply_batch(db, project, phones, now).await {
        Ok(done) => done,
        Err(e) => {
            tracing::warn!(project.id = project.id, error = %e, "handling a batch of inbound messages failed; handling them number by number");
            (Vec::new(), phones.iter().map(|p| p.to_string()).collect())
        }
    };
    let clock = Fixed(now);
    for phone in rest {
        match handle_number(db, &clock, project, &phone).await {
            Ok(more) => handled.extend(more),
            Err(e) => tracing::error!(
                project.id = project.id,
                error = %e,
                "handling an inbound message failed; a worker will try again"
            ),
        }
    }
    handled
}

/// A clock that says the instant a batch is handled at.
#[derive(Debug)]
struct Fixed(i64);

impl Clock for Fixed {
    fn now_ms(&self) -> i64 {
        self.0
    }
}

/// [`handle_numbers`]' one transaction: returns what it handled and the numbers it left for
/// [`handle_number`].
async fn reply_batch(
    db: &Db,
    project: &Project,
    phones: &[&str],
    now: i64,
) -> StoreResult<(Vec<Handled>, Vec<String>)> {
    let keywords = project.inbound_settings().keywords().unwrap_or_default();
    let default_reply = project.inbound_settings().default_reply.is_some();
    let country = project.country_code();
    let mut tx = db.begin_write().await?;
    db.lock_numbers(&mut tx, project.id, phones).await?;
    // A number with more waiting than this batch reads is left whole to `handle_number`.
    let limit = phones.len() * 2 + 1;
    let waiting = db
        .unhandled_inbound_of(&mut tx, project.id, phones, limit)
        .await?;
    if waiting.len() >= limit {
        tx.rollback().await?;
        return Ok((Vec::new(), phones.iter().map(|p| p.to_string()).collect()));
    }
    let mut count: std::collections::HashMap<&str, usize> = Default::default();
    for m in &waiting {
        *count.entry(m.phone.as_str()).or_default() += 1;
    }
    // The project's keywords among the messages' first words.
    let words: Vec<String> = waiting
        .iter()
        .filter_map(|m| casecast_core::keyword::first_word(&m.text))
        .map(|(word, _)| casecast_core::keyword::fold(word))
        .collect();
    let found = if words.is_empty() {
        Default::default()
    } else {
        db.keywords_by_words_tx(&mut tx, project.id, &words).await?
    };
    let keyword_of = |m: &Unhandled| {
        casecast_core::keyword::first_word(&m.text)
            .and_then(|(w, _)| found.get(&casecast_core::keyword::fold(w)))
    };
    let mut rest: Vec<String> = Vec::new();
    let mut replies = Vec::new();
    for m in &waiting {
        let stop_or_start = PhoneNumber::parse(&m.phone, country.as_ref()).is_ok()
            && casecast_core::opt_out::intent(&m.text, &keywords).is_some();
        if count[m.phone.as_str()] > 1 || stop_or_start {
            if !rest.contains(&m.phone) {
                rest.push(m.phone.clone());
            }
        } else {
            replies.push(m);
        }
    }
    if replies.is_empty() {
        tx.rollback().await?;
        return Ok((Vec::new(), rest));
    }
    let reply_phones: Vec<&str> = replies.iter().map(|m| m.phone.as_str()).collect();
    let mut sessions: std::collections::HashMap<String, SurveySession> = Default::default();
    for s in db
        .active_sessions_of_phones(&mut tx, project.id, &reply_phones)
        .await?
    {
        // The first of a number's is the one asked most recently: the one its reply answers.
        sessions.entry(s.phone_number.clone()).or_insert(s);
    }
    // What keywords need of their senders, read for all of them at once.
    let keyword_phones: Vec<&str> = replies
        .iter()
        .filter(|m| keyword_of(m).is_some())
        .map(|m| m.phone.as_str())
        .collect();
    let senders =
        crate::keywords::Sender::load_many(db, &mut tx, project, &keyword_phones, now).await?;
    let mut survey_ids: Vec<i64> = sessions.values().map(|s| s.survey_id).collect();
    survey_ids.sort_unstable();
    survey_ids.dedup();
    let surveys: std::collections::HashMap<i64, _> = if survey_ids.is_empty() {
        Default::default()
    } else {
        db.surveys_tx(&mut tx, project.id, &survey_ids)
            .await?
            .into_iter()
            .map(|s| (s.id, s))
            .collect()
    };
    let mut handled = Vec::with_capacity(replies.len());
    let mut marks = Vec::with_capacity(replies.len());
    let mut sends = Vec::new();
    let mut properties = Vec::new();
    let mut states = Vec::new();
    let mut woken = false;
    let mut deferred = crate::keywords::Deferred::default();
    let mut keyworded = Vec::new();
    for m in replies {
        let mut outcome = Handled {
            message_id: m.id,
            intent: None,
            session_id: None,
            keyword_id: None,
        };
        let keyword = keyword_of(m);
        match (sessions.get(&m.phone), keyword) {
            (Some(_), Some(k)) if k.keyword.override_open_survey => {
                // Cancelling the open session first is `handle_number`'s.
                rest.push(m.phone.clone());
                continue;
            }
            (Some(session), _) => {
                let survey = surveys
                    .get(&session.survey_id)
                    .ok_or(StoreError::NotFound("survey"))?;
                let planned = crate::surveys::plan(
                    &survey.survey,
                    session,
                    Event::Reply(m.text.clone()),
                    m.gateway_id,
                    now,
                )?;
                if planned.changed {
                    sends.extend(planned.sends);
                    if !planned.properties.is_empty() {
                        properties.push((session.case_pk, planned.properties));
                    }
                    states.push((session.id, planned.next, planned.write));
                }
                outcome.session_id = Some(session.id);
                marks.push((m.id, Some(session.case_pk), Some(session.id), None));
            }
            (None, Some(k)) => {
                // Acted on below, all together.
                keyworded.push((m, k));
                continue;
            }
            (None, None) if default_reply => {
                // The default reply (its limit, the opt-out) is `handle_number`'s.
                rest.push(m.phone.clone());
                continue;
            }
            (None, None) => marks.push((m.id, None, None, None)),
        }
        handled.push(outcome);
    }
    // The messages that select a keyword, acted on together (the cases they make, in one
    // statement).
    let no_sender = crate::keywords::Sender::default();
    let jobs: Vec<crate::keywords::Job> = keyworded
        .iter()
        .map(|(m, k)| crate::keywords::Job {
            message: m,
            keyword: k,
            sender: senders.get(&m.phone).unwrap_or(&no_sender),
        })
        .collect();
    let acted = crate::keywords::act(db, &mut tx, project, &jobs, &mut deferred, now).await?;
    for ((m, k), acted) in keyworded.iter().zip(acted) {
        let mut outcome = Handled {
            message_id: m.id,
            intent: None,
            session_id: None,
            keyword_id: None,
        };
        match acted {
            Some(acted) => {
                woken |= acted.queued > 0;
                outcome.keyword_id = Some(k.id);
                outcome.session_id = acted.session_id;
                marks.push((m.id, acted.case_pk, None, Some(k.id)));
            }
            None if default_reply => {
                rest.push(m.phone.clone());
                continue;
            }
            None => marks.push((m.id, None, None, None)),
        }
        handled.push(outcome);
    }
    woken |= deferred.flush(db, &mut tx, project, now).await? > 0;
    if !sends.is_empty() {
        db.queue_outbound_many(&mut tx, project, &sends).await?;
    }
    if !properties.is_empty() {
        db.set_properties_of_cases_tx(&mut tx, &properties, now)
            .await?;
    }
    if !states.is_empty() {
        let states: Vec<_> = states.iter().map(|(id, s, w)| (*id, s, *w)).collect();
        db.write_sessions(&mut tx, &states).await?;
    }
    db.mark_inbound_handled_many(&mut tx, &marks, now).await?;
    tx.commit().await?;
    if !sends.is_empty() || woken {
        db.wake_dispatchers();
    }
    Ok((handled, rest))
}

/// Stores one inbound message and handles its number's waiting messages: what a batch that
/// failed does for each of its messages.
async fn handle_one(
    db: &Db,
    gateway: &Gateway,
    sms: &InboundSms,
    now: i64,
) -> StoreResult<InboundOutcome> {
    let project = db.project_by_id(gateway.project_id).await?;
    let Prepared {
        phone,
        text,
        gateway_message_id,
    } = prepare(&project, sms);
    let seen = |id: i64| async move {
        Ok(InboundOutcome {
            message: db.message(project.id, id).await?,
            intent: None,
            session_id: None,
            recorded: false,
        })
    };
    let mut tx = db.begin_write().await?;
    // Stored under the number's lock: on PostgreSQL two processes storing replies of one number
    // at once would otherwise take ids in one order and commit in the other, and a handler
    // between the two commits would take the later reply first. Under the lock, ids follow the
    // order of commits (SQLite's write transactions are one at a time anyway).
    db.lock_number(&mut tx, project.id, &phone).await?;
    if let Some(gid) = &gateway_message_id {
        if let Some(id) = Db::inbound_seen(&mut tx, gateway.id, gid).await? {
            tx.rollback().await?;
            return seen(id).await;
        }
    }
    let case_pk = Db::case_for_phone(&mut tx, project.id, &phone).await?;
    let inserted = db
        .insert_inbound(
            &mut tx,
            &NewInbound {
                project_id: project.id,
                case_pk,
                phone: &phone,
                text: &text,
                gateway_id: gateway.id,
                gateway_message_id: gateway_message_id.as_deref(),
                now,
            },
        )
        .await?;
    let Some(id) = inserted else {
        // Two deliveries of one message at the same instant: the unique index let one in.
        tx.rollback().await?;
        let gid = gateway_message_id.as_deref().unwrap_or_default();
        let mut tx = db.begin_write().await?;
        let id = Db::inbound_seen(&mut tx, gateway.id, gid).await?;
        tx.rollback().await?;
        return seen(id.ok_or(StoreError::NotFound("message"))?).await;
    };
    tx.commit().await?;
    // Stored: from here a process that dies leaves it to a worker's sweep
    // ([`handle_unhandled`]). Handled now, with any earlier message of the number still waiting.
    // A failure to handle it is logged, not answered as a failure: the message is stored (a
    // gateway that retried would store it twice) and the sweep handles it later.
    let handled = match handle_number(db, &Fixed(now), &project, &phone).await {
        Ok(handled) => handled,
        Err(e) => {
            tracing::error!(
                project.id = project.id,
                message.id = id,
                error = %e,
                "handling an inbound message failed; a worker will try again"
            );
            Vec::new()
        }
    };
    let ours = handled.into_iter().find(|h| h.message_id == id);
    let (intent, session_id) = ours.map_or((None, None), |h| (h.intent, h.session_id));
    Ok(InboundOutcome {
        message: db.message(project.id, id).await?,
        intent,
        session_id,
        recorded: true,
    })
}
