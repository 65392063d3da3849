//! The one error type of the crate.

/// What can go wrong in segmentation.
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
    /// The data cannot be used as given.
    #[error("invalid data: {0}")]
    Data(String),
    /// Data and model disagree (for example in the number of features).
    #[error("shape mismatch: {0}")]
    Shape(String),
}

/// A result with the crate's error.
pub type Result<T> = std::result::Result<T, Error>;
