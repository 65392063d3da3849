//! The statements on `audit_log` (the chain) and `audit_data` (each entry's data, kept
//! apart so erasure can remove it); `crate::audit` computes the hashes.
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{
    error::Result,
    storage::{value_rows, Db, WriteTx},
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

/// An entry from a row of `seq, at_ms, kind, actor, data_hash, prev_hash, hash[, data]`.
fn entry_row(r: &sqlx::any::AnyRow, with_data: bool) -> Result<Entry> {
    Ok(Entry {
        seq: r.try_get(0)?,
        at_ms: r.try_get(1)?,
        kind: r.try_get(2)?,
        actor: r.try_get(3)?,
        data_hash: r.try_get(4)?,
        prev_hash: r.try_get(5)?,
        hash: r.try_get(6)?,
        data: if with_data { r.try_get(7)? } else { None },
    })
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

/// Stores entries: the chained fields in `audit_log`, each one's data in `audit_data`
/// under its subject (the pseudonym the data is about, if any); a few hundred per
/// statement (see `ingest::insert_consents` on why not more).
pub async fn insert_many(w: &mut WriteTx, entries: &[(Entry, Option<String>)]) -> Result<()> {
    for chunk in entries.chunks(40) {
        let log = format!(
            "INSERT INTO audit_log (seq, at_ms, kind, actor, data_hash, prev_hash, hash) VALUES {}",
            value_rows(chunk.len(), 7)
        );
        let mut q = sqlx::query(&log);
        for (e, _) in chunk {
            q = q
                .bind(e.seq)
                .bind(e.at_ms)
                .bind(&e.kind)
                .bind(&e.actor)
                .bind(&e.data_hash)
                .bind(&e.prev_hash)
                .bind(&e.hash);
        }
        q.execute(&mut *w.tx).await?;
        let data = format!(
            "INSERT INTO audit_data (seq, subject, data) VALUES {}",
            value_rows(chunk.len(), 3)
        );
        let mut q = sqlx::query(&data);
        for (e, subject) in chunk {
            q = q
                .bind(e.seq)
                .bind(subject.as_deref())
                .bind(e.data.as_deref());
        }
        q.execute(&mut *w.tx).await?;
    }
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
    rows.iter().map(|r| entry_row(r, true)).collect()
}

/// A Merkle node position: `(level, index)` (see `audit_tree`).
pub type NodeAt = (u32, u64);

/// One indexed lookup per node (`UNION ALL`): an `OR` of the pairs makes SQLite scan.
fn nodes_query(wanted: &[NodeAt]) -> String {
    (0..wanted.len())
        .map(|i| {
            format!(
                "SELECT level, idx, hash FROM audit_tree WHERE level = ${} AND idx = ${}",
                2 * i + 1,
                2 * i + 2
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

fn bind_nodes<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    wanted: &[NodeAt],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for &(level, idx) in wanted {
        q = q.bind(i64::from(level)).bind(idx as i64);
    }
    q
}

fn pick_nodes(rows: Vec<sqlx::any::AnyRow>, wanted: &[NodeAt]) -> Result<Vec<Option<String>>> {
    let mut found = std::collections::HashMap::with_capacity(rows.len());
    for r in rows {
        let level: i64 = r.try_get(0)?;
        let idx: i64 = r.try_get(1)?;
        found.insert((level as u32, idx as u64), r.try_get::<String, _>(2)?);
    }
    Ok(wanted.iter().map(|w| found.remove(w)).collect())
}

/// The stored heads (hex) of these complete subtrees, in the order asked (None where a
/// node is not stored), read inside a write.
pub async fn nodes_in(w: &mut WriteTx, wanted: &[NodeAt]) -> Result<Vec<Option<String>>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let sql = nodes_query(wanted);
    let rows = bind_nodes(sqlx::query(&sql), wanted)
        .fetch_all(&mut *w.tx)
        .await?;
    pick_nodes(rows, wanted)
}

/// As [`nodes_in`], from the committed tree.
pub async fn nodes(db: &Db, wanted: &[NodeAt]) -> Result<Vec<Option<String>>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let sql = nodes_query(wanted);
    let rows = bind_nodes(sqlx::query(&sql), wanted)
        .fetch_all(&db.pool)
        .await?;
    pick_nodes(rows, wanted)
}

/// The number of leaves of the stored tree, inside a write (the chain locked).
pub async fn tree_size(w: &mut WriteTx) -> Result<u64> {
    let n: Option<i64> = sqlx::query_scalar("SELECT MAX(idx) FROM audit_tree WHERE level = 0")
        .fetch_one(&mut *w.tx)
        .await?;
    Ok(n.map_or(0, |n| n as u64 + 1))
}

/// Stores completed subtrees: `(level, index, hex head)`.
pub async fn insert_nodes(w: &mut WriteTx, nodes: &[(u32, u64, String)]) -> Result<()> {
    for chunk in nodes.chunks(100) {
        let sql = format!(
            "INSERT INTO audit_tree (level, idx, hash) VALUES {}",
            value_rows(chunk.len(), 3)
        );
        let mut q = sqlx::query(&sql);
        for (level, idx, hash) in chunk {
            q = q.bind(i64::from(*level)).bind(*idx as i64).bind(hash);
        }
        q.execute(&mut *w.tx).await?;
    }
    Ok(())
}

/// The chained fields of entries `from..=to` (no data), in order, inside a write.
pub async fn chained_in(w: &mut WriteTx, from: i64, to: i64) -> Result<Vec<Entry>> {
    let rows = sqlx::query(
        "SELECT seq, at_ms, kind, actor, data_hash, prev_hash, hash FROM audit_log
         WHERE seq >= $1 AND seq <= $2 ORDER BY seq",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut *w.tx)
    .await?;
    rows.iter().map(|r| entry_row(r, false)).collect()
}

/// One entry with its data (None for a sequence number not in the chain).
pub async fn entry(db: &Db, seq: i64) -> Result<Option<Entry>> {
    Ok(page(db, seq - 1, i64::MIN, i64::MAX, 1)
        .await?
        .into_iter()
        .find(|e| e.seq == seq))
}

/// The first and last sequence numbers of the entries recorded at `from..=to` (ms).
pub async fn seq_bounds(db: &Db, from: i64, to: i64) -> Result<Option<(i64, i64)>> {
    let row =
        sqlx::query("SELECT MIN(seq), MAX(seq) FROM audit_log WHERE at_ms >= $1 AND at_ms <= $2")
            .bind(from)
            .bind(to)
            .fetch_one(&db.pool)
            .await?;
    let (a, b): (Option<i64>, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
    Ok(a.zip(b))
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: u64,
    /// The root, hex.
    pub root: String,
    pub signed_at_ms: i64,
    /// The C2SP signed note.
    pub note: String,
}

fn checkpoint_row(r: sqlx::any::AnyRow) -> Result<StoredCheckpoint> {
    Ok(StoredCheckpoint {
        size: r.try_get::<i64, _>(0)? as u64,
        root: r.try_get(1)?,
        signed_at_ms: r.try_get(2)?,
        note: r.try_get(3)?,
    })
}

/// Stores a signed checkpoint (one per size: a second one of the same size is skipped).
pub async fn insert_checkpoint(w: &mut WriteTx, c: &StoredCheckpoint) -> Result<()> {
    sqlx::query("INSERT INTO audit_checkpoints (size, root, signed_at_ms, note) VALUES ($1, $2, $3, $4) ON CONFLICT (size) DO NOTHING")
        .bind(c.size as i64)
        .bind(&c.root)
        .bind(c.signed_at_ms)
        .bind(&c.note)
        .execute(&mut *w.tx)
        .await?;
    Ok(())
}

/// The newest checkpoint, read inside a write or from the pool.
const LATEST_CHECKPOINT: &str =
    "SELECT size, root, signed_at_ms, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1";

/// The newest checkpoint, inside a write.
pub async fn latest_checkpoint_in(w: &mut WriteTx) -> Result<Option<StoredCheckpoint>> {
    sqlx::query(LATEST_CHECKPOINT)
        .fetch_optional(&mut *w.tx)
        .await?
        .map(checkpoint_row)
        .transpose()
}

/// The newest checkpoint.
pub async fn latest_checkpoint(db: &Db) -> Result<Option<StoredCheckpoint>> {
    sqlx::query(LATEST_CHECKPOINT)
        .fetch_optional(&db.pool)
        .await?
        .map(checkpoint_row)
        .transpose()
}

/// The checkpoint of tree size `size`, if one was signed.
pub async fn checkpoint(db: &Db, size: u64) -> Result<Option<StoredCheckpoint>> {
    sqlx::query("SELECT size, root, signed_at_ms, note FROM audit_checkpoints WHERE size = $1")
        .bind(size as i64)
        .fetch_optional(&db.pool)
        .await?
        .map(checkpoint_row)
        .transpose()
}

/// Up to `limit` checkpoints of size above `after`, oldest first.
pub async fn checkpoints(db: &Db, after: u64, limit: i64) -> Result<Vec<StoredCheckpoint>> {
    sqlx::query("SELECT size, root, signed_at_ms, note FROM audit_checkpoints WHERE size > $1 ORDER BY size LIMIT $2")
        .bind(after as i64)
        .bind(limit)
        .fetch_all(&db.pool)
        .await?
        .into_iter()
        .map(checkpoint_row)
        .collect()
}

/// Records `vkey` as a key that signs; true when it was not known before.
pub async fn add_public_key(w: &mut WriteTx, vkey: &str, now_ms: i64) -> Result<bool> {
    let done = sqlx::query("INSERT INTO audit_public_keys (vkey, first_used_ms) VALUES ($1, $2) ON CONFLICT (vkey) DO NOTHING")
        .bind(vkey)
        .bind(now_ms)
        .execute(&mut *w.tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Every key that has signed, oldest first: (vkey, first used, ms).
pub async fn public_keys(db: &Db) -> Result<Vec<(String, i64)>> {
    let rows = sqlx::query(
        "SELECT vkey, first_used_ms FROM audit_public_keys ORDER BY first_used_ms, vkey",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.into_iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// The last sequence number of the committed chain (0 when empty).
pub async fn last_seq(db: &Db) -> Result<i64> {
    let n: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_log")
        .fetch_one(&db.pool)
        .await?;
    Ok(n.unwrap_or(0))
}
