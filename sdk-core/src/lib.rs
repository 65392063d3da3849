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

use assent_protocol::{EventType, Purpose, RecId, RECOMMENDATION_CLICKED, RECOMMENDATION_VIEWED};

mod clock;
mod consent;
mod engine;
mod error;
mod identity;
mod queue;
mod records;
mod serve;
mod storage;
mod transport;
mod upload;

pub use clock::{Clock, SystemClock};
pub use error::{AssentError, Result};
pub use identity::{normalize_user_id, pseudonymize_user_id};
pub use records::{ClientConfig, ClientStats, ConsentState, FlushResult};
pub use serve::{ContentDetails, FlagDetails};
pub use transport::{HttpRequest, HttpResponse, HttpTransport, UreqTransport};

use engine::{json_object, Engine, NewEvent};

uniffi::setup_scaffolding!();

/// The SDK: one per app (per `storage_dir`), shared across threads. Calls never wait
/// for the network, except `flush`, `flags` and `content`.
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

impl AssentClient {
    /// A feedback event of a recommendation list: the properties given, with `rec_id`
    /// (and `item_id`) set.
    fn feedback(
        &self,
        event: &str,
        rec_id: &str,
        item_id: Option<&str>,
        properties_json: &str,
    ) -> Result<bool> {
        let rec_id: RecId = rec_id.parse().map_err(|_| {
            AssentError::invalid_argument("rec_id is not a recId (NAME.VERSION.HASH)")
        })?;
        let mut properties: serde_json::Map<String, serde_json::Value> =
            match json_object(properties_json)? {
                Some(raw) => {
                    serde_json::from_str(raw.get()).map_err(|e| AssentError::InvalidJson {
                        reason: format!("line {} column {}", e.line(), e.column()),
                    })?
                }
                None => Default::default(),
            };
        properties.insert("rec_id".into(), rec_id.to_string().into());
        if let Some(item) = item_id {
            properties.insert("item_id".into(), item.into());
        }
        let text = serde_json::Value::Object(properties).to_string();
        self.live()?.record_event(NewEvent {
            kind: EventType::Track,
            purpose: Purpose::Analytics,
            event: Some(event),
            name: None,
            previous_id: None,
            properties: json_object(&text)?,
            traits: None,
        })
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

    /// Queues the impression of a recommendation list (`Recommendation Viewed`, purpose
    /// `analytics`): `rec_id` is the `recId` of the collector's answer, so the view
    /// counts for the model version that ranked the list; `properties_json` (an object,
    /// or empty) adds to it, e.g. the `slot`. An id that is not `NAME.VERSION.HASH` is an
    /// `InvalidArgument` and nothing is stored. Returns false when `analytics` is not
    /// granted.
    pub fn recommendation_viewed(&self, rec_id: String, properties_json: String) -> Result<bool> {
        self.feedback(RECOMMENDATION_VIEWED, &rec_id, None, &properties_json)
    }

    /// Queues a click on `item_id` in the list `rec_id` (`Recommendation Clicked`, purpose
    /// `analytics`), checked as [`AssentClient::recommendation_viewed`]; an empty
    /// `item_id` is an `InvalidArgument`.
    pub fn recommendation_clicked(
        &self,
        rec_id: String,
        item_id: String,
        properties_json: String,
    ) -> Result<bool> {
        if item_id.trim().is_empty() {
            return Err(AssentError::invalid_argument("item_id must not be empty"));
        }
        self.feedback(
            RECOMMENDATION_CLICKED,
            &rec_id,
            Some(&item_id),
            &properties_json,
        )
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

    /// Every feature flag for this install, as the collector evaluates them (targeting,
    /// rollouts, experiments), by flag key. Blocking: call it off the UI thread. The
    /// install's id goes in the request's body only once the user answered the consent
    /// question. Errors: `Network` (no answer, or not the collector's), `Unauthorized`.
    pub fn flags(&self) -> Result<HashMap<String, FlagDetails>> {
        self.live()?.fetch_flags()
    }

    /// The variant of content slot `slot` for this install, as the collector chooses it
    /// (experiment, targeting, default; the fallback until the user grants
    /// `personalization`). Blocking: call it off the UI thread. The install's id goes in
    /// the request's body only once the user answered the consent question. Errors:
    /// `InvalidArgument` (a malformed slot name, or a slot the collector does not have),
    /// `Network`, `Unauthorized`.
    pub fn content(&self, slot: String) -> Result<ContentDetails> {
        self.live()?.fetch_content(&slot)
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
