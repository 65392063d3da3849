//! A segmentation model: which numeric features it reads, the scaler fitted on them, and
//! clusters over the scaled features (k-means, a Gaussian mixture, or Ward's
//! agglomerative clustering); stored whole, so it assigns a profile on its own.
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    gmm::{Covariance, GaussianMixture, GmmParams},
    kmeans::{inertia, KMeansModel, KMeansParams},
    metrics::silhouette,
    points::Points,
    profile::Features,
    rules::{feature, feature_names},
    scale::StandardScaler,
    ward::ward,
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

/// Points Ward's clustering takes (a sample of them beyond).
pub const WARD_SAMPLE: usize = 20_000;

/// How clusters are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// k-means (k-means++ starts, Hamerly's iterations); k by silhouette.
    #[default]
    KMeans,
    /// A Gaussian mixture by EM with full or diagonal covariances; k by BIC.
    Gmm(Covariance),
    /// Agglomerative clustering by Ward's criterion, on a sample of at most
    /// [`WARD_SAMPLE`]; k by silhouette; profiles assigned to the nearest cluster mean.
    Ward,
}

/// What to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Numeric features by name ([`feature_names`]): `purchases_30d`, `engagement`…
    pub features: Vec<String>,
    /// How many clusters.
    pub clusters: Clusters,
    /// How (k-means unless given).
    #[serde(default)]
    pub method: Method,
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
    !matches!(name, "device_type" | "country" | "locale" | "sparse") && !name.contains("_touch.")
}

/// What a model fitted over the scaled features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fitted {
    /// Centroids: k-means', or the means of Ward's clusters.
    KMeans(KMeansModel),
    /// A Gaussian mixture.
    Gmm(GaussianMixture),
}

/// A trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// The features it reads, in order.
    pub features: Vec<String>,
    /// Fitted on the training profiles' features.
    pub scaler: StandardScaler,
    /// Over the scaled features.
    pub fitted: Fitted,
    /// Mean silhouette on the training data (a sample of [`SILHOUETTE_SAMPLE`]) of the
    /// hard assignments; None for a single cluster.
    pub silhouette: Option<f64>,
    /// A mixture's Bayesian information criterion on the training data.
    pub bic: Option<f64>,
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
        // Ward's chain is quadratic: it clusters a sample, and the other points go to the
        // nearest of its clusters' centroids.
        let sample = (spec.method == Method::Ward && points.len() > WARD_SAMPLE)
            .then(|| sample_rows(points, WARD_SAMPLE, spec.seed));
        let ward_points = match &sample {
            Some(rows) => Points::new(rows, dim)?,
            None => points,
        };
        let dendrogram = match spec.method {
            Method::Ward => Some(ward(ward_points)?),
            _ => None,
        };
        let fit = |k: usize| -> Result<Fitted> {
            match spec.method {
                Method::KMeans => Ok(Fitted::KMeans(
                    KMeansParams::new(k)
                        .n_init(spec.n_init)
                        .seed(spec.seed)
                        .check()?
                        .fit(points)?,
                )),
                Method::Gmm(covariance) => Ok(Fitted::Gmm(
                    GmmParams::new(k)
                        .covariance(covariance)
                        .n_init(spec.n_init)
                        .seed(spec.seed)
                        .check()?
                        .fit(points)?,
                )),
                Method::Ward => {
                    let labels = dendrogram.as_ref().expect("made for ward").cut(k)?;
                    let mut centroids = vec![0.0; k * dim];
                    let mut counts = vec![0usize; k];
                    for (i, l) in labels.iter().enumerate() {
                        let l = *l as usize;
                        counts[l] += 1;
                        for (c, x) in centroids[l * dim..(l + 1) * dim]
                            .iter_mut()
                            .zip(ward_points.row(i))
                        {
                            *c += x;
                        }
                    }
                    for (l, n) in counts.iter().enumerate() {
                        for c in &mut centroids[l * dim..(l + 1) * dim] {
                            *c /= *n as f64;
                        }
                    }
                    Ok(Fitted::KMeans(KMeansModel {
                        dim,
                        inertia: inertia(points, &centroids, k),
                        centroids,
                        n_iter: 0,
                        converged: true,
                    }))
                }
            }
        };
        let score = |fitted: &Fitted| -> Result<Scores> {
            let labels: Vec<u32> = match fitted {
                Fitted::KMeans(m) => m.predict_all(points)?,
                Fitted::Gmm(g) => (0..points.len())
                    .map(|i| g.predict(points.row(i)).map(|l| l as u32))
                    .collect::<Result<_>>()?,
            };
            let bic = match fitted {
                Fitted::Gmm(g) => Some(g.bic(points)?),
                Fitted::KMeans(_) => None,
            };
            let distinct = labels
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            let s = if distinct < 2 {
                None
            } else {
                Some(silhouette(
                    points,
                    &labels,
                    Some((SILHOUETTE_SAMPLE, spec.seed)),
                )?)
            };
            Ok((s, bic))
        };
        let (fitted, (silhouette, bic)) = match spec.clusters {
            Clusters::Fixed(k) => {
                let m = fit(k)?;
                let s = score(&m)?;
                (m, s)
            }
            Clusters::Best { from, to } => {
                // Mixtures by the lowest BIC, the others by the highest silhouette.
                let rank = |(s, bic): Scores| match bic {
                    Some(b) => -b,
                    None => s.unwrap_or(f64::NEG_INFINITY),
                };
                let mut best: Option<(Fitted, Scores)> = None;
                for k in from..=to.min(points.len().saturating_sub(1)) {
                    let m = fit(k)?;
                    let s = score(&m)?;
                    if best.as_ref().is_none_or(|(_, b)| rank(s) > rank(*b)) {
                        best = Some((m, s));
                    }
                }
                best.ok_or_else(|| {
                    Error::Data(format!(
                        "{} profiles are too few for {from} clusters",
                        points.len()
                    ))
                })?
            }
        };
        Ok(Model {
            features: spec.features.clone(),
            scaler,
            fitted,
            silhouette,
            bic,
            trained_on: points.len(),
        })
    }

    /// Clusters.
    pub fn k(&self) -> usize {
        match &self.fitted {
            Fitted::KMeans(m) => m.k(),
            Fitted::Gmm(g) => g.k(),
        }
    }

    /// Sum of squared distances of the training profiles to their nearest centroid
    /// (scaled features); None for a mixture.
    pub fn inertia(&self) -> Option<f64> {
        match &self.fitted {
            Fitted::KMeans(m) => Some(m.inertia),
            Fitted::Gmm(_) => None,
        }
    }

    fn scaled(&self, features: &Features) -> Result<Vec<f64>> {
        let raw = vector(features, &self.features)?;
        let mut scaled = vec![0.0; raw.len()];
        self.scaler.transform_row(&raw, &mut scaled)?;
        Ok(scaled)
    }

    /// The segment of a profile: the nearest centroid to its scaled features, or the
    /// most likely component of a mixture.
    pub fn assign(&self, features: &Features) -> Result<usize> {
        let scaled = self.scaled(features)?;
        match &self.fitted {
            Fitted::KMeans(m) => m.predict(&scaled),
            Fitted::Gmm(g) => g.predict(&scaled),
        }
    }

    /// The probability of each segment for a profile: a mixture's soft assignment, or
    /// 1 for the nearest centroid.
    pub fn probabilities(&self, features: &Features) -> Result<Vec<f64>> {
        let scaled = self.scaled(features)?;
        match &self.fitted {
            Fitted::KMeans(m) => {
                let mut p = vec![0.0; m.k()];
                p[m.predict(&scaled)?] = 1.0;
                Ok(p)
            }
            Fitted::Gmm(g) => g.predict_proba(&scaled),
        }
    }
}

/// A fit's silhouette and, for a mixture, BIC.
type Scores = (Option<f64>, Option<f64>);

/// `n` rows of `points` drawn without replacement by `seed`, in their order.
fn sample_rows(points: Points<'_>, n: usize, seed: u64) -> Vec<f64> {
    use rand::{seq::index::sample, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut picked = sample(&mut rng, points.len(), n).into_vec();
    picked.sort_unstable();
    picked
        .into_iter()
        .flat_map(|i| points.row(i).iter().copied())
        .collect()
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
        for method in [
            Method::KMeans,
            Method::Gmm(Covariance::Diag),
            Method::Gmm(Covariance::Full),
            Method::Ward,
        ] {
            finds_the_kinds(method);
        }
    }

    fn finds_the_kinds(method: Method) {
        let spec = Spec {
            features: vec!["views_30d".into(), "purchases_30d".into()],
            // On these few discrete values BIC rewards a component per value (gmm's own
            // tests check its choice on continuous data): mixtures get k.
            clusters: match method {
                Method::Gmm(_) => Clusters::Fixed(3),
                _ => Clusters::Best { from: 2, to: 6 },
            },
            method,
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
        assert_eq!(model.k(), 3, "{method:?}: picks the three kinds");
        assert!(model.silhouette.unwrap() > 0.8);
        assert_eq!(model.bic.is_some(), matches!(method, Method::Gmm(_)));
        // Every profile of a kind gets its kind's segment, and the three differ.
        let segments: Vec<usize> = features.iter().map(|f| model.assign(f).unwrap()).collect();
        for kind in 0..3 {
            let of_kind: Vec<usize> = segments.iter().skip(kind).step_by(3).copied().collect();
            assert!(of_kind.iter().all(|s| *s == of_kind[0]), "{method:?}");
        }
        assert_ne!(segments[0], segments[1]);
        assert_ne!(segments[1], segments[2]);
        // The stored model assigns alone.
        let stored: Model = serde_json::from_str(&serde_json::to_string(&model).unwrap()).unwrap();
        assert_eq!(stored.assign(&features[4]).unwrap(), segments[4]);
        let p = stored.probabilities(&features[4]).unwrap();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12 && p[segments[4]] > 0.99);
    }

    #[test]
    fn specs_are_checked() {
        let spec = |features: &[&str], clusters| Spec {
            features: features.iter().map(|s| s.to_string()).collect(),
            clusters,
            method: Method::KMeans,
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
