//! The experiment-metrics consumer: follows the feed (one process per database by a
//! lease) and adds each event that an experiment measures to the value of its subject
//! — when the subject was exposed to that experiment before the event. A batch's
//! values and the consumer's position are written in one transaction, so each event
//! counts once.
use std::{collections::HashMap, sync::Arc, time::Duration};

use serde_json::Value;

use super::Experiments;
use crate::{
    error::Result,
    feed::{self, Follower, Item},
    storage::{self, Db},
};

/// The consumer's name in `feed_consumers` (and in `assent_feed_lag`).
pub const CONSUMER: &str = "experiment-metrics";

/// Lock id of the consumer's lease across PostgreSQL replicas.
const LEASE: i64 = 0x0045_5850_4d45_5400; // "EXPMET"

const BATCH: usize = 5_000;

/// What an event name counts for: (experiment, metric, the property summed — none for
/// a count).
type Measured<'a> = HashMap<&'a str, Vec<(&'a str, &'a str, Option<&'a str>)>>;
const POLL: Duration = Duration::from_secs(1);
const SAVE_IDLE_POSITION: Duration = Duration::from_secs(1);

/// Runs the consumer for good; after an error, waits and starts again from the saved
/// position.
pub async fn run(db: Db, experiments: Arc<Experiments>) {
    loop {
        if let Err(e) = follow(&db, &experiments).await {
            tracing::warn!(error = %e, "experiment metrics consumer stopped; will start again");
            tokio::time::sleep(POLL).await;
        }
    }
}

async fn follow(db: &Db, experiments: &Experiments) -> Result<()> {
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
        let catalogue = experiments.catalogue().await?;
        // Event name → (experiment, metric name, property summed or None for a count).
        let mut measured: Measured<'_> = HashMap::new();
        for e in catalogue.experiments.values() {
            for m in e.metrics() {
                let property = if m.kind.is_rate() {
                    None
                } else {
                    m.property.as_deref()
                };
                measured
                    .entry(m.event.as_str())
                    .or_default()
                    .push((&e.name, &m.name, property));
            }
        }
        let relevant: Vec<&storage::feed::EventItem> = items
            .iter()
            .filter_map(|i| match i {
                Item::Event(e) if e.name.as_deref().is_some_and(|n| measured.contains_key(n)) => {
                    Some(e)
                }
                _ => None,
            })
            .collect();
        if relevant.is_empty() && saved.elapsed() < SAVE_IDLE_POSITION {
            follower.advance(last);
            continue;
        }
        saved = std::time::Instant::now();
        let now = experiments.clock.now_ms();
        let mut w = db.write().await?;
        for e in relevant {
            let exposures =
                storage::experiments::exposures_of(&mut w, &e.source_id, &e.subject).await?;
            if exposures.is_empty() {
                continue;
            }
            let payload: Value = serde_json::from_str(&e.payload).unwrap_or(Value::Null);
            for &(experiment, metric, property) in &measured[e.name.as_deref().unwrap_or_default()]
            {
                let Some((_, exposed_at)) = exposures.iter().find(|(x, _)| x == experiment) else {
                    continue;
                };
                if e.timestamp_ms < *exposed_at {
                    continue;
                }
                let value = match property {
                    None => Some(1.0),
                    Some(p) => payload["properties"][p].as_f64().filter(|v| v.is_finite()),
                };
                if let Some(v) = value {
                    storage::experiments::add_value(
                        &mut w,
                        experiment,
                        &e.source_id,
                        &e.subject,
                        metric,
                        v,
                        now,
                    )
                    .await?;
                }
            }
        }
        feed::save_position(&mut w, CONSUMER, last, now).await?;
        w.commit().await?;
        follower.advance(last);
    }
}
