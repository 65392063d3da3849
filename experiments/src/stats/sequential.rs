//! Always-valid inference, so a team can look every day without inflating false
//! positives: the mixture sequential probability ratio test (mSPRT, Johari, Pekelis and
//! Walsh 2017) with a normal mixture over the effect, `N(0, τ²)`. For an estimate `Δ`
//! with variance `V` the likelihood ratio is
//! `Λ = √(V / (V + τ²)) · exp(τ² Δ² / (2 V (V + τ²)))`; the always-valid p-value is
//! `min(1, 1 / Λ)`, and the confidence sequence is every effect whose test would not
//! reject: `Δ ± √(V (V + τ²) / τ² · (2 ln(1 / α) + ln((V + τ²) / V)))`. Both hold at
//! every sample size at once.

use serde::{Deserialize, Serialize};

use super::{check_alpha, Comparison, Interval};
use crate::error::{invalid, Result};

/// An always-valid p-value and interval of the absolute difference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sequential {
    /// The difference's confidence sequence at this look.
    pub absolute: Interval,
    /// The always-valid p-value.
    pub p_value: f64,
    /// The mixture's variance τ² used.
    pub mixture_variance: f64,
}

/// The mSPRT of a comparison between groups of `n_control` and `n_treatment`
/// visitors, its mixture tuned so the test is sharpest at `tuning` visitors per group
/// (τ² = 2σ² / tuning, σ² the per-visitor variance the comparison implies; GrowthBook
/// defaults its own tuning to 5,000), at level `1 − alpha`.
pub fn msprt(
    c: &Comparison,
    n_control: u64,
    n_treatment: u64,
    tuning: f64,
    alpha: f64,
) -> Result<Sequential> {
    check_alpha(alpha)?;
    if !(tuning.is_finite() && tuning > 0.0) {
        return Err(invalid("tuning", "must be a finite number > 0"));
    }
    if n_control == 0 || n_treatment == 0 {
        return Err(invalid("visitors", "each group needs visitors"));
    }
    let v = c.std_error * c.std_error;
    let sigma2 = v / (1.0 / n_control as f64 + 1.0 / n_treatment as f64);
    let tau2 = 2.0 * sigma2 / tuning;
    let d = c.absolute.estimate;
    let log_lambda = 0.5 * (v / (v + tau2)).ln() + tau2 * d * d / (2.0 * v * (v + tau2));
    let p_value = (-log_lambda).exp().min(1.0);
    let half = (v * (v + tau2) / tau2 * (2.0 * (1.0 / alpha).ln() + ((v + tau2) / v).ln())).sqrt();
    Ok(Sequential {
        absolute: Interval::around(d, half),
        p_value,
        mixture_variance: tau2,
    })
}
