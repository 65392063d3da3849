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
        Trail,
    },
    error::Result,
    http::extract::{require_admin, QueryParams},
    http::schemas::ComplianceErrors,
    keys::Keys,
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
    State(keys): State<Arc<Keys>>,
    State(trail): State<Arc<Trail>>,
    headers: HeaderMap,
    QueryParams(window): QueryParams<Window>,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    let (from, to) = window.bounds()?;
    let format = Format::parse(window.format.as_deref())?;
    let entry = audit::NewEntry {
        kind: audit::Kind::AuditExport,
        actor: caller.actor(),
        subject: None,
        data: serde_json::json!({"from": window.from, "to": window.to, "format": window.format}),
    };
    trail.record_alone(entry).await?;
    let body = Body::from_stream(audit::export::rendered(
        trail.db().clone(),
        from,
        to,
        format,
    ));
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
pub async fn verify(
    State(keys): State<Arc<Keys>>,
    State(trail): State<Arc<Trail>>,
    headers: HeaderMap,
) -> Result<Response> {
    require_admin(&keys, &headers).await?;
    let (report, at_ms) = audit::export::verified(&trail).await?;
    let mut body = serde_json::to_value(&report).expect("serializes");
    body["verifiedAt"] = assent_protocol::Timestamp::from_unix_millis(at_ms)
        .to_string()
        .into();
    Ok(Json(body).into_response())
}
