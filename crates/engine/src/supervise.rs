//! Supervision of the background tasks (the worker loop, the dispatcher): a task that panics
//! or returns before it is told to stop is restarted after a backoff, each restart is counted,
//! and a task that keeps failing makes the process report itself unhealthy (`/healthz`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

/// Failures in a row after which a task counts as unhealthy.
pub const UNHEALTHY_AFTER: u32 = 3;
/// A run that lasts this long resets the count of failures in a row.
const STEADY: Duration = Duration::from_secs(60);
/// The first wait before a restart; doubled for each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How one supervised task is doing.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct TaskHealth {
    /// Restarts since the process started.
    pub restarts: u64,
    /// Failures since the last run that lasted (reset by a steady run).
    pub failures_in_a_row: u32,
    /// What the last failure was (a panic's message, or "stopped by itself").
    pub last_error: Option<String>,
}

impl TaskHealth {
    /// Whether the task keeps failing.
    pub fn unhealthy(&self) -> bool {
        self.failures_in_a_row >= UNHEALTHY_AFTER
    }
}

/// The health of this process's supervised tasks. Cheap to clone; every clone sees the same.
#[derive(Clone, Debug, Default)]
pub struct Health(Arc<Mutex<BTreeMap<&'static str, TaskHealth>>>);

impl Health {
    /// Each supervised task by name.
    pub fn tasks(&self) -> BTreeMap<&'static str, TaskHealth> {
        // A panic while the lock was held leaves the map as it was: still readable.
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The tasks that keep failing, by name.
    pub fn unhealthy(&self) -> BTreeMap<&'static str, TaskHealth> {
        let mut tasks = self.tasks();
        tasks.retain(|_, t| t.unhealthy());
        tasks
    }

    fn update(&self, name: &'static str, f: impl FnOnce(&mut TaskHealth)) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(map.entry(name).or_default());
    }
}

/// The text of a panic's payload.
fn panic_text(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return "cancelled".to_string();
    }
    let payload = e.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}

/// Runs the task that `start` makes, in a task of its own, until `stop` turns true; each time
/// it panics or returns before then, it is restarted after a backoff (0.5 s doubling to 60 s,
/// back to 0.5 s after a run of a minute), and `health` counts it.
pub fn supervise<F, Fut>(
    name: &'static str,
    health: Health,
    mut stop: watch::Receiver<bool>,
    start: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    health.update(name, |_| {});
    tokio::spawn(async move {
        loop {
            let started = Instant::now();
            let outcome = tokio::spawn(start()).await;
            if *stop.borrow() {
                return;
            }
            let error = match outcome {
                Ok(()) => "stopped by itself".to_string(),
                Err(e) => panic_text(e),
            };
            let mut in_a_row = 0;
            health.update(name, |t| {
                if started.elapsed() >= STEADY {
                    t.failures_in_a_row = 0;
                }
                t.failures_in_a_row += 1;
                t.restarts += 1;
                t.last_error = Some(error.clone());
                in_a_row = t.failures_in_a_row;
            });
            let backoff = FIRST_BACKOFF
                .saturating_mul(1 << in_a_row.saturating_sub(1).min(10))
                .min(MAX_BACKOFF);
            tracing::error!(task = name, error = %error, failures_in_a_row = in_a_row, ?backoff, "background task failed; restarting");
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_restarted_counted_and_reported() {
        let health = Health::default();
        let (stop, stopped) = watch::channel(false);
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        let handle = supervise("flaky", health.clone(), stopped, move || {
            let runs = counted.clone();
            async move {
                // The first four runs panic, the fifth runs until stopped.
                if runs.fetch_add(1, Ordering::SeqCst) < 4 {
                    panic!("boom");
                }
                std::future::pending::<()>().await;
            }
        });
        // Backoffs 0.5 + 1 + 2 + 4 s: the fifth run starts within 10 s.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 5);
        let t = &health.tasks()["flaky"];
        assert_eq!(t.restarts, 4);
        assert_eq!(t.last_error.as_deref(), Some("panicked: boom"));
        assert!(t.unhealthy());
        assert_eq!(health.unhealthy().len(), 1);
        stop.send(true).unwrap();
        // The running task is not restarted after stop; the supervisor ends when it does.
        handle.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_runs_on_is_healthy_and_stops_when_told() {
        let health = Health::default();
        let (stop, stopped) = watch::channel(false);
        let inner_stop = stopped.clone();
        let handle = supervise("steady", health.clone(), stopped, move || {
            let mut s = inner_stop.clone();
            async move {
                let _ = s.wait_for(|v| *v).await;
            }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(health.unhealthy().is_empty());
        assert_eq!(health.tasks()["steady"], TaskHealth::default());
        stop.send(true).unwrap();
        handle.await.unwrap();
        assert_eq!(health.tasks()["steady"].restarts, 0);
    }
}
