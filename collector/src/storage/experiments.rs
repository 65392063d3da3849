//! The statements on `experiment_definitions`, `experiment_assignments` and
//! `experiment_values` (`crate::experiments` decides what goes in).
use sqlx::Row;

use crate::{
    error::Result,
    ids::{Pseudonym, SourceId},
    storage::{numbered, Db, WriteTx},
};

/// One version of a definition.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDefinition {
    pub name: String,
    pub version: i64,
    /// JSON; None for a deletion.
    pub body: Option<String>,
    pub actor: String,
    pub at_ms: i64,
    /// JSON: the paths that differ from the version before.
    pub changes: String,
}

fn definition_of(r: &sqlx::any::AnyRow) -> Result<StoredDefinition> {
    Ok(StoredDefinition {
        name: r.try_get(0)?,
        version: r.try_get(1)?,
        body: r.try_get(2)?,
        actor: r.try_get(3)?,
        at_ms: r.try_get(4)?,
        changes: r.try_get(5)?,
    })
}

const DEFINITION: &str =
    "SELECT name, version, body, actor, at_ms, changes FROM experiment_definitions";

/// The newest version of definition `name` of `kind` (a deletion too).
pub async fn latest(db: &Db, kind: &str, name: &str) -> Result<Option<StoredDefinition>> {
    latest_on(&db.pool, kind, name).await
}

/// As [`latest`], inside a write (the version a new one follows).
pub async fn latest_in(
    w: &mut WriteTx,
    kind: &str,
    name: &str,
) -> Result<Option<StoredDefinition>> {
    latest_on(&mut *w.tx, kind, name).await
}

async fn latest_on<'c>(
    on: impl sqlx::Executor<'c, Database = sqlx::Any>,
    kind: &str,
    name: &str,
) -> Result<Option<StoredDefinition>> {
    sqlx::query(&format!(
        "{DEFINITION} WHERE kind = $1 AND name = $2 ORDER BY version DESC LIMIT 1"
    ))
    .bind(kind)
    .bind(name)
    .fetch_optional(on)
    .await?
    .as_ref()
    .map(definition_of)
    .transpose()
}

/// Every version of definition `name` of `kind`, oldest first.
pub async fn history(db: &Db, kind: &str, name: &str) -> Result<Vec<StoredDefinition>> {
    sqlx::query(&format!(
        "{DEFINITION} WHERE kind = $1 AND name = $2 ORDER BY version"
    ))
    .bind(kind)
    .bind(name)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(definition_of)
    .collect()
}

/// The newest version of every definition of `kind` that is not deleted, by name.
pub async fn current(db: &Db, kind: &str) -> Result<Vec<StoredDefinition>> {
    sqlx::query(&format!(
        "{DEFINITION} d WHERE kind = $1 AND body IS NOT NULL AND version =
           (SELECT MAX(version) FROM experiment_definitions e WHERE e.kind = d.kind AND e.name = d.name)
         ORDER BY name"
    ))
    .bind(kind)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(definition_of)
    .collect()
}

/// The newest change of any definition of `kind` (its time and the number of
/// versions): what a server compares to know whether what it holds is current.
pub async fn stamp(db: &Db, kind: &str) -> Result<(i64, i64)> {
    let r = sqlx::query(
        "SELECT COALESCE(MAX(at_ms), 0), COUNT(*) FROM experiment_definitions WHERE kind = $1",
    )
    .bind(kind)
    .fetch_one(&db.pool)
    .await?;
    Ok((r.try_get(0)?, r.try_get(1)?))
}

/// Writes a version.
pub async fn insert(w: &mut WriteTx, kind: &str, d: &StoredDefinition) -> Result<()> {
    sqlx::query(
        "INSERT INTO experiment_definitions (kind, name, version, body, actor, at_ms, changes)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(kind)
    .bind(d.name.as_str())
    .bind(d.version)
    .bind(d.body.as_deref())
    .bind(d.actor.as_str())
    .bind(d.at_ms)
    .bind(d.changes.as_str())
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}

/// A subject's stored assignment.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub subject: Pseudonym,
    pub variant: i64,
    pub exposed_at_ms: Option<i64>,
}

/// The assignment to `experiment` at `source` stored under any of `subjects` (the
/// subject's pseudonyms under every key: rotation keeps it).
pub async fn assignment(
    db: &Db,
    experiment: &str,
    source: &SourceId,
    subjects: &[Pseudonym],
) -> Result<Option<Assignment>> {
    if subjects.is_empty() {
        return Ok(None);
    }
    let sql = format!(
        "SELECT subject, variant, exposed_at_ms FROM experiment_assignments
         WHERE experiment = $1 AND source_id = $2 AND subject IN ({}) LIMIT 1",
        numbered(3, subjects.len())
    );
    let mut q = sqlx::query(&sql).bind(experiment).bind(source.as_str());
    for s in subjects {
        q = q.bind(s.as_str());
    }
    q.fetch_optional(&db.pool)
        .await?
        .map(|r| {
            Ok(Assignment {
                subject: Pseudonym::from_stored(r.try_get(0)?),
                variant: r.try_get(1)?,
                exposed_at_ms: r.try_get(2)?,
            })
        })
        .transpose()
}

/// Stores an assignment (kept if one is there: the first wins) and, with `exposed_at`,
/// the first exposure.
pub async fn assign(
    db: &Db,
    experiment: &str,
    source: &SourceId,
    subject: &Pseudonym,
    variant: i64,
    exposed_at: Option<i64>,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO experiment_assignments
           (experiment, source_id, subject, variant, exposed_at_ms, received_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (experiment, source_id, subject) DO UPDATE
           SET exposed_at_ms = COALESCE(experiment_assignments.exposed_at_ms, excluded.exposed_at_ms)",
    )
    .bind(experiment)
    .bind(source.as_str())
    .bind(subject.as_str())
    .bind(variant)
    .bind(exposed_at)
    .bind(now_ms)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Moves a subject's assignment and values in `experiment` from the pseudonym they were
/// stored under to `to` (after a key rotation: new events carry the new one).
pub async fn rekey(
    db: &Db,
    experiment: &str,
    source: &SourceId,
    from: &Pseudonym,
    to: &Pseudonym,
) -> Result<()> {
    let mut w = db.write().await?;
    for table in ["experiment_assignments", "experiment_values"] {
        sqlx::query(&format!(
            "UPDATE {table} SET subject = $1 WHERE experiment = $2 AND source_id = $3 AND subject = $4"
        ))
        .bind(to.as_str())
        .bind(experiment)
        .bind(source.as_str())
        .bind(from.as_str())
        .execute(&mut *w.tx)
        .await?;
    }
    w.commit().await
}

/// The exposures of a subject (any of its pseudonyms) at `source` to the experiments
/// named: (experiment, subject as stored, exposed at).
pub async fn exposures_of(
    w: &mut WriteTx,
    source: &SourceId,
    subject: &Pseudonym,
) -> Result<Vec<(String, i64)>> {
    sqlx::query(
        "SELECT experiment, exposed_at_ms FROM experiment_assignments
         WHERE source_id = $1 AND subject = $2 AND exposed_at_ms IS NOT NULL",
    )
    .bind(source.as_str())
    .bind(subject.as_str())
    .fetch_all(&mut *w.tx)
    .await?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .collect()
}

/// Adds `value` to a subject's metric of an experiment.
pub async fn add_value(
    w: &mut WriteTx,
    experiment: &str,
    source: &SourceId,
    subject: &Pseudonym,
    metric: &str,
    value: f64,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO experiment_values
           (experiment, source_id, subject, metric, value, pre_value, received_at_ms)
         VALUES ($1, $2, $3, $4, $5, 0, $6)
         ON CONFLICT (experiment, source_id, subject, metric) DO UPDATE
           SET value = experiment_values.value + excluded.value",
    )
    .bind(experiment)
    .bind(source.as_str())
    .bind(subject.as_str())
    .bind(metric)
    .bind(value)
    .bind(now_ms)
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}

/// Sets a subject's pre-exposure value of a metric (its value since exposure kept).
pub async fn set_pre_value(
    db: &Db,
    experiment: &str,
    source: &SourceId,
    subject: &Pseudonym,
    metric: &str,
    pre_value: f64,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO experiment_values
           (experiment, source_id, subject, metric, value, pre_value, received_at_ms)
         VALUES ($1, $2, $3, $4, 0, $5, $6)
         ON CONFLICT (experiment, source_id, subject, metric) DO UPDATE
           SET pre_value = excluded.pre_value",
    )
    .bind(experiment)
    .bind(source.as_str())
    .bind(subject.as_str())
    .bind(metric)
    .bind(pre_value)
    .bind(now_ms)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Exposed subjects per variant of `experiment`.
pub async fn exposed_per_variant(db: &Db, experiment: &str) -> Result<Vec<(i64, i64)>> {
    sqlx::query(
        "SELECT variant, COUNT(*) FROM experiment_assignments
         WHERE experiment = $1 AND exposed_at_ms IS NOT NULL GROUP BY variant ORDER BY variant",
    )
    .bind(experiment)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .collect()
}

/// A variant's sums of one metric over its exposed subjects (a subject without a row
/// counts 0): subjects with a value above 0, Σ y, Σ y², and with the pre-exposure value
/// x, Σ x, Σ x², Σ x·y — y being the value, or for a rate whether it is above 0.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MetricSums {
    pub positive: i64,
    pub sum: f64,
    pub sum_sq: f64,
    pub sum_pre: f64,
    pub sum_pre_sq: f64,
    pub sum_pre_value: f64,
}

/// Per variant, [`MetricSums`] of `metric` (`rate`: y is 1 when the value is above 0).
pub async fn metric_sums(
    db: &Db,
    experiment: &str,
    metric: &str,
    rate: bool,
) -> Result<Vec<(i64, MetricSums)>> {
    let y = if rate {
        "CASE WHEN v.value > 0 THEN CAST(1 AS DOUBLE PRECISION) ELSE CAST(0 AS DOUBLE PRECISION) END"
    } else {
        "v.value"
    };
    sqlx::query(&format!(
        "SELECT a.variant, SUM(CASE WHEN v.value > 0 THEN 1 ELSE 0 END), SUM({y}), SUM({y} * {y}),
                SUM(v.pre_value), SUM(v.pre_value * v.pre_value), SUM(v.pre_value * {y})
         FROM experiment_assignments a JOIN experiment_values v
           ON v.experiment = a.experiment AND v.source_id = a.source_id AND v.subject = a.subject
         WHERE a.experiment = $1 AND v.metric = $2 AND a.exposed_at_ms IS NOT NULL
         GROUP BY a.variant ORDER BY a.variant"
    ))
    .bind(experiment)
    .bind(metric)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| {
        Ok((
            r.try_get(0)?,
            MetricSums {
                positive: r.try_get(1)?,
                sum: r.try_get(2)?,
                sum_sq: r.try_get(3)?,
                sum_pre: r.try_get(4)?,
                sum_pre_sq: r.try_get(5)?,
                sum_pre_value: r.try_get(6)?,
            },
        ))
    })
    .collect()
}
