//! Splits of subjects into variants by weight, and layers that keep experiments apart.
//!
//! A split's variant `i` owns the range `[Wᵢ, Wᵢ + coverage · wᵢ)` of `[0, 1)`, where
//! `Wᵢ` is the sum of the weights before it: a subject is in variant `i` when its
//! bucket falls there, and outside the experiment otherwise. Raising the coverage only
//! adds subjects. Changing weights would move some, which is why assignments are
//! stored and a stored one wins ([`assign`]).

use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};
use crate::hash::bucket;

/// A split as defined: a weight per variant (each ≥ 0, summing to 1) and the share of
/// subjects taking part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitParams {
    /// One weight per variant.
    pub weights: Vec<f64>,
    /// In `(0, 1]`.
    #[serde(default = "one")]
    pub coverage: f64,
}

fn one() -> f64 {
    1.0
}

/// A split that passed [`SplitParams::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Each variant's `[start, end)`.
    ranges: Vec<(f64, f64)>,
    weights: Vec<f64>,
}

/// The most variants a split may have.
pub const MAX_VARIANTS: usize = 20;

impl SplitParams {
    /// Checks the weights (2 to [`MAX_VARIANTS`], each finite and ≥ 0, summing to 1
    /// within 10⁻⁶) and the coverage.
    pub fn check(&self) -> Result<Split> {
        let w = &self.weights;
        if !(2..=MAX_VARIANTS).contains(&w.len()) {
            return Err(invalid(
                "weights",
                format!("2 to {MAX_VARIANTS} variants, not {}", w.len()),
            ));
        }
        if let Some(i) = w.iter().position(|x| !(x.is_finite() && *x >= 0.0)) {
            return Err(invalid(
                "weights",
                format!("weight {i} must be a finite number ≥ 0"),
            ));
        }
        let sum: f64 = w.iter().sum();
        if (sum - 1.0).abs() > 1e-6 {
            return Err(invalid("weights", format!("must sum to 1, not {sum}")));
        }
        if !(self.coverage.is_finite() && self.coverage > 0.0 && self.coverage <= 1.0) {
            return Err(invalid("coverage", "must be in (0, 1]"));
        }
        let mut start = 0.0;
        let ranges = w
            .iter()
            .map(|&x| {
                let r = (start, start + self.coverage * x);
                start += x;
                r
            })
            .collect();
        Ok(Split {
            ranges,
            weights: w.clone(),
        })
    }
}

impl Split {
    /// The variant owning `bucket`, if any.
    pub fn variant(&self, bucket: f64) -> Option<usize> {
        self.ranges
            .iter()
            .position(|&(a, b)| bucket >= a && bucket < b)
    }

    /// The weights.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// The number of variants.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Never: a split has at least two variants.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// A share `[start, end)` of a layer: experiments in one layer have disjoint shares, so
/// a subject is in at most one of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerShare {
    /// The layer's name (its hash seed).
    pub layer: String,
    /// In `[0, 1)`.
    pub start: f64,
    /// In `(start, 1]`.
    pub end: f64,
}

impl LayerShare {
    /// Checks `0 ≤ start < end ≤ 1`.
    pub fn check(&self) -> Result<()> {
        if !(self.start >= 0.0 && self.start < self.end && self.end <= 1.0) {
            return Err(invalid("layer", "needs 0 ≤ start < end ≤ 1"));
        }
        Ok(())
    }

    /// Whether `subject` falls in this share of its layer.
    pub fn holds(&self, subject: &str) -> bool {
        let b = bucket(&self.layer, subject);
        b >= self.start && b < self.end
    }
}

/// Checks that the shares of one layer do not overlap, naming the first two that do
/// (by their index in `shares`).
pub fn disjoint(shares: &[&LayerShare]) -> Result<()> {
    for (i, a) in shares.iter().enumerate() {
        a.check()?;
        for (j, b) in shares.iter().enumerate().skip(i + 1) {
            if a.layer == b.layer && a.start < b.end && b.start < a.end {
                return Err(invalid(
                    "layer",
                    format!(
                        "shares {i} [{}, {}) and {j} [{}, {}) of layer {:?} overlap",
                        a.start, a.end, b.start, b.end, a.layer
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// How a subject was assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assigned {
    /// As stored before (it wins over the split as it is now).
    Stored(usize),
    /// Newly, by the split: to be stored.
    New(usize),
    /// Not in the experiment (outside the coverage or the layer's share).
    Excluded,
}

impl Assigned {
    /// The variant, if any.
    pub fn variant(self) -> Option<usize> {
        match self {
            Assigned::Stored(v) | Assigned::New(v) => Some(v),
            Assigned::Excluded => None,
        }
    }
}

/// Assigns `subject` to a variant of an experiment hashed with `seed`: a stored
/// variant (still in the split) is kept, whatever the weights are now; otherwise the
/// subject must fall in the layer's share, then gets the variant its bucket falls in.
pub fn assign(
    seed: &str,
    split: &Split,
    layer: Option<&LayerShare>,
    subject: &str,
    stored: Option<usize>,
) -> Assigned {
    if let Some(v) = stored.filter(|v| *v < split.len()) {
        return Assigned::Stored(v);
    }
    if layer.is_some_and(|l| !l.holds(subject)) {
        return Assigned::Excluded;
    }
    match split.variant(bucket(seed, subject)) {
        Some(v) => Assigned::New(v),
        None => Assigned::Excluded,
    }
}
