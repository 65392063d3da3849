//! Experiments over plain data (no IO, synchronous, so a device could run it too):
//! where a subject falls for a seed ([`hash`]), splits into variants and layers that
//! keep experiments apart ([`assign`]), targeting conditions ([`targeting`]), feature
//! flags evaluated as OpenFeature defines ([`flags`]), content blocks checked against
//! JSON Schemas and rendered by Handlebars ([`blocks`]), and the statistics of A/B tests
//! ([`stats`]).
#![deny(missing_docs)]

pub mod assign;
pub mod blocks;
pub mod error;
pub mod flags;
pub mod hash;
pub mod stats;
pub mod targeting;

pub use error::{Error, Result};
