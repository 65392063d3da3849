//! The statements on `profiles` (`crate::segments` decides what goes in them).
use sqlx::Row;

use crate::{
    error::Result,
    ids::{Pseudonym, SourceId, UnixMs},
    storage::{numbered, Db, WriteTx},
};

/// The stored profile (its events as JSON) of `subject` at `source`, inside a write.
pub async fn load(
    w: &mut WriteTx,
    source: &SourceId,
    subject: &Pseudonym,
) -> Result<Option<String>> {
    let row = sqlx::query("SELECT events FROM profiles WHERE source_id = $1 AND subject = $2")
        .bind(source.as_str())
        .bind(subject.as_str())
        .fetch_optional(&mut *w.tx)
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Rows per statement of [`save_many`].
const SAVE_ROWS: usize = 100;

/// Stores many profiles (source, subject, events as JSON), replacing those there, a
/// hundred per statement.
pub async fn save_many(
    w: &mut WriteTx,
    rows: &[(&SourceId, &Pseudonym, String)],
    now: UnixMs,
) -> Result<()> {
    for chunk in rows.chunks(SAVE_ROWS) {
        let values = (0..chunk.len())
            .map(|i| {
                format!(
                    "(${}, ${}, ${}, ${})",
                    4 * i + 1,
                    4 * i + 2,
                    4 * i + 3,
                    4 * i + 4
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO profiles (source_id, subject, events, received_at_ms) VALUES {values}
             ON CONFLICT (source_id, subject) DO UPDATE SET events = excluded.events,
                 received_at_ms = excluded.received_at_ms"
        );
        let mut q = sqlx::query(&sql);
        for (source, subject, events) in chunk {
            q = q
                .bind(source.as_str())
                .bind(subject.as_str())
                .bind(events.as_str())
                .bind(now.millis());
        }
        q.execute(&mut *w.tx).await?;
    }
    Ok(())
}

/// Deletes the subject's profiles at the given sources; returns how many.
pub async fn delete_at(w: &mut WriteTx, sources: &[SourceId], subject: &Pseudonym) -> Result<u64> {
    let sql = format!(
        "DELETE FROM profiles WHERE subject = $1 AND source_id IN ({})",
        numbered(2, sources.len())
    );
    let mut q = sqlx::query(&sql).bind(subject.as_str());
    for s in sources {
        q = q.bind(s.as_str());
    }
    Ok(q.execute(&mut *w.tx).await?.rows_affected())
}

/// Deletes the subject's profiles everywhere; returns how many.
pub async fn delete_everywhere(w: &mut WriteTx, subject: &Pseudonym) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM profiles WHERE subject = $1")
        .bind(subject.as_str())
        .execute(&mut *w.tx)
        .await?
        .rows_affected())
}

/// The stored profile of the first of `subjects` (a subject's pseudonyms under each key)
/// that has one at `source`.
pub async fn find(db: &Db, source: &SourceId, subjects: &[Pseudonym]) -> Result<Option<String>> {
    for subject in subjects {
        let row = sqlx::query("SELECT events FROM profiles WHERE source_id = $1 AND subject = $2")
            .bind(source.as_str())
            .bind(subject.as_str())
            .fetch_optional(&db.pool)
            .await?;
        if let Some(r) = row {
            return Ok(Some(r.try_get(0)?));
        }
    }
    Ok(None)
}
