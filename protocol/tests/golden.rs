//! Golden fixtures pin the wire format: each parses into its type and serializes back to
//! the same JSON, field for field.
use std::path::Path;

use assent_protocol::{BatchEnvelope, BatchResponse, ConsentRecord, Event};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn round_trips<T: DeserializeOwned + Serialize>(name: &str) -> T {
    let text = fixture(name);
    let parsed: T = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let original: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        serde_json::to_value(&parsed).unwrap(),
        original,
        "{name} does not round-trip"
    );
    parsed
}

#[test]
fn events_round_trip_and_pass_their_checks() {
    for name in [
        "track.json",
        "identify.json",
        "screen.json",
        "alias.json",
        "group.json",
        "segment-analytics-js-track.json",
    ] {
        let event: Event = round_trips(name);
        Event::from_json(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!event.message_id.as_str().is_empty());
    }
}

#[test]
fn a_segment_event_keeps_its_extra_fields_and_counts_as_analytics() {
    let e = Event::from_json(&fixture("segment-analytics-js-track.json")).unwrap();
    assert_eq!(e.effective_purpose(), assent_protocol::Purpose::Analytics);
    assert!(e.extra.contains_key("integrations"));
    let consent = &e.context.unwrap().extra["consent"]["categoryPreferences"];
    assert_eq!(consent["analytics"], true);
}

#[test]
fn consent_records_batches_and_responses_round_trip() {
    let record: ConsentRecord = round_trips("consent-record.json");
    ConsentRecord::from_json(&fixture("consent-record.json")).unwrap();
    assert!(record.previous.is_some());
    let batch: BatchEnvelope = round_trips("batch.json");
    assert_eq!(batch.events().filter(Result::is_ok).count(), 1);
    assert_eq!(batch.consent.len(), 1);
    let response: BatchResponse = round_trips("batch-response.json");
    assert_eq!(response.rejected.len(), 2);
}

#[test]
fn a_banner_record_carries_proof_of_what_was_shown() {
    let record: ConsentRecord = round_trips("consent-record-banner.json");
    let interaction = record.interaction.clone().unwrap();
    assert_eq!(interaction.layer, assent_protocol::Layer::Second);
    assert_eq!(interaction.control, "save");
    assert_eq!(record.notice_hash.as_deref().map(str::len), Some(64));
    let text = fixture("consent-record-banner.json");
    for (from, to) in [
        ("\"noticeHash\": \"9f", "\"noticeHash\": \"XX"),
        ("\"control\": \"save\"", "\"control\": \"Save!\""),
        ("\"layer\": \"second\"", "\"layer\": \"third\""),
        ("\"uiVersion\": \"0.1.0\"", "\"uiVersion\": \"\""),
    ] {
        assert!(text.contains(from), "{from}");
        let bad = text.replace(from, to);
        assert!(ConsentRecord::from_json(&bad).is_err(), "accepted {to}");
    }
}
