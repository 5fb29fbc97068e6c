//! Survey sessions' workflow: starting a survey for a case, a reply from the respondent's number,
//! a reminder or expiry that falls due, and a stop keyword. Each goes through the core's step
//! function (`casecast_core::survey::session::step`) and carries out its actions in one
//! transaction that holds the number's lock (`Db::lock_number`): the answer saved, the case
//! property set, the next question queued and the state written commit together or not at all,
//! and no two processes advance one number's sessions at once.
//!
//! Rules (see also the core's):
//! - A case has at most one active session per project: starting a survey for it ends the old
//!   one as `cancelled`, saying why.
//! - A reply from a number goes to the active session of that number asked most recently (two
//!   cases sharing a phone: the one whose question went out last); the other session is not
//!   answered by it and runs on to its own reminders and expiry.
//! - A case closed or deleted mid-survey ends its session as `cancelled` at its next reply or
//!   reminder (saying why), and is sent nothing more; its expiry still ends it as `expired`.
//! - Timers count from when the dispatcher is done with the session's latest message (sent,
//!   failed or expired), so quiet hours and a gateway's rate limit delay them; a timer fires only
//!   at the step that set it (every transition clears the due times).

use casecast_core::case::FieldError;
use casecast_core::states::MessageKind;
use casecast_core::survey::session::{self, property_text, Action, Event, SessionState};
use casecast_core::survey::Survey;
use casecast_core::PhoneNumber;
use casecast_store::messages::NewOutbound;
use casecast_store::projects::Project;
use casecast_store::survey_sessions::{NewSession, SessionWrite, SurveySession, Timers};
use casecast_store::surveys::StoredSurvey;
use casecast_store::{Db, StoreError, StoreResult, Tx};

use crate::clock::Clock;
use crate::send::{reachable_case, still_reachable, Reachable};

/// Due sessions handled per call of [`fire_due_timers`].
pub const TIMERS_PER_ROUND: i64 = 500;

/// Where and when a transition happens: the database, the session's project, now.
#[derive(Clone, Copy)]
pub(crate) struct At<'a> {
    pub db: &'a Db,
    pub project: &'a Project,
    pub now: i64,
}

/// What one transition did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transition {
    /// Messages it queued.
    pub queued: usize,
    /// Whether the state changed (an ignored event changes nothing).
    pub changed: bool,
}

/// What a transition is to write: computed by [`plan`] without touching the database, carried
/// out by [`transition`] (one session) or by the inbound router's batch (many at once).
#[derive(Clone, Debug)]
pub(crate) struct Planned {
    /// The session's state after it.
    pub next: SessionState,
    /// Messages to queue, in order.
    pub sends: Vec<NewOutbound>,
    /// Case properties the answers set, in order.
    pub properties: Vec<(String, String)>,
    /// What to write beside the state.
    pub write: SessionWrite,
    /// Whether anything changes (an ignored event changes nothing).
    pub changed: bool,
}

/// Runs `event` on `session` (whose survey is `survey`) through the core's step function and
/// says what to write: messages through `gateway_id` (else the session's gateway), answers to
/// the case's properties, the state and timers.
pub(crate) fn plan(
    survey: &Survey,
    session: &SurveySession,
    event: Event,
    gateway_id: Option<i64>,
    now: i64,
) -> StoreResult<Planned> {
    // A case closed or deleted mid-survey is sent nothing more: whatever comes, it ends.
    let event = match event {
        Event::Reply(_) | Event::ReminderDue { .. } if session.case_deleted => {
            Event::Cancel("the case was deleted".into())
        }
        Event::Reply(_) | Event::ReminderDue { .. } if session.case_closed => {
            Event::Cancel("the case was closed".into())
        }
        other => other,
    };
    let language = session.language_code.as_deref();
    let (next, actions) = session::step(survey, language, &session.state, event);
    let changed = !(next == session.state && actions.is_empty());
    let mut planned = Planned {
        next,
        sends: Vec::new(),
        properties: Vec::new(),
        write: SessionWrite {
            now,
            ..SessionWrite::default()
        },
        changed,
    };
    if !changed {
        return Ok(planned);
    }
    let step = i64::try_from(planned.next.step).unwrap_or(i64::MAX);
    for action in actions {
        match action {
            Action::Send(text) => {
                let Some(gateway) = gateway_id.or(session.gateway_id) else {
                    return Err(StoreError::internal("a survey session without a gateway"));
                };
                planned.sends.push(NewOutbound {
                    case_pk: Some(session.case_pk),
                    phone: PhoneNumber::from_stored(session.phone_number.clone()),
                    text,
                    gateway_id: gateway,
                    user_id: None,
                    kind: MessageKind::Normal,
                    survey: Some((session.id, step)),
                    reply_to: None,
                    reminder_id: None,
                });
                planned.write.asked_at = Some(now);
                planned.write.gateway_id = Some(gateway);
            }
            Action::SaveAnswer {
                value,
                case_property: Some(property),
                ..
            } => planned.properties.push((property, property_text(&value))),
            Action::SaveAnswer { .. } | Action::End { .. } => {}
            Action::SetTimers {
                reminder_in,
                expiry_in,
                ..
            } => {
                planned.write.timers = Some(Timers {
                    reminder_in_ms: reminder_in.map(|d| d.as_millis() as i64),
                    expiry_in_ms: expiry_in.as_millis() as i64,
                });
            }
        }
    }
    Ok(planned)
}

/// Runs `event` on `session` (whose survey is `survey`) and carries out what [`plan`] says in
/// `tx`.
pub(crate) async fn transition(
    at: &At<'_>,
    tx: &mut Tx,
    survey: &Survey,
    session: &SurveySession,
    event: Event,
    gateway_id: Option<i64>,
) -> StoreResult<Transition> {
    let At { db, project, now } = *at;
    let planned = plan(survey, session, event, gateway_id, now)?;
    if !planned.changed {
        return Ok(Transition::default());
    }
    for send in &planned.sends {
        Db::queue_outbound(tx, project, send).await?;
    }
    if !planned.properties.is_empty() {
        db.set_case_properties_tx(tx, session.case_pk, &planned.properties, now)
            .await?;
    }
    Db::write_session(tx, session.id, &planned.next, &planned.write).await?;
    Ok(Transition {
        queued: planned.sends.len(),
        changed: true,
    })
}

/// Starts survey `survey_id` for one case now: the case must be able to receive messages; its
/// active session (of any survey) ends as `cancelled`; the intro and first question are queued.
pub async fn start_for_case(
    db: &Db,
    clock: &dyn Clock,
    project: &Project,
    survey_id: i64,
    case_id: &str,
    user_id: Option<i64>,
) -> StoreResult<SurveySession> {
    // Checked first, so that an unknown survey is named before anything about the case; read
    // again inside the transaction below.
    if let Err(StoreError::NotFound(_)) = db.survey(project.id, survey_id).await {
        return Err(FieldError::new("survey_id", "no such survey in this project").into());
    }
    let to = reachable_case(db, project, case_id, None).await?;
    let language = db.get_case(project.id, case_id).await?.language_code;
    let now = clock.now_ms();
    let mut tx = db.begin_write().await?;
    // Read inside the transaction (share-locked on PostgreSQL): a change of its questions waits
    // for this session and then counts it as active.
    let stored = match db.survey_tx(&mut tx, project.id, survey_id).await {
        Err(StoreError::NotFound(_)) => {
            return Err(FieldError::new("survey_id", "no such survey in this project").into())
        }
        other => other?,
    };
    db.lock_number(&mut tx, project.id, &to.phone).await?;
    let id = start_in_tx(
        db,
        &mut tx,
        project,
        &stored,
        &to,
        language.as_deref(),
        user_id,
        now,
    )
    .await?;
    tx.commit().await?;
    db.wake_dispatchers();
    db.survey_session(project.id, id).await
}

/// Starts `stored` for the case `to` inside `tx`, which holds the case's number lock (a start
/// from the case page, or a keyword's action): the gateway must still be live and the number
/// not opted out; the case's active session (of any survey) ends as `cancelled`; the intro and
/// first question are queued. Returns the new session's id.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn start_in_tx(
    db: &Db,
    tx: &mut Tx,
    project: &Project,
    stored: &StoredSurvey,
    to: &Reachable,
    language: Option<&str>,
    user_id: Option<i64>,
    now: i64,
) -> StoreResult<i64> {
    still_reachable(db, tx, project, to).await?;
    let at = At { db, project, now };
    if let Some(old) = db
        .active_session_of_case(tx, project.id, to.case_pk)
        .await?
    {
        let old_survey = db.survey_tx(tx, project.id, old.survey_id).await?;
        let why = format!(
            "a new survey was started for the case ({})",
            stored.survey.name
        );
        transition(&at, tx, &old_survey.survey, &old, Event::Cancel(why), None).await?;
    }
    let id = Db::insert_session(
        tx,
        &NewSession {
            project_id: project.id,
            survey_id: stored.id,
            case_pk: to.case_pk,
            phone: &to.phone,
            language_code: language,
            gateway_id: to.gateway_id,
            occurrence_id: None,
            started_by: user_id,
            now,
        },
    )
    .await?;
    let session = db
        .survey_session_tx(tx, project.id, id)
        .await?
        .ok_or(StoreError::NotFound("survey session"))?;
    transition(
        &at,
        tx,
        &stored.survey,
        &session,
        Event::Start,
        Some(to.gateway_id),
    )
    .await?;
    Ok(id)
}

/// Ends every active session of a number as `cancelled` because it opted out (inside the
/// caller's transaction, which holds the number's lock). Returns how many ended.
pub(crate) async fn stop_sessions_of_phone(
    db: &Db,
    tx: &mut Tx,
    project: &Project,
    phone: &str,
    now: i64,
) -> StoreResult<usize> {
    end_sessions_of_phone(db, tx, project, phone, now, || Event::Stop).await
}

/// Ends every active session of a number as `cancelled` with the reason given (a keyword that
/// overrides an open survey), inside the caller's transaction, which holds the number's lock.
pub(crate) async fn cancel_sessions_of_phone(
    db: &Db,
    tx: &mut Tx,
    project: &Project,
    phone: &str,
    now: i64,
    reason: &str,
) -> StoreResult<usize> {
    end_sessions_of_phone(db, tx, project, phone, now, || {
        Event::Cancel(reason.to_string())
    })
    .await
}

async fn end_sessions_of_phone(
    db: &Db,
    tx: &mut Tx,
    project: &Project,
    phone: &str,
    now: i64,
    event: impl Fn() -> Event,
) -> StoreResult<usize> {
    let sessions = db.active_sessions_of_phone(tx, project.id, phone).await?;
    for s in &sessions {
        let survey = db.survey_tx(tx, project.id, s.survey_id).await?;
        let at = At { db, project, now };
        transition(&at, tx, &survey.survey, s, event(), None).await?;
    }
    Ok(sessions.len())
}

/// Gives an inbound text to the number's session asked most recently, if any (inside the
/// caller's transaction, which holds the number's lock). Returns the session and what the
/// reply did, or `None` when the number has no active session.
pub(crate) async fn answer(
    db: &Db,
    tx: &mut Tx,
    project: &Project,
    phone: &str,
    text: &str,
    gateway_id: Option<i64>,
    now: i64,
) -> StoreResult<Option<(SurveySession, Transition)>> {
    let Some(session) = db
        .active_sessions_of_phone(tx, project.id, phone)
        .await?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let survey = db.survey_tx(tx, project.id, session.survey_id).await?;
    let at = At { db, project, now };
    let done = transition(
        &at,
        tx,
        &survey.survey,
        &session,
        Event::Reply(text.to_string()),
        gateway_id,
    )
    .await?;
    Ok(Some((session, done)))
}

/// Fires the reminders and expiries due at the clock's now, at most [`TIMERS_PER_ROUND`];
/// returns how many changed a session. Each is re-read under its number's lock: one whose
/// session moved on since (a reply came, another process fired it) does nothing.
pub async fn fire_due_timers(db: &Db, clock: &dyn Clock) -> StoreResult<usize> {
    let now = clock.now_ms();
    let due = db.due_sessions(now, TIMERS_PER_ROUND).await?;
    let mut fired = 0;
    let mut queued = false;
    let mut projects: std::collections::HashMap<i64, Project> = Default::default();
    for d in due {
        let project = match projects.get(&d.project_id) {
            Some(p) => p.clone(),
            None => {
                let p = db.project_by_id(d.project_id).await?;
                projects.insert(d.project_id, p.clone());
                p
            }
        };
        let mut tx = db.begin_write().await?;
        db.lock_number(&mut tx, project.id, &d.phone).await?;
        let Some(session) = db.survey_session_tx(&mut tx, project.id, d.id).await? else {
            continue;
        };
        let expiry = session.expiry_due.filter(|t| *t <= now);
        let reminder = session.reminder_due.filter(|t| *t <= now);
        let step = session.state.step;
        let expiring = expiry.is_some();
        let event = match (expiry, reminder) {
            (Some(_), _) => Event::ExpiryDue { step },
            (None, Some(_)) => Event::ReminderDue { step },
            (None, None) => continue,
        };
        let survey = db.survey_tx(&mut tx, project.id, session.survey_id).await?;
        let at = At {
            db,
            project: &project,
            now,
        };
        let done = transition(&at, &mut tx, &survey.survey, &session, event, None).await?;
        if done.changed {
            fired += 1;
            queued |= done.queued > 0;
        } else {
            // A reminder the survey no longer allows (its reminders were edited): not due again.
            if expiring {
                tracing::warn!(session.id = session.id, "a due expiry changed nothing");
            }
            Db::clear_due_timers(&mut tx, session.id, expiring).await?;
        }
        tx.commit().await?;
    }
    if queued {
        db.wake_dispatchers();
    }
    Ok(fired)
}

/// The state a session starts in after `Start`, and its timers: what a fan-out writes for
/// every recipient of a survey broadcast (the same for all).
pub fn started_state(survey: &Survey) -> (SessionState, Option<Timers>) {
    let (state, actions) = session::step(survey, None, &SessionState::new(), Event::Start);
    let timers = actions.iter().find_map(|a| match a {
        Action::SetTimers {
            reminder_in,
            expiry_in,
            ..
        } => Some(Timers {
            reminder_in_ms: reminder_in.map(|d| d.as_millis() as i64),
            expiry_in_ms: expiry_in.as_millis() as i64,
        }),
        _ => None,
    });
    (state, timers)
}
