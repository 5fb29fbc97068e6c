//! What an inbound message that selects a keyword does (issue 14), inside the inbound router's
//! transaction, which holds the sender's number lock: every action of one message commits
//! together with the message marked handled, or none does.
//!
//! Rules:
//! - The sender is the live case with the number. Several open cases with it: the keyword acts
//!   on all of them only when every action means the same for each (group actions, replies
//!   without `{case.…}`: `Keyword::acts_on_every_case`; each reply is sent once); otherwise the
//!   sender is told that the number is shared and nothing else happens (no guessing). A number
//!   whose only cases are closed gets nothing (closed cases receive no messages).
//! - A number with no case: `unknown_sender` says what happens (`ignore`: logged; `reply`: the
//!   keyword's `unknown_reply`; `create_case`: a case is made from the fields, then the actions
//!   run for it).
//! - A missing or invalid field: the sender is told what to send, and no action runs.
//! - Every automatic reply goes through the inbound message's gateway, carries the inbound
//!   message's id and the keyword's (`reply_to`, `keyword_id`), is never queued for an opted-out
//!   number, and counts toward the per-number limit (`keyword_reply_limit`, default 5 in 10
//!   minutes): beyond it the reply is skipped, the other actions still run.
//! - An action whose target is gone (a survey or group deleted since the keyword was saved) or
//!   that cannot apply (a survey to an opted-out number) is skipped and logged; the others run.

use casecast_core::case::{Case, FieldError};
use casecast_core::keyword::{match_message, reply_text, Action, Match, UnknownSender, Values};
use casecast_core::states::MessageKind;
use casecast_core::template::Content;
use casecast_core::PhoneNumber;
use casecast_store::keywords::StoredKeyword;
use casecast_store::messages::NewOutbound;
use casecast_store::projects::Project;
use casecast_store::survey_sessions::Unhandled;
use casecast_store::{Db, StoreError, StoreResult, Tx};

use crate::send::Reachable;

/// The reply to a number several open cases share, when the keyword's actions differ by case.
pub const AMBIGUOUS_REPLY: &str = "Your number belongs to more than one person in our records, \
so we could not act on your message. Please contact the program.";

/// Open cases of one number looked at (more means the number is shared anyway).
const MAX_CASES: usize = 20;

/// What a keyword did with one message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acted {
    /// The case the message was for (the first, when several), or the case it made.
    pub case_pk: Option<i64>,
    /// Messages queued (replies, a survey's first question).
    pub queued: usize,
    /// The survey session it started, if any.
    pub session_id: Option<i64>,
}

/// The automatic replies a message may still get: the number's opt-out and the reply limit.
struct Replies<'a> {
    message: &'a Unhandled,
    keyword_id: Option<i64>,
    opted_out: bool,
    sent: Vec<i64>,
    limit: casecast_core::keyword::ReplyLimit,
    now: i64,
    queued: usize,
    /// The replies to queue (with the transaction's other writes: [`Deferred::flush`]).
    out: Vec<NewOutbound>,
}

/// What a keyword needs to know of its sender, read in the router's transaction: the live
/// cases with the number, whether it opted out, and the automatic replies sent to it within
/// the reply limit's window. Read for one message ([`Sender::load`]) or for a batch's numbers at
/// once.
#[derive(Clone, Debug, Default)]
pub(crate) struct Sender {
    pub cases: Vec<(i64, Case)>,
    pub opted_out: bool,
    pub replies_sent: Vec<i64>,
}

impl Sender {
    /// The sender of one message.
    pub(crate) async fn load(
        db: &Db,
        tx: &mut Tx,
        project: &Project,
        phone: &str,
        now: i64,
    ) -> StoreResult<Sender> {
        let mut senders = Sender::load_many(db, tx, project, &[phone], now).await?;
        Ok(senders.remove(phone).unwrap_or_default())
    }

    /// The senders of many numbers, in three statements; each number's cases open ones first,
    /// then the one changed last, at most [`MAX_CASES`] (more means the number is shared anyway).
    pub(crate) async fn load_many(
        db: &Db,
        tx: &mut Tx,
        project: &Project,
        phones: &[&str],
        now: i64,
    ) -> StoreResult<std::collections::HashMap<String, Sender>> {
        if phones.is_empty() {
            return Ok(Default::default());
        }
        let since = reply_limit(project).window_start(now);
        let mut cases = db.cases_of_phones_tx(tx, project.id, phones).await?;
        let opted_out = db.opted_out_of_tx(tx, project.id, phones).await?;
        let mut sent = db.auto_replies_of_tx(tx, project.id, phones, since).await?;
        Ok(phones
            .iter()
            .map(|phone| {
                let mut cases = cases.remove(*phone).unwrap_or_default();
                cases.truncate(MAX_CASES);
                let sender = Sender {
                    cases,
                    opted_out: opted_out.contains(*phone),
                    replies_sent: sent.remove(*phone).unwrap_or_default(),
                };
                (phone.to_string(), sender)
            })
            .collect())
    }
}

/// The project's per-number limit of automatic replies.
pub(crate) fn reply_limit(project: &Project) -> casecast_core::keyword::ReplyLimit {
    project.inbound_settings().reply_limit().unwrap_or_default()
}

impl<'a> Replies<'a> {
    fn new(
        project: &Project,
        message: &'a Unhandled,
        keyword_id: Option<i64>,
        sender: &Sender,
        now: i64,
    ) -> Replies<'a> {
        Replies {
            message,
            keyword_id,
            opted_out: sender.opted_out,
            sent: sender.replies_sent.clone(),
            limit: reply_limit(project),
            now,
            queued: 0,
            out: Vec::new(),
        }
    }

    /// Queues `text` to the sender, unless the number opted out, the limit is reached, the
    /// message came through no gateway, or the text is empty.
    fn send(&mut self, case_pk: Option<i64>, text: String) {
        let Some(gateway_id) = self.message.gateway_id else {
            return;
        };
        if self.opted_out || text.trim().is_empty() {
            return;
        }
        if !self.limit.allows(self.sent.iter().copied(), self.now) {
            tracing::info!(
                message.id = self.message.id,
                "automatic reply skipped: the number reached the reply limit"
            );
            return;
        }
        self.out.push(NewOutbound {
            case_pk,
            phone: PhoneNumber::from_stored(self.message.phone.clone()),
            text,
            gateway_id,
            user_id: None,
            kind: MessageKind::Normal,
            survey: None,
            reply_to: Some((self.message.id, self.keyword_id)),
            reminder_id: None,
        });
        self.sent.push(self.now);
        self.queued += 1;
    }
}

/// Writes keywords' actions leave to the end of the transaction, to be made for many messages
/// at once: replies queued in one statement, group changes in one statement per group and
/// table. [`Deferred::flush`] before the transaction commits.
#[derive(Default)]
pub(crate) struct Deferred {
    sends: Vec<NewOutbound>,
    /// (group, add) → the cases (row id, case ID).
    groups: std::collections::BTreeMap<(i64, bool), Vec<(i64, String)>>,
}

impl Deferred {
    /// Makes the writes; returns how many messages it queued.
    pub(crate) async fn flush(
        self,
        db: &Db,
        tx: &mut Tx,
        project: &Project,
        now: i64,
    ) -> StoreResult<usize> {
        for ((group_id, add), cases) in &self.groups {
            match db
                .change_memberships_tx(tx, project.id, *group_id, cases, *add, now)
                .await
            {
                Ok(_) => {}
                Err(StoreError::NotFound(_)) => tracing::warn!(
                    case_group.id = group_id,
                    "a keyword's group no longer exists: action skipped"
                ),
                Err(StoreError::Conflict {
                    code: "smart_group",
                    ..
                }) => tracing::warn!(
                    case_group.id = group_id,
                    "a keyword's group is a smart group (its members follow its query): action skipped"
                ),
                Err(e) => return Err(e),
            }
        }
        if !self.sends.is_empty() {
            db.queue_outbound_many(tx, project, &self.sends).await?;
        }
        Ok(self.sends.len())
    }
}

/// A message that selects a keyword, and what the keyword knows of its sender.
pub(crate) struct Job<'a> {
    pub message: &'a Unhandled,
    pub keyword: &'a StoredKeyword,
    pub sender: &'a Sender,
}

/// Runs each job's keyword actions for its message (see the module's rules), in the order
/// given; `None` for a message that does not select its keyword after all (its first word is
/// glued to more text). The cases unknown senders make are made first, in one statement for
/// all the jobs; the replies and group changes go to `deferred`.
pub(crate) async fn act(
    db: &Db,
    tx: &mut Tx,
    project: &Project,
    jobs: &[Job<'_>],
    deferred: &mut Deferred,
    now: i64,
) -> StoreResult<Vec<Option<Acted>>> {
    let matched: Vec<Option<Match>> = jobs
        .iter()
        .map(|j| match_message(&j.message.text, std::iter::once(&j.keyword.keyword)))
        .collect();
    // The cases to make: senders of no case whose fields a `create_case` keyword accepts.
    let mut making: Vec<usize> = Vec::new();
    let mut changes = Vec::new();
    for (i, (job, matched)) in jobs.iter().zip(&matched).enumerate() {
        let keyword = &job.keyword.keyword;
        if let (true, UnknownSender::CreateCase, Some(Match::Matched { values, .. })) =
            (job.sender.cases.is_empty(), keyword.unknown_sender, matched)
        {
            let phone = PhoneNumber::from_stored(job.message.phone.clone());
            making.push(i);
            changes.push(keyword.new_case(values, &phone));
        }
    }
    let mut made: std::collections::HashMap<usize, Result<(i64, Case), FieldError>> =
        if changes.is_empty() {
            Default::default()
        } else {
            making
                .into_iter()
                .zip(db.create_cases_tx(tx, project.id, &changes, now).await?)
                .collect()
        };
    let mut acted = Vec::with_capacity(jobs.len());
    for (i, (job, matched)) in jobs.iter().zip(matched).enumerate() {
        let Some(matched) = matched else {
            acted.push(None);
            continue;
        };
        let mut replies = Replies::new(project, job.message, Some(job.keyword.id), job.sender, now);
        let done = act_with(
            db,
            tx,
            project,
            job,
            matched,
            made.remove(&i),
            &mut replies,
            deferred,
            now,
        )
        .await;
        deferred.sends.append(&mut replies.out);
        acted.push(Some(done?));
    }
    Ok(acted)
}

#[allow(clippy::too_many_arguments)]
async fn act_with(
    db: &Db,
    tx: &mut Tx,
    project: &Project,
    job: &Job<'_>,
    matched: Match<'_>,
    made: Option<Result<(i64, Case), FieldError>>,
    replies: &mut Replies<'_>,
    deferred: &mut Deferred,
    now: i64,
) -> StoreResult<Acted> {
    let Job {
        message,
        keyword: stored,
        sender,
    } = job;
    let keyword = &stored.keyword;
    let cases = &sender.cases;
    let mut made_now = false;
    let open: Vec<&(i64, Case)> = cases.iter().filter(|(_, c)| !c.closed).collect();
    let mut acted = Acted::default();
    let targets: Vec<(i64, Case)> = match (open.len(), cases.first()) {
        (0, Some((pk, _))) => {
            // Only closed cases: they receive nothing, and no case is made beside them.
            acted.case_pk = Some(*pk);
            return Ok(acted);
        }
        (0, None) => {
            match (keyword.unknown_sender, &matched) {
                (UnknownSender::Ignore, _) => return Ok(acted),
                (UnknownSender::Reply, Match::Matched { values, .. }) => {
                    if let Some(content) = &keyword.unknown_reply {
                        let text = reply_text(content, None, values).text;
                        replies.send(None, text);
                    }
                    acted.queued = replies.queued;
                    return Ok(acted);
                }
                (_, Match::Missing { reply, .. } | Match::Invalid { reply, .. }) => {
                    if keyword.unknown_sender == UnknownSender::Reply {
                        if let Some(content) = &keyword.unknown_reply {
                            let text = reply_text(content, None, &Values::default()).text;
                            replies.send(None, text);
                        }
                    } else {
                        replies.send(None, reply.clone());
                    }
                    acted.queued = replies.queued;
                    return Ok(acted);
                }
                (UnknownSender::CreateCase, Match::Matched { .. }) => match made {
                    Some(Ok(made)) => {
                        made_now = true;
                        vec![made]
                    }
                    Some(Err(e)) => {
                        // The fields passed their checks but the case does not (a rule of
                        // cases beyond the keyword's): say what, make nothing.
                        replies.send(None, invalid_reply(&e));
                        acted.queued = replies.queued;
                        return Ok(acted);
                    }
                    None => return Err(StoreError::internal("a keyword's new case was not made")),
                },
            }
        }
        (1, _) => vec![open[0].clone()],
        (_, _) if keyword.acts_on_every_case() => open.into_iter().cloned().collect(),
        (_, _) => {
            acted.case_pk = Some(open[0].0);
            replies.send(Some(open[0].0), AMBIGUOUS_REPLY.to_string());
            acted.queued = replies.queued;
            return Ok(acted);
        }
    };
    acted.case_pk = targets.first().map(|(pk, _)| *pk);
    let values = match &matched {
        Match::Matched { values, .. } => values,
        Match::Missing { reply, .. } | Match::Invalid { reply, .. } => {
            replies.send(acted.case_pk, reply.clone());
            acted.queued = replies.queued;
            return Ok(acted);
        }
    };
    let mut queued_elsewhere = 0;
    let mut replied: Vec<usize> = Vec::new();
    for (pk, case) in &targets {
        let mut case = case.clone();
        for (i, action) in keyword.actions.iter().enumerate() {
            match action {
                Action::Reply { text } => {
                    // Sent once however many cases share the number.
                    if replied.contains(&i) {
                        continue;
                    }
                    replied.push(i);
                    let text = reply_for(text, &case, values);
                    replies.send(Some(*pk), text);
                }
                Action::StartSurvey { survey_id } => {
                    let Some(gateway_id) = message.gateway_id else {
                        continue;
                    };
                    let survey = match db.survey_tx(tx, project.id, *survey_id).await {
                        Ok(s) => s,
                        Err(StoreError::NotFound(_)) => {
                            tracing::warn!(
                                keyword.id = stored.id,
                                survey.id = survey_id,
                                "a keyword's survey no longer exists: action skipped"
                            );
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    let to = Reachable {
                        case_pk: *pk,
                        phone: message.phone.clone(),
                        gateway_id,
                    };
                    match crate::surveys::start_in_tx(
                        db,
                        tx,
                        project,
                        &survey,
                        &to,
                        case.language_code.as_deref(),
                        None,
                        now,
                    )
                    .await
                    {
                        Ok(id) => {
                            acted.session_id = Some(id);
                            queued_elsewhere += 1;
                        }
                        Err(StoreError::Conflict { code, .. }) => {
                            tracing::info!(
                                keyword.id = stored.id,
                                reason = code,
                                "a keyword's survey was not started"
                            );
                        }
                        Err(e) => return Err(e),
                    }
                }
                Action::AddToGroup { case_group_id }
                | Action::RemoveFromGroup { case_group_id } => {
                    let add = matches!(action, Action::AddToGroup { .. });
                    deferred
                        .groups
                        .entry((*case_group_id, add))
                        .or_default()
                        .push((*pk, case.case_id.to_string()));
                }
                // A case the message made has its fields already.
                Action::SetProperties { .. } if made_now => {}
                Action::SetProperties { .. } => {
                    match db
                        .update_case_tx(tx, *pk, &values.case_changes(), now)
                        .await
                    {
                        Ok(updated) => case = updated,
                        Err(StoreError::Invalid(e)) => {
                            replies.send(Some(*pk), invalid_reply(&e));
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
    acted.queued = replies.queued + queued_elsewhere;
    Ok(acted)
}

/// A reply's text for a case.
fn reply_for(content: &Content, case: &Case, values: &Values) -> String {
    reply_text(content, Some(case), values).text
}

/// What a sender is told when the case its fields would make or change breaks a rule of cases.
fn invalid_reply(e: &FieldError) -> String {
    format!("Not saved: {} {}.", e.field.replace('_', " "), e.message)
}

/// The default reply (`default_reply` of the messaging settings) to a message that matched no
/// keyword and answered no survey, within the reply limit and never to an opted-out number.
/// Returns how many messages it queued (0 or 1).
pub(crate) async fn default_reply(
    db: &Db,
    tx: &mut Tx,
    project: &Project,
    message: &Unhandled,
    case_pk: Option<i64>,
    now: i64,
) -> StoreResult<usize> {
    let Some(text) = project.inbound_settings().default_reply.clone() else {
        return Ok(0);
    };
    let sender = Sender::load(db, tx, project, &message.phone, now).await?;
    let mut replies = Replies::new(project, message, None, &sender, now);
    replies.send(case_pk, text);
    let deferred = Deferred {
        sends: replies.out,
        ..Deferred::default()
    };
    deferred.flush(db, tx, project, now).await
}
