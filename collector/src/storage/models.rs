//! The statements on the tables of model versions: `segment_models` (segmentations,
//! `crate::segments::models`) and `recommendation_models` (recommenders,
//! `crate::recommend`). Both hold the same columns under their own key; which one a
//! statement runs on is its [`Registry`]. `crate::versions` decides what goes in.
use sqlx::Row;

use crate::{
    error::Result,
    storage::{Db, WriteTx},
};

/// Which kind of model versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registry {
    /// Segmentations (`segment_models`, keyed by `segmentation`).
    Segments,
    /// Recommenders (`recommendation_models`, keyed by `name`).
    Recommendations,
}

impl Registry {
    fn table(self) -> &'static str {
        match self {
            Registry::Segments => "segment_models",
            Registry::Recommendations => "recommendation_models",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Registry::Segments => "segmentation",
            Registry::Recommendations => "name",
        }
    }

    fn columns(self) -> String {
        format!(
            "{}, version, status, spec, model, report, trained_at_ms, promoted_at_ms",
            self.key()
        )
    }
}

/// A stored model version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredModel {
    /// The segmentation's or the recommender's name.
    pub name: String,
    pub version: i64,
    /// `active`, `candidate` or `retired`.
    pub status: String,
    pub spec: String,
    pub model: String,
    pub report: String,
    pub trained_at_ms: i64,
    pub promoted_at_ms: Option<i64>,
}

fn stored(r: &sqlx::any::AnyRow) -> Result<StoredModel> {
    Ok(StoredModel {
        name: r.try_get(0)?,
        version: r.try_get(1)?,
        status: r.try_get(2)?,
        spec: r.try_get(3)?,
        model: r.try_get(4)?,
        report: r.try_get(5)?,
        trained_at_ms: r.try_get(6)?,
        promoted_at_ms: r.try_get(7)?,
    })
}

/// Stores a new version: one more than the name's last.
pub async fn insert(w: &mut WriteTx, r: Registry, m: &StoredModel) -> Result<i64> {
    let (table, key) = (r.table(), r.key());
    let version: i64 = sqlx::query(&format!(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM {table} WHERE {key} = $1"
    ))
    .bind(m.name.as_str())
    .fetch_one(&mut *w.tx)
    .await?
    .try_get(0)?;
    sqlx::query(&format!(
        "INSERT INTO {table} ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        r.columns()
    ))
    .bind(m.name.as_str())
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
    r: Registry,
    name: &str,
    version: i64,
    status: &str,
    promoted_at_ms: Option<i64>,
) -> Result<()> {
    sqlx::query(&format!(
        "UPDATE {} SET status = $3, promoted_at_ms = COALESCE($4, promoted_at_ms)
         WHERE {} = $1 AND version = $2",
        r.table(),
        r.key()
    ))
    .bind(name)
    .bind(version)
    .bind(status)
    .bind(promoted_at_ms)
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}

/// A name's versions, newest first, read in the write transaction.
pub async fn versions_in(w: &mut WriteTx, r: Registry, name: &str) -> Result<Vec<StoredModel>> {
    sqlx::query(&format!(
        "SELECT {} FROM {} WHERE {} = $1 ORDER BY version DESC",
        r.columns(),
        r.table(),
        r.key()
    ))
    .bind(name)
    .fetch_all(&mut *w.tx)
    .await?
    .iter()
    .map(stored)
    .collect()
}

/// Every version of every name, by name, newest first (without the models themselves,
/// which can be large: `model` is empty).
pub async fn list(db: &Db, r: Registry) -> Result<Vec<StoredModel>> {
    sqlx::query(&format!(
        "SELECT {key}, version, status, spec, '' AS model, report, trained_at_ms, promoted_at_ms
         FROM {table} ORDER BY {key}, version DESC",
        key = r.key(),
        table = r.table()
    ))
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(stored)
    .collect()
}

/// The active version of each name.
pub async fn active(db: &Db, r: Registry) -> Result<Vec<StoredModel>> {
    sqlx::query(&format!(
        "SELECT {} FROM {} WHERE status = 'active' ORDER BY {}",
        r.columns(),
        r.table(),
        r.key()
    ))
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(stored)
    .collect()
}

/// The active version of one name, if any.
pub async fn active_of(db: &Db, r: Registry, name: &str) -> Result<Option<StoredModel>> {
    sqlx::query(&format!(
        "SELECT {} FROM {} WHERE {} = $1 AND status = 'active'",
        r.columns(),
        r.table(),
        r.key()
    ))
    .bind(name)
    .fetch_optional(&db.pool)
    .await?
    .as_ref()
    .map(stored)
    .transpose()
}

/// The number (version) of the active version of one name, if any: what a server
/// checks to know whether the model it holds is still the active one.
pub async fn active_version(db: &Db, r: Registry, name: &str) -> Result<Option<i64>> {
    Ok(sqlx::query(&format!(
        "SELECT version FROM {} WHERE {} = $1 AND status = 'active'",
        r.table(),
        r.key()
    ))
    .bind(name)
    .fetch_optional(&db.pool)
    .await?
    .map(|r| r.try_get(0))
    .transpose()?)
}

/// One version of one name, if it exists.
pub async fn version(
    db: &Db,
    r: Registry,
    name: &str,
    version: i64,
) -> Result<Option<StoredModel>> {
    sqlx::query(&format!(
        "SELECT {} FROM {} WHERE {} = $1 AND version = $2",
        r.columns(),
        r.table(),
        r.key()
    ))
    .bind(name)
    .bind(version)
    .fetch_optional(&db.pool)
    .await?
    .as_ref()
    .map(stored)
    .transpose()
}
