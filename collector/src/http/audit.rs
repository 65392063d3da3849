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
    http::schemas::ComplianceErrors,
    AppState,
};

/// The audit trail, streamed as JSONL or CSV (constant memory). Audited.
#[utoipa::path(
    get,
    path = "/v1/audit/export",
    tag = "compliance",
    params(
        ("from" = Option<String>, Query, format = DateTime, description = "First time included (ISO 8601)."),
        ("to" = Option<String>, Query, format = DateTime, description = "Last time included (ISO 8601)."),
        ("format" = Option<String>, Query, description = "`jsonl` (the default) or `csv`."),
    ),
    responses(
        (status = 200, description = "One entry per line.", content(
            (crate::audit::Entry = "application/x-ndjson"),
            (String = "text/csv")
        )),
        ComplianceErrors,
    ),
    security(("bearer" = []))
)]
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

/// Verifies the stored chain and its signed checkpoints.
///
/// The verdict is reused for a while (`audit::export::verified`); `verifiedAt` says when
/// it was reached.
#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    tag = "compliance",
    responses(
        (status = 200, description = "The verdict.", body = crate::audit::Report),
        ComplianceErrors,
    ),
    security(("bearer" = []))
)]
pub async fn verify(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response> {
    require_admin(&state, &headers).await?;
    let (report, at_ms) = audit::export::verified(&state).await?;
    let mut body = serde_json::to_value(&report).expect("serializes");
    body["verifiedAt"] = assent_protocol::Timestamp::from_unix_millis(at_ms)
        .to_string()
        .into();
    Ok(Json(body).into_response())
}
