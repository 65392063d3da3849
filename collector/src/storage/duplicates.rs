//! The statements on `duplicate_proposals` (`crate::segments::duplicates` decides).
use sqlx::Row;

use crate::{
    error::Result,
    ids::{Pseudonym, SourceId, UnixMs},
    storage::{delete_of_subject, Db, WriteTx},
};

/// The columns naming a subject.
const COLUMNS: [&str; 2] = ["subject", "previous_id"];

/// A proposal as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub source: SourceId,
    /// The profile kept.
    pub subject: Pseudonym,
    /// The profile that would merge into it.
    pub previous: Pseudonym,
    /// The match score, as text (`0.9731`).
    pub score: String,
    /// `proposed`, `confirmed` or `rejected`.
    pub status: String,
    pub decided_at_ms: Option<i64>,
}

/// Replaces the undecided proposals at `source` with `pairs` (subject, previous, score);
/// a pair decided before is left as it was decided.
pub async fn replace_proposed(
    w: &mut WriteTx,
    source: &SourceId,
    pairs: &[(Pseudonym, Pseudonym, String)],
    now: UnixMs,
) -> Result<()> {
    sqlx::query("DELETE FROM duplicate_proposals WHERE source_id = $1 AND status = 'proposed'")
        .bind(source.as_str())
        .execute(&mut *w.tx)
        .await?;
    for (subject, previous, score) in pairs {
        sqlx::query(
            "INSERT INTO duplicate_proposals
               (source_id, subject, previous_id, score, status, decided_at_ms, received_at_ms)
             VALUES ($1, $2, $3, $4, 'proposed', NULL, $5) ON CONFLICT DO NOTHING",
        )
        .bind(source.as_str())
        .bind(subject.as_str())
        .bind(previous.as_str())
        .bind(score.as_str())
        .bind(now.millis())
        .execute(&mut *w.tx)
        .await?;
    }
    Ok(())
}

/// Every proposal at `source`, undecided first, best score first.
pub async fn list(db: &Db, source: &SourceId) -> Result<Vec<Proposal>> {
    sqlx::query(
        "SELECT source_id, subject, previous_id, score, status, decided_at_ms
         FROM duplicate_proposals WHERE source_id = $1
         ORDER BY status DESC, score DESC, subject, previous_id",
    )
    .bind(source.as_str())
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(Proposal {
            source: SourceId::from_stored(r.try_get(0)?),
            subject: Pseudonym::from_stored(r.try_get(1)?),
            previous: Pseudonym::from_stored(r.try_get(2)?),
            score: r.try_get(3)?,
            status: r.try_get(4)?,
            decided_at_ms: r.try_get(5)?,
        })
    })
    .collect()
}

/// Decides an undecided proposal; false when there is none such.
pub async fn decide(
    w: &mut WriteTx,
    source: &SourceId,
    subject: &str,
    previous: &str,
    status: &str,
    now: UnixMs,
) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE duplicate_proposals SET status = $4, decided_at_ms = $5
         WHERE source_id = $1 AND subject = $2 AND previous_id = $3 AND status = 'proposed'",
    )
    .bind(source.as_str())
    .bind(subject)
    .bind(previous)
    .bind(status)
    .bind(now.millis())
    .execute(&mut *w.tx)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// Which of `subjects` are named by duplicate proposals.
pub async fn named(
    w: &mut WriteTx,
    subjects: &[&Pseudonym],
) -> Result<std::collections::HashSet<String>> {
    super::subjects_in(w, "duplicate_proposals", &COLUMNS, subjects).await
}

/// Deletes the proposals naming a subject at the given sources.
pub async fn forget_at(w: &mut WriteTx, sources: &[SourceId], subject: &Pseudonym) -> Result<()> {
    delete_of_subject(w, "duplicate_proposals", &COLUMNS, subject, Some(sources)).await?;
    Ok(())
}

/// Deletes the proposals naming a subject everywhere.
pub async fn forget_everywhere(w: &mut WriteTx, subject: &Pseudonym) -> Result<()> {
    delete_of_subject(w, "duplicate_proposals", &COLUMNS, subject, None).await?;
    Ok(())
}
