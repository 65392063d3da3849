//! The statistics of an A/B test, from sufficient statistics (counts and sums, what a
//! database aggregates), each checked against SciPy / statsmodels in the golden tests:
//! proportions (two-proportion z-test, chi-square), means (Welch's t-test, CUPED),
//! always-valid intervals and p-values (mSPRT), multiple-comparison corrections (Holm,
//! Benjamini–Hochberg), the sample-ratio-mismatch check and fixed-horizon sample sizes.

mod correction;
mod mean;
mod power;
mod proportion;
mod sequential;
mod srm;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

pub use correction::{benjamini_hochberg, holm};
pub use mean::{cuped, welch, Moments, Paired};
pub use power::{sample_size_means, sample_size_proportions};
pub use proportion::{chi_square, two_proportions, Proportion};
pub use sequential::{msprt, Sequential};
pub use srm::{sample_ratio, Srm, SRM_ALPHA, SRM_MIN_VISITORS};

/// An estimate with its interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The point estimate.
    pub estimate: f64,
    /// The interval's lower end.
    pub low: f64,
    /// The interval's upper end.
    pub high: f64,
}

impl Interval {
    fn around(estimate: f64, half_width: f64) -> Interval {
        Interval {
            estimate,
            low: estimate - half_width,
            high: estimate + half_width,
        }
    }
}

/// A treatment against the control on one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The control's rate or mean.
    pub control: f64,
    /// The treatment's rate or mean.
    pub treatment: f64,
    /// `treatment − control`, with its interval.
    pub absolute: Interval,
    /// `treatment / control − 1`, with its interval (delta method).
    pub relative: Interval,
    /// The standard error of the difference (unpooled).
    pub std_error: f64,
    /// The test statistic (z or t).
    pub statistic: f64,
    /// Degrees of freedom of a t statistic (`None` for z).
    pub df: Option<f64>,
    /// The two-sided p-value.
    pub p_value: f64,
}

/// The standard normal's `1 − alpha / 2` quantile.
pub(crate) fn z_two_sided(alpha: f64) -> f64 {
    standard_normal().inverse_cdf(1.0 - alpha / 2.0)
}

/// The two-sided p-value of a standard normal statistic.
pub(crate) fn p_normal(z: f64) -> f64 {
    2.0 * standard_normal().sf(z.abs())
}

/// The two-sided p-value of a t statistic with `df` degrees of freedom, and the
/// `1 − alpha / 2` quantile.
pub(crate) fn t_two_sided(t: f64, df: f64, alpha: f64) -> (f64, f64) {
    let d = StudentsT::new(0.0, 1.0, df).expect("df > 0");
    (2.0 * d.sf(t.abs()), d.inverse_cdf(1.0 - alpha / 2.0))
}

fn standard_normal() -> Normal {
    Normal::new(0.0, 1.0).expect("a valid normal")
}

/// The delta method's variance of `b / a − 1` from the means' variances (independent
/// groups): `var_b / a² + b² var_a / a⁴`.
pub(crate) fn relative_variance(a: f64, var_a: f64, b: f64, var_b: f64) -> f64 {
    var_b / (a * a) + b * b * var_a / (a * a * a * a)
}

pub(crate) fn check_alpha(alpha: f64) -> crate::Result<()> {
    if alpha.is_finite() && alpha > 0.0 && alpha < 1.0 {
        Ok(())
    } else {
        Err(crate::error::invalid(
            "alpha",
            "must be strictly between 0 and 1",
        ))
    }
}
