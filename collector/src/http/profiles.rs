//! `/v1/profiles/{subjectId}`: a subject's segmentation profile at one source (the work
//! is in `segments/`).
use std::sync::Arc;

use axum::{
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
    Json,
};

use crate::{
    clock::Clock,
    error::{Error, Result},
    http::{
        extract::{consent_reader, PathParam, QueryParams},
        schemas::ConsentReadErrors,
        ConsentQuery,
    },
    keys::Keys,
    segments::Segments,
};

/// A subject's profile at one source: what it is built from and its features now.
///
/// Kept only for subjects who granted `personalization` there (a withdrawal or an erasure
/// deletes it). With a source's server key (its own source; never from a browser) or the
/// compliance token (any source, named by `source`). Raw subject id in, looked up by
/// pseudonym. Updated from the feed within moments of each event.
#[utoipa::path(
    get,
    path = "/v1/profiles/{subjectId}",
    tag = "segmentation",
    params(("subjectId" = String, Path, description = "The subject's raw id."), ConsentQuery),
    responses(
        (status = 200, description = "The profile: events folded in, and features over 1, 7, 30 and 90 days.", body = Object),
        ConsentReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn profile(
    State(keys): State<Arc<Keys>>,
    State(segments): State<Arc<Segments>>,
    State(clock): State<Arc<dyn Clock>>,
    PathParam(subject_id): PathParam<String>,
    QueryParams(query): QueryParams<ConsentQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let source = consent_reader(&keys, &headers, query.source.as_deref()).await?;
    let Some((profile, features)) = segments
        .profile(&source, &subject_id, clock.now_ms())
        .await?
    else {
        return Err(Error::NotFound);
    };
    Ok(Json(serde_json::json!({
        "subjectId": subject_id,
        "source": source,
        "events": profile.len(),
        "features": features,
    }))
    .into_response())
}
