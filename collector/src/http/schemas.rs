//! The shapes the API's documentation names that are not Rust types of their own: the
//! protocol's schemas by reference, the consent body, small answers, and the error
//! response every route may give. Handlers name them in their `#[utoipa::path]`
//! attributes; `openapi` gathers the document.
use std::borrow::Cow;

use utoipa::{
    openapi::{
        schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type},
        HeaderBuilder, RefOr, ResponseBuilder,
    },
    PartialSchema, ToSchema,
};

/// A component that is the protocol's JSON Schema definition of the same shape, by
/// reference (`protocol-<name>`, merged in by `openapi::openapi`).
macro_rules! protocol_schema {
    ($(#[$doc:meta])* $ty:ident = $name:literal) => {
        $(#[$doc])*
        pub struct $ty;
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                RefOr::Ref(utoipa::openapi::Ref::new(concat!(
                    "#/components/schemas/protocol-",
                    $name
                )))
            }
        }
        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($ty))
            }
        }
    };
}

protocol_schema!(
    /// A batch envelope: `batch`, `consent`, `sentAt`, `writeKey`.
    Batch = "batch"
);
protocol_schema!(
    /// One event (Segment's Tracking API plus `purpose`).
    Event = "event"
);
protocol_schema!(
    /// One consent record.
    ConsentRecord = "consentRecord"
);
protocol_schema!(
    /// What happened to each event of a batch.
    BatchResponse = "batchResponse"
);

/// `{"records": [...]}`: at most 100 consent records.
pub struct ConsentRecords;

impl PartialSchema for ConsentRecords {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "records",
                ArrayBuilder::new()
                    .items(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "ConsentRecord",
                    )))
                    .min_items(Some(1))
                    .max_items(Some(assent_protocol::MAX_CONSENT_RECORDS_PER_BATCH)),
            )
            .required("records")
            .into()
    }
}

impl ToSchema for ConsentRecords {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ConsentRecords")
    }
}

/// The body of `POST /v1/consent`: one record, or `{"records": [...]}`.
pub struct ConsentBody;

impl PartialSchema for ConsentBody {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name("ConsentRecord"))
            .item(utoipa::openapi::Ref::from_schema_name("ConsentRecords"))
            .into()
    }
}

impl ToSchema for ConsentBody {}

/// `{"accepted": n}`: consent records stored.
#[derive(serde::Serialize, ToSchema)]
pub struct Accepted {
    pub accepted: u64,
}

/// `{"status": "ok"}` or `{"status": "ready"}`.
#[derive(serde::Serialize, ToSchema)]
pub struct Status {
    pub status: String,
}

/// The refusal every route may answer: `{"error": {"code", "message"}}`, with
/// `Retry-After` on 429 and 503. Nothing from the request was stored.
pub struct ErrorResponse;

impl<'r> utoipa::ToResponse<'r> for ErrorResponse {
    fn response() -> (&'r str, RefOr<utoipa::openapi::Response>) {
        let retry = HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
            .description(Some("On 429 and 503."))
            .build();
        let response = ResponseBuilder::new()
            .description("The request was refused; nothing from it was stored.")
            .header("Retry-After", retry)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("Error")))
                    .build(),
            )
            .build();
        ("Error", response.into())
    }
}

/// A set of error statuses some routes answer, each with the shared [`ErrorResponse`];
/// a route's `responses(...)` names the set after its success.
macro_rules! error_statuses {
    ($($(#[$doc:meta])* $ty:ident = [$($status:literal),*];)*) => {$(
        $(#[$doc])*
        pub struct $ty;
        impl utoipa::IntoResponses for $ty {
            fn responses() -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>> {
                [$($status),*]
                    .iter()
                    .map(|status: &u16| {
                        let error = utoipa::openapi::Ref::from_response_name("Error");
                        (status.to_string(), RefOr::Ref(error))
                    })
                    .collect()
            }
        }
    )*};
}

error_statuses! {
    /// Ingest (`/v1/batch`, the single-event routes, `/v1/consent`).
    IngestErrors = [400, 401, 403, 405, 408, 413, 415, 422, 429, 503];
    /// `GET /v1/consent/{subjectId}`.
    ConsentReadErrors = [400, 401, 403, 404, 405, 429, 503];
    /// The compliance routes (audit, subjects).
    ComplianceErrors = [400, 401, 405, 429, 503];
    /// Setting and deleting audiences.
    AudienceWriteErrors = [400, 401, 404, 405, 408, 413, 415, 429, 503];
    /// Reading definitions and results of experiments.
    DefinitionReadErrors = [400, 401, 404, 405, 429, 503];
    /// `/metrics`.
    MetricsErrors = [401, 405, 429];
    /// `/readyz`.
    ReadyErrors = [405, 429, 503];
    /// What every route may answer (another method, rate limits).
    RouteErrors = [405, 429];
}
