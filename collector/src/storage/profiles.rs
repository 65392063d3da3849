//! The statements on `profile_events` (`crate::segments` decides what goes in them).
use sqlx::Row;

use crate::{
    error::Result,
    ids::{Pseudonym, SourceId, UnixMs},
    storage::{numbered, Db, WriteTx},
};

/// One event of a profile to store.
#[derive(Debug, Clone)]
pub struct ProfileEvent<'a> {
    pub source: &'a SourceId,
    pub subject: &'a Pseudonym,
    pub at_ms: i64,
    pub message_id: &'a str,
    /// The event as the profile keeps it (JSON).
    pub event: String,
}

const COLUMNS: [&str; 6] = [
    "source_id",
    "subject",
    "at_ms",
    "message_id",
    "event",
    "received_at_ms",
];

/// Rows per INSERT.
const ROWS: usize = 100;

/// Stores events of profiles, skipping those already there (the same source, subject,
/// time and message id).
pub async fn insert(w: &mut WriteTx, events: &[ProfileEvent<'_>], now: UnixMs) -> Result<()> {
    for chunk in events.chunks(ROWS) {
        let sql = w
            .backend()
            .insert_skipping_duplicates("profile_events", &COLUMNS, chunk.len());
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q
                .bind(e.source.as_str())
                .bind(e.subject.as_str())
                .bind(e.at_ms)
                .bind(e.message_id)
                .bind(e.event.as_str())
                .bind(now.millis());
        }
        q.execute(&mut *w.tx).await?;
    }
    Ok(())
}

/// Deletes the subject's profiles at the given sources; returns how many events went.
pub async fn delete_at(w: &mut WriteTx, sources: &[SourceId], subject: &Pseudonym) -> Result<u64> {
    let sql = format!(
        "DELETE FROM profile_events WHERE subject = $1 AND source_id IN ({})",
        numbered(2, sources.len())
    );
    let mut q = sqlx::query(&sql).bind(subject.as_str());
    for s in sources {
        q = q.bind(s.as_str());
    }
    Ok(q.execute(&mut *w.tx).await?.rows_affected())
}

/// Deletes the subject's profiles everywhere; returns how many events went.
pub async fn delete_everywhere(w: &mut WriteTx, subject: &Pseudonym) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM profile_events WHERE subject = $1")
        .bind(subject.as_str())
        .execute(&mut *w.tx)
        .await?
        .rows_affected())
}

/// The events (JSON, oldest first) of the profile at `source` of the first of
/// `subjects` (a subject's pseudonyms under each key) that has one.
pub async fn find(
    db: &Db,
    source: &SourceId,
    subjects: &[Pseudonym],
) -> Result<Option<Vec<String>>> {
    for subject in subjects {
        let rows = sqlx::query(
            "SELECT event FROM profile_events WHERE source_id = $1 AND subject = $2
             ORDER BY at_ms, message_id",
        )
        .bind(source.as_str())
        .bind(subject.as_str())
        .fetch_all(&db.pool)
        .await?;
        if !rows.is_empty() {
            return rows
                .into_iter()
                .map(|r| Ok(r.try_get(0)?))
                .collect::<Result<Vec<String>>>()
                .map(Some);
        }
    }
    Ok(None)
}
