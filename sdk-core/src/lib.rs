//! Assent SDK core: asks for and stores consent per purpose, gives each install a stable
//! pseudonymous id, and queues events on disk and delivers them to the Assent collector in
//! batches, without losing or duplicating any.
//!
//! The same API is exported to Kotlin, Swift and Python through uniffi. See
//! `ARCHITECTURE.md` at the root of the repository for how the parts fit together.
//!
//! ```no_run
//! use std::collections::HashMap;
//! use assent_core::{AssentClient, ClientConfig};
//!
//! let config = ClientConfig::new(
//!     "https://collector.example.com", "WRITE_KEY", "/tmp/assent-demo", "com.example.app", "2026-01",
//! );
//! let client = AssentClient::new(config)?;
//! client.set_consent(HashMap::from([("analytics".to_string(), true)]), "custom".into())?;
//! assert!(client.track("Signed Up".into(), r#"{"plan":"pro"}"#.into(), None)?);
//! client.flush()?;
//! # Ok::<(), assent_core::AssentError>(())
//! ```
#![deny(missing_docs)]

use std::{
    collections::HashMap,
    sync::{atomic::Ordering, Arc, Mutex},
    thread::JoinHandle,
};

use assent_protocol::{EventType, Purpose};

mod clock;
mod consent;
mod engine;
mod error;
mod identity;
mod queue;
mod storage;
mod transport;
mod upload;

pub use clock::{Clock, SystemClock};
pub use error::{AssentError, Result};
pub use identity::{normalize_user_id, pseudonymize_user_id};
pub use transport::{HttpRequest, HttpResponse, HttpTransport, UreqTransport};

use engine::{json_object, Engine, NewEvent};

uniffi::setup_scaffolding!();

/// How a client is set up. Only the first five fields are required; the rest have the
/// defaults shown.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ClientConfig {
    /// Base URL of the collector, such as `https://collector.example.com`.
    pub collector_url: String,
    /// The source's write key.
    pub write_key: String,
    /// A folder private to the app where the SDK keeps its state and queue.
    pub storage_dir: String,
    /// Scopes the pseudonymous id: two apps on one device get unlinkable ids.
    pub app_id: String,
    /// Version of the privacy policy; a new one asks for consent again.
    pub policy_version: String,
    /// When set (at least 16 bytes), `identify` sends HMAC-SHA256(pepper, user id)
    /// instead of the raw user id.
    #[uniffi(default = None)]
    pub user_id_pepper: Option<String>,
    /// Upload when this many entries are queued.
    #[uniffi(default = 20)]
    pub flush_at: u32,
    /// Upload when the oldest entry has waited this long.
    #[uniffi(default = 30000)]
    pub flush_interval_ms: u64,
    /// Past this many queued events, the oldest optional ones are dropped.
    #[uniffi(default = 10000)]
    pub max_queue_events: u32,
    /// Largest batch body, uncompressed (at most 512000, the protocol's limit).
    #[uniffi(default = 512000)]
    pub max_batch_bytes: u32,
    /// A Global Privacy Control signal is present: `advertising` is denied.
    #[uniffi(default = false)]
    pub gpc: bool,
    /// Start a new, unlinkable `anonymousId` when the user withdraws every optional purpose.
    #[uniffi(default = false)]
    pub rotate_id_on_full_withdrawal: bool,
    /// First retry delay ceiling; it doubles with each failure (full jitter).
    #[uniffi(default = 1000)]
    pub retry_base_ms: u64,
    /// Largest retry delay ceiling.
    #[uniffi(default = 300000)]
    pub retry_max_ms: u64,
    /// `context.app.version`.
    #[uniffi(default = None)]
    pub app_version: Option<String>,
    /// `context.os.name`; the build target's OS when absent.
    #[uniffi(default = None)]
    pub os_name: Option<String>,
    /// `context.os.version`.
    #[uniffi(default = None)]
    pub os_version: Option<String>,
    /// `context.device.type` (`ios`, `android`, `desktop`, `server`...).
    #[uniffi(default = None)]
    pub device_type: Option<String>,
    /// `context.locale`, BCP 47.
    #[uniffi(default = None)]
    pub locale: Option<String>,
    /// `context.timezone`, IANA.
    #[uniffi(default = None)]
    pub timezone: Option<String>,
    /// `context.screen.width`.
    #[uniffi(default = None)]
    pub screen_width: Option<u32>,
    /// `context.screen.height`.
    #[uniffi(default = None)]
    pub screen_height: Option<u32>,
}

impl ClientConfig {
    /// A configuration with the required fields and every default.
    pub fn new(
        collector_url: impl Into<String>,
        write_key: impl Into<String>,
        storage_dir: impl Into<String>,
        app_id: impl Into<String>,
        policy_version: impl Into<String>,
    ) -> ClientConfig {
        ClientConfig {
            collector_url: collector_url.into(),
            write_key: write_key.into(),
            storage_dir: storage_dir.into(),
            app_id: app_id.into(),
            policy_version: policy_version.into(),
            user_id_pepper: None,
            flush_at: 20,
            flush_interval_ms: 30_000,
            max_queue_events: 10_000,
            max_batch_bytes: 512_000,
            gpc: false,
            rotate_id_on_full_withdrawal: false,
            retry_base_ms: 1_000,
            retry_max_ms: 300_000,
            app_version: None,
            os_name: None,
            os_version: None,
            device_type: None,
            locale: None,
            timezone: None,
            screen_width: None,
            screen_height: None,
        }
    }
}

/// The consent in force.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ConsentState {
    /// Every purpose and whether it is granted now (`necessary` always is).
    pub purposes: HashMap<String, bool>,
    /// The policy version in force.
    pub policy_version: String,
    /// When consent last changed, ISO 8601; absent before the first answer.
    pub updated_at: Option<String>,
    /// True until the user answers under the current policy version: show the prompt.
    pub needs_prompt: bool,
    /// Whether a GPC signal is in force.
    pub gpc: bool,
}

/// What one `flush` achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct FlushResult {
    /// Events the collector stored.
    pub accepted: u32,
    /// Events the collector already had (a retry of a delivered batch).
    pub duplicates: u32,
    /// Entries the collector refused for good (logged and removed).
    pub rejected: u32,
    /// Entries still queued afterwards (tracked while flushing).
    pub remaining: u64,
}

/// Counters of what was not delivered, by cause, since the client started.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct ClientStats {
    /// Events dropped by the `max_queue_events` bound.
    pub dropped: u64,
    /// Queued events removed because their purpose was withdrawn.
    pub purged: u64,
    /// Entries the collector refused for good.
    pub rejected: u64,
    /// Calls that recorded nothing because the purpose was not granted.
    pub refused_no_consent: u64,
    /// Damaged records skipped (or torn tails cut) when the queue was opened.
    pub corrupt_records: u64,
    /// Times the uploader thread woke up. It sleeps without a timer while nothing is
    /// queued (or uploads are paused by a refused key), so this stays still when idle.
    pub uploader_wakeups: u64,
}

/// The SDK: one per app (per `storage_dir`), shared across threads. Calls never wait
/// for the network, except `flush`.
#[derive(uniffi::Object)]
pub struct AssentClient {
    engine: Arc<Engine>,
    uploader: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for AssentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssentClient").finish_non_exhaustive()
    }
}

impl AssentClient {
    /// A client with a chosen transport and clock (tests use both).
    pub fn build(
        config: ClientConfig,
        transport: Arc<dyn HttpTransport>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<AssentClient>> {
        let engine = Arc::new(Engine::open(
            &config,
            transport,
            clock,
            Box::new(identity::os_random),
        )?);
        let worker = Arc::clone(&engine);
        let uploader = std::thread::Builder::new()
            .name("assent-uploader".into())
            .spawn(move || worker.run_uploader())
            .map_err(AssentError::from)?;
        Ok(Arc::new(AssentClient {
            engine,
            uploader: Mutex::new(Some(uploader)),
        }))
    }

    fn live(&self) -> Result<&Engine> {
        if self.uploader.lock().expect("uploader lock").is_none() {
            return Err(AssentError::ShutDown);
        }
        Ok(&self.engine)
    }
}

fn parse_purpose(purpose: Option<String>) -> Result<Purpose> {
    match purpose {
        None => Ok(Purpose::Analytics),
        Some(p) => Ok(p.parse()?),
    }
}

#[uniffi::export]
impl AssentClient {
    /// A client that uploads with the built-in HTTP client.
    #[uniffi::constructor]
    pub fn new(config: ClientConfig) -> Result<Arc<AssentClient>> {
        AssentClient::build(
            config,
            Arc::new(UreqTransport::default()),
            Arc::new(SystemClock),
        )
    }

    /// A client that uploads through the host's HTTP stack.
    #[uniffi::constructor]
    pub fn with_transport(
        config: ClientConfig,
        transport: Arc<dyn HttpTransport>,
    ) -> Result<Arc<AssentClient>> {
        AssentClient::build(config, transport, Arc::new(SystemClock))
    }

    /// Records the user's answer. `purposes` maps purpose names to granted; `method` is
    /// `accept_all`, `reject_all`, `custom` or `withdraw`. Purposes not named keep their
    /// state. Persisted, with a consent record queued, before it returns; events queued
    /// for a withdrawn purpose are purged at once.
    pub fn set_consent(&self, purposes: HashMap<String, bool>, method: String) -> Result<()> {
        self.live()?.set_consent(&purposes, &method)
    }

    /// The consent in force.
    pub fn consent(&self) -> ConsentState {
        self.engine.consent()
    }

    /// Sets or clears the Global Privacy Control signal; turning it on denies
    /// `advertising`, and is recorded.
    pub fn set_gpc(&self, enabled: bool) -> Result<()> {
        self.live()?.set_gpc(enabled)
    }

    /// Queues a `track` event. `properties_json` is a JSON object (or empty); `purpose`
    /// defaults to `analytics`. Returns false, storing nothing, when the purpose is not
    /// granted. When it returns true the event is on disk.
    #[uniffi::method(default(purpose = None))]
    pub fn track(
        &self,
        event: String,
        properties_json: String,
        purpose: Option<String>,
    ) -> Result<bool> {
        let purpose = parse_purpose(purpose)?;
        if event.trim().is_empty() {
            return Err(AssentError::invalid_argument(
                "event name must not be empty",
            ));
        }
        let properties = json_object(&properties_json)?;
        self.live()?.record_event(NewEvent {
            kind: EventType::Track,
            purpose,
            event: Some(&event),
            name: None,
            previous_id: None,
            properties,
            traits: None,
        })
    }

    /// Queues a `screen` event (purpose `analytics`).
    pub fn screen(&self, name: String, properties_json: String) -> Result<bool> {
        let properties = json_object(&properties_json)?;
        self.live()?.record_event(NewEvent {
            kind: EventType::Screen,
            purpose: Purpose::Analytics,
            event: None,
            name: Some(&name),
            previous_id: None,
            properties,
            traits: None,
        })
    }

    /// Sets the user id that later events carry (peppered when `user_id_pepper` is set)
    /// and queues an `identify` event when `analytics` is granted.
    pub fn identify(&self, user_id: String, traits_json: String) -> Result<bool> {
        let traits = json_object(&traits_json)?;
        let engine = self.live()?;
        let outbound = engine.outbound_user_id(&user_id)?;
        engine.set_user_id(Some(outbound))?;
        engine.record_event(NewEvent {
            kind: EventType::Identify,
            purpose: Purpose::Analytics,
            event: None,
            name: None,
            previous_id: None,
            properties: None,
            traits,
        })
    }

    /// Queues an `alias` event linking the current identity to `new_id` (peppered like
    /// `identify`), and makes `new_id` the current user id.
    pub fn alias(&self, new_id: String) -> Result<bool> {
        let engine = self.live()?;
        let outbound = engine.outbound_user_id(&new_id)?;
        let previous = {
            let session = engine.session.read().expect("session lock");
            session
                .state
                .user_id
                .clone()
                .unwrap_or_else(|| session.anonymous_id.clone())
        };
        engine.set_user_id(Some(outbound))?;
        engine.record_event(NewEvent {
            kind: EventType::Alias,
            purpose: Purpose::Analytics,
            event: None,
            name: None,
            previous_id: Some(&previous),
            properties: None,
            traits: None,
        })
    }

    /// The install's `anonymousId` for this app.
    pub fn pseudonymous_id(&self) -> String {
        self.engine.anonymous_id()
    }

    /// Forgets the user: clears the user id and starts a new, unlinkable `anonymousId`.
    /// Consent stays as the user gave it (recorded anew for the new id).
    pub fn reset(&self) -> Result<()> {
        self.live()?.reset()
    }

    /// Uploads everything queued now, waiting for the collector. Returns what happened,
    /// or the error that stopped it (the entries stay queued for a later attempt).
    pub fn flush(&self) -> Result<FlushResult> {
        self.live()?.send_pending().map_err(|f| f.error)
    }

    /// Entries waiting for upload (events and consent records).
    pub fn queued_count(&self) -> u64 {
        self.engine.queued()
    }

    /// What was not delivered, by cause.
    pub fn stats(&self) -> ClientStats {
        let s = &self.engine.stats;
        ClientStats {
            dropped: s.dropped.load(Ordering::Relaxed),
            purged: s.purged.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            refused_no_consent: s.refused_no_consent.load(Ordering::Relaxed),
            corrupt_records: self.engine.corrupt_records,
            uploader_wakeups: self.engine.signal.lock().expect("signal lock").wakeups,
        }
    }

    /// Replaces the write key, resuming uploads paused by a 401 or 403.
    pub fn set_write_key(&self, write_key: String) -> Result<()> {
        self.live()?.set_write_key(&write_key)
    }

    /// Stops the uploader thread (after the attempt in progress, if any) and releases
    /// `storage_dir`. Queued entries stay on disk for the next start. Later calls fail
    /// with `ShutDown`.
    pub fn shutdown(&self) {
        let handle = self.uploader.lock().expect("uploader lock").take();
        if let Some(handle) = handle {
            self.engine.request_shutdown();
            let _ = handle.join();
            self.engine.close();
        }
    }
}

impl Drop for AssentClient {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// HMAC-SHA256 of the normalized user id under `pepper`, as lowercase hex: what
/// `identify` sends when a pepper is configured.
#[uniffi::export(name = "pseudonymize_user_id")]
pub fn pseudonymize_user_id_exported(pepper: String, user_id: String) -> Result<String> {
    pseudonymize_user_id(&pepper, &user_id)
}

/// The normalization applied to user ids before they are peppered.
#[uniffi::export(name = "normalize_user_id")]
pub fn normalize_user_id_exported(user_id: String) -> String {
    normalize_user_id(&user_id)
}
