//! `/v1/profiles`, `/v1/audiences`, `/v1/traits`: segmentation profiles, audiences and
//! their members, computed traits (the work is in `segments/`).
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

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
    segments::{models::Training, Segments},
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
        (status = 200, description = "The profile: events folded in, features over 1, 7, 30 and 90 days, computed traits, and audiences with the time each was entered (`segments: [{audience, since}]`).", body = Object),
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
    let Some(view) = segments
        .profile(&source, &subject_id, clock.now_ms())
        .await?
    else {
        return Err(Error::NotFound);
    };
    Ok(Json(serde_json::json!({
        "subjectId": subject_id,
        "source": source,
        "events": view.profile.len(),
        "features": view.features,
        "traits": view.traits,
        "segments": view.segments,
    }))
    .into_response())
}

/// The audiences a subject's profile at one source is in now, by name.
///
/// Membership is decided as each event is folded in from the feed (real time), when an
/// audience or computed trait is set (backfilled from stored history), and by a periodic
/// sweep that lets time windows lapse. A subject without a profile there (who did not
/// grant `personalization`) is 404: in no audience. Who may ask: as for the profile.
#[utoipa::path(
    get,
    path = "/v1/profiles/{subjectId}/segments",
    tag = "segmentation",
    params(("subjectId" = String, Path, description = "The subject's raw id."), ConsentQuery),
    responses(
        (status = 200, description = "`{subjectId, source, segments: [audience], clusters: {segmentation: cluster}, sparse}`: the audiences, the cluster of each active segmentation model (none for a profile without its features), and whether the profile is too sparse to personalize on (fewer than 3 events in 90 days: show generic content).", body = Object),
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
    let Some(memberships) = segments.segments_of(&source, &subject_id).await? else {
        return Err(Error::NotFound);
    };
    let names: Vec<String> = memberships.into_iter().map(|m| m.audience).collect();
    let (clusters, sparse) = segments
        .clusters_of(&source, &subject_id, clock.now_ms())
        .await?
        .unwrap_or_default();
    Ok(Json(serde_json::json!({
        "subjectId": subject_id, "source": source, "segments": names, "clusters": clusters,
        "sparse": sparse,
    }))
    .into_response())
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
/// within days or between dates), `feature` (`purchases_30d`, `first_touch.medium`…),
/// `trait` (a computed trait compares so) or `exists` (a computed trait has a value). A
/// rule that does not parse, or reads a computed trait not defined, is refused with the
/// JSON path of its fault, and nothing is stored. Its members are decided from stored
/// history before the answer, which says how many entered and left (`backfill`).
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
    let audience = segments
        .set_audience(&name, rule, caller.actor(), false)
        .await?;
    Ok(Json(audience).into_response())
}

/// Creates an audience: `{"name": NAME, "rule": RULE}` (compliance token; audited);
/// refused when one of that name exists (`PUT /v1/audiences/{name}` replaces).
#[utoipa::path(
    post,
    path = "/v1/audiences",
    tag = "segmentation",
    request_body(description = "`{\"name\": NAME, \"rule\": RULE}`.", content((Object = "application/json"))),
    responses(
        (status = 200, description = "The audience as stored, and its backfill.", body = Object),
        AudienceWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn create_audience(
    State(keys): State<Arc<Keys>>,
    State(segments): State<Arc<Segments>>,
    State(config): State<Arc<Config>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    let body = read_json(&config, &headers, body).await?;
    let fields = body.as_object().filter(|o| o.len() == 2);
    let (Some(name), Some(rule)) = (
        fields.and_then(|o| o.get("name")).and_then(|n| n.as_str()),
        fields.and_then(|o| o.get("rule")),
    ) else {
        return Err(Error::BadRequest(
            "the body is {\"name\": NAME, \"rule\": RULE}".into(),
        ));
    };
    let audience = segments
        .set_audience(name, rule, caller.actor(), true)
        .await?;
    Ok(Json(audience).into_response())
}

/// `?source=&after=&limit=`: a page of a list at one source.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The source (id or name): required with the compliance token; with a server key,
    /// its own source or absent.
    pub source: Option<String>,
    /// Where the page starts: the `next` of the page before.
    pub after: Option<String>,
    /// How many (1 to 1000; 100 unless given).
    pub limit: Option<u32>,
}

impl PageQuery {
    fn limit(&self) -> Result<u32> {
        match self.limit.unwrap_or(100) {
            n @ 1..=1000 => Ok(n),
            _ => Err(Error::BadRequest("limit: from 1 to 1000".into())),
        }
    }
}

/// A page of an audience's members at one source, by pseudonym.
///
/// `{members: [{subject, since}], next}`: `next` is the `after` of the next page (null at
/// the end). Who may ask: as for a profile.
#[utoipa::path(
    get,
    path = "/v1/audiences/{name}/members",
    tag = "segmentation",
    params(("name" = String, Path, description = "The audience's name."), PageQuery),
    responses(
        (status = 200, description = "`{members: [{subject, since}], next}`.", body = Object),
        ConsentReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn members(
    State(keys): State<Arc<Keys>>,
    State(segments): State<Arc<Segments>>,
    PathParam(name): PathParam<String>,
    QueryParams(query): QueryParams<PageQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let source = consent_reader(&keys, &headers, query.source.as_deref()).await?;
    let page = segments
        .members(&name, &source, query.after.as_deref(), query.limit()?)
        .await?;
    Ok(Json(serde_json::json!({"members": page.items, "next": page.next})).into_response())
}

/// Whether one subject is in an audience at one source, and since when: the point lookup
/// for flags and experiments.
///
/// `{subjectId, audience, member, since}` (`since` null when not a member). Raw subject id
/// in, looked up by pseudonym. Who may ask: as for a profile.
#[utoipa::path(
    get,
    path = "/v1/audiences/{name}/members/{subjectId}",
    tag = "segmentation",
    params(
        ("name" = String, Path, description = "The audience's name."),
        ("subjectId" = String, Path, description = "The subject's raw id."),
        ConsentQuery
    ),
    responses(
        (status = 200, description = "`{subjectId, audience, member, since}`.", body = Object),
        ConsentReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn member(
    State(keys): State<Arc<Keys>>,
    State(segments): State<Arc<Segments>>,
    PathParam((name, subject_id)): PathParam<(String, String)>,
    QueryParams(query): QueryParams<ConsentQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let source = consent_reader(&keys, &headers, query.source.as_deref()).await?;
    let found = segments.membership(&name, &source, &subject_id).await?;
    Ok(Json(serde_json::json!({
        "subjectId": subject_id,
        "audience": name,
        "member": found.is_some(),
        "since": found.map(|m| m.since),
    }))
    .into_response())
}

/// A page of an audience's entries and exits at one source, oldest first.
///
/// `{changes: [{subject, change: "entered" | "exited", at}], next}`. A withdrawal of
/// `personalization` or an erasure deletes the subject's history with the rest. Who may
/// ask: as for a profile.
#[utoipa::path(
    get,
    path = "/v1/audiences/{name}/changes",
    tag = "segmentation",
    params(("name" = String, Path, description = "The audience's name."), PageQuery),
    responses(
        (status = 200, description = "`{changes: [{subject, change, at}], next}`.", body = Object),
        ConsentReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn changes(
    State(keys): State<Arc<Keys>>,
    State(segments): State<Arc<Segments>>,
    PathParam(name): PathParam<String>,
    QueryParams(query): QueryParams<PageQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let source = consent_reader(&keys, &headers, query.source.as_deref()).await?;
    let page = segments
        .changes(&name, &source, query.after.as_deref(), query.limit()?)
        .await?;
    Ok(Json(serde_json::json!({"changes": page.items, "next": page.next})).into_response())
}

/// Every computed trait (compliance token).
#[utoipa::path(
    get,
    path = "/v1/traits",
    tag = "segmentation",
    responses(
        (status = 200, description = "`{traits: [{definition, updatedAt}]}`.", body = Object),
        ComplianceErrors,
    ),
    security(("bearer" = []))
)]
pub async fn list_traits(
    State(keys): State<Arc<Keys>>,
    State(segments): State<Arc<Segments>>,
    headers: HeaderMap,
) -> Result<Response> {
    require_admin(&keys, &headers).await?;
    let traits = segments.traits().await?;
    Ok(Json(serde_json::json!({ "traits": traits })).into_response())
}

/// Creates or replaces a computed trait (compliance token; audited).
///
/// The body is its definition, as Segment Engage's kinds: `{"name", "kind": "count" |
/// "sum" | "average" | "min" | "max" | "most_frequent" | "first" | "last" | "unique_list" |
/// "unique_count", "property", "event", "window_days"}`. Audiences are decided again
/// (their rules may read it). A definition that does not parse is refused, nothing stored.
#[utoipa::path(
    put,
    path = "/v1/traits/{name}",
    tag = "segmentation",
    params(("name" = String, Path, description = "1 to 64 lowercase letters, digits, '_' or '-'; the definition's name.")),
    request_body(description = "The definition.", content((Object = "application/json"))),
    responses(
        (status = 200, description = "The trait as stored.", body = Object),
        AudienceWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn put_trait(
    State(keys): State<Arc<Keys>>,
    State(segments): State<Arc<Segments>>,
    State(config): State<Arc<Config>>,
    PathParam(name): PathParam<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    let body = read_json(&config, &headers, body).await?;
    let stored = segments.set_trait(&name, &body, caller.actor()).await?;
    Ok(Json(stored).into_response())
}

/// Deletes a computed trait (compliance token; audited); refused while an audience reads it.
#[utoipa::path(
    delete,
    path = "/v1/traits/{name}",
    tag = "segmentation",
    params(("name" = String, Path, description = "The trait's name.")),
    responses(
        (status = 200, description = "`{deleted: name}`.", body = Object),
        AudienceWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn delete_trait(
    State(keys): State<Arc<Keys>>,
    State(segments): State<Arc<Segments>>,
    PathParam(name): PathParam<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    segments.delete_trait(&name, caller.actor()).await?;
    Ok(Json(serde_json::json!({ "deleted": name })).into_response())
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

/// Every segmentation and its model versions, newest first (compliance token).
#[utoipa::path(
    get,
    path = "/v1/segmentations",
    tag = "segmentation",
    responses(
        (status = 200, description = "`{segmentations: {name: [{version, status, training, report, trainedAt, promotedAt}]}}`.", body = Object),
        ComplianceErrors,
    ),
    security(("bearer" = []))
)]
pub async fn segmentations(
    State(keys): State<Arc<Keys>>,
    State(segments): State<Arc<Segments>>,
    headers: HeaderMap,
) -> Result<Response> {
    require_admin(&keys, &headers).await?;
    let models = segments.models().await?;
    Ok(Json(serde_json::json!({ "segmentations": models })).into_response())
}

/// Trains a new model version of a segmentation on every stored profile (compliance
/// token; audited).
///
/// The body: `{"features": [numeric feature], "clusters": {"fixed": K} | {"best": {"from",
/// "to"}}, "n_init", "seed", "outliers": {"robust_z": {"threshold"}} | {"iqr": {"k"}}}`.
/// Sparse, bot-like and outlying profiles are left out. The version becomes active if its
/// silhouette is not worse than the active one's, else stays a candidate. Large
/// trainings belong to `assent-collector segments train`, which shows progress.
#[utoipa::path(
    post,
    path = "/v1/segmentations/{name}/models",
    tag = "segmentation",
    params(("name" = String, Path, description = "1 to 64 lowercase letters, digits, '_' or '-'.")),
    request_body(description = "The training spec.", content((Object = "application/json"))),
    responses(
        (status = 200, description = "The version: `{version, status, training, report, trainedAt, promotedAt}`.", body = Object),
        AudienceWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn train(
    State(keys): State<Arc<Keys>>,
    State(segments): State<Arc<Segments>>,
    State(config): State<Arc<Config>>,
    PathParam(name): PathParam<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    let body = read_json(&config, &headers, body).await?;
    let training = Training::parse(&body)?;
    let version = segments
        .train(&name, &training, caller.actor(), &|_| {})
        .await?;
    Ok(Json(version).into_response())
}

/// Makes a version the active one: `{"version": N}` (compliance token; audited).
#[utoipa::path(
    post,
    path = "/v1/segmentations/{name}/promote",
    tag = "segmentation",
    params(("name" = String, Path, description = "The segmentation.")),
    request_body(description = "`{\"version\": N}`.", content((Object = "application/json"))),
    responses(
        (status = 200, description = "The version now active.", body = Object),
        AudienceWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn promote(
    State(keys): State<Arc<Keys>>,
    State(segments): State<Arc<Segments>>,
    State(config): State<Arc<Config>>,
    PathParam(name): PathParam<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    let body = read_json(&config, &headers, body).await?;
    let Some(version) = body
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("version"))
        .and_then(Value::as_i64)
    else {
        return Err(Error::BadRequest("the body is {\"version\": N}".into()));
    };
    let done = segments.promote(&name, version, caller.actor()).await?;
    Ok(Json(done).into_response())
}

/// Brings back the version active before the active one (compliance token; audited).
#[utoipa::path(
    post,
    path = "/v1/segmentations/{name}/rollback",
    tag = "segmentation",
    params(("name" = String, Path, description = "The segmentation.")),
    responses(
        (status = 200, description = "The version now active.", body = Object),
        AudienceWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn rollback(
    State(keys): State<Arc<Keys>>,
    State(segments): State<Arc<Segments>>,
    PathParam(name): PathParam<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    let done = segments.rollback(&name, caller.actor()).await?;
    Ok(Json(done).into_response())
}

/// The real-time segmentation switch (compliance token): `{enabled, setAt}`.
#[utoipa::path(
    get,
    path = "/v1/segmentation/realtime",
    tag = "segmentation",
    responses(
        (status = 200, description = "`{enabled, setAt}` (`setAt` null: the configured value).", body = Object),
        ComplianceErrors,
    ),
    security(("bearer" = []))
)]
pub async fn realtime(
    State(keys): State<Arc<Keys>>,
    State(segments): State<Arc<Segments>>,
    headers: HeaderMap,
) -> Result<Response> {
    require_admin(&keys, &headers).await?;
    Ok(Json(segments.realtime().await?).into_response())
}

/// Turns real-time segmentation on or off for every replica, without a restart:
/// `{"enabled": BOOL}` (compliance token; audited).
///
/// Off, feed items wait in the feed (profiles, memberships and clusters stay as they
/// are); on again, they are caught up in order. Takes effect within a second.
#[utoipa::path(
    put,
    path = "/v1/segmentation/realtime",
    tag = "segmentation",
    request_body(description = "`{\"enabled\": BOOL}`.", content((Object = "application/json"))),
    responses(
        (status = 200, description = "`{enabled, setAt}`.", body = Object),
        AudienceWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn set_realtime(
    State(keys): State<Arc<Keys>>,
    State(segments): State<Arc<Segments>>,
    State(config): State<Arc<Config>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    let body = read_json(&config, &headers, body).await?;
    let Some(enabled) = body
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("enabled"))
        .and_then(Value::as_bool)
    else {
        return Err(Error::BadRequest("the body is {\"enabled\": BOOL}".into()));
    };
    let done = segments.set_realtime(enabled, caller.actor()).await?;
    Ok(Json(done).into_response())
}

/// `?source=&threshold=`: the source scanned, and the score proposed pairs reach.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ScanQuery {
    /// The source (id or name).
    pub source: String,
    /// From 0 to 1 (0.85 unless given).
    pub threshold: Option<f64>,
}

/// Scans the profiles at a source for duplicates (compliance token; audited).
///
/// Profiles' identify traits (`name` or `firstName` + `lastName`, `email`, `phone`,
/// `address`) are normalized and compared within blocks (the name's first letters, the
/// email, the phone); pairs at or above `threshold` replace the undecided proposals.
#[utoipa::path(
    post,
    path = "/v1/duplicates/scan",
    tag = "segmentation",
    params(ScanQuery),
    responses(
        (status = 200, description = "`{profiles, candidates, proposed}`.", body = Object),
        AudienceWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn scan_duplicates(
    State(keys): State<Arc<Keys>>,
    State(segments): State<Arc<Segments>>,
    QueryParams(query): QueryParams<ScanQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    let source = keys
        .find_source(&query.source)
        .await?
        .ok_or(Error::NotFound)?;
    let threshold = query
        .threshold
        .unwrap_or(crate::segments::duplicates::THRESHOLD);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(Error::BadRequest("threshold: from 0 to 1".into()));
    }
    let scan = segments
        .scan_duplicates(&source, threshold, caller.actor())
        .await?;
    Ok(Json(scan).into_response())
}

/// The duplicate proposals at a source, undecided first (compliance token).
#[utoipa::path(
    get,
    path = "/v1/duplicates",
    tag = "segmentation",
    params(ConsentQuery),
    responses(
        (status = 200, description = "`{duplicates: [{subject, duplicate, score, status, decidedAt}]}` (pseudonyms).", body = Object),
        ConsentReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn duplicates(
    State(keys): State<Arc<Keys>>,
    State(segments): State<Arc<Segments>>,
    QueryParams(query): QueryParams<ConsentQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    require_admin(&keys, &headers).await?;
    let source = consent_reader(&keys, &headers, query.source.as_deref()).await?;
    let list = segments.duplicates(&source).await?;
    Ok(Json(serde_json::json!({ "duplicates": list })).into_response())
}

/// Confirms or rejects a proposed pair: `{"subject", "duplicate", "decision": "confirm" |
/// "reject"}` (compliance token; audited).
///
/// Confirming merges the duplicate's profile into the subject's through the identity
/// graph (a `dedup` link; memberships decided again); rejecting keeps the pair from
/// being proposed again.
#[utoipa::path(
    post,
    path = "/v1/duplicates/decide",
    tag = "segmentation",
    params(ConsentQuery),
    request_body(description = "`{\"subject\", \"duplicate\", \"decision\"}`.", content((Object = "application/json"))),
    responses(
        (status = 200, description = "`{decided: \"confirm\" | \"reject\"}`.", body = Object),
        AudienceWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn decide_duplicate(
    State(keys): State<Arc<Keys>>,
    State(segments): State<Arc<Segments>>,
    State(config): State<Arc<Config>>,
    QueryParams(query): QueryParams<ConsentQuery>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    let source = consent_reader(&keys, &headers, query.source.as_deref()).await?;
    let body = read_json(&config, &headers, body).await?;
    let field = |name: &str| body.get(name).and_then(Value::as_str);
    let (Some(subject), Some(duplicate), Some(decision)) =
        (field("subject"), field("duplicate"), field("decision"))
    else {
        return Err(Error::BadRequest(
            "the body is {\"subject\", \"duplicate\", \"decision\": \"confirm\" | \"reject\"}"
                .into(),
        ));
    };
    let confirm = match decision {
        "confirm" => true,
        "reject" => false,
        _ => {
            return Err(Error::BadRequest(
                "decision: \"confirm\" or \"reject\"".into(),
            ))
        }
    };
    segments
        .decide_duplicate(&source, subject, duplicate, confirm, caller.actor())
        .await?;
    Ok(Json(serde_json::json!({ "decided": decision })).into_response())
}
