//! Ingest: a batch of events and consent records is checked event by event, consent is
//! enforced at each event's time, identifiers are pseudonymized, and everything accepted
//! is committed in one transaction before the answer is sent.
use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

use assent_protocol::{
    BatchResponse, ConsentMethod, ConsentRecord, ConsentSource, Event, ProtocolError, Purpose,
    PurposeMap, RejectCode, Rejection, Timestamp,
};
use serde_json::{Map, Value};
use sqlx::Row;

use crate::{
    audit::{self, NewEntry},
    db::Caller,
    error::{Error, Result},
    pseudonym::truncate_ip,
    AppState,
};

/// What came with the request besides the body.
pub struct Request<'a> {
    pub caller: &'a Caller,
    pub source_id: &'a str,
    pub received_at_ms: i64,
    pub ip: Option<IpAddr>,
}

/// A consent record ready to store: identifiers pseudonymized, time corrected.
#[derive(Debug, Clone)]
struct ConsentRow {
    consent_id: String,
    subject: String,
    user_id: Option<String>,
    purposes: PurposeMap,
    policy_version: String,
    method: ConsentMethod,
    origin: ConsentSource,
    timestamp_ms: i64,
    original_timestamp_ms: i64,
    /// The record as kept in the audit trail (pseudonymized).
    audit_data: Value,
}

struct EventRow {
    message_id: String,
    kind: &'static str,
    name: Option<String>,
    purpose: Purpose,
    subject: String,
    anonymous_id: Option<String>,
    user_id: Option<String>,
    timestamp_ms: i64,
    original_timestamp_ms: Option<i64>,
    payload: String,
}

struct DeadLetter {
    message_id: Option<String>,
    code: RejectCode,
    reason: String,
    payload: String,
}

/// Device clock skew: `timestamp = receivedAt − (sentAt − timestamp)`.
#[derive(Debug, Clone, Copy)]
struct Skew {
    offset_ms: i64,
    received_at_ms: i64,
}

impl Skew {
    fn correct(&self, t: Option<Timestamp>) -> i64 {
        t.map_or(self.received_at_ms, |t| t.unix_millis() + self.offset_ms)
    }
}

fn shape(err: ProtocolError) -> Error {
    Error::BadRequest(err.to_string())
}

/// Parses one consent record of a request, or says which one is wrong.
fn consent_row(state: &AppState, value: Value, index: usize, skew: Skew) -> Result<ConsentRow> {
    let record = ConsentRecord::from_value(value)
        .map_err(|e| Error::BadRequest(format!("consent[{index}]: {e}")))?;
    Ok(pseudonymized_record(state, record, skew))
}

fn pseudonymized_record(state: &AppState, mut record: ConsentRecord, skew: Skew) -> ConsentRow {
    let p = &state.pseudonymizer;
    record.subject_id = p.pseudonym(&record.subject_id);
    record.user_id = record.user_id.as_deref().map(|u| p.pseudonym(u));
    record.purposes.insert(Purpose::Necessary, true);
    let original = record.timestamp.unix_millis();
    ConsentRow {
        consent_id: record.consent_id.clone(),
        subject: record.subject_id.clone(),
        user_id: record.user_id.clone(),
        purposes: record.purposes.clone(),
        policy_version: record.policy_version.clone(),
        method: record.method,
        origin: record.source,
        timestamp_ms: skew.correct(Some(record.timestamp)),
        original_timestamp_ms: original,
        audit_data: serde_json::to_value(&record).expect("serializes"),
    }
}

/// Segment's consent tools stamp `context.consent.categoryPreferences`; categories are
/// named by each customer, so the usual names are mapped to Assent's purposes.
fn segment_stamp(event: &Event) -> Option<PurposeMap> {
    let prefs = event
        .context
        .as_ref()?
        .extra
        .get("consent")?
        .get("categoryPreferences")?
        .as_object()?;
    let mut map = PurposeMap::new();
    for (category, granted) in prefs {
        let Some(granted) = granted.as_bool() else {
            continue;
        };
        let purpose = match category.to_ascii_lowercase().as_str() {
            "analytics" | "performance" | "statistics" | "measurement" => Purpose::Analytics,
            "personalization" | "personalisation" | "functional" | "preferences" => {
                Purpose::Personalization
            }
            "advertising" | "marketing" | "targeting" | "ads" => Purpose::Advertising,
            "necessary" | "strictly_necessary" | "essential" => Purpose::Necessary,
            _ => continue,
        };
        let entry = map.entry(purpose).or_insert(granted);
        *entry = *entry && granted;
    }
    map.insert(Purpose::Necessary, true);
    (map.len() > 1).then_some(map)
}

/// The stored event: identifiers replaced by pseudonyms, the address dropped.
fn scrub(state: &AppState, mut value: Value) -> Value {
    if let Some(obj) = value.as_object_mut() {
        for field in ["anonymousId", "userId", "previousId"] {
            let raw = match obj.get(field) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) => s.clone(),
                // Not a string (an invalid event): still an identifier, never kept raw.
                Some(other) => other.to_string(),
            };
            obj.insert(
                field.into(),
                Value::String(state.pseudonymizer.pseudonym(&raw)),
            );
        }
        obj.remove("writeKey");
        if let Some(Value::Object(ctx)) = obj.get_mut("context") {
            ctx.remove("ip");
        }
    }
    value
}

/// The state of each subject over time: records sorted by corrected time.
#[derive(Default)]
struct ConsentHistory(HashMap<String, Vec<(i64, PurposeMap)>>);

impl ConsentHistory {
    fn add(&mut self, subject: &str, at: i64, purposes: PurposeMap) {
        let list = self.0.entry(subject.to_owned()).or_default();
        let pos = list.partition_point(|(t, _)| *t <= at);
        list.insert(pos, (at, purposes));
    }

    fn at(&self, subject: &str, t: i64) -> Option<&PurposeMap> {
        let list = self.0.get(subject)?;
        let pos = list.partition_point(|(at, _)| *at <= t);
        pos.checked_sub(1).map(|i| &list[i].1)
    }
}

async fn load_history(state: &AppState, subjects: &[String]) -> Result<ConsentHistory> {
    let mut history = ConsentHistory::default();
    for chunk in subjects.chunks(200) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT subject, timestamp_ms, purposes FROM consent_records WHERE subject IN ({})",
            placeholders.join(",")
        );
        let mut q = sqlx::query(&sql);
        for s in chunk {
            q = q.bind(s);
        }
        for row in q.fetch_all(&state.db.pool).await? {
            let subject: String = row.try_get(0)?;
            let at: i64 = row.try_get(1)?;
            let purposes: String = row.try_get(2)?;
            let purposes: PurposeMap = serde_json::from_str(&purposes).unwrap_or_default();
            history.add(&subject, at, purposes);
        }
    }
    Ok(history)
}

/// Checks, stores and answers one batch. Whole-request problems are errors (nothing is
/// stored); problems with one event reject that event only.
pub async fn batch(state: &AppState, req: Request<'_>, envelope: Value) -> Result<BatchResponse> {
    let Value::Object(mut envelope) = envelope else {
        return Err(Error::BadRequest("the body must be a JSON object".into()));
    };
    let events = take_array(&mut envelope, "batch")?;
    let consents = take_array(&mut envelope, "consent")?;
    let sent_at = match envelope.get("sentAt") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Timestamp::parse(s).map_err(shape)?),
        Some(_) => {
            return Err(Error::BadRequest(
                "sentAt must be an ISO 8601 string".into(),
            ))
        }
    };
    let skew = Skew {
        offset_ms: sent_at.map_or(0, |s| req.received_at_ms - s.unix_millis()),
        received_at_ms: req.received_at_ms,
    };
    let mut records = Vec::with_capacity(consents.len());
    for (i, value) in consents.into_iter().enumerate() {
        records.push(consent_row(state, value, i, skew)?);
    }
    ingest(state, &req, skew, events, records).await
}

fn take_array(obj: &mut Map<String, Value>, field: &str) -> Result<Vec<Value>> {
    match obj.remove(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(Error::BadRequest(format!("`{field}` must be an array"))),
    }
}

/// `POST /v1/consent`: one record or `{"records": [...]}`.
pub async fn consent(state: &AppState, req: Request<'_>, body: Value) -> Result<usize> {
    let values = match body {
        Value::Object(mut obj) if obj.contains_key("records") => take_array(&mut obj, "records")?,
        v @ Value::Object(_) => vec![v],
        _ => {
            return Err(Error::BadRequest(
                "expected a consent record or {\"records\": [...]}".into(),
            ))
        }
    };
    if values.is_empty() {
        return Err(Error::BadRequest("no consent records".into()));
    }
    let skew = Skew {
        offset_ms: 0,
        received_at_ms: req.received_at_ms,
    };
    let mut records = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        records.push(consent_row(state, value, i, skew)?);
    }
    let n = records.len();
    ingest(state, &req, skew, Vec::new(), records).await?;
    Ok(n)
}

async fn ingest(
    state: &AppState,
    req: &Request<'_>,
    skew: Skew,
    events: Vec<Value>,
    mut records: Vec<ConsentRow>,
) -> Result<BatchResponse> {
    let mut response = BatchResponse::default();
    let mut parsed: Vec<(usize, Event, Value)> = Vec::with_capacity(events.len());
    let mut dead = Vec::new();
    for (index, value) in events.into_iter().enumerate() {
        let original = value.clone();
        match Event::from_value(value) {
            Ok(event) => parsed.push((index, event, original)),
            Err(err) => {
                let code = if err == ProtocolError::EventTooLarge {
                    RejectCode::TooLarge
                } else {
                    RejectCode::Invalid
                };
                let message_id = original
                    .get("messageId")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let reason = err.to_string();
                response.rejected.push(Rejection {
                    index: index as u32,
                    message_id: message_id.clone(),
                    code,
                    reason: reason.clone(),
                });
                dead.push(DeadLetter {
                    message_id,
                    code,
                    reason,
                    payload: scrub(state, original).to_string(),
                });
            }
        }
    }

    // Consent in force: stored records, this request's records, and Segment stamps.
    let subject_of = |e: &Event| {
        let raw = e
            .anonymous_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(e.user_id.as_deref())
            .unwrap_or_default();
        state.pseudonymizer.pseudonym(raw)
    };
    let subjects: Vec<String> = {
        let mut s: Vec<String> = parsed.iter().map(|(_, e, _)| subject_of(e)).collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    let mut history = load_history(state, &subjects).await?;
    for r in &records {
        history.add(&r.subject, r.timestamp_ms, r.purposes.clone());
    }

    let mut rows = Vec::with_capacity(parsed.len());
    for (index, event, original) in parsed {
        let subject = subject_of(&event);
        let at = skew.correct(event.timestamp);
        let purpose = event.effective_purpose();
        if let Some(stamp) = segment_stamp(&event) {
            if history.at(&subject, at) != Some(&stamp) {
                // The stamp changes what we know of the subject's consent: record it.
                let mut record = ConsentRecord {
                    consent_id: format!("segment-{}", event.message_id),
                    subject_id: String::new(),
                    user_id: None,
                    purposes: stamp.clone(),
                    policy_version: "segment-consent-stamp".into(),
                    method: ConsentMethod::Custom,
                    source: ConsentSource::Api,
                    timestamp: Timestamp::from_unix_millis(at),
                    gpc: None,
                    locale: None,
                    tcf: None,
                    previous: history.at(&subject, at).cloned(),
                };
                // Pseudonymize from the raw id, as for any record.
                record.subject_id = event
                    .anonymous_id
                    .clone()
                    .filter(|s| !s.is_empty())
                    .or(event.user_id.clone())
                    .unwrap_or_default();
                record.user_id = event.user_id.clone();
                let no_skew = Skew {
                    offset_ms: 0,
                    received_at_ms: req.received_at_ms,
                };
                let row = pseudonymized_record(state, record, no_skew);
                history.add(&row.subject, row.timestamp_ms, row.purposes.clone());
                records.push(row);
            }
        }
        let granted = purpose == Purpose::Necessary
            || history
                .at(&subject, at)
                .is_some_and(|p| p.get(&purpose).copied().unwrap_or(false));
        let message_id = event.message_id.as_str().to_owned();
        if !granted {
            let reason = format!(
                "purpose {purpose} was not granted by the subject's consent at the event's time"
            );
            response.rejected.push(Rejection {
                index: index as u32,
                message_id: Some(message_id.clone()),
                code: RejectCode::NoConsent,
                reason: reason.clone(),
            });
            dead.push(DeadLetter {
                message_id: Some(message_id),
                code: RejectCode::NoConsent,
                reason,
                payload: scrub(state, original).to_string(),
            });
            continue;
        }
        let p = &state.pseudonymizer;
        rows.push(EventRow {
            message_id,
            kind: event.kind.as_str(),
            name: event.event.clone().or(event.name.clone()),
            purpose,
            subject,
            anonymous_id: event.anonymous_id.as_deref().map(|a| p.pseudonym(a)),
            user_id: event.user_id.as_deref().map(|u| p.pseudonym(u)),
            timestamp_ms: at,
            original_timestamp_ms: event.timestamp.map(Timestamp::unix_millis),
            payload: scrub(state, original).to_string(),
        });
    }
    response.rejected.sort_by_key(|r| r.index);

    let source_id = req.source_id;
    let ip = req.ip.map(truncate_ip);
    let sent_at_ms = (skew.offset_ms != 0).then_some(req.received_at_ms - skew.offset_ms);
    let mut w = state.db.write().await?;
    // Consent records first; each new one goes into the audit trail.
    let mut fresh = Vec::new();
    for r in &records {
        let exists =
            sqlx::query("SELECT 1 FROM consent_records WHERE source_id = $1 AND consent_id = $2")
                .bind(source_id)
                .bind(&r.consent_id)
                .fetch_optional(&mut *w.tx)
                .await?
                .is_some();
        if !exists {
            fresh.push(r);
        }
    }
    let entries = fresh
        .iter()
        .map(|r| NewEntry {
            kind: "consent",
            actor: req.caller.actor(),
            subject: Some(r.subject.clone()),
            data: r.audit_data.clone(),
        })
        .collect();
    let seqs = audit::append(
        &mut w,
        entries,
        req.received_at_ms,
        &state.pseudonymizer,
        state.config.audit_checkpoint_every,
    )
    .await?;
    for (r, seq) in fresh.iter().zip(seqs) {
        sqlx::query(
            "INSERT INTO consent_records (source_id, consent_id, subject, user_id, purposes, policy_version, method, origin,
             timestamp_ms, original_timestamp_ms, received_at_ms, audit_seq) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
        )
        .bind(source_id)
        .bind(&r.consent_id)
        .bind(&r.subject)
        .bind(r.user_id.as_deref())
        .bind(serde_json::to_string(&r.purposes).expect("serializes"))
        .bind(&r.policy_version)
        .bind(r.method.as_str())
        .bind(serde_json::to_value(r.origin).expect("serializes").as_str().unwrap_or("api").to_owned())
        .bind(r.timestamp_ms)
        .bind(r.original_timestamp_ms)
        .bind(req.received_at_ms)
        .bind(seq)
        .execute(&mut *w.tx)
        .await?;
    }
    // Events: a duplicate messageId from this source is skipped, and counted.
    const COLS: usize = 14;
    for chunk in rows.chunks(100) {
        let mut sql = String::from(
            "INSERT INTO events (source_id, message_id, type, name, purpose, subject, anonymous_id, user_id, timestamp_ms,
             original_timestamp_ms, sent_at_ms, received_at_ms, ip_prefix, payload) VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for c in 0..COLS {
                if c > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("${}", i * COLS + c + 1));
            }
            sql.push(')');
        }
        sql.push_str(" ON CONFLICT (source_id, message_id) DO NOTHING");
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q
                .bind(source_id)
                .bind(&r.message_id)
                .bind(r.kind)
                .bind(r.name.as_deref())
                .bind(r.purpose.as_str())
                .bind(&r.subject)
                .bind(r.anonymous_id.as_deref())
                .bind(r.user_id.as_deref())
                .bind(r.timestamp_ms)
                .bind(r.original_timestamp_ms)
                .bind(sent_at_ms)
                .bind(req.received_at_ms)
                .bind(ip.as_deref())
                .bind(&r.payload);
        }
        let inserted = q.execute(&mut *w.tx).await?.rows_affected() as u32;
        response.accepted += inserted;
        response.duplicates += chunk.len() as u32 - inserted;
    }
    for d in &dead {
        sqlx::query(
            "INSERT INTO dead_letters (source_id, message_id, code, reason, payload, received_at_ms) VALUES ($1,$2,$3,$4,$5,$6)",
        )
        .bind(source_id)
        .bind(d.message_id.as_deref())
        .bind(serde_json::to_value(d.code).expect("serializes").as_str().unwrap_or("invalid").to_owned())
        .bind(&d.reason)
        .bind(&d.payload)
        .bind(req.received_at_ms)
        .execute(&mut *w.tx)
        .await?;
    }
    w.commit().await?;
    state.metrics.record_batch(&response);
    Ok(response)
}

/// `GET /v1/consent/{subjectId}`: the latest state of a subject (raw id in, pseudonym looked up).
pub async fn current(state: &AppState, raw_subject: &str) -> Result<Option<Value>> {
    let subject = state.pseudonymizer.pseudonym(raw_subject);
    let row = sqlx::query(
        "SELECT purposes, policy_version, method, origin, timestamp_ms FROM consent_records
         WHERE subject = $1 ORDER BY timestamp_ms DESC, received_at_ms DESC LIMIT 1",
    )
    .bind(&subject)
    .fetch_optional(&state.db.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let purposes: String = row.try_get(0)?;
    let purposes: BTreeMap<String, bool> = serde_json::from_str(&purposes).unwrap_or_default();
    Ok(Some(serde_json::json!({
        "subjectId": raw_subject,
        "purposes": purposes,
        "policyVersion": row.try_get::<String, _>(1)?,
        "method": row.try_get::<String, _>(2)?,
        "source": row.try_get::<String, _>(3)?,
        "timestamp": Timestamp::from_unix_millis(row.try_get::<i64, _>(4)?).to_string(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_answers_the_state_in_force_at_a_time() {
        let mut h = ConsentHistory::default();
        let grant: PurposeMap = [(Purpose::Analytics, true)].into();
        let deny: PurposeMap = [(Purpose::Analytics, false)].into();
        h.add("s", 100, grant.clone());
        h.add("s", 200, deny.clone());
        assert_eq!(h.at("s", 99), None);
        assert_eq!(h.at("s", 100), Some(&grant));
        assert_eq!(h.at("s", 199), Some(&grant));
        assert_eq!(h.at("s", 500), Some(&deny));
        assert_eq!(h.at("other", 500), None);
    }

    #[test]
    fn segment_categories_map_to_purposes() {
        let e = Event::from_json(
            r#"{"messageId":"m","type":"track","event":"x","anonymousId":"a",
                "context":{"consent":{"categoryPreferences":{"Analytics":true,"Marketing":false,"Custom Thing":true}}}}"#,
        )
        .unwrap();
        let stamp = segment_stamp(&e).unwrap();
        assert_eq!(stamp.get(&Purpose::Analytics), Some(&true));
        assert_eq!(stamp.get(&Purpose::Advertising), Some(&false));
        assert_eq!(stamp.len(), 3);
    }

    #[test]
    fn skew_is_corrected_from_sent_at() {
        // Device clock 10 s fast: sent at 1_010_000 by its clock, received at 1_000_000.
        let skew = Skew {
            offset_ms: 1_000_000 - 1_010_000,
            received_at_ms: 1_000_000,
        };
        assert_eq!(
            skew.correct(Some(Timestamp::from_unix_millis(1_009_000))),
            999_000
        );
        assert_eq!(skew.correct(None), 1_000_000);
    }
}
