//! Pseudonymous identifiers: the install secret, the `anonymousId` derived from it, and
//! the peppered `userId`.
use std::{fmt, path::Path};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use unicode_normalization::UnicodeNormalization;

use crate::{
    error::{AssentError, Result},
    storage,
};

type HmacSha256 = Hmac<Sha256>;

const SECRET_FILE: &str = "install_secret";
const SECRET_LEN: usize = 32;
/// Domain separation: the secret is only ever used for this derivation.
const ANONYMOUS_ID_LABEL: &[u8] = b"assent/anonymous-id/v1\0";
/// A pepper shorter than this is too easy to brute-force.
pub(crate) const MIN_PEPPER_BYTES: usize = 16;

/// Where secrets get their randomness: the OS in production, a test's choice in tests.
pub(crate) type RandomFill = dyn Fn(&mut [u8]) + Send + Sync;

/// 256 random bits generated on first use and kept in `storage_dir`. Never leaves the
/// device; only HMACs of it do.
#[derive(Clone)]
pub(crate) struct InstallSecret([u8; SECRET_LEN]);

impl fmt::Debug for InstallSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InstallSecret(..)")
    }
}

impl InstallSecret {
    /// Loads the secret, creating it when absent or unreadable (a torn file can only be
    /// one that was never fully written, since writes are atomic).
    pub(crate) fn load_or_create(dir: &Path, random: &dyn Fn(&mut [u8])) -> Result<InstallSecret> {
        if let Some(bytes) = storage::read_if_exists(&dir.join(SECRET_FILE))? {
            if let Ok(arr) = <[u8; SECRET_LEN]>::try_from(bytes.as_slice()) {
                return Ok(InstallSecret(arr));
            }
            log::warn!("install secret unreadable; generating a new one");
        }
        InstallSecret::rotate(dir, random)
    }

    /// Replaces the secret with a new random one, persisted before it is returned.
    pub(crate) fn rotate(dir: &Path, random: &dyn Fn(&mut [u8])) -> Result<InstallSecret> {
        let mut bytes = [0u8; SECRET_LEN];
        random(&mut bytes);
        storage::write_atomically(&dir.join(SECRET_FILE), &bytes)?;
        Ok(InstallSecret(bytes))
    }

    /// The install's `anonymousId` for `app_id`: HMAC-SHA256(secret, label ‖ app_id),
    /// first 16 bytes, written as a UUID (version 8, "custom"). Two apps on one device get
    /// unlinkable ids; the same app gets the same id until the secret rotates.
    pub(crate) fn anonymous_id(&self, app_id: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(ANONYMOUS_ID_LABEL);
        mac.update(app_id.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_custom_bytes(bytes)
            .into_uuid()
            .to_string()
    }
}

/// The canonical form of a user id before it is peppered, so that every platform hashes
/// the same string: surrounding Unicode whitespace removed, Unicode NFC, and ASCII
/// letters lower-cased (only ASCII, so that every language agrees on the mapping).
pub fn normalize_user_id(user_id: &str) -> String {
    let mut s: String = user_id.trim().nfc().collect();
    s.make_ascii_lowercase();
    s
}

/// HMAC-SHA256(pepper, normalized user id) as 64 lowercase hex digits: what `identify`
/// sends instead of the raw id when a pepper is configured. The published test vectors in
/// `protocol/test-vectors/user-id-hmac.json` pin it for every language.
pub fn pseudonymize_user_id(pepper: &str, user_id: &str) -> Result<String> {
    if pepper.len() < MIN_PEPPER_BYTES {
        return Err(AssentError::invalid_argument(format!(
            "user_id_pepper must be at least {MIN_PEPPER_BYTES} bytes"
        )));
    }
    let normalized = normalize_user_id(user_id);
    if normalized.is_empty() {
        return Err(AssentError::invalid_argument("user id is empty"));
    }
    let mut mac =
        HmacSha256::new_from_slice(pepper.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(normalized.as_bytes());
    Ok(hex(&mac.finalize().into_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Fills a buffer from the operating system's secure random source.
pub(crate) fn os_random(buf: &mut [u8]) {
    getrandom::getrandom(buf).expect("the OS random source is available");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Vector {
        pepper: String,
        input: String,
        normalized: String,
        output: String,
    }

    #[test]
    fn published_test_vectors_hold() {
        let text = include_str!("../../protocol/test-vectors/user-id-hmac.json");
        let file: serde_json::Value = serde_json::from_str(text).unwrap();
        let vectors: Vec<Vector> = serde_json::from_value(file["vectors"].clone()).unwrap();
        assert!(vectors.len() >= 5);
        for v in vectors {
            assert_eq!(
                normalize_user_id(&v.input),
                v.normalized,
                "normalizing {:?}",
                v.input
            );
            assert_eq!(pseudonymize_user_id(&v.pepper, &v.input).unwrap(), v.output);
        }
    }

    #[test]
    fn short_peppers_and_empty_ids_are_refused() {
        assert!(matches!(
            pseudonymize_user_id("short", "u"),
            Err(AssentError::InvalidArgument { .. })
        ));
        assert!(pseudonymize_user_id("a-long-enough-pepper", "   ").is_err());
    }

    #[test]
    fn anonymous_ids_are_scoped_by_app_and_stable() {
        let secret = InstallSecret([7; 32]);
        let a = secret.anonymous_id("com.example.a");
        assert_eq!(a, secret.anonymous_id("com.example.a"));
        assert_ne!(a, secret.anonymous_id("com.example.b"));
        assert_ne!(a, InstallSecret([8; 32]).anonymous_id("com.example.a"));
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 8);
    }

    #[test]
    fn secret_persists_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let first = InstallSecret::load_or_create(dir.path(), &os_random).unwrap();
        let again = InstallSecret::load_or_create(dir.path(), &os_random).unwrap();
        assert_eq!(first.0, again.0);
        let rotated = InstallSecret::rotate(dir.path(), &os_random).unwrap();
        assert_ne!(first.0, rotated.0);
        let loaded = InstallSecret::load_or_create(dir.path(), &os_random).unwrap();
        assert_eq!(rotated.0, loaded.0);
    }
}
