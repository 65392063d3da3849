//! The statements on the named definitions users set through the admin API: audiences
//! (`audiences`, a rule each) and computed traits (`computed_traits`, a definition
//! each), both stored as JSON text with the time they were set (`crate::segments` checks
//! them). One set of statements serves both tables.
use sqlx::Row;

use crate::{
    error::Result,
    ids::UnixMs,
    storage::{Db, WriteTx},
};

/// Which definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `audiences`: a rule each.
    Audience,
    /// `computed_traits`: a definition each.
    Trait,
}

impl Kind {
    /// The table and the column holding the JSON.
    fn table(self) -> (&'static str, &'static str) {
        match self {
            Kind::Audience => ("audiences", "rule"),
            Kind::Trait => ("computed_traits", "definition"),
        }
    }
}

/// A definition as stored: its name, its JSON text, when it was last set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub name: String,
    pub json: String,
    pub updated_at_ms: i64,
}

/// Creates or replaces a definition.
pub async fn put(w: &mut WriteTx, kind: Kind, name: &str, json: &str, now: UnixMs) -> Result<()> {
    let (table, column) = kind.table();
    sqlx::query(&format!(
        "INSERT INTO {table} (name, {column}, updated_at_ms) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET {column} = excluded.{column},
         updated_at_ms = excluded.updated_at_ms"
    ))
    .bind(name)
    .bind(json)
    .bind(now.millis())
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}

/// Deletes a definition; false when there was none of that name.
pub async fn delete(w: &mut WriteTx, kind: Kind, name: &str) -> Result<bool> {
    let (table, _) = kind.table();
    let n = sqlx::query(&format!("DELETE FROM {table} WHERE name = $1"))
        .bind(name)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
    Ok(n > 0)
}

fn list_sql(kind: Kind) -> String {
    let (table, column) = kind.table();
    format!("SELECT name, {column}, updated_at_ms FROM {table} ORDER BY name")
}

fn stored(r: &sqlx::any::AnyRow) -> Result<Stored> {
    Ok(Stored {
        name: r.try_get(0)?,
        json: r.try_get(1)?,
        updated_at_ms: r.try_get(2)?,
    })
}

/// Every definition of a kind, by name.
pub async fn list(db: &Db, kind: Kind) -> Result<Vec<Stored>> {
    sqlx::query(&list_sql(kind))
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(stored)
        .collect()
}

/// Every definition of a kind, read in the write transaction.
pub async fn list_in(w: &mut WriteTx, kind: Kind) -> Result<Vec<Stored>> {
    sqlx::query(&list_sql(kind))
        .fetch_all(&mut *w.tx)
        .await?
        .iter()
        .map(stored)
        .collect()
}
