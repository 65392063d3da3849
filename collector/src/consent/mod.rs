//! Consent as the collector holds it: which stored records are in force for a subject
//! under a consent scope, in memory where it can be (`cache`), and the state in force
//! read back for callers allowed to see it.
pub mod cache;

use std::collections::BTreeMap;

use assent_protocol::Timestamp;
use serde_json::Value;
use sqlx::Row;

use crate::{error::Result, AppState};

/// `GET /v1/consent/{subjectId}`: the latest state of a subject under one consent scope
/// (raw id in, pseudonym looked up).
pub async fn current(
    state: &AppState,
    scope: &crate::keys::sources::ConsentScope,
    raw_subject: &str,
) -> Result<Option<Value>> {
    let all = state.pseudonymizer.all_pseudonyms(raw_subject);
    let members = scope.members.len();
    let sql = format!(
        "SELECT purposes, policy_version, method, origin, timestamp_ms FROM consent_records
         WHERE source_id IN ({}) AND subject IN ({})
         ORDER BY timestamp_ms DESC, received_at_ms DESC LIMIT 1",
        crate::storage::numbered(1, members),
        crate::storage::numbered(members + 1, all.len())
    );
    let mut q = sqlx::query(&sql);
    for m in &scope.members {
        q = q.bind(m);
    }
    for p in &all {
        q = q.bind(p);
    }
    let row = q.fetch_optional(&state.db.pool).await?;
    let Some(row) = row else { return Ok(None) };
    let purposes: String = row.try_get(0)?;
    let purposes: BTreeMap<String, bool> = serde_json::from_str(&purposes).unwrap_or_default();
    Ok(Some(serde_json::json!({
        "subjectId": raw_subject,
        "purposes": purposes,
        "policyVersion": row.try_get::<String, _>(1)?,
        "method": row.try_get::<String, _>(2)?,
        "source": row.try_get::<String, _>(3)?,
        "timestamp": Timestamp::from_unix_millis(row.try_get::<i64, _>(4)?).to_string(),
    })))
}
