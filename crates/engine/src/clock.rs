//! Time as the workflows see it. Production reads the system clock; tests pass a clock they
//! drive, and the multi-process tests give every process the same scaled clock through the
//! binary's hidden `--test-clock` flag.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A source of the current instant, in epoch milliseconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in epoch milliseconds.
    fn now_ms(&self) -> i64;
}

/// The clock a workflow is given: cheap to clone.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        casecast_core::time::now_ms()
    }
}

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that from the real instant `anchor` shows `start` and runs `speed` times faster:
/// several processes given the same one live through the same days in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScaledClock {
    pub anchor_ms: i64,
    pub start_ms: i64,
    pub speed: f64,
}

/// A `--test-clock` value that is not `ANCHOR_MS:START_MS:SPEED`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not ANCHOR_MS:START_MS:SPEED (two epoch milliseconds and a positive factor)")]
pub struct BadScaledClock(pub String);

impl std::str::FromStr for ScaledClock {
    type Err = BadScaledClock;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let bad = || BadScaledClock(spec.to_string());
        let mut parts = spec.split(':');
        let mut next = || parts.next().ok_or_else(bad);
        let anchor_ms = next()?.trim().parse().map_err(|_| bad())?;
        let start_ms = next()?.trim().parse().map_err(|_| bad())?;
        let speed: f64 = next()?.trim().parse().map_err(|_| bad())?;
        if parts.next().is_some() || !(speed.is_finite() && speed > 0.0) {
            return Err(bad());
        }
        Ok(ScaledClock {
            anchor_ms,
            start_ms,
            speed,
        })
    }
}

impl ScaledClock {
    /// The instant this clock shows when the real clock shows `real_ms`.
    pub fn at(&self, real_ms: i64) -> i64 {
        self.start_ms + ((real_ms - self.anchor_ms) as f64 * self.speed) as i64
    }
}

impl Clock for ScaledClock {
    fn now_ms(&self) -> i64 {
        self.at(casecast_core::time::now_ms())
    }
}

/// A clock that shows what it was last set to: for tests that step through time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock showing `now_ms`.
    pub fn new(now_ms: i64) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(now_ms)))
    }

    /// Sets the time every holder of this clock sees.
    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    /// Moves the time on by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_clock_parses_and_scales() {
        let c: ScaledClock = "1000:5000:60".parse().unwrap();
        assert_eq!(c.at(1000), 5000);
        assert_eq!(c.at(2000), 5000 + 60_000);
        for bad in ["", "1:2", "1:2:0", "1:2:-3", "a:2:3", "1:2:3:4", "1:2:NaN"] {
            assert_eq!(
                bad.parse::<ScaledClock>(),
                Err(BadScaledClock(bad.to_string())),
                "{bad}"
            );
        }
    }

    #[test]
    fn manual_clock_is_shared_by_its_clones() {
        let a = ManualClock::new(10);
        let b = a.clone();
        a.advance(5);
        assert_eq!(b.now_ms(), 15);
        b.set(100);
        assert_eq!(a.now_ms(), 100);
    }
}
