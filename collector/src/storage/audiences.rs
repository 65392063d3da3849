//! The statements on `audiences` (`crate::segments` checks the rules).
use sqlx::Row;

use crate::{
    error::Result,
    ids::UnixMs,
    storage::{Db, WriteTx},
};

/// An audience as stored: its name, its rule (JSON text), when it was last set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAudience {
    pub name: String,
    pub rule: String,
    pub updated_at_ms: i64,
}

/// Creates or replaces an audience.
pub async fn put(w: &mut WriteTx, name: &str, rule: &str, now: UnixMs) -> Result<()> {
    sqlx::query(
        "INSERT INTO audiences (name, rule, updated_at_ms) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET rule = excluded.rule, updated_at_ms = excluded.updated_at_ms",
    )
    .bind(name)
    .bind(rule)
    .bind(now.millis())
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}

/// Deletes an audience; false when there was none of that name.
pub async fn delete(w: &mut WriteTx, name: &str) -> Result<bool> {
    let n = sqlx::query("DELETE FROM audiences WHERE name = $1")
        .bind(name)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
    Ok(n > 0)
}

/// Every audience, by name.
pub async fn list(db: &Db) -> Result<Vec<StoredAudience>> {
    let rows = sqlx::query("SELECT name, rule, updated_at_ms FROM audiences ORDER BY name")
        .fetch_all(&db.pool)
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(StoredAudience {
                name: r.try_get(0)?,
                rule: r.try_get(1)?,
                updated_at_ms: r.try_get(2)?,
            })
        })
        .collect()
}
