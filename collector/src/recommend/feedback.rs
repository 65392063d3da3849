//! The feedback loop: impressions, clicks and conversions of recommendations, counted
//! per recommender version from the feed (`recommendation-feedback`, one process per
//! database by a lease). An event counts when it carries the `rec_id` of a list it
//! came from (`properties.rec_id`): `Recommendation Viewed` is an impression,
//! `Recommendation Clicked` a click, `Product Added` and `Order Completed` conversions.
//! The feed only carries what ingest accepted, so each counted event had consent for
//! its own purpose; the counts name no one (not subject data). A batch's counts and the
//! consumer's position are written in one transaction, so each event counts once.
use std::collections::BTreeMap;

use assent_protocol::{
    RecId, RECOMMENDATION_CLICKED, RECOMMENDATION_CONVERSIONS, RECOMMENDATION_VIEWED,
};
use serde_json::Value;

use crate::{
    error::Result,
    feed::{counting::Counting, Item},
    storage::{self, WriteTx},
};

/// The consumer's name in `feed_consumers` (and in `assent_feed_lag`).
pub const CONSUMER: &str = "recommendation-feedback";

/// Lock id of the consumer's lease across PostgreSQL replicas.
const LEASE: i64 = 0x0052_4543_4642_4b00; // "RECFBK"

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

/// The consumer: counts per version, added to `recommendation_feedback`.
pub struct Feedback;

impl Counting for Feedback {
    type Batch = Tally;
    const NAME: &'static str = CONSUMER;
    const LEASE: i64 = LEASE;

    async fn prepare(&self, items: &[Item]) -> Result<Option<Tally>> {
        let counts = tally(items);
        Ok((!counts.is_empty()).then_some(counts))
    }

    async fn write(&self, counts: Tally, w: &mut WriteTx, now_ms: i64) -> Result<()> {
        storage::feedback::add(w, &counts, now_ms).await
    }
}
