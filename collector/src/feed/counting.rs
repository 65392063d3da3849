//! The loop of a consumer that derives counts from the feed (one process per database
//! by a lease): each batch's effects and the consumer's position are written in one
//! transaction, so each item counts once; a batch with nothing to count saves the
//! position at most once a second (on SQLite every write takes the one writer from
//! ingest). After an error it waits and starts again from the saved position.
use std::{future::Future, time::Duration};

use super::{save_position, Follower, Item};
use crate::{
    error::Result,
    storage::{Db, WriteTx},
};

const BATCH: usize = 5_000;
const POLL: Duration = Duration::from_secs(1);
const SAVE_IDLE_POSITION: Duration = Duration::from_secs(1);

/// What a counting consumer does with a batch.
pub trait Counting: Send + Sync {
    /// What a batch adds, computed before any write; `None`: nothing.
    type Batch: Send;
    /// The consumer's name in `feed_consumers` (and in `assent_feed_lag`).
    const NAME: &'static str;
    /// The lock id of its lease across PostgreSQL replicas.
    const LEASE: i64;

    /// What `items` add.
    fn prepare(&self, items: &[Item]) -> impl Future<Output = Result<Option<Self::Batch>>> + Send;

    /// Writes what a batch adds, inside the transaction that saves the position.
    fn write(
        &self,
        batch: Self::Batch,
        w: &mut WriteTx,
        now_ms: i64,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// Runs `consumer` for good.
pub async fn run<C: Counting>(db: Db, clock: std::sync::Arc<dyn crate::clock::Clock>, consumer: C) {
    loop {
        if let Err(e) = follow(&db, clock.as_ref(), &consumer).await {
            tracing::warn!(error = %e, consumer = C::NAME, "feed consumer stopped; will start again");
            tokio::time::sleep(POLL).await;
        }
    }
}

async fn follow<C: Counting>(db: &Db, clock: &dyn crate::clock::Clock, consumer: &C) -> Result<()> {
    let mut lease = loop {
        if let Some(lock) = db.try_session_lock(C::LEASE).await? {
            break lock;
        }
        tokio::time::sleep(POLL).await;
    };
    let mut follower = Follower::new(db.clone(), C::NAME, BATCH, POLL).await?;
    let mut saved = std::time::Instant::now();
    loop {
        let items = follower.next().await?;
        lease.check().await?;
        let Some(last) = items.last().map(Item::position) else {
            continue;
        };
        let batch = consumer.prepare(&items).await?;
        if batch.is_none() && saved.elapsed() < SAVE_IDLE_POSITION {
            follower.advance(last);
            continue;
        }
        saved = std::time::Instant::now();
        let now = clock.now_ms();
        let mut w = db.write().await?;
        if let Some(b) = batch {
            consumer.write(b, &mut w, now).await?;
        }
        save_position(&mut w, C::NAME, last, now).await?;
        w.commit().await?;
        follower.advance(last);
    }
}
