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

/// How far a consent cache has read `consent_changes`, in each dialect's terms.
#[derive(Debug, Clone, Default)]
pub struct ChangeCursor {
    /// SQLite: the last line applied. PostgreSQL: the horizon of the last look (every line
    /// of a transaction below it is applied). 0 before the first look.
    upto: i64,
    /// PostgreSQL: the lines at or above `upto` already applied, as (transaction, seq).
    applied: std::collections::HashSet<(i64, i64)>,
}

/// What changed since a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// The buckets of the records changed since (none, when nothing did).
    Buckets(Vec<String>),
    /// The first look, more than the limit changed, or lines the cursor had not read were
    /// pruned: whatever was cached may be stale. The cursor returned is at the present.
    Restart,
}

/// The lines of `consent_changes` after `cursor` (more than `limit` is a restart), and the
/// cursor after them. On SQLite, the lines after the last one seen (its single writer makes
/// the order of lines the order of commits), provided that one is still there. On
/// PostgreSQL, where replicas commit in any order, the lines of every transaction at or
/// above the last horizon, less those already applied, read with the new horizon and the
/// pruning bound in one statement.
pub async fn changes_since(
    db: &Db,
    cursor: &ChangeCursor,
    limit: i64,
) -> Result<(Changes, ChangeCursor)> {
    match db.backend {
        Backend::Sqlite => sqlite_changes(db, cursor, limit).await,
        Backend::Postgres => postgres_changes(db, cursor, limit).await,
    }
}

async fn sqlite_changes(
    db: &Db,
    cursor: &ChangeCursor,
    limit: i64,
) -> Result<(Changes, ChangeCursor)> {
    if cursor.upto > 0 {
        let rows = sqlx::query(
            "SELECT seq, bucket FROM consent_changes WHERE seq >= $1 ORDER BY seq LIMIT $2",
        )
        .bind(cursor.upto)
        .bind(limit + 1)
        .fetch_all(&db.pool)
        .await?;
        let lines = rows
            .iter()
            .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<String, _>(1)?)))
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()?;
        // The line last seen must still be there (not pruned) for the rest to be complete.
        if lines.first().map(|l| l.0) == Some(cursor.upto) && lines.len() <= limit as usize {
            let upto = lines.last().map_or(cursor.upto, |l| l.0).max(cursor.upto);
            let buckets = lines.into_iter().skip(1).map(|(_, b)| b).collect();
            let next = ChangeCursor {
                upto,
                ..Default::default()
            };
            return Ok((Changes::Buckets(buckets), next));
        }
    }
    let last: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM consent_changes")
        .fetch_one(&db.pool)
        .await?
        .try_get(0)?;
    let next = ChangeCursor {
        upto: last,
        ..Default::default()
    };
    Ok((Changes::Restart, next))
}

async fn postgres_changes(
    db: &Db,
    cursor: &ChangeCursor,
    limit: i64,
) -> Result<(Changes, ChangeCursor)> {
    let rows = sqlx::query(
        "WITH now AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS horizon,
                             (SELECT below_tx FROM consent_changes_pruned WHERE id = 1) AS pruned)
         SELECT now.horizon, now.pruned, c.feed_tx, c.seq, c.bucket FROM now
         LEFT JOIN (SELECT feed_tx, seq, bucket FROM consent_changes
                    WHERE feed_tx >= $1 ORDER BY feed_tx, seq LIMIT $2) c ON true",
    )
    .bind(cursor.upto)
    .bind(limit + 1)
    .fetch_all(&db.pool)
    .await?;
    let first = rows.first().expect("the LEFT JOIN gives a row");
    let horizon: i64 = first.try_get(0)?;
    let pruned: i64 = first.try_get(1)?;
    let mut lines = Vec::with_capacity(rows.len());
    for r in &rows {
        if let Some(tx) = r.try_get::<Option<i64>, _>(2)? {
            lines.push((tx, r.try_get::<i64, _>(3)?, r.try_get::<String, _>(4)?));
        }
    }
    // First look, lines pruned that this cursor may not have read, or too many to drop
    // bucket by bucket: start afresh. Every line visible now is then in what loads read.
    if cursor.upto == 0 || pruned > cursor.upto || lines.len() > limit as usize {
        let next = ChangeCursor {
            upto: horizon,
            applied: lines
                .iter()
                .filter(|l| l.0 >= horizon)
                .map(|l| (l.0, l.1))
                .collect(),
        };
        return Ok((Changes::Restart, next));
    }
    let mut next = cursor.clone();
    let mut buckets = Vec::new();
    for (tx, seq, bucket) in lines {
        if next.applied.insert((tx, seq)) {
            buckets.push(bucket);
        }
    }
    next.upto = next.upto.max(horizon);
    let below = next.upto;
    next.applied.retain(|(tx, _)| *tx >= below);
    Ok((Changes::Buckets(buckets), next))
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

/// One consent record as its receipt shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRecord {
    pub consent_id: String,
    /// The pseudonym of the subject.
    pub subject: String,
    /// The purposes as stored (JSON text).
    pub purposes: String,
    pub policy_version: String,
    pub method: String,
    pub origin: String,
    pub timestamp_ms: i64,
    pub received_at_ms: i64,
    /// The audit entry that recorded it.
    pub audit_seq: i64,
}

/// A record from a row of its nine receipt columns, in [`ReceiptRecord`]'s order.
fn receipt_row(r: &sqlx::any::AnyRow) -> Result<ReceiptRecord> {
    Ok(ReceiptRecord {
        consent_id: r.try_get(0)?,
        subject: r.try_get(1)?,
        purposes: r.try_get(2)?,
        policy_version: r.try_get(3)?,
        method: r.try_get(4)?,
        origin: r.try_get(5)?,
        timestamp_ms: r.try_get(6)?,
        received_at_ms: r.try_get(7)?,
        audit_seq: r.try_get(8)?,
    })
}

/// Up to `limit` records of `source` recorded after audit entry `after_seq`, in the
/// order they were recorded, each with its audit entry's hash.
pub async fn receipts_after(
    db: &Db,
    source: &SourceId,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<(ReceiptRecord, String)>> {
    let rows = sqlx::query(
        "SELECT c.consent_id, c.subject, c.purposes, c.policy_version, c.method, c.origin,
                c.timestamp_ms, c.received_at_ms, c.audit_seq, l.hash
         FROM consent_records c JOIN audit_log l ON l.seq = c.audit_seq
         WHERE c.source_id = $1 AND c.audit_seq > $2 ORDER BY c.audit_seq LIMIT $3",
    )
    .bind(source.as_str())
    .bind(after_seq)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| Ok((receipt_row(r)?, r.try_get(9)?)))
        .collect()
}

/// The record `consent_id` of `source`, if stored.
pub async fn receipt(
    db: &Db,
    source: &SourceId,
    consent_id: &str,
) -> Result<Option<ReceiptRecord>> {
    let row = sqlx::query(
        "SELECT consent_id, subject, purposes, policy_version, method, origin, timestamp_ms,
                received_at_ms, audit_seq
         FROM consent_records WHERE source_id = $1 AND consent_id = $2",
    )
    .bind(source.as_str())
    .bind(consent_id)
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(receipt_row).transpose()
}
