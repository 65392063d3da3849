//! Recommendation feedback: how a served list is named (`rec_id`) and the events that
//! carry it back, so impressions, clicks and conversions count for the model version
//! that made the list.

use std::fmt;
use std::str::FromStr;

use crate::ProtocolError;

/// The event of an impression of a recommendation list (`properties.rec_id`).
pub const RECOMMENDATION_VIEWED: &str = "Recommendation Viewed";
/// The event of a click on an item of a list (`properties.rec_id`, `properties.item_id`).
pub const RECOMMENDATION_CLICKED: &str = "Recommendation Clicked";
/// Conversions that count for a list when they carry its `rec_id`.
pub const RECOMMENDATION_CONVERSIONS: [&str; 2] = ["Product Added", "Order Completed"];

/// The name of one served list, `NAME.VERSION.HASH`: the recommender's name, the model
/// version that ranked it, and 32 lowercase hex digits naming the answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecId {
    name: String,
    version: i64,
    hash: String,
}

impl RecId {
    /// The id of a list by recommender `name` (no `.`, not empty) at `version`, whose
    /// answer is named by `hash` (32 hex digits).
    pub fn new(name: &str, version: i64, hash: &str) -> Result<RecId, ProtocolError> {
        format!("{name}.{version}.{hash}").parse()
    }

    /// The recommender's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The model version that ranked the list.
    pub fn version(&self) -> i64 {
        self.version
    }
}

impl FromStr for RecId {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<RecId, ProtocolError> {
        let bad = || ProtocolError::Shape("rec_id is not NAME.VERSION.HASH".into());
        let mut parts = s.split('.');
        let (name, version, hash) = (
            parts.next().ok_or_else(bad)?,
            parts.next().ok_or_else(bad)?,
            parts.next().ok_or_else(bad)?,
        );
        let hex =
            |h: &str| h.len() == 32 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if parts.next().is_some()
            || name.is_empty()
            || name.chars().any(char::is_control)
            || !hex(hash)
        {
            return Err(bad());
        }
        let version = version
            .parse::<i64>()
            .ok()
            .filter(|v| *v > 0 && !version.starts_with(['+', '0']))
            .ok_or_else(bad)?;
        Ok(RecId {
            name: name.to_owned(),
            version,
            hash: hash.to_owned(),
        })
    }
}

impl fmt::Display for RecId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.name, self.version, self.hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rec_ids_round_trip_and_bad_ones_are_refused() {
        let hash = "0123456789abcdef0123456789abcdef";
        let id = RecId::new("default", 3, hash).unwrap();
        assert_eq!((id.name(), id.version()), ("default", 3));
        assert_eq!(id.to_string().parse::<RecId>().unwrap(), id);
        for bad in [
            "",
            "default.3",
            &format!("default.3.{hash}.x"),
            &format!(".3.{hash}"),
            &format!("default.0.{hash}"),
            &format!("default.-1.{hash}"),
            &format!("default.+3.{hash}"),
            &format!("default.03.{hash}"),
            &format!("default.x.{hash}"),
            "default.3.0123456789ABCDEF0123456789abcdef",
            "default.3.0123",
        ] {
            assert!(bad.parse::<RecId>().is_err(), "{bad:?}");
        }
        let e = "a.b".parse::<RecId>().unwrap_err().to_string();
        assert!(!e.contains("a.b"), "the value is not echoed: {e}");
    }
}
