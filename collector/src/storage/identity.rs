//! The statements on `identity_links`, and the merge of one profile into another
//! (`crate::segments::identity` decides when).
use sqlx::Row;

use crate::{
    error::Result,
    ids::{Pseudonym, SourceId, UnixMs},
    storage::{delete_of_subject, numbered, Db, WriteTx},
};

/// The columns naming a subject.
const COLUMNS: [&str; 2] = ["previous_id", "subject"];

/// A merge: `previous` (at `source`) is now part of `subject`'s profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub source: SourceId,
    pub previous: Pseudonym,
    pub subject: Pseudonym,
    /// `identify` or `alias`.
    pub kind: String,
    pub message_id: String,
    pub at_ms: i64,
}

/// Pseudonyms per statement.
const ROWS: usize = 500;

/// The links from these pseudonyms (at any source), read in the write transaction.
pub async fn links_from(w: &mut WriteTx, previous: &[&Pseudonym]) -> Result<Vec<Link>> {
    let mut out = Vec::new();
    // Most collectors merge few profiles, or none: one look saves a query per chunk.
    let any = sqlx::query("SELECT 1 FROM identity_links LIMIT 1")
        .fetch_optional(&mut *w.tx)
        .await?;
    if any.is_none() {
        return Ok(out);
    }
    for chunk in previous.chunks(ROWS) {
        let sql = format!(
            "SELECT source_id, previous_id, subject, kind, message_id, at_ms FROM identity_links
             WHERE previous_id IN ({})",
            numbered(1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for p in chunk {
            q = q.bind(p.as_str());
        }
        for r in q.fetch_all(&mut *w.tx).await? {
            out.push(link_of(&r)?);
        }
    }
    Ok(out)
}

fn link_of(r: &sqlx::any::AnyRow) -> Result<Link> {
    Ok(Link {
        source: SourceId::from_stored(r.try_get(0)?),
        previous: Pseudonym::from_stored(r.try_get(1)?),
        subject: Pseudonym::from_stored(r.try_get(2)?),
        kind: r.try_get(3)?,
        message_id: r.try_get(4)?,
        at_ms: r.try_get(5)?,
    })
}

/// The profile at `source` that the first of `subjects` with a link is part of.
pub async fn merged_into(
    db: &Db,
    source: &SourceId,
    subjects: &[Pseudonym],
) -> Result<Option<Pseudonym>> {
    for subject in subjects {
        let row = sqlx::query(
            "SELECT subject FROM identity_links WHERE source_id = $1 AND previous_id = $2",
        )
        .bind(source.as_str())
        .bind(subject.as_str())
        .fetch_optional(&db.pool)
        .await?;
        if let Some(r) = row {
            return Ok(Some(Pseudonym::from_stored(r.try_get(0)?)));
        }
    }
    Ok(None)
}

/// Merges `link.previous`'s profile at `link.source` into `link.subject`'s: its events
/// move (keeping where they came from in `origin_subject`), the links into it follow, and the
/// link is recorded.
pub async fn merge(w: &mut WriteTx, link: &Link, now: UnixMs) -> Result<()> {
    let (source, from, into) = (
        link.source.as_str(),
        link.previous.as_str(),
        link.subject.as_str(),
    );
    // Events both profiles hold (the same event cannot be under two ids, but a merge
    // replayed after a crash may meet its own work) are kept once.
    let copy = "INSERT INTO profile_events
           (source_id, subject, at_ms, message_id, event, received_at_ms, origin_subject)
         SELECT source_id, $3, at_ms, message_id, event, received_at_ms, COALESCE(origin_subject, subject)
         FROM profile_events WHERE source_id = $1 AND subject = $2 ON CONFLICT DO NOTHING";
    sqlx::query(copy)
        .bind(source)
        .bind(from)
        .bind(into)
        .execute(&mut *w.tx)
        .await?;
    sqlx::query("DELETE FROM profile_events WHERE source_id = $1 AND subject = $2")
        .bind(source)
        .bind(from)
        .execute(&mut *w.tx)
        .await?;
    sqlx::query("UPDATE identity_links SET subject = $3 WHERE source_id = $1 AND subject = $2")
        .bind(source)
        .bind(from)
        .bind(into)
        .execute(&mut *w.tx)
        .await?;
    let record = "INSERT INTO identity_links
           (source_id, previous_id, subject, kind, message_id, at_ms, received_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";
    sqlx::query(record)
        .bind(source)
        .bind(from)
        .bind(into)
        .bind(link.kind.as_str())
        .bind(link.message_id.as_str())
        .bind(link.at_ms)
        .bind(now.millis())
        .execute(&mut *w.tx)
        .await?;
    Ok(())
}

/// Which of `subjects` have links, from or into them.
pub async fn named(
    w: &mut WriteTx,
    subjects: &[&Pseudonym],
) -> Result<std::collections::HashSet<String>> {
    super::subjects_in(w, "identity_links", &COLUMNS, subjects).await
}

/// Deletes the links from or into a subject at the given sources.
pub async fn forget_at(w: &mut WriteTx, sources: &[SourceId], subject: &Pseudonym) -> Result<()> {
    delete_of_subject(w, "identity_links", &COLUMNS, subject, Some(sources)).await?;
    Ok(())
}

/// Deletes the links from or into a subject everywhere.
pub async fn forget_everywhere(w: &mut WriteTx, subject: &Pseudonym) -> Result<()> {
    delete_of_subject(w, "identity_links", &COLUMNS, subject, None).await?;
    Ok(())
}
