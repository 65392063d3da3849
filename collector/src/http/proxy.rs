//! The client's address behind proxies. Only a proxy in `trusted_proxies` is believed: its
//! `X-Forwarded-For` is read from the right (the hop it appended last) and the client is
//! the right-most hop that is not itself a trusted proxy. A header from any other peer is
//! ignored, so a client cannot choose the address it is limited and stored by.
use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose forwarded addresses are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(nets)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if self.0.is_empty() || !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // Not an address: nothing further left can be believed.
                return client;
            };
            client = ip;
            if !self.trusts(ip) {
                return ip;
            }
        }
        client
    }
}

/// `203.0.113.7`, `203.0.113.7:4711`, `2001:db8::1` or `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let p = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let lb = ip("10.0.0.2");
        // The client wrote a fake first hop; the balancer appended the real one.
        let h = headers(&["6.6.6.6, 203.0.113.7"]);
        assert_eq!(p.client(lb, &h), ip("203.0.113.7"));
        // Two trusted proxies in a row, over two headers.
        let h = headers(&["198.51.100.9, 10.1.1.1", "10.0.0.3"]);
        assert_eq!(p.client(lb, &h), ip("198.51.100.9"));
        // Ports and brackets as some proxies write them.
        assert_eq!(
            p.client(lb, &headers(&["[2001:db8::7]:443"])),
            ip("2001:db8::7")
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(p.client(lb, &headers(&["203.0.113.7, nonsense"])), lb);
        // No header: the proxy itself.
        assert_eq!(p.client(lb, &HeaderMap::new()), lb);
    }

    #[test]
    fn a_forwarded_header_from_an_untrusted_peer_is_ignored() {
        let p = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let h = headers(&["203.0.113.7"]);
        assert_eq!(p.client(ip("198.51.100.1"), &h), ip("198.51.100.1"));
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.2"), &h),
            ip("10.0.0.2")
        );
    }
}
