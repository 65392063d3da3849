//! `/v1/recommendations`, `/v1/items`, `/v1/recommenders`: rankings for a subject,
//! similar items, the catalogue, and recommender versions (the work is in
//! `recommend/`).
use std::sync::Arc;

use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Deserialize;

use crate::{
    config::Config,
    error::{Error, Result},
    http::{
        extract::{reader_caller, require_admin, PathParam, QueryParams},
        read_json,
        schemas::{AudienceWriteErrors, ComplianceErrors, ConsentReadErrors},
    },
    keys::Keys,
    recommend::{Recommendations, Request, Training},
};

/// The parameters of a ranking.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecommendQuery {
    /// How many items (1 to 200; 10 by default).
    pub k: Option<usize>,
    /// Where the list is shown (echoed, and part of the `recId`).
    pub slot: Option<String>,
    /// The recommender's name (`default` by default).
    pub model: Option<String>,
    /// Items to leave out, comma-separated (business rules).
    pub exclude: Option<String>,
    /// Keep items the subject already has (left out by default).
    pub include_consumed: Option<bool>,
    /// The request's country (ISO 3166-1 alpha-2): items for other countries are left out.
    pub country: Option<String>,
    /// The request's device type (`mobile`, `tablet`, `desktop`): likewise.
    pub device: Option<String>,
    /// The source (id or name): required with the compliance token.
    pub source: Option<String>,
}

/// The subject's ranked items at one source.
///
/// Personalized only for a subject who granted `personalization` (their latest record
/// in the source's consent scope); everyone else gets the popular items (`reason:
/// no_consent`), never a ranking from their history. The history is the subject's
/// profile now (updated from the feed within moments), folded into the active model
/// without retraining; a subject with none gets the popular items (`new_user`), one
/// with fewer than 3 items a blend with popularity (`sparse_profile`); both from the
/// subject's smallest segment, else the request's country, else its device, else
/// overall (`popularity` says which). Items the subject
/// has, unavailable ones and those not for the request's country or device are left
/// out. `recId` names the list: send it with impressions and clicks. With a source's
/// server key (its own source) or the compliance token (`source`). An `ETag` names the
/// answer; `If-None-Match` with it answers 304.
#[utoipa::path(
    get,
    path = "/v1/recommendations/{subjectId}",
    tag = "recommendations",
    params(("subjectId" = String, Path, description = "The subject's raw id."), RecommendQuery),
    responses(
        (status = 200, description = "`{subjectId, items: [{item, score}], model: {name, version, kind}, recId, personalized, reason, popularity, slot, cached}`.", body = Object),
        (status = 304, description = "Not modified (`If-None-Match`)."),
        ConsentReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn recommend(
    State(keys): State<Arc<Keys>>,
    State(recs): State<Arc<Recommendations>>,
    PathParam(subject_id): PathParam<String>,
    QueryParams(q): QueryParams<RecommendQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let (source, _) = reader_caller(&keys, &headers, q.source.as_deref()).await?;
    let scope = keys.sources.get(&source).scope.clone();
    let request = Request {
        k: q.k.unwrap_or(10),
        slot: q.slot,
        model: q.model.unwrap_or_else(|| "default".into()),
        exclude: q
            .exclude
            .map(|e| {
                e.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        include_consumed: q.include_consumed.unwrap_or(false),
        country: q.country,
        device: q.device,
    };
    let (answer, cached) = recs
        .recommend(&source, &scope, &subject_id, &request)
        .await?;
    let etag = format!("\"{}\"", answer.rec_id);
    // Revalidated each time (a 304 when unchanged), personal or not: a visitor shown the
    // popular items may grant personalization at any moment.
    let cache_control = "private, no-cache";
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut body = serde_json::to_value(&*answer).expect("serializes");
        body["subjectId"] = subject_id.into();
        body["cached"] = cached.into();
        Json(body).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    h.insert(
        "x-assent-cache",
        HeaderValue::from_static(if cached { "hit" } else { "miss" }),
    );
    Ok(response)
}

/// The parameters of similar items.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SimilarQuery {
    /// How many items (1 to 200; 10 by default).
    pub k: Option<usize>,
    /// The recommender's name (`default` by default).
    pub model: Option<String>,
    /// The source (id or name): required with the compliance token.
    pub source: Option<String>,
}

/// Items like this one, for an item page: by the active recommender's neighbours
/// (item-kNN), factors (ALS, cosine) or weights (EASE); unavailable items left out. The
/// same for everyone. Who may ask: as for recommendations.
#[utoipa::path(
    get,
    path = "/v1/items/{item}/similar",
    tag = "recommendations",
    params(("item" = String, Path, description = "The item's id."), SimilarQuery),
    responses(
        (status = 200, description = "`{item, items: [{item, score}], model}`.", body = Object),
        ConsentReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn similar(
    State(keys): State<Arc<Keys>>,
    State(recs): State<Arc<Recommendations>>,
    PathParam(item): PathParam<String>,
    QueryParams(q): QueryParams<SimilarQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let (source, _) = reader_caller(&keys, &headers, q.source.as_deref()).await?;
    let name = q.model.unwrap_or_else(|| "default".into());
    let answer = recs
        .similar(&source, &name, &item, q.k.unwrap_or(10))
        .await?;
    let mut response = Json(answer).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=60"),
    );
    Ok(response)
}

/// The source a catalogue or recommender call is about.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SourceQuery {
    /// The source (id or name): required with the compliance token.
    pub source: Option<String>,
}

/// Sets an item of the source's catalogue (audited): `{"tags": [..], "available":
/// true, "countries": ["DE"], "devices": ["mobile"]}` (every field optional; an item
/// not `available` — unpublished, out of stock — is never recommended; `countries` and
/// `devices`, when given, limit where it is). With the source's server key or the
/// compliance token (`source`).
#[utoipa::path(
    put,
    path = "/v1/items/{item}",
    tag = "recommendations",
    params(("item" = String, Path, description = "The item's id (1 to 256 bytes)."), SourceQuery),
    request_body(description = "The item's attributes.", content((Object = "application/json"))),
    responses(
        (status = 200, description = "The item as stored.", body = Object),
        AudienceWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn put_item(
    State(keys): State<Arc<Keys>>,
    State(recs): State<Arc<Recommendations>>,
    State(config): State<Arc<Config>>,
    PathParam(item): PathParam<String>,
    QueryParams(q): QueryParams<SourceQuery>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response> {
    let (source, caller) = reader_caller(&keys, &headers, q.source.as_deref()).await?;
    let body = read_json(&config, &headers, body).await?;
    let item = recs.set_item(&source, &item, &body, caller.actor()).await?;
    Ok(Json(item).into_response())
}

/// Removes an item from the source's catalogue (audited). Who may: as for setting one.
#[utoipa::path(
    delete,
    path = "/v1/items/{item}",
    tag = "recommendations",
    params(("item" = String, Path, description = "The item's id."), SourceQuery),
    responses(
        (status = 204, description = "Removed."),
        AudienceWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn delete_item(
    State(keys): State<Arc<Keys>>,
    State(recs): State<Arc<Recommendations>>,
    PathParam(item): PathParam<String>,
    QueryParams(q): QueryParams<SourceQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let (source, caller) = reader_caller(&keys, &headers, q.source.as_deref()).await?;
    recs.delete_item(&source, &item, caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Every recommender's versions, newest first (compliance token).
#[utoipa::path(
    get,
    path = "/v1/recommenders",
    tag = "recommendations",
    responses(
        (status = 200, description = "`{recommenders: [{name, source, version, status, training, report, trainedAt, promotedAt}]}`.", body = Object),
        ComplianceErrors,
    ),
    security(("bearer" = []))
)]
pub async fn list_recommenders(
    State(keys): State<Arc<Keys>>,
    State(recs): State<Arc<Recommendations>>,
    headers: HeaderMap,
) -> Result<Response> {
    require_admin(&keys, &headers).await?;
    Ok(Json(serde_json::json!({ "recommenders": recs.models().await? })).into_response())
}

/// Trains a new version of a recommender on every profile at the source (compliance
/// token with `source`; audited).
///
/// The body: `{"model": {"kind": "item_knn", "neighbours", "weighting": {"kind":
/// "bm25", "k1", "b"} | {"kind": "cosine"}, "shrink"} | {"kind": "als", "factors",
/// "regularization", "alpha", "iterations", "cg_steps", "seed"} | {"kind": "ease",
/// "lambda", "max_items"} | {"kind": "popularity"}, "seed", "testFraction"}`. A held-out
/// share of the pairs judges it beside popularity and the active version (trained again
/// on the same split); it becomes active if its NDCG@10 is not worse, else stays a
/// candidate. Large trainings belong to `assent-collector recommend train`.
#[utoipa::path(
    post,
    path = "/v1/recommenders/{name}/models",
    tag = "recommendations",
    params(("name" = String, Path, description = "1 to 64 lowercase letters, digits, '_' or '-'."), SourceQuery),
    request_body(description = "The training spec.", content((Object = "application/json"))),
    responses(
        (status = 200, description = "The version: `{name, source, version, status, training, report, trainedAt, promotedAt}`.", body = Object),
        AudienceWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn train(
    State(keys): State<Arc<Keys>>,
    State(recs): State<Arc<Recommendations>>,
    State(config): State<Arc<Config>>,
    PathParam(name): PathParam<String>,
    QueryParams(q): QueryParams<SourceQuery>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    let source = admin_source(&keys, q.source.as_deref()).await?;
    let body = read_json(&config, &headers, body).await?;
    let training = Training::parse(&body)?;
    let version = recs
        .train(&source, &name, training, caller.actor(), &|_| {})
        .await?;
    Ok(Json(version).into_response())
}

async fn admin_source(keys: &Keys, source: Option<&str>) -> Result<crate::ids::SourceId> {
    let s =
        source.ok_or_else(|| Error::BadRequest("name the source: ?source=<id or name>".into()))?;
    keys.find_source(s).await?.ok_or(Error::NotFound)
}

/// Online feedback of a recommender by version (compliance token with `source`):
/// impressions, clicks and conversions of its lists — events that carry a list's
/// `rec_id` in `properties.rec_id` (`Recommendation Viewed`, `Recommendation Clicked`,
/// `Product Added`, `Order Completed`), counted from the feed — and the click-through
/// and conversion rates.
#[utoipa::path(
    get,
    path = "/v1/recommenders/{name}/feedback",
    tag = "recommendations",
    params(("name" = String, Path, description = "The recommender."), SourceQuery),
    responses(
        (status = 200, description = "`{name, source, versions: [{version, impressions, clicks, conversions, ctr, conversionRate}]}`.", body = Object),
        ConsentReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn feedback(
    State(keys): State<Arc<Keys>>,
    State(recs): State<Arc<Recommendations>>,
    PathParam(name): PathParam<String>,
    QueryParams(q): QueryParams<SourceQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    require_admin(&keys, &headers).await?;
    let source = admin_source(&keys, q.source.as_deref()).await?;
    Ok(Json(recs.feedback(&source, &name).await?).into_response())
}

/// Makes a version the active one: `{"version": N}` (compliance token with `source`;
/// audited).
#[utoipa::path(
    post,
    path = "/v1/recommenders/{name}/promote",
    tag = "recommendations",
    params(("name" = String, Path, description = "The recommender."), SourceQuery),
    request_body(description = "`{\"version\": N}`.", content((Object = "application/json"))),
    responses(
        (status = 200, description = "The version now active.", body = Object),
        AudienceWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn promote(
    State(keys): State<Arc<Keys>>,
    State(recs): State<Arc<Recommendations>>,
    State(config): State<Arc<Config>>,
    PathParam(name): PathParam<String>,
    QueryParams(q): QueryParams<SourceQuery>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    let source = admin_source(&keys, q.source.as_deref()).await?;
    let body = read_json(&config, &headers, body).await?;
    let Some(version) = body.get("version").and_then(serde_json::Value::as_i64) else {
        return Err(Error::BadRequest("the body is {\"version\": N}".into()));
    };
    let v = recs
        .promote(&source, &name, version, caller.actor())
        .await?;
    Ok(Json(v).into_response())
}

/// Compares a version with the active one live: `{"version": N, "share": 0.1}` serves
/// that share of the subjects with history (chosen by a hash of their pseudonym, so each
/// stays on one side) from version N; a share of 0 ends it (compliance token with
/// `source`; audited). Their lists' `recId`s name the version, so
/// `GET …/feedback` compares the two.
#[utoipa::path(
    put,
    path = "/v1/recommenders/{name}/split",
    tag = "recommendations",
    params(("name" = String, Path, description = "The recommender."), SourceQuery),
    request_body(description = "`{\"version\": N, \"share\": 0.1}`.", content((Object = "application/json"))),
    responses(
        (status = 200, description = "`{name, source, split: {version, share} | null}`.", body = Object),
        AudienceWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn split(
    State(keys): State<Arc<Keys>>,
    State(recs): State<Arc<Recommendations>>,
    State(config): State<Arc<Config>>,
    PathParam(name): PathParam<String>,
    QueryParams(q): QueryParams<SourceQuery>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    let source = admin_source(&keys, q.source.as_deref()).await?;
    let body = read_json(&config, &headers, body).await?;
    let v = recs
        .set_split(&source, &name, &body, caller.actor())
        .await?;
    Ok(Json(v).into_response())
}

/// Brings back the version active before the active one (compliance token with
/// `source`; audited).
#[utoipa::path(
    post,
    path = "/v1/recommenders/{name}/rollback",
    tag = "recommendations",
    params(("name" = String, Path, description = "The recommender."), SourceQuery),
    responses(
        (status = 200, description = "The version now active.", body = Object),
        AudienceWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn rollback(
    State(keys): State<Arc<Keys>>,
    State(recs): State<Arc<Recommendations>>,
    PathParam(name): PathParam<String>,
    QueryParams(q): QueryParams<SourceQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    let source = admin_source(&keys, q.source.as_deref()).await?;
    let v = recs.rollback(&source, &name, caller.actor()).await?;
    Ok(Json(v).into_response())
}
