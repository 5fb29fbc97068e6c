//! Casecast's workflows: everything that decides what happens and when, over the store's
//! statements and the gateways' transports. The worker loop and its job kinds (uploads,
//! exports, fan-out), the broadcast scheduler, the outbox dispatcher, the inbound router, the
//! clean-up jobs, and the supervisor that keeps the background tasks running.

pub mod broadcasts;
pub mod clock;
pub mod dispatcher;
pub mod export;
pub mod fanout;
pub mod faults;
pub mod import;
pub mod inbound;
pub mod keywords;
pub mod pace;
pub mod permits;
pub mod preview;
pub mod recipients;
pub mod reminders;
pub mod scheduler;
pub mod send;
pub mod smart_groups;
pub mod supervise;
pub mod survey_export;
pub mod surveys;
pub mod upload;
pub mod worker;

pub use clock::{Clock, SharedClock};
pub use dispatcher::{run_dispatcher, DispatchOptions};
pub use preview::{preview_broadcast, LanguagePreview, Preview, Sample};

use casecast_store::StoreError;

/// How a job's run ended when it did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Another worker holds the job now: retrying or giving up here would release its lease
    /// (or fail its record) under it.
    #[error("{0}")]
    LeaseLost(&'static str),
    /// Storage failed; the job is retried, then given up.
    #[error(transparent)]
    Store(#[from] StoreError),
}
