//! Data subject requests: access (everything held about one subject) and erasure. Both
//! leave an entry in the audit trail.
use std::sync::Arc;

use axum::{
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};
use sqlx::Row;

use crate::{
    error::Result,
    export::record_admin_act,
    http::{require_admin, PathParam},
    pseudonym::sha256_hex,
    subject_index, AppState,
};

/// `$1,...,$n`: every pseudonym a subject may be stored under (one per key, current and
/// rotated out), usable several times in one statement.
fn placeholders(n: usize) -> String {
    crate::db::numbered(1, n)
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    all: &'q [String],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for p in all {
        q = q.bind(p);
    }
    q
}

/// Binds a subject's pseudonyms, then their subject keys, as
/// [`subject_index::events_of`] expects.
fn bind_events<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    all: &'q [String],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut q = bind_all(q, all);
    for p in all {
        q = q.bind(crate::pseudonym::subject_key(p));
    }
    q
}

/// Everything stored about the subject whose raw id is `raw`.
pub async fn collect(state: &AppState, raw: &str) -> Result<Value> {
    let all = state.pseudonymizer.all_pseudonyms(raw);
    let p = all[0].clone();
    let l = placeholders(all.len());
    let db = &state.db.pool;
    let sql = format!(
        "SELECT payload, timestamp_ms, received_at_ms FROM events WHERE {} ORDER BY timestamp_ms",
        subject_index::events_of(state.db.backend, all.len())
    );
    let events: Vec<Value> = bind_events(sqlx::query(&sql), &all)
        .fetch_all(db)
        .await?
        .into_iter()
        .map(|r| {
            let payload: String = r.try_get(0).unwrap_or_default();
            serde_json::from_str(&payload).unwrap_or(Value::Null)
        })
        .collect();
    let sql = format!(
        "SELECT d.data FROM consent_records c JOIN audit_data d ON d.seq = c.audit_seq
         WHERE c.subject IN ({l}) OR c.user_id IN ({l}) ORDER BY c.timestamp_ms"
    );
    let consent: Vec<Value> = bind_all(sqlx::query(&sql), &all)
        .fetch_all(db)
        .await?
        .into_iter()
        .map(|r| {
            let data: String = r.try_get(0).unwrap_or_default();
            serde_json::from_str(&data).unwrap_or(Value::Null)
        })
        .collect();
    let sql = format!(
        "SELECT message_id, code, reason, received_at_ms FROM dead_letters
         WHERE subject IN ({l}) ORDER BY received_at_ms, id"
    );
    let refused: Vec<Value> = bind_all(sqlx::query(&sql), &all)
        .fetch_all(db)
        .await?
        .into_iter()
        .map(|r| {
            json!({
                "messageId": r.try_get::<Option<String>, _>(0).unwrap_or_default(),
                "code": r.try_get::<String, _>(1).unwrap_or_default(),
                "reason": r.try_get::<String, _>(2).unwrap_or_default(),
                "receivedAt": assent_protocol::Timestamp::from_unix_millis(
                    r.try_get::<i64, _>(3).unwrap_or_default()
                ).to_string(),
            })
        })
        .collect();
    Ok(
        json!({"subjectId": raw, "pseudonym": p, "events": events, "consent": consent, "refusedEvents": refused}),
    )
}

pub async fn access(
    State(state): State<Arc<AppState>>,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let caller = require_admin(&state, &headers).await?;
    let data = collect(&state, &id).await?;
    let p = state.pseudonymizer.pseudonym(&id);
    let n = |field: &str| data[field].as_array().map_or(0, Vec::len);
    let counts = json!({"events": n("events"), "consent": n("consent"), "refusedEvents": n("refusedEvents")});
    record_admin_act(
        &state,
        "subject_access",
        caller.actor(),
        Some(p),
        json!({"subject": "(see audit_data.subject)", "returned": counts}),
    )
    .await?;
    Ok(Json(data).into_response())
}

/// Erases what is held about a subject. The audit chain keeps verifying: only the
/// erasable data rows go. The erasure entry names the subject by a hash of its
/// pseudonym, which compliance staff can recompute from the raw id.
pub async fn erase_subject(state: &AppState, raw: &str, actor: String) -> Result<Value> {
    let all = state.pseudonymizer.all_pseudonyms(raw);
    let p = all[0].clone();
    let l = placeholders(all.len());
    let mut w = state.db.write().await?;
    let sql = format!(
        "DELETE FROM events WHERE {}",
        subject_index::events_of(state.db.backend, all.len())
    );
    let events = bind_events(sqlx::query(&sql), &all)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
    let sql = format!("DELETE FROM consent_records WHERE subject IN ({l}) OR user_id IN ({l})");
    let consent = bind_all(sqlx::query(&sql), &all)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
    let sql = format!("DELETE FROM dead_letters WHERE subject IN ({l})");
    let dead_letters = bind_all(sqlx::query(&sql), &all)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
    let sql = format!("DELETE FROM audit_data WHERE subject IN ({l})");
    let audit_data = bind_all(sqlx::query(&sql), &all)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
    let summary = json!({"subjectHash": sha256_hex(p.as_bytes()), "events": events, "consentRecords": consent, "deadLetters": dead_letters, "auditData": audit_data});
    let entry = crate::audit::NewEntry {
        kind: "erasure",
        actor,
        subject: None,
        data: summary.clone(),
    };
    state.audit(&mut w, entry).await?;
    w.commit().await?;
    Ok(summary)
}

pub async fn erase(
    State(state): State<Arc<AppState>>,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let caller = require_admin(&state, &headers).await?;
    Ok(Json(erase_subject(&state, &id, caller.actor()).await?).into_response())
}
