//! How good a clustering is: agreement with known labels (adjusted Rand index).
use std::collections::HashMap;

use crate::error::{Error, Result};

/// The adjusted Rand index of two labellings of the same points (Hubert and Arabie 1985;
/// scikit-learn's `adjusted_rand_score`): 1 when they group the points alike, about 0 for
/// a random labelling. Label values need not match, only the groups.
pub fn adjusted_rand_index(a: &[u32], b: &[u32]) -> Result<f64> {
    if a.len() != b.len() {
        return Err(Error::Shape(format!(
            "{} labels against {}",
            a.len(),
            b.len()
        )));
    }
    let n = a.len() as f64;
    let pairs = |c: f64| c * (c - 1.0) / 2.0;
    let mut table: HashMap<(u32, u32), f64> = HashMap::new();
    let (mut rows, mut cols): (HashMap<u32, f64>, HashMap<u32, f64>) = Default::default();
    for (&x, &y) in a.iter().zip(b) {
        *table.entry((x, y)).or_default() += 1.0;
        *rows.entry(x).or_default() += 1.0;
        *cols.entry(y).or_default() += 1.0;
    }
    let index: f64 = table.values().map(|&c| pairs(c)).sum();
    let sum_rows: f64 = rows.values().map(|&c| pairs(c)).sum();
    let sum_cols: f64 = cols.values().map(|&c| pairs(c)).sum();
    let expected = sum_rows * sum_cols / pairs(n);
    let max = (sum_rows + sum_cols) / 2.0;
    if max == expected {
        // Both labellings put everything in one group, or every point alone.
        return Ok(1.0);
    }
    Ok((index - expected) / (max - expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ari_is_1_for_the_same_groups_under_other_names() {
        let a = [0, 0, 1, 1, 2, 2];
        let b = [5, 5, 3, 3, 9, 9];
        assert!((adjusted_rand_index(&a, &b).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn ari_matches_scikit_learns_value() {
        // sklearn.metrics.adjusted_rand_score([0, 0, 1, 2], [0, 0, 1, 1]) = 0.5714285714285715
        let v = adjusted_rand_index(&[0, 0, 1, 2], &[0, 0, 1, 1]).unwrap();
        assert!((v - 0.5714285714285715).abs() < 1e-12, "{v}");
        assert!(adjusted_rand_index(&[0], &[0, 1]).is_err());
    }
}
