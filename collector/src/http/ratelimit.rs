//! Rate limits (tower-governor): one budget per client address and one per presented
//! credential, so neither one busy client nor one leaked key can starve the others; and,
//! for consent records (each a permanent audit entry), a budget counted in records per
//! source and per client address. A refusal is our usual JSON error with status 429 and
//! `Retry-After`.
//!
//! What a limiter keys on is small and fixed in size whatever a client sends: a client's
//! address (an IPv6 client by its /64, which one host usually holds whole), and a
//! credential by 16 bytes of its SHA-256, taken only when the header is of a size a key
//! can have. Idle entries are forgotten once a minute.
use std::{
    net::{IpAddr, Ipv6Addr, SocketAddr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

use axum::{extract::ConnectInfo, http::Request, response::IntoResponse};
use governor::{clock::Clock as _, DefaultKeyedRateLimiter, Quota};
use sha2::{Digest, Sha256};
use tower_governor::{
    governor::{GovernorConfig, GovernorConfigBuilder},
    key_extractor::KeyExtractor,
    GovernorError, GovernorLayer,
};

use crate::{
    config::Config,
    error::{Error, Result},
};

/// The client's address, as [`crate::http::proxy`] worked it out (the socket peer, or the
/// forwarded client behind a trusted proxy); set on every request before the limiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The address a client is limited by: IPv4 as it is, IPv6 by its /64.
pub fn limited_by(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

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

/// Budgets counted in consent records: per source (a quota no single site may exceed,
/// whatever addresses its traffic comes from) and per client address.
pub struct RecordLimits {
    by_source: DefaultKeyedRateLimiter<String>,
    by_ip: DefaultKeyedRateLimiter<IpAddr>,
    burst: u32,
}

impl RecordLimits {
    pub fn new(c: &Config) -> RecordLimits {
        let rate = NonZeroU32::new(c.consent_records_per_second.max(1)).expect("positive");
        let burst = c
            .consent_records_burst
            .max(c.max_consent_records_per_request as u32)
            .max(1);
        let quota = Quota::per_second(rate).allow_burst(NonZeroU32::new(burst).expect("positive"));
        RecordLimits {
            by_source: DefaultKeyedRateLimiter::keyed(quota),
            by_ip: DefaultKeyedRateLimiter::keyed(quota),
            burst,
        }
    }

    /// Takes `n` records from the client's and then the source's budget, or says when to
    /// come back. A request the client's budget refuses takes nothing from the source's,
    /// so one address cannot spend a site's quota beyond its own budget.
    pub fn check(&self, source_id: &str, ip: Option<IpAddr>, n: usize) -> Result<()> {
        let Some(n) = NonZeroU32::new(n.min(self.burst as usize) as u32) else {
            return Ok(());
        };
        let clock = governor::clock::DefaultClock::default();
        let wait = |not_until: governor::NotUntil<_>| Error::RateLimited {
            retry_after_secs: not_until.wait_time_from(clock.now()).as_secs().max(1),
        };
        let refused = |_| Error::RateLimited {
            retry_after_secs: 1,
        };
        if let Some(ip) = ip {
            let ip = limited_by(ip);
            self.by_ip
                .check_key_n(&ip, n)
                .map_err(refused)?
                .map_err(wait)?;
        }
        match self.by_source.check_key_n(&source_id.to_owned(), n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(wait(not_until)),
            Err(e) => Err(refused(e)),
        }
    }

    /// Forgets idle clients and sources.
    pub fn retain_recent(&self) {
        self.by_source.retain_recent();
        self.by_ip.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(limited_by(a), limited_by(b));
        assert_ne!(limited_by(a), limited_by(c));
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(limited_by(v4), v4);
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(limited_by(mapped), v4);
    }

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

    #[test]
    fn records_are_counted_per_source_and_per_client() {
        let c = Config {
            consent_records_per_second: 1,
            consent_records_burst: 100,
            max_consent_records_per_request: 100,
            ..Config::default()
        };
        let limits = RecordLimits::new(&c);
        let ip_a: IpAddr = "192.0.2.1".parse().unwrap();
        let ip_b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limits.check("src_a", Some(ip_a), 60).is_ok());
        // The client has 40 records left, so 50 from it are refused, and cost source b
        // nothing...
        assert!(matches!(
            limits.check("src_b", Some(ip_a), 50),
            Err(Error::RateLimited { .. })
        ));
        assert!(limits.check("src_b", Some(ip_b), 50).is_ok());
        // ...and source a has 40 left, whichever address sends for it.
        assert!(limits.check("src_a", Some(ip_b), 41).is_err());
        assert!(limits.check("src_a", None, 40).is_ok());
    }
}
