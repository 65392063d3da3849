//! Drift: how far a live distribution has moved from the training window's, as the
//! Kullback–Leibler divergence `KL(live ‖ train)` of histograms over the training
//! window's bins, each smoothed by adding `alpha` to every bin (so an empty bin does not
//! make the divergence infinite).

use serde::{Deserialize, Serialize};

use crate::error::{parameter, Error, Result};

/// Bin edges fitted on the training window: equal-count (quantile) bins, so each holds
/// about the same share of training values and a shift anywhere shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bins {
    /// Inner edges, ascending; `edges.len() + 1` bins (the outer ones open-ended).
    edges: Vec<f64>,
    /// Training counts per bin.
    train: Vec<u64>,
}

impl Bins {
    /// Up to `bins` quantile bins of the training values (fewer when values repeat).
    pub fn fit(train: &[f64], bins: usize) -> Result<Bins> {
        if bins < 2 {
            return Err(parameter("bins", "must be at least 2"));
        }
        if let Some(v) = train.iter().find(|v| !v.is_finite()) {
            return Err(Error::Data(format!("value {v} is not finite")));
        }
        if train.is_empty() {
            return Err(Error::Data("no training values".into()));
        }
        let mut sorted = train.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mut edges: Vec<f64> = (1..bins)
            .map(|b| sorted[(b * sorted.len() / bins).min(sorted.len() - 1)])
            .collect();
        edges.dedup();
        let mut out = Bins {
            train: vec![0; edges.len() + 1],
            edges,
        };
        out.train = out.counts(train);
        Ok(out)
    }

    /// The number of bins.
    pub fn len(&self) -> usize {
        self.edges.len() + 1
    }

    /// Whether there are none (never: a fitted `Bins` has at least one).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Counts of `values` per bin (a value equal to an edge falls in the bin above it;
    /// values that are not finite are skipped).
    pub fn counts(&self, values: &[f64]) -> Vec<u64> {
        let mut c = vec![0u64; self.len()];
        for v in values.iter().filter(|v| v.is_finite()) {
            c[self.edges.partition_point(|e| e <= v)] += 1;
        }
        c
    }

    /// `KL(live ‖ train)` in nats, both histograms smoothed by `alpha` per bin.
    pub fn divergence(&self, live: &[f64], alpha: f64) -> f64 {
        kl_divergence(&self.counts(live), &self.train, alpha)
    }
}

/// `KL(P ‖ Q) = Σ p log(p / q)` in nats of two histograms over the same bins, each made
/// a distribution after adding `alpha` (> 0) to every bin. 0 when they are equal.
pub fn kl_divergence(p: &[u64], q: &[u64], alpha: f64) -> f64 {
    assert_eq!(p.len(), q.len(), "histograms over different bins");
    let alpha = alpha.max(f64::MIN_POSITIVE);
    let total = |h: &[u64]| h.iter().sum::<u64>() as f64 + alpha * h.len() as f64;
    let (tp, tq) = (total(p), total(q));
    p.iter()
        .zip(q)
        .map(|(&a, &b)| {
            let (pa, qb) = ((a as f64 + alpha) / tp, (b as f64 + alpha) / tq);
            pa * (pa / qb).ln()
        })
        .sum()
}

/// A live distribution watched against the training window's: values observed as they
/// come, the divergence from the training histogram, and whether it calls for
/// retraining (past `threshold` once at least `min_samples` were seen).
#[derive(Debug, Clone, PartialEq)]
pub struct Monitor {
    bins: Bins,
    live: Vec<u64>,
    observed: u64,
    threshold: f64,
    min_samples: u64,
}

/// The smoothing each bin gets (a pseudo-count).
pub const SMOOTHING: f64 = 0.5;

impl Monitor {
    /// Watches live values against `bins` (fitted on the training window).
    pub fn new(bins: Bins, threshold: f64, min_samples: u64) -> Monitor {
        Monitor {
            live: vec![0; bins.len()],
            bins,
            observed: 0,
            threshold,
            min_samples,
        }
    }

    /// Counts one live value (one that is not finite is skipped).
    pub fn observe(&mut self, value: f64) {
        if value.is_finite() {
            self.live[self.bins.edges.partition_point(|e| *e <= value)] += 1;
            self.observed += 1;
        }
    }

    /// Live values counted so far.
    pub fn observed(&self) -> u64 {
        self.observed
    }

    /// `KL(live ‖ train)` so far; None before `min_samples`.
    pub fn divergence(&self) -> Option<f64> {
        (self.observed >= self.min_samples.max(1))
            .then(|| kl_divergence(&self.live, &self.bins.train, SMOOTHING))
    }

    /// Whether the divergence has passed the threshold.
    pub fn due(&self) -> bool {
        self.divergence().is_some_and(|d| d > self.threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn hand_computed_and_smoothed() {
        // P = (1/2, 1/2), Q = (1/4, 3/4) with no smoothing to speak of.
        let kl = kl_divergence(&[1, 1], &[1, 3], 1e-12);
        let want = 0.5 * (0.5f64 / 0.25).ln() + 0.5 * (0.5f64 / 0.75).ln();
        assert!((kl - want).abs() < 1e-9);
        assert_eq!(kl_divergence(&[3, 5], &[3, 5], 0.5), 0.0);
        assert!(kl_divergence(&[5, 0], &[0, 5], 0.5).is_finite());
    }

    #[test]
    fn a_shift_is_flagged_and_a_resample_is_not() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut normal = |shift: f64| -> Vec<f64> {
            (0..20_000)
                .map(|_| (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0 + shift)
                .collect()
        };
        let train = normal(0.0);
        let bins = Bins::fit(&train, 20).unwrap();
        assert_eq!(bins.len(), 20);
        let same = bins.divergence(&normal(0.0), 0.5);
        let moved = bins.divergence(&normal(0.5), 0.5);
        assert!(same < 0.01, "a resample diverges by {same}");
        assert!(
            moved > 0.1,
            "a shift of half a deviation diverges by only {moved}"
        );
        assert!(Bins::fit(&[1.0, f64::NAN], 4).is_err());
    }

    #[test]
    fn a_monitor_flags_a_shift_and_not_a_resample() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut draw = |shift: f64| (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0 + shift;
        let train: Vec<f64> = (0..10_000).map(|_| draw(0.0)).collect();
        let bins = Bins::fit(&train, 20).unwrap();
        let mut same = Monitor::new(bins.clone(), 0.1, 500);
        let mut moved = Monitor::new(bins, 0.1, 500);
        for n in 0..2_000 {
            same.observe(draw(0.0));
            moved.observe(draw(1.0));
            if n < 499 {
                assert_eq!(moved.divergence(), None, "too few to say");
            }
        }
        assert!(!same.due(), "a resample: {:?}", same.divergence());
        assert!(
            moved.due(),
            "a shift of one deviation: {:?}",
            moved.divergence()
        );
        assert_eq!(moved.observed(), 2_000);
    }
}
