use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ConsentRecord, Event, Timestamp};

/// The body of `POST /v1/batch`: Segment's batch plus Assent's consent records.
///
/// Events are kept as raw JSON values so that a receiver can check each one on its own
/// (a bad event never blocks the good ones); [`Event::from_value`] parses one.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchEnvelope {
    /// The events.
    #[serde(default)]
    pub batch: Vec<Value>,
    /// Consent records; each is proof of a choice and is always delivered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consent: Vec<ConsentRecord>,
    /// When this attempt was sent, by the device's clock: used to correct clock skew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Timestamp>,
    /// Write key, for clients that cannot set headers (`navigator.sendBeacon`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_key: Option<String>,
}

impl BatchEnvelope {
    /// Parses the events of the batch one by one: a bad event does not hide the others.
    pub fn events(&self) -> impl Iterator<Item = Result<Event, crate::ProtocolError>> + '_ {
        self.batch.iter().cloned().map(Event::from_value)
    }
}

/// Why the collector refused one event of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// The event does not follow the protocol.
    Invalid,
    /// The event exceeds 32 KB.
    TooLarge,
    /// The subject had not granted the event's purpose at the event's time.
    NoConsent,
    /// An identifier or name (`messageId`, `event`, `name`, an id) holds a control
    /// character such as NUL, which no store keeps reliably.
    InvalidCharacters,
    /// The event's time, corrected for the device's clock, is later than the time it was
    /// received plus the collector's clock tolerance.
    FutureTimestamp,
}

impl RejectCode {
    /// Every code, in a fixed order.
    pub const ALL: [RejectCode; 5] = [
        RejectCode::Invalid,
        RejectCode::TooLarge,
        RejectCode::NoConsent,
        RejectCode::InvalidCharacters,
        RejectCode::FutureTimestamp,
    ];

    /// The code as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::Invalid => "invalid",
            RejectCode::TooLarge => "too_large",
            RejectCode::NoConsent => "no_consent",
            RejectCode::InvalidCharacters => "invalid_characters",
            RejectCode::FutureTimestamp => "future_timestamp",
        }
    }
}

/// One refused event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    /// Position of the event in `batch`.
    pub index: u32,
    /// The event's `messageId`, when it had a readable one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Machine-readable reason.
    pub code: RejectCode,
    /// Human-readable reason, free of personal data.
    pub reason: String,
}

/// The collector's answer to a batch. Every event in the batch is in exactly one of
/// the three outcomes; all three are final, so a client removes the whole batch.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BatchResponse {
    /// Events stored now.
    pub accepted: u32,
    /// Events whose `messageId` was already stored for this source.
    pub duplicates: u32,
    /// Events refused, with the reason.
    #[serde(default)]
    pub rejected: Vec<Rejection>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_codes_are_written_as_their_names() {
        for code in RejectCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::String(code.as_str().into())
            );
        }
    }
}
