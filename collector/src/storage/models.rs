//! The statements on `segment_models` (`crate::segments::models` decides what goes in).
use sqlx::Row;

use crate::{
    error::Result,
    storage::{Db, WriteTx},
};

/// A stored model version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredModel {
    pub segmentation: String,
    pub version: i64,
    /// `active`, `candidate` or `retired`.
    pub status: String,
    pub spec: String,
    pub model: String,
    pub report: String,
    pub trained_at_ms: i64,
    pub promoted_at_ms: Option<i64>,
}

const COLUMNS: &str =
    "segmentation, version, status, spec, model, report, trained_at_ms, promoted_at_ms";

fn stored(r: &sqlx::any::AnyRow) -> Result<StoredModel> {
    Ok(StoredModel {
        segmentation: r.try_get(0)?,
        version: r.try_get(1)?,
        status: r.try_get(2)?,
        spec: r.try_get(3)?,
        model: r.try_get(4)?,
        report: r.try_get(5)?,
        trained_at_ms: r.try_get(6)?,
        promoted_at_ms: r.try_get(7)?,
    })
}

/// Stores a new version: one more than the segmentation's last.
pub async fn insert(w: &mut WriteTx, m: &StoredModel) -> Result<i64> {
    let version: i64 = sqlx::query(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM segment_models WHERE segmentation = $1",
    )
    .bind(m.segmentation.as_str())
    .fetch_one(&mut *w.tx)
    .await?
    .try_get(0)?;
    sqlx::query(&format!(
        "INSERT INTO segment_models ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(m.segmentation.as_str())
    .bind(version)
    .bind(m.status.as_str())
    .bind(m.spec.as_str())
    .bind(m.model.as_str())
    .bind(m.report.as_str())
    .bind(m.trained_at_ms)
    .bind(m.promoted_at_ms)
    .execute(&mut *w.tx)
    .await?;
    Ok(version)
}

/// Sets a version's status (and when it was promoted, when it becomes active).
pub async fn set_status(
    w: &mut WriteTx,
    segmentation: &str,
    version: i64,
    status: &str,
    promoted_at_ms: Option<i64>,
) -> Result<()> {
    sqlx::query(
        "UPDATE segment_models SET status = $3, promoted_at_ms = COALESCE($4, promoted_at_ms)
         WHERE segmentation = $1 AND version = $2",
    )
    .bind(segmentation)
    .bind(version)
    .bind(status)
    .bind(promoted_at_ms)
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}

/// A segmentation's versions, newest first, read in the write transaction.
pub async fn versions_in(w: &mut WriteTx, segmentation: &str) -> Result<Vec<StoredModel>> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM segment_models WHERE segmentation = $1 ORDER BY version DESC"
    ))
    .bind(segmentation)
    .fetch_all(&mut *w.tx)
    .await?
    .iter()
    .map(stored)
    .collect()
}

/// Every version of every segmentation, by segmentation, newest first.
pub async fn list(db: &Db) -> Result<Vec<StoredModel>> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM segment_models ORDER BY segmentation, version DESC"
    ))
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(stored)
    .collect()
}

/// The active version of each segmentation.
pub async fn active(db: &Db) -> Result<Vec<StoredModel>> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM segment_models WHERE status = 'active' ORDER BY segmentation"
    ))
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(stored)
    .collect()
}
