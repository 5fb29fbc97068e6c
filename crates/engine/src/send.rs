//! Sending one SMS to a case (the case page's form, `POST /cases/{case_id}/messages`): the case
//! must be able to receive it, the message is routed to a gateway, and it is queued for the
//! dispatcher in one transaction that re-checks the gateway and the opt-out list.

use casecast_core::case::FieldError;
use casecast_core::states::MessageKind;
use casecast_core::PhoneNumber;
use casecast_store::messages::{check_text, Message, NewOutbound};
use casecast_store::projects::Project;
use casecast_store::{Db, StoreError, StoreResult};

fn conflict(code: &'static str, message: &str) -> StoreError {
    StoreError::Conflict {
        code,
        message: message.into(),
    }
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
    let mut tx = db.begin_write().await?;
    // Deleted a moment ago (its queue already cancelled)?
    if !Db::gateway_is_live(&mut tx, project.id, gateway_id).await? {
        return Err(conflict(
            "no_gateway",
            "the gateway was just deleted: try again",
        ));
    }
    if db.is_opted_out_tx(&mut tx, project.id, &phone).await? {
        return Err(conflict(
            "opted_out",
            "this phone number has opted out: it is sent nothing until it texts a start keyword",
        ));
    }
    let id = Db::queue_outbound(
        &mut tx,
        project,
        &NewOutbound {
            case_pk: Some(case.case_pk),
            phone: PhoneNumber::from_stored(phone),
            text: text.to_string(),
            gateway_id,
            user_id,
            kind: MessageKind::Normal,
            survey: None,
        },
    )
    .await?;
    tx.commit().await?;
    db.wake_dispatchers();
    db.message(project.id, id).await
}
