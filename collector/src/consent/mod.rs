//! Consent as the collector holds it: which stored records are in force for a subject
//! under a consent scope, in memory where it can be (`cache`), and the state in force
//! read back for callers allowed to see it.
pub mod cache;
pub mod receipt;

use std::collections::BTreeMap;

use assent_protocol::Timestamp;
use serde_json::Value;

use crate::{error::Result, pseudonym::Pseudonymizer, storage::Db};

/// `GET /v1/consent/{subjectId}`: the latest state of a subject under one consent scope
/// (raw id in, pseudonym looked up).
pub async fn current(
    db: &Db,
    pseudonymizer: &Pseudonymizer,
    scope: &crate::keys::sources::ConsentScope,
    raw_subject: &str,
) -> Result<Option<Value>> {
    let all = pseudonymizer.all_pseudonyms(raw_subject);
    let Some(record) = crate::storage::consent::latest_record(db, &scope.members, &all).await?
    else {
        return Ok(None);
    };
    let purposes: BTreeMap<String, bool> =
        serde_json::from_str(&record.purposes).unwrap_or_default();
    Ok(Some(serde_json::json!({
        "subjectId": raw_subject,
        "purposes": purposes,
        "policyVersion": record.policy_version,
        "method": record.method,
        "source": record.origin,
        "timestamp": Timestamp::from_unix_millis(record.timestamp_ms).to_string(),
    })))
}

/// Whether the subject whose raw id is `raw` grants `purpose` now under a consent scope:
/// their latest record there says so (no record: not granted).
pub async fn grants(
    db: &Db,
    pseudonymizer: &Pseudonymizer,
    scope: &crate::keys::sources::ConsentScope,
    raw: &str,
    purpose: &str,
) -> Result<bool> {
    let all = pseudonymizer.all_pseudonyms(raw);
    let Some(record) = crate::storage::consent::latest_record(db, &scope.members, &all).await?
    else {
        return Ok(false);
    };
    let purposes: BTreeMap<String, bool> =
        serde_json::from_str(&record.purposes).unwrap_or_default();
    Ok(purposes.get(purpose).copied().unwrap_or(false))
}
