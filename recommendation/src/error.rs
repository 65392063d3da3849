//! The one error type of the crate.

/// What can go wrong in recommendation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A parameter is out of its range; says which and why.
    #[error("invalid parameter {name}: {reason}")]
    Parameter {
        /// The parameter's name.
        name: &'static str,
        /// What it must be.
        reason: String,
    },
    /// The data cannot be used as given (says why, and where).
    #[error("invalid data: {0}")]
    Data(String),
    /// Data and model disagree (for example an item index beyond the catalogue).
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A linear system could not be solved (the Gram matrix is not positive definite).
    #[error("numerical failure: {0}")]
    Numerical(String),
}

/// A result with the crate's error.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn parameter(name: &'static str, reason: impl Into<String>) -> Error {
    Error::Parameter {
        name,
        reason: reason.into(),
    }
}
