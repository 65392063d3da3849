//! The experiment-metrics consumer (`crate::feed::counting`): each event that an
//! experiment measures is added to the value of its subject — when the subject was
//! exposed to that experiment before the event.
use std::{collections::HashMap, sync::Arc};

use serde_json::Value;

use super::Experiments;
use crate::{
    error::Result,
    feed::{counting::Counting, EventItem, Item},
    storage::{self, WriteTx},
};

/// The consumer's name in `feed_consumers` (and in `assent_feed_lag`).
pub const CONSUMER: &str = "experiment-metrics";

/// Lock id of the consumer's lease across PostgreSQL replicas.
const LEASE: i64 = 0x0045_5850_4d45_5400; // "EXPMET"

/// What an event name counts for: (experiment, metric, the property summed — none for
/// a count).
type Measured = HashMap<String, Vec<(String, String, Option<String>)>>;

/// The consumer, reading what is measured from the definitions in force.
pub struct Metrics(pub Arc<Experiments>);

impl Counting for Metrics {
    type Batch = (Measured, Vec<EventItem>);
    const NAME: &'static str = CONSUMER;
    const LEASE: i64 = LEASE;

    async fn prepare(&self, items: &[Item]) -> Result<Option<Self::Batch>> {
        let catalogue = self.0.catalogue().await?;
        let mut measured: Measured = HashMap::new();
        for e in catalogue.experiments.values() {
            for m in e.metrics() {
                let property = if m.kind.is_rate() {
                    None
                } else {
                    m.property.clone()
                };
                measured.entry(m.event.clone()).or_default().push((
                    e.name.clone(),
                    m.name.clone(),
                    property,
                ));
            }
        }
        let relevant: Vec<EventItem> = items
            .iter()
            .filter_map(|i| match i {
                Item::Event(e) if e.name.as_deref().is_some_and(|n| measured.contains_key(n)) => {
                    Some(e.clone())
                }
                _ => None,
            })
            .collect();
        Ok((!relevant.is_empty()).then_some((measured, relevant)))
    }

    async fn write(
        &self,
        (measured, events): Self::Batch,
        w: &mut WriteTx,
        now_ms: i64,
    ) -> Result<()> {
        for e in events {
            let exposures = storage::experiments::exposures_of(w, &e.source_id, &e.subject).await?;
            if exposures.is_empty() {
                continue;
            }
            let payload: Value = serde_json::from_str(&e.payload).unwrap_or(Value::Null);
            for (experiment, metric, property) in &measured[e.name.as_deref().unwrap_or_default()] {
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
                        w,
                        experiment,
                        &e.source_id,
                        &e.subject,
                        metric,
                        v,
                        now_ms,
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}
