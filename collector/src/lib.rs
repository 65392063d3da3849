//! Assent collector: receives batches of events and consent records over HTTP, enforces
//! consent again, pseudonymizes identifiers, stores everything durably (SQLite by default,
//! PostgreSQL for many replicas), and keeps a tamper-evident audit trail.
//!
//! `main.rs` only parses the command line; everything is here, so tests use it directly.
pub mod audit;
pub mod cli;
pub mod config;
pub mod consent_cache;
pub mod db;
pub mod error;
pub mod export;
pub mod extract;
pub mod http;
pub mod ingest;
pub mod keys;
pub mod metrics;
pub mod proxy;
pub mod pseudonym;
pub mod ratelimit;
pub mod retention;
pub mod sdk_files;
pub mod serve;
pub mod sources;
pub mod subject_index;
pub mod subjects;
pub mod writer;

/// A hash map with a fast, per-process seeded hasher (foldhash), for the maps ingest builds
/// on every request from the ids in it; std's SipHash was a few percent of ingest.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::http::{header, HeaderMap};
use sqlx::Row;
use tokio::net::TcpListener;

pub use config::Config;
pub use error::{Error, Result};

/// The OpenAPI document as written (`collector/openapi.json`); [`openapi`] is what is
/// served.
pub const OPENAPI: &str = include_str!("../openapi.json");

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

/// Where the collector reads the time, so tests can set it.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// What every request handler shares.
pub struct AppState {
    pub config: Config,
    pub db: db::Db,
    pub pseudonymizer: pseudonym::Pseudonymizer,
    pub metrics: metrics::Metrics,
    pub clock: Arc<dyn Clock>,
    pub writer: writer::Writer,
    /// Subjects' consent records in memory (SQLite).
    pub consent_cache: consent_cache::ConsentCache,
    /// The web banner's bundle, served at `/sdk/`.
    pub sdk: sdk_files::SdkFiles,
    /// Each source's allowed browser origins and consent scope, refreshed periodically.
    pub sources: sources::Sources,
    /// The last verification of the stored audit chain (reused for a while).
    pub verify_cache: export::VerifyCache,
    /// How keys are digested for storage and lookup.
    pub key_digests: keys::KeyDigests,
    /// Budgets counted in consent records, per source and per client.
    pub record_limits: ratelimit::RecordLimits,
    /// The request limiters, once the router is built (their sizes, for tests).
    pub limiters: std::sync::OnceLock<ratelimit::Sizes>,
    /// Recently seen valid keys (by hash), so most requests skip the key lookup.
    keys: std::sync::Mutex<HashMap<String, (db::Caller, std::time::Instant)>>,
}

/// How long a valid key is trusted without asking the database again. A revocation takes
/// effect at once on the replica that made it, and within this time on the others.
pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl AppState {
    pub async fn open(config: Config, clock: Arc<dyn Clock>) -> Result<AppState> {
        let db = db::Db::connect(config.database_url.expose()).await?;
        db.migrate().await?;
        let key = db.pseudonym_key(&config, clock.now_ms()).await?;
        let key_secret = match &config.key_digest_secret {
            Some(s) => s.clone(),
            None => {
                db.server_secret("key_digest_secret", clock.now_ms())
                    .await?
            }
        };
        let previous = match &config.previous_pseudonym_keys {
            Some(list) => pseudonym::parse_key_list(list.expose()).map_err(Error::Config)?,
            None => Vec::new(),
        };
        let pseudonymizer = pseudonym::Pseudonymizer::new(config.pseudonym_key_id.clone(), key)
            .with_previous(previous);
        let writer = writer::Writer::start(
            db.clone(),
            pseudonymizer.clone(),
            config.audit_checkpoint_every,
        );
        let sdk = sdk_files::SdkFiles::load(&config.sdk_dir)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", config.sdk_dir.display())))?;
        let state = AppState {
            record_limits: ratelimit::RecordLimits::new(&config),
            key_digests: keys::KeyDigests::new(key_secret),
            verify_cache: Default::default(),
            limiters: Default::default(),
            consent_cache: consent_cache::ConsentCache::new(db.backend),
            sdk,
            config,
            db,
            pseudonymizer,
            metrics: Default::default(),
            clock,
            writer,
            sources: Default::default(),
            keys: Default::default(),
        };
        state.refresh_sources().await?;
        state.note_key_rotation().await?;
        Ok(state)
    }

    /// When the pseudonymization key in use changed since the last start, the change goes
    /// into the audit trail (once, whichever replica sees it first).
    async fn note_key_rotation(&self) -> Result<()> {
        let mut w = self.db.write().await?;
        w.lock_audit_chain().await?;
        let current = self.pseudonymizer.key_id().to_owned();
        let recorded: Option<String> =
            sqlx::query("SELECT value FROM server_secrets WHERE name = 'pseudonym_key_in_use'")
                .fetch_optional(&mut *w.tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
        match recorded {
            Some(id) if id == current => return Ok(()),
            Some(previous) => {
                sqlx::query(
                    "UPDATE server_secrets SET value = $1 WHERE name = 'pseudonym_key_in_use'",
                )
                .bind(&current)
                .execute(&mut *w.tx)
                .await?;
                let entry = audit::NewEntry {
                    kind: "key_rotation",
                    actor: "server".into(),
                    subject: None,
                    data: serde_json::json!({"from": previous, "to": current}),
                };
                self.audit(&mut w, entry).await?;
            }
            None => {
                sqlx::query("INSERT INTO server_secrets (name, value, created_at_ms) VALUES ('pseudonym_key_in_use', $1, $2)")
                    .bind(&current)
                    .bind(self.clock.now_ms())
                    .execute(&mut *w.tx)
                    .await?;
            }
        }
        w.commit().await
    }

    /// Appends one entry to the audit trail inside `w`, at the current time, signing a
    /// checkpoint when one falls due.
    pub async fn audit(&self, w: &mut db::WriteTx, entry: audit::NewEntry) -> Result<()> {
        audit::append(
            w,
            vec![entry],
            self.clock.now_ms(),
            &self.pseudonymizer,
            self.config.audit_checkpoint_every,
        )
        .await
        .map(|_| ())
    }

    /// The caller a raw key stands for, from the cache when it is fresh.
    pub async fn find_key(&self, raw: &str) -> Result<Option<db::Caller>> {
        let hash = self.key_digests.digest(raw);
        if let Some((caller, at)) = self.keys.lock().expect("key cache").get(&hash) {
            if at.elapsed() < KEY_CACHE_TTL {
                return Ok(Some(caller.clone()));
            }
        }
        let found = keys::find(&self.db, &self.key_digests, raw).await?;
        let mut cache = self.keys.lock().expect("key cache");
        match &found {
            Some(caller) => {
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(hash, (caller.clone(), std::time::Instant::now()));
            }
            None => {
                cache.remove(&hash);
            }
        }
        Ok(found)
    }

    /// Forgets cached keys (after a revocation here).
    pub fn forget_keys(&self) {
        self.keys.lock().expect("key cache").clear();
    }

    /// Reads the sources again (origins, consent scopes); a change of consent scopes
    /// drops the consent cache, whose entries are filed by scope.
    pub async fn refresh_sources(&self) -> Result<()> {
        if self.sources.refresh(&self.db).await? {
            self.consent_cache.clear();
        }
        Ok(())
    }

    /// The id of the source named `id_or_name` (its id or its name).
    pub async fn find_source(&self, id_or_name: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT id FROM sources WHERE id = $1 OR name = $1")
            .bind(id_or_name)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// A browser request (it has an `Origin`) must come from an origin its source allows.
    pub async fn check_origin(&self, source_id: &str, headers: &HeaderMap) -> Result<()> {
        let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
            return Ok(());
        };
        if self.sources.origin_allowed(source_id, origin) {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }
}

/// A built collector: bound to its port, ready to serve.
pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
}

impl Application {
    /// Connects, migrates, bootstraps and binds (`bind` port 0 picks a free port).
    pub async fn build(config: Config) -> Result<Application> {
        Application::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<Application> {
        let bind = config.bind;
        let state = Arc::new(AppState::open(config, clock).await?);
        if let Some((write, admin)) = keys::bootstrap(&state).await? {
            state.refresh_sources().await?;
            let generated = state.config.bootstrap_write_key.is_none()
                || state.config.bootstrap_admin_token.is_none();
            if generated {
                // Shown once, on the terminal that started the first run; never logged.
                println!("First start: created the `default` source.");
                if state.config.bootstrap_write_key.is_none() {
                    println!("  write key:        {}", write.raw);
                }
                if state.config.bootstrap_admin_token.is_none() {
                    println!("  compliance token: {}", admin.raw);
                }
                println!("Keep them: they are stored only as hashes and will not be shown again.");
            }
        }
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|e| Error::Config(format!("cannot bind {bind}: {e}")))?;
        Ok(Application { listener, state })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// The routes behind the rate limits; the client address is set by `serve`.
    pub fn router(state: Arc<AppState>) -> axum::Router {
        let config = state.config.clone();
        let (router, sizes) = ratelimit::apply(http::router(state.clone()), &config);
        let _ = state.limiters.set(sizes);
        router
    }

    /// Serves until Ctrl-C or SIGTERM, with the retention job running beside.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let state = self.state.clone();
        tokio::spawn(retention::run(state.clone()));
        spawn_every(
            state.clone(),
            ORIGINS_REFRESH,
            "allowed origins refresh",
            |s| async move { s.refresh_sources().await },
        );
        if state.db.backend == db::Backend::Sqlite {
            spawn_every(
                state.clone(),
                CHECKPOINT_EVERY,
                "WAL checkpoint",
                |s| async move { s.db.checkpoint().await },
            );
        }
        spawn_every(
            state.clone(),
            std::time::Duration::from_secs(60),
            "record limits upkeep",
            |s| async move {
                s.record_limits.retain_recent();
                Ok(())
            },
        );
        let proxies = proxy::TrustedProxies::new(
            state
                .config
                .proxies()
                .map_err(|e| std::io::Error::other(e.to_string()))?,
        );
        let limits = serve::Limits::from_config(&state.config);
        let app = Application::router(state);
        let dir = self.state.config.sdk_dir.display();
        if self.state.sdk.is_empty() {
            tracing::warn!(%dir, "no banner bundle found; /sdk/ answers 404 (build it with `make ui`)");
        } else {
            tracing::info!(files = self.state.sdk.len(), %dir, "serving the banner bundle at /sdk/");
        }
        tracing::info!(port = self.port(), backend = ?self.state.db.backend, "collector listening");
        serve::serve(self.listener, app, limits, proxies, shutdown_signal()).await;
        Ok(())
    }
}

/// How soon a source's new allowed origins (set by `keys create --origins` on any
/// replica) take effect everywhere.
pub const ORIGINS_REFRESH: std::time::Duration = std::time::Duration::from_secs(30);

/// How often SQLite's WAL is copied into the database, beside the writer.
pub const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Runs `job` every `period` (the first time one period after start) until the process
/// ends; a failure is logged and the job tried again at the next tick.
fn spawn_every<F, Fut>(
    state: Arc<AppState>,
    period: std::time::Duration,
    what: &'static str,
    job: F,
) where
    F: Fn(Arc<AppState>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = job(state.clone()).await {
                tracing::warn!(error = %e, "{what} failed; will retry");
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
