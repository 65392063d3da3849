//! The routes of content, flags and experiments: definitions (compliance token), what a
//! visitor is served (a source's write key from an allowed origin, or its server key),
//! and results.
use std::sync::Arc;

use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Deserialize;
use serde_json::Value;

use crate::{
    config::Config,
    error::{Error, Result},
    experiments::{Experiments, Kind, RequestContext},
    geo::Geo,
    http::{
        extract::{require_admin, source_caller, Client, PathParam, QueryParams},
        read_json,
        schemas::{AudienceWriteErrors, ConsentReadErrors, DefinitionReadErrors, IngestErrors},
    },
    ids::SourceId,
    keys::sources::ConsentScope,
    keys::Keys,
};

/// A kind named in a path: an unknown one is a route that does not exist.
fn kind_of(name: &str) -> Result<Kind> {
    Kind::from_plural(name).map_err(|_| Error::NotFound)
}

/// Sets a definition: a new version (compliance token).
///
/// `kind` is `block-types` (`{schema, template}`: a JSON Schema and a Handlebars
/// template), `slots` (`{blockType, variants: {NAME: content}, default, fallback,
/// rules: [{when, variant}]}`), `flags` (`{kind, enabled, variants, default_variant,
/// rules: [{when, serve: {variant} | {split}}]}`) or `experiments` (`{slot | flag,
/// variants, weights, coverage, layer: {layer, start, end}, seed, start, stop, primary:
/// {name, kind, event, property}, guardrails, alpha, power, mde, sequential}`). Checked
/// against everything in force — content against its block type's schema (each fault
/// by its JSON path) and rendered once, strict; conditions; audiences; weights;
/// layers — and nothing is stored when it does not hold.
#[utoipa::path(
    put,
    path = "/v1/definitions/{kind}/{name}",
    tag = "experiments",
    params(("kind" = String, Path, description = "`block-types`, `slots`, `flags` or `experiments`."),
           ("name" = String, Path, description = "1 to 64 lowercase letters, digits, '_' or '-'.")),
    request_body(description = "The definition.", content((Object = "application/json"))),
    responses(
        (status = 200, description = "The version: `{name, version, definition, actor, at, changes}`.", body = Object),
        AudienceWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn put_definition(
    State(keys): State<Arc<Keys>>,
    State(experiments): State<Arc<Experiments>>,
    State(segments): State<Arc<crate::segments::Segments>>,
    State(config): State<Arc<Config>>,
    PathParam((kind, name)): PathParam<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    let kind = kind_of(&kind)?;
    let body = read_json(&config, &headers, body).await?;
    let version = experiments.put(kind, &name, &body, caller.actor()).await?;
    crate::switches::apply(&experiments, &segments, kind, &name, caller.actor()).await?;
    Ok(Json(version).into_response())
}

/// A definition in force (compliance token).
#[utoipa::path(
    get,
    path = "/v1/definitions/{kind}/{name}",
    tag = "experiments",
    params(("kind" = String, Path, description = "`block-types`, `slots`, `flags` or `experiments`."),
           ("name" = String, Path, description = "The definition's name.")),
    responses(
        (status = 200, description = "`{name, version, definition, actor, at, changes}`.", body = Object),
        DefinitionReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn get_definition(
    State(keys): State<Arc<Keys>>,
    State(experiments): State<Arc<Experiments>>,
    PathParam((kind, name)): PathParam<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    require_admin(&keys, &headers).await?;
    Ok(Json(experiments.get(kind_of(&kind)?, &name).await?).into_response())
}

/// Deletes a definition (compliance token): a version without a body, the history
/// kept. Refused for what an experiment or slot still uses.
#[utoipa::path(
    delete,
    path = "/v1/definitions/{kind}/{name}",
    tag = "experiments",
    params(("kind" = String, Path, description = "`block-types`, `slots`, `flags` or `experiments`."),
           ("name" = String, Path, description = "The definition's name.")),
    responses(
        (status = 200, description = "The deletion's version.", body = Object),
        AudienceWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn delete_definition(
    State(keys): State<Arc<Keys>>,
    State(experiments): State<Arc<Experiments>>,
    PathParam((kind, name)): PathParam<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    Ok(Json(
        experiments
            .delete(kind_of(&kind)?, &name, caller.actor())
            .await?,
    )
    .into_response())
}

/// The definitions of a kind in force (compliance token).
#[utoipa::path(
    get,
    path = "/v1/definitions/{kind}",
    tag = "experiments",
    params(("kind" = String, Path, description = "`block-types`, `slots`, `flags` or `experiments`.")),
    responses(
        (status = 200, description = "`{definitions: [{name, version, definition, actor, at, changes}]}`.", body = Object),
        DefinitionReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn list_definitions(
    State(keys): State<Arc<Keys>>,
    State(experiments): State<Arc<Experiments>>,
    PathParam(kind): PathParam<String>,
    headers: HeaderMap,
) -> Result<Response> {
    require_admin(&keys, &headers).await?;
    let list = experiments.list(kind_of(&kind)?).await?;
    Ok(Json(serde_json::json!({ "definitions": list })).into_response())
}

/// Every version of a definition, oldest first: who, when, what changed (compliance
/// token).
#[utoipa::path(
    get,
    path = "/v1/definitions/{kind}/{name}/history",
    tag = "experiments",
    params(("kind" = String, Path, description = "`block-types`, `slots`, `flags` or `experiments`."),
           ("name" = String, Path, description = "The definition's name.")),
    responses(
        (status = 200, description = "`{versions: [{name, version, definition, actor, at, changes}]}`.", body = Object),
        DefinitionReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn history(
    State(keys): State<Arc<Keys>>,
    State(experiments): State<Arc<Experiments>>,
    PathParam((kind, name)): PathParam<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    require_admin(&keys, &headers).await?;
    let versions = experiments.history(kind_of(&kind)?, &name).await?;
    Ok(Json(serde_json::json!({ "versions": versions })).into_response())
}

/// Which version to put back.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    pub version: i64,
}

/// Puts an old version back in force, as a new version (compliance token).
#[utoipa::path(
    post,
    path = "/v1/definitions/{kind}/{name}/rollback",
    tag = "experiments",
    params(("kind" = String, Path, description = "`block-types`, `slots`, `flags` or `experiments`."),
           ("name" = String, Path, description = "The definition's name.")),
    request_body = Rollback,
    responses(
        (status = 200, description = "The new version.", body = Object),
        AudienceWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn rollback(
    State(keys): State<Arc<Keys>>,
    State(experiments): State<Arc<Experiments>>,
    State(segments): State<Arc<crate::segments::Segments>>,
    State(config): State<Arc<Config>>,
    PathParam((kind, name)): PathParam<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response> {
    let caller = require_admin(&keys, &headers).await?;
    let kind = kind_of(&kind)?;
    let body = read_json(&config, &headers, body).await?;
    let r: Rollback =
        serde_json::from_value(body).map_err(|e| Error::BadRequest(format!("rollback: {e}")))?;
    let version = experiments
        .rollback(kind, &name, r.version, caller.actor())
        .await?;
    crate::switches::apply(&experiments, &segments, kind, &name, caller.actor()).await?;
    Ok(Json(version).into_response())
}

/// An experiment's results (compliance token): visitors per variant, the
/// sample-ratio check, each metric per variant against the control with intervals and
/// p-values (adjusted: Holm, Benjamini–Hochberg), the sample size and a verdict.
#[utoipa::path(
    get,
    path = "/v1/experiments/{name}/results",
    tag = "experiments",
    params(("name" = String, Path, description = "The experiment's name.")),
    responses(
        (status = 200, description = "`{experiment, running, variants, srm, sampleSize, metrics, verdict}`.", body = Object),
        DefinitionReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn results(
    State(keys): State<Arc<Keys>>,
    State(experiments): State<Arc<Experiments>>,
    PathParam(name): PathParam<String>,
    headers: HeaderMap,
) -> Result<Response> {
    require_admin(&keys, &headers).await?;
    Ok(Json(experiments.results(&name).await?).into_response())
}

/// What serving content and flags reads: keys, the definitions, the configuration and
/// the country database.
#[derive(Clone)]
pub struct Serving {
    keys: Arc<Keys>,
    experiments: Arc<Experiments>,
    config: Arc<Config>,
    geo: Arc<Geo>,
}

impl axum::extract::FromRef<crate::state::AppState> for Serving {
    fn from_ref(s: &crate::state::AppState) -> Serving {
        Serving {
            keys: s.keys.clone(),
            experiments: s.experiments.clone(),
            config: s.config.clone(),
            geo: s.geo.clone(),
        }
    }
}

impl Serving {
    /// Who asks for content or flags: the caller's source (a write key from an allowed
    /// origin, or a server key), its consent scope, and the request's context.
    async fn visitor(
        &self,
        headers: &HeaderMap,
        ip: std::net::IpAddr,
        q: &ServeQuery,
    ) -> Result<(SourceId, Arc<ConsentScope>, RequestContext)> {
        let (_, source) = source_caller(&self.keys, headers, None).await?;
        let scope = self.keys.sources.get(&source).scope.clone();
        let request = context((&self.config, &self.geo, ip), headers, q)?;
        Ok((source, scope, request))
    }
}

/// Who asks and from where.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ServeQuery {
    /// The visitor's id as the site knows it (anonymous or user id); none: the
    /// fallback, as for a visitor without consent.
    pub subject: Option<String>,
    /// `json` (default) or `html` (the block rendered by its type's template).
    pub format: Option<String>,
    /// The client's offset from UTC in minutes (local time of day conditions).
    pub utc_offset: Option<i32>,
    /// The app's version (semver), for app-version conditions.
    pub app_version: Option<String>,
    /// The caller's default for `GET /v1/flags/{key}` (JSON).
    pub default: Option<String>,
}

/// The request's context: device, OS and browser from the User-Agent (woothee), the
/// country from the configured trusted header (a CDN's) or else the configured
/// MaxMind database (the address looked up, never kept), the rest from the query.
fn context(
    (config, geo, ip): (&Config, &Geo, std::net::IpAddr),
    headers: &HeaderMap,
    q: &ServeQuery,
) -> Result<RequestContext> {
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let parsed = woothee::parser::Parser::new().parse(ua);
    let known =
        |s: &str| (!s.is_empty() && s != woothee::woothee::VALUE_UNKNOWN).then(|| s.to_owned());
    let (device, os, browser) = match &parsed {
        Some(r) => {
            let device = match (r.category, r.os) {
                (_, "iPad") => Some("tablet".to_owned()),
                ("pc", _) => Some("desktop".to_owned()),
                ("smartphone" | "mobilephone", _) => Some("mobile".to_owned()),
                ("crawler", _) => Some("bot".to_owned()),
                ("appliance", _) => Some("tv".to_owned()),
                _ => None,
            };
            (device, known(r.os), known(r.name))
        }
        None => (None, None, None),
    };
    let country = config
        .country_header
        .as_deref()
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok())
        .map(|c| c.trim().to_ascii_uppercase())
        .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
        .or_else(|| geo.country(ip));
    let app_version = q
        .app_version
        .as_deref()
        .map(|v| {
            semver::Version::parse(v).map_err(|e| Error::BadRequest(format!("appVersion: {e}")))
        })
        .transpose()?;
    if q.utc_offset.is_some_and(|o| !(-900..=900).contains(&o)) {
        return Err(Error::BadRequest(
            "utcOffset: minutes from -900 to 900".into(),
        ));
    }
    Ok(RequestContext {
        device,
        os,
        browser,
        country,
        utc_offset_minutes: q.utc_offset,
        app_version,
    })
}

fn subject(q: &ServeQuery) -> Result<&str> {
    let s = q.subject.as_deref().unwrap_or("");
    if s.len() > 200 || s.chars().any(char::is_control) {
        return Err(Error::BadRequest(
            "subject: at most 200 characters, no control characters".into(),
        ));
    }
    Ok(s)
}

/// The variant of a content slot for a visitor (a source's write key, or its server
/// key).
///
/// Consent first: a visitor who granted `analytics` and falls in a running experiment
/// on the slot gets their variant (kept for good, and counted as an exposure); one who
/// granted `personalization` and has a profile gets the first targeting rule's variant
/// (segments, device, OS, browser, country, local time, app version), else the
/// default; everyone else the fallback, never a personalized choice. `format=html`
/// answers the block rendered by its type's template (HTML-escaped). A fallback answer
/// has an `ETag`; `Cache-Control: public, max-age=60` without a subject, `private,
/// no-cache` with one (their consent may arrive at any moment).
#[utoipa::path(
    get,
    path = "/v1/content/{slot}",
    tag = "experiments",
    params(("slot" = String, Path, description = "The slot's name."), ServeQuery),
    responses(
        (status = 200, description = "`{slot, blockType, variant, reason, content, html, experiment}`, or the HTML with `format=html`.",
         content((Object = "application/json"), (String = "text/html"))),
        (status = 304, description = "Not modified (`If-None-Match`; answers that are not personal)."),
        ConsentReadErrors,
    ),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn content(
    State(serving): State<Serving>,
    Client(ip): Client,
    PathParam(slot): PathParam<String>,
    QueryParams(q): QueryParams<ServeQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let (source, scope, request) = serving.visitor(&headers, ip, &q).await?;
    let who = subject(&q)?;
    let served = serving
        .experiments
        .content(&source, &scope, who, &slot, &request)
        .await?;
    let html = match q.format.as_deref() {
        None | Some("json") => false,
        Some("html") => true,
        Some(_) => return Err(Error::BadRequest("format: json or html".into())),
    };
    let mut response = if html {
        let page = served.html.clone().ok_or_else(|| {
            Error::BadRequest(format!(
                "block type {:?} has no template",
                served.block_type
            ))
        })?;
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
    } else {
        Json(&served).into_response()
    };
    let h = response.headers_mut();
    if served.personal {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
    } else {
        // A named visitor's fallback changes as soon as their consent arrives, so their
        // browser revalidates it each time; without a visitor it is the same for all.
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(if who.is_empty() {
                "public, max-age=60"
            } else {
                "private, no-cache"
            }),
        );
        let tag = format!(
            "\"{}\"",
            &crate::pseudonym::sha256_hex(
                serde_json::to_string(&served)
                    .unwrap_or_default()
                    .as_bytes()
            )[..16]
        );
        if headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            == Some(tag.as_str())
        {
            return Ok(StatusCode::NOT_MODIFIED.into_response());
        }
        if let Ok(v) = HeaderValue::from_str(&tag) {
            h.insert(header::ETAG, v);
        }
    }
    Ok(response)
}

/// The variant of a content slot for a visitor, as `GET /v1/content/{slot}` answers it
/// in JSON, with who asks in the body (the SDKs' way).
#[utoipa::path(
    post,
    path = "/v1/content/{slot}",
    tag = "experiments",
    params(("slot" = String, Path, description = "The slot's name.")),
    request_body = ServeBody,
    responses(
        (status = 200, description = "`{slot, blockType, variant, reason, content, html, experiment}`.", body = Object),
        (status = 304, description = "Not modified (`If-None-Match`; answers that are not personal)."),
        IngestErrors,
    ),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn content_post(
    State(serving): State<Serving>,
    client: Client,
    slot: PathParam<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response> {
    let q = ServeBody::read(&serving.config, &headers, body).await?;
    content(State(serving), client, slot, QueryParams(q), headers).await
}

/// Every flag for a visitor, as OpenFeature resolution details (a source's write key,
/// or its server key): `{flags: {KEY: {value, variant, reason, errorCode}}}`.
/// Targeting by segment needs the visitor's `personalization` consent; a flag an
/// experiment runs on gives the visitor's variant (without `analytics` consent: the
/// flag's own rules) — an exposure only through `GET /v1/flags/{key}`. Personal:
/// `Cache-Control: private`.
#[utoipa::path(
    get,
    path = "/v1/flags",
    tag = "experiments",
    params(ServeQuery),
    responses(
        (status = 200, description = "`{flags: {KEY: {value, variant, reason, errorCode}}}`.", body = Object),
        ConsentReadErrors,
    ),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn flags(
    State(serving): State<Serving>,
    Client(ip): Client,
    QueryParams(q): QueryParams<ServeQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let (source, scope, request) = serving.visitor(&headers, ip, &q).await?;
    let all = serving
        .experiments
        .flags((&source, &scope, subject(&q)?), &request)
        .await?;
    let mut r = Json(serde_json::json!({ "flags": all })).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=30"),
    );
    Ok(r)
}

/// Who asks, in a body (what the SDKs send: the install's id stays out of URLs and
/// their logs).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServeBody {
    /// The visitor's id; none: the answer for no one in particular (every flag's own
    /// value, a slot's fallback).
    pub subject: Option<String>,
    /// The client's offset from UTC in minutes.
    pub utc_offset: Option<i32>,
    /// The app's version (semver).
    pub app_version: Option<String>,
}

impl ServeBody {
    /// The body read as the query of the `GET` route it stands for.
    async fn read(
        config: &Config,
        headers: &HeaderMap,
        body: axum::body::Body,
    ) -> Result<ServeQuery> {
        let value = read_json(config, headers, body).await?;
        let b: ServeBody =
            serde_json::from_value(value).map_err(|e| Error::BadRequest(format!("body: {e}")))?;
        Ok(ServeQuery {
            subject: b.subject,
            format: None,
            utc_offset: b.utc_offset,
            app_version: b.app_version,
            default: None,
        })
    }
}

/// Every flag for a visitor, as `GET /v1/flags`, with who asks in the body (the SDKs'
/// way).
#[utoipa::path(
    post,
    path = "/v1/flags",
    tag = "experiments",
    request_body = ServeBody,
    responses(
        (status = 200, description = "`{flags: {KEY: {value, variant, reason, errorCode}}}`.", body = Object),
        IngestErrors,
    ),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn flags_post(
    State(serving): State<Serving>,
    client: Client,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response> {
    let q = ServeBody::read(&serving.config, &headers, body).await?;
    flags(State(serving), client, QueryParams(q), headers).await
}

/// One flag for a visitor, with the caller's `default` (JSON) served on any error
/// (`reason: ERROR` and an `errorCode`: `FLAG_NOT_FOUND`, `TYPE_MISMATCH`…); when an
/// experiment runs on the flag, this counts as the visitor's exposure.
#[utoipa::path(
    get,
    path = "/v1/flags/{key}",
    tag = "experiments",
    params(("key" = String, Path, description = "The flag's key."), ServeQuery),
    responses(
        (status = 200, description = "`{value, variant, reason, errorCode}`.", body = Object),
        ConsentReadErrors,
    ),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn flag(
    State(serving): State<Serving>,
    Client(ip): Client,
    PathParam(key): PathParam<String>,
    QueryParams(q): QueryParams<ServeQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let (source, scope, request) = serving.visitor(&headers, ip, &q).await?;
    let default: Option<Value> = q
        .default
        .as_deref()
        .map(|d| {
            serde_json::from_str(d).map_err(|_| Error::BadRequest("default: a JSON value".into()))
        })
        .transpose()?;
    let answer = serving
        .experiments
        .flag((&source, &scope, subject(&q)?), &key, &request, default)
        .await?;
    let mut r = Json(answer).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(r)
}
