//! The statements on `settings`.
use sqlx::Row;

use crate::{
    error::Result,
    ids::UnixMs,
    storage::{Db, WriteTx},
};

/// A setting's stored value and when it was set, if it was.
pub async fn get(db: &Db, name: &str) -> Result<Option<(String, i64)>> {
    let row = sqlx::query("SELECT value, updated_at_ms FROM settings WHERE name = $1")
        .bind(name)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

/// Sets a setting.
pub async fn put(w: &mut WriteTx, name: &str, value: &str, now: UnixMs) -> Result<()> {
    sqlx::query(
        "INSERT INTO settings (name, value, updated_at_ms) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value,
         updated_at_ms = excluded.updated_at_ms",
    )
    .bind(name)
    .bind(value)
    .bind(now.millis())
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}
