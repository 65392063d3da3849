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
    subjects::{self, PageQuery},
    AppState,
};

/// `GET /v1/subjects/{id}?cursor=&limit=`: a page of what is held; each page is audited.
pub async fn access(
    State(state): State<Arc<AppState>>,
    PathParam(id): PathParam<String>,
    QueryParams(page): QueryParams<PageQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let caller = require_admin(&state, &headers).await?;
    let data = subjects::access(&state, &id, &page, caller.actor()).await?;
    Ok(Json(data).into_response())
}

/// `DELETE /v1/subjects/{id}`: erasure, audited.
pub async fn erase(
    State(state): State<Arc<AppState>>,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let caller = require_admin(&state, &headers).await?;
    let summary = subjects::erase_subject(&state, &id, caller.actor()).await?;
    Ok(Json(summary).into_response())
}
