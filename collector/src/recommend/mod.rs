//! Recommendations: ranked items from consented interactions.
//!
//! A subject's interactions are the events of their profile at a source (what the
//! segmentation consumer keeps from the feed for subjects who granted
//! `personalization`, deleted on a withdrawal or an erasure, merged by identify and
//! alias): each event naming an item counts with its weight ([`interactions`]).
//! A recommender is named per source and trained on every profile there
//! ([`Recommendations::train`]): a held-out 20 % of the pairs judges it beside
//! popularity and the active version (trained again on the same split), and it becomes
//! active only if not worse ([`crate::versions`]). Serving folds the subject's current
//! history into the active model (no retraining for users new since training), leaves
//! out what they already have, unavailable items, items not for their country or
//! device, and what the request excludes; a subject without `personalization` consent
//! gets the popular items (never a personalized ranking), a subject with no history the
//! popular items, a sparse profile a blend with popularity — for these two, the popular
//! items of their segment or the request's context when known. Answers are cached by
//! everything they depend on ([`cache`]). `offline` evaluates models on a plain file.
pub mod cache;
pub mod feedback;
pub mod interactions;
pub mod offline;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use assent_recommendation::{
    drift::{Bins, Monitor},
    hybrid::Blend,
    metrics::{evaluate, Protocol, Report as Metrics},
    model::{Model, ModelSpec},
    popularity::Popularity,
    rank::top_k,
    split::{self, Interaction},
    vocab::Vocabulary,
    Exclude, History, Scorer,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{
    audit::{self, NewEntry, Trail},
    error::{Error, Result},
    experiments::Experiments,
    ids::{Pseudonym, SourceId, UnixMs},
    keys::sources::ConsentScope,
    pseudonym::Pseudonymizer,
    segments::{name_ok, Segments, NAME_RULE},
    storage::{
        self,
        catalog::StoredItem,
        models::{Registry, StoredModel},
        Db,
    },
    versions,
};

use interactions::Weights;

/// The purpose a personalized ranking needs.
const PURPOSE: &str = "personalization";

/// Fewer interactions than this make a sparse profile: its ranking is blended with
/// popularity.
pub const SPARSE_BELOW: usize = 3;

/// How long a server trusts the active version and the catalogue it holds before
/// asking the database again (another replica may have promoted or changed them).
const RECHECK: Duration = Duration::from_secs(1);

/// Popular items kept with a model, for fallbacks.
const POPULAR_KEPT: usize = 1000;

/// Popular items kept per group (segment, country, device type), the groups kept (the
/// largest), and the users a group needs for its own list: a smaller group's favourites
/// would say more about a few people than about the group.
const GROUP_KEPT: usize = 200;
const MAX_GROUPS: usize = 300;
const MIN_GROUP_USERS: usize = 20;

fn country_key(c: &str) -> String {
    format!("country:{}", c.to_ascii_uppercase())
}

fn device_key(d: &str) -> String {
    format!("device:{}", d.to_ascii_lowercase())
}

/// The K of the held-out metrics in training reports.
const REPORT_K: usize = 10;

/// The largest catalogue an EASE recommender may be stored for: its weights are
/// items × items numbers (2,000 items: 4 million).
pub const EASE_MAX_ITEMS: usize = 2_000;

/// Largest K a request may ask for.
pub const MAX_K: usize = 200;

/// A recommender's spec as stored and as the API takes it: the model and how it is
/// judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Training {
    pub model: ModelSpec,
    #[serde(default)]
    pub seed: u64,
    /// The share of (user, item) pairs held out to judge it.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
}

fn default_test_fraction() -> f64 {
    0.2
}

impl Training {
    /// Parses a training request, naming its fault.
    pub fn parse(body: &Value) -> Result<Training> {
        let t: Training = serde_json::from_value(body.clone())
            .map_err(|e| Error::BadRequest(format!("training: {e}")))?;
        t.model
            .check()
            .map_err(|e| Error::BadRequest(format!("training: {e}")))?;
        if !(t.test_fraction > 0.0 && t.test_fraction < 1.0) {
            return Err(Error::BadRequest(
                "training: testFraction must be strictly between 0 and 1".into(),
            ));
        }
        Ok(t)
    }
}

/// What is stored of a trained version: everything serving needs.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    items: Vocabulary,
    model: Model,
    /// The most popular items, best first (index, users).
    popular: Vec<(u32, f32)>,
    /// The training window's histograms of what drift is watched on: each user's
    /// number of items (`history_length`) and the best score served (`top_score`).
    #[serde(default)]
    drift: Vec<(String, Bins)>,
    /// Popular items per group (`segment:NAME`, `country:XX`, `device:TYPE`): its
    /// number of users and its items best first (index, users).
    #[serde(default)]
    groups: BTreeMap<String, (u32, Vec<(u32, f32)>)>,
}

/// A recommender's active version in memory.
struct Loaded {
    version: i64,
    checked: Mutex<Instant>,
    stored: Stored,
    popularity: Popularity,
    /// Live values against `stored.drift`, since this version was loaded here.
    monitors: Mutex<Vec<(String, Monitor)>>,
}

/// What a source's catalogue says of which items may be shown, by item id.
struct Catalog {
    version: (i64, i64),
    /// Items that must not be shown (sorted).
    unavailable: Vec<String>,
    /// Items only for some countries or devices.
    restricted: HashMap<String, (Vec<String>, Vec<String>)>,
    /// When the database last said this is the catalogue's version.
    checked: Mutex<Instant>,
}

/// A recommendation request beyond the subject.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    pub k: usize,
    pub slot: Option<String>,
    /// The recommender's name.
    pub model: String,
    /// Items the caller rules out (business rules).
    pub exclude: Vec<String>,
    /// Keep items the subject already has.
    pub include_consumed: bool,
    /// The request's context: an ISO 3166-1 alpha-2 country, a device type.
    pub country: Option<String>,
    pub device: Option<String>,
}

/// One ranked item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub item: String,
    pub score: f32,
}

/// Why a list is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// From the subject's history.
    Personalized,
    /// From a short history, blended with popularity.
    SparseProfile,
    /// No history yet: the popular items.
    NewUser,
    /// No `personalization` consent: the popular items.
    NoConsent,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Personalized => "personalized",
            Reason::SparseProfile => "sparse_profile",
            Reason::NewUser => "new_user",
            Reason::NoConsent => "no_consent",
        }
    }
}

/// A ranking as served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    pub items: Vec<Scored>,
    pub model: Value,
    /// Names this list: impressions and clicks that carry it tie back to the version.
    pub rec_id: String,
    /// Whether the ranking used the subject's history.
    pub personalized: bool,
    /// Why the list is what it is.
    pub reason: Reason,
    /// Whose popular items the list used, when it used any: `overall`, or the subject's
    /// `segment` (its name is not told), the request's `country` or `device`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub popularity: Option<String>,
    pub slot: Option<String>,
}

/// A live comparison of versions: a share of the subjects (by a deterministic hash of
/// their pseudonym and the recommender's name, so each stays on one side) served by
/// another version than the active one; their lists' `recId`s name it, so the feedback
/// per version compares the two.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Split {
    pub version: i64,
    /// In `[0, 1]`; 0 ends the comparison.
    pub share: f64,
}

fn split_setting(key: &str) -> String {
    format!("recommender_split:{key}")
}

/// Where a subject falls in `[0, 1)` for a recommender's split.
fn bucket(pseudonym: &str, key: &str) -> f64 {
    let mut h = Sha256::new();
    h.update(pseudonym.as_bytes());
    h.update([0x1f]);
    h.update(key.as_bytes());
    let d = h.finalize();
    let n = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
    (n >> 11) as f64 / (1u64 << 53) as f64
}

/// A version as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    pub name: String,
    pub source: String,
    pub version: i64,
    pub status: String,
    pub training: Value,
    pub report: Value,
    pub trained_at: String,
    pub promoted_at: Option<String>,
}

/// What training reports as it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Profiles read so far.
    Read(u64),
    /// Reading done; fitting and judging.
    Fitting,
}

/// When live distributions count as drifted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftSettings {
    /// `KL(live ‖ training)` in nats above which retraining is due.
    pub threshold: f64,
    /// Live values needed before a divergence is reported.
    pub min_samples: u64,
}

/// A drift reading of one signal of one recommender.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftReading {
    /// `SOURCE/NAME`.
    pub recommender: String,
    pub signal: String,
    pub observed: u64,
    pub divergence: Option<f64>,
    pub due: bool,
}

/// The recommendations domain's state.
pub struct Recommendations {
    drift: DriftSettings,
    /// The half-life of an interaction's weight in a content model's interest vector.
    interest_half_life_ms: f64,
    db: Db,
    trail: Trail,
    pseudonymizer: Arc<Pseudonymizer>,
    segments: Arc<Segments>,
    /// Experiments on recommenders choose a subject's version.
    experiments: Arc<Experiments>,
    weights: Weights,
    loaded: Mutex<HashMap<String, Arc<Loaded>>>,
    /// Held while a version is read from the database and parsed, so concurrent
    /// requests wait for one load rather than each doing it.
    loading: tokio::sync::Mutex<()>,
    catalogs: Mutex<HashMap<SourceId, Arc<Catalog>>>,
    /// Each recommender's split as last read, and when.
    splits: Mutex<HashMap<String, (Instant, Option<Split>)>>,
    cache: cache::Answers<Answer>,
}

impl std::fmt::Debug for Recommendations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recommendations").finish_non_exhaustive()
    }
}

fn key_of(source: &SourceId, name: &str) -> String {
    format!("{source}/{name}")
}

fn iso(ms: i64) -> String {
    UnixMs::from_millis(ms).to_string()
}

fn version_of(m: StoredModel) -> Version {
    let json = |text: &str| serde_json::from_str(text).unwrap_or(Value::Null);
    let (source, name) = m.name.split_once('/').unwrap_or(("", &m.name));
    Version {
        name: name.to_owned(),
        source: source.to_owned(),
        training: json(&m.spec),
        report: json(&m.report),
        version: m.version,
        status: m.status,
        trained_at: iso(m.trained_at_ms),
        promoted_at: m.promoted_at_ms.map(iso),
    }
}

fn bad(e: assent_recommendation::Error) -> Error {
    Error::BadRequest(e.to_string())
}

fn metrics_json(r: &Metrics) -> Value {
    json!({"ndcg": r.ndcg, "precision": r.precision, "recall": r.recall, "map": r.map,
           "coverage": r.coverage, "users": r.users, "k": r.k})
}

/// Everything a training reads: each user's items and weights, in item indexes.
struct Dataset {
    items: Vocabulary,
    users: usize,
    interactions: Vec<Interaction>,
    /// The users (rows) of each group popularity is counted for: `segment:NAME` (the
    /// audience's members), `country:XX` and `device:TYPE` (users with an interaction
    /// there).
    groups: BTreeMap<String, Vec<u32>>,
}

impl Recommendations {
    pub fn new(
        trail: Trail,
        pseudonymizer: Arc<Pseudonymizer>,
        (segments, experiments): (Arc<Segments>, Arc<Experiments>),
        weights: Weights,
        cache: cache::Answers<Answer>,
        drift: DriftSettings,
        interest_half_life_days: f64,
    ) -> Recommendations {
        Recommendations {
            drift,
            interest_half_life_ms: interest_half_life_days.max(1.0 / 24.0) * 86_400_000.0,
            db: trail.db().clone(),
            trail,
            pseudonymizer,
            segments,
            experiments,
            weights,
            loaded: Mutex::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
            catalogs: Mutex::new(HashMap::new()),
            splits: Mutex::new(HashMap::new()),
            cache,
        }
    }

    /// Online feedback of recommender `name` at `source`, by version: impressions,
    /// clicks and conversions of its lists (counted from the feed), and their rates.
    pub async fn feedback(&self, source: &SourceId, name: &str) -> Result<Value> {
        let rows = storage::feedback::of(&self.db, &key_of(source, name)).await?;
        let versions: Vec<Value> = rows
            .into_iter()
            .map(|(version, impressions, clicks, conversions)| {
                let rate = |n: i64| (impressions > 0).then(|| n as f64 / impressions as f64);
                json!({"version": version, "impressions": impressions, "clicks": clicks,
                       "conversions": conversions, "ctr": rate(clicks),
                       "conversionRate": rate(conversions)})
            })
            .collect();
        Ok(json!({"name": name, "source": source, "versions": versions}))
    }

    /// Drift of every recommender loaded here: each signal's divergence from its
    /// training window so far, and whether retraining is due.
    pub fn drift_readings(&self) -> Vec<DriftReading> {
        let loaded = self.loaded.lock().expect("not poisoned");
        let mut out = Vec::new();
        for (key, l) in loaded.iter() {
            for (signal, m) in l.monitors.lock().expect("not poisoned").iter() {
                out.push(DriftReading {
                    recommender: key.clone(),
                    signal: signal.clone(),
                    observed: m.observed(),
                    divergence: m.divergence(),
                    due: m.due(),
                });
            }
        }
        out.sort_by(|a, b| (&a.recommender, &a.signal).cmp(&(&b.recommender, &b.signal)));
        out
    }

    /// Cache hits, misses and failures so far.
    pub fn cache_stats(&self) -> (u64, u64, u64) {
        self.cache.stats()
    }

    async fn dataset(
        &self,
        source: &SourceId,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Dataset> {
        let mut items = Vocabulary::new();
        let mut interactions = Vec::new();
        let mut users = 0usize;
        let mut audiences: HashMap<Pseudonym, Vec<String>> = HashMap::new();
        for (audience, subject) in storage::audiences::memberships_at(&self.db, source).await? {
            audiences.entry(subject).or_default().push(audience);
        }
        let mut groups: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        self.segments
            .for_each_profile_at(source, |subject, events| {
                let history = interactions::history(&events, &self.weights);
                if history.is_empty() {
                    return Ok(());
                }
                let mut keys: BTreeSet<String> = audiences
                    .get(&subject)
                    .into_iter()
                    .flatten()
                    .map(|a| format!("segment:{a}"))
                    .collect();
                for e in &events {
                    if interactions::of_event(e, &self.weights).is_empty() {
                        continue;
                    }
                    keys.extend(e.context.country.as_deref().map(country_key));
                    keys.extend(e.context.device_type.as_deref().map(device_key));
                }
                for k in keys {
                    groups.entry(k).or_default().push(users as u32);
                }
                for (item, (w, at)) in history {
                    interactions.push(Interaction {
                        user: users as u32,
                        item: items.insert(&item),
                        value: w,
                        time: at,
                    });
                }
                users += 1;
                if users.is_multiple_of(1_000) {
                    progress(Progress::Read(users as u64));
                }
                Ok(())
            })
            .await?;
        progress(Progress::Read(users as u64));
        Ok(Dataset {
            items,
            users,
            interactions,
            groups,
        })
    }

    /// Trains a new version of recommender `name` at `source` on every profile there and
    /// stores it (audited): active when there was none or it is not worse on held-out
    /// NDCG@10 than the active version trained again on the same split, a candidate
    /// otherwise.
    pub async fn train(
        &self,
        source: &SourceId,
        name: &str,
        training: Training,
        actor: String,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Version> {
        if !name_ok(name) {
            return Err(Error::BadRequest(format!(
                "a recommender name is {NAME_RULE}"
            )));
        }
        training.model.check().map_err(bad)?;
        let key = key_of(source, name);
        let data = self.dataset(source, progress).await?;
        if data.users < 2 || data.items.len() < 2 {
            return Err(Error::BadRequest(format!(
                "{} users with interactions and {} items at source {source}: too few to train on",
                data.users,
                data.items.len()
            )));
        }
        let dense_ease = |s: &&ModelSpec| matches!(s, ModelSpec::Ease(p) if p.keep == 0);
        if training.model.kinds().iter().any(dense_ease) && data.items.len() > EASE_MAX_ITEMS {
            return Err(Error::BadRequest(format!(
                "EASE keeps items × items weights: {} items is more than the {EASE_MAX_ITEMS} a stored recommender may hold whole (set keep, e.g. 200 weights per item, or use item_knn or als)",
                data.items.len()
            )));
        }
        let mut data = data;
        let active_kind = active_spec_kind(&self.db, &key).await?;
        let item_terms = self
            .item_terms(source, &training, active_kind, &mut data)
            .await?;
        progress(Progress::Fitting);
        let active_spec =
            match storage::models::active_of(&self.db, Registry::Recommendations, &key).await? {
                Some(m) => serde_json::from_str::<Training>(&m.spec)
                    .ok()
                    .map(|t| (m.version, t.model)),
                None => None,
            };
        let spec = serde_json::to_string(&training).expect("serializes");
        let (stored, report) =
            tokio::task::spawn_blocking(move || fit(data, training, active_spec, item_terms))
                .await
                .map_err(|e| Error::Internal(format!("training stopped: {e}")))??;
        let ndcg = report["heldOut"]["ndcg"].as_f64().unwrap_or(0.0);
        let active_ndcg = report["activeOnSameSplit"]["ndcg"].as_f64();
        let new = StoredModel {
            name: key.clone(),
            version: 0,
            status: String::new(),
            spec,
            model: serde_json::to_string(&stored).expect("serializes"),
            report: report.to_string(),
            trained_at_ms: 0,
            promoted_at_ms: None,
        };
        let done = versions::store(
            &self.db,
            &self.trail,
            versions::RECOMMENDERS,
            new,
            |_| active_ndcg.is_none_or(|a| ndcg >= a),
            actor,
        )
        .await?;
        self.forget(&key);
        Ok(version_of(done))
    }

    /// For a content-based spec (new or active): every catalogue item joins the
    /// vocabulary (so an item nobody has seen yet can be recommended by its tags), and
    /// the items-by-tags matrix is built in its order. None for the other kinds.
    async fn item_terms(
        &self,
        source: &SourceId,
        training: &Training,
        active_kind: Option<ModelSpec>,
        data: &mut Dataset,
    ) -> Result<Option<assent_recommendation::Csr>> {
        let content = |s: &ModelSpec| s.kinds().iter().any(|k| matches!(k, ModelSpec::Content(_)));
        if !content(&training.model) && !active_kind.as_ref().is_some_and(content) {
            return Ok(None);
        }
        let mut tags = Vocabulary::new();
        let mut triplets = Vec::new();
        for item in storage::catalog::list(&self.db, source).await? {
            let a: Attributes = serde_json::from_str(&item.attributes).unwrap_or_default();
            let i = data.items.insert(&item.item);
            for t in &a.tags {
                triplets.push((i, tags.insert(t), 1.0));
            }
        }
        if tags.is_empty() {
            return Err(Error::BadRequest(format!(
                "a content-based recommender needs items with tags at source {source} (PUT /v1/items/{{item}})"
            )));
        }
        assent_recommendation::Csr::from_triplets(data.items.len(), tags.len(), &triplets)
            .map(Some)
            .map_err(bad)
    }

    /// Every recommender's versions, newest first.
    pub async fn models(&self) -> Result<Vec<Version>> {
        Ok(storage::models::list(&self.db, Registry::Recommendations)
            .await?
            .into_iter()
            .map(version_of)
            .collect())
    }

    /// Makes `version` of recommender `name` at `source` the active one (audited).
    pub async fn promote(
        &self,
        source: &SourceId,
        name: &str,
        version: i64,
        actor: String,
    ) -> Result<Version> {
        self.activate(source, name, Some(version), actor).await
    }

    /// Brings back the version active before the active one (audited).
    pub async fn rollback(&self, source: &SourceId, name: &str, actor: String) -> Result<Version> {
        self.activate(source, name, None, actor).await
    }

    async fn activate(
        &self,
        source: &SourceId,
        name: &str,
        version: Option<i64>,
        actor: String,
    ) -> Result<Version> {
        let key = key_of(source, name);
        let done = versions::activate(
            &self.db,
            &self.trail,
            versions::RECOMMENDERS,
            &key,
            version,
            actor,
        )
        .await?;
        self.forget(&key);
        Ok(version_of(done))
    }

    fn forget(&self, key: &str) {
        self.loaded.lock().expect("not poisoned").remove(key);
        self.splits.lock().expect("not poisoned").remove(key);
        self.cache.clear();
    }

    /// Sets (or, with a share of 0, ends) the live comparison of recommender `name` at
    /// `source` with one of its versions (audited).
    pub async fn set_split(
        &self,
        source: &SourceId,
        name: &str,
        body: &Value,
        actor: String,
    ) -> Result<Value> {
        let split: Split = serde_json::from_value(body.clone()).map_err(|e| {
            Error::BadRequest(format!(
                "split: {e} (the body is {{\"version\": N, \"share\": 0.1}})"
            ))
        })?;
        if !(0.0..=1.0).contains(&split.share) {
            return Err(Error::BadRequest(
                "split: share must be between 0 and 1".into(),
            ));
        }
        let key = key_of(source, name);
        if storage::models::version(&self.db, Registry::Recommendations, &key, split.version)
            .await?
            .is_none()
        {
            return Err(Error::BadRequest(format!(
                "recommender `{name}` has no version {}",
                split.version
            )));
        }
        let value = if split.share > 0.0 {
            serde_json::to_string(&split).expect("serializes")
        } else {
            "null".into()
        };
        let now = self.trail.now();
        let mut w = self.db.write().await?;
        w.lock_audit_chain().await?;
        storage::settings::put(&mut w, &split_setting(&key), &value, now).await?;
        let entry = NewEntry {
            kind: audit::Kind::SettingChanged,
            actor,
            subject: None,
            data: json!({"name": split_setting(&key),
                         "value": serde_json::from_str::<Value>(&value).unwrap_or(Value::Null)}),
        };
        self.trail.record(&mut w, entry).await?;
        w.commit().await?;
        self.splits.lock().expect("not poisoned").remove(&key);
        Ok(json!({"name": name, "source": source, "split": (split.share > 0.0).then_some(split)}))
    }

    /// A recommender's split (read again after [`RECHECK`]).
    async fn split(&self, key: &str) -> Result<Option<Split>> {
        if let Some((at, s)) = self.splits.lock().expect("not poisoned").get(key) {
            if at.elapsed() < RECHECK {
                return Ok(*s);
            }
        }
        let s = storage::settings::get(&self.db, &split_setting(key))
            .await?
            .and_then(|(v, _)| serde_json::from_str::<Option<Split>>(&v).ok().flatten());
        self.splits
            .lock()
            .expect("not poisoned")
            .insert(key.to_owned(), (Instant::now(), s));
        Ok(s)
    }

    /// One version of a recommender, loaded once (versions do not change).
    async fn version(&self, key: &str, version: i64) -> Result<Option<Arc<Loaded>>> {
        let held_key = format!("{key}#{version}");
        if let Some(l) = self.loaded.lock().expect("not poisoned").get(&held_key) {
            return Ok(Some(l.clone()));
        }
        let _loading = self.loading.lock().await;
        let Some(m) =
            storage::models::version(&self.db, Registry::Recommendations, key, version).await?
        else {
            return Ok(None);
        };
        let loaded = Arc::new(self.parse_loaded(&m)?);
        self.loaded
            .lock()
            .expect("not poisoned")
            .insert(held_key, loaded.clone());
        Ok(Some(loaded))
    }

    /// The active version of a recommender, loaded (and checked again after [`RECHECK`]).
    async fn active(&self, source: &SourceId, name: &str) -> Result<Option<Arc<Loaded>>> {
        let key = key_of(source, name);
        let held = self.loaded.lock().expect("not poisoned").get(&key).cloned();
        if let Some(l) = &held {
            if l.checked.lock().expect("not poisoned").elapsed() < RECHECK {
                return Ok(held);
            }
            let current =
                storage::models::active_version(&self.db, Registry::Recommendations, &key).await?;
            if current == Some(l.version) {
                *l.checked.lock().expect("not poisoned") = Instant::now();
                return Ok(held);
            }
        }
        let _loading = self.loading.lock().await;
        // Another request may have loaded it while this one waited.
        let now_held = self.loaded.lock().expect("not poisoned").get(&key).cloned();
        if let Some(l) = now_held {
            if held.as_ref().is_none_or(|h| !Arc::ptr_eq(h, &l)) {
                return Ok(Some(l));
            }
        }
        let Some(m) = storage::models::active_of(&self.db, Registry::Recommendations, &key).await?
        else {
            self.loaded.lock().expect("not poisoned").remove(&key);
            return Ok(None);
        };
        let loaded = Arc::new(self.parse_loaded(&m)?);
        self.loaded
            .lock()
            .expect("not poisoned")
            .insert(key, loaded.clone());
        Ok(Some(loaded))
    }

    /// A stored version made ready to serve.
    fn parse_loaded(&self, m: &StoredModel) -> Result<Loaded> {
        let stored: Stored = serde_json::from_str(&m.model)
            .map_err(|e| Error::Internal(format!("a stored recommender does not parse: {e}")))?;
        let popularity = dense(stored.items.len(), &stored.popular);
        let monitors = stored
            .drift
            .iter()
            .map(|(signal, bins)| {
                let m = Monitor::new(bins.clone(), self.drift.threshold, self.drift.min_samples);
                (signal.clone(), m)
            })
            .collect();
        Ok(Loaded {
            version: m.version,
            checked: Mutex::new(Instant::now()),
            stored,
            popularity,
            monitors: Mutex::new(monitors),
        })
    }

    /// The catalogue's filters at `source` (checked again after [`RECHECK`]).
    async fn catalog(&self, source: &SourceId) -> Result<Arc<Catalog>> {
        let held = self
            .catalogs
            .lock()
            .expect("not poisoned")
            .get(source)
            .cloned();
        if let Some(c) = &held {
            if c.checked.lock().expect("not poisoned").elapsed() < RECHECK {
                return Ok(c.clone());
            }
        }
        let version = storage::catalog::version(&self.db, source).await?;
        if let Some(c) = held.filter(|c| c.version == version) {
            // Unchanged: the same filters, checked now.
            *c.checked.lock().expect("not poisoned") = Instant::now();
            return Ok(c);
        }
        let mut catalog = Catalog {
            version,
            unavailable: Vec::new(),
            restricted: HashMap::new(),
            checked: Mutex::new(Instant::now()),
        };
        for item in storage::catalog::list(&self.db, source).await? {
            if !item.available {
                catalog.unavailable.push(item.item.clone());
            }
            let a: Attributes = serde_json::from_str(&item.attributes).unwrap_or_default();
            if !a.countries.is_empty() || !a.devices.is_empty() {
                catalog
                    .restricted
                    .insert(item.item, (a.countries, a.devices));
            }
        }
        catalog.unavailable.sort();
        let catalog = Arc::new(catalog);
        self.catalogs
            .lock()
            .expect("not poisoned")
            .insert(source.clone(), catalog.clone());
        Ok(catalog)
    }

    /// Sets an item of the catalogue at `source` (audited).
    pub async fn set_item(
        &self,
        source: &SourceId,
        item: &str,
        body: &Value,
        actor: String,
    ) -> Result<Value> {
        if item.is_empty() || item.len() > 256 {
            return Err(Error::BadRequest("an item id is 1 to 256 bytes".into()));
        }
        let a: Attributes = serde_json::from_value(body.clone())
            .map_err(|e| Error::BadRequest(format!("item: {e}")))?;
        let now = self.trail.now();
        let stored = StoredItem {
            item: item.to_owned(),
            attributes: serde_json::to_string(&a).expect("serializes"),
            available: a.available,
            updated_at_ms: now.millis(),
        };
        let mut w = self.db.write().await?;
        w.lock_audit_chain().await?;
        storage::catalog::upsert(&mut w, source, &stored).await?;
        let entry = NewEntry {
            kind: audit::Kind::CatalogItem,
            actor,
            subject: None,
            data: json!({"source": source, "item": item, "action": "set", "available": a.available}),
        };
        self.trail.record(&mut w, entry).await?;
        w.commit().await?;
        self.catalogs.lock().expect("not poisoned").remove(source);
        Ok(
            json!({"item": item, "source": source, "tags": a.tags, "available": a.available,
                  "countries": a.countries, "devices": a.devices, "updatedAt": now.to_string()}),
        )
    }

    /// Removes an item of the catalogue (audited); `NotFound` when it was not there.
    pub async fn delete_item(&self, source: &SourceId, item: &str, actor: String) -> Result<()> {
        let mut w = self.db.write().await?;
        w.lock_audit_chain().await?;
        if !storage::catalog::delete(&mut w, source, item).await? {
            return Err(Error::NotFound);
        }
        let entry = NewEntry {
            kind: audit::Kind::CatalogItem,
            actor,
            subject: None,
            data: json!({"source": source, "item": item, "action": "deleted"}),
        };
        self.trail.record(&mut w, entry).await?;
        w.commit().await?;
        self.catalogs.lock().expect("not poisoned").remove(source);
        Ok(())
    }

    /// The ranking for the subject whose raw id is `raw` at `source` (consent read under
    /// `scope`), and whether it came from the cache.
    pub async fn recommend(
        &self,
        source: &SourceId,
        scope: &ConsentScope,
        raw: &str,
        request: &Request,
    ) -> Result<(Arc<Answer>, bool)> {
        if request.k == 0 || request.k > MAX_K {
            return Err(Error::BadRequest(format!(
                "k must be between 1 and {MAX_K}"
            )));
        }
        let Some(loaded) = self.active(source, &request.model).await? else {
            return Err(Error::NotFound);
        };
        let catalog = self.catalog(source).await?;
        let granted =
            crate::consent::grants(&self.db, &self.pseudonymizer, scope, raw, PURPOSE).await?;
        let events = if granted {
            self.segments.events_of(source, raw).await?
        } else {
            None
        };
        let history = events
            .as_ref()
            .map(|(_, e)| interactions::history(e, &self.weights))
            .unwrap_or_default();
        let pseudonym = events
            .as_ref()
            .map(|(p, _)| p.to_string())
            .unwrap_or_default();
        let mut loaded = loaded;
        if !history.is_empty() {
            let key = key_of(source, &request.model);
            // A running experiment on the recommender decides the version first.
            let tested = self
                .experiments
                .recommender_version(source, scope, raw, &request.model)
                .await?;
            if let Some((_, version)) = tested {
                if version != loaded.version {
                    if let Some(other) = self.version(&key, version).await? {
                        loaded = other;
                    }
                }
            } else if let Some(split) = self.split(&key).await? {
                if split.version != loaded.version && bucket(&pseudonym, &key) < split.share {
                    if let Some(other) = self.version(&key, split.version).await? {
                        loaded = other;
                    }
                }
            }
        }
        let reason = match (granted, history.len()) {
            (false, _) => Reason::NoConsent,
            (true, 0) => Reason::NewUser,
            (true, n) if n < SPARSE_BELOW => Reason::SparseProfile,
            _ => Reason::Personalized,
        };
        let group = match reason {
            Reason::NewUser | Reason::SparseProfile => {
                self.group_for(source, raw, &loaded, request).await?
            }
            Reason::Personalized | Reason::NoConsent => None,
        };
        // Everything the answer depends on; a subject without consent or history gets
        // the same list as every other such subject.
        let mut h = Sha256::new();
        let personal = matches!(reason, Reason::Personalized | Reason::SparseProfile);
        for part in [
            source.as_str(),
            &request.model,
            &loaded.version.to_string(),
            &catalog.version.0.to_string(),
            &catalog.version.1.to_string(),
            if personal { &pseudonym } else { "" },
            reason.as_str(),
            group.as_deref().unwrap_or(""),
            &request.k.to_string(),
            request.slot.as_deref().unwrap_or(""),
            &request.exclude.join("\u{1f}"),
            if request.include_consumed { "1" } else { "0" },
            request.country.as_deref().unwrap_or(""),
            request.device.as_deref().unwrap_or(""),
        ] {
            h.update(part.as_bytes());
            h.update([0x1e]);
        }
        if personal {
            for (item, (w, _)) in &history {
                h.update(item.as_bytes());
                h.update(w.to_le_bytes());
            }
        }
        let key: String = h
            .finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        if let Some(hit) = self.cache.get(&key).await {
            return Ok((hit, true));
        }
        let rec_id = assent_protocol::RecId::new(&request.model, loaded.version, &key)
            .map_err(|e| Error::Internal(format!("a list's id: {e}")))?
            .to_string();
        let history = match loaded.stored.model {
            // Interests fade: each item's weight halves every half-life of its age.
            Model::Content(_) => {
                let now = self.trail.now().millis();
                history
                    .into_iter()
                    .map(|(item, (w, at))| {
                        let age = (now - at).max(0) as f64;
                        let decayed = w * 0.5f64.powf(age / self.interest_half_life_ms) as f32;
                        (item, (decayed, at))
                    })
                    .collect()
            }
            _ => history,
        };
        let answer = Arc::new(rank(
            &loaded,
            &catalog,
            request,
            &history,
            (reason, group.as_deref()),
            &rec_id,
        ));
        if reason == Reason::Personalized {
            let mut monitors = loaded.monitors.lock().expect("not poisoned");
            for (signal, m) in monitors.iter_mut() {
                match signal.as_str() {
                    "history_length" => m.observe(history.len() as f64),
                    "top_score" => {
                        if let Some(best) = answer.items.first() {
                            m.observe(f64::from(best.score))
                        }
                    }
                    _ => {}
                }
            }
        }
        self.cache.put(key, answer.clone()).await;
        Ok((answer, false))
    }

    /// The group whose popular items a new user or sparse profile gets instead of the
    /// overall ones: the smallest of the subject's segments that has a list, else the
    /// request's country, else its device type; None for the overall list. Only for a
    /// subject who granted `personalization` (segments are a profile's).
    async fn group_for(
        &self,
        source: &SourceId,
        raw: &str,
        loaded: &Loaded,
        request: &Request,
    ) -> Result<Option<String>> {
        let groups = &loaded.stored.groups;
        if groups.is_empty() {
            return Ok(None);
        }
        if let Some(memberships) = self.segments.segments_of(source, raw).await? {
            let smallest = memberships
                .iter()
                .map(|m| format!("segment:{}", m.audience))
                .filter_map(|k| Some((groups.get(&k)?.0, k)))
                .min();
            if let Some((_, k)) = smallest {
                return Ok(Some(k));
            }
        }
        let context = [
            request.country.as_deref().map(country_key),
            request.device.as_deref().map(device_key),
        ];
        Ok(context
            .into_iter()
            .flatten()
            .find(|k| groups.contains_key(k)))
    }

    /// The items most like `item` by recommender `name` at `source` (no subject: the same
    /// for everyone), leaving out unavailable ones.
    pub async fn similar(
        &self,
        source: &SourceId,
        name: &str,
        item: &str,
        k: usize,
    ) -> Result<Value> {
        if k == 0 || k > MAX_K {
            return Err(Error::BadRequest(format!(
                "k must be between 1 and {MAX_K}"
            )));
        }
        let Some(loaded) = self.active(source, name).await? else {
            return Err(Error::NotFound);
        };
        let Some(index) = loaded.stored.items.get(item) else {
            return Err(Error::NotFound);
        };
        let catalog = self.catalog(source).await?;
        let items = loaded
            .stored
            .model
            .similar(index, k + catalog.unavailable.len().min(MAX_K))
            .map_err(bad)?;
        let names = &loaded.stored.items;
        let list: Vec<Scored> = items
            .into_iter()
            .filter_map(|(i, s)| {
                Some(Scored {
                    item: names.name(i)?.to_owned(),
                    score: s,
                })
            })
            .filter(|s| catalog.unavailable.binary_search(&s.item).is_err())
            .take(k)
            .collect();
        Ok(json!({"item": item, "items": list,
                  "model": {"name": name, "version": loaded.version, "kind": loaded.stored.model_kind()}}))
    }
}

impl Stored {
    fn model_kind(&self) -> &'static str {
        match self.model {
            Model::ItemKnn(_) => "item_knn",
            Model::Als(_) => "als",
            Model::Ease(_) => "ease",
            Model::Popularity(_) => "popularity",
            Model::Content(_) => "content",
            Model::Hybrid(_) => "hybrid",
        }
    }
}

/// An item's catalogue attributes, as the API takes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Attributes {
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default = "yes")]
    available: bool,
    /// ISO 3166-1 alpha-2 countries the item is for (empty: all).
    #[serde(default)]
    countries: Vec<String>,
    /// Device types the item is for (`mobile`, `tablet`, `desktop`; empty: all).
    #[serde(default)]
    devices: Vec<String>,
}

fn yes() -> bool {
    true
}

/// Popularity over every item from a kept list (the rest score 0).
fn dense(items: usize, kept: &[(u32, f32)]) -> Popularity {
    let mut scores = vec![0f32; items];
    for &(i, s) in kept {
        if let Some(v) = scores.get_mut(i as usize) {
            *v = s;
        }
    }
    Popularity::from_scores(scores)
}

/// Ranks for one request (CPU only).
fn rank(
    loaded: &Loaded,
    catalog: &Catalog,
    request: &Request,
    history: &BTreeMap<String, (f32, i64)>,
    (reason, group): (Reason, Option<&str>),
    key: &str,
) -> Answer {
    let names = &loaded.stored.items;
    let mut known: Vec<(u32, f32)> = history
        .iter()
        .filter_map(|(item, (w, _))| Some((names.get(item)?, *w)))
        .collect();
    known.sort_unstable_by_key(|p| p.0);
    let (items, values): (Vec<u32>, Vec<f32>) = known.into_iter().unzip();
    let mut banned: Vec<u32> = request
        .exclude
        .iter()
        .chain(catalog.unavailable.iter())
        .filter_map(|i| names.get(i))
        .collect();
    for (item, (countries, devices)) in &catalog.restricted {
        let off_country = !countries.is_empty()
            && request
                .country
                .as_ref()
                .is_none_or(|c| !countries.iter().any(|x| x.eq_ignore_ascii_case(c)));
        let off_device = !devices.is_empty()
            && request
                .device
                .as_ref()
                .is_none_or(|d| !devices.iter().any(|x| x.eq_ignore_ascii_case(d)));
        if off_country || off_device {
            banned.extend(names.get(item));
        }
    }
    banned.sort_unstable();
    banned.dedup();
    let consumed: &[u32] = if request.include_consumed || reason == Reason::NoConsent {
        &[]
    } else {
        &items
    };
    let exclude = Exclude {
        consumed,
        banned: &banned,
        allowed: None,
    };
    let history = History::new(&items, &values);
    let model = loaded.stored.model.scorer();
    let of_group = group
        .and_then(|g| loaded.stored.groups.get(g))
        .map(|(_, kept)| dense(names.len(), kept));
    let popularity = of_group.as_ref().unwrap_or(&loaded.popularity);
    let ranked = match reason {
        Reason::Personalized => model.recommend(history, request.k, exclude),
        Reason::SparseProfile => {
            Blend::new(vec![(model, 1.0), (popularity, 0.5)]).recommend(history, request.k, exclude)
        }
        Reason::NewUser | Reason::NoConsent => {
            popularity.recommend(History::default(), request.k, exclude)
        }
    };
    Answer {
        items: ranked
            .into_iter()
            .filter_map(|(i, s)| {
                Some(Scored {
                    item: names.name(i)?.to_owned(),
                    score: s,
                })
            })
            .collect(),
        model: json!({"name": request.model, "version": loaded.version, "kind": loaded.stored.model_kind()}),
        rec_id: key.to_owned(),
        personalized: matches!(reason, Reason::Personalized | Reason::SparseProfile),
        reason,
        popularity: match reason {
            Reason::Personalized => None,
            _ => Some(
                group
                    .map_or("overall", |g| g.split(':').next().unwrap_or(g))
                    .to_owned(),
            ),
        },
        slot: request.slot.clone(),
    }
}

/// The spec of a recommender's active version, if any.
async fn active_spec_kind(db: &Db, key: &str) -> Result<Option<ModelSpec>> {
    Ok(
        storage::models::active_of(db, Registry::Recommendations, key)
            .await?
            .and_then(|m| serde_json::from_str::<Training>(&m.spec).ok())
            .map(|t| t.model),
    )
}

/// Users sampled for the training window's score histogram.
const DRIFT_SAMPLE: usize = 2_000;

/// The training window's histograms: every user's number of items, and the best score
/// (items they have left out) of a sample of users, as serving computes it.
fn drift_bins(all: &assent_recommendation::Csr, model: &Model) -> Vec<(String, Bins)> {
    let mut out = Vec::new();
    let lengths: Vec<f64> = (0..all.rows()).map(|u| all.row_len(u) as f64).collect();
    if let Ok(b) = Bins::fit(&lengths, 10) {
        out.push(("history_length".to_owned(), b));
    }
    let step = (all.rows() / DRIFT_SAMPLE).max(1);
    let scores: Vec<f64> = (0..all.rows())
        .step_by(step)
        .filter_map(|u| {
            let h = History::of(all, u);
            let exclude = Exclude {
                consumed: h.items,
                ..Default::default()
            };
            model
                .scorer()
                .recommend(h, 1, exclude)
                .first()
                .map(|b| f64::from(b.1))
        })
        .collect();
    if let Ok(b) = Bins::fit(&scores, 10) {
        out.push(("top_score".to_owned(), b));
    }
    out
}

/// Splits, judges (the new spec, popularity and the active spec on the same split), and
/// fits the new spec on everything (CPU-bound: run off the async threads).
fn fit(
    data: Dataset,
    training: Training,
    active: Option<(i64, ModelSpec)>,
    item_terms: Option<assent_recommendation::Csr>,
) -> Result<(Stored, Value)> {
    let (users, n) = (data.users, data.items.len());
    let started = Instant::now();
    let s =
        split::random(&data.interactions, training.test_fraction, training.seed).map_err(bad)?;
    let (train, test) = s.matrices(users, n).map_err(bad)?;
    let judge = |spec: &ModelSpec| -> Result<Metrics> {
        let m = spec
            .fit_with(&train, item_terms.as_ref(), |_, _| {})
            .map_err(bad)?;
        Ok(evaluate(
            m.scorer(),
            &train,
            &test,
            REPORT_K,
            Protocol::default(),
            None,
        ))
    };
    let held_out = judge(&training.model)?;
    let popular = judge(&ModelSpec::Popularity)?;
    let active_report = match active {
        Some((version, spec)) => Some((version, judge(&spec)?)),
        None => None,
    };
    let all = split::to_matrix(&data.interactions, users, n).map_err(bad)?;
    let fit_started = Instant::now();
    let model = training
        .model
        .fit_with(&all, item_terms.as_ref(), |_, _| {})
        .map_err(bad)?;
    let fit_seconds = fit_started.elapsed().as_secs_f64();
    let model = model.without_users();
    let pop = Popularity::fit(&all);
    let popular_items = top_k(pop.scores(), POPULAR_KEPT, Exclude::default());
    let mut sizes: Vec<(usize, &String)> = data
        .groups
        .iter()
        .filter(|(_, rows)| rows.len() >= MIN_GROUP_USERS)
        .map(|(k, rows)| (rows.len(), k))
        .collect();
    sizes.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let groups = sizes
        .into_iter()
        .take(MAX_GROUPS)
        .map(|(n, key)| {
            let rows = data.groups[key].iter().map(|&r| r as usize);
            let pop = Popularity::fit_rows(&all, rows);
            let top = top_k(pop.scores(), GROUP_KEPT, Exclude::default());
            (key.clone(), (n as u32, top))
        })
        .collect();
    let drift = drift_bins(&all, &model);
    let report = json!({
        "users": users, "items": n, "interactions": data.interactions.len(),
        "heldOut": metrics_json(&held_out),
        "popularity": metrics_json(&popular),
        "activeOnSameSplit": active_report.map(|(v, r)| json!({"version": v, "ndcg": r.ndcg})),
        "fitSeconds": fit_seconds,
        "seconds": started.elapsed().as_secs_f64(),
    });
    Ok((
        Stored {
            items: data.items,
            model,
            popular: popular_items,
            drift,
            groups,
        },
        report,
    ))
}

/// Lock id of the recommenders' retraining lease across PostgreSQL replicas.
const RETRAIN_LEASE: i64 = 0x0052_4543_5452_4e00; // "RECTRN"

/// Retrains, for good, every recommender whose active version is older than `every`
/// (0: none by age) or whose drift is due here, with that version's spec (one process
/// per database takes the lease; drift is read where requests are served).
pub async fn retrain_on_schedule(recs: Arc<Recommendations>, every: Duration) {
    let check = if every.is_zero() {
        Duration::from_secs(3600)
    } else {
        Duration::from_secs(3600).min(every)
    };
    loop {
        tokio::time::sleep(check).await;
        let Ok(Some(_lease)) = recs.db.try_session_lock(RETRAIN_LEASE).await else {
            continue;
        };
        if let Err(e) = retrain_due(&recs, every).await {
            tracing::warn!(error = %e, "scheduled retraining of recommenders failed; will try again");
        }
    }
}

async fn retrain_due(recs: &Recommendations, every: Duration) -> Result<()> {
    let now = recs.trail.now().millis();
    let drifted: Vec<String> = recs
        .drift_readings()
        .into_iter()
        .filter(|r| r.due)
        .map(|r| r.recommender)
        .collect();
    for m in storage::models::active(&recs.db, Registry::Recommendations).await? {
        let old = !every.is_zero() && now - m.trained_at_ms >= every.as_millis() as i64;
        if !old && !drifted.contains(&m.name) {
            continue;
        }
        let Some((source, name)) = m.name.split_once('/') else {
            continue;
        };
        let source = SourceId::parse(source)?;
        let training: Training = serde_json::from_str(&m.spec)
            .map_err(|e| Error::Internal(format!("a stored spec does not parse: {e}")))?;
        let why = if old { "age" } else { "drift" };
        let done = recs
            .train(&source, name, training, format!("schedule:{why}"), &|_| {})
            .await?;
        tracing::info!(recommender = %m.name, version = done.version, status = %done.status, why, "retrained");
    }
    Ok(())
}
