//! The OpenAPI document: written by hand in `collector/openapi.json`, served with the
//! protocol's JSON Schema merged in.

/// The OpenAPI document as written (`collector/openapi.json`); [`openapi`] is what is
/// served.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// The OpenAPI document served at `/openapi.json`: [`OPENAPI`] with the protocol's JSON
/// Schema definitions added under `components.schemas` as `protocol-<name>`, so that
/// fuzzers and client generators see the real shapes of events and consent records, and
/// the shapes are written in one place only.
pub fn openapi() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc: serde_json::Value =
            serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
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
