//! Standardization: each feature to mean 0 and standard deviation 1, fitted on training
//! data and kept with a model so that it scales new points the same way.
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    points::Points,
};

/// Means and scales of each feature (scikit-learn's `StandardScaler`: population
/// standard deviation; a constant feature gets scale 1, so it becomes 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandardScaler {
    /// Mean of each feature.
    pub mean: Vec<f64>,
    /// Standard deviation of each feature (1 where it is 0).
    pub scale: Vec<f64>,
}

impl StandardScaler {
    /// Fits on `points` (at least one).
    pub fn fit(points: Points<'_>) -> Result<StandardScaler> {
        if points.is_empty() {
            return Err(Error::Data("cannot fit a scaler on no points".into()));
        }
        let (n, dim) = (points.len() as f64, points.dim());
        let mut mean = vec![0.0; dim];
        for i in 0..points.len() {
            for (m, v) in mean.iter_mut().zip(points.row(i)) {
                *m += v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        // Two passes: the sum of squared deviations, not E[x²] − E[x]², which cancels.
        let mut var = vec![0.0; dim];
        for i in 0..points.len() {
            for ((s, v), m) in var.iter_mut().zip(points.row(i)).zip(&mean) {
                *s += (v - m) * (v - m);
            }
        }
        let scale = var
            .iter()
            .map(|s| {
                let sd = (s / n).sqrt();
                if sd > 0.0 {
                    sd
                } else {
                    1.0
                }
            })
            .collect();
        Ok(StandardScaler { mean, scale })
    }

    /// Scales one point into `out`.
    pub fn transform_row(&self, row: &[f64], out: &mut [f64]) -> Result<()> {
        if row.len() != self.mean.len() || out.len() != row.len() {
            return Err(Error::Shape(format!(
                "the scaler has {} features, the point {}",
                self.mean.len(),
                row.len()
            )));
        }
        for (((o, v), m), s) in out.iter_mut().zip(row).zip(&self.mean).zip(&self.scale) {
            *o = (v - m) / s;
        }
        Ok(())
    }

    /// Scales every point; row-major like the input.
    pub fn transform(&self, points: Points<'_>) -> Result<Vec<f64>> {
        let mut out = vec![0.0; points.as_slice().len()];
        for (i, chunk) in out.chunks_mut(points.dim()).enumerate() {
            self.transform_row(points.row(i), chunk)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardized_features_have_mean_0_and_deviation_1() {
        let data = [1.0, 10.0, 2.0, 10.0, 3.0, 10.0, 4.0, 10.0];
        let p = Points::new(&data, 2).unwrap();
        let s = StandardScaler::fit(p).unwrap();
        assert_eq!(s.mean, vec![2.5, 10.0]);
        assert!((s.scale[0] - 1.25f64.sqrt()).abs() < 1e-15);
        assert_eq!(s.scale[1], 1.0, "a constant feature keeps scale 1");
        let t = s.transform(p).unwrap();
        let m: f64 = t.iter().step_by(2).sum::<f64>() / 4.0;
        assert!(m.abs() < 1e-15);
        assert!(t.iter().skip(1).step_by(2).all(|v| *v == 0.0));
        assert!(s.transform_row(&[1.0], &mut [0.0]).is_err());
    }
}
