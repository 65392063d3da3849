use thiserror::Error;

/// Why a value is not valid protocol v1. Messages never contain the offending value, so
/// they are safe to log and to return to clients: the input may hold personal data.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// A purpose name that protocol v1 does not define.
    #[error("unknown purpose (expected necessary, analytics, personalization or advertising)")]
    UnknownPurpose,
    /// A consent method name that protocol v1 does not define.
    #[error("unknown consent method (expected accept_all, reject_all, custom, gpc, withdraw or policy_change)")]
    UnknownMethod,
    /// A consent source name that protocol v1 does not define.
    #[error("unknown consent source (expected sdk, banner or api)")]
    UnknownSource,
    /// `messageId` empty or longer than 100 characters.
    #[error("messageId must be a non-empty string of at most 100 characters")]
    InvalidMessageId,
    /// A timestamp that is not ISO 8601 / RFC 3339.
    #[error("timestamp is not an ISO 8601 date-time with offset")]
    InvalidTimestamp,
    /// A field that the event type requires is missing or empty.
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    /// The event, serialized, exceeds 32 KB.
    #[error("event exceeds 32 KB")]
    EventTooLarge,
    /// An identifier or name holds a control character (U+0000-U+001F, U+007F-U+009F),
    /// such as NUL, which PostgreSQL cannot store and no reader expects.
    #[error("`{0}` contains a control character")]
    ControlCharacter(&'static str),
    /// The JSON does not have the shape protocol v1 requires.
    #[error("invalid JSON shape: {0}")]
    Shape(String),
}

impl ProtocolError {
    /// Turns a serde_json error into a shape error without echoing input values.
    pub(crate) fn from_json(err: &serde_json::Error) -> Self {
        // serde_json messages name fields and types, and for `invalid value` errors quote
        // the value; keep only the category and position.
        let what = match err.classify() {
            serde_json::error::Category::Syntax => "malformed JSON",
            serde_json::error::Category::Eof => "truncated JSON",
            serde_json::error::Category::Data => "wrong type or missing field",
            serde_json::error::Category::Io => "read error",
        };
        ProtocolError::Shape(format!(
            "{what} at line {} column {}",
            err.line(),
            err.column()
        ))
    }
}
