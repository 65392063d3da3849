//! Missing values: k-nearest-neighbour imputation of numeric features, as scikit-learn's
//! `KNNImputer` does it (uniform weights, the `nan_euclidean` distance), so a pipeline
//! moved from scikit-learn gives the same values.
use crate::error::{Error, Result};

/// `KNNImputer(n_neighbors = k)`: each missing value becomes the mean of that feature
/// over the `k` nearest rows that have it, nearness measured on the features both rows
/// have, scaled up for the ones missing (`sqrt(n / present · Σ (x - y)²)`). A row that
/// shares no present feature with any donor gets the feature's mean. Rows are given as
/// `dim` values each, `NaN` for missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnnImputer {
    k: usize,
}

impl KnnImputer {
    /// An imputer of `k` neighbours (at least 1).
    pub fn new(k: usize) -> Result<KnnImputer> {
        if k == 0 {
            return Err(Error::Parameter {
                name: "k",
                reason: "at least 1 neighbour".into(),
            });
        }
        Ok(KnnImputer { k })
    }

    /// Fills the missing values of `rows` (row-major, `dim` per row), the rows being their
    /// own donors, as `fit_transform` does. A feature missing in every row is refused
    /// (scikit-learn drops it).
    pub fn fit_transform(&self, rows: &[f64], dim: usize) -> Result<Vec<f64>> {
        if dim == 0 || !rows.len().is_multiple_of(dim) {
            return Err(Error::Data(format!(
                "{} values do not make rows of {dim}",
                rows.len()
            )));
        }
        if rows.iter().any(|v| v.is_infinite()) {
            return Err(Error::Data("an infinite value (missing is NaN)".into()));
        }
        let n = rows.len() / dim;
        let row = |i: usize| &rows[i * dim..(i + 1) * dim];
        let mut means = vec![0.0; dim];
        for (c, mean) in means.iter_mut().enumerate() {
            let present: Vec<f64> = (0..n).map(|i| row(i)[c]).filter(|v| !v.is_nan()).collect();
            if present.is_empty() {
                return Err(Error::Data(format!("feature {c} is missing in every row")));
            }
            *mean = present.iter().sum::<f64>() / present.len() as f64;
        }
        let mut out = rows.to_vec();
        for r in 0..n {
            let missing: Vec<usize> = (0..dim).filter(|&c| row(r)[c].is_nan()).collect();
            if missing.is_empty() {
                continue;
            }
            let distances: Vec<f64> = (0..n).map(|d| nan_euclidean(row(r), row(d))).collect();
            for &c in &missing {
                // Donors: rows that have feature c, nearest first; those at no defined
                // distance (no feature in common) count for nothing.
                let mut donors: Vec<(f64, usize)> = (0..n)
                    .filter(|&d| !row(d)[c].is_nan())
                    .map(|d| (distances[d], d))
                    .collect();
                let defined: Vec<(f64, usize)> = donors
                    .iter()
                    .copied()
                    .filter(|(dist, _)| !dist.is_nan())
                    .collect();
                if defined.is_empty() {
                    out[r * dim + c] = means[c];
                    continue;
                }
                donors = defined;
                donors.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                let nearest = &donors[..self.k.min(donors.len())];
                out[r * dim + c] =
                    nearest.iter().map(|&(_, d)| row(d)[c]).sum::<f64>() / nearest.len() as f64;
            }
        }
        Ok(out)
    }
}

/// scikit-learn's `nan_euclidean_distances` for one pair: NaN when no feature is present
/// in both.
fn nan_euclidean(a: &[f64], b: &[f64]) -> f64 {
    let (mut sum, mut present) = (0.0, 0usize);
    for (x, y) in a.iter().zip(b) {
        if !x.is_nan() && !y.is_nan() {
            sum += (x - y) * (x - y);
            present += 1;
        }
    }
    if present == 0 {
        return f64::NAN;
    }
    (a.len() as f64 / present as f64 * sum).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_value_is_the_mean_of_its_nearest_donors() {
        let nan = f64::NAN;
        let rows = [1.0, 2.0, nan, 3.0, 4.0, 3.0, nan, 6.0, 5.0, 8.0, 8.0, 7.0];
        // scikit-learn: KNNImputer(n_neighbors=2).fit_transform(rows.reshape(4, 3))
        // [[1, 2, 4], [3, 4, 3], [5.5, 6, 5], [8, 8, 7]]
        let out = KnnImputer::new(2).unwrap().fit_transform(&rows, 3).unwrap();
        assert_eq!(
            out,
            vec![1.0, 2.0, 4.0, 3.0, 4.0, 3.0, 5.5, 6.0, 5.0, 8.0, 8.0, 7.0]
        );
        assert!(KnnImputer::new(0).is_err());
        assert!(KnnImputer::new(1)
            .unwrap()
            .fit_transform(&[nan, 1.0, nan, 2.0], 2)
            .is_err());
    }
}
