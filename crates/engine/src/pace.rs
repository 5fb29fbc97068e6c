//! Keeps a long bulk write (a case import, a group upload) from shutting other writers out of
//! a SQLite database. SQLite has one writer at a time, and one waiting for the lock polls for
//! it (its busy handler sleeps up to 100 ms between tries) while a bulk write that commits a
//! batch and begins the next at once almost never leaves it a gap: a login waited 20 s behind
//! an import and failed. So after each batch the bulk write lets in this process's waiting
//! writers (it can count them), and after each slice of writing it pauses longer than that
//! poll, so that another process's writer gets in too: no writer waits much more than a
//! slice. PostgreSQL locks rows, not the database: it needs no pauses.

use std::time::{Duration, Instant};

use casecast_store::{Db, Dialect};

/// Writing between two pauses on SQLite.
const SLICE: Duration = Duration::from_millis(750);
/// A pause: longer than the 100 ms between a waiting writer's tries.
const GAP: Duration = Duration::from_millis(110);
/// The longest a bulk write yields to this process's waiting writers at once.
const YIELD_AT_MOST: Duration = Duration::from_secs(1);

/// Paces a bulk write's transactions; call [`Pacer::after_commit`] after each.
pub struct Pacer {
    db: Db,
    since: Instant,
}

impl Pacer {
    /// A pacer for a bulk write starting now.
    pub fn new(db: &Db) -> Pacer {
        Pacer {
            db: db.clone(),
            since: Instant::now(),
        }
    }

    /// After a batch's commit, on SQLite: yields to this process's writers waiting for the
    /// lock, and pauses once a slice of writing has passed.
    pub async fn after_commit(&mut self) {
        if self.db.dialect() != Dialect::Sqlite {
            return;
        }
        let start = Instant::now();
        let mut yielded = false;
        while self.db.writers_waiting() > 0 && start.elapsed() < YIELD_AT_MOST {
            yielded = true;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if self.since.elapsed() >= SLICE {
            tokio::time::sleep(GAP).await;
            yielded = true;
        }
        if yielded {
            self.since = Instant::now();
        }
    }
}
