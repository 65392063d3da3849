//! The NATS JetStream relay: how the feed reaches consumers on other machines.
//!
//! With `nats_url` set, one relay per database publishes every feed item, from its
//! position saved in `feed_consumers` (as consumer [`CONSUMER`]), to the stream
//! `nats_stream` under the subject `PREFIX.SOURCE.KIND` (`PREFIX._.erasure` for an
//! erasure, which is of every source). Each message carries the item's id as
//! `Nats-Msg-Id` and its position as `Assent-Position`; the position is saved only once
//! JetStream acknowledged every message up to it (the next batch is already on its way
//! meanwhile). A relay killed between the two
//! publishes again from the saved position, and JetStream drops the messages it already
//! holds (their ids are within the stream's duplicate window, [`DUPLICATE_WINDOW`]).
//!
//! On PostgreSQL the replicas run one relay between them: the one holding a session
//! advisory lock. When its process dies its connection closes, the lock goes, and
//! another replica's relay (trying every [`TAKEOVER_EVERY`]) takes over from the saved
//! position.
use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use bytes::Bytes;

use crate::{
    clock::Clock,
    config::Config,
    error::{Error, Result},
    feed::{self, Item, Position},
    storage::{Db, SessionLock},
};

/// The relay's name in `feed_consumers` (and in `assent_feed_lag`).
pub const CONSUMER: &str = "nats-relay";

/// The stream's duplicate window: a relay restarted within it publishes no duplicates.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(300);

/// How often a replica without the relay tries to take it over.
pub const TAKEOVER_EVERY: Duration = Duration::from_secs(1);

/// Items read and published before the position is saved.
const BATCH: usize = 20_000;

/// Lock id of the relay's lease across PostgreSQL replicas.
const RELAY_LOCK: i64 = 0x4153_5345_4e54_0001;

/// What the relay needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub url: String,
    pub stream: String,
    pub prefix: String,
}

impl Settings {
    /// The relay's settings, when `nats_url` is set.
    pub fn from_config(config: &Config) -> Option<Settings> {
        Some(Settings {
            url: config.nats_url.as_ref()?.expose().to_owned(),
            stream: config.nats_stream.clone(),
            prefix: config.nats_subject_prefix.clone(),
        })
    }
}

/// Runs the relay for good: waits for the lease, relays, and after an error (NATS or
/// the database away) starts again, backing off up to 10 s. Errors are logged without
/// the server's address (it may hold credentials).
pub async fn run(db: Db, settings: Settings, clock: Arc<dyn Clock>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match relay(&db, &settings, clock.as_ref()).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "the NATS relay stopped; starting again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Waits until this process holds the relay's lock (see [`Db::try_session_lock`]).
async fn take_lease(db: &Db) -> Result<SessionLock> {
    loop {
        if let Some(lock) = db.try_session_lock(RELAY_LOCK).await? {
            tracing::info!("this process runs the NATS relay");
            return Ok(lock);
        }
        tokio::time::sleep(TAKEOVER_EVERY).await;
    }
}

/// The subject token for `text`: NATS subjects split on `.` and give `*`, `>` and
/// white space meanings, so those become `_`.
fn token(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The subject an item is published under.
pub fn subject(prefix: &str, item: &Item) -> String {
    let source = item
        .source_id()
        .map_or_else(|| "_".to_owned(), |s| token(s.as_str()));
    format!("{prefix}.{source}.{}", item.kind().as_str())
}

/// Connects, makes the stream when missing, and returns the JetStream context.
pub async fn connect(settings: &Settings) -> Result<jetstream::Context> {
    let client = async_nats::connect(&settings.url)
        .await
        .map_err(|e| Error::Internal(format!("cannot connect to NATS: {}", e.kind())))?;
    // A permit per message is held until its acknowledgement is awaited, and two
    // batches are in flight at once.
    let js = jetstream::ContextBuilder::new()
        .max_ack_inflight(2 * BATCH + 1_000)
        .build(client);
    js.get_or_create_stream(jetstream::stream::Config {
        name: settings.stream.clone(),
        subjects: vec![format!("{}.>", settings.prefix)],
        duplicate_window: DUPLICATE_WINDOW,
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| Error::Internal(format!("cannot make the JetStream stream: {e}")))?;
    Ok(js)
}

async fn relay(db: &Db, settings: &Settings, clock: &dyn Clock) -> Result<()> {
    let mut lease = take_lease(db).await?;
    let js = connect(settings).await?;
    let mut follower =
        feed::Follower::new(db.clone(), CONSUMER, BATCH, Duration::from_secs(1)).await?;
    // A batch sent but not yet acknowledged, and its last position: the next batch is
    // read and sent while JetStream acknowledges it, so the server is never idle.
    let mut in_flight: Option<(Vec<PublishAckFuture>, Position)> = None;
    let mut read_upto = follower.position;
    loop {
        let items = match in_flight {
            None => follower.next().await?,
            Some(_) => feed::read(db, read_upto, BATCH).await?,
        };
        lease.check().await?;
        let sent = match items.last() {
            Some(last) => {
                read_upto = last.position();
                Some((send(&js, &settings.prefix, &items).await?, read_upto))
            }
            None => None,
        };
        if let Some((acks, last)) = in_flight.take() {
            confirm(acks).await?;
            let mut w = db.write().await?;
            feed::save_position(&mut w, CONSUMER, last, clock.now_ms()).await?;
            w.commit().await?;
            follower.advance(last);
        }
        in_flight = sent;
    }
}

fn nats_error(e: &dyn std::fmt::Display) -> Error {
    Error::Internal(format!("NATS publish: {e}"))
}

/// Sends `items` in order without waiting for JetStream's acknowledgements.
async fn send(
    js: &jetstream::Context,
    prefix: &str,
    items: &[Item],
) -> Result<Vec<PublishAckFuture>> {
    let mut acks = Vec::with_capacity(items.len());
    for item in items {
        let payload = serde_json::to_vec(item).expect("items serialize");
        let message = PublishMessage::build()
            .payload(Bytes::from(payload))
            .message_id(item.id())
            .header("Assent-Position", item.position().to_string().as_str());
        let ack = js
            .send_publish(subject(prefix, item), message)
            .await
            .map_err(|e| nats_error(&e))?;
        acks.push(ack);
    }
    Ok(acks)
}

/// Waits until JetStream acknowledged every message sent.
async fn confirm(acks: Vec<PublishAckFuture>) -> Result<()> {
    for ack in acks {
        ack.await.map_err(|e| nats_error(&e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_the_source_and_the_kind_in_safe_tokens() {
        let erasure = Item::Erasure(feed::ErasureItem {
            position: Position { tx: 0, seq: 9 },
            subject: crate::ids::Pseudonym::parse("k1.0123456789abcdef0123456789abcdef").unwrap(),
            received_at_ms: 0,
        });
        assert_eq!(subject("assent", &erasure), "assent._.erasure");
        assert_eq!(token("src_a.b c*>"), "src_a_b_c__");
    }
}
