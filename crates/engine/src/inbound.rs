//! The inbound router: what happens to an SMS a gateway delivers. It becomes a row first
//! (nothing is lost if the process dies), matched to the case with that number; then the router
//! decides, in order: stop/start keywords (the opt-out list changes, queued messages are
//! cancelled, one confirmation is queued through the same gateway); otherwise the message is
//! only logged on the case. Surveys and keywords (later issues) add their steps here.

use casecast_core::opt_out::Intent;
use casecast_core::states::MessageKind;
use casecast_core::PhoneNumber;
use casecast_gateways::InboundSms;
use casecast_store::gateways::Gateway;
use casecast_store::messages::{Message, NewInbound, NewOutbound, MAX_INBOUND_CHARS};
use casecast_store::{Db, StoreError, StoreResult};

use crate::clock::Clock;

/// What happened to an inbound message.
#[derive(Clone, Debug)]
pub struct InboundOutcome {
    pub message: Message,
    /// The opt-out or opt-in it asked for, and whether that changed the list (a second STOP
    /// changes nothing and gets no second confirmation).
    pub intent: Option<(Intent, bool)>,
    /// False when the gateway delivered the same message twice (nothing recorded again).
    pub recorded: bool,
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
            recorded: false,
        })
    };
    let mut tx = db.begin_write().await?;
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
    let mut intent = None;
    let messaging = project.inbound_settings();
    if let Some(number) = &number {
        // Stored settings are checked as they are read: their keywords are usable.
        let keywords = messaging.keywords().unwrap_or_default();
        if let Some(asked) = casecast_core::opt_out::intent(&text, &keywords) {
            let (changed, reply) = match asked {
                Intent::OptOut => (
                    db.opt_out_tx(&mut tx, project.id, number.as_str(), "keyword")
                        .await?,
                    &messaging.opt_out_reply,
                ),
                Intent::OptIn => (
                    db.opt_in_tx(&mut tx, project.id, number.as_str()).await?,
                    &messaging.opt_in_reply,
                ),
            };
            // A keyword that changes nothing (a second STOP) gets no second confirmation.
            if changed {
                Db::queue_outbound(
                    &mut tx,
                    &project,
                    &NewOutbound {
                        case_pk,
                        phone: number.clone(),
                        text: reply.clone(),
                        gateway_id: gateway.id,
                        user_id: None,
                        kind: MessageKind::Confirmation,
                        survey: None,
                    },
                )
                .await?;
            }
            intent = Some((asked, changed));
        }
    }
    tx.commit().await?;
    if intent.is_some_and(|(_, changed)| changed) {
        db.wake_dispatchers();
    }
    Ok(InboundOutcome {
        message: db.message(project.id, id).await?,
        intent,
        recorded: true,
    })
}
