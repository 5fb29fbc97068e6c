//! Named fault points: places in a workflow where a test can make a process stop and wait, so
//! that a `kill -9` lands at the same step on a fast machine and on a slow one. Production
//! passes [`Faults::none`]; the binary takes them from a hidden test-only flag.

use std::fmt;
use std::sync::Arc;

/// A point in a workflow where a process can be held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Right after a fan-out committed its Nth batch (from 1, counted per run of the job).
    FanoutBatchWritten(u64),
    /// Right after an upload committed its Nth batch (from 1, counted per run of the job).
    UploadBatchWritten(u64),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::FanoutBatchWritten(n) => write!(f, "fanout-batch={n}"),
            Fault::UploadBatchWritten(n) => write!(f, "upload-batch={n}"),
        }
    }
}

/// A fault point that is not `fanout-batch=N` or `upload-batch=N`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a fault point (fanout-batch=N or upload-batch=N, N from 1)")]
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
            _ => Err(bad()),
        }
    }
}

/// The fault points at which this process holds. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Faults(Arc<Vec<Fault>>);

impl Faults {
    /// No fault point: production.
    pub fn none() -> Faults {
        Faults::default()
    }

    /// Holds at each of these points.
    pub fn hold_at(points: Vec<Fault>) -> Faults {
        Faults(Arc::new(points))
    }

    /// Called by a workflow at `point`: if this process holds there, it says so on standard
    /// error (`casecast: held at fault point …`, which tests wait for) and never returns; the
    /// process's other tasks go on.
    pub async fn reached(&self, point: Fault) {
        if self.0.contains(&point) {
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
        for text in ["fanout-batch=3", "upload-batch=1"] {
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
}
