//! Sending one SMS to a case (the case page's form, `POST /cases/{case_id}/messages`): the case
//! must be able to receive it, the message is routed to a gateway, and it is queued for the
//! dispatcher in one transaction that re-checks the gateway and the opt-out list.

use casecast_core::case::FieldError;
use casecast_core::states::MessageKind;
use casecast_core::PhoneNumber;
use casecast_store::messages::{check_text, Message, NewOutbound};
use casecast_store::projects::Project;
use casecast_store::{Db, StoreError, StoreResult, Tx};

pub(crate) fn conflict(code: &'static str, message: &str) -> StoreError {
    StoreError::Conflict {
        code,
        message: message.into(),
    }
}

/// A case that can be sent a message: its row id, its number, and the gateway that takes it.
pub(crate) struct Reachable {
    pub(crate) case_pk: i64,
    pub(crate) phone: String,
    pub(crate) gateway_id: i64,
}

/// The live case with this case ID, if it can be sent a message now, routed through
/// `gateway_id` or the gateway its number routes to; else why not (not found, closed, no
/// number, no such gateway, no gateway).
pub(crate) async fn reachable_case(
    db: &Db,
    project: &Project,
    case_id: &str,
    gateway_id: Option<i64>,
) -> StoreResult<Reachable> {
    let case = db
        .case_recipient(project.id, case_id)
        .await?
        .filter(|c| !c.deleted)
        .ok_or(StoreError::NotFound("case"))?;
    if case.closed {
        return Err(conflict(
            "case_closed",
            "the case is closed: closed cases receive no messages",
        ));
    }
    let Some(phone) = case.phone else {
        return Err(conflict("no_phone_number", "the case has no phone number"));
    };
    let router = (db.router_for(project.id, gateway_id).await?)
        .ok_or_else(|| FieldError::new("gateway_id", "no such gateway in this project"))?;
    let gateway_id = router.route(&phone).ok_or_else(|| {
        conflict(
            "no_gateway",
            "no SMS gateway is set up: an admin can add one under Messaging → Gateways",
        )
    })?;
    Ok(Reachable {
        case_pk: case.case_pk,
        phone,
        gateway_id,
    })
}

/// Checks again, inside the transaction that queues the message, what may have changed since
/// [`reachable_case`]: the gateway deleted, the number opted out.
pub(crate) async fn still_reachable(
    db: &Db,
    tx: &mut Tx,
    project: &Project,
    to: &Reachable,
) -> StoreResult<()> {
    // Deleted a moment ago (its queue already cancelled)?
    if !Db::gateway_is_live(tx, project.id, to.gateway_id).await? {
        return Err(conflict(
            "no_gateway",
            "the gateway was just deleted: try again",
        ));
    }
    if db.is_opted_out_tx(tx, project.id, &to.phone).await? {
        return Err(conflict(
            "opted_out",
            "this phone number has opted out: it is sent nothing until it texts a start keyword",
        ));
    }
    Ok(())
}

/// Sends one SMS to a case, through `gateway_id` or the gateway its number routes to.
pub async fn send_to_case(
    db: &Db,
    project: &Project,
    case_id: &str,
    text: &str,
    user_id: Option<i64>,
    gateway_id: Option<i64>,
) -> StoreResult<Message> {
    check_text(text)?;
    let to = reachable_case(db, project, case_id, gateway_id).await?;
    let mut tx = db.begin_write().await?;
    still_reachable(db, &mut tx, project, &to).await?;
    let id = Db::queue_outbound(
        &mut tx,
        project,
        &NewOutbound {
            case_pk: Some(to.case_pk),
            phone: PhoneNumber::from_stored(to.phone),
            text: text.to_string(),
            gateway_id: to.gateway_id,
            user_id,
            kind: MessageKind::Normal,
            survey: None,
            reply_to: None,
            reminder_id: None,
        },
    )
    .await?;
    tx.commit().await?;
    db.wake_dispatchers();
    db.message(project.id, id).await
}
