//! Data subject requests: access (everything held about one subject) and erasure. Both
//! leave an entry in the audit trail.
use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};
use sqlx::Row;

use crate::{
    error::Result, export::record_admin_act, http::require_admin, pseudonym::sha256_hex, AppState,
};

/// Everything stored about the subject whose raw id is `raw`.
pub async fn collect(state: &AppState, raw: &str) -> Result<Value> {
    let p = state.pseudonymizer.pseudonym(raw);
    let db = &state.db.pool;
    let events: Vec<Value> = sqlx::query(
        "SELECT payload, timestamp_ms, received_at_ms FROM events
         WHERE subject = $1 OR anonymous_id = $1 OR user_id = $1 ORDER BY timestamp_ms",
    )
    .bind(&p)
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|r| {
        let payload: String = r.try_get(0).unwrap_or_default();
        serde_json::from_str(&payload).unwrap_or(Value::Null)
    })
    .collect();
    let consent: Vec<Value> = sqlx::query(
        "SELECT d.data FROM consent_records c JOIN audit_data d ON d.seq = c.audit_seq
         WHERE c.subject = $1 OR c.user_id = $1 ORDER BY c.timestamp_ms",
    )
    .bind(&p)
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|r| {
        let data: String = r.try_get(0).unwrap_or_default();
        serde_json::from_str(&data).unwrap_or(Value::Null)
    })
    .collect();
    Ok(json!({"subjectId": raw, "pseudonym": p, "events": events, "consent": consent}))
}

pub async fn access(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let caller = require_admin(&state, &headers).await?;
    let data = collect(&state, &id).await?;
    let p = state.pseudonymizer.pseudonym(&id);
    let counts = json!({"events": data["events"].as_array().map_or(0, Vec::len), "consent": data["consent"].as_array().map_or(0, Vec::len)});
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
    let p = state.pseudonymizer.pseudonym(raw);
    let mut w = state.db.write().await?;
    let events =
        sqlx::query("DELETE FROM events WHERE subject = $1 OR anonymous_id = $1 OR user_id = $1")
            .bind(&p)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
    let consent = sqlx::query("DELETE FROM consent_records WHERE subject = $1 OR user_id = $1")
        .bind(&p)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
    let audit_data = sqlx::query("DELETE FROM audit_data WHERE subject = $1")
        .bind(&p)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
    let summary = json!({"subjectHash": sha256_hex(p.as_bytes()), "events": events, "consentRecords": consent, "auditData": audit_data});
    let entry = crate::audit::NewEntry {
        kind: "erasure",
        actor,
        subject: None,
        data: summary.clone(),
    };
    crate::audit::append(
        &mut w,
        vec![entry],
        state.clock.now_ms(),
        &state.pseudonymizer,
        state.config.audit_checkpoint_every,
    )
    .await?;
    w.commit().await?;
    Ok(summary)
}

pub async fn erase(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let caller = require_admin(&state, &headers).await?;
    Ok(Json(erase_subject(&state, &id, caller.actor()).await?).into_response())
}
