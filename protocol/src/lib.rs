//! Assent wire protocol v1.
//!
//! The JSON that SDKs, the web banner and the collector exchange. Events follow the
//! Segment Tracking API so that Segment-compatible libraries can send to Assent unchanged;
//! Assent adds a `purpose` to each event and consent records to each batch.
//! See `protocol/README.md` for the prose specification and `protocol/schema/` for the
//! JSON Schema.
#![deny(missing_docs)]

mod batch;
mod consent;
mod error;
mod event;
mod event_view;
mod purpose;
mod recommendation;
mod timestamp;

pub use batch::{BatchEnvelope, BatchResponse, RejectCode, Rejection};
pub use consent::{ConsentMethod, ConsentRecord, ConsentSource, Interaction, Layer, PurposeMap};
pub use error::ProtocolError;
pub use event::{Context, Event, EventType, LibraryInfo, MessageId};
pub use event_view::EventView;
pub use purpose::Purpose;
pub use recommendation::{
    RecId, RECOMMENDATION_CLICKED, RECOMMENDATION_CONVERSIONS, RECOMMENDATION_VIEWED,
};
pub use timestamp::Timestamp;

/// Largest accepted event, serialized, in bytes (Segment's limit).
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Largest accepted batch body, uncompressed, in bytes (Segment's limit).
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
/// Most consent records one request may carry (each becomes a permanent audit entry); the
/// collector refuses more with 400, so senders split.
pub const MAX_CONSENT_RECORDS_PER_BATCH: usize = 100;
/// Longest accepted `messageId`, in characters.
pub const MAX_MESSAGE_ID_CHARS: usize = 100;
/// Path of the batch endpoint, relative to the collector's base URL.
pub const BATCH_PATH: &str = "/v1/batch";
/// The protocol's JSON Schema (draft 2020-12): every message, under `$defs`.
pub const JSON_SCHEMA: &str = include_str!("../schema/assent-v1.schema.json");
/// Protocol version this crate implements.
pub const PROTOCOL_VERSION: u32 = 1;
