//! The identifiers and times that cross the collector's modules, each a type that holds
//! only a valid value: a pseudonymous subject, a source's id, an event's message id (the
//! protocol's type), and an instant in Unix milliseconds. Storage reads and writes them as
//! text and integers; everything above it passes these.
use std::{borrow::Borrow, fmt};

pub use assent_protocol::MessageId;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A pseudonymous identifier as stored: `<key id>.<32 lowercase hex digits>`, the HMAC
/// of a raw id under the key named. Made by [`crate::pseudonym::Pseudonymizer`]; never a
/// raw id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pseudonym(#[serde(deserialize_with = "parsed_pseudonym")] String);

/// A pseudonym read as a field (from the NATS stream) is parsed like any other.
fn parsed_pseudonym<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<String, D::Error> {
    let text = String::deserialize(d)?;
    Pseudonym::parse(text)
        .map(|p| p.0)
        .map_err(serde::de::Error::custom)
}

/// Longest key id a pseudonym may name.
pub const MAX_KEY_ID_CHARS: usize = 64;

impl Pseudonym {
    /// Parses a pseudonym read back (from the feed, a file, a request).
    pub fn parse(text: impl Into<String>) -> Result<Pseudonym> {
        let text = text.into();
        let well_formed = text.split_once('.').is_some_and(|(id, digits)| {
            !id.is_empty()
                && id.len() <= MAX_KEY_ID_CHARS
                && !id.contains('.')
                && digits.len() == 32
                && digits
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if !well_formed {
            return Err(Error::BadRequest(
                "a pseudonym is <key id>.<32 lowercase hex digits>".into(),
            ));
        }
        Ok(Pseudonym(text))
    }

    /// A pseudonym read back from the database, which only ever stores made ones.
    pub(crate) fn from_stored(text: String) -> Pseudonym {
        debug_assert!(Pseudonym::parse(text.as_str()).is_ok(), "{text:?}");
        Pseudonym(text)
    }

    /// The pseudonym `<key_id>.<digits>` (`digits`: 32 lowercase hex, as the
    /// pseudonymizer makes them).
    pub(crate) fn from_parts(key_id: &str, digits: &str) -> Pseudonym {
        Pseudonym(format!("{key_id}.{digits}"))
    }

    /// The id of the key it was made with.
    pub fn key_id(&self) -> &str {
        self.0.split_once('.').map_or("", |(id, _)| id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Pseudonym {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Pseudonym {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A source's id (`src_<16 hex>` when the collector made it): 1 to 64 letters, digits,
/// `_`, `-` or `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SourceId(#[serde(deserialize_with = "parsed_source_id")] String);

/// A source id read as a field is parsed like any other.
fn parsed_source_id<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<String, D::Error> {
    let text = String::deserialize(d)?;
    SourceId::parse(text)
        .map(|s| s.0)
        .map_err(serde::de::Error::custom)
}

impl SourceId {
    pub fn parse(text: impl Into<String>) -> Result<SourceId> {
        let text = text.into();
        let ok = (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !ok {
            return Err(Error::BadRequest(
                "a source id is 1 to 64 letters, digits, '_', '-' or '.'".into(),
            ));
        }
        Ok(SourceId(text))
    }

    /// A source id read back from the database, which only ever stores parsed ones.
    pub(crate) fn from_stored(text: String) -> SourceId {
        debug_assert!(SourceId::parse(text.as_str()).is_ok(), "{text:?}");
        SourceId(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for SourceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// An instant, in milliseconds since the Unix epoch: what the clock reads, what a
/// request was received at, when an audit entry was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UnixMs(i64);

impl UnixMs {
    pub const fn from_millis(ms: i64) -> UnixMs {
        UnixMs(ms)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    /// `days` days earlier.
    pub fn days_before(self, days: u32) -> UnixMs {
        UnixMs(self.0.saturating_sub(i64::from(days) * 24 * 3600 * 1000))
    }

    /// As an ISO 8601 timestamp.
    pub fn timestamp(self) -> assent_protocol::Timestamp {
        assent_protocol::Timestamp::from_unix_millis(self.0)
    }
}

impl From<assent_protocol::Timestamp> for UnixMs {
    fn from(t: assent_protocol::Timestamp) -> UnixMs {
        UnixMs(t.unix_millis())
    }
}

impl fmt::Display for UnixMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.timestamp().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_parse_only_in_their_stored_form() {
        let p = Pseudonym::parse("k1.0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(p.key_id(), "k1");
        for bad in [
            "",
            "k1",
            "k1.0123",
            ".0123456789abcdef0123456789abcdef",
            "k1.0123456789ABCDEF0123456789abcdef",
            "a.b.0123456789abcdef0123456789abcdef",
            "user@example.com",
        ] {
            assert!(Pseudonym::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn source_ids_are_short_and_plain() {
        assert!(SourceId::parse("src_0123456789abcdef").is_ok());
        assert!(SourceId::parse("").is_err());
        assert!(SourceId::parse("a b").is_err());
        assert!(SourceId::parse("x".repeat(65)).is_err());
    }

    #[test]
    fn instants_step_back_by_days_and_print_as_iso_8601() {
        let t = UnixMs::from_millis(86_400_000 * 2);
        assert_eq!(t.days_before(1).millis(), 86_400_000);
        assert_eq!(t.to_string(), "1970-01-03T00:00:00.000Z");
    }
}
