//! Named fault points: places in a workflow where a test can make a process stop and wait, so
//! that a `kill -9` lands at the same step on a fast machine and on a slow one. Production
//! passes [`Faults::none`]; the binary takes them from a hidden test-only flag.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A point in a workflow where a process can be held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Right after a fan-out committed its Nth batch (from 1, counted per run of the job).
    FanoutBatchWritten(u64),
    /// Right after an upload committed its Nth batch (from 1, counted per run of the job).
    UploadBatchWritten(u64),
    /// Inside the transaction of the Nth reply to a survey session this process handles (from
    /// 1): the answer saved, the next message queued, the inbound message marked handled, not
    /// yet committed.
    SurveyReply(u64),
    /// Inside the transaction of the Nth page of due reminder occurrences this process fires
    /// (from 1): the occurrences recorded and their messages queued, not yet committed.
    ReminderBatch(u64),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::FanoutBatchWritten(n) => write!(f, "fanout-batch={n}"),
            Fault::UploadBatchWritten(n) => write!(f, "upload-batch={n}"),
            Fault::SurveyReply(n) => write!(f, "survey-reply={n}"),
            Fault::ReminderBatch(n) => write!(f, "reminder-batch={n}"),
        }
    }
}

/// A fault point that is not `fanout-batch=N`, `upload-batch=N`, `survey-reply=N` or
/// `reminder-batch=N`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{0:?} is not a fault point (fanout-batch=N, upload-batch=N, survey-reply=N or reminder-batch=N, N from 1)"
)]
pub struct BadFault(pub String);

impl std::str::FromStr for Fault {
    type Err = BadFault;

    fn from_str(s: &str) -> Result<Fault, BadFault> {
        let bad = || BadFault(s.to_string());
        let (name, n) = s.trim().split_once('=').ok_or_else(bad)?;
        let n: u64 = n.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(bad)?;
        match name.trim() {
            "fanout-batch" => Ok(Fault::FanoutBatchWritten(n)),
            "upload-batch" => Ok(Fault::UploadBatchWritten(n)),
            "survey-reply" => Ok(Fault::SurveyReply(n)),
            "reminder-batch" => Ok(Fault::ReminderBatch(n)),
            _ => Err(bad()),
        }
    }
}

/// The fault points at which this process holds. Cheap to clone; clones share the counts.
#[derive(Clone, Debug, Default)]
pub struct Faults(Arc<Points>);

#[derive(Debug, Default)]
struct Points {
    points: Vec<Fault>,
    /// Survey replies this process handled, for [`Fault::SurveyReply`].
    survey_replies: AtomicU64,
    /// Pages of reminder occurrences this process fired, for [`Fault::ReminderBatch`].
    reminder_batches: AtomicU64,
}

impl Faults {
    /// No fault point: production.
    pub fn none() -> Faults {
        Faults::default()
    }

    /// Holds at each of these points.
    pub fn hold_at(points: Vec<Fault>) -> Faults {
        Faults(Arc::new(Points {
            points,
            survey_replies: AtomicU64::new(0),
            reminder_batches: AtomicU64::new(0),
        }))
    }

    /// Called by the inbound router inside the transaction of each reply to a survey session:
    /// counts it, and holds there if this is the Nth and `survey-reply=N` is set.
    pub async fn survey_reply(&self) {
        if self.0.points.is_empty() {
            return;
        }
        let n = self.0.survey_replies.fetch_add(1, Ordering::SeqCst) + 1;
        self.reached(Fault::SurveyReply(n)).await;
    }

    /// Called by the reminder firing inside the transaction of each page it fires: counts it,
    /// and holds there if this is the Nth and `reminder-batch=N` is set.
    pub async fn reminder_batch(&self) {
        if self.0.points.is_empty() {
            return;
        }
        let n = self.0.reminder_batches.fetch_add(1, Ordering::SeqCst) + 1;
        self.reached(Fault::ReminderBatch(n)).await;
    }

    /// Called by a workflow at `point`: if this process holds there, it says so on standard
    /// error (`casecast: held at fault point …`, which tests wait for) and never returns; the
    /// process's other tasks go on.
    pub async fn reached(&self, point: Fault) {
        if self.0.points.contains(&point) {
            eprintln!("casecast: held at fault point {point}");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_points_parse_and_print() {
        for text in [
            "fanout-batch=3",
            "upload-batch=1",
            "survey-reply=2",
            "reminder-batch=4",
        ] {
            let f: Fault = text.parse().unwrap();
            assert_eq!(f.to_string(), text);
        }
        for bad in [
            "",
            "fanout-batch",
            "fanout-batch=0",
            "fanout-batch=x",
            "other=1",
        ] {
            assert_eq!(bad.parse::<Fault>(), Err(BadFault(bad.to_string())));
        }
    }

    #[tokio::test]
    async fn only_the_named_point_holds() {
        let faults = Faults::hold_at(vec![Fault::UploadBatchWritten(2)]);
        // Other points pass at once.
        faults.reached(Fault::UploadBatchWritten(1)).await;
        faults.reached(Fault::FanoutBatchWritten(2)).await;
        let held = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            faults.reached(Fault::UploadBatchWritten(2)),
        )
        .await;
        assert!(held.is_err(), "the named point did not hold");
    }

    #[tokio::test]
    async fn the_nth_survey_reply_holds() {
        let faults = Faults::hold_at(vec![Fault::SurveyReply(2)]);
        // The first passes; a clone counts with the original.
        faults.clone().survey_reply().await;
        let held =
            tokio::time::timeout(std::time::Duration::from_millis(50), faults.survey_reply()).await;
        assert!(held.is_err(), "the second reply did not hold");
        // Without the point, replies pass (and are not counted).
        Faults::none().survey_reply().await;
    }
}
