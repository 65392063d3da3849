//! The HTTP edge: routes, body decoding with limits, authentication, and JSON answers.
use std::{io::Read, net::SocketAddr, sync::Arc, time::Instant};

use axum::{
    body::{Body, Bytes},
    extract::{ConnectInfo, MatchedPath, Path, Query, Request, State},
    http::{header, HeaderMap, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use crate::{
    db::Caller,
    error::{Error, Result},
    export, ingest, subjects, AppState,
};

type Shared = State<Arc<AppState>>;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/batch", post(batch))
        .route("/v1/import", post(batch))
        .route("/v1/track", post(single))
        .route("/v1/identify", post(single))
        .route("/v1/page", post(single))
        .route("/v1/screen", post(single))
        .route("/v1/group", post(single))
        .route("/v1/alias", post(single))
        .route("/v1/consent", post(consent_post))
        .route("/v1/consent/{subject_id}", get(consent_get))
        .route("/v1/audit/export", get(export::export))
        .route("/v1/audit/verify", get(export::verify))
        .route(
            "/v1/subjects/{id}",
            get(subjects::access).delete(subjects::erase),
        )
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/sdk/{file}", get(crate::sdk_files::serve))
        .fallback(|| async { Error::NotFound })
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Counts and times every request.
async fn observe(State(state): Shared, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    state.metrics.in_flight.inc();
    let response = next.run(request).await;
    state.metrics.in_flight.dec();
    let m = &state.metrics;
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
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes> {
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
    let raw: Bytes = axum::body::to_bytes(body, limit)
        .await
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
pub async fn read_json(headers: &HeaderMap, body: Body, limit: usize) -> Result<Value> {
    let bytes = read_body(headers, body, limit).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::BadRequest(match e.classify() {
            serde_json::error::Category::Eof => "truncated JSON".into(),
            serde_json::error::Category::Data => "JSON of the wrong shape".into(),
            _ => format!("malformed JSON at line {} column {}", e.line(), e.column()),
        })
    })
}

/// The key a request carries: HTTP Basic (key as user name, as Segment's libraries send
/// it), `Bearer`, or the body's `writeKey`.
fn presented_key(headers: &HeaderMap, body_key: Option<&str>) -> Option<String> {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let auth = auth.trim();
        if let Some(b64) = auth
            .strip_prefix("Basic ")
            .or_else(|| auth.strip_prefix("basic "))
        {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let user = text.split(':').next().unwrap_or_default();
            return (!user.is_empty()).then(|| user.to_owned());
        }
        if let Some(token) = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
        {
            return Some(token.trim().to_owned());
        }
        return None;
    }
    body_key.map(str::to_owned)
}

pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    body_key: Option<&str>,
) -> Result<Caller> {
    let key = presented_key(headers, body_key).ok_or(Error::Unauthorized)?;
    if key.len() > 256 {
        return Err(Error::Unauthorized);
    }
    state.find_key(&key).await?.ok_or(Error::Unauthorized)
}

pub async fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<Caller> {
    match authenticate(state, headers, None).await? {
        admin @ Caller::Admin { .. } => Ok(admin),
        Caller::Source { .. } => Err(Error::Forbidden),
    }
}

async fn source_caller(
    state: &AppState,
    headers: &HeaderMap,
    body_key: Option<&str>,
) -> Result<(Caller, String)> {
    match authenticate(state, headers, body_key).await? {
        c @ Caller::Source { .. } => {
            let Caller::Source { source_id, .. } = &c else {
                unreachable!()
            };
            let source_id = source_id.clone();
            state.check_origin(&source_id, headers).await?;
            Ok((c, source_id))
        }
        Caller::Admin { .. } => Err(Error::Forbidden),
    }
}

async fn batch(
    State(state): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let received_at_ms = state.clock.now_ms();
    let bytes = read_body(&headers, body, state.config.max_body_bytes).await?;
    accept(&state, peer, &headers, received_at_ms, &bytes).await
}

/// `/v1/track` and the other single-event endpoints: the body is one event, whose type
/// comes from the path when it does not say; it is handled as a batch of one.
async fn single(
    State(state): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    path: MatchedPath,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let received_at_ms = state.clock.now_ms();
    let mut event = read_json(&headers, body, state.config.max_body_bytes).await?;
    let Some(obj) = event.as_object_mut() else {
        return Err(Error::BadRequest("the body must be a JSON object".into()));
    };
    let kind = path.as_str().trim_start_matches("/v1/").to_owned();
    obj.entry("type").or_insert(Value::String(kind));
    let sent_at = obj.remove("sentAt");
    let write_key = take_write_key(&mut event);
    let envelope = serde_json::json!({"batch": [event], "sentAt": sent_at, "writeKey": write_key});
    let bytes = serde_json::to_vec(&envelope).expect("serializes");
    accept(&state, peer, &headers, received_at_ms, &bytes).await
}

/// Takes the `writeKey` a client that cannot set headers put in a JSON body (it is a
/// credential: it must not be stored with the rest).
fn take_write_key(body: &mut Value) -> Option<Value> {
    body.as_object_mut()?.remove("writeKey")
}

/// Authenticates and ingests one batch body.
async fn accept(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    received_at_ms: i64,
    bytes: &[u8],
) -> Result<Response> {
    let envelope = ingest::Envelope::parse(bytes)?;
    let (caller, source_id) = source_caller(state, headers, envelope.write_key()).await?;
    let req = ingest::Request {
        caller: &caller,
        source_id: &source_id,
        received_at_ms,
        ip: Some(peer.ip()),
    };
    let answer = ingest::batch(state, req, envelope).await?;
    Ok(Json(answer).into_response())
}

async fn consent_post(
    State(state): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let received_at_ms = state.clock.now_ms();
    let mut body = read_json(&headers, body, state.config.max_body_bytes).await?;
    let body_key = take_write_key(&mut body);
    let body_key = body_key.as_ref().and_then(Value::as_str);
    let (caller, source_id) = source_caller(&state, &headers, body_key).await?;
    let req = ingest::Request {
        caller: &caller,
        source_id: &source_id,
        received_at_ms,
        ip: Some(peer.ip()),
    };
    let n = ingest::consent(&state, req, body).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"accepted": n})),
    )
        .into_response())
}

async fn consent_get(
    State(state): Shared,
    Path(subject_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    source_caller(&state, &headers, None).await?;
    match ingest::current(&state, &subject_id).await? {
        Some(v) => Ok(Json(v).into_response()),
        None => Err(Error::NotFound),
    }
}

async fn readyz(State(state): Shared) -> Result<Response> {
    state.db.ping().await?;
    Ok(Json(serde_json::json!({"status": "ready"})).into_response())
}

async fn metrics(State(state): Shared) -> Response {
    state.metrics.writer_queue.set(state.writer.depth() as i64);
    state
        .metrics
        .consent_cache
        .set(state.consent_cache.len() as i64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], crate::OPENAPI).into_response()
}

/// `from` / `to` of the audit endpoints: ISO 8601.
#[derive(Debug, Deserialize)]
pub struct Window {
    pub from: Option<String>,
    pub to: Option<String>,
    pub format: Option<String>,
}

impl Window {
    pub fn bounds(&self) -> Result<(i64, i64)> {
        let parse = |v: &Option<String>, default: i64| match v {
            None => Ok(default),
            Some(s) => assent_protocol::Timestamp::parse(s)
                .map(|t| t.unix_millis())
                .map_err(|_| Error::BadRequest("from/to must be ISO 8601 date-times".into())),
        };
        Ok((parse(&self.from, i64::MIN)?, parse(&self.to, i64::MAX)?))
    }
}

pub type WindowQuery = Query<Window>;
