//! The statements ingest writes: events (many rows per INSERT, values bound by the
//! request), consent records, and dead letters (`crate::ingest` decides what is stored).
use std::sync::OnceLock;

use assent_protocol::Purpose;

use crate::{
    error::Result,
    ids::{MessageId, Pseudonym, SourceId, UnixMs},
    storage::{Backend, WriteTx},
};

/// An event ready to store: identifiers pseudonymized, time corrected.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub message_id: MessageId,
    pub kind: &'static str,
    pub name: Option<String>,
    pub purpose: Purpose,
    pub subject_key: i64,
    pub subject: Pseudonym,
    pub anonymous_id: Option<Pseudonym>,
    pub user_id: Option<Pseudonym>,
    pub timestamp_ms: i64,
    pub original_timestamp_ms: Option<i64>,
    pub payload: String,
}

/// What the events of one request share.
#[derive(Debug, Clone)]
pub struct Received {
    pub source_id: SourceId,
    pub sent_at_ms: Option<i64>,
    pub received_at: UnixMs,
    /// The client's address, truncated.
    pub ip: Option<String>,
}

/// The columns of a stored event, in the order [`event_inserts`] binds them.
const EVENT_COLUMNS: [&str; 15] = [
    "source_id",
    "message_id",
    "type",
    "name",
    "purpose",
    "subject",
    "subject_key",
    "anonymous_id",
    "user_id",
    "timestamp_ms",
    "original_timestamp_ms",
    "sent_at_ms",
    "received_at_ms",
    "ip_prefix",
    "payload",
];

/// The sizes an INSERT of events comes in (at most 100 events, 15 values each). A chunk
/// of events is padded up to the next size by repeating its last row, which the insert
/// then skips as a duplicate of itself. So each connection's statement cache holds eight
/// INSERTs of events rather than one per batch size: traffic of varied batch sizes would
/// otherwise keep evicting them from sqlx's cache of 100 statements, and each miss
/// prepares a statement of up to 1,500 values again.
const INSERT_SIZES: [usize; 8] = [1, 2, 4, 8, 16, 32, 64, 100];

/// Most events in one INSERT.
const EVENTS_PER_INSERT: usize = INSERT_SIZES[INSERT_SIZES.len() - 1];

/// One INSERT of events, its values bound, and how many events it holds.
pub struct EventInsert {
    query: sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments<'static>>,
    rows: u32,
}

/// The INSERT of `INSERT_SIZES[size]` events, written once.
fn events_insert_sql(backend: Backend, size: usize) -> &'static str {
    static SQLITE: [OnceLock<String>; INSERT_SIZES.len()] =
        [const { OnceLock::new() }; INSERT_SIZES.len()];
    static POSTGRES: [OnceLock<String>; INSERT_SIZES.len()] =
        [const { OnceLock::new() }; INSERT_SIZES.len()];
    let cache = match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    };
    cache[size].get_or_init(|| {
        backend.insert_skipping_duplicates("events", &EVENT_COLUMNS, INSERT_SIZES[size])
    })
}

/// The INSERTs of `events`, values bound. Binding is CPU work that would otherwise sit
/// on the writer's path, which every request shares (on SQLite one writer for all), so
/// requests call this themselves.
pub fn event_inserts(backend: Backend, common: &Received, events: &[EventRow]) -> Vec<EventInsert> {
    events
        .chunks(EVENTS_PER_INSERT)
        .map(|chunk| {
            let size = INSERT_SIZES
                .iter()
                .position(|&n| n >= chunk.len())
                .expect("chunks are at most the largest size");
            let last = chunk.last().expect("chunks are not empty");
            let padding = std::iter::repeat_n(last, INSERT_SIZES[size] - chunk.len());
            let mut q = sqlx::query(events_insert_sql(backend, size));
            for r in chunk.iter().chain(padding) {
                q = q
                    .bind(common.source_id.to_string())
                    .bind(r.message_id.to_string())
                    .bind(r.kind)
                    .bind(r.name.clone())
                    .bind(r.purpose.as_str())
                    .bind(r.subject.to_string())
                    .bind(r.subject_key)
                    .bind(r.anonymous_id.as_ref().map(Pseudonym::to_string))
                    .bind(r.user_id.as_ref().map(Pseudonym::to_string))
                    .bind(r.timestamp_ms)
                    .bind(r.original_timestamp_ms)
                    .bind(common.sent_at_ms)
                    .bind(common.received_at.millis())
                    .bind(common.ip.clone())
                    .bind(r.payload.clone());
            }
            EventInsert {
                query: q,
                rows: chunk.len() as u32,
            }
        })
        .collect()
}

/// Runs the INSERTs; returns (stored, skipped as duplicates of a stored message id).
pub async fn insert_events(w: &mut WriteTx, inserts: Vec<EventInsert>) -> Result<(u32, u32)> {
    let (mut accepted, mut duplicates) = (0, 0);
    for insert in inserts {
        let inserted = insert.query.execute(&mut *w.tx).await?.rows_affected() as u32;
        accepted += inserted;
        duplicates += insert.rows - inserted;
    }
    Ok((accepted, duplicates))
}

/// Which of these consent ids the source already stored.
pub async fn consents_stored(
    w: &mut WriteTx,
    source_id: &SourceId,
    consent_ids: &[&str],
) -> Result<std::collections::HashSet<String>> {
    let mut stored = std::collections::HashSet::new();
    for chunk in consent_ids.chunks(500) {
        let sql = format!(
            "SELECT consent_id FROM consent_records WHERE source_id = $1 AND consent_id IN ({})",
            super::numbered(2, chunk.len())
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql).bind(source_id.as_str());
        for id in chunk {
            q = q.bind(*id);
        }
        stored.extend(q.fetch_all(&mut *w.tx).await?);
    }
    Ok(stored)
}

/// A consent record to store (pseudonymized), with the audit entry that holds it.
#[derive(Debug, Clone)]
pub struct ConsentInsert<'a> {
    pub source_id: &'a SourceId,
    pub consent_id: &'a str,
    pub subject: &'a Pseudonym,
    pub user_id: Option<&'a Pseudonym>,
    /// JSON text.
    pub purposes: String,
    pub policy_version: &'a str,
    pub method: &'a str,
    pub origin: &'a str,
    pub timestamp_ms: i64,
    pub original_timestamp_ms: i64,
    pub received_at_ms: i64,
    pub audit_seq: i64,
}

/// Stores consent records, 25 per statement (SQLite looks parameters up by name, which
/// costs more per parameter the more a statement has).
pub async fn insert_consents(w: &mut WriteTx, rows: &[ConsentInsert<'_>]) -> Result<()> {
    for chunk in rows.chunks(25) {
        let sql = format!(
            "INSERT INTO consent_records (source_id, consent_id, subject, user_id, purposes, policy_version, method, origin,
             timestamp_ms, original_timestamp_ms, received_at_ms, audit_seq) VALUES {}",
            super::value_rows(chunk.len(), 12)
        );
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q
                .bind(r.source_id.as_str())
                .bind(r.consent_id)
                .bind(r.subject.as_str())
                .bind(r.user_id.map(Pseudonym::as_str))
                .bind(&r.purposes)
                .bind(r.policy_version)
                .bind(r.method)
                .bind(r.origin)
                .bind(r.timestamp_ms)
                .bind(r.original_timestamp_ms)
                .bind(r.received_at_ms)
                .bind(r.audit_seq);
        }
        q.execute(&mut *w.tx).await?;
    }
    Ok(())
}

/// A refused event as kept: why, and whose (a pseudonym), never its payload.
#[derive(Debug, Clone)]
pub struct DeadLetterInsert<'a> {
    pub source_id: &'a SourceId,
    pub message_id: Option<&'a MessageId>,
    pub subject: Option<&'a Pseudonym>,
    pub code: &'a str,
    pub reason: &'a str,
    pub received_at_ms: i64,
}

pub async fn insert_dead_letter(w: &mut WriteTx, d: DeadLetterInsert<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO dead_letters (source_id, message_id, subject, code, reason, payload, received_at_ms) VALUES ($1,$2,$3,$4,$5,'',$6)",
    )
    .bind(d.source_id.as_str())
    .bind(d.message_id.map(MessageId::as_str))
    .bind(d.subject.map(Pseudonym::as_str))
    .bind(d.code)
    .bind(d.reason)
    .bind(d.received_at_ms)
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}
