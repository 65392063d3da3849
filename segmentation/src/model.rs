//! A segmentation model: which numeric features it reads, the scaler fitted on them, and
//! k-means over the scaled features; stored whole, so it assigns a profile on its own.
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    kmeans::{KMeansModel, KMeansParams},
    metrics::silhouette,
    points::Points,
    profile::Features,
    rules::{feature, feature_names},
    scale::StandardScaler,
};

/// Points the silhouette is computed over when choosing k (scikit-learn's `sample_size`).
pub const SILHOUETTE_SAMPLE: usize = 2_000;

/// How many clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Clusters {
    /// Exactly this many.
    Fixed(usize),
    /// The best by silhouette from `from` to `to` inclusive.
    Best {
        /// Fewest (at least 2).
        from: usize,
        /// Most.
        to: usize,
    },
}

/// What to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Numeric features by name ([`feature_names`]): `purchases_30d`, `engagement`…
    pub features: Vec<String>,
    /// How many clusters.
    pub clusters: Clusters,
    /// k-means runs per k (3 unless given).
    #[serde(default = "three")]
    pub n_init: usize,
    /// The seed (0 unless given).
    #[serde(default)]
    pub seed: u64,
}

fn three() -> usize {
    3
}

impl Spec {
    /// Checks the spec: known, numeric features, each once; a sane range of k.
    pub fn check(&self) -> Result<()> {
        let bad = |name, reason: String| Error::Parameter { name, reason };
        if self.features.is_empty() {
            return Err(bad("features", "at least one".into()));
        }
        let known = feature_names();
        for (i, f) in self.features.iter().enumerate() {
            if !known.contains(f) {
                return Err(bad("features", format!("unknown feature `{f}`")));
            }
            if !numeric(f) {
                return Err(bad("features", format!("`{f}` is not a number")));
            }
            if self.features[..i].contains(f) {
                return Err(bad("features", format!("`{f}` twice")));
            }
        }
        match self.clusters {
            Clusters::Fixed(k) if k >= 1 => {}
            Clusters::Best { from, to } if from >= 2 && to >= from && to <= 64 => {}
            _ => {
                return Err(bad(
                    "clusters",
                    "a fixed k of at least 1, or a range from 2 to at most 64".into(),
                ))
            }
        }
        KMeansParams::new(1).n_init(self.n_init).check()?;
        Ok(())
    }
}

/// Whether a feature is numeric (the categorical ones are the device, place and touch).
fn numeric(name: &str) -> bool {
    !matches!(name, "device_type" | "country" | "locale") && !name.contains("_touch.")
}

/// A trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// The features it reads, in order.
    pub features: Vec<String>,
    /// Fitted on the training profiles' features.
    pub scaler: StandardScaler,
    /// Over the scaled features.
    pub kmeans: KMeansModel,
    /// Mean silhouette on the training data (a sample of [`SILHOUETTE_SAMPLE`]); None
    /// for a single cluster.
    pub silhouette: Option<f64>,
    /// Profiles trained on.
    pub trained_on: usize,
}

/// A profile's features as the model reads them; an error names a feature the profile
/// has no value of (a sparse profile, which gets generic content rather than a segment).
pub fn vector(features: &Features, names: &[String]) -> Result<Vec<f64>> {
    names
        .iter()
        .map(|n| match feature(features, n) {
            Some(Value::Number(v)) => v
                .as_f64()
                .ok_or_else(|| Error::Data(format!("feature `{n}` out of range"))),
            _ => Err(Error::Data(format!("the profile has no value of `{n}`"))),
        })
        .collect()
}

impl Model {
    /// Trains on `rows` (one vector per profile, as [`vector`] makes them).
    pub fn train(spec: &Spec, rows: &[f64]) -> Result<Model> {
        spec.check()?;
        let dim = spec.features.len();
        let raw = Points::new(rows, dim)?;
        let scaler = StandardScaler::fit(raw)?;
        let scaled = scaler.transform(raw)?;
        let points = Points::new(&scaled, dim)?;
        let fit = |k: usize| {
            KMeansParams::new(k)
                .n_init(spec.n_init)
                .seed(spec.seed)
                .check()?
                .fit(points)
        };
        let score = |model: &KMeansModel| -> Result<Option<f64>> {
            if model.k() < 2 {
                return Ok(None);
            }
            let labels = model.predict_all(points)?;
            silhouette(points, &labels, Some((SILHOUETTE_SAMPLE, spec.seed))).map(Some)
        };
        let (kmeans, silhouette) = match spec.clusters {
            Clusters::Fixed(k) => {
                let m = fit(k)?;
                let s = score(&m)?;
                (m, s)
            }
            Clusters::Best { from, to } => {
                let mut best: Option<(KMeansModel, f64)> = None;
                for k in from..=to.min(points.len().saturating_sub(1)) {
                    let m = fit(k)?;
                    let s = score(&m)?.unwrap_or(f64::NEG_INFINITY);
                    if best.as_ref().is_none_or(|(_, b)| s > *b) {
                        best = Some((m, s));
                    }
                }
                let (m, s) = best.ok_or_else(|| {
                    Error::Data(format!(
                        "{} profiles are too few for {from} clusters",
                        points.len()
                    ))
                })?;
                (m, Some(s))
            }
        };
        Ok(Model {
            features: spec.features.clone(),
            scaler,
            kmeans,
            silhouette,
            trained_on: points.len(),
        })
    }

    /// The segment of a profile: the nearest centroid to its scaled features.
    pub fn assign(&self, features: &Features) -> Result<usize> {
        let raw = vector(features, &self.features)?;
        let mut scaled = vec![0.0; raw.len()];
        self.scaler.transform_row(&raw, &mut scaled)?;
        self.kmeans.predict(&scaled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Context, Event, Kind, Profile, Vocabulary};

    const T0: i64 = 1_764_547_200_000;

    /// Profiles of three kinds: heavy buyers, browsers, and the barely active.
    fn profiles() -> Vec<Profile> {
        let mut out = Vec::new();
        for i in 0..60 {
            let mut p = Profile::default();
            let (views, orders) = match i % 3 {
                0 => (10, 6),
                1 => (30, 0),
                _ => (1, 0),
            };
            for v in 0..views + (i / 3) % 3 {
                p.fold(Event {
                    message_id: format!("v{v}"),
                    at_ms: T0 - (v as i64 + 1) * 3_600_000,
                    kind: Kind::Page,
                    name: Some("Product".into()),
                    properties: Default::default(),
                    context: Context::default(),
                });
            }
            for o in 0..orders {
                p.fold(Event {
                    message_id: format!("o{o}"),
                    at_ms: T0 - (o as i64 + 1) * 86_400_000,
                    kind: Kind::Track,
                    name: Some("Order Completed".into()),
                    properties: [("revenue".to_string(), serde_json::json!(20))].into(),
                    context: Context::default(),
                });
            }
            out.push(p);
        }
        out
    }

    #[test]
    fn a_model_finds_the_kinds_of_profiles_and_assigns_new_ones() {
        let spec = Spec {
            features: vec!["views_30d".into(), "purchases_30d".into()],
            clusters: Clusters::Best { from: 2, to: 6 },
            n_init: 3,
            seed: 1,
        };
        let v = Vocabulary::default();
        let features: Vec<Features> = profiles().iter().map(|p| p.features(T0, &v)).collect();
        let rows: Vec<f64> = features
            .iter()
            .flat_map(|f| vector(f, &spec.features).unwrap())
            .collect();
        let model = Model::train(&spec, &rows).unwrap();
        assert_eq!(model.kmeans.k(), 3, "silhouette picks the three kinds");
        assert!(model.silhouette.unwrap() > 0.8);
        // Every profile of a kind gets its kind's segment, and the three differ.
        let segments: Vec<usize> = features.iter().map(|f| model.assign(f).unwrap()).collect();
        for kind in 0..3 {
            let of_kind: Vec<usize> = segments.iter().skip(kind).step_by(3).copied().collect();
            assert!(of_kind.iter().all(|s| *s == of_kind[0]));
        }
        assert_ne!(segments[0], segments[1]);
        assert_ne!(segments[1], segments[2]);
        // The stored model assigns alone.
        let stored: Model = serde_json::from_str(&serde_json::to_string(&model).unwrap()).unwrap();
        assert_eq!(stored.assign(&features[4]).unwrap(), segments[4]);
    }

    #[test]
    fn specs_are_checked() {
        let spec = |features: &[&str], clusters| Spec {
            features: features.iter().map(|s| s.to_string()).collect(),
            clusters,
            n_init: 1,
            seed: 0,
        };
        assert!(spec(&["views_30d"], Clusters::Fixed(2)).check().is_ok());
        assert!(spec(&[], Clusters::Fixed(2)).check().is_err());
        assert!(spec(&["device_type"], Clusters::Fixed(2)).check().is_err());
        assert!(spec(&["view_30d"], Clusters::Fixed(2)).check().is_err());
        assert!(spec(&["views_30d", "views_30d"], Clusters::Fixed(2))
            .check()
            .is_err());
        assert!(spec(&["views_30d"], Clusters::Best { from: 1, to: 4 })
            .check()
            .is_err());
        assert!(spec(&["views_30d"], Clusters::Fixed(0)).check().is_err());
    }
}
