//! Assent segmentation: groups of users from what they did, over plain data.
//!
//! This crate does no IO: it takes rows of numbers (and, later, profiles and rules) and
//! gives models and assignments back. Seeds and `now` are parameters, so the same input
//! and seed give the same model on every run and machine. The collector wires it to the
//! feed, storage and HTTP.
//!
//! Estimators are shaped as scikit-learn's and linfa's: parameters checked once
//! ([`kmeans::KMeansParams::check`]), `fit` on data gives a model, the model predicts.
#![deny(missing_docs)]

pub mod clean;
pub mod dedup;
pub mod error;
pub mod gmm;
pub mod impute;
pub mod kmeans;
pub mod metrics;
pub mod model;
pub mod normalize;
pub mod points;
pub mod profile;
pub mod rules;
pub mod scale;
pub mod ward;

pub use error::{Error, Result};
pub use points::Points;
