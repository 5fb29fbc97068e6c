//! Bounds on work that costs a lot of memory at once: sheets being parsed (a workbook's shared
//! strings are held whole while it is read) and passwords being checked (argon2 takes 19 MiB
//! each). A process shares one [`Permits`] per kind between its requests and its worker; a
//! request that cannot get a permit within a short wait is answered 503 instead of running the
//! machine out of memory.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a request waits for a permit before it is told to come back later.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);

/// At most this many at once, across every clone.
#[derive(Clone, Debug)]
pub struct Permits {
    semaphore: Arc<Semaphore>,
    size: usize,
    wait: Duration,
}

/// Held while the bounded work runs; dropping it lets the next one in.
#[derive(Debug)]
pub struct Permit {
    _held: OwnedSemaphorePermit,
}

/// Every permit stayed taken for the whole wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server is busy; try again in a few seconds")]
pub struct Busy;

impl Permits {
    /// `size` permits (at least one); [`Permits::try_acquire`] waits up to `wait` for one.
    pub fn new(size: usize, wait: Duration) -> Self {
        let size = size.max(1);
        Permits {
            semaphore: Arc::new(Semaphore::new(size)),
            size,
            wait,
        }
    }

    /// The default bound on concurrent sheet parses: two.
    pub fn sheets() -> Self {
        Permits::new(2, DEFAULT_WAIT)
    }

    /// The default bound on concurrent password checks: twice the cores.
    pub fn password_checks() -> Self {
        Permits::new(2 * cores(), DEFAULT_WAIT)
    }

    /// How many may run at once.
    pub fn size(&self) -> usize {
        self.size
    }

    /// How many are free now.
    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
    }

    /// A permit, waiting at most this bound's wait for one (for requests).
    pub async fn try_acquire(&self) -> Result<Permit, Busy> {
        match tokio::time::timeout(self.wait, self.semaphore.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Permit { _held: permit }),
            _ => Err(Busy),
        }
    }

    /// A permit, however long it takes (for background jobs, which may wait their turn).
    pub async fn acquire(&self) -> Permit {
        match self.semaphore.clone().acquire_owned().await {
            Ok(permit) => Permit { _held: permit },
            // The semaphore is never closed.
            Err(_) => unreachable!("permits are never closed"),
        }
    }
}

/// The processor cores this process may use (1 when unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_bound_answers_busy_after_its_wait_and_frees_on_drop() {
        let permits = Permits::new(2, Duration::from_millis(100));
        let a = permits.try_acquire().await.unwrap();
        let _b = permits.clone().try_acquire().await.unwrap();
        assert_eq!(permits.available(), 0);
        assert_eq!(permits.try_acquire().await.unwrap_err(), Busy);
        drop(a);
        assert!(permits.try_acquire().await.is_ok());
        assert_eq!(Permits::new(0, DEFAULT_WAIT).size(), 1);
    }
}
