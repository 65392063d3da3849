//! Rate limits (tower-governor): one budget per client address and one per presented
//! credential, so neither one busy client nor one leaked key can starve the others (the
//! budgets counted in consent records are ingest's: `crate::ingest::limits`). A refusal
//! is our usual JSON error with status 429 and `Retry-After`.
//!
//! What a limiter keys on is small and fixed in size whatever a client sends: a client's
//! address (an IPv6 client by its /64, which one host usually holds whole), and a
//! credential by 16 bytes of its SHA-256, taken only when the header is of a size a key
//! can have. Idle entries are forgotten once a minute.
use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use axum::{extract::ConnectInfo, http::Request, response::IntoResponse};

use sha2::{Digest, Sha256};
use tower_governor::{
    governor::{GovernorConfig, GovernorConfigBuilder},
    key_extractor::KeyExtractor,
    GovernorError, GovernorLayer,
};

use crate::{config::Config, error::Error, ingest::limits::limited_by};

/// The client's address, as [`crate::http::proxy`] worked it out (the socket peer, or the
/// forwarded client behind a trusted proxy); set on every request before the limiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The client address of a request: the [`ClientAddr`] set by the edge, else the peer.
pub fn client_of<T>(req: &Request<T>) -> IpAddr {
    if let Some(ClientAddr(ip)) = req.extensions().get::<ClientAddr>() {
        return *ip;
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip())
}

/// Limits by client address.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp;

impl KeyExtractor for ClientIp {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<Self::Key, GovernorError> {
        Ok(limited_by(client_of(req)))
    }
}

/// Longest `Authorization` header keyed on its own: a Basic header with a 256-character
/// key (the longest we accept) is about 350 bytes.
pub const MAX_CREDENTIAL_HEADER: usize = 512;

/// What the per-credential limiter keys on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKey {
    /// The first 16 bytes of the header's SHA-256.
    Credential([u8; 16]),
    /// No header, or one too long to be a key: the client's address.
    Client(IpAddr),
}

/// Limits by presented credential (the `Authorization` header); requests without one, or
/// with one no key could fill, share the budget of their address.
#[derive(Debug, Clone, Copy)]
pub struct PresentedKey;

impl KeyExtractor for PresentedKey {
    type Key = CredentialKey;

    fn extract<T>(&self, req: &Request<T>) -> Result<Self::Key, GovernorError> {
        match req.headers().get(axum::http::header::AUTHORIZATION) {
            Some(auth) if auth.len() <= MAX_CREDENTIAL_HEADER => {
                let digest = Sha256::digest(auth.as_bytes());
                let mut key = [0u8; 16];
                key.copy_from_slice(&digest[..16]);
                Ok(CredentialKey::Credential(key))
            }
            _ => Ok(CredentialKey::Client(limited_by(client_of(req)))),
        }
    }
}

fn refusal(err: GovernorError) -> axum::response::Response {
    match err {
        GovernorError::TooManyRequests { wait_time, .. } => Error::RateLimited {
            retry_after_secs: wait_time.max(1),
        }
        .into_response(),
        _ => Error::RateLimited {
            retry_after_secs: 1,
        }
        .into_response(),
    }
}

type Layered<K> =
    GovernorConfig<K, governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>>;

fn config<K: KeyExtractor>(c: &Config, key: K) -> Arc<Layered<K>> {
    let rate = u64::from(c.rate_limit_per_second.max(1));
    let mut builder = GovernorConfigBuilder::default();
    builder
        .per_nanosecond(1_000_000_000 / rate)
        .burst_size(c.rate_limit_burst.max(1));
    Arc::new(
        builder
            .key_extractor(key)
            .finish()
            .expect("positive period and burst"),
    )
}

/// The request limiters' entries, for tests and metrics: (by address, by credential).
#[derive(Clone)]
pub struct Sizes {
    by_ip: Arc<Layered<ClientIp>>,
    by_key: Arc<Layered<PresentedKey>>,
}

impl Sizes {
    pub fn entries(&self) -> (usize, usize) {
        (self.by_ip.limiter().len(), self.by_key.limiter().len())
    }
}

/// Applies both request limits to a router, and forgets idle clients once a minute.
pub fn apply(router: axum::Router, c: &Config) -> (axum::Router, Sizes) {
    let by_ip = config(c, ClientIp);
    let by_key = config(c, PresentedKey);
    let (ip_limiter, key_limiter) = (by_ip.limiter().clone(), by_key.limiter().clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            ip_limiter.retain_recent();
            key_limiter.retain_recent();
        }
    });
    let sizes = Sizes {
        by_ip: by_ip.clone(),
        by_key: by_key.clone(),
    };
    let router = router
        .layer(GovernorLayer::new(by_key).error_handler(refusal))
        .layer(GovernorLayer::new(by_ip).error_handler(refusal));
    (router, sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_keyed_by_a_fixed_size_digest_and_huge_ones_by_address() {
        let req = |auth: &str| {
            let mut r = Request::builder().body(()).unwrap();
            r.headers_mut()
                .insert("authorization", auth.parse().unwrap());
            r.extensions_mut()
                .insert(ClientAddr("198.51.100.4".parse().unwrap()));
            r
        };
        let short = PresentedKey.extract(&req("Bearer abc")).unwrap();
        assert!(matches!(short, CredentialKey::Credential(_)));
        assert_ne!(short, PresentedKey.extract(&req("Bearer abd")).unwrap());
        let huge = "x".repeat(MAX_CREDENTIAL_HEADER + 1);
        assert_eq!(
            PresentedKey.extract(&req(&huge)).unwrap(),
            CredentialKey::Client("198.51.100.4".parse().unwrap())
        );
        assert!(std::mem::size_of::<CredentialKey>() <= 20);
    }
}
