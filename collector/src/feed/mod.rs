//! The feed: every committed event, consent record and erasure, in one order, for the
//! modules and sinks that follow what the collector stores (segmentation,
//! recommendations, experiments, the NATS relay, the warehouse sink).
//!
//! - [`read`] returns the items after a [`Position`], in position order, and never skips
//!   a committed item. On SQLite positions are taken under the one write lock, so they
//!   follow commit order (migration sqlite/0007). On PostgreSQL a position is the writing
//!   transaction's id, then a sequence number, and only transactions older than the oldest
//!   one still running are read (migration postgres/0003): a slower transaction that took
//!   a smaller number can no longer commit below what a reader passed.
//! - A consumer keeps its position in `feed_consumers`, saved with [`save_position`] in the
//!   transaction that writes its own effects, so each item takes effect exactly once
//!   across crashes.
//! - [`Follower`] wakes when this process commits ([`Db::commits`]); writes of other
//!   processes are found by polling at a slow pace.
//! - Items carry only what is stored: pseudonyms, never raw identifiers. A consent
//!   withdrawal is a consent item; an erasure is an [`Item::Erasure`], on which consumers
//!   delete what they derived from the subject.
//!
//! What is stored, and the SQL that reads it, is `storage::feed`; this module hands it on
//! and adds the consumers' side.
pub mod counting;
pub mod nats;
pub mod warehouse;

use std::time::Duration;

use tokio::sync::watch;

pub use crate::storage::feed::{
    horizon, items_after, lags, pending, position_of, read, save_position, ConsentItem,
    ErasureItem, EventItem, Item, ItemKind, Position, MAX_READ,
};
use crate::{
    error::Result,
    storage::{
        feed::{pending_below, read_below},
        Db,
    },
};

/// How soon a follower looks again when items have committed but wait for an older
/// transaction to end (PostgreSQL).
const BEHIND_OLDER: Duration = Duration::from_millis(20);

/// How a consumer waits for items: woken by this process's commits, and at least every
/// `poll` for those of other processes or replicas (never a busy loop).
pub struct Follower {
    pub db: Db,
    pub name: String,
    pub position: Position,
    pub batch: usize,
    pub poll: Duration,
    commits: watch::Receiver<u64>,
}

impl Follower {
    /// Starts following as consumer `name` from its saved position.
    pub async fn new(db: Db, name: &str, batch: usize, poll: Duration) -> Result<Self> {
        let position = position_of(&db, name).await?;
        Ok(Follower {
            commits: db.commits(),
            db,
            name: name.to_owned(),
            position,
            batch,
            poll,
        })
    }

    /// The next items after the follower's position, waiting until there are some. The
    /// position moves on only by [`Follower::advance`], once their effects are saved.
    pub async fn next(&mut self) -> Result<Vec<Item>> {
        loop {
            // Mark seen before reading: a commit during the read wakes the next wait.
            self.commits.borrow_and_update();
            let below = horizon(&self.db).await?;
            let items = read_below(&self.db, self.position, self.batch, below).await?;
            if !items.is_empty() {
                return Ok(items);
            }
            // Against the same horizon: had it moved on since, a commit this wait would
            // not hear of could already be readable.
            if pending_below(&self.db, below).await? {
                tokio::time::sleep(BEHIND_OLDER).await;
                continue;
            }
            let _ = tokio::time::timeout(self.poll, self.commits.changed()).await;
        }
    }

    /// Records that the items up to `to` took effect (their effects and
    /// [`save_position`] committed).
    pub fn advance(&mut self, to: Position) {
        self.position = self.position.max(to);
    }
}
