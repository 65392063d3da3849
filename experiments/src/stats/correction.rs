//! Adjusted p-values for many comparisons at once (variants × metrics), as statsmodels'
//! `multipletests` computes them.

/// Holm's step-down adjustment (controls the family-wise error rate): the `k`-th
/// smallest p-value times `m − k + 1`, made non-decreasing, at most 1.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; m];
    let mut running = 0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

/// Benjamini and Hochberg's step-up adjustment (controls the false discovery rate):
/// the `k`-th smallest p-value times `m / k`, made non-decreasing from the largest
/// down, at most 1.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; m];
    let mut running = 1f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p[i] * m as f64 / (rank + 1) as f64);
        out[i] = running;
    }
    out
}
