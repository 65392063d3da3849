//! Budgets counted in consent records (each a permanent audit entry): per source and per
//! client address, so neither one site nor one client can fill the audit trail.
use std::{
    net::{IpAddr, Ipv6Addr},
    num::NonZeroU32,
};

use governor::{clock::Clock as _, DefaultKeyedRateLimiter, Quota};

use crate::{
    config::Config,
    error::{Error, Result},
    ids::SourceId,
};

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

/// Budgets counted in consent records: per source (a quota no single site may exceed,
/// whatever addresses its traffic comes from) and per client address.
pub struct RecordLimits {
    by_source: DefaultKeyedRateLimiter<SourceId>,
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
    pub fn check(&self, source_id: &SourceId, ip: Option<IpAddr>, n: usize) -> Result<()> {
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
        match self.by_source.check_key_n(source_id, n) {
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
    fn records_are_counted_per_source_and_per_client() {
        let c = Config {
            consent_records_per_second: 1,
            consent_records_burst: 100,
            max_consent_records_per_request: 100,
            ..Config::default()
        };
        let limits = RecordLimits::new(&c);
        let src_a = SourceId::parse("src_a").unwrap();
        let src_b = SourceId::parse("src_b").unwrap();
        let ip_a: IpAddr = "192.0.2.1".parse().unwrap();
        let ip_b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limits.check(&src_a, Some(ip_a), 60).is_ok());
        // The client has 40 records left, so 50 from it are refused, and cost source b
        // nothing...
        assert!(matches!(
            limits.check(&src_b, Some(ip_a), 50),
            Err(Error::RateLimited { .. })
        ));
        assert!(limits.check(&src_b, Some(ip_b), 50).is_ok());
        // ...and source a has 40 left, whichever address sends for it.
        assert!(limits.check(&src_a, Some(ip_b), 41).is_err());
        assert!(limits.check(&src_a, None, 40).is_ok());
    }
}
