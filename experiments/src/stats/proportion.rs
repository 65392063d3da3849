//! Conversion rates: visitors and how many converted.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF};

use super::{check_alpha, p_normal, relative_variance, z_two_sided, Comparison, Interval};
use crate::error::{Error, Result};

/// A rate's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proportion {
    /// Visitors.
    pub n: u64,
    /// Visitors who converted (at most `n`).
    pub x: u64,
}

impl Proportion {
    fn rate(self) -> f64 {
        self.x as f64 / self.n as f64
    }

    fn checked(self) -> Result<Proportion> {
        if self.n == 0 || self.x > self.n {
            return Err(Error::Insufficient(format!(
                "a rate needs visitors and no more conversions than visitors ({} of {})",
                self.x, self.n
            )));
        }
        Ok(self)
    }
}

/// The two-proportion z-test of `treatment` against `control` (pooled variance under
/// the null, as statsmodels' `proportions_ztest`), the Wald interval of the difference
/// (unpooled) and the delta-method interval of the relative lift, at level
/// `1 − alpha`.
pub fn two_proportions(
    control: Proportion,
    treatment: Proportion,
    alpha: f64,
) -> Result<Comparison> {
    check_alpha(alpha)?;
    let (a, b) = (control.checked()?, treatment.checked()?);
    let (pa, pb) = (a.rate(), b.rate());
    let (na, nb) = (a.n as f64, b.n as f64);
    let pooled = (a.x + b.x) as f64 / (na + nb);
    let se0 = (pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb)).sqrt();
    if se0 == 0.0 {
        return Err(Error::Insufficient(
            "every visitor converted, or none did: the rates have no variance".into(),
        ));
    }
    let z = (pb - pa) / se0;
    let (va, vb) = (pa * (1.0 - pa) / na, pb * (1.0 - pb) / nb);
    let q = z_two_sided(alpha);
    let relative = if pa > 0.0 {
        Interval::around(pb / pa - 1.0, q * relative_variance(pa, va, pb, vb).sqrt())
    } else {
        Interval {
            estimate: f64::NAN,
            low: f64::NAN,
            high: f64::NAN,
        }
    };
    Ok(Comparison {
        control: pa,
        treatment: pb,
        absolute: Interval::around(pb - pa, q * (va + vb).sqrt()),
        relative,
        std_error: (va + vb).sqrt(),
        statistic: z,
        df: None,
        p_value: p_normal(z),
    })
}

/// Pearson's chi-square test of independence on the 2 × 2 table of converted and not
/// converted per group, without continuity correction (SciPy's `chi2_contingency(…,
/// correction=False)`): the statistic and its p-value (1 degree of freedom).
pub fn chi_square(control: Proportion, treatment: Proportion) -> Result<(f64, f64)> {
    let (a, b) = (control.checked()?, treatment.checked()?);
    let table = [
        [a.x as f64, (a.n - a.x) as f64],
        [b.x as f64, (b.n - b.x) as f64],
    ];
    let total = (a.n + b.n) as f64;
    let cols = [table[0][0] + table[1][0], table[0][1] + table[1][1]];
    if cols.contains(&0.0) {
        return Err(Error::Insufficient(
            "every visitor converted, or none did: the table has an empty column".into(),
        ));
    }
    let rows = [a.n as f64, b.n as f64];
    let mut stat = 0.0;
    for (r, row) in table.iter().enumerate() {
        for (c, &observed) in row.iter().enumerate() {
            let expected = rows[r] * cols[c] / total;
            stat += (observed - expected).powi(2) / expected;
        }
    }
    let p = ChiSquared::new(1.0).expect("1 df").sf(stat);
    Ok((stat, p))
}
