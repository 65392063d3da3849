//! What handlers take from a request: path and query parameters whose rejections are our
//! JSON errors, the client's address, and the caller (authentication by key). Handlers of
//! every domain use these; the router (`http.rs`) only wires them.
use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts, HeaderMap},
};
use base64::Engine as _;
use serde::de::DeserializeOwned;

use crate::{
    error::{Error, Result},
    http::ratelimit::ClientAddr,
    ids::SourceId,
    keys::Keys,
    storage::Caller,
};

/// A path parameter whose rejection is our JSON error (and never echoes the input).
pub struct PathParam<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParam<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParam(p.0))
            .map_err(|_| {
                Error::BadRequest("malformed path (it must be valid percent-encoded UTF-8)".into())
            })
    }
}

/// A query string whose rejection is our JSON error.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|_| {
                Error::BadRequest(
                    "malformed query string (a parameter repeated, unknown, or of the wrong type)"
                        .into(),
                )
            })
    }
}

/// The client's address as the edge worked it out (see `proxy.rs`).
pub struct Client(pub std::net::IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self> {
        if let Some(ClientAddr(ip)) = parts.extensions.get::<ClientAddr>() {
            return Ok(Client(*ip));
        }
        parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| Client(c.0.ip()))
            .ok_or_else(|| Error::Internal("no client address".into()))
    }
}

/// The key a request carries: HTTP Basic (key as user name, as Segment's libraries send
/// it), `Bearer`, or the body's `writeKey`.
pub(crate) fn presented_key(headers: &HeaderMap, body_key: Option<&str>) -> Option<String> {
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
    keys: &Keys,
    headers: &HeaderMap,
    body_key: Option<&str>,
) -> Result<Caller> {
    let key = presented_key(headers, body_key).ok_or(Error::Unauthorized)?;
    if key.len() > 256 {
        return Err(Error::Unauthorized);
    }
    keys.find(&key).await?.ok_or(Error::Unauthorized)
}

/// An admin (compliance) token. A write key gets the same answer as an unknown key, so
/// the public write keys cannot be told apart from nonsense on these routes.
pub async fn require_admin(keys: &Keys, headers: &HeaderMap) -> Result<Caller> {
    match authenticate(keys, headers, None).await? {
        admin @ Caller::Admin { .. } => Ok(admin),
        Caller::Source { .. } | Caller::Server { .. } => Err(Error::Unauthorized),
    }
}

/// A server key is secret: one sent by a browser (with an `Origin`) has leaked, and must
/// not work there.
fn not_from_a_browser(headers: &HeaderMap) -> Result<()> {
    if headers.contains_key(header::ORIGIN) {
        return Err(Error::Forbidden);
    }
    Ok(())
}

/// A key of a source: a write key from a browser origin the source allows (or from no
/// browser), or a server key from no browser at all (a secret key seen in a browser has
/// leaked, and must not work there).
pub(crate) async fn source_caller(
    keys: &Keys,
    headers: &HeaderMap,
    body_key: Option<&str>,
) -> Result<(Caller, SourceId)> {
    let caller = authenticate(keys, headers, body_key).await?;
    match &caller {
        Caller::Source { source_id, .. } => {
            let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
            keys.check_origin(source_id, origin)?;
            let source_id = source_id.clone();
            Ok((caller, source_id))
        }
        Caller::Server { source_id, .. } => {
            not_from_a_browser(headers)?;
            let source_id = source_id.clone();
            Ok((caller, source_id))
        }
        Caller::Admin { .. } => Err(Error::Forbidden),
    }
}

/// The consent scope a caller may read: a server key its own source's, the compliance
/// token any source's (named by `source`); a write key none (it is public).
pub(crate) async fn consent_reader(
    keys: &Keys,
    headers: &HeaderMap,
    source: Option<&str>,
) -> Result<SourceId> {
    reader_caller(keys, headers, source).await.map(|(s, _)| s)
}

/// As [`consent_reader`], with the caller (who acts, for the audit trail).
pub(crate) async fn reader_caller(
    keys: &Keys,
    headers: &HeaderMap,
    source: Option<&str>,
) -> Result<(SourceId, Caller)> {
    let caller = authenticate(keys, headers, None).await?;
    // Looked up only for a caller that may read: nobody else learns which sources exist.
    let named = match (&caller, source) {
        (Caller::Admin { .. } | Caller::Server { .. }, Some(s)) => {
            Some(keys.find_source(s).await?.ok_or(Error::NotFound)?)
        }
        _ => None,
    };
    let source = match &caller {
        Caller::Admin { .. } => named.ok_or_else(|| {
            Error::BadRequest("name the source whose consent is asked: ?source=<id or name>".into())
        })?,
        Caller::Server { source_id, .. } => {
            not_from_a_browser(headers)?;
            match named {
                Some(other) if &other != source_id => return Err(Error::Unauthorized),
                _ => source_id.clone(),
            }
        }
        Caller::Source { .. } => return Err(Error::Unauthorized),
    };
    Ok((source, caller))
}

/// A key in a header is checked before the body is read, inflated or parsed; a key in
/// the body (`sendBeacon` cannot set headers) only after.
pub(crate) async fn header_caller(
    keys: &Keys,
    headers: &HeaderMap,
) -> Result<Option<(Caller, SourceId)>> {
    if headers.contains_key(header::AUTHORIZATION) {
        return source_caller(keys, headers, None).await.map(Some);
    }
    Ok(None)
}
