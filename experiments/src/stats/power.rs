//! Fixed-horizon sample sizes: how many visitors per variant a test needs to detect a
//! given effect with a given power. A verdict before that many is a peek, unless the
//! sequential option is on.

use statrs::distribution::{ContinuousCDF, Normal};

use super::{check_alpha, z_two_sided};
use crate::error::{invalid, Result};

fn z_power(power: f64) -> Result<f64> {
    if !(power.is_finite() && power > 0.0 && power < 1.0) {
        return Err(invalid("power", "must be strictly between 0 and 1"));
    }
    Ok(Normal::new(0.0, 1.0).expect("valid").inverse_cdf(power))
}

/// Visitors per variant to detect a relative lift of `mde` (0.1 = +10 %) on a
/// `baseline` rate, two-sided at `alpha` with `power`:
/// `(z₁₋α/₂ + z_power)² (p₁(1 − p₁) + p₂(1 − p₂)) / (p₂ − p₁)²`, rounded up.
pub fn sample_size_proportions(baseline: f64, mde: f64, alpha: f64, power: f64) -> Result<u64> {
    check_alpha(alpha)?;
    let zb = z_power(power)?;
    let p1 = baseline;
    let p2 = baseline * (1.0 + mde);
    if !(p1 > 0.0 && p1 < 1.0 && p2 > 0.0 && p2 < 1.0 && mde != 0.0 && mde.is_finite()) {
        return Err(invalid(
            "baseline",
            "the baseline rate and the rate after the lift must be strictly between 0 and 1, the lift not 0",
        ));
    }
    let z = z_two_sided(alpha) + zb;
    Ok((z * z * (p1 * (1.0 - p1) + p2 * (1.0 - p2)) / (p2 - p1).powi(2)).ceil() as u64)
}

/// Visitors per variant to detect an absolute difference `delta` between means of a
/// metric with standard deviation `sd`: `2 (z₁₋α/₂ + z_power)² sd² / delta²`, rounded up.
pub fn sample_size_means(sd: f64, delta: f64, alpha: f64, power: f64) -> Result<u64> {
    check_alpha(alpha)?;
    let zb = z_power(power)?;
    if !(sd.is_finite() && sd > 0.0 && delta.is_finite() && delta != 0.0) {
        return Err(invalid(
            "delta",
            "sd must be > 0 and delta a number other than 0",
        ));
    }
    let z = z_two_sided(alpha) + zb;
    Ok((2.0 * z * z * sd * sd / (delta * delta)).ceil() as u64)
}
