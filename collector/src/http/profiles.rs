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
    config::Config,
    error::{Error, Result},
    http::{
        extract::{consent_reader, require_admin, PathParam, QueryParams},
        read_json,
        schemas::{AudienceWriteErrors, ComplianceErrors, ConsentReadErrors},
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

/// The audiences a subject's profile at one source is in now, by name.
///
/// Every stored audience's rule is evaluated against the profile as it is now (real time:
/// each event counts once the feed has folded it in). A subject without a profile there
/// (who did not grant `personalization`) is 404: in no audience. Who may ask: as for the
/// profile.
#[utoipa::path(
    get,
    path = "/v1/profiles/{subjectId}/segments",
    tag = "segmentation",
    params(("subjectId" = String, Path, description = "The subject's raw id."), ConsentQuery),
    responses(
        (status = 200, description = "`{subjectId, source, segments: [name]}`.", body = Object),
        ConsentReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn segments_of(
    State(keys): State<Arc<Keys>>,
    State(segments): State<Arc<Segments>>,
    State(clock): State<Arc<dyn Clock>>,
    PathParam(subject_id): PathParam<String>,
    QueryParams(query): QueryParams<ConsentQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let source = consent_reader(&keys, &headers, query.source.as_deref()).await?;
    let Some(names) = segments
        .segments_of(&source, &subject_id, clock.now_ms())
        .await?
    else {
        return Err(Error::NotFound);
    };
    Ok(
        Json(serde_json::json!({"subjectId": subject_id, "source": source, "segments": names}))
            .into_response(),
    )
}

/// Every audience (compliance token).
#[utoipa::path(
    get,
    path = "/v1/audiences",
    tag = "segmentation",
    responses(
        (status = 200, description = "`{audiences: [{name, rule, updatedAt}]}`.", body = Object),
        ComplianceErrors,
    ),
    security(("bearer" = []))
)]
pub async fn list_audiences(
    State(keys): State<Arc<Keys>>,
    State(segments): State<Arc<Segments>>,
    headers: HeaderMap,
) -> Result<Response> {
    require_admin(&keys, &headers).await?;
    let audiences = segments.audiences().await?;
    Ok(Json(serde_json::json!({ "audiences": audiences })).into_response())
}

/// Creates or replaces an audience: `{"rule": RULE}` (compliance token; audited).
///
/// A rule is `all` / `any` / `not`, `performed` (an event at least / at most so many times
/// within days or between dates), `feature` (`purchases_30d`, `first_touch.medium`…) or
/// `exists`. A rule that does not parse is refused with the JSON path of its fault, and
/// nothing is stored.
#[utoipa::path(
    put,
    path = "/v1/audiences/{name}",
    tag = "segmentation",
    params(("name" = String, Path, description = "1 to 64 lowercase letters, digits, '_' or '-'.")),
    request_body(description = "`{\"rule\": RULE}`.", content((Object = "application/json"))),
    responses(
        (status = 200, description = "The audience as stored.", body = Object),
        AudienceWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn put_audience(
    State(keys): State<Arc<Keys>>,
    State(segments): State<Arc<Segments>>,
    State(config): State<Arc<Config>>,
    PathParam(name): PathParam<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    let body = read_json(&config, &headers, body).await?;
    let Some(rule) = body
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("rule"))
    else {
        return Err(Error::BadRequest("the body is {\"rule\": RULE}".into()));
    };
    let audience = segments.set_audience(&name, rule, caller.actor()).await?;
    Ok(Json(audience).into_response())
}

/// Deletes an audience (compliance token; audited).
#[utoipa::path(
    delete,
    path = "/v1/audiences/{name}",
    tag = "segmentation",
    params(("name" = String, Path, description = "The audience's name.")),
    responses(
        (status = 200, description = "`{deleted: name}`.", body = Object),
        AudienceWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn delete_audience(
    State(keys): State<Arc<Keys>>,
    State(segments): State<Arc<Segments>>,
    PathParam(name): PathParam<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    segments.delete_audience(&name, caller.actor()).await?;
    Ok(Json(serde_json::json!({ "deleted": name })).into_response())
}
