//! The statements on `audit_log` (the chain) and `audit_data` (each entry's data, kept
//! apart so erasure can remove it); `crate::audit` computes the hashes.
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{
    error::Result,
    storage::{Db, WriteTx},
};

/// An entry as stored and exported: the chained fields, and the data when it has not
/// been erased.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = AuditEntry)]
pub struct Entry {
    pub seq: i64,
    pub at_ms: i64,
    pub kind: String,
    pub actor: String,
    pub data_hash: String,
    pub prev_hash: String,
    pub hash: String,
    /// The entry's data as JSON text; null once erased.
    pub data: Option<String>,
}

/// The last entry's sequence number and hash; None for an empty chain. Call it with the
/// audit chain locked ([`WriteTx::lock_audit_chain`]).
pub async fn head(w: &mut WriteTx) -> Result<Option<(i64, String)>> {
    let row = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *w.tx)
        .await?;
    Ok(row
        .map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?)))
        .transpose()?)
}

/// Stores one entry: its chained fields, and its data under `subject` (the pseudonym the
/// data is about, if any).
pub async fn insert(w: &mut WriteTx, entry: &Entry, subject: Option<&str>) -> Result<()> {
    sqlx::query("INSERT INTO audit_log (seq, at_ms, kind, actor, data_hash, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(entry.seq)
        .bind(entry.at_ms)
        .bind(&entry.kind)
        .bind(&entry.actor)
        .bind(&entry.data_hash)
        .bind(&entry.prev_hash)
        .bind(&entry.hash)
        .execute(&mut *w.tx)
        .await?;
    sqlx::query("INSERT INTO audit_data (seq, subject, data) VALUES ($1, $2, $3)")
        .bind(entry.seq)
        .bind(subject)
        .bind(entry.data.as_deref())
        .execute(&mut *w.tx)
        .await?;
    Ok(())
}

/// Up to `limit` entries with `seq > after` and `from <= at_ms <= to`, in order.
pub async fn page(db: &Db, after: i64, from: i64, to: i64, limit: i64) -> Result<Vec<Entry>> {
    let rows = sqlx::query(
        "SELECT l.seq, l.at_ms, l.kind, l.actor, l.data_hash, l.prev_hash, l.hash, d.data
         FROM audit_log l LEFT JOIN audit_data d ON d.seq = l.seq
         WHERE l.seq > $1 AND l.at_ms >= $2 AND l.at_ms <= $3 ORDER BY l.seq LIMIT $4",
    )
    .bind(after)
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Entry {
                seq: r.try_get(0)?,
                at_ms: r.try_get(1)?,
                kind: r.try_get(2)?,
                actor: r.try_get(3)?,
                data_hash: r.try_get(4)?,
                prev_hash: r.try_get(5)?,
                hash: r.try_get(6)?,
                data: r.try_get(7)?,
            })
        })
        .collect()
}
