//! The statements on `sources` and `api_keys` (`crate::keys` decides what they mean).
use sqlx::Row;

use crate::{
    error::Result,
    ids::{SourceId, UnixMs},
    storage::{Db, WriteTx},
};

/// An unrevoked key row found by its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub id: String,
    pub role: String,
    pub source_id: Option<SourceId>,
    /// The digest as stored (a current one, or an earlier version's bare SHA-256).
    pub stored_digest: String,
}

/// The unrevoked key stored under either digest.
pub async fn find_key(db: &Db, digest: &str, legacy: &str) -> Result<Option<KeyRow>> {
    let row = sqlx::query(
        "SELECT id, role, source_id, key_hash FROM api_keys
         WHERE key_hash IN ($1, $2) AND revoked_at_ms IS NULL",
    )
    .bind(digest)
    .bind(legacy)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| {
        Ok(KeyRow {
            id: r.try_get(0)?,
            role: r.try_get(1)?,
            source_id: r
                .try_get::<Option<String>, _>(2)?
                .map(SourceId::from_stored),
            stored_digest: r.try_get(3)?,
        })
    })
    .transpose()
}

/// Replaces key `id`'s digest `from` by `to` (nothing when another process did first).
pub async fn rewrite_digest(w: &mut WriteTx, id: &str, from: &str, to: &str) -> Result<()> {
    sqlx::query("UPDATE api_keys SET key_hash = $1 WHERE id = $2 AND key_hash = $3")
        .bind(to)
        .bind(id)
        .bind(from)
        .execute(&mut *w.tx)
        .await?;
    Ok(())
}

/// A key to store (its digest, never the key).
#[derive(Debug, Clone)]
pub struct NewKeyRow<'a> {
    pub id: &'a str,
    pub source_id: Option<&'a SourceId>,
    pub role: &'a str,
    pub digest: &'a str,
    pub label: &'a str,
    pub created_at: UnixMs,
}

pub async fn insert_key(w: &mut WriteTx, key: NewKeyRow<'_>) -> Result<()> {
    sqlx::query("INSERT INTO api_keys (id, source_id, role, key_hash, label, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(key.id)
        .bind(key.source_id.map(SourceId::as_str))
        .bind(key.role)
        .bind(key.digest)
        .bind(key.label)
        .bind(key.created_at.millis())
        .execute(&mut *w.tx)
        .await?;
    Ok(())
}

/// Revokes key `id` at `now_ms`; false when there is no such unrevoked key.
pub async fn revoke_key(w: &mut WriteTx, id: &str, now: UnixMs) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE api_keys SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL",
    )
    .bind(now.millis())
    .bind(id)
    .execute(&mut *w.tx)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// Whether any key was ever made (revoked ones count).
pub async fn any_key(w: &mut WriteTx) -> Result<bool> {
    let any = sqlx::query("SELECT 1 FROM api_keys LIMIT 1")
        .fetch_optional(&mut *w.tx)
        .await?;
    Ok(any.is_some())
}

/// One key as `keys list` shows it (never the key itself).
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub role: String,
    pub source: Option<String>,
    pub label: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

pub async fn list_keys(db: &Db) -> Result<Vec<KeyInfo>> {
    let rows = sqlx::query(
        "SELECT k.id, k.role, s.name, k.label, k.created_at_ms, k.revoked_at_ms
         FROM api_keys k LEFT JOIN sources s ON s.id = k.source_id ORDER BY k.created_at_ms, k.id",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(KeyInfo {
                id: r.try_get(0)?,
                role: r.try_get(1)?,
                source: r.try_get(2)?,
                label: r.try_get(3)?,
                created_at_ms: r.try_get(4)?,
                revoked_at_ms: r.try_get(5)?,
            })
        })
        .collect()
}

/// A source row as `crate::keys::sources` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRow {
    pub id: SourceId,
    /// Comma-separated, normalized.
    pub allowed_origins: String,
    pub consent_group: Option<String>,
    pub trust_consent_stamps: bool,
}

pub async fn list_sources(db: &Db) -> Result<Vec<SourceRow>> {
    let rows =
        sqlx::query("SELECT id, allowed_origins, consent_group, trust_consent_stamps FROM sources")
            .fetch_all(&db.pool)
            .await?;
    rows.into_iter()
        .map(|r| {
            let trust: i64 = r.try_get(3)?;
            Ok(SourceRow {
                id: SourceId::from_stored(r.try_get(0)?),
                allowed_origins: r.try_get(1)?,
                consent_group: r.try_get(2)?,
                trust_consent_stamps: trust != 0,
            })
        })
        .collect()
}

/// The id of the source named `name`, inside a write.
pub async fn source_id_by_name(w: &mut WriteTx, name: &str) -> Result<Option<SourceId>> {
    let row = sqlx::query("SELECT id FROM sources WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *w.tx)
        .await?;
    Ok(row
        .map(|r| r.try_get(0).map(SourceId::from_stored))
        .transpose()?)
}

/// The id of the source whose id or name is `id_or_name`.
pub async fn find_source(db: &Db, id_or_name: &str) -> Result<Option<SourceId>> {
    let row = sqlx::query("SELECT id FROM sources WHERE id = $1 OR name = $1")
        .bind(id_or_name)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row
        .map(|r| r.try_get(0).map(SourceId::from_stored))
        .transpose()?)
}

pub async fn insert_source(
    w: &mut WriteTx,
    id: &SourceId,
    name: &str,
    allowed_origins: &str,
    now: UnixMs,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO sources (id, name, allowed_origins, created_at_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(id.as_str())
    .bind(name)
    .bind(allowed_origins)
    .bind(now.millis())
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}

pub async fn set_allowed_origins(w: &mut WriteTx, id: &SourceId, list: &str) -> Result<()> {
    sqlx::query("UPDATE sources SET allowed_origins = $1 WHERE id = $2")
        .bind(list)
        .bind(id.as_str())
        .execute(&mut *w.tx)
        .await?;
    Ok(())
}

pub async fn set_consent_group(w: &mut WriteTx, id: &SourceId, group: Option<&str>) -> Result<()> {
    sqlx::query("UPDATE sources SET consent_group = $1 WHERE id = $2")
        .bind(group)
        .bind(id.as_str())
        .execute(&mut *w.tx)
        .await?;
    Ok(())
}

pub async fn set_trust_consent_stamps(w: &mut WriteTx, id: &SourceId, trust: bool) -> Result<()> {
    sqlx::query("UPDATE sources SET trust_consent_stamps = $1 WHERE id = $2")
        .bind(i64::from(trust))
        .bind(id.as_str())
        .execute(&mut *w.tx)
        .await?;
    Ok(())
}
