//! The statements that read consent records for enforcement and for `GET /v1/consent`,
//! and the `consent_changes` lines that keep every process's consent cache right
//! (`crate::consent::cache` decides what to do with them).
use sqlx::Row;

use crate::{
    error::Result,
    ids::{Pseudonym, SourceId},
    storage::{numbered, Backend, Db},
};

/// A stored consent record as enforcement reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub subject: String,
    pub timestamp_ms: i64,
    /// The purposes as stored (JSON text).
    pub purposes: String,
    pub policy_version: String,
}

/// The consent records that the `sources` stored under any of `subjects`, read 200
/// subjects at a time.
pub async fn records_of(
    db: &Db,
    sources: &[SourceId],
    subjects: &[&str],
) -> Result<Vec<StoredRecord>> {
    let mut out = Vec::new();
    for chunk in subjects.chunks(200) {
        let sql = format!(
            "SELECT subject, timestamp_ms, purposes, policy_version FROM consent_records
             WHERE source_id IN ({}) AND subject IN ({})",
            numbered(1, sources.len()),
            numbered(sources.len() + 1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for m in sources {
            q = q.bind(m.as_str());
        }
        for s in chunk {
            q = q.bind(*s);
        }
        for row in q.fetch_all(&db.pool).await? {
            out.push(StoredRecord {
                subject: row.try_get(0)?,
                timestamp_ms: row.try_get(1)?,
                purposes: row.try_get(2)?,
                policy_version: row.try_get(3)?,
            });
        }
    }
    Ok(out)
}

/// A consent record as `GET /v1/consent` answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestRecord {
    /// The purposes as stored (JSON text).
    pub purposes: String,
    pub policy_version: String,
    pub method: String,
    pub origin: String,
    pub timestamp_ms: i64,
}

/// The latest consent record the `sources` stored under any of `pseudonyms`.
pub async fn latest_record(
    db: &Db,
    sources: &[SourceId],
    pseudonyms: &[Pseudonym],
) -> Result<Option<LatestRecord>> {
    let sql = format!(
        "SELECT purposes, policy_version, method, origin, timestamp_ms FROM consent_records
         WHERE source_id IN ({}) AND subject IN ({})
         ORDER BY timestamp_ms DESC, received_at_ms DESC LIMIT 1",
        numbered(1, sources.len()),
        numbered(sources.len() + 1, pseudonyms.len())
    );
    let mut q = sqlx::query(&sql);
    for m in sources {
        q = q.bind(m.as_str());
    }
    for p in pseudonyms {
        q = q.bind(p.as_str());
    }
    let Some(row) = q.fetch_optional(&db.pool).await? else {
        return Ok(None);
    };
    Ok(Some(LatestRecord {
        purposes: row.try_get(0)?,
        policy_version: row.try_get(1)?,
        method: row.try_get(2)?,
        origin: row.try_get(3)?,
        timestamp_ms: row.try_get(4)?,
    }))
}

/// SQLite: the lines of `consent_changes` from `seq` on, at most `limit`, as (seq, bucket).
pub async fn lines_from(db: &Db, seq: i64, limit: i64) -> Result<Vec<(i64, String)>> {
    let rows = sqlx::query(
        "SELECT seq, bucket FROM consent_changes WHERE seq >= $1 ORDER BY seq LIMIT $2",
    )
    .bind(seq)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<std::result::Result<_, sqlx::Error>>()?)
}

/// SQLite: the last line of `consent_changes`, 0 when there is none.
pub async fn last_line(db: &Db) -> Result<i64> {
    Ok(
        sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM consent_changes")
            .fetch_one(&db.pool)
            .await?
            .try_get(0)?,
    )
}

/// What a PostgreSQL cache look reads in one statement.
#[derive(Debug, Clone, Default)]
pub struct Look {
    /// The oldest transaction running now.
    pub horizon: i64,
    /// Lines below this transaction were pruned.
    pub pruned: i64,
    /// (transaction, seq, bucket) of the lines at or above the asked transaction.
    pub lines: Vec<(i64, i64, String)>,
}

/// PostgreSQL: the lines of transactions at or above `tx` (at most `limit`), with the
/// horizon and the pruning bound, in one statement.
pub async fn look(db: &Db, tx: i64, limit: i64) -> Result<Look> {
    let rows = sqlx::query(
        "WITH now AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS horizon,
                             (SELECT below_tx FROM consent_changes_pruned WHERE id = 1) AS pruned)
         SELECT now.horizon, now.pruned, c.feed_tx, c.seq, c.bucket FROM now
         LEFT JOIN (SELECT feed_tx, seq, bucket FROM consent_changes
                    WHERE feed_tx >= $1 ORDER BY feed_tx, seq LIMIT $2) c ON true",
    )
    .bind(tx)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    let first = rows.first().expect("the LEFT JOIN gives a row");
    let mut look = Look {
        horizon: first.try_get(0)?,
        pruned: first.try_get(1)?,
        lines: Vec::with_capacity(rows.len()),
    };
    for r in &rows {
        if let Some(tx) = r.try_get::<Option<i64>, _>(2)? {
            look.lines
                .push((tx, r.try_get::<i64, _>(3)?, r.try_get::<String, _>(4)?));
        }
    }
    Ok(look)
}

/// Prunes `consent_changes`. SQLite: keeps the last `keep` lines. PostgreSQL: deletes the
/// lines of transactions below the horizon the previous prune saw, and records that bound.
pub async fn prune_lines(db: &Db, keep: i64) -> Result<u64> {
    let mut w = db.write().await?;
    let n = match db.backend {
        Backend::Postgres => {
            let below: i64 = sqlx::query_scalar(
                "UPDATE consent_changes_pruned SET below_tx = next_below_tx,
                     next_below_tx = pg_snapshot_xmin(pg_current_snapshot())::text::bigint
                 WHERE id = 1 RETURNING below_tx",
            )
            .fetch_one(&mut *w.tx)
            .await?;
            sqlx::query("DELETE FROM consent_changes WHERE feed_tx < $1")
                .bind(below)
                .execute(&mut *w.tx)
                .await?
                .rows_affected()
        }
        Backend::Sqlite => sqlx::query(
            "DELETE FROM consent_changes WHERE seq < (SELECT MAX(seq) FROM consent_changes) - $1",
        )
        .bind(keep)
        .execute(&mut *w.tx)
        .await?
        .rows_affected(),
    };
    w.commit().await?;
    Ok(n)
}
