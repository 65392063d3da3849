//! The statements on `recommendation_feedback` (`crate::recommend::feedback` counts).
use sqlx::Row;

use crate::{
    error::Result,
    storage::{Db, WriteTx},
};

/// Adds counts per (recommender, version): impressions, clicks, conversions.
pub async fn add(
    w: &mut WriteTx,
    counts: &std::collections::BTreeMap<(String, i64), [i64; 3]>,
    now_ms: i64,
) -> Result<()> {
    for ((name, version), [impressions, clicks, conversions]) in counts {
        sqlx::query(
            "INSERT INTO recommendation_feedback
                 (name, version, impressions, clicks, conversions, updated_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name, version) DO UPDATE SET
                 impressions = recommendation_feedback.impressions + excluded.impressions,
                 clicks = recommendation_feedback.clicks + excluded.clicks,
                 conversions = recommendation_feedback.conversions + excluded.conversions,
                 updated_at_ms = excluded.updated_at_ms",
        )
        .bind(name.as_str())
        .bind(*version)
        .bind(*impressions)
        .bind(*clicks)
        .bind(*conversions)
        .bind(now_ms)
        .execute(&mut *w.tx)
        .await?;
    }
    Ok(())
}

/// A recommender's counts by version: (version, impressions, clicks, conversions).
pub async fn of(db: &Db, name: &str) -> Result<Vec<(i64, i64, i64, i64)>> {
    sqlx::query(
        "SELECT version, impressions, clicks, conversions FROM recommendation_feedback
         WHERE name = $1 ORDER BY version",
    )
    .bind(name)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
    .collect()
}
