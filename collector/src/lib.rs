//! Assent collector: receives batches of events and consent records over HTTP, enforces
//! consent again, pseudonymizes identifiers, stores everything durably (SQLite by default,
//! PostgreSQL for many replicas), and keeps a tamper-evident audit trail.
//!
//! `main.rs` only parses the command line; everything is here, so tests use it directly.
//! One folder per domain (`http/`, `ingest/`, `consent/`, `audit/`, `keys/`, `subjects/`,
//! `storage/`); `state.rs` is what handlers share, `startup.rs` how the server starts.
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod consent;
pub mod error;
pub mod experiments;
pub mod fast_map;
pub mod feed;
pub mod geo;
pub mod http;
pub mod ids;
pub mod ingest;
pub mod keys;
pub mod metrics;
pub mod pseudonym;
pub mod recommend;
pub mod segments;
pub mod startup;
pub mod state;
pub mod storage;
pub mod subjects;
pub mod switches;
pub mod versions;

pub use clock::{Clock, SystemClock};
pub use config::Config;
pub use error::{Error, Result};
pub use http::openapi::openapi;
pub use startup::Application;
pub use state::AppState;
