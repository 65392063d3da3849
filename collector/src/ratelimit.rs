//! Rate limits (tower-governor): one budget per client IP and one per presented key, so
//! neither one busy client nor one leaked key can starve the others. A refusal is our
//! usual JSON error with status 429 and `Retry-After`.
use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{extract::ConnectInfo, http::Request, response::IntoResponse};
use tower_governor::{
    governor::{GovernorConfig, GovernorConfigBuilder},
    key_extractor::KeyExtractor,
    GovernorError, GovernorLayer,
};

use crate::{config::Config, error::Error};

/// The client address (the peer: put the collector behind a proxy that rate-limits
/// itself, or give each client its own key).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp;

impl KeyExtractor for ClientIp {
    type Key = std::net::IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<Self::Key, GovernorError> {
        Ok(req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.ip()))
    }
}

/// The presented credentials (the `Authorization` header); requests without one share
/// the budget of their IP address.
#[derive(Debug, Clone, Copy)]
pub struct PresentedKey;

impl KeyExtractor for PresentedKey {
    type Key = String;

    fn extract<T>(&self, req: &Request<T>) -> Result<Self::Key, GovernorError> {
        match req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            Some(auth) => Ok(format!("key:{auth}")),
            None => ClientIp.extract(req).map(|ip| format!("ip:{ip}")),
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

fn config<K: KeyExtractor>(
    c: &Config,
    key: K,
) -> Arc<GovernorConfig<K, governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>>> {
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

/// Applies both limits to a router, and forgets idle clients once a minute.
pub fn apply(router: axum::Router, c: &Config) -> axum::Router {
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
    router
        .layer(GovernorLayer::new(by_key).error_handler(refusal))
        .layer(GovernorLayer::new(by_ip).error_handler(refusal))
}
