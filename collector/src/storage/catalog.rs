//! The statements on `catalog_items`: each source's items for recommendations, with
//! their tags and whether they may be shown (`crate::recommend` decides what goes in).
use sqlx::Row;

use crate::{
    error::Result,
    ids::SourceId,
    storage::{Db, WriteTx},
};

/// An item as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredItem {
    pub item: String,
    /// JSON: `{"tags": [...], "countries": [...], "devices": [...]}`.
    pub attributes: String,
    pub available: bool,
    pub updated_at_ms: i64,
}

/// Sets an item (a new one, or every field of one there).
pub async fn upsert(w: &mut WriteTx, source: &SourceId, item: &StoredItem) -> Result<()> {
    sqlx::query(
        "INSERT INTO catalog_items (source_id, item, attributes, available, updated_at_ms)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (source_id, item) DO UPDATE SET attributes = excluded.attributes,
             available = excluded.available, updated_at_ms = excluded.updated_at_ms",
    )
    .bind(source.as_str())
    .bind(item.item.as_str())
    .bind(item.attributes.as_str())
    .bind(i64::from(item.available))
    .bind(item.updated_at_ms)
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}

/// Removes an item; whether it was there.
pub async fn delete(w: &mut WriteTx, source: &SourceId, item: &str) -> Result<bool> {
    Ok(
        sqlx::query("DELETE FROM catalog_items WHERE source_id = $1 AND item = $2")
            .bind(source.as_str())
            .bind(item)
            .execute(&mut *w.tx)
            .await?
            .rows_affected()
            > 0,
    )
}

/// Every item of a source, in item order.
pub async fn list(db: &Db, source: &SourceId) -> Result<Vec<StoredItem>> {
    sqlx::query(
        "SELECT item, attributes, available, updated_at_ms FROM catalog_items
         WHERE source_id = $1 ORDER BY item",
    )
    .bind(source.as_str())
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(StoredItem {
            item: r.try_get(0)?,
            attributes: r.try_get(1)?,
            available: r.try_get::<i64, _>(2)? != 0,
            updated_at_ms: r.try_get(3)?,
        })
    })
    .collect()
}

/// The newest change to a source's catalogue (Unix ms) and its number of items: what a
/// server compares to know whether the catalogue it holds is current.
pub async fn version(db: &Db, source: &SourceId) -> Result<(i64, i64)> {
    let r = sqlx::query(
        "SELECT COALESCE(MAX(updated_at_ms), 0), COUNT(*) FROM catalog_items WHERE source_id = $1",
    )
    .bind(source.as_str())
    .fetch_one(&db.pool)
    .await?;
    Ok((r.try_get(0)?, r.try_get(1)?))
}
