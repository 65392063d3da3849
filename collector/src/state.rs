//! What request handlers share: each domain's state, built once here from the
//! configuration, and handed to each handler as the narrow part it needs (axum's
//! `FromRef`): a handler that ingests takes [`Ingest`], one that reads the database
//! only takes [`storage::Db`], and none reaches into another domain's parts.
use std::sync::Arc;

use axum::extract::FromRef;

pub use crate::clock::{Clock, SystemClock};
use crate::{
    audit::{self, Trail},
    config::Config,
    consent::cache::ConsentCache,
    error::{Error, Result},
    experiments::Experiments,
    ingest::Ingest,
    keys::{self, Keys},
    metrics::Metrics,
    pseudonym::{self, Pseudonymizer},
    recommend::{
        cache::{self, Answers},
        interactions::Weights,
        DriftSettings, Recommendations,
    },
    segments::Segments,
    storage::{self, Db},
    subjects::Subjects,
};

/// Every domain's state, for the router, the background tasks and the command line.
/// Cheap to clone (the router holds one).
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub pseudonymizer: Arc<Pseudonymizer>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// Appends to the audit trail and reads it back.
    pub trail: Arc<Trail>,
    /// Keys and sources.
    pub keys: Arc<Keys>,
    /// Batches and consent records in, through the writer.
    pub ingest: Arc<Ingest>,
    /// Subject access, erasure and retention.
    pub subjects: Arc<Subjects>,
    /// Segmentation profiles, read back.
    pub segments: Arc<Segments>,
    /// Recommenders, the catalogue, rankings.
    pub recommendations: Arc<Recommendations>,
    /// Content slots, flags and experiments.
    pub experiments: Arc<Experiments>,
    /// The country of an address, from the configured database.
    pub geo: Arc<crate::geo::Geo>,
    /// Subjects' consent records in memory (ingest reads through it).
    pub consent_cache: Arc<ConsentCache>,
}

macro_rules! narrow_state {
    ($($part:ty => $field:ident),* $(,)?) => {$(
        impl FromRef<AppState> for $part {
            fn from_ref(state: &AppState) -> $part {
                state.$field.clone()
            }
        }
    )*};
}

narrow_state!(
    Db => db,
    Arc<Trail> => trail,
    Arc<Keys> => keys,
    Arc<Ingest> => ingest,
    Arc<Subjects> => subjects,
    Arc<Segments> => segments,
    Arc<Recommendations> => recommendations,
    Arc<Experiments> => experiments,
    Arc<crate::geo::Geo> => geo,
    Arc<Config> => config,
    Arc<dyn Clock> => clock,
    Arc<Pseudonymizer> => pseudonymizer,
);

impl AppState {
    pub async fn open(config: Config, clock: Arc<dyn Clock>) -> Result<AppState> {
        let config = Arc::new(config);
        let db = Db::connect(config.database_url.expose()).await?;
        db.migrate().await?;
        let key = storage::secrets::pseudonym_key(&db, &config, clock.now()).await?;
        let key_secret = match &config.key_digest_secret {
            Some(s) => s.clone(),
            None => storage::secrets::server_secret(&db, "key_digest_secret", clock.now()).await?,
        };
        let previous = match &config.previous_pseudonym_keys {
            Some(list) => pseudonym::parse_key_list(list.expose()).map_err(Error::Config)?,
            None => Vec::new(),
        };
        let pseudonymizer =
            Pseudonymizer::new(config.pseudonym_key_id.clone(), key).with_previous(previous);
        let origin = storage::secrets::audit_origin(&db, &config, clock.now()).await?;
        if !audit::note::valid_name(&origin) {
            return Err(Error::Config(
                "audit_origin must be non-empty, without spaces or '+'".into(),
            ));
        }
        let signer = audit::note::NoteSigner::new(
            &origin,
            &storage::secrets::audit_signing_seed(&db, &config, clock.now()).await?,
        );
        let trail = Trail::new(
            db.clone(),
            pseudonymizer.clone(),
            signer,
            config.audit_checkpoint_every,
            clock.clone(),
        );
        trail.publish_key().await?;
        let keys = Arc::new(Keys::new(trail.clone(), keys::KeyDigests::new(key_secret)));
        let consent_cache = Arc::new(ConsentCache::new(config.consent_cache));
        let metrics = Arc::new(Metrics::default());
        let ingest = Arc::new(Ingest::new(
            &config,
            &trail,
            pseudonymizer.clone(),
            consent_cache.clone(),
            keys.sources.clone(),
            metrics.clone(),
            clock.clone(),
        ));
        let subjects = Arc::new(Subjects::new(
            trail.clone(),
            pseudonymizer.clone(),
            config.clone(),
        ));
        let pseudonymizer = Arc::new(pseudonymizer);
        let currencies = match config.segmentation_currency.as_str() {
            "" => None,
            base => Some(
                assent_segmentation::normalize::Currencies::parse(
                    base,
                    &config.segmentation_currency_rates,
                )
                .map_err(|e| Error::Config(format!("ASSENT_SEGMENTATION_CURRENCY: {e}")))?,
            ),
        };
        let segments = Arc::new(Segments::new(
            trail.clone(),
            pseudonymizer.clone(),
            config.segmentation,
            currencies,
            assent_segmentation::profile::Vocabulary {
                interest_half_life_days: f64::from(
                    config.segmentation_interest_half_life_days.max(1),
                ),
                ..Default::default()
            },
        ));
        let experiments = Arc::new(Experiments::new(
            db.clone(),
            pseudonymizer.clone(),
            segments.clone(),
            clock.clone(),
        ));
        let recommendations = Arc::new(Recommendations::new(
            trail.clone(),
            pseudonymizer.clone(),
            (segments.clone(), experiments.clone()),
            Weights::parse(&config.recommendation_weights)?,
            match &config.redis_url {
                Some(url) => Answers::Redis(cache::Redis::new(
                    url.expose(),
                    config.recommendation_cache_secs,
                )?),
                None => Answers::Memory(cache::Cache::new(config.recommendation_cache_entries)),
            },
            DriftSettings {
                threshold: config.recommendation_drift_threshold,
                min_samples: config.recommendation_drift_min_samples,
            },
            f64::from(config.segmentation_interest_half_life_days.max(1)),
        ));

        let geo = Arc::new(crate::geo::Geo::open(config.geoip_database.as_deref())?);
        let state = AppState {
            geo,
            segments,
            recommendations,
            experiments,
            trail: Arc::new(trail),
            keys,
            ingest,
            subjects,
            consent_cache,
            config,
            db,
            pseudonymizer,
            metrics,
            clock,
        };
        state.keys.refresh_sources().await?;
        state.note_key_rotation().await?;
        Ok(state)
    }

    /// When the pseudonymization key in use changed since the last start, the change goes
    /// into the audit trail (once, whichever replica sees it first).
    async fn note_key_rotation(&self) -> Result<()> {
        let mut w = self.db.write().await?;
        w.lock_audit_chain().await?;
        let current = self.pseudonymizer.key_id().to_owned();
        let recorded = storage::secrets::key_in_use(&mut w).await?;
        if recorded.as_deref() == Some(current.as_str()) {
            return Ok(());
        }
        storage::secrets::set_key_in_use(&mut w, &current, self.clock.now()).await?;
        if let Some(previous) = recorded {
            let entry = audit::NewEntry {
                kind: audit::Kind::KeyRotation,
                actor: "server".into(),
                subject: None,
                data: serde_json::json!({"from": previous, "to": current}),
            };
            self.trail.record(&mut w, entry).await?;
        }
        w.commit().await
    }
}
