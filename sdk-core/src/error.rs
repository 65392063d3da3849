use assent_protocol::ProtocolError;

/// Everything that can go wrong in the SDK. Crosses the FFI as an exception
/// (`AssentException` in Kotlin, `AssentError` in Python and Swift). Messages never
/// contain identifiers, event contents or secrets.
#[derive(Debug, thiserror::Error, uniffi::Error, Clone, PartialEq, Eq)]
pub enum AssentError {
    /// A purpose name that is not `necessary`, `analytics`, `personalization` or `advertising`.
    #[error("unknown purpose (expected necessary, analytics, personalization or advertising)")]
    InvalidPurpose,
    /// A consent method the app may not use, or that does not exist.
    #[error("invalid consent method: {reason}")]
    InvalidMethod {
        /// What was wrong.
        reason: String,
    },
    /// An argument outside its allowed range or shape.
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// What was wrong.
        reason: String,
    },
    /// `properties_json` or `traits_json` is not a JSON object.
    #[error("invalid JSON: {reason}")]
    InvalidJson {
        /// What was wrong, without the input.
        reason: String,
    },
    /// The event, serialized, exceeds the protocol's 32 KB.
    #[error("event exceeds 32 KB")]
    EventTooLarge,
    /// Reading or writing `storage_dir` failed.
    #[error("storage error: {reason}")]
    Storage {
        /// The I/O error, without paths that could hold personal data.
        reason: String,
    },
    /// Another live client (in this or another process) uses the same `storage_dir`.
    #[error("storage_dir is in use by another Assent client")]
    StorageLocked,
    /// The collector could not be reached, or answered with a transient error.
    #[error("network error: {reason}")]
    Network {
        /// What happened.
        reason: String,
    },
    /// The collector refused the write key (401 or 403); uploads wait for a new key.
    #[error("the collector refused the write key")]
    Unauthorized,
    /// The collector asked to slow down; retry after the given delay.
    #[error("rate limited by the collector; retry in {retry_after_ms} ms")]
    RateLimited {
        /// How long to wait, in milliseconds.
        retry_after_ms: u64,
    },
    /// The client was shut down.
    #[error("the client has been shut down")]
    ShutDown,
}

impl AssentError {
    pub(crate) fn invalid_argument(reason: impl Into<String>) -> Self {
        AssentError::InvalidArgument {
            reason: reason.into(),
        }
    }
}

impl From<std::io::Error> for AssentError {
    fn from(err: std::io::Error) -> Self {
        // io::Error's Display never includes the path; keep only the kind and OS message.
        AssentError::Storage {
            reason: err.to_string(),
        }
    }
}

impl From<ProtocolError> for AssentError {
    fn from(err: ProtocolError) -> Self {
        match err {
            ProtocolError::UnknownPurpose => AssentError::InvalidPurpose,
            ProtocolError::UnknownMethod => AssentError::InvalidMethod {
                reason: err.to_string(),
            },
            ProtocolError::EventTooLarge => AssentError::EventTooLarge,
            other => AssentError::invalid_argument(other.to_string()),
        }
    }
}

impl From<uniffi::UnexpectedUniFFICallbackError> for AssentError {
    fn from(err: uniffi::UnexpectedUniFFICallbackError) -> Self {
        AssentError::Network {
            reason: format!("host transport failed: {}", err.reason),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = AssentError> = std::result::Result<T, E>;
