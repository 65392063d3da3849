//! The HTTP edge: the router, body decoding with limits, CORS, and JSON answers.
//! Beside it: `extract` (what handlers take from a request, the caller by key), `serve`
//! (the connection loop), `proxy` (the client behind trusted proxies), `ratelimit`,
//! `sdk_files` (the banner's bundle), `openapi` (the served document) and `schemas` (the
//! shapes it names).
pub mod audit;
pub mod experiments;
pub mod extract;
pub mod openapi;
pub mod profiles;
pub mod proxy;
pub mod ratelimit;
pub mod recommendations;
pub mod schemas;
pub mod sdk_files;
pub mod serve;
pub mod subjects;

use std::{io::Read, sync::Arc, time::Instant};

use axum::{
    body::{Body, Bytes},
    extract::{MatchedPath, Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post, put},
    Json, Router,
};
use serde::Deserialize;
use serde_json::Value;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{
    config::Config,
    error::{Error, Result},
    http::extract::{
        consent_reader, header_caller, presented_key, require_admin, source_caller, Client,
        PathParam, QueryParams,
    },
    http::schemas::{
        Accepted, Batch, BatchResponse, ConsentBody, ConsentReadErrors, Event, IngestErrors,
        MetricsErrors, ReadyErrors, RouteErrors, Status,
    },
    ids::{SourceId, UnixMs},
    ingest::{self, Ingest},
    keys::{sources::SourceInfo, Keys},
    metrics::Metrics,
    pseudonym::Pseudonymizer,
    state::AppState,
    storage::{Caller, Db},
};

/// CORS for the routes browsers call (ingest, the banner's files); the answer to a
/// preflight names an origin only when some source allows it.
fn cors(keys: Arc<Keys>) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin
                .to_str()
                .is_ok_and(|o| keys.sources.origin_allowed_anywhere(o))
        }))
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::CONTENT_ENCODING,
        ])
        .max_age(std::time::Duration::from_secs(3600))
}

/// What the ingest routes take: who is calling, the ingest itself, and the body limits.
#[derive(Clone)]
struct IngestEdge {
    keys: Arc<Keys>,
    ingest: Arc<Ingest>,
    config: Arc<Config>,
}

impl axum::extract::FromRef<AppState> for IngestEdge {
    fn from_ref(state: &AppState) -> IngestEdge {
        IngestEdge {
            keys: state.keys.clone(),
            ingest: state.ingest.clone(),
            config: state.config.clone(),
        }
    }
}

/// Every route; the banner's files are served from `sdk`.
pub fn router(state: Arc<AppState>, sdk: sdk_files::SdkFiles) -> Router {
    // What browsers on the sources' sites call: CORS applies here only.
    let browsers = Router::new()
        .route("/v1/batch", post(batch))
        .route("/v1/import", post(import))
        .route("/v1/track", post(track))
        .route("/v1/identify", post(identify))
        .route("/v1/page", post(page))
        .route("/v1/screen", post(screen))
        .route("/v1/group", post(group))
        .route("/v1/alias", post(alias))
        .route("/v1/consent", post(consent_post))
        .route(
            "/v1/content/{slot}",
            get(experiments::content).post(experiments::content_post),
        )
        .route(
            "/v1/flags",
            get(experiments::flags).post(experiments::flags_post),
        )
        .route("/v1/flags/{key}", get(experiments::flag))
        .merge(
            Router::new()
                .route("/sdk/{file}", get(sdk_files::serve))
                .with_state(sdk),
        )
        // Before the CORS layer, which then answers preflights (OPTIONS) itself.
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(cors(state.keys.clone()));
    Router::new()
        .route("/v1/consent/{subject_id}", get(consent_get))
        .route("/v1/audit/export", get(audit::export))
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/audit/checkpoint", get(audit::checkpoint))
        .route("/v1/audit/receipts", get(audit::receipts_csv))
        .route("/v1/audit/checkpoints", get(audit::checkpoints))
        .route("/v1/audit/consistency", get(audit::consistency))
        .route("/.well-known/assent-audit-keys", get(audit::public_keys))
        .route("/v1/consent/receipts/{consentId}", get(audit::receipt))
        .route(
            "/v1/consent/receipts/{consentId}/proof",
            get(audit::receipt_proof),
        )
        .route(
            "/v1/subjects/{id}",
            get(subjects::access).delete(subjects::erase),
        )
        .route("/v1/profiles/{subject_id}", get(profiles::profile))
        .route(
            "/v1/profiles/{subject_id}/segments",
            get(profiles::segments_of),
        )
        .route(
            "/v1/audiences",
            get(profiles::list_audiences).post(profiles::create_audience),
        )
        .route(
            "/v1/audiences/{name}",
            put(profiles::put_audience).delete(profiles::delete_audience),
        )
        .route("/v1/audiences/{name}/members", get(profiles::members))
        .route(
            "/v1/audiences/{name}/members/{subject_id}",
            get(profiles::member),
        )
        .route("/v1/audiences/{name}/changes", get(profiles::changes))
        .route("/v1/traits", get(profiles::list_traits))
        .route(
            "/v1/traits/{name}",
            put(profiles::put_trait).delete(profiles::delete_trait),
        )
        .route(
            "/v1/segmentation/realtime",
            get(profiles::realtime).put(profiles::set_realtime),
        )
        .route("/v1/segmentations", get(profiles::segmentations))
        .route("/v1/duplicates", get(profiles::duplicates))
        .route("/v1/duplicates/scan", post(profiles::scan_duplicates))
        .route("/v1/duplicates/decide", post(profiles::decide_duplicate))
        .route("/v1/segmentations/{name}/models", post(profiles::train))
        .route("/v1/segmentations/{name}/promote", post(profiles::promote))
        .route(
            "/v1/segmentations/{name}/rollback",
            post(profiles::rollback),
        )
        .route(
            "/v1/recommendations/{subject_id}",
            get(recommendations::recommend),
        )
        .route("/v1/items/{item}/similar", get(recommendations::similar))
        .route(
            "/v1/items/{item}",
            put(recommendations::put_item).delete(recommendations::delete_item),
        )
        .route("/v1/recommenders", get(recommendations::list_recommenders))
        .route(
            "/v1/recommenders/{name}/feedback",
            get(recommendations::feedback),
        )
        .route(
            "/v1/recommenders/{name}/models",
            post(recommendations::train),
        )
        .route(
            "/v1/recommenders/{name}/promote",
            post(recommendations::promote),
        )
        .route(
            "/v1/recommenders/{name}/rollback",
            post(recommendations::rollback),
        )
        .route("/v1/recommenders/{name}/split", put(recommendations::split))
        .route("/v1/definitions/{kind}", get(experiments::list_definitions))
        .route(
            "/v1/definitions/{kind}/{name}",
            put(experiments::put_definition)
                .get(experiments::get_definition)
                .delete(experiments::delete_definition),
        )
        .route(
            "/v1/definitions/{kind}/{name}/history",
            get(experiments::history),
        )
        .route(
            "/v1/definitions/{kind}/{name}/rollback",
            post(experiments::rollback),
        )
        .route("/v1/experiments/{name}/results", get(experiments::results))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .merge(browsers)
        .fallback(|| async { Error::NotFound })
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            observe,
        ))
        .with_state(AppState::clone(&state))
}

/// Counts and times every request.
async fn observe(State(m): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    m.in_flight.inc();
    let mut response = next.run(request).await;
    m.in_flight.dec();
    // Answers name subjects and their choices: never cached by a shared cache, never
    // sniffed as another type. The banner's files say how they may be cached themselves.
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    m.latency
        .get_or_create(&crate::metrics::RouteOnly {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&crate::metrics::RouteLabels {
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// Reads a body: only JSON (or text/plain, as `sendBeacon` sends it), identity or gzip
/// encoding, and never more than the limit, compressed or inflated — a gzip bomb is cut
/// off after `limit + 1` inflated bytes.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        if !(ct.starts_with("application/json") || ct.starts_with("text/plain")) {
            return Err(Error::Unsupported(
                "Content-Type must be application/json".into(),
            ));
        }
    }
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
    {
        None => false,
        Some(e) if e == "identity" || e.is_empty() => false,
        Some(e) if e == "gzip" || e == "x-gzip" => true,
        Some(_) => {
            return Err(Error::Unsupported(
                "Content-Encoding must be gzip or identity".into(),
            ))
        }
    };
    // A client that sends its body slowly holds a connection: it gets `timeout` for all
    // of it.
    let raw: Bytes = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| Error::Timeout)?
        .map_err(|_| Error::TooLarge(limit))?;
    if !gzip {
        return Ok(raw);
    }
    inflate_limited(&raw, limit).map(Bytes::from)
}

/// Inflates a gzip body, refusing (without inflating the rest) once it passes `limit`.
pub fn inflate_limited(raw: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(raw)
        .take(limit as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|_| Error::BadRequest("body is not valid gzip".into()))?;
    if inflated.len() > limit {
        return Err(Error::TooLarge(limit));
    }
    Ok(inflated)
}

/// Reads a body (see [`read_body`]) as one JSON value.
pub async fn read_json(config: &Config, headers: &HeaderMap, body: Body) -> Result<Value> {
    let bytes = read_request_body(config, headers, body).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::BadRequest(match e.classify() {
            serde_json::error::Category::Eof => "truncated JSON".into(),
            serde_json::error::Category::Data => "JSON of the wrong shape".into(),
            _ => format!("malformed JSON at line {} column {}", e.line(), e.column()),
        })
    })
}

/// The body of a request, within the configured size and time.
async fn read_request_body(c: &Config, headers: &HeaderMap, body: Body) -> Result<Bytes> {
    let timeout = std::time::Duration::from_secs(c.body_timeout_secs.max(1));
    read_body(headers, body, c.max_body_bytes, timeout).await
}

/// A batch of events and consent records (the Segment batch plus `consent`). Each event is checked on its own.
#[utoipa::path(
    post,
    path = "/v1/batch",
    tag = "ingest",
    request_body(
        description = "The envelope; `writeKey` in the body is accepted for sendBeacon.",
        content((Batch = "application/json"), (Batch = "text/plain"))
    ),
    responses(
        (status = 200, description = "Every event settled: accepted, duplicate or rejected (with its reason).", body = BatchResponse),
        IngestErrors,
    ),
    security(("basic" = []), ("bearer" = []))
)]
async fn batch(
    State(edge): State<IngestEdge>,
    Client(ip): Client,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let received_at = edge.ingest.now();
    let known = header_caller(&edge.keys, &headers).await?;
    let bytes = read_request_body(&edge.config, &headers, body).await?;
    accept(&edge, ip, &headers, known, received_at, &bytes).await
}

/// Segment's `/v1/import`: the same as `/v1/batch`.
#[utoipa::path(
    post,
    path = "/v1/import",
    tag = "ingest",
    request_body(
        description = "The envelope, as for /v1/batch.",
        content((Batch = "application/json"), (Batch = "text/plain"))
    ),
    responses(
        (status = 200, description = "Every event settled: accepted, duplicate or rejected (with its reason).", body = BatchResponse),
        IngestErrors,
    ),
    security(("basic" = []), ("bearer" = []))
)]
async fn import(
    edge: State<IngestEdge>,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    batch(edge, client, headers, body).await
}

/// The single-event endpoints of Segment's HTTP API, each documented as its own
/// operation: `/v1/KIND` takes one event, whose type comes from the path when the body
/// has none.
macro_rules! single_event_endpoints {
    ($($kind:ident),*) => {$(
        #[doc = concat!("One `", stringify!($kind), "` event (Segment HTTP API). The type comes from the path when the body has none.")]
        #[utoipa::path(
            post,
            path = concat!("/v1/", stringify!($kind)),
            tag = "ingest",
            request_body(
                description = "One event; may carry `writeKey` and `sentAt`.",
                content((Event = "application/json"), (Event = "text/plain"))
            ),
            responses(
                (status = 200, description = "Every event settled: accepted, duplicate or rejected (with its reason).", body = BatchResponse),
                IngestErrors,
            ),
            security(("basic" = []), ("bearer" = []))
        )]
        async fn $kind(
            State(edge): State<IngestEdge>,
            Client(ip): Client,
            headers: HeaderMap,
            body: Body,
        ) -> Result<Response> {
            single(&edge, ip, stringify!($kind), &headers, body).await
        }
    )*};
}

single_event_endpoints!(track, identify, page, screen, group, alias);

/// One event of type `kind` (unless it says), handled as a batch of one.
async fn single(
    edge: &IngestEdge,
    ip: std::net::IpAddr,
    kind: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let received_at = edge.ingest.now();
    let known = header_caller(&edge.keys, headers).await?;
    let mut event = read_json(&edge.config, headers, body).await?;
    let Some(obj) = event.as_object_mut() else {
        return Err(Error::BadRequest("the body must be a JSON object".into()));
    };
    obj.entry("type").or_insert(Value::String(kind.to_owned()));
    let sent_at = obj.remove("sentAt");
    let write_key = take_write_key(&mut event);
    let envelope = serde_json::json!({"batch": [event], "sentAt": sent_at, "writeKey": write_key});
    let bytes = serde_json::to_vec(&envelope).expect("serializes");
    accept(edge, ip, headers, known, received_at, &bytes).await
}

/// Takes the `writeKey` a client that cannot set headers put in a JSON body (it is a
/// credential: it must not be stored with the rest).
fn take_write_key(body: &mut Value) -> Option<Value> {
    body.as_object_mut()?.remove("writeKey")
}

/// The calling source: the one the headers named (checked before the body was read), else
/// the one of the key in the body; with its settings.
async fn settle_caller(
    keys: &Keys,
    headers: &HeaderMap,
    known: Option<(Caller, SourceId)>,
    body_key: Option<&str>,
) -> Result<(Caller, SourceId, Arc<SourceInfo>)> {
    let (caller, source_id) = match known {
        Some(known) => known,
        None => source_caller(keys, headers, body_key).await?,
    };
    let source = keys.sources.get(&source_id);
    Ok((caller, source_id, source))
}

/// Authenticates (unless the headers already did) and ingests one batch body.
async fn accept(
    edge: &IngestEdge,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    known: Option<(Caller, SourceId)>,
    received_at: UnixMs,
    bytes: &[u8],
) -> Result<Response> {
    let envelope = ingest::Envelope::parse(bytes)?;
    let (caller, source_id, source) =
        settle_caller(&edge.keys, headers, known, envelope.write_key()).await?;
    let req = ingest::Request {
        caller: &caller,
        source_id: &source_id,
        source: &source,
        received_at,
        ip: Some(ip),
    };
    let answer = ingest::batch(&edge.ingest, req, envelope).await?;
    Ok(Json(answer).into_response())
}

/// One consent record, or `{"records": [...]}`.
#[utoipa::path(
    post,
    path = "/v1/consent",
    tag = "consent",
    request_body(
        description = "A record, or {records: [...]} with at most 100 (max_consent_records_per_request); records count against a budget per source and per client (429).",
        content((ConsentBody = "application/json"), (ConsentBody = "text/plain"))
    ),
    responses(
        (status = 201, description = "Stored (idempotent by consentId).", body = Accepted),
        IngestErrors,
    ),
    security(("basic" = []), ("bearer" = []))
)]
async fn consent_post(
    State(edge): State<IngestEdge>,
    Client(ip): Client,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let received_at = edge.ingest.now();
    let known = header_caller(&edge.keys, &headers).await?;
    let mut body = read_json(&edge.config, &headers, body).await?;
    let body_key = take_write_key(&mut body);
    let body_key = body_key.as_ref().and_then(Value::as_str);
    let (caller, source_id, source) = settle_caller(&edge.keys, &headers, known, body_key).await?;
    let req = ingest::Request {
        caller: &caller,
        source_id: &source_id,
        source: &source,
        received_at,
        ip: Some(ip),
    };
    let n = ingest::consent(&edge.ingest, req, body).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"accepted": n})),
    )
        .into_response())
}

/// `?source=`: the source (by id or name) whose consent scope is asked about.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsentQuery {
    /// The source (id or name) whose consent scope is asked about: required with the compliance token; with a server key, its own source or absent.
    pub source: Option<String>,
}

/// A subject's current consent under one source's consent scope.
///
/// With a source's server key (its own scope; never from a browser) or the compliance
/// token (any source, named by `source`). Raw subject id in, looked up by pseudonym. A
/// write key is answered as an unknown key: it is public (it sits in every page), so with
/// it anyone could read a subject's choices and probe which ids exist; the banner and the
/// SDK keep their own copy of the choice instead.
#[utoipa::path(
    get,
    path = "/v1/consent/{subjectId}",
    tag = "consent",
    params(("subjectId" = String, Path, description = "The subject's raw id."), ConsentQuery),
    responses(
        (status = 200, description = "Current state.", body = Object),
        ConsentReadErrors,
    ),
    security(("bearer" = []))
)]
async fn consent_get(
    State(keys): State<Arc<Keys>>,
    State(db): State<Db>,
    State(pseudonymizer): State<Arc<Pseudonymizer>>,
    PathParam(subject_id): PathParam<String>,
    QueryParams(query): QueryParams<ConsentQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let source_id = consent_reader(&keys, &headers, query.source.as_deref()).await?;
    let scope = keys.sources.get(&source_id).scope.clone();
    match crate::consent::current(&db, &pseudonymizer, &scope, &subject_id).await? {
        Some(v) => Ok(Json(v).into_response()),
        None => Err(Error::NotFound),
    }
}

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses(
        (status = 200, description = "ok", body = Status),
        RouteErrors,
    )
)]
async fn healthz() -> Json<Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// The database answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "ready", body = Status),
        ReadyErrors,
    )
)]
async fn readyz(State(db): State<crate::storage::Db>) -> Result<Response> {
    db.ping().await?;
    Ok(Json(serde_json::json!({"status": "ready"})).into_response())
}

/// Prometheus metrics (the metrics token or the compliance token as Bearer).
///
/// Prometheus' `bearer_token`; the counts say how busy each site is.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Text exposition format.", body = String, content_type = "text/plain"),
        MetricsErrors,
    ),
    security(("bearer" = []))
)]
///
/// The one handler that takes every domain's state: it reports on all of them.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response> {
    let token_ok = match (&state.config.metrics_token, presented_key(&headers, None)) {
        (Some(token), Some(presented)) => {
            crate::pseudonym::constant_time_eq(token.expose(), &presented)
        }
        _ => false,
    };
    if !token_ok {
        require_admin(&state.keys, &headers).await?;
    }
    state
        .metrics
        .writer_queue
        .set(state.ingest.writer_depth() as i64);
    state
        .metrics
        .consent_cache
        .set(state.consent_cache.len() as i64);
    let mut due: std::collections::BTreeMap<String, bool> = Default::default();
    for r in state.recommendations.drift_readings() {
        *due.entry(r.recommender.clone()).or_default() |= r.due;
        if let Some(d) = r.divergence {
            state
                .metrics
                .recommendation_drift
                .get_or_create(&crate::metrics::DriftLabels {
                    recommender: r.recommender.clone(),
                    signal: r.signal,
                })
                .set(d);
        }
    }
    for (recommender, due) in due {
        state
            .metrics
            .recommendation_retrain_due
            .get_or_create(&crate::metrics::RecommenderLabels { recommender })
            .set(i64::from(due));
    }
    let (hits, misses, errors) = state.recommendations.cache_stats();
    for (outcome, n) in [("hit", hits), ("miss", misses), ("error", errors)] {
        state
            .metrics
            .recommendation_cache
            .get_or_create(&crate::metrics::CacheLabels {
                outcome: outcome.into(),
            })
            .set(n as i64);
    }
    for (consumer, lag) in crate::feed::lags(&state.db).await? {
        state
            .metrics
            .feed_lag
            .get_or_create(&crate::metrics::ConsumerLabels { consumer })
            .set(lag);
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response())
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses(
        (status = 200, description = "The OpenAPI document, with the protocol's JSON Schema.", body = Object),
        RouteErrors,
    )
)]
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi::openapi(),
    )
        .into_response()
}
