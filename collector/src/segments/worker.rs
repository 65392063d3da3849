//! Segmentation workers: `assent-collector worker` processes, on any machines, that
//! consume the feed from NATS JetStream (the stream the relay fills, `feed::nats`) as
//! one durable consumer group, [`DURABLE`], and keep the profiles in the shared
//! (PostgreSQL) database. JetStream hands each message to one worker; a worker applies a
//! batch ([`super::consumer::apply_shared`], one transaction) and only then acknowledges
//! it. A worker killed between the two leaves its messages unacknowledged: after
//! [`ACK_WAIT`] JetStream gives them to another, which applies them again, changing
//! nothing (every effect is idempotent). Nothing is lost, nothing counted twice.
//! Serve processes leave the feed to the workers when `segmentation_workers` is set.
use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{self, consumer::pull, AckKind};
use futures_util::StreamExt;

use crate::{
    clock::Clock,
    consent::cache::ConsentCache,
    error::{Error, Result},
    feed::{nats, Item},
    keys::sources::Sources,
    segments::{consumer, Segments},
};

/// The durable consumer the workers share.
pub const DURABLE: &str = "segments-workers";

/// How long JetStream waits for a worker's acknowledgement before handing the message
/// to another.
pub const ACK_WAIT: Duration = Duration::from_secs(10);

/// Messages fetched per batch, and how long a fetch waits for them.
const FETCH: usize = 1_000;
const FETCH_WAIT: Duration = Duration::from_millis(200);

fn nats_error(what: &str, e: &dyn std::fmt::Display) -> Error {
    Error::Internal(format!("NATS {what}: {e}"))
}

/// Runs a worker until an error (NATS or the database away); the caller starts it again.
pub async fn run(
    segments: Arc<Segments>,
    sources: Arc<Sources>,
    cache: Arc<ConsentCache>,
    clock: Arc<dyn Clock>,
    settings: nats::Settings,
) -> Result<()> {
    let js = nats::connect(&settings).await?;
    let stream = js
        .get_stream(&settings.stream)
        .await
        .map_err(|e| nats_error("stream", &e))?;
    let group = stream
        .get_or_create_consumer(
            DURABLE,
            pull::Config {
                durable_name: Some(DURABLE.into()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_ack_pending: 20_000,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| nats_error("consumer", &e))?;
    tracing::info!(consumer = DURABLE, "segmentation worker consuming the feed");
    loop {
        let mut batch = group
            .fetch()
            .max_messages(FETCH)
            .expires(FETCH_WAIT)
            .messages()
            .await
            .map_err(|e| nats_error("fetch", &e))?;
        let mut messages = Vec::new();
        while let Some(m) = batch.next().await {
            messages.push(m.map_err(|e| nats_error("message", &e))?);
        }
        if messages.is_empty() {
            continue;
        }
        let mut items = Vec::with_capacity(messages.len());
        let mut unreadable = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            match serde_json::from_slice::<Item>(&m.payload) {
                Ok(item) => items.push(item),
                Err(e) => {
                    // Not a feed item (another publisher on the subjects): never applied,
                    // never redelivered.
                    tracing::warn!(error = %e, "a message on the feed's stream is not a feed item");
                    unreadable.push(i);
                }
            }
        }
        items.sort_by_key(Item::position);
        consumer::apply_shared(&segments, &sources, &cache, &items, clock.as_ref()).await?;
        for (i, m) in messages.iter().enumerate() {
            let kind = if unreadable.contains(&i) {
                AckKind::Term
            } else {
                AckKind::Ack
            };
            m.ack_with(kind).await.map_err(|e| nats_error("ack", &e))?;
        }
    }
}

/// Runs a worker for good: after an error, waits (backing off up to 10 s) and starts
/// again; unacknowledged messages come back.
pub async fn run_for_good(
    segments: Arc<Segments>,
    sources: Arc<Sources>,
    cache: Arc<ConsentCache>,
    clock: Arc<dyn Clock>,
    settings: nats::Settings,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let done = run(
            segments.clone(),
            sources.clone(),
            cache.clone(),
            clock.clone(),
            settings.clone(),
        )
        .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "the segmentation worker stopped; starting again");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}
