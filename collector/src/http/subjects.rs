//! `/v1/subjects/{id}`: subject access and erasure for compliance staff (the work is in
//! `subjects/`).
use std::sync::Arc;

use axum::{
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
    Json,
};

use crate::{
    error::Result,
    http::extract::{require_admin, PathParam, QueryParams},
    http::schemas::ComplianceErrors,
    keys::Keys,
    subjects::{self, PageQuery, Subjects},
};

/// Everything held about a subject (GDPR access and portability), a page at a time.
///
/// A page of events at a time (oldest first; `next` is the cursor of the following page);
/// the first page also carries the consent records, the refused events (code, reason,
/// message id; never their payload), the audit entries, the segmentation profiles and the
/// erasure notices. Each page is audited.
#[utoipa::path(
    get,
    path = "/v1/subjects/{id}",
    tag = "compliance",
    params(
        ("id" = String, Path, description = "The subject's raw id (a pseudonym is refused)."),
        ("cursor" = Option<String>, Query, description = "`next` of the previous page."),
        ("limit" = Option<u32>, Query, description = "Events per page, 1 to 1000 (the default)."),
    ),
    responses(
        (status = 200, description = "Events and the other sections.", body = Object),
        ComplianceErrors,
    ),
    security(("bearer" = []))
)]
pub async fn access(
    State(keys): State<Arc<Keys>>,
    State(subject_requests): State<Arc<Subjects>>,
    PathParam(id): PathParam<String>,
    QueryParams(page): QueryParams<PageQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    let data = subjects::access(&subject_requests, &id, &page, caller.actor()).await?;
    Ok(Json(data).into_response())
}

/// Erases a subject (GDPR erasure); the audit chain keeps verifying. Audited.
#[utoipa::path(
    delete,
    path = "/v1/subjects/{id}",
    tag = "compliance",
    params(("id" = String, Path, description = "The subject's raw id (a pseudonym is refused).")),
    responses(
        (status = 200, description = "What was erased.", body = Object),
        ComplianceErrors,
    ),
    security(("bearer" = []))
)]
pub async fn erase(
    State(keys): State<Arc<Keys>>,
    State(subject_requests): State<Arc<Subjects>>,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    let summary = subjects::erase_subject(&subject_requests, &id, caller.actor()).await?;
    Ok(Json(summary).into_response())
}
