use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{format_description::well_known::Rfc3339, macros::format_description, OffsetDateTime};

use crate::ProtocolError;

/// An instant, written on the wire as ISO 8601 in UTC with millisecond precision
/// (`2026-11-29T12:00:00.123Z`) and read from any RFC 3339 date-time with an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// The instant `millis` milliseconds after the Unix epoch.
    pub fn from_unix_millis(millis: i64) -> Timestamp {
        let nanos = i128::from(millis) * 1_000_000;
        Timestamp(
            OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        )
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// Parses an RFC 3339 date-time.
    pub fn parse(s: &str) -> Result<Timestamp, ProtocolError> {
        OffsetDateTime::parse(s, &Rfc3339)
            .map(|t| Timestamp(t.to_offset(time::UtcOffset::UTC)))
            .map_err(|_| ProtocolError::InvalidTimestamp)
    }

    /// The underlying date-time, in UTC.
    pub fn as_offset_date_time(self) -> OffsetDateTime {
        self.0
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        Timestamp(t.to_offset(time::UtcOffset::UTC))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fmt = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        let s = self.0.format(&fmt).map_err(|_| fmt::Error)?;
        f.write_str(&s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the schema's pattern admits, the parser reads (calendar validity aside, which
    /// the schema's `format: date-time` checks); what it refuses, the parser refuses too.
    #[test]
    fn the_schema_pattern_and_the_parser_agree() {
        for ok in [
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999+23:59",
            "2026-02-28T00:00:00-00:00",
            "2026-11-29T10:00:00.1Z",
        ] {
            assert!(Timestamp::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "0000-00-00T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00+99:00",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_utc_with_millis_and_round_trips() {
        let t = Timestamp::from_unix_millis(1_764_417_600_123);
        assert_eq!(t.to_string(), "2025-11-29T12:00:00.123Z");
        assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn parses_offsets_into_utc() {
        let t = Timestamp::parse("2025-11-29T13:00:00+01:00").unwrap();
        assert_eq!(t.to_string(), "2025-11-29T12:00:00.000Z");
    }

    #[test]
    fn rejects_dates_without_offset() {
        assert_eq!(
            Timestamp::parse("2025-11-29T12:00:00"),
            Err(ProtocolError::InvalidTimestamp)
        );
        assert_eq!(
            Timestamp::parse("yesterday"),
            Err(ProtocolError::InvalidTimestamp)
        );
    }
}
