//! The OpenAPI document, generated (utoipa) from the handlers' `#[utoipa::path]`
//! attributes and the types they answer with (`schemas` holds the shapes that are not
//! Rust types of their own); served at `/openapi.json` with the protocol's JSON Schema
//! merged in, so the shapes of events and consent records are written in one place only
//! (`protocol/schema/`).
use utoipa::{
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
    Modify, OpenApi,
};

use crate::{
    error::ErrorBody,
    http::schemas::{
        Batch, BatchResponse, ConsentBody, ConsentRecord, ConsentRecords, ErrorResponse, Event,
    },
};

/// The two ways a key is presented.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let scheme = |scheme, description: &str| {
            let mut http = Http::new(scheme);
            http.description = Some(description.to_owned());
            SecurityScheme::Http(http)
        };
        components.add_security_scheme(
            "basic",
            scheme(
                HttpAuthScheme::Basic,
                "Write key as user name, empty password (what Segment's libraries send).",
            ),
        );
        components.add_security_scheme(
            "bearer",
            scheme(
                HttpAuthScheme::Bearer,
                "A write key (public: ingest), a source's server key (secret: ingest, and reading its own consent), or a compliance (admin) token for the audit, subject and consent-reading endpoints.",
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Assent collector",
        version = "1",
        description = "Receives Segment-compatible events and Assent consent records, enforces consent, pseudonymizes identifiers and keeps a tamper-evident audit trail. Errors are `{\"error\": {\"code\", \"message\"}}`. Bodies may be gzip-compressed (`Content-Encoding: gzip`); at most 500 KB, inflated or not. The protocol's JSON Schema (protocol/schema/assent-v1.schema.json) is included under components.schemas as `protocol-*`. Every route may answer 405 (another method) and 429 (rate limits, with Retry-After); a request head over the configured size gets a bare 431 from the HTTP layer."
    ),
    servers((url = "http://127.0.0.1:8080")),
    paths(
        super::batch,
        super::import,
        super::track,
        super::identify,
        super::page,
        super::screen,
        super::group,
        super::alias,
        super::consent_post,
        super::consent_get,
        super::audit::export,
        super::audit::verify,
        super::audit::public_keys,
        super::audit::checkpoint,
        super::audit::checkpoints,
        super::audit::consistency,
        super::audit::receipt_proof,
        super::audit::receipt,
        super::audit::receipts_csv,
        super::subjects::access,
        super::subjects::erase,
        super::profiles::profile,
        super::profiles::segments_of,
        super::profiles::list_audiences,
        super::profiles::put_audience,
        super::profiles::delete_audience,
        super::profiles::create_audience,
        super::profiles::members,
        super::profiles::member,
        super::profiles::changes,
        super::profiles::list_traits,
        super::profiles::put_trait,
        super::profiles::delete_trait,
        super::profiles::segmentations,
        super::profiles::train,
        super::profiles::promote,
        super::profiles::rollback,
        super::profiles::realtime,
        super::profiles::set_realtime,
        super::profiles::scan_duplicates,
        super::profiles::duplicates,
        super::profiles::decide_duplicate,
        super::recommendations::recommend,
        super::recommendations::similar,
        super::recommendations::put_item,
        super::recommendations::delete_item,
        super::recommendations::list_recommenders,
        super::recommendations::feedback,
        super::recommendations::train,
        super::recommendations::promote,
        super::recommendations::rollback,
        super::recommendations::split,
        super::experiments::put_definition,
        super::experiments::get_definition,
        super::experiments::delete_definition,
        super::experiments::list_definitions,
        super::experiments::history,
        super::experiments::rollback,
        super::experiments::results,
        super::experiments::content,
        super::experiments::content_post,
        super::experiments::flags,
        super::experiments::flags_post,
        super::experiments::flag,
        super::healthz,
        super::readyz,
        super::metrics,
        super::openapi,
        super::sdk_files::serve,
    ),
    components(
        schemas(
            ErrorBody,
            Batch,
            Event,
            ConsentRecord,
            ConsentRecords,
            ConsentBody,
            BatchResponse,
            crate::audit::Entry,
            crate::audit::Report
        ),
        responses(ErrorResponse)
    ),
    modifiers(&Security)
)]
struct ApiDoc;

/// The document as utoipa generates it, before the protocol's schema is merged in.
pub fn generated() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The OpenAPI document served at `/openapi.json`: [`generated`] with the protocol's
/// JSON Schema definitions added under `components.schemas` as `protocol-<name>`, so that
/// fuzzers and client generators see the real shapes of events and consent records.
pub fn openapi() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(generated()).expect("the document serializes");
        let schema: serde_json::Value = serde_json::from_str(assent_protocol::JSON_SCHEMA)
            .expect("the protocol schema is JSON");
        let text = serde_json::to_string(&schema["$defs"]).expect("serializes");
        let defs: serde_json::Value =
            serde_json::from_str(&text.replace("\"#/$defs/", "\"#/components/schemas/protocol-"))
                .expect("still JSON");
        let schemas = doc["components"]["schemas"]
            .as_object_mut()
            .expect("components.schemas");
        for (name, def) in defs.as_object().expect("$defs") {
            schemas.insert(format!("protocol-{name}"), def.clone());
        }
        serde_json::to_string(&doc).expect("serializes")
    })
}
