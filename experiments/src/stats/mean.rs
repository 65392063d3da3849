//! Continuous metrics (revenue, dwell time): Welch's t-test, and CUPED, which removes
//! the part of each visitor's value that their value before exposure predicts.

use serde::{Deserialize, Serialize};

use super::{check_alpha, relative_variance, t_two_sided, z_two_sided, Comparison, Interval};
use crate::error::{Error, Result};

/// A group's sums of one metric per visitor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// Visitors.
    pub n: u64,
    /// Σ value.
    pub sum: f64,
    /// Σ value².
    pub sum_sq: f64,
}

impl Moments {
    /// The sums of `values`.
    pub fn of(values: &[f64]) -> Moments {
        Moments {
            n: values.len() as u64,
            sum: values.iter().sum(),
            sum_sq: values.iter().map(|v| v * v).sum(),
        }
    }
}

/// A group's sums of the metric `y` after exposure and the same metric `x` before it,
/// per visitor (what CUPED needs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    /// Visitors.
    pub n: u64,
    /// Σ y.
    pub sum_y: f64,
    /// Σ y².
    pub sum_y2: f64,
    /// Σ x.
    pub sum_x: f64,
    /// Σ x².
    pub sum_x2: f64,
    /// Σ x·y.
    pub sum_xy: f64,
}

impl Paired {
    /// The sums of `(x, y)` pairs.
    pub fn of(pairs: &[(f64, f64)]) -> Paired {
        let mut p = Paired::default();
        for &(x, y) in pairs {
            p.n += 1;
            p.sum_y += y;
            p.sum_y2 += y * y;
            p.sum_x += x;
            p.sum_x2 += x * x;
            p.sum_xy += x * y;
        }
        p
    }

    fn add(self, o: Paired) -> Paired {
        Paired {
            n: self.n + o.n,
            sum_y: self.sum_y + o.sum_y,
            sum_y2: self.sum_y2 + o.sum_y2,
            sum_x: self.sum_x + o.sum_x,
            sum_x2: self.sum_x2 + o.sum_x2,
            sum_xy: self.sum_xy + o.sum_xy,
        }
    }

    /// Sample (n − 1) variance of x, of y, and their covariance.
    fn spread(self) -> (f64, f64, f64) {
        let n = self.n as f64;
        let var_x = (self.sum_x2 - self.sum_x * self.sum_x / n) / (n - 1.0);
        let var_y = (self.sum_y2 - self.sum_y * self.sum_y / n) / (n - 1.0);
        let cov = (self.sum_xy - self.sum_x * self.sum_y / n) / (n - 1.0);
        (var_x, var_y, cov)
    }
}

/// A group's size, mean and sample variance.
#[derive(Debug, Clone, Copy)]
struct Summary {
    n: f64,
    mean: f64,
    var: f64,
}

impl Summary {
    fn of(m: Moments) -> Result<Summary> {
        if m.n < 2 {
            return Err(Error::Insufficient(format!(
                "a mean's variance needs at least 2 visitors ({})",
                m.n
            )));
        }
        let n = m.n as f64;
        let mean = m.sum / n;
        let var = ((m.sum_sq - m.sum * mean) / (n - 1.0)).max(0.0);
        Ok(Summary { n, mean, var })
    }
}

/// Welch's t-test of `treatment` against `control` (unequal variances, as SciPy's
/// `ttest_ind(…, equal_var=False)`): the difference's interval from Student's t with
/// the Welch–Satterthwaite degrees of freedom, the relative lift's from the delta
/// method (normal), at level `1 − alpha`.
pub fn welch(control: Moments, treatment: Moments, alpha: f64) -> Result<Comparison> {
    check_alpha(alpha)?;
    compare(Summary::of(control)?, Summary::of(treatment)?, alpha)
}

fn compare(a: Summary, b: Summary, alpha: f64) -> Result<Comparison> {
    let (va, vb) = (a.var / a.n, b.var / b.n);
    let se = (va + vb).sqrt();
    if se == 0.0 {
        return Err(Error::Insufficient(
            "every visitor has the same value: the means have no variance".into(),
        ));
    }
    let t = (b.mean - a.mean) / se;
    let df = (va + vb).powi(2) / (va * va / (a.n - 1.0) + vb * vb / (b.n - 1.0));
    let (p, q) = t_two_sided(t, df, alpha);
    let relative = Interval::around(
        b.mean / a.mean - 1.0,
        z_two_sided(alpha) * relative_variance(a.mean, va, b.mean, vb).sqrt(),
    );
    Ok(Comparison {
        control: a.mean,
        treatment: b.mean,
        absolute: Interval::around(b.mean - a.mean, q * se),
        relative,
        std_error: se,
        statistic: t,
        df: Some(df),
        p_value: p,
    })
}

/// Welch's t-test on CUPED-adjusted values: `y − θ (x − x̄)`, with `θ = cov(x, y) /
/// var(x)` and `x̄` over both groups, so the pre-exposure metric `x` removes variance
/// that has nothing to do with the treatment; also returns θ. The adjusted means keep
/// their expectation (x̄ is shared), so the lift is the same estimand with a tighter
/// interval.
pub fn cuped(control: Paired, treatment: Paired, alpha: f64) -> Result<(Comparison, f64)> {
    check_alpha(alpha)?;
    if control.n < 2 || treatment.n < 2 {
        return Err(Error::Insufficient(
            "CUPED needs at least 2 visitors per group".into(),
        ));
    }
    let all = control.add(treatment);
    let (var_x, _, cov) = all.spread();
    let theta = if var_x > 0.0 { cov / var_x } else { 0.0 };
    let x_bar = all.sum_x / all.n as f64;
    let adjusted = |g: Paired| {
        let n = g.n as f64;
        let (vx, vy, c) = g.spread();
        Summary {
            n,
            mean: g.sum_y / n - theta * (g.sum_x / n - x_bar),
            var: (vy + theta * theta * vx - 2.0 * theta * c).max(0.0),
        }
    };
    Ok((
        compare(adjusted(control), adjusted(treatment), alpha)?,
        theta,
    ))
}
