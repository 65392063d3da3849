//! The one error type of the crate.

/// What can go wrong in experiments.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A definition (split, condition, flag) is not valid; says which part and why.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What is invalid (`weights`, `coverage`, `condition`…).
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The data cannot support the statistic (too few visitors, no variance).
    #[error("not enough data: {0}")]
    Insufficient(String),
}

/// A result with the crate's error.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        what,
        reason: reason.into(),
    }
}
