//! How good a clustering is: agreement with known labels (adjusted Rand index), and
//! separation without them (silhouette).
use std::collections::HashMap;

use rand::{seq::index::sample, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::{
    error::{Error, Result},
    points::{squared_distance, Points},
};

/// The mean silhouette coefficient (Rousseeuw 1987; scikit-learn's `silhouette_score`):
/// for each point, `(b - a) / max(a, b)` with `a` its mean distance to the rest of its
/// cluster and `b` the least mean distance to another cluster; 0 for a point alone in its
/// cluster. From -1 to 1, higher is better separated. With `sample = Some((m, seed))`,
/// computed over `m` points drawn without replacement (distances still to every point),
/// as scikit-learn's `sample_size`: O(m·n) instead of O(n²).
pub fn silhouette(
    points: Points<'_>,
    labels: &[u32],
    sample_of: Option<(usize, u64)>,
) -> Result<f64> {
    if labels.len() != points.len() {
        return Err(Error::Shape(format!(
            "{} labels for {} points",
            labels.len(),
            points.len()
        )));
    }
    let k = labels.iter().max().map_or(0, |m| *m as usize + 1);
    let mut sizes = vec![0usize; k];
    labels.iter().for_each(|&l| sizes[l as usize] += 1);
    if sizes.iter().filter(|&&s| s > 0).count() < 2 {
        return Err(Error::Data(
            "a silhouette needs at least two clusters".into(),
        ));
    }
    let chosen: Vec<usize> = match sample_of {
        Some((m, seed)) if m < points.len() => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            sample(&mut rng, points.len(), m).into_vec()
        }
        _ => (0..points.len()).collect(),
    };
    let total: f64 = chosen
        .par_iter()
        .map(|&i| {
            let own = labels[i] as usize;
            if sizes[own] < 2 {
                return 0.0;
            }
            let mut sums = vec![0.0; k];
            let x = points.row(i);
            for (j, &l) in labels.iter().enumerate() {
                sums[l as usize] += squared_distance(x, points.row(j)).sqrt();
            }
            let a = sums[own] / (sizes[own] - 1) as f64;
            let b = (0..k)
                .filter(|&c| c != own && sizes[c] > 0)
                .map(|c| sums[c] / sizes[c] as f64)
                .fold(f64::INFINITY, f64::min);
            (b - a) / a.max(b)
        })
        .sum();
    Ok(total / chosen.len() as f64)
}

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
