//! A stored consent record as a receipt in the shapes auditors know: the elements of an
//! ISO/IEC TS 27560:2023 consent record, and the Kantara Initiative Consent Receipt
//! (v1.1). Which field feeds which element is in `docs/audit-format.md`; each receipt
//! names the audit entry that recorded the record, so it can be checked against the log
//! (`…/proof`). Pure: the caller reads the record.
use serde_json::{json, Value};

use crate::{ids::SourceId, storage::consent::ReceiptRecord};

/// Where the record sits in the audit log.
#[derive(Debug, Clone)]
pub struct LogPlace<'a> {
    /// The log's origin (the name in its checkpoints).
    pub origin: &'a str,
    /// The audit entry's hash (hex).
    pub entry_hash: &'a str,
}

/// The receipt formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Iso27560,
    Kantara,
}

impl Format {
    pub fn parse(s: Option<&str>) -> Option<Format> {
        match s.unwrap_or("iso27560") {
            "iso27560" => Some(Format::Iso27560),
            "kantara" => Some(Format::Kantara),
            _ => None,
        }
    }
}

fn iso_time(ms: i64) -> String {
    assent_protocol::Timestamp::from_unix_millis(ms).to_string()
}

/// Each purpose with whether it was granted, in name order.
fn purposes(r: &ReceiptRecord) -> Vec<(String, bool)> {
    let map: std::collections::BTreeMap<String, bool> =
        serde_json::from_str(&r.purposes).unwrap_or_default();
    map.into_iter().collect()
}

/// How the choice was expressed, in the words of ISO/IEC TS 27560's consent type and
/// method: expressed (an explicit action), or a signal (Global Privacy Control), or
/// implied by a policy change.
fn method(r: &ReceiptRecord) -> (&'static str, &'static str) {
    match r.method.as_str() {
        "accept_all" => ("expressed", "accepted every purpose in the consent notice"),
        "reject_all" => ("expressed", "refused every optional purpose"),
        "custom" => ("expressed", "chose purpose by purpose"),
        "withdraw" => ("expressed", "withdrew consent given before"),
        "gpc" => (
            "signal",
            "Global Privacy Control signal from the user agent",
        ),
        "policy_change" => (
            "implied",
            "the notice changed: optional purposes paused until the person answers",
        ),
        _ => ("expressed", "recorded by the controller's system"),
    }
}

/// The receipt of `r`, stored under `source`, in `format`.
pub fn receipt(format: Format, r: &ReceiptRecord, source: &SourceId, log: &LogPlace<'_>) -> Value {
    match format {
        Format::Iso27560 => iso27560(r, source, log),
        Format::Kantara => kantara(r, source, log),
    }
}

fn iso27560(r: &ReceiptRecord, source: &SourceId, log: &LogPlace<'_>) -> Value {
    let (consent_type, how) = method(r);
    let processing: Vec<Value> = purposes(r)
        .into_iter()
        .map(|(purpose, granted)| {
            json!({
                "purpose": purpose,
                "legalBasis": if purpose == "necessary" { "legitimate interest or contract (not subject to consent)" } else { "consent" },
                "consentStatus": if granted { "given" } else { "not given" },
            })
        })
        .collect();
    json!({
        "recordHeader": {
            "schema": "ISO/IEC TS 27560:2023 consent record (Assent mapping v1)",
            "recordId": r.consent_id,
            "piiPrincipalId": r.subject,
            "piiPrincipalIdType": "pseudonym (keyed HMAC of the subject id; the raw id is never stored)",
            "recordCreated": iso_time(r.received_at_ms),
            "recordStorage": {
                "auditLog": log.origin,
                "auditEntry": r.audit_seq,
                "auditEntryHash": log.entry_hash,
                "proof": format!("/v1/consent/receipts/{}/proof", r.consent_id),
            },
        },
        "parties": {
            "piiController": { "id": source.as_str(), "role": "controller (the site or app that asked)" },
            "recordKeeper": { "id": log.origin, "role": "processor keeping the consent record" },
        },
        "processing": processing,
        "event": {
            "eventType": "consent decision",
            "eventTime": iso_time(r.timestamp_ms),
            "consentType": consent_type,
            "method": r.method,
            "methodDescription": how,
            "collectionChannel": r.origin,
        },
        "notice": {
            "version": r.policy_version,
            // The protocol carries the notice's version, not a hash of its text.
            "hash": Value::Null,
        },
        // Not recorded per consent: a source's jurisdiction is its controller's to state.
        "jurisdiction": Value::Null,
    })
}

fn kantara(r: &ReceiptRecord, source: &SourceId, log: &LogPlace<'_>) -> Value {
    let (consent_type, _) = method(r);
    let purposes: Vec<Value> = purposes(r)
        .into_iter()
        .map(|(purpose, granted)| {
            json!({
                "purpose": purpose,
                "purposeCategory": [purpose],
                "consentType": if consent_type == "expressed" { "EXPLICIT" } else { "IMPLICIT" },
                "primaryPurpose": purpose == "necessary",
                "termination": "until withdrawn or the policy changes",
                "thirdPartyDisclosure": false,
                "granted": granted,
            })
        })
        .collect();
    json!({
        "version": "KI-CR-v1.1.0",
        "jurisdiction": Value::Null,
        "consentTimestamp": r.timestamp_ms / 1000,
        "collectionMethod": format!("{} ({})", r.method, r.origin),
        "consentReceiptID": r.consent_id,
        "publicKey": Value::Null,
        "language": Value::Null,
        "piiPrincipalId": r.subject,
        "piiControllers": [{ "piiController": source.as_str(), "onBehalf": false }],
        "policyUrl": Value::Null,
        "policyVersion": r.policy_version,
        "services": [{ "service": source.as_str(), "purposes": purposes }],
        "sensitive": false,
        "spiCat": [],
        "auditEntry": { "log": log.origin, "seq": r.audit_seq, "hash": log.entry_hash },
    })
}

/// The header of the receipts CSV: one row per record, in words an auditor reads without
/// a manual.
pub const CSV_HEADER: &str = "record_id,person_pseudonym,decided_at,recorded_at,purposes_given,purposes_not_given,method,consent_type,channel,notice_version,controller,audit_entry,audit_entry_hash\r\n";

/// One record as a row of [`CSV_HEADER`].
pub fn csv_row(r: &ReceiptRecord, source: &SourceId, entry_hash: &str) -> String {
    let (given, not_given): (Vec<_>, Vec<_>) = purposes(r).into_iter().partition(|(_, g)| *g);
    let names =
        |v: Vec<(String, bool)>| v.into_iter().map(|(p, _)| p).collect::<Vec<_>>().join(" ");
    let fields = [
        r.consent_id.clone(),
        r.subject.clone(),
        iso_time(r.timestamp_ms),
        iso_time(r.received_at_ms),
        names(given),
        names(not_given),
        r.method.clone(),
        method(r).0.to_owned(),
        r.origin.clone(),
        r.policy_version.clone(),
        source.as_str().to_owned(),
        r.audit_seq.to_string(),
        entry_hash.to_owned(),
    ];
    let row: Vec<String> = fields.iter().map(|f| crate::audit::csv_field(f)).collect();
    format!("{}\r\n", row.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ReceiptRecord {
        ReceiptRecord {
            consent_id: "c-1".into(),
            subject: "k1.abc".into(),
            purposes: r#"{"necessary":true,"analytics":true,"advertising":false}"#.into(),
            policy_version: "2026-01".into(),
            method: "gpc".into(),
            origin: "web".into(),
            timestamp_ms: 1_764_000_000_000,
            received_at_ms: 1_764_000_000_500,
            audit_seq: 7,
        }
    }

    #[test]
    fn every_field_of_the_record_lands_in_both_shapes() {
        let source = SourceId::parse("src_0123456789abcdef").unwrap();
        let log = LogPlace {
            origin: "consent.example/audit",
            entry_hash: "ab",
        };
        let iso = receipt(Format::Iso27560, &record(), &source, &log);
        assert_eq!(iso["recordHeader"]["recordId"], "c-1");
        assert_eq!(iso["recordHeader"]["recordStorage"]["auditEntry"], 7);
        assert_eq!(iso["event"]["consentType"], "signal");
        assert_eq!(iso["event"]["eventTime"], "2025-11-24T16:00:00.000Z");
        assert_eq!(iso["notice"]["version"], "2026-01");
        let statuses: Vec<(&str, &str)> = iso["processing"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["purpose"].as_str().unwrap(),
                    p["consentStatus"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            statuses,
            [
                ("advertising", "not given"),
                ("analytics", "given"),
                ("necessary", "given")
            ]
        );
        let k = receipt(Format::Kantara, &record(), &source, &log);
        assert_eq!(k["consentTimestamp"], 1_764_000_000);
        assert_eq!(k["services"][0]["purposes"][0]["consentType"], "IMPLICIT");
        assert_eq!(
            k["piiControllers"][0]["piiController"],
            "src_0123456789abcdef"
        );
        assert_eq!(Format::parse(Some("xml")), None);
        let row = csv_row(&record(), &source, "ab");
        assert_eq!(
            row,
            "\"c-1\",\"k1.abc\",\"2025-11-24T16:00:00.000Z\",\"2025-11-24T16:00:00.500Z\",\"analytics necessary\",\"advertising\",\"gpc\",\"signal\",\"web\",\"2026-01\",\"src_0123456789abcdef\",\"7\",\"ab\"\r\n"
        );
        assert_eq!(CSV_HEADER.split(',').count(), 13);
    }
}
