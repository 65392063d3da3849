//! `/v1/audit/export` and `/v1/audit/verify` for compliance staff (the work is in
//! `audit/`).
use std::sync::Arc;

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap},
    response::{IntoResponse, Response},
    Json,
};

use crate::{
    audit::{
        self,
        export::{Format, Window},
    },
    error::Result,
    http::extract::{require_admin, QueryParams},
    AppState,
};

/// `GET /v1/audit/export?from=&to=&format=jsonl|csv`: streamed; the export is audited.
pub async fn export(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    QueryParams(window): QueryParams<Window>,
) -> Result<Response> {
    let caller = require_admin(&state, &headers).await?;
    let (from, to) = window.bounds()?;
    let format = Format::parse(window.format.as_deref())?;
    audit::export::record_admin_act(
        &state,
        audit::Kind::AuditExport,
        caller.actor(),
        None,
        serde_json::json!({"from": window.from, "to": window.to, "format": window.format}),
    )
    .await?;
    let body = Body::from_stream(audit::export::rendered(state.db.clone(), from, to, format));
    let (ctype, ext) = match format {
        Format::Jsonl => ("application/x-ndjson", "jsonl"),
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, ctype.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"assent-audit.{ext}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// `GET /v1/audit/verify`: the verdict on the stored chain (reused for a while; see
/// `audit::export::verified`), with when it was reached.
pub async fn verify(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response> {
    require_admin(&state, &headers).await?;
    let (report, at_ms) = audit::export::verified(&state).await?;
    let mut body = serde_json::to_value(&report).expect("serializes");
    body["verifiedAt"] = assent_protocol::Timestamp::from_unix_millis(at_ms)
        .to_string()
        .into();
    Ok(Json(body).into_response())
}
