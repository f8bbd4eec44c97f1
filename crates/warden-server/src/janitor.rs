//! The background janitor of every replica (SPEC §7): rows that stopped mattering a day ago are
//! deleted in bounded batches, so no sweep holds locks for long and replicas never wait on each
//! other (the store picks rows `SKIP LOCKED`).
use std::{sync::Arc, time::Duration};

use warden_core::{clock::Clock, ports::PurgeStore};

/// How long a row is kept after it stopped mattering, for investigations.
pub const KEEP_FOR: chrono::Duration = chrono::Duration::days(1);
/// Rows of one kind deleted by one statement.
const BATCH: u64 = 500;
/// Batches per sweep at most; whatever is left waits for the next sweep.
const MAX_BATCHES: usize = 20;

/// Sweeps every `every` until the task is aborted. A failed sweep is logged and retried next time.
pub async fn run(store: Arc<dyn PurgeStore>, clock: Arc<dyn Clock>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match sweep(store.as_ref(), clock.as_ref()).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(rows = purged, "janitor purged expired rows"),
            Err(error) => tracing::warn!(%error, "janitor sweep failed"),
        }
    }
}

/// One sweep: batches until one deletes nothing, or `MAX_BATCHES`.
pub async fn sweep(store: &dyn PurgeStore, clock: &dyn Clock) -> Result<u64, warden_core::Error> {
    let mut total = 0;
    for _ in 0..MAX_BATCHES {
        let now = clock.now();
        let purged = store.purge(now, now - KEEP_FOR, BATCH).await?;
        total += purged;
        if purged == 0 {
            break;
        }
    }
    Ok(total)
}
