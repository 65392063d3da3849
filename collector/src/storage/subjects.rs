//! The statements of subject access, erasure and retention, over the tables the registry
//! lists (`subject_data`); `crate::subjects` decides what a request reads or deletes.
//! `all` is every pseudonym one subject may be stored under (one per key, current and
//! rotated out).
use sqlx::Row;

use crate::{
    error::Result,
    ids::{Pseudonym, UnixMs},
    pseudonym::subject_key,
    storage::{numbered, subject_data::SubjectTable, subject_index, Db, WriteTx},
};

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn bind_all<'q>(mut q: Query<'q>, all: &'q [Pseudonym]) -> Query<'q> {
    for p in all {
        q = q.bind(p.as_str());
    }
    q
}

/// Binds a subject's pseudonyms, then their subject keys, as
/// [`subject_index::events_of`] expects.
fn bind_events<'q>(q: Query<'q>, all: &'q [Pseudonym]) -> Query<'q> {
    let mut q = bind_all(q, all);
    for p in all {
        q = q.bind(subject_key(p.as_str()));
    }
    q
}

/// One stored event of a subject, and where it sorts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventOfSubject {
    /// The event as stored (pseudonymized JSON).
    pub payload: String,
    pub timestamp_ms: i64,
    pub source_id: String,
    pub message_id: String,
}

/// Up to `limit` of the subject's events after `(timestamp, source, message id)`, in
/// that order.
pub async fn events_after(
    db: &Db,
    all: &[Pseudonym],
    after: (i64, String, String),
    limit: usize,
) -> Result<Vec<EventOfSubject>> {
    let n = all.len();
    let sql = format!(
        "SELECT payload, timestamp_ms, source_id, message_id FROM events
         WHERE ({}) AND (timestamp_ms, source_id, message_id) > (${}, ${}, ${})
         ORDER BY timestamp_ms, source_id, message_id LIMIT ${}",
        subject_index::events_of(db.backend, n),
        2 * n + 1,
        2 * n + 2,
        2 * n + 3,
        2 * n + 4
    );
    let rows = bind_events(sqlx::query(&sql), all)
        .bind(after.0)
        .bind(after.1)
        .bind(after.2)
        .bind(limit as i64)
        .fetch_all(&db.pool)
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(EventOfSubject {
                payload: r.try_get(0)?,
                timestamp_ms: r.try_get(1)?,
                source_id: r.try_get(2)?,
                message_id: r.try_get(3)?,
            })
        })
        .collect()
}

/// The audit data (JSON text) of the subject's consent records, oldest first.
pub async fn consent_records(db: &Db, all: &[Pseudonym]) -> Result<Vec<String>> {
    let l = numbered(1, all.len());
    let sql = format!(
        "SELECT d.data FROM consent_records c JOIN audit_data d ON d.seq = c.audit_seq
         WHERE c.subject IN ({l}) OR c.user_id IN ({l}) ORDER BY c.timestamp_ms"
    );
    let rows = bind_all(sqlx::query(&sql), all).fetch_all(&db.pool).await?;
    rows.into_iter()
        .map(|r| Ok(r.try_get::<Option<String>, _>(0)?.unwrap_or_default()))
        .collect()
}

/// A refused event of the subject, as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterOfSubject {
    pub message_id: Option<String>,
    pub code: String,
    pub reason: String,
    pub received_at_ms: i64,
}

/// The subject's refused events, oldest first (dead letters expire after
/// `dead_letter_retention_days`, which bounds these).
pub async fn dead_letters(db: &Db, all: &[Pseudonym]) -> Result<Vec<DeadLetterOfSubject>> {
    let l = numbered(1, all.len());
    let sql = format!(
        "SELECT message_id, code, reason, received_at_ms FROM dead_letters
         WHERE subject IN ({l}) ORDER BY received_at_ms, id"
    );
    let rows = bind_all(sqlx::query(&sql), all).fetch_all(&db.pool).await?;
    rows.into_iter()
        .map(|r| {
            Ok(DeadLetterOfSubject {
                message_id: r.try_get(0)?,
                code: r.try_get(1)?,
                reason: r.try_get(2)?,
                received_at_ms: r.try_get(3)?,
            })
        })
        .collect()
}

/// An audit entry whose data is about the subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditOfSubject {
    pub seq: i64,
    pub kind: String,
    pub at_ms: i64,
    /// JSON text.
    pub data: String,
}

pub async fn audit_entries(db: &Db, all: &[Pseudonym]) -> Result<Vec<AuditOfSubject>> {
    let l = numbered(1, all.len());
    let sql = format!(
        "SELECT d.seq, l.kind, l.at_ms, d.data FROM audit_data d JOIN audit_log l ON l.seq = d.seq
         WHERE d.subject IN ({l}) ORDER BY d.seq"
    );
    let rows = bind_all(sqlx::query(&sql), all).fetch_all(&db.pool).await?;
    rows.into_iter()
        .map(|r| {
            Ok(AuditOfSubject {
                seq: r.try_get(0)?,
                kind: r.try_get(1)?,
                at_ms: r.try_get(2)?,
                data: r.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
            })
        })
        .collect()
}

/// The events of the subject's segmentation profiles: (source, the event as JSON, when
/// it was folded in), by source then time.
pub async fn profile_events(db: &Db, all: &[Pseudonym]) -> Result<Vec<(String, String, i64)>> {
    let l = numbered(1, all.len());
    let sql = format!(
        "SELECT source_id, event, received_at_ms FROM profile_events
         WHERE subject IN ({l}) OR origin_subject IN ({l}) ORDER BY source_id, at_ms, message_id"
    );
    let rows = bind_all(sqlx::query(&sql), all).fetch_all(&db.pool).await?;
    rows.into_iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

/// The subject's audience memberships: (audience, source, since), by audience.
pub async fn audience_memberships(
    db: &Db,
    all: &[Pseudonym],
) -> Result<Vec<(String, String, i64)>> {
    let l = numbered(1, all.len());
    let sql = format!(
        "SELECT audience, source_id, since_ms FROM audience_members WHERE subject IN ({l})
         ORDER BY audience, source_id"
    );
    let rows = bind_all(sqlx::query(&sql), all).fetch_all(&db.pool).await?;
    rows.into_iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

/// The subject's experiment assignments: (experiment, source, variant index, exposed at).
pub async fn experiment_assignments(
    db: &Db,
    all: &[Pseudonym],
) -> Result<Vec<(String, String, i64, Option<i64>)>> {
    let l = numbered(1, all.len());
    let sql = format!(
        "SELECT experiment, source_id, variant, exposed_at_ms FROM experiment_assignments
         WHERE subject IN ({l}) ORDER BY experiment, source_id"
    );
    let rows = bind_all(sqlx::query(&sql), all).fetch_all(&db.pool).await?;
    rows.into_iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
        .collect()
}

/// The subject's metric values in experiments: (experiment, source, metric, value).
pub async fn experiment_values(
    db: &Db,
    all: &[Pseudonym],
) -> Result<Vec<(String, String, String, f64)>> {
    let l = numbered(1, all.len());
    let sql = format!(
        "SELECT experiment, source_id, metric, value FROM experiment_values
         WHERE subject IN ({l}) ORDER BY experiment, source_id, metric"
    );
    let rows = bind_all(sqlx::query(&sql), all).fetch_all(&db.pool).await?;
    rows.into_iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
        .collect()
}

/// The subject's entries into and exits from audiences: (audience, source, at, entered),
/// oldest first.
pub async fn audience_changes(
    db: &Db,
    all: &[Pseudonym],
) -> Result<Vec<(String, String, i64, bool)>> {
    let l = numbered(1, all.len());
    let sql = format!(
        "SELECT audience, source_id, at_ms, entered FROM audience_changes WHERE subject IN ({l})
         ORDER BY at_ms, audience, source_id, entered"
    );
    let rows = bind_all(sqlx::query(&sql), all).fetch_all(&db.pool).await?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get::<i64, _>(3)? != 0,
            ))
        })
        .collect()
}

/// The merges of the subject's profiles: (source, merged away, merged into, kind, at).
pub async fn identity_links(
    db: &Db,
    all: &[Pseudonym],
) -> Result<Vec<(String, String, String, String, i64)>> {
    let l = numbered(1, all.len());
    let sql = format!(
        "SELECT source_id, previous_id, subject, kind, at_ms FROM identity_links
         WHERE previous_id IN ({l}) OR subject IN ({l}) ORDER BY at_ms, source_id, previous_id"
    );
    let rows = bind_all(sqlx::query(&sql), all).fetch_all(&db.pool).await?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            ))
        })
        .collect()
}

/// The duplicate proposals naming the subject: (source, kept, merging, score, status).
pub async fn duplicate_proposals(
    db: &Db,
    all: &[Pseudonym],
) -> Result<Vec<(String, String, String, String, String)>> {
    let l = numbered(1, all.len());
    let sql = format!(
        "SELECT source_id, subject, previous_id, score, status FROM duplicate_proposals
         WHERE subject IN ({l}) OR previous_id IN ({l}) ORDER BY source_id, subject, previous_id"
    );
    let rows = bind_all(sqlx::query(&sql), all).fetch_all(&db.pool).await?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            ))
        })
        .collect()
}

/// When the subject was erased before (the erasure notices kept for the feed's
/// consumers), oldest first.
pub async fn erasure_notices(db: &Db, all: &[Pseudonym]) -> Result<Vec<i64>> {
    let l = numbered(1, all.len());
    let sql =
        format!("SELECT received_at_ms FROM erasure_notices WHERE subject IN ({l}) ORDER BY seq");
    let rows = bind_all(sqlx::query(&sql), all).fetch_all(&db.pool).await?;
    rows.into_iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Deletes the subject's rows from `table`, `batch` rows per transaction (see
/// [`Db::delete_in_batches`]); returns how many. None for a table erasure does not empty.
pub async fn erase(
    db: &Db,
    table: &SubjectTable,
    all: &[Pseudonym],
    batch: i64,
) -> Result<Option<u64>> {
    let Some(sql) = table.erase_sql(db.backend, all.len()) else {
        return Ok(None);
    };
    let n = db
        .delete_in_batches(|| bind_events(sqlx::query(&sql), all).bind(batch))
        .await?;
    Ok(Some(n))
}

/// Writes one erasure notice per pseudonym, for the feed's consumers.
pub async fn insert_erasure_notices(w: &mut WriteTx, all: &[Pseudonym], now: UnixMs) -> Result<()> {
    for pseudonym in all {
        sqlx::query("INSERT INTO erasure_notices (subject, received_at_ms) VALUES ($1, $2)")
            .bind(pseudonym.as_str())
            .bind(now.millis())
            .execute(&mut *w.tx)
            .await?;
    }
    Ok(())
}

/// Deletes the rows of `table` that expired before `before`, `batch` rows per
/// transaction; returns how many.
pub async fn expire(db: &Db, table: &SubjectTable, before: UnixMs, batch: i64) -> Result<u64> {
    let sql = table.expire_sql();
    db.delete_in_batches(|| sqlx::query(&sql).bind(before.millis()).bind(batch))
        .await
}
