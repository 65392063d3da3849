//! What every request handler shares: configuration, storage, the pseudonymizer, caches,
//! limits and the clock.
use std::{collections::HashMap, sync::Arc};

use axum::http::{header, HeaderMap};
use sqlx::Row;

pub use crate::clock::{Clock, SystemClock};
use crate::{
    audit,
    config::Config,
    consent,
    error::{Error, Result},
    http, keys, metrics, pseudonym, storage,
};

/// What every request handler shares.
pub struct AppState {
    pub config: Config,
    pub db: storage::Db,
    pub pseudonymizer: pseudonym::Pseudonymizer,
    pub metrics: metrics::Metrics,
    pub clock: Arc<dyn Clock>,
    pub writer: storage::writer::Writer,
    /// Subjects' consent records in memory.
    pub consent_cache: consent::cache::ConsentCache,
    /// The web banner's bundle, served at `/sdk/`.
    pub sdk: http::sdk_files::SdkFiles,
    /// Each source's allowed browser origins and consent scope, refreshed periodically.
    pub sources: keys::sources::Sources,
    /// The last verification of the stored audit chain (reused for a while).
    pub verify_cache: audit::export::VerifyCache,
    /// How keys are digested for storage and lookup.
    pub key_digests: keys::KeyDigests,
    /// Budgets counted in consent records, per source and per client.
    pub record_limits: http::ratelimit::RecordLimits,
    /// The request limiters, once the router is built (their sizes, for tests).
    pub limiters: std::sync::OnceLock<http::ratelimit::Sizes>,
    /// Recently seen valid keys (by hash), so most requests skip the key lookup.
    keys: std::sync::Mutex<HashMap<String, (storage::Caller, std::time::Instant)>>,
}

/// The narrow states handlers take instead of the whole `AppState` (axum's `FromRef`):
/// a handler that only reads the database, or only serves the banner's files, says so in
/// its signature.
impl axum::extract::FromRef<Arc<AppState>> for storage::Db {
    fn from_ref(state: &Arc<AppState>) -> storage::Db {
        state.db.clone()
    }
}

impl axum::extract::FromRef<Arc<AppState>> for http::sdk_files::SdkFiles {
    fn from_ref(state: &Arc<AppState>) -> http::sdk_files::SdkFiles {
        state.sdk.clone()
    }
}

/// How long a valid key is trusted without asking the database again. A revocation takes
/// effect at once on the replica that made it, and within this time on the others.
pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl AppState {
    pub async fn open(config: Config, clock: Arc<dyn Clock>) -> Result<AppState> {
        let db = storage::Db::connect(config.database_url.expose()).await?;
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
        let writer = storage::writer::Writer::start(
            db.clone(),
            pseudonymizer.clone(),
            config.audit_checkpoint_every,
        );
        let sdk = http::sdk_files::SdkFiles::load(&config.sdk_dir)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", config.sdk_dir.display())))?;
        let state = AppState {
            record_limits: http::ratelimit::RecordLimits::new(&config),
            key_digests: keys::KeyDigests::new(key_secret),
            verify_cache: Default::default(),
            limiters: Default::default(),
            consent_cache: consent::cache::ConsentCache::new(config.consent_cache),
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
                    kind: audit::Kind::KeyRotation,
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
    pub async fn audit(&self, w: &mut storage::WriteTx, entry: audit::NewEntry) -> Result<()> {
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
    pub async fn find_key(&self, raw: &str) -> Result<Option<storage::Caller>> {
        let hash = self.key_digests.digest(raw);
        if let Some((caller, at)) = self.keys.lock().expect("key cache").get(&hash) {
            if at.elapsed() < KEY_CACHE_TTL {
                return Ok(Some(caller.clone()));
            }
        }
        let found = keys::find(&self.db, &hash, raw).await?;
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
