//! The statements on `profile_events` (`crate::segments` decides what goes in them).
use sqlx::Row;

use crate::{
    error::Result,
    ids::{Pseudonym, SourceId, UnixMs},
    storage::{delete_of_subject, numbered, Db, WriteTx},
};

/// The columns naming a subject.
const OF_SUBJECT: [&str; 2] = ["subject", "origin_subject"];

/// One event of a profile to store.
#[derive(Debug, Clone)]
pub struct ProfileEvent<'a> {
    pub source: &'a SourceId,
    /// The profile's subject.
    pub subject: Pseudonym,
    pub at_ms: i64,
    pub message_id: &'a str,
    /// The event as the profile keeps it (JSON).
    pub event: String,
    /// The pseudonym it came under, when not the profile's own (a merged id).
    pub origin: Option<Pseudonym>,
}

const COLUMNS: [&str; 7] = [
    "source_id",
    "subject",
    "at_ms",
    "message_id",
    "event",
    "received_at_ms",
    "origin_subject",
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
                .bind(now.millis())
                .bind(e.origin.as_ref().map(Pseudonym::as_str));
        }
        q.execute(&mut *w.tx).await?;
    }
    Ok(())
}

/// Which of `subjects` have profile events (as subject or origin).
pub async fn named(
    w: &mut WriteTx,
    subjects: &[&Pseudonym],
) -> Result<std::collections::HashSet<String>> {
    super::subjects_in(w, "profile_events", &OF_SUBJECT, subjects).await
}

/// Deletes the subject's profiles at the given sources, and its events merged into
/// others' profiles; returns how many events went.
pub async fn delete_at(w: &mut WriteTx, sources: &[SourceId], subject: &Pseudonym) -> Result<u64> {
    delete_of_subject(w, "profile_events", &OF_SUBJECT, subject, Some(sources)).await
}

/// Deletes the subject's profiles, and its events merged into others' profiles,
/// everywhere; returns how many events went.
pub async fn delete_everywhere(w: &mut WriteTx, subject: &Pseudonym) -> Result<u64> {
    delete_of_subject(w, "profile_events", &OF_SUBJECT, subject, None).await
}

/// Whether one of `subjects` has a profile at `source` (one indexed lookup, not its
/// events).
pub async fn exists(db: &Db, source: &SourceId, subjects: &[Pseudonym]) -> Result<bool> {
    for subject in subjects {
        let row = sqlx::query(
            "SELECT 1 FROM profile_events WHERE source_id = $1 AND subject = $2 LIMIT 1",
        )
        .bind(source.as_str())
        .bind(subject.as_str())
        .fetch_optional(&db.pool)
        .await?;
        if row.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
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

/// The stored events (JSON) of these subjects' profiles at any source, read in the write
/// transaction: (source, subject, event), each profile's oldest first.
pub async fn events_of(
    w: &mut WriteTx,
    subjects: &[&Pseudonym],
) -> Result<Vec<(SourceId, Pseudonym, String)>> {
    let mut out = Vec::new();
    for chunk in subjects.chunks(ROWS) {
        let sql = format!(
            "SELECT source_id, subject, event FROM profile_events WHERE subject IN ({})
             ORDER BY source_id, subject, at_ms, message_id",
            numbered(1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for s in chunk {
            q = q.bind(s.as_str());
        }
        for r in q.fetch_all(&mut *w.tx).await? {
            out.push((
                SourceId::from_stored(r.try_get(0)?),
                Pseudonym::from_stored(r.try_get(1)?),
                r.try_get(2)?,
            ));
        }
    }
    Ok(out)
}

/// How many profiles (source and subject) there are.
pub async fn count(db: &Db) -> Result<u64> {
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) FROM (SELECT DISTINCT source_id, subject FROM profile_events) p",
    )
    .fetch_one(&db.pool)
    .await?
    .try_get(0)?;
    Ok(n as u64)
}

/// Calls `each` with every profile's events (JSON, oldest first), profile by profile,
/// read on `conn` (a write transaction's, or any) a page of profiles at a time.
pub async fn for_each(
    conn: &mut sqlx::AnyConnection,
    mut each: impl FnMut(SourceId, Pseudonym, Vec<String>) -> Result<()>,
) -> Result<()> {
    // Keyset pages over the primary key's order, so memory holds one page.
    const PAGE: i64 = 20_000;
    let mut after = (String::new(), String::new());
    loop {
        let rows = sqlx::query(
            "SELECT source_id, subject, event FROM profile_events
             WHERE source_id > $1 OR (source_id = $1 AND subject > $2)
             ORDER BY source_id, subject, at_ms, message_id LIMIT $3",
        )
        .bind(after.0.as_str())
        .bind(after.1.as_str())
        .bind(PAGE)
        .fetch_all(&mut *conn)
        .await?;
        let full = rows.len() as i64 == PAGE;
        let mut current: Option<(String, String, Vec<String>)> = None;
        let mut done = Vec::new();
        for r in rows {
            let (source, subject, event): (String, String, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            match &mut current {
                Some((s, p, events)) if *s == source && *p == subject => events.push(event),
                _ => {
                    done.extend(current.take());
                    current = Some((source, subject, vec![event]));
                }
            }
        }
        // A full page may have cut its last profile short: that one is read whole with
        // the next page.
        if let Some(last) = current {
            if !full {
                done.push(last);
            } else if let Some(previous) = done.last() {
                after = (previous.0.clone(), previous.1.clone());
            } else {
                // One profile longer than a page: read on its own.
                let events = sqlx::query(
                    "SELECT event FROM profile_events WHERE source_id = $1 AND subject = $2
                     ORDER BY at_ms, message_id",
                )
                .bind(last.0.as_str())
                .bind(last.1.as_str())
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| Ok(r.try_get(0)?))
                .collect::<Result<Vec<String>>>()?;
                after = (last.0.clone(), last.1.clone());
                done.push((last.0, last.1, events));
            }
        }
        for (source, subject, events) in done {
            each(
                SourceId::from_stored(source),
                Pseudonym::from_stored(subject),
                events,
            )?;
        }
        if !full {
            return Ok(());
        }
    }
}
