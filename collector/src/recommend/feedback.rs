//! The feedback loop: impressions, clicks and conversions of recommendations, counted
//! per recommender version from the feed (`recommendation-feedback`, one process per
//! database by a lease). An event counts when it carries the `rec_id` of a list it
//! came from (`properties.rec_id`): `Recommendation Viewed` is an impression,
//! `Recommendation Clicked` a click, `Product Added` and `Order Completed` conversions.
//! The feed only carries what ingest accepted, so each counted event had consent for
//! its own purpose; the counts name no one (not subject data). A batch's counts and the
//! consumer's position are written in one transaction, so each event counts once.
use std::{collections::BTreeMap, sync::Arc, time::Duration};

use assent_protocol::{
    RecId, RECOMMENDATION_CLICKED, RECOMMENDATION_CONVERSIONS, RECOMMENDATION_VIEWED,
};
use serde_json::Value;

use crate::{
    error::Result,
    feed::{self, Follower, Item},
    storage::{self, Db},
};

/// The consumer's name in `feed_consumers` (and in `assent_feed_lag`).
pub const CONSUMER: &str = "recommendation-feedback";

/// Lock id of the consumer's lease across PostgreSQL replicas.
const LEASE: i64 = 0x0052_4543_4642_4b00; // "RECFBK"

const BATCH: usize = 5_000;
const POLL: Duration = Duration::from_secs(1);
const SAVE_IDLE_POSITION: Duration = Duration::from_secs(1);

/// Counts per (recommender `SOURCE/NAME`, version): impressions, clicks, conversions.
pub type Tally = BTreeMap<(String, i64), [i64; 3]>;

/// What a batch of feed items adds.
pub fn tally(items: &[Item]) -> Tally {
    let mut out = Tally::new();
    for item in items {
        let Item::Event(e) = item else { continue };
        let slot = match e.name.as_deref() {
            Some(RECOMMENDATION_VIEWED) => 0,
            Some(RECOMMENDATION_CLICKED) => 1,
            Some(n) if RECOMMENDATION_CONVERSIONS.contains(&n) => 2,
            _ => continue,
        };
        let payload: Value = serde_json::from_str(&e.payload).unwrap_or(Value::Null);
        let Some(id) = payload["properties"]["rec_id"]
            .as_str()
            .and_then(|r| r.parse::<RecId>().ok())
        else {
            continue;
        };
        out.entry((format!("{}/{}", e.source_id, id.name()), id.version()))
            .or_default()[slot] += 1;
    }
    out
}

/// Runs the consumer for good; after an error, waits and starts again from the saved
/// position.
pub async fn run(db: Db, clock: Arc<dyn crate::clock::Clock>) {
    loop {
        if let Err(e) = follow(&db, clock.as_ref()).await {
            tracing::warn!(error = %e, "recommendation feedback consumer stopped; will start again");
            tokio::time::sleep(POLL).await;
        }
    }
}

async fn follow(db: &Db, clock: &dyn crate::clock::Clock) -> Result<()> {
    let mut lease = loop {
        if let Some(lock) = db.try_session_lock(LEASE).await? {
            break lock;
        }
        tokio::time::sleep(POLL).await;
    };
    let mut follower = Follower::new(db.clone(), CONSUMER, BATCH, POLL).await?;
    let mut saved = std::time::Instant::now();
    loop {
        let items = follower.next().await?;
        lease.check().await?;
        let Some(last) = items.last().map(Item::position) else {
            continue;
        };
        let counts = tally(&items);
        // Nothing to count: the position is saved at most once a second (on SQLite every
        // write takes the one writer from ingest); items read again count nothing.
        if counts.is_empty() && saved.elapsed() < SAVE_IDLE_POSITION {
            follower.advance(last);
            continue;
        }
        saved = std::time::Instant::now();
        let mut w = db.write().await?;
        storage::feedback::add(&mut w, &counts, clock.now_ms()).await?;
        feed::save_position(&mut w, CONSUMER, last, clock.now_ms()).await?;
        w.commit().await?;
        follower.advance(last);
    }
}
