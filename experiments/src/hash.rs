//! Where a subject falls for a seed: a number in `[0, 1)` that depends only on the two
//! strings, so any server or client computes the same one. Assignment v1:
//! `fmix32(fnv1a32(utf8(seed ":" subject))) / 2³²` (rollouts: `seed:rollout:subject`) — FNV-1a (32 bits) over the bytes,
//! then MurmurHash3's finalizer so that ids differing in one character land far apart.
//! Written out here (a few lines) so that any client could compute the same number (a
//! device evaluating flags offline); checked against
//! `protocol/test-vectors/assignment.json`, whose `served` cases the collector's and the
//! browser's tests also see served.

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// FNV-1a, 32 bits.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(FNV_OFFSET, |h, &b| (h ^ b as u32).wrapping_mul(FNV_PRIME))
}

/// MurmurHash3's 32-bit finalizer: every input bit affects every output bit.
pub fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The raw 32-bit hash of the parts joined by `:` (`seed:subject`).
pub fn hash(parts: &[&str]) -> u32 {
    let mut h = FNV_OFFSET;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h = (h ^ b':' as u32).wrapping_mul(FNV_PRIME);
        }
        h = part
            .bytes()
            .fold(h, |h, b| (h ^ b as u32).wrapping_mul(FNV_PRIME));
    }
    fmix32(h)
}

/// `subject`'s position for `seed`, in `[0, 1)`.
pub fn bucket(seed: &str, subject: &str) -> f64 {
    unit(hash(&[seed, subject]))
}

/// `subject`'s position for a percentage rollout of `seed` (`seed:rollout:subject`),
/// independent of its position in a split of the same seed.
pub fn rollout_bucket(seed: &str, subject: &str) -> f64 {
    unit(hash(&[seed, "rollout", subject]))
}

fn unit(h: u32) -> f64 {
    h as f64 / 4_294_967_296.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_its_published_values() {
        // From the FNV reference test suite (fnv-1a 32).
        assert_eq!(fnv1a32(b""), 0x811c9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9cf968);
        assert_eq!(hash(&["s", "x"]), fmix32(fnv1a32(b"s:x")));
        assert_eq!(
            hash(&["s", "rollout", "x"]),
            fmix32(fnv1a32(b"s:rollout:x"))
        );
    }
}
