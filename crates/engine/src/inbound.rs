//! The inbound router: what happens to an SMS a gateway delivers. It becomes a row first, in
//! its own transaction (nothing is lost if the process dies) under the number's lock (so that
//! its id follows the order in which the number's messages were stored), matched to the case
//! with that number; then it is handled with the number's other waiting messages, one at a time in
//! arrival order under the number's lock ([`handle_number`]): stop/start keywords (the opt-out
//! list changes, queued messages are cancelled, a stop ends the number's survey sessions, one
//! confirmation is queued through the same gateway); else the reply to the number's active
//! survey session (`crate::surveys`); otherwise it is only logged on the case. A message whose
//! process died before handling it is handled by a worker's sweep ([`handle_unhandled`]).
//! Keywords (a later issue) add their step here.

use casecast_core::opt_out::Intent;
use casecast_core::states::MessageKind;
use casecast_core::PhoneNumber;
use casecast_gateways::InboundSms;
use casecast_store::gateways::Gateway;
use casecast_store::messages::{Message, NewInbound, NewOutbound, MAX_INBOUND_CHARS};
use casecast_store::projects::Project;
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
    /// The survey session it answered (or, with a stop keyword, none).
    pub session_id: Option<i64>,
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
                            },
                        )
                        .await?;
                        wake = true;
                    }
                }
                outcome.intent = Some((asked, changed));
            }
            _ => {
                if let Some((session, done)) = crate::surveys::answer(
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
                }
            }
        }
        Db::mark_inbound_handled(&mut tx, message.id, case_pk, outcome.session_id, now).await?;
        if outcome.session_id.is_some() {
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

/// Records an inbound message from `gateway` and acts on it (see the module's description).
/// A message the gateway delivers again (same gateway message id) is recorded once.
pub async fn handle_inbound(
    db: &Db,
    clock: &dyn Clock,
    gateway: &Gateway,
    sms: &InboundSms,
) -> StoreResult<InboundOutcome> {
    let project = db.project_by_id(gateway.project_id).await?;
    let number = PhoneNumber::parse(&sms.from, project.country_code().as_ref()).ok();
    let phone = number
        .as_ref()
        .map(|n| n.as_str().to_string())
        .unwrap_or_else(|| sms.from.chars().take(64).collect());
    let mut text = clean(&sms.text, MAX_INBOUND_CHARS);
    if sms.text.chars().count() > MAX_INBOUND_CHARS {
        text.push_str(" […]");
    }
    let phone = clean(&phone, 64);
    let gateway_message_id = sms.gateway_message_id.as_deref().map(|id| clean(id, 128));
    let now = clock.now_ms();
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
    let inserted = Db::insert_inbound(
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
    let handled = match handle_number(db, clock, &project, &phone).await {
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
