//! The engine: plain synchronous Rust that the exported client wraps. It checks consent,
//! builds events and consent records, and puts them in the queue.
use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Condvar, Mutex, RwLock,
    },
    time::{Duration, Instant},
};

use assent_protocol::{
    ConsentRecord, ConsentSource, EventType, LibraryInfo, Purpose, MAX_BATCH_BYTES, MAX_EVENT_BYTES,
};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::{
    clock::Clock,
    consent::{self, Change, Choice, PersistedState},
    error::{AssentError, Result},
    identity::{self, InstallSecret, RandomFill},
    queue::{Class, Queue},
    records::{ClientConfig, ConsentState},
    storage::DirLock,
    transport::HttpTransport,
};

/// `ClientConfig`, checked.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub collector_url: String,
    pub storage_dir: PathBuf,
    pub app_id: String,
    pub policy_version: String,
    pub user_id_pepper: Option<String>,
    pub flush_at: usize,
    pub flush_interval: Duration,
    pub max_queue_events: usize,
    pub max_batch_bytes: usize,
    pub rotate_id_on_full_withdrawal: bool,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub locale: Option<String>,
}

impl Settings {
    pub(crate) fn parse(c: &ClientConfig) -> Result<Settings> {
        let url = c.collector_url.trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
            return Err(AssentError::invalid_argument(
                "collector_url must be an http(s) URL",
            ));
        }
        for (name, value) in [
            ("write_key", &c.write_key),
            ("storage_dir", &c.storage_dir),
            ("app_id", &c.app_id),
            ("policy_version", &c.policy_version),
        ] {
            if value.trim().is_empty() {
                return Err(AssentError::invalid_argument(format!(
                    "{name} must not be empty"
                )));
            }
        }
        if let Some(p) = &c.user_id_pepper {
            if p.len() < identity::MIN_PEPPER_BYTES {
                return Err(AssentError::invalid_argument(format!(
                    "user_id_pepper must be at least {} bytes",
                    identity::MIN_PEPPER_BYTES
                )));
            }
        }
        if c.flush_at == 0 || c.max_queue_events == 0 {
            return Err(AssentError::invalid_argument(
                "flush_at and max_queue_events must be at least 1",
            ));
        }
        let batch = c.max_batch_bytes as usize;
        if !(MAX_EVENT_BYTES + 1024..=MAX_BATCH_BYTES).contains(&batch) {
            return Err(AssentError::invalid_argument(format!(
                "max_batch_bytes must be between {} and {MAX_BATCH_BYTES}",
                MAX_EVENT_BYTES + 1024
            )));
        }
        if c.retry_base_ms == 0 || c.retry_max_ms < c.retry_base_ms {
            return Err(AssentError::invalid_argument(
                "need 0 < retry_base_ms <= retry_max_ms",
            ));
        }
        Ok(Settings {
            collector_url: url.to_owned(),
            storage_dir: PathBuf::from(&c.storage_dir),
            app_id: c.app_id.clone(),
            policy_version: c.policy_version.clone(),
            user_id_pepper: c.user_id_pepper.clone(),
            flush_at: c.flush_at as usize,
            flush_interval: Duration::from_millis(c.flush_interval_ms),
            max_queue_events: c.max_queue_events as usize,
            max_batch_bytes: batch,
            rotate_id_on_full_withdrawal: c.rotate_id_on_full_withdrawal,
            retry_base: Duration::from_millis(c.retry_base_ms),
            retry_max: Duration::from_millis(c.retry_max_ms),
            locale: c.locale.clone(),
        })
    }
}

/// Who the install is right now, and what it agreed to.
#[derive(Debug)]
pub(crate) struct Session {
    pub state: PersistedState,
    secret: InstallSecret,
    pub anonymous_id: String,
}

/// Counters of what the SDK did not deliver, by cause.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub dropped: AtomicU64,
    pub purged: AtomicU64,
    pub rejected: AtomicU64,
    pub refused_no_consent: AtomicU64,
}

/// The uploader's state, guarded by `Engine::signal`; `upload.rs` drives it.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    pub shutdown: bool,
    /// Set after a 401 or 403: nothing is sent until the write key changes.
    pub auth_blocked: bool,
    /// No automatic attempt before this.
    pub retry_at: Option<Instant>,
    /// Consecutive failed attempts, for the backoff.
    pub attempt: u32,
    /// When the uploader first saw entries waiting: the flush interval counts from here.
    pub pending_since: Option<Instant>,
    /// How often the uploader thread woke up: stays still while there is nothing to do.
    pub wakeups: u64,
}

pub(crate) struct Engine {
    pub settings: Settings,
    pub clock: Arc<dyn Clock>,
    pub transport: Arc<dyn HttpTransport>,
    random: Box<RandomFill>,
    /// `context`, serialized once.
    context: Box<RawValue>,
    pub session: RwLock<Session>,
    pub queue: Mutex<Queue>,
    pub write_key: Mutex<String>,
    pub stats: Stats,
    pub signal: Mutex<Signal>,
    pub cv: Condvar,
    /// Set when a tracking thread has already woken the uploader.
    pub wake_pending: AtomicBool,
    pub send_lock: Mutex<()>,
    pub rng: Mutex<fastrand::Rng>,
    pub corrupt_records: u64,
    /// Held until shutdown; then another client may open the folder.
    lock: Mutex<Option<DirLock>>,
    /// Set at shutdown, under the session lock: nothing is written after it.
    closed: AtomicBool,
}

/// An event as the SDK writes it, borrowing everything.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutEvent<'a> {
    message_id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    anonymous_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    traits: Option<&'a RawValue>,
    context: &'a RawValue,
    timestamp: String,
    purpose: Purpose,
}

/// What the public calls pass to `Engine::record_event`.
pub(crate) struct NewEvent<'a> {
    pub kind: EventType,
    pub purpose: Purpose,
    pub event: Option<&'a str>,
    pub name: Option<&'a str>,
    pub previous_id: Option<&'a str>,
    pub properties: Option<&'a RawValue>,
    pub traits: Option<&'a RawValue>,
}

/// Parses `properties_json` / `traits_json`: empty means none, anything else must be a
/// JSON object.
pub(crate) fn json_object(json: &str) -> Result<Option<&RawValue>> {
    if json.trim().is_empty() {
        return Ok(None);
    }
    let raw: &RawValue = serde_json::from_str(json).map_err(|e| AssentError::InvalidJson {
        reason: format!("line {} column {}", e.line(), e.column()),
    })?;
    if !raw.get().starts_with('{') {
        return Err(AssentError::InvalidJson {
            reason: "expected a JSON object".into(),
        });
    }
    Ok(Some(raw))
}

impl Engine {
    pub(crate) fn open(
        config: &ClientConfig,
        transport: Arc<dyn HttpTransport>,
        clock: Arc<dyn Clock>,
        random: Box<RandomFill>,
    ) -> Result<Engine> {
        let settings = Settings::parse(config)?;
        std::fs::create_dir_all(&settings.storage_dir)?;
        let lock = DirLock::acquire(&settings.storage_dir)?;
        let queue = Queue::open(
            &settings.storage_dir.join("queue"),
            settings.max_queue_events,
        )?;
        let corrupt_records = (queue.report.corrupt_records + queue.report.torn_tails) as u64;
        let secret = InstallSecret::load_or_create(&settings.storage_dir, &random)?;
        let anonymous_id = secret.anonymous_id(&settings.app_id);
        let state = PersistedState::load(&settings.storage_dir)?;
        let context = context_json(config);
        let engine = Engine {
            settings,
            clock,
            transport,
            random,
            context,
            session: RwLock::new(Session {
                state,
                secret,
                anonymous_id,
            }),
            queue: Mutex::new(queue),
            write_key: Mutex::new(config.write_key.clone()),
            stats: Stats::default(),
            signal: Mutex::new(Signal::default()),
            cv: Condvar::new(),
            wake_pending: AtomicBool::new(false),
            send_lock: Mutex::new(()),
            rng: Mutex::new(fastrand::Rng::new()),
            corrupt_records,
            lock: Mutex::new(Some(lock)),
            closed: AtomicBool::new(false),
        };
        let now = engine.clock.now();
        let policy = engine.settings.policy_version.clone();
        engine.change_consent(|state| consent::on_policy(state, &policy, now))?;
        engine.change_consent(|state| consent::on_gpc(state, config.gpc || state.gpc, now))?;
        Ok(engine)
    }

    /// Applies a consent change: the record is queued first (so proof exists for any
    /// state that is saved), then the state is saved, then withdrawn purposes are purged.
    fn change_consent(
        &self,
        change: impl FnOnce(&mut PersistedState) -> Option<Change>,
    ) -> Result<Option<Change>> {
        let mut session = self.session.write().expect("session lock");
        self.check_open()?;
        let mut next = session.state.clone();
        let Some(change) = change(&mut next) else {
            if next != session.state {
                next.save(&self.settings.storage_dir)?;
                session.state = next;
            }
            return Ok(None);
        };
        let record = self.consent_record(
            &session.anonymous_id,
            &next,
            &change,
            Some(change.previous.clone()),
        );
        self.enqueue(Class::Consent, &record)?;
        next.save(&self.settings.storage_dir)?;
        session.state = next;
        if !change.withdrawn.is_empty() {
            let withdrawn = change.withdrawn.clone();
            let purged = self
                .queue
                .lock()
                .expect("queue lock")
                .purge(|c| matches!(c, Class::Event(p) if withdrawn.contains(&p)))?;
            self.stats
                .purged
                .fetch_add(purged as u64, Ordering::Relaxed);
            if self.settings.rotate_id_on_full_withdrawal && change.denies_all_optional() {
                self.rotate_identity(&mut session)?;
            }
        }
        Ok(Some(change))
    }

    fn consent_record(
        &self,
        subject: &str,
        state: &PersistedState,
        change: &Change,
        previous: Option<assent_protocol::PurposeMap>,
    ) -> Vec<u8> {
        let record = ConsentRecord {
            consent_id: self.new_uuid(),
            subject_id: subject.to_owned(),
            user_id: state.user_id.clone(),
            purposes: change.purposes.clone(),
            policy_version: self.settings.policy_version.clone(),
            method: change.method,
            source: ConsentSource::Sdk,
            timestamp: state.updated_at.unwrap_or_else(|| self.clock.now()),
            gpc: Some(state.gpc),
            locale: self.settings.locale.clone(),
            tcf: None,
            ui_version: None,
            notice_hash: None,
            interaction: None,
            previous,
        };
        serde_json::to_vec(&record).expect("consent records serialize")
    }

    /// A new install secret, hence a new, unlinkable `anonymousId`. When optional purposes
    /// are granted, the new subject gets a record of them (without `previous`: it is the
    /// subject's first), so the user's choice carries over.
    fn rotate_identity(&self, session: &mut Session) -> Result<()> {
        session.secret = InstallSecret::rotate(&self.settings.storage_dir, &self.random)?;
        session.anonymous_id = session.secret.anonymous_id(&self.settings.app_id);
        if session.state.granted.is_empty() {
            return Ok(());
        }
        let change = Change {
            method: assent_protocol::ConsentMethod::Custom,
            previous: Default::default(),
            purposes: session.state.purposes(),
            withdrawn: Vec::new(),
        };
        let mut state = session.state.clone();
        state.updated_at = Some(self.clock.now());
        let record = self.consent_record(&session.anonymous_id, &state, &change, None);
        self.enqueue(Class::Consent, &record)?;
        Ok(())
    }

    fn new_uuid(&self) -> String {
        let mut random = [0u8; 10];
        self.rng.lock().expect("rng lock").fill(&mut random);
        let millis = self.clock.now_millis().max(0) as u64;
        uuid::Builder::from_unix_timestamp_millis(millis, &random)
            .into_uuid()
            .to_string()
    }

    /// Appends to the queue and wakes the uploader when a batch is due.
    fn enqueue(&self, class: Class, payload: &[u8]) -> Result<bool> {
        let (appended, len) = {
            let mut q = self.queue.lock().expect("queue lock");
            (q.append(class, payload)?, q.len())
        };
        if appended.dropped > 0 {
            self.stats
                .dropped
                .fetch_add(appended.dropped as u64, Ordering::Relaxed);
        }
        if (len == 1 || len >= self.settings.flush_at)
            && !self.wake_pending.swap(true, Ordering::AcqRel)
        {
            let _s = self.signal.lock().expect("signal lock");
            self.cv.notify_all();
        }
        Ok(appended.stored)
    }

    /// Queues one event when its purpose is granted. `Ok(false)`: dropped for want of
    /// consent (or by the queue bound).
    pub(crate) fn record_event(&self, e: NewEvent<'_>) -> Result<bool> {
        let session = self.session.read().expect("session lock");
        self.check_open()?;
        if !session.state.allows(e.purpose) {
            self.stats
                .refused_no_consent
                .fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        let message_id = self.new_uuid();
        let out = OutEvent {
            message_id: &message_id,
            kind: e.kind.as_str(),
            event: e.event,
            name: e.name,
            anonymous_id: &session.anonymous_id,
            user_id: session.state.user_id.as_deref(),
            previous_id: e.previous_id,
            properties: e.properties,
            traits: e.traits,
            context: &self.context,
            timestamp: self.clock.now().to_string(),
            purpose: e.purpose,
        };
        let payload = serde_json::to_vec(&out).expect("events serialize");
        if payload.len() > MAX_EVENT_BYTES {
            return Err(AssentError::EventTooLarge);
        }
        // Still under the session lock: a concurrent withdrawal cannot slip between the
        // consent check and the append.
        self.enqueue(Class::Event(e.purpose), &payload)
    }

    pub(crate) fn set_consent(&self, purposes: &HashMap<String, bool>, method: &str) -> Result<()> {
        let choice = Choice::parse(purposes, method)?;
        let now = self.clock.now();
        let policy = self.settings.policy_version.clone();
        self.change_consent(|state| Some(choice.apply(state, &policy, now)))?;
        Ok(())
    }

    pub(crate) fn set_gpc(&self, enabled: bool) -> Result<()> {
        let now = self.clock.now();
        self.change_consent(|state| consent::on_gpc(state, enabled, now))?;
        Ok(())
    }

    pub(crate) fn consent(&self) -> ConsentState {
        let s = &self.session.read().expect("session lock").state;
        ConsentState {
            purposes: s
                .purposes()
                .into_iter()
                .map(|(p, on)| (p.as_str().to_owned(), on))
                .collect(),
            policy_version: self.settings.policy_version.clone(),
            updated_at: s.updated_at.map(|t| t.to_string()),
            needs_prompt: !s.answered,
            gpc: s.gpc,
        }
    }

    /// The userId events will carry: peppered when a pepper is configured.
    pub(crate) fn outbound_user_id(&self, user_id: &str) -> Result<String> {
        match &self.settings.user_id_pepper {
            Some(pepper) => identity::pseudonymize_user_id(pepper, user_id),
            None if user_id.trim().is_empty() => {
                Err(AssentError::invalid_argument("user id is empty"))
            }
            None => Ok(user_id.to_owned()),
        }
    }

    pub(crate) fn set_user_id(&self, user_id: Option<String>) -> Result<()> {
        let mut session = self.session.write().expect("session lock");
        self.check_open()?;
        if session.state.user_id == user_id {
            return Ok(());
        }
        let mut next = session.state.clone();
        next.user_id = user_id;
        next.save(&self.settings.storage_dir)?;
        session.state = next;
        Ok(())
    }

    pub(crate) fn reset(&self) -> Result<()> {
        let mut session = self.session.write().expect("session lock");
        self.check_open()?;
        let mut next = session.state.clone();
        next.user_id = None;
        next.save(&self.settings.storage_dir)?;
        session.state = next;
        self.rotate_identity(&mut session)
    }

    pub(crate) fn anonymous_id(&self) -> String {
        self.session
            .read()
            .expect("session lock")
            .anonymous_id
            .clone()
    }

    pub(crate) fn queued(&self) -> u64 {
        self.queue.lock().expect("queue lock").len() as u64
    }

    pub(crate) fn set_write_key(&self, key: &str) -> Result<()> {
        if key.trim().is_empty() {
            return Err(AssentError::invalid_argument("write_key must not be empty"));
        }
        *self.write_key.lock().expect("write key lock") = key.to_owned();
        let mut s = self.signal.lock().expect("signal lock");
        s.auth_blocked = false;
        s.attempt = 0;
        s.retry_at = None;
        self.cv.notify_all();
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(AssentError::ShutDown);
        }
        Ok(())
    }

    pub(crate) fn request_shutdown(&self) {
        self.signal.lock().expect("signal lock").shutdown = true;
        self.cv.notify_all();
    }

    /// After the uploader stopped: refuse further writes, then release the folder.
    pub(crate) fn close(&self) {
        let _session = self.session.write().expect("session lock");
        self.closed.store(true, Ordering::Release);
        self.lock.lock().expect("dir lock").take();
    }
}

/// The `context` every event carries, fixed for the client's life.
fn context_json(c: &ClientConfig) -> Box<RawValue> {
    let mut ctx = assent_protocol::Context {
        library: Some(LibraryInfo {
            name: "assent-core".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }),
        os: Some(serde_json::json!({
            "name": c.os_name.clone().unwrap_or_else(|| std::env::consts::OS.to_owned()),
            "version": c.os_version,
        })),
        locale: c.locale.clone(),
        timezone: c.timezone.clone(),
        ..Default::default()
    };
    if c.app_version.is_some() {
        ctx.app = Some(serde_json::json!({ "version": c.app_version }));
    }
    if let Some(t) = &c.device_type {
        ctx.device = Some(serde_json::json!({ "type": t }));
    }
    if let (Some(w), Some(h)) = (c.screen_width, c.screen_height) {
        ctx.screen = Some(serde_json::json!({ "width": w, "height": h }));
    }
    RawValue::from_string(serde_json::to_string(&ctx).expect("context serializes"))
        .expect("valid JSON")
}
