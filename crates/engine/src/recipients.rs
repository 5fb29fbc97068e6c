//! Reading an occurrence's recipients as a pipeline: the database reads batch k+1 while batch k
//! is parsed and rendered and batch k-1 is handled by the caller (written by the fan-out,
//! counted by the preview). The statements and the rendering are the store's
//! ([`casecast_store::recipients::Walk`]); this runs them in two tasks.

use casecast_store::recipients::{Batch, Walk};
use casecast_store::{StoreError, StoreResult};
use tokio::sync::mpsc;

/// Reads batches from the cursor (source `pos`, after case row `after`) on, in order, until
/// past the last source; the last batch sent has `next: None`. Dropping the receiver stops the
/// reading.
pub fn batches(walk: &Walk, pos: i64, after: i64) -> mpsc::Receiver<StoreResult<Batch>> {
    let (raw_tx, mut raw_rx) = mpsc::channel(2);
    let (out_tx, out_rx) = mpsc::channel::<StoreResult<Batch>>(2);
    let reader = walk.clone();
    tokio::spawn(async move {
        let mut from = (pos, after);
        loop {
            let raw = reader.read(from).await;
            let next = match &raw {
                Ok((_, _, next)) => *next,
                Err(_) => None,
            };
            if raw_tx.send(raw).await.is_err() {
                return;
            }
            match next {
                Some(next) => from = next,
                None => return,
            }
        }
    });
    let renderer = walk.clone();
    tokio::spawn(async move {
        while let Some(raw) = raw_rx.recv().await {
            let batch = raw.and_then(|(raw, from, next)| renderer.render(raw, from, next));
            let failed = batch.is_err();
            if out_tx.send(batch).await.is_err() || failed {
                return;
            }
        }
    });
    out_rx
}

/// The next batch of a walk.
pub async fn received(rx: &mut mpsc::Receiver<StoreResult<Batch>>) -> StoreResult<Batch> {
    rx.recv()
        .await
        .unwrap_or_else(|| Err(StoreError::internal("reading recipients stopped")))
}
