//! Segmentation models: named segmentations, each a series of trained versions of which
//! one is active and assigns profiles to clusters. Training reads every stored profile
//! (not the events table), leaves out the sparse (a feature without a value), the
//! bot-like and the outlying ([`assent_segmentation::clean`]), fits
//! ([`assent_segmentation::model::Model::train`]) and stores the version with its report.
//! A new version becomes active only if its silhouette is not worse than the active one's;
//! otherwise it stays a candidate, which can be promoted by hand; rollback brings back the
//! version active before. Every change is audited. A schedule retrains each active
//! segmentation with its spec when its model is older than the configured interval.
use std::{collections::BTreeMap, time::Duration};

use assent_segmentation::{
    clean::{bot_like, outliers, Fences},
    model::{vector, Model, Spec},
    Points,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    ids::SourceId,
    segments::{iso, membership::profile_of, name_ok, Segments, NAME_RULE},
    storage::{
        self,
        models::{Registry, StoredModel},
        Db,
    },
    versions,
};

/// Lock id of the retraining schedule's lease across PostgreSQL replicas.
const RETRAIN_LEASE: i64 = 0x0052_4554_5241_494e; // "RETRAIN"

/// More events than this within a minute make a profile bot-like.
pub const BOT_EVENTS_PER_MINUTE: usize = 120;

/// What to train: the model's spec and how outliers are found, as one JSON object:
/// `{"features": [...], "clusters": {"fixed": K} | {"best": {"from", "to"}}, "method":
/// "k_means" | {"gmm": "full" | "diag"} | "ward", "n_init", "seed", "outliers":
/// {"robust_z": {"threshold"}} | {"iqr": {"k"}}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Training {
    #[serde(flatten)]
    pub spec: Spec,
    /// Outlier fences over the features read (Tukey's far-out fences, k = 3, unless given).
    pub outliers: Fences,
}

impl Training {
    /// Parses a training request, naming its fault.
    pub fn parse(body: &Value) -> Result<Training> {
        let bad = |e: String| Error::BadRequest(format!("training: {e}"));
        let mut fields = body
            .as_object()
            .cloned()
            .ok_or_else(|| bad("an object".into()))?;
        let outliers = match fields.remove("outliers") {
            None => Fences::default(),
            Some(v) => serde_json::from_value(v).map_err(|e| bad(format!("outliers: {e}")))?,
        };
        let spec: Spec =
            serde_json::from_value(Value::Object(fields)).map_err(|e| bad(e.to_string()))?;
        spec.check().map_err(|e| bad(e.to_string()))?;
        outliers.check().map_err(|e| bad(e.to_string()))?;
        Ok(Training { spec, outliers })
    }
}

/// How a training went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Profiles read.
    pub profiles: u64,
    /// Left out: without a value of a feature read.
    pub sparse: u64,
    /// Left out: bot-like event rates.
    pub bots: u64,
    /// Left out: a feature outside the fences.
    pub outliers: u64,
    /// Trained on.
    pub trained_on: u64,
    /// Clusters.
    pub k: usize,
    /// Mean silhouette on (a sample of) the training data; None for one cluster.
    pub silhouette: Option<f64>,
    /// Sum of squared distances to the nearest centroid, scaled features (not for a
    /// mixture).
    pub inertia: Option<f64>,
    /// A mixture's Bayesian information criterion.
    pub bic: Option<f64>,
    /// The features' windows end here (ISO 8601).
    pub features_at: String,
}

/// A version as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    pub segmentation: String,
    pub version: i64,
    /// `active`, `candidate` or `retired`.
    pub status: String,
    pub training: Value,
    pub report: Value,
    pub trained_at: String,
    pub promoted_at: Option<String>,
}

/// What training reports as it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// How many profiles will be read.
    Profiles(u64),
    /// So many read.
    Read(u64),
    /// Reading done; fitting.
    Fitting,
}

fn version_of(m: StoredModel) -> Version {
    let json = |text: &str| serde_json::from_str(text).unwrap_or(Value::Null);
    Version {
        training: json(&m.spec),
        report: json(&m.report),
        segmentation: m.name,
        version: m.version,
        status: m.status,
        trained_at: iso(m.trained_at_ms),
        promoted_at: m.promoted_at_ms.map(iso),
    }
}

/// The silhouette a stored version reports (None for one cluster: any silhouette beats it).
fn silhouette_of(m: &StoredModel) -> Option<f64> {
    serde_json::from_str::<Report>(&m.report)
        .ok()
        .and_then(|r| r.silhouette)
}

impl Segments {
    /// Trains a new version of segmentation `name` on every stored profile, and stores it
    /// (audited): active when there was none or it is not worse, a candidate otherwise.
    pub async fn train(
        &self,
        name: &str,
        training: &Training,
        actor: String,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Version> {
        if !name_ok(name) {
            return Err(Error::BadRequest(format!(
                "a segmentation name is {NAME_RULE}"
            )));
        }
        training
            .spec
            .check()
            .map_err(|e| Error::BadRequest(e.to_string()))?;
        let fences = training
            .outliers
            .check()
            .map_err(|e| Error::BadRequest(e.to_string()))?;
        let now = self.trail.now();
        progress(Progress::Profiles(
            storage::profiles::count(&self.db).await?,
        ));
        let names = &training.spec.features;
        let (mut rows, mut report) = (
            Vec::new(),
            Report {
                profiles: 0,
                sparse: 0,
                bots: 0,
                outliers: 0,
                trained_on: 0,
                k: 0,
                silhouette: None,
                inertia: None,
                bic: None,
                features_at: now.to_string(),
            },
        );
        let mut conn = self.db.pool.acquire().await?;
        storage::profiles::for_each(&mut conn, |_, _, events| {
            let profile = profile_of(&events)?;
            report.profiles += 1;
            if report.profiles % 1_000 == 0 {
                progress(Progress::Read(report.profiles));
            }
            if bot_like(&profile, BOT_EVENTS_PER_MINUTE) {
                report.bots += 1;
                return Ok(());
            }
            match vector(&profile.features(now.millis(), &self.vocabulary), names) {
                Ok(v) => rows.extend(v),
                Err(_) => report.sparse += 1,
            }
            Ok(())
        })
        .await?;
        drop(conn);
        progress(Progress::Read(report.profiles));
        progress(Progress::Fitting);
        let spec = training.spec.clone();
        let (model, report) = tokio::task::spawn_blocking(move || fit(&spec, rows, fences, report))
            .await
            .map_err(|e| Error::Internal(format!("training stopped: {e}")))??;
        let silhouette = report.silhouette.unwrap_or(f64::NEG_INFINITY);
        let new = StoredModel {
            name: name.to_owned(),
            version: 0,
            status: String::new(),
            spec: serde_json::to_string(training).expect("serializes"),
            model: serde_json::to_string(&model).expect("serializes"),
            report: serde_json::to_string(&report).expect("serializes"),
            trained_at_ms: now.millis(),
            promoted_at_ms: None,
        };
        let stored = versions::store(
            &self.db,
            &self.trail,
            versions::SEGMENTATIONS,
            new,
            |active| silhouette >= silhouette_of(active).unwrap_or(f64::NEG_INFINITY),
            actor,
        )
        .await?;
        Ok(version_of(stored))
    }

    /// Every segmentation's versions, newest first, by segmentation.
    pub async fn models(&self) -> Result<BTreeMap<String, Vec<Version>>> {
        let mut out: BTreeMap<String, Vec<Version>> = BTreeMap::new();
        for m in storage::models::list(&self.db, Registry::Segments).await? {
            out.entry(m.name.clone()).or_default().push(version_of(m));
        }
        Ok(out)
    }

    /// Makes `version` of segmentation `name` the active one (audited); the one it
    /// replaces is retired.
    pub async fn promote(&self, name: &str, version: i64, actor: String) -> Result<Version> {
        self.activate(name, Some(version), actor).await
    }

    /// Brings back the version that was active before the active one (audited).
    pub async fn rollback(&self, name: &str, actor: String) -> Result<Version> {
        self.activate(name, None, actor).await
    }

    async fn activate(&self, name: &str, version: Option<i64>, actor: String) -> Result<Version> {
        let done = versions::activate(
            &self.db,
            &self.trail,
            versions::SEGMENTATIONS,
            name,
            version,
            actor,
        )
        .await?;
        Ok(version_of(done))
    }

    /// The cluster of the profile at `source` of the subject whose raw id is `raw` in
    /// each active segmentation at `now_ms` (none where the profile lacks a feature the
    /// model reads), and whether the profile is sparse; None without a profile.
    pub async fn clusters_of(
        &self,
        source: &SourceId,
        raw: &str,
        now_ms: i64,
    ) -> Result<Option<(BTreeMap<String, usize>, bool)>> {
        let all = self.profile_keys(source, raw).await?;
        let Some(stored) = storage::profiles::find(&self.db, source, &all).await? else {
            return Ok(None);
        };
        let features = profile_of(&stored)?.features(now_ms, &self.vocabulary);
        let mut out = BTreeMap::new();
        for m in storage::models::active(&self.db, Registry::Segments).await? {
            let model: Model = serde_json::from_str(&m.model)
                .map_err(|e| Error::Internal(format!("a stored model does not parse: {e}")))?;
            if let Ok(cluster) = model.assign(&features) {
                out.insert(m.name, cluster);
            }
        }
        Ok(Some((out, features.sparse)))
    }
}

/// Leaves out the outliers and fits (CPU-bound: run off the async threads).
fn fit(spec: &Spec, rows: Vec<f64>, fences: Fences, mut report: Report) -> Result<(Model, Report)> {
    let dim = spec.features.len();
    let bad = |e: assent_segmentation::Error| Error::BadRequest(e.to_string());
    let points = Points::new(&rows, dim).map_err(bad)?;
    let out = outliers(points, fences).map_err(bad)?;
    let kept: Vec<f64> = out
        .iter()
        .enumerate()
        .filter(|(_, o)| !**o)
        .flat_map(|(i, _)| points.row(i).iter().copied())
        .collect();
    report.outliers = out.iter().filter(|o| **o).count() as u64;
    report.trained_on = (kept.len() / dim) as u64;
    if report.trained_on < 2 {
        return Err(Error::BadRequest(format!(
            "{} profiles to train on after leaving out {} sparse, {} bot-like and {} outlying: too few",
            report.trained_on, report.sparse, report.bots, report.outliers
        )));
    }
    let model = Model::train(spec, &kept).map_err(bad)?;
    report.k = model.k();
    report.silhouette = model.silhouette;
    report.inertia = model.inertia();
    report.bic = model.bic;
    Ok((model, report))
}

/// Retrains, for good, every segmentation whose active version is older than `every`,
/// with that version's training spec (one process per database takes the lease).
pub async fn retrain_on_schedule(segments: std::sync::Arc<Segments>, db: Db, every: Duration) {
    let check = Duration::from_secs(3600).min(every);
    loop {
        tokio::time::sleep(check).await;
        let Ok(Some(_lease)) = db.try_session_lock(RETRAIN_LEASE).await else {
            continue;
        };
        if let Err(e) = retrain_due(&segments, every).await {
            tracing::warn!(error = %e, "scheduled retraining failed; will try again");
        }
    }
}

async fn retrain_due(segments: &Segments, every: Duration) -> Result<()> {
    let now = segments.trail.now().millis();
    for m in storage::models::active(&segments.db, Registry::Segments).await? {
        if now - m.trained_at_ms < every.as_millis() as i64 {
            continue;
        }
        let spec: Value = serde_json::from_str(&m.spec)
            .map_err(|e| Error::Internal(format!("a stored spec does not parse: {e}")))?;
        let training = Training::parse(&spec)
            .map_err(|e| Error::Internal(format!("a stored spec does not parse: {e}")))?;
        let done = segments
            .train(&m.name, &training, "schedule".into(), &|_| {})
            .await?;
        tracing::info!(segmentation = %m.name, version = done.version, status = %done.status, "retrained");
    }
    Ok(())
}
