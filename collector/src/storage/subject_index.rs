//! Finding a subject's events (for access and erasure requests) without paying for it on
//! every write.
//!
//! PostgreSQL keeps an ordinary index on `events.subject_key`. On SQLite, whose single
//! writer is the bottleneck, that index was most of the work under load (its entries land
//! all over it, so each commit rewrote hundreds of its pages), so there it lives in the
//! side table `event_subjects`, which the writer fills in bulk once [`MERGE_EVERY_ROWS`]
//! rows have arrived. Each merge writes its entries, sorted, as a new run (numbered by its
//! last event, so new runs get larger numbers and a merge appends at the end of the table
//! and costs what its own entries cost). Lookups seek each run, plus the events after
//! `indexed_upto`, a tail of at most about 10,000 rows per writing process. So that runs
//! do not pile up (one per 10,000 events would be thousands of seeks for tens of millions
//! of events), the writer, when idle, folds each run into the one before it until runs
//! hold [`RUN_CAP`] entries. Retention forgets runs whose events are all gone.
use sqlx::Row;

use crate::{
    error::Result,
    storage::{numbered, Backend, Db},
};

/// Rows written before the side table is brought up to date.
pub const MERGE_EVERY_ROWS: u64 = 10_000;

/// Adds the events written since the last merge to `event_subjects` (SQLite; a no-op on
/// PostgreSQL). Returns how many entries it added.
pub async fn merge(db: &Db) -> Result<u64> {
    if db.backend != Backend::Sqlite {
        return Ok(0);
    }
    let mut w = db.write().await?;
    let row = sqlx::query(
        "SELECT p.indexed_upto, (SELECT COALESCE(MAX(seq), 0) FROM events)
         FROM subject_index_progress p WHERE p.id = 1",
    )
    .fetch_one(&mut *w.tx)
    .await?;
    let (from, to): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    if to <= from {
        return Ok(0);
    }
    // The run is numbered by its last event: later runs get larger numbers.
    let added = sqlx::query(
        "INSERT INTO event_subjects (run, subject_key, seq)
         SELECT $2, subject_key, seq FROM events WHERE seq > $1 AND seq <= $2
         ORDER BY subject_key, seq",
    )
    .bind(from)
    .bind(to)
    .execute(&mut *w.tx)
    .await?
    .rows_affected();
    if added > 0 {
        sqlx::query("INSERT INTO event_subject_runs (run, entries) VALUES ($1, $2)")
            .bind(to)
            .bind(added as i64)
            .execute(&mut *w.tx)
            .await?;
    }
    sqlx::query("UPDATE subject_index_progress SET indexed_upto = $1 WHERE id = 1")
        .bind(to)
        .execute(&mut *w.tx)
        .await?;
    w.commit().await?;
    Ok(added)
}

/// Most entries a run gets by compaction: sixteen merges' worth.
pub const RUN_CAP: u64 = 16 * MERGE_EVERY_ROWS;

/// One step of compaction (SQLite; the writer runs it when idle): the oldest run with room
/// for the run after it takes that run's entries, in one transaction, so lookups (which
/// seek every run) find each entry in one run or the other and never lose one. Returns
/// whether it moved a run; false once no two neighbouring runs fit in [`RUN_CAP`].
pub async fn compact_step(db: &Db) -> Result<bool> {
    if db.backend != Backend::Sqlite {
        return Ok(false);
    }
    let mut w = db.write().await?;
    let pair = sqlx::query(
        "SELECT a.run, b.run, b.entries FROM event_subject_runs a
         JOIN event_subject_runs b
           ON b.run = (SELECT MIN(n.run) FROM event_subject_runs n WHERE n.run > a.run)
         WHERE a.entries + b.entries <= $1
         ORDER BY a.run LIMIT 1",
    )
    .bind(RUN_CAP as i64)
    .fetch_optional(&mut *w.tx)
    .await?;
    let Some(pair) = pair else { return Ok(false) };
    let (into, from, entries): (i64, i64, i64) =
        (pair.try_get(0)?, pair.try_get(1)?, pair.try_get(2)?);
    sqlx::query(
        "INSERT OR IGNORE INTO event_subjects (run, subject_key, seq)
         SELECT $1, subject_key, seq FROM event_subjects WHERE run = $2 ORDER BY subject_key, seq",
    )
    .bind(into)
    .bind(from)
    .execute(&mut *w.tx)
    .await?;
    sqlx::query("DELETE FROM event_subjects WHERE run = $1")
        .bind(from)
        .execute(&mut *w.tx)
        .await?;
    sqlx::query("DELETE FROM event_subject_runs WHERE run = $1")
        .bind(from)
        .execute(&mut *w.tx)
        .await?;
    sqlx::query("UPDATE event_subject_runs SET entries = entries + $1 WHERE run = $2")
        .bind(entries)
        .bind(into)
        .execute(&mut *w.tx)
        .await?;
    w.commit().await?;
    Ok(true)
}

/// The SQL condition selecting the events of a subject known by `n` pseudonyms: `$1..$n`
/// are the pseudonyms, `$n+1..$2n` their subject keys (bound by the caller in that
/// order). Matches on the pseudonym itself, so a 64-bit key collision finds nothing more.
pub fn events_of(backend: Backend, n: usize) -> String {
    let pseudonyms = numbered(1, n);
    let keys = numbered(n + 1, n);
    match backend {
        Backend::Postgres => format!(
            "(subject_key IN ({keys}) AND subject IN ({pseudonyms})) OR user_id IN ({pseudonyms})"
        ),
        // CROSS JOIN keeps the runs as the outer loop: one seek per run and key.
        Backend::Sqlite => format!(
            "seq IN (SELECT s.seq FROM event_subject_runs r CROSS JOIN event_subjects s
                       WHERE s.run = r.run AND s.subject_key IN ({keys})
                     UNION ALL SELECT seq FROM events
                       WHERE seq > (SELECT indexed_upto FROM subject_index_progress WHERE id = 1)
                         AND subject IN ({pseudonyms})
                     UNION ALL SELECT seq FROM events WHERE user_id IN ({pseudonyms}))
             AND (subject IN ({pseudonyms}) OR user_id IN ({pseudonyms}))"
        ),
    }
}

/// Forgets the runs none of whose events are left (SQLite; run by the retention job, after
/// it deleted events). Returns how many it forgot.
pub async fn forget_empty_runs(db: &Db) -> Result<u64> {
    if db.backend != Backend::Sqlite {
        return Ok(0);
    }
    let mut w = db.write().await?;
    let n = sqlx::query(
        "DELETE FROM event_subject_runs
         WHERE NOT EXISTS (SELECT 1 FROM event_subjects s WHERE s.run = event_subject_runs.run)",
    )
    .execute(&mut *w.tx)
    .await?
    .rows_affected();
    w.commit().await?;
    Ok(n)
}
