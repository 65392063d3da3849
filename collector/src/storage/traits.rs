//! The statements on `computed_traits` (`crate::segments` checks the definitions).
use sqlx::Row;

use crate::{
    error::Result,
    ids::UnixMs,
    storage::{Db, WriteTx},
};

/// A computed trait as stored: its name, its definition (JSON text), when it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTrait {
    pub name: String,
    pub definition: String,
    pub updated_at_ms: i64,
}

/// Creates or replaces a computed trait.
pub async fn put(w: &mut WriteTx, name: &str, definition: &str, now: UnixMs) -> Result<()> {
    sqlx::query(
        "INSERT INTO computed_traits (name, definition, updated_at_ms) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET definition = excluded.definition,
         updated_at_ms = excluded.updated_at_ms",
    )
    .bind(name)
    .bind(definition)
    .bind(now.millis())
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}

/// Deletes a computed trait; false when there was none of that name.
pub async fn delete(w: &mut WriteTx, name: &str) -> Result<bool> {
    let n = sqlx::query("DELETE FROM computed_traits WHERE name = $1")
        .bind(name)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
    Ok(n > 0)
}

fn stored(r: &sqlx::any::AnyRow) -> Result<StoredTrait> {
    Ok(StoredTrait {
        name: r.try_get(0)?,
        definition: r.try_get(1)?,
        updated_at_ms: r.try_get(2)?,
    })
}

const LIST: &str = "SELECT name, definition, updated_at_ms FROM computed_traits ORDER BY name";

/// Every computed trait, by name.
pub async fn list(db: &Db) -> Result<Vec<StoredTrait>> {
    sqlx::query(LIST)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(stored)
        .collect()
}

/// Every computed trait, read in the write transaction.
pub async fn list_in(w: &mut WriteTx) -> Result<Vec<StoredTrait>> {
    sqlx::query(LIST)
        .fetch_all(&mut *w.tx)
        .await?
        .iter()
        .map(stored)
        .collect()
}
