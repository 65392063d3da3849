//! Ingest: a batch of events and consent records is checked event by event, consent is
//! enforced at each event's time, identifiers are pseudonymized, and everything accepted
//! is committed in one transaction before the answer is sent.
pub mod limits;

use std::{net::IpAddr, sync::Arc};

use assent_protocol::{
    BatchResponse, ConsentMethod, ConsentRecord, ConsentSource, EventView, ProtocolError, Purpose,
    PurposeMap, RejectCode, Rejection, Timestamp,
};
use serde_json::{value::RawValue, Value};

use crate::{
    audit::{self, NewEntry, Trail},
    clock::Clock,
    config::Config,
    consent::cache::{ConsentCache, Entry, Records, STAMP_POLICY_VERSION},
    error::{Error, Result},
    fast_map::FastMap,
    ids::{MessageId, Pseudonym, SourceId, UnixMs},
    ingest::limits::RecordLimits,
    keys::sources::{SourceInfo, Sources},
    metrics::Metrics,
    pseudonym::{truncate_ip, Pseudonymizer},
    storage::{
        self,
        ingest::{EventRow, Received},
        writer::Writer,
        Caller, Db, WriteTx,
    },
};

/// What ingest works with: storage and its writer, the pseudonymizer, consent in memory,
/// the sources' scopes, the budgets of consent records, and the limits configured.
pub struct Ingest {
    db: Db,
    pseudonymizer: Pseudonymizer,
    writer: Writer<WriteJob>,
    consent_cache: Arc<ConsentCache>,
    sources: Arc<Sources>,
    limits: RecordLimits,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    clock_tolerance_ms: i64,
    max_records: usize,
}

impl Ingest {
    /// Ingest over `trail`'s database, starting its writer.
    pub fn new(
        config: &Config,
        trail: &Trail,
        pseudonymizer: Pseudonymizer,
        consent_cache: Arc<ConsentCache>,
        sources: Arc<Sources>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Ingest {
        let db = trail.db().clone();
        Ingest {
            writer: Writer::start(db.clone(), trail.clone()),
            db,
            pseudonymizer,
            consent_cache,
            sources,
            limits: RecordLimits::new(config),
            metrics,
            clock,
            clock_tolerance_ms: config.clock_tolerance_ms(),
            max_records: config.max_consent_records_per_request,
        }
    }

    /// The time a request is received at.
    pub fn now(&self) -> UnixMs {
        self.clock.now()
    }

    /// Requests waiting for the writer.
    pub fn writer_depth(&self) -> usize {
        self.writer.depth()
    }

    /// Forgets idle clients and sources of the consent record budgets.
    pub fn forget_idle_budgets(&self) {
        self.limits.retain_recent();
    }
}

/// What came with the request besides the body.
pub struct Request<'a> {
    pub caller: &'a Caller,
    pub source_id: &'a SourceId,
    /// The calling source's settings: whose consent counts, whether stamps do.
    pub source: &'a SourceInfo,
    pub received_at: UnixMs,
    pub ip: Option<IpAddr>,
}

/// A consent record ready to store: identifiers pseudonymized, time corrected.
#[derive(Debug, Clone)]
struct ConsentRow {
    consent_id: String,
    subject: Pseudonym,
    user_id: Option<Pseudonym>,
    purposes: PurposeMap,
    policy_version: String,
    method: ConsentMethod,
    origin: ConsentSource,
    timestamp_ms: i64,
    original_timestamp_ms: i64,
    /// The record as kept in the audit trail (pseudonymized).
    audit_data: Value,
}

/// What is kept of a refused event: why, and whose (a pseudonym, for access, erasure and
/// retention). Never its payload: an event refused for want of consent is exactly the data
/// the subject did not agree to give.
struct DeadLetter {
    message_id: Option<MessageId>,
    subject: Option<Pseudonym>,
    code: RejectCode,
    reason: String,
}

/// The events of a request refused so far: the answer's rejections and their dead letters.
#[derive(Default)]
struct Refusals {
    rejected: Vec<Rejection>,
    dead: Vec<DeadLetter>,
}

impl Refusals {
    fn refuse(
        &mut self,
        index: usize,
        message_id: Option<MessageId>,
        subject: Option<Pseudonym>,
        code: RejectCode,
        reason: String,
    ) {
        self.rejected.push(Rejection {
            index: index as u32,
            message_id: message_id.as_ref().map(MessageId::to_string),
            code,
            reason: reason.clone(),
        });
        self.dead.push(DeadLetter {
            message_id,
            subject,
            code,
            reason,
        });
    }
}

/// Device clock skew: `timestamp = receivedAt − (sentAt − timestamp)`, and the latest time
/// a record or event may carry (received + tolerance), so a date forged into the future
/// cannot outrank a later withdrawal.
#[derive(Debug, Clone, Copy)]
struct Skew {
    offset_ms: i64,
    received_at_ms: i64,
    tolerance_ms: i64,
}

/// A corrected time later than the time received plus the clock tolerance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TooLate {
    ahead_ms: i64,
}

impl Skew {
    fn new(received_at_ms: i64, sent_at: Option<Timestamp>, tolerance_ms: i64) -> Skew {
        Skew {
            offset_ms: sent_at.map_or(0, |s| received_at_ms.saturating_sub(s.unix_millis())),
            received_at_ms,
            tolerance_ms,
        }
    }

    fn correct(&self, t: Option<Timestamp>) -> std::result::Result<i64, TooLate> {
        let at = t.map_or(self.received_at_ms, |t| {
            t.unix_millis().saturating_add(self.offset_ms)
        });
        let ahead_ms = at.saturating_sub(self.received_at_ms);
        if ahead_ms > self.tolerance_ms {
            return Err(TooLate { ahead_ms });
        }
        Ok(at)
    }

    fn too_late_reason(&self, late: TooLate) -> String {
        format!(
            "timestamp (corrected by sentAt) is {} s after the time received, more than the clock tolerance of {} s: refused, not clamped",
            late.ahead_ms / 1000,
            self.tolerance_ms / 1000
        )
    }
}

fn shape(err: ProtocolError) -> Error {
    Error::BadRequest(err.to_string())
}

/// Parses one consent record of a request, or says which one is wrong.
fn consent_row(ingest: &Ingest, value: Value, index: usize, skew: Skew) -> Result<ConsentRow> {
    let record = ConsentRecord::from_value(value)
        .map_err(|e| Error::BadRequest(format!("consent[{index}]: {e}")))?;
    let at = skew.correct(Some(record.timestamp)).map_err(|late| {
        Error::BadRequest(format!("consent[{index}]: {}", skew.too_late_reason(late)))
    })?;
    Ok(pseudonymized_record(ingest, record, at))
}

fn pseudonymized_record(ingest: &Ingest, mut record: ConsentRecord, at: i64) -> ConsentRow {
    let p = &ingest.pseudonymizer;
    let subject = p.pseudonym(&record.subject_id);
    let user_id = record.user_id.as_deref().map(|u| p.pseudonym(u));
    // The audit trail keeps the record as stored: pseudonyms, never the raw ids.
    record.subject_id = subject.to_string();
    record.user_id = user_id.as_ref().map(Pseudonym::to_string);
    record.purposes.insert(Purpose::Necessary, true);
    let original = record.timestamp.unix_millis();
    ConsentRow {
        consent_id: record.consent_id.clone(),
        subject,
        user_id,
        purposes: record.purposes.clone(),
        policy_version: record.policy_version.clone(),
        method: record.method,
        origin: record.source,
        timestamp_ms: at,
        original_timestamp_ms: original,
        audit_data: serde_json::to_value(&record).expect("serializes"),
    }
}

/// Segment's consent tools stamp `context.consent.categoryPreferences`; categories are
/// named by each customer, so the usual names are mapped to Assent's purposes.
fn segment_stamp(event: &EventView<'_>) -> Option<PurposeMap> {
    let prefs = event.category_preferences.as_ref()?;
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

/// The state of each subject over time: records sorted by corrected time.
#[derive(Default)]
struct ConsentHistory(FastMap<String, Records>);

impl ConsentHistory {
    fn add(&mut self, subject: &str, entry: Entry) {
        let list = Arc::make_mut(self.0.entry(subject.to_owned()).or_default());
        let pos = list.partition_point(|e| e.at <= entry.at);
        list.insert(pos, entry);
    }

    /// Files stored records under `subject`.
    fn extend(&mut self, subject: &str, records: Records) {
        match self.0.get_mut(subject) {
            None => {
                self.0.insert(subject.to_owned(), records);
            }
            Some(list) => {
                let list = Arc::make_mut(list);
                list.extend(records.iter().cloned());
                list.sort_by_key(|e| e.at);
            }
        }
    }

    fn at(&self, subject: &str, t: i64) -> Option<&PurposeMap> {
        self.entry_at(subject, t).map(|e| &e.purposes)
    }

    fn entry_at(&self, subject: &str, t: i64) -> Option<&Entry> {
        let list = self.0.get(subject)?;
        let pos = list.partition_point(|e| e.at <= t);
        pos.checked_sub(1).map(|i| &list[i])
    }

    /// Whether a consent record (not a stamp) is in force for `subject` at `t`: then
    /// stamps on events count for nothing.
    fn record_in_force(&self, subject: &str, t: i64) -> bool {
        let Some(list) = self.0.get(subject) else {
            return false;
        };
        let pos = list.partition_point(|e| e.at <= t);
        list[..pos].iter().any(|e| !e.stamp)
    }
}

/// Consent records of the given stored pseudonyms, filed under the current pseudonym each
/// stands for (`aliases`: stored → current).
async fn load_history(
    ingest: &Ingest,
    source: &SourceInfo,
    aliases: &FastMap<Pseudonym, Pseudonym>,
) -> Result<ConsentHistory> {
    let stored: Vec<&str> = aliases.keys().map(Pseudonym::as_str).collect();
    let mut history = ConsentHistory::default();
    ingest
        .consent_cache
        .follow_scope_changes(ingest.sources.scope_changes());
    let records = ingest
        .consent_cache
        .records_of(&ingest.db, &source.scope, &stored)
        .await?;
    for (stored, records) in records {
        let subject = aliases
            .get(stored.as_str())
            .map_or(stored.as_str(), Pseudonym::as_str);
        history.extend(subject, records);
    }
    Ok(history)
}

/// A batch as it arrives: events kept as raw JSON so each is checked on its own.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<'a> {
    #[serde(borrow, default)]
    pub batch: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    pub consent: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    pub sent_at: Option<Value>,
    #[serde(default)]
    pub write_key: Option<Value>,
}

impl<'a> Envelope<'a> {
    /// Parses the body of `POST /v1/batch`. Whole-request problems are errors.
    pub fn parse(bytes: &'a [u8]) -> Result<Envelope<'a>> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err(Error::BadRequest("the body must be a JSON object".into()));
        }
        serde_json::from_slice(bytes).map_err(|e| {
            Error::BadRequest(match e.classify() {
                serde_json::error::Category::Eof => "truncated JSON".into(),
                serde_json::error::Category::Data => "`batch` and `consent` must be arrays".into(),
                _ => format!("malformed JSON at line {} column {}", e.line(), e.column()),
            })
        })
    }

    /// The `writeKey` field, for clients that cannot set headers.
    pub fn write_key(&self) -> Option<&str> {
        self.write_key.as_ref().and_then(Value::as_str)
    }

    fn sent_at(&self) -> Result<Option<Timestamp>> {
        match &self.sent_at {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Timestamp::parse(s).map(Some).map_err(shape),
            Some(_) => Err(Error::BadRequest(
                "sentAt must be an ISO 8601 string".into(),
            )),
        }
    }
}

/// Everything done to a batch body before the database is touched: the envelope, each
/// consent record, each event and its consent stamp. Returns how many events and records
/// are valid. The fuzz target drives it; no input may make it panic.
pub fn parse_only(bytes: &[u8]) -> Result<(usize, usize)> {
    let envelope = Envelope::parse(bytes)?;
    envelope.sent_at()?;
    let _ = envelope.write_key();
    let mut events = 0;
    for raw in envelope.batch.iter().flatten() {
        if let Ok(event) = EventView::parse(raw.get()) {
            let _ = (segment_stamp(&event), event.effective_purpose());
            events += 1;
        }
    }
    let mut records = 0;
    for raw in envelope.consent.iter().flatten() {
        ConsentRecord::from_json(raw.get()).map_err(shape)?;
        records += 1;
    }
    Ok((events, records))
}

/// Pseudonyms computed once per raw id within a request.
struct Pseudonyms<'p> {
    keys: &'p crate::pseudonym::Pseudonymizer,
    memo: FastMap<String, Pseudonym>,
}

impl Pseudonyms<'_> {
    fn of(&mut self, raw: &str) -> Pseudonym {
        if let Some(p) = self.memo.get(raw) {
            return p.clone();
        }
        let p = self.keys.pseudonym(raw);
        self.memo.insert(raw.to_owned(), p.clone());
        p
    }
}

/// Checks, stores and answers one batch. Whole-request problems are errors (nothing is
/// stored); problems with one event reject that event only.
pub async fn batch(
    ingest: &Ingest,
    req: Request<'_>,
    envelope: Envelope<'_>,
) -> Result<BatchResponse> {
    let sent_at = envelope.sent_at()?;
    let skew = Skew::new(req.received_at.millis(), sent_at, ingest.clock_tolerance_ms);
    let consent = envelope.consent.unwrap_or_default();
    check_record_count(ingest, consent.len())?;
    ingest.limits.check(req.source_id, req.ip, consent.len())?;
    let mut records = Vec::new();
    for (i, raw) in consent.into_iter().enumerate() {
        let value: Value = serde_json::from_str(raw.get())
            .map_err(|_| Error::BadRequest(format!("consent[{i}]: malformed")))?;
        records.push(consent_row(ingest, value, i, skew)?);
    }
    let sent_at_ms = sent_at.map(Timestamp::unix_millis);
    write(
        ingest,
        &req,
        skew,
        sent_at_ms,
        envelope.batch.unwrap_or_default(),
        records,
    )
    .await
}

/// `POST /v1/consent`: one record or `{"records": [...]}`.
pub async fn consent(ingest: &Ingest, req: Request<'_>, body: Value) -> Result<usize> {
    let values = match body {
        Value::Object(mut obj) if obj.contains_key("records") => match obj.remove("records") {
            Some(Value::Array(items)) => items,
            _ => return Err(Error::BadRequest("`records` must be an array".into())),
        },
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
    check_record_count(ingest, values.len())?;
    ingest.limits.check(req.source_id, req.ip, values.len())?;
    let skew = Skew::new(req.received_at.millis(), None, ingest.clock_tolerance_ms);
    let mut records = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        records.push(consent_row(ingest, value, i, skew)?);
    }
    let n = records.len();
    write(ingest, &req, skew, None, Vec::new(), records).await?;
    Ok(n)
}

/// Every consent record is a permanent audit entry: a request may carry only so many.
fn check_record_count(ingest: &Ingest, n: usize) -> Result<()> {
    let most = ingest.max_records;
    if n > most {
        return Err(Error::BadRequest(format!(
            "{n} consent records in one request; at most {most} are accepted"
        )));
    }
    Ok(())
}

/// A refused event's `messageId`, when it has a readable one (what its dead letter keeps).
fn readable_message_id(raw: &str) -> Option<MessageId> {
    #[derive(serde::Deserialize)]
    struct Id {
        #[serde(rename = "messageId")]
        message_id: Option<Value>,
    }
    let id = serde_json::from_str::<Id>(raw).ok()?.message_id?;
    let id = MessageId::parse(id.as_str()?).ok()?;
    // Control characters are refused as such, and never stored (PostgreSQL cannot).
    (!id.as_str().chars().any(char::is_control)).then_some(id)
}

async fn write(
    ingest: &Ingest,
    req: &Request<'_>,
    skew: Skew,
    sent_at_ms: Option<i64>,
    events: Vec<&RawValue>,
    mut records: Vec<ConsentRow>,
) -> Result<BatchResponse> {
    let mut response = BatchResponse::default();
    let mut ids = Pseudonyms {
        keys: &ingest.pseudonymizer,
        memo: FastMap::default(),
    };
    let mut parsed: Vec<(usize, EventView<'_>, Pseudonym)> = Vec::with_capacity(events.len());
    let mut refused = Refusals::default();
    for (index, raw) in events.into_iter().enumerate() {
        match EventView::parse(raw.get()) {
            Ok(event) => {
                let subject = ids.of(event.raw_subject());
                parsed.push((index, event, subject));
            }
            Err(err) => {
                let code = match err {
                    ProtocolError::EventTooLarge => RejectCode::TooLarge,
                    ProtocolError::ControlCharacter(_) => RejectCode::InvalidCharacters,
                    _ => RejectCode::Invalid,
                };
                let message_id = readable_message_id(raw.get());
                refused.refuse(index, message_id, None, code, err.to_string());
            }
        }
    }

    // Consent in force: stored records (under the current key or a rotated-out one),
    // this request's records, and Segment stamps.
    let mut aliases: FastMap<Pseudonym, Pseudonym> = FastMap::default();
    for (_, event, subject) in &parsed {
        if aliases.contains_key(subject) {
            continue;
        }
        aliases.insert(subject.clone(), subject.clone());
        if ingest.pseudonymizer.has_previous() {
            let raw = event.raw_subject();
            for old in ingest.pseudonymizer.all_pseudonyms(raw).into_iter().skip(1) {
                aliases.insert(old, subject.clone());
            }
        }
    }
    let mut history = load_history(ingest, req.source, &aliases).await?;
    for r in &records {
        history.add(
            r.subject.as_str(),
            Entry {
                at: r.timestamp_ms,
                purposes: r.purposes.clone(),
                stamp: false,
            },
        );
    }

    let mut rows = Vec::with_capacity(parsed.len());
    for (index, event, subject) in parsed {
        let message_id = event.message_id.clone();
        let at = match skew.correct(event.timestamp) {
            Ok(at) => at,
            Err(late) => {
                let reason = skew.too_late_reason(late);
                let code = RejectCode::FutureTimestamp;
                refused.refuse(index, Some(message_id), Some(subject), code, reason);
                continue;
            }
        };
        let purpose = event.effective_purpose();
        // A stamp is the event vouching for itself: it counts only for sources that trust
        // stamps, and never against a consent record in force.
        let stamp = segment_stamp(&event)
            .filter(|_| req.source.trust_consent_stamps)
            .filter(|_| !history.record_in_force(subject.as_str(), at));
        if let Some(stamp) = stamp {
            if history.at(subject.as_str(), at) != Some(&stamp) {
                // The stamp changes what we know of the subject's consent: record it.
                let record = ConsentRecord {
                    consent_id: format!("segment-{}", event.message_id),
                    subject_id: event.raw_subject().to_owned(),
                    user_id: event.user_id.as_deref().map(str::to_owned),
                    purposes: stamp.clone(),
                    policy_version: STAMP_POLICY_VERSION.into(),
                    method: ConsentMethod::Custom,
                    source: ConsentSource::Api,
                    timestamp: Timestamp::from_unix_millis(at),
                    gpc: None,
                    locale: None,
                    tcf: None,
                    ui_version: None,
                    notice_hash: None,
                    interaction: None,
                    previous: history.at(subject.as_str(), at).cloned(),
                };
                let row = pseudonymized_record(ingest, record, at);
                history.add(
                    row.subject.as_str(),
                    Entry {
                        at: row.timestamp_ms,
                        purposes: row.purposes.clone(),
                        stamp: true,
                    },
                );
                records.push(row);
            }
        }
        let granted = purpose == Purpose::Necessary
            || history
                .at(subject.as_str(), at)
                .is_some_and(|p| p.get(&purpose).copied().unwrap_or(false));
        if !granted {
            let reason = format!(
                "purpose {purpose} was not granted by the subject's consent at the event's time"
            );
            let code = RejectCode::NoConsent;
            refused.refuse(index, Some(message_id), Some(subject), code, reason);
            continue;
        }
        // What is stored: identifiers pseudonymized, the address and the key dropped.
        let payload = event.stored_json(|raw| ids.of(raw).into_string());
        rows.push(EventRow {
            message_id,
            subject_key: crate::pseudonym::subject_key(subject.as_str()),
            kind: event.kind.as_str(),
            name: event.event.or(event.name).map(std::borrow::Cow::into_owned),
            purpose,
            subject,
            anonymous_id: event.anonymous_id.as_deref().map(|a| ids.of(a)),
            user_id: event.user_id.as_deref().map(|u| ids.of(u)),
            timestamp_ms: at,
            original_timestamp_ms: event.timestamp.map(Timestamp::unix_millis),
            payload,
        });
    }
    response.rejected = refused.rejected;
    response.rejected.sort_by_key(|r| r.index);

    let received = Received {
        source_id: req.source_id.clone(),
        sent_at_ms,
        received_at: req.received_at,
        ip: req.ip.map(truncate_ip),
    };
    let job = WriteJob {
        inserts: Some(storage::ingest::event_inserts(
            ingest.db.backend,
            &received,
            &rows,
        )),
        received,
        actor: req.caller.actor(),
        records,
        events: rows,
        dead: refused.dead,
    };
    let (accepted, duplicates) = ingest.writer.submit(job).await?;
    response.accepted = accepted;
    response.duplicates = duplicates;
    ingest.metrics.record_batch(&response);
    Ok(response)
}

/// Everything one request stores, ready for the writer.
pub struct WriteJob {
    received: Received,
    actor: String,
    records: Vec<ConsentRow>,
    events: Vec<EventRow>,
    dead: Vec<DeadLetter>,
    /// The events' INSERTs with their values bound, by the request itself (see
    /// [`storage::ingest::event_inserts`]). Taken by the first attempt to write the job.
    inserts: Option<Vec<storage::ingest::EventInsert>>,
}

impl storage::writer::Job for WriteJob {
    type Context = audit::Trail;
    type Output = (u32, u32);

    fn appends_to_audit_chain(&self) -> bool {
        !self.records.is_empty()
    }

    fn rows((accepted, _): &(u32, u32)) -> u64 {
        u64::from(*accepted)
    }

    /// Writes the job inside the writer's transaction; returns (accepted, duplicates).
    async fn write(&mut self, w: &mut WriteTx, trail: &audit::Trail) -> Result<(u32, u32)> {
        let source_id = &self.received.source_id;
        let received_at = self.received.received_at;
        let received_at_ms = received_at.millis();
        // Consent records first; each new one goes into the audit trail.
        let ids: Vec<&str> = self.records.iter().map(|r| r.consent_id.as_str()).collect();
        let mut seen = storage::ingest::consents_stored(w, source_id, &ids).await?;
        let fresh: Vec<&ConsentRow> = self
            .records
            .iter()
            .filter(|r| seen.insert(r.consent_id.clone()))
            .collect();
        let entries = fresh
            .iter()
            .map(|r| NewEntry {
                kind: audit::Kind::Consent,
                actor: self.actor.clone(),
                subject: Some(r.subject.clone()),
                data: r.audit_data.clone(),
            })
            .collect();
        let seqs = trail.append_at(w, entries, received_at).await?;
        let mut rows = Vec::with_capacity(fresh.len());
        for (r, seq) in fresh.iter().zip(seqs) {
            rows.push(storage::ingest::ConsentInsert {
                source_id,
                consent_id: &r.consent_id,
                subject: &r.subject,
                user_id: r.user_id.as_ref(),
                purposes: serde_json::to_string(&r.purposes).expect("serializes"),
                policy_version: &r.policy_version,
                method: r.method.as_str(),
                origin: origin_name(r.origin),
                timestamp_ms: r.timestamp_ms,
                original_timestamp_ms: r.original_timestamp_ms,
                received_at_ms,
                audit_seq: seq,
            });
        }
        storage::ingest::insert_consents(w, &rows).await?;
        // Events: a duplicate messageId from this source is skipped, and counted.
        let inserts = match self.inserts.take() {
            Some(inserts) => inserts,
            None => storage::ingest::event_inserts(w.backend(), &self.received, &self.events),
        };
        let counts = storage::ingest::insert_events(w, inserts).await?;
        for d in &self.dead {
            let row = storage::ingest::DeadLetterInsert {
                source_id,
                message_id: d.message_id.as_ref(),
                subject: d.subject.as_ref(),
                code: d.code.as_str(),
                reason: &d.reason,
                received_at_ms,
            };
            storage::ingest::insert_dead_letter(w, row).await?;
        }
        Ok(counts)
    }
}

fn origin_name(o: ConsentSource) -> &'static str {
    match o {
        ConsentSource::Sdk => "sdk",
        ConsentSource::Banner => "banner",
        ConsentSource::Api => "api",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_answers_the_state_in_force_at_a_time() {
        let mut h = ConsentHistory::default();
        let grant: PurposeMap = [(Purpose::Analytics, true)].into();
        let deny: PurposeMap = [(Purpose::Analytics, false)].into();
        let entry = |at, purposes: &PurposeMap, stamp| Entry {
            at,
            purposes: purposes.clone(),
            stamp,
        };
        h.add("s", entry(100, &grant, true));
        h.add("s", entry(200, &deny, false));
        assert!(!h.record_in_force("s", 150), "only a stamp by then");
        assert!(h.record_in_force("s", 200));
        assert_eq!(h.at("s", 99), None);
        assert_eq!(h.at("s", 100), Some(&grant));
        assert_eq!(h.at("s", 199), Some(&grant));
        assert_eq!(h.at("s", 500), Some(&deny));
        assert_eq!(h.at("other", 500), None);
    }

    #[test]
    fn segment_categories_map_to_purposes() {
        let e = EventView::parse(
            r#"{"messageId":"m","type":"track","event":"x","anonymousId":"a",
                "context":{"consent":{"categoryPreferences":{"Analytics":true,"Marketing":false,"Custom Thing":true}}}}"#,
        )
        .unwrap();
        let stamp = segment_stamp(&e).unwrap();
        assert_eq!(stamp.get(&Purpose::Analytics), Some(&true));
        assert_eq!(stamp.get(&Purpose::Advertising), Some(&false));
        assert_eq!(stamp.len(), 3);
    }

    /// The fuzz target's body on seeds and many random mutations of them: errors are
    /// fine, panics are not. (`make fuzz` runs the coverage-guided fuzzer itself.)
    #[test]
    fn the_batch_parser_survives_mutated_input() {
        let seeds: Vec<Vec<u8>> = [
            include_str!("../../../protocol/fixtures/batch.json"),
            include_str!("../../../protocol/fixtures/segment-analytics-js-track.json"),
            r#"{"batch":[{"messageId":"m","type":"track","event":"e","anonymousId":"a","context":{"consent":{"categoryPreferences":{"Analytics":true}}}}],"sentAt":"2026-01-01T00:00:00Z"}"#,
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let interesting: &[&[u8]] = &[
            b"{", b"}", b"[", b"]", b"\"", b"\\u0000", b"1e999", b"-", b"null", b"\xff", b",", b":",
        ];
        let mut valid = 0;
        for _ in 0..20_000 {
            let mut input = seeds[(next() % seeds.len() as u64) as usize].clone();
            for _ in 0..(1 + next() % 4) {
                let pos = (next() % (input.len() as u64 + 1)) as usize;
                match next() % 4 {
                    0 if pos < input.len() => input[pos] = next() as u8,
                    1 if pos < input.len() => {
                        input.truncate(pos);
                    }
                    2 => {
                        let piece = interesting[(next() % interesting.len() as u64) as usize];
                        input.splice(pos..pos, piece.iter().copied());
                    }
                    _ => {
                        let end = (pos + (next() % 8) as usize).min(input.len());
                        input.drain(pos..end);
                    }
                }
            }
            if parse_only(&input).is_ok() {
                valid += 1;
            }
        }
        assert!(valid > 100, "mutations should not all be invalid ({valid})");
    }

    #[test]
    fn skew_is_corrected_from_sent_at() {
        // Device clock 10 s fast: sent at 1_010_000 by its clock, received at 1_000_000.
        let skew = Skew::new(
            1_000_000,
            Some(Timestamp::from_unix_millis(1_010_000)),
            5_000,
        );
        assert_eq!(
            skew.correct(Some(Timestamp::from_unix_millis(1_009_000))),
            Ok(999_000)
        );
        assert_eq!(skew.correct(None), Ok(1_000_000));
        // Within the tolerance after correction: kept; beyond it: refused.
        assert_eq!(
            skew.correct(Some(Timestamp::from_unix_millis(1_014_000))),
            Ok(1_004_000)
        );
        assert_eq!(
            skew.correct(Some(Timestamp::from_unix_millis(1_016_000))),
            Err(TooLate { ahead_ms: 6_000 })
        );
        // A sentAt far in the past pushes a late timestamp further still: refused, where it
        // was stored as a time past the year 9999 (and shown as 1970).
        let skew = Skew::new(
            1_000_000,
            Some(Timestamp::parse("0001-01-01T00:00:00Z").unwrap()),
            5_000,
        );
        let late = Timestamp::parse("9999-12-31T23:59:59Z").unwrap();
        assert!(skew.correct(Some(late)).is_err());
    }
}
