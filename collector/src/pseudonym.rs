//! Identifiers are pseudonymized before they touch the database: `<key id>.<hex
//! HMAC-SHA256(key, label ‖ raw id)>`. The key id lets the key rotate.
use std::net::IpAddr;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::{config::Secret, ids::Pseudonym};

type HmacSha256 = Hmac<Sha256>;

const LABEL: &[u8] = b"assent/pseudonym/v1\0";
const CHECKPOINT_LABEL: &[u8] = b"assent/audit-checkpoint/v1\0";

#[derive(Clone)]
pub struct Pseudonymizer {
    key_id: String,
    key: Secret,
    /// HMAC under `key` with [`LABEL`] already taken in: cloning it skips preparing the
    /// key for every identifier.
    pseudonym_mac: HmacSha256,
    /// Keys rotated out: data stored under them is still found, never written anew.
    previous: Vec<(String, Secret)>,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pseudonymizer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Pseudonymizer {
    pub fn new(key_id: impl Into<String>, key: Secret) -> Pseudonymizer {
        let mut pseudonym_mac =
            HmacSha256::new_from_slice(key.expose().as_bytes()).expect("any key length");
        pseudonym_mac.update(LABEL);
        Pseudonymizer {
            key_id: key_id.into(),
            key,
            pseudonym_mac,
            previous: Vec::new(),
        }
    }

    /// Adds the keys that were in use before this one (`id=key,id=key`).
    pub fn with_previous(mut self, previous: Vec<(String, Secret)>) -> Pseudonymizer {
        self.previous = previous;
        self
    }

    pub fn has_previous(&self) -> bool {
        !self.previous.is_empty()
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    fn mac(&self, label: &[u8], data: &[u8]) -> [u8; 32] {
        mac_with(&self.key, label, data)
    }

    /// The stored form of a raw identifier.
    pub fn pseudonym(&self, raw: &str) -> Pseudonym {
        // 128 bits: ample against collisions, and half the index size of 256.
        let mut mac = self.pseudonym_mac.clone();
        mac.update(raw.as_bytes());
        Pseudonym::from_parts(&self.key_id, &hex(&mac.finalize().into_bytes()[..16]))
    }

    /// Whether `text` has the form of a pseudonym under one of our keys
    /// (`<key id>.<32 hex digits>`): what a data subject request must not be given, since
    /// it takes the raw id.
    pub fn looks_like_pseudonym(&self, text: &str) -> bool {
        let Some((id, digits)) = text.split_once('.') else {
            return false;
        };
        let ours = id == self.key_id || self.previous.iter().any(|(p, _)| p == id);
        ours && digits.len() == 32
            && digits
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    /// The pseudonyms a raw identifier may be stored under: the current key's first, then
    /// those of rotated-out keys.
    pub fn all_pseudonyms(&self, raw: &str) -> Vec<Pseudonym> {
        let mut all = vec![self.pseudonym(raw)];
        for (id, key) in &self.previous {
            let digest = mac_with(key, LABEL, raw.as_bytes());
            all.push(Pseudonym::from_parts(id, &hex(&digest[..16])));
        }
        all
    }

    /// The MAC that signs an audit checkpoint.
    pub fn checkpoint_mac(&self, seq: i64, hash: &str) -> String {
        hex(&self.mac(CHECKPOINT_LABEL, format!("{seq}:{hash}").as_bytes()))
    }
}

/// The indexed key of a stored pseudonym: its first 64 bits, as a signed integer.
pub fn subject_key(pseudonym: &str) -> i64 {
    let digits = pseudonym.split_once('.').map_or(pseudonym, |(_, h)| h);
    match digits
        .get(..16)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
    {
        Some(v) => v as i64,
        None => {
            let d = Sha256::digest(pseudonym.as_bytes());
            i64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
        }
    }
}

pub(crate) fn mac_with(key: &Secret, label: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key.expose().as_bytes()).expect("any key length");
    mac.update(label);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Parses `id=key,id=key` (the rotated-out keys).
pub fn parse_key_list(text: &str) -> Result<Vec<(String, Secret)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (id, key) = pair
                .split_once('=')
                .ok_or("previous keys are id=key pairs separated by commas")?;
            if key.len() < 32 {
                return Err("every pseudonym key must be at least 32 bytes".to_owned());
            }
            Ok((id.trim().to_owned(), Secret::new(key.trim())))
        })
        .collect()
}

/// Bytes from lowercase or uppercase hex (None for odd length or another character).
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Compares two secrets in time that does not depend on where they differ (their SHA-256
/// digests are compared instead of the secrets).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    let (da, db) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// What is kept of a client address: the /24 of IPv4, the /48 of IPv6.
pub fn truncate_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => truncate_ip(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
        },
    }
}

/// A random secret of 32 bytes, hex-encoded (keys, tokens, generated pseudonym keys).
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("OS randomness");
    format!("{prefix}{}", hex(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_keyed_stable_and_carry_the_key_id() {
        let p = Pseudonymizer::new("k1", Secret::new("a".repeat(32)));
        let q = Pseudonymizer::new("k2", Secret::new("b".repeat(32)));
        let a = p.pseudonym("user-42");
        assert_eq!(a, p.pseudonym("user-42"));
        let text = a.as_str();
        assert!(text.starts_with("k1.") && text.len() == 3 + 32);
        assert_eq!(a.key_id(), "k1");
        assert!(!text.contains("user-42"));
        assert_ne!(text[3..], q.pseudonym("user-42").as_str()[3..]);
        assert_eq!(crate::ids::Pseudonym::parse(text).unwrap(), a);
    }

    #[test]
    fn rotated_keys_still_find_old_pseudonyms() {
        let old = Pseudonymizer::new("k1", Secret::new("a".repeat(32)));
        let new = Pseudonymizer::new("k2", Secret::new("b".repeat(32)))
            .with_previous(parse_key_list(&format!("k1={}", "a".repeat(32))).unwrap());
        let all = new.all_pseudonyms("user-42");
        assert_eq!(
            all,
            vec![new.pseudonym("user-42"), old.pseudonym("user-42")]
        );
        assert!(parse_key_list("k1=short").is_err());
        assert!(parse_key_list("nonsense").is_err());
    }

    #[test]
    fn subject_keys_are_the_first_64_bits_of_the_pseudonym() {
        assert_eq!(subject_key("k1.00000000000000ff0123456789abcdef"), 255);
        assert_eq!(subject_key("k1.ffffffffffffffff0123456789abcdef"), -1);
        // Not one of ours: still a stable key.
        assert_eq!(subject_key("odd"), subject_key("odd"));
    }

    #[test]
    fn ips_are_truncated() {
        assert_eq!(
            truncate_ip("203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            truncate_ip("2001:db8:85a3:8d3:1319:8a2e:370:7348".parse().unwrap()),
            "2001:db8:85a3::/48"
        );
        assert_eq!(
            truncate_ip("::ffff:198.51.100.9".parse().unwrap()),
            "198.51.100.0/24"
        );
    }
}
