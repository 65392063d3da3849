//! The sample-ratio-mismatch check: visitors per variant against the weights they were
//! split by. A mismatch means the split or the counting is broken, and no other
//! figure of the experiment can be trusted.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF};

use crate::error::{invalid, Result};

/// The p-value under which a mismatch is flagged (as GrowthBook).
pub const SRM_ALPHA: f64 = 0.001;
/// The visitors every variant needs before the check is made (as GrowthBook).
pub const SRM_MIN_VISITORS: u64 = 8;

/// The check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Srm {
    /// Pearson's chi-square statistic of goodness of fit.
    pub statistic: f64,
    /// Its p-value (variants − 1 degrees of freedom).
    pub p_value: f64,
    /// Whether every variant had [`SRM_MIN_VISITORS`]: otherwise nothing is flagged.
    pub checked: bool,
    /// Checked and `p_value < SRM_ALPHA`.
    pub mismatch: bool,
}

/// The chi-square goodness of fit of `observed` visitors per variant against the
/// split's `weights` (SciPy's `chisquare(observed, expected)`).
pub fn sample_ratio(observed: &[u64], weights: &[f64]) -> Result<Srm> {
    if observed.len() != weights.len() || observed.len() < 2 {
        return Err(invalid(
            "weights",
            "one weight per variant, and at least two variants",
        ));
    }
    if weights.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
        return Err(invalid("weights", "each must be a finite number > 0"));
    }
    let total: u64 = observed.iter().sum();
    let w_sum: f64 = weights.iter().sum();
    let checked = observed.iter().all(|&o| o >= SRM_MIN_VISITORS);
    if total == 0 {
        return Ok(Srm {
            statistic: 0.0,
            p_value: 1.0,
            checked: false,
            mismatch: false,
        });
    }
    let statistic: f64 = observed
        .iter()
        .zip(weights)
        .map(|(&o, &w)| {
            let e = total as f64 * w / w_sum;
            (o as f64 - e).powi(2) / e
        })
        .sum();
    let df = (observed.len() - 1) as f64;
    let p_value = ChiSquared::new(df).expect("df ≥ 1").sf(statistic);
    Ok(Srm {
        statistic,
        p_value,
        checked,
        mismatch: checked && p_value < SRM_ALPHA,
    })
}
