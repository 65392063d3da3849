//! Reweighting an item-by-user matrix before similarities are taken: BM25 and TF-IDF
//! (rarer users and shorter items count more), or rows scaled to unit length (cosine).

use crate::matrix::Csr;

/// BM25 over an item-by-user matrix (Robertson's Okapi weighting, as information
/// retrieval uses it with items as documents and users as terms): each value becomes
/// `v·(k1 + 1) / (k1·norm + v) · idf`, with `idf = ln(items) − ln(1 + items the user
/// has)` and `norm = (1 − b) + b · row sum / mean row sum`.
pub fn bm25(items_by_users: &Csr, k1: f32, b: f32) -> Csr {
    let n = items_by_users.rows() as f32;
    let idf = user_idf(items_by_users);
    let sums: Vec<f32> = (0..items_by_users.rows())
        .map(|i| items_by_users.row(i).1.iter().sum())
        .collect();
    let mean = (sums.iter().sum::<f32>() / n.max(1.0)).max(f32::MIN_POSITIVE);
    items_by_users.map(|i, u, v| {
        let norm = (1.0 - b) + b * sums[i] / mean;
        v * (k1 + 1.0) / (k1 * norm + v) * idf[u as usize]
    })
}

/// TF-IDF over an item-by-user matrix: `sqrt(v) · idf`, the idf as in [`bm25`].
pub fn tfidf(items_by_users: &Csr) -> Csr {
    let idf = user_idf(items_by_users);
    items_by_users.map(|_, u, v| v.max(0.0).sqrt() * idf[u as usize])
}

/// Every row scaled to unit Euclidean length (empty rows stay empty).
pub fn unit_rows(m: &Csr) -> Csr {
    let norms: Vec<f32> = (0..m.rows())
        .map(|r| m.row(r).1.iter().map(|v| v * v).sum::<f32>().sqrt())
        .collect();
    m.map(|r, _, v| if norms[r] > 0.0 { v / norms[r] } else { 0.0 })
}

fn user_idf(items_by_users: &Csr) -> Vec<f32> {
    let n = items_by_users.rows() as f32;
    items_by_users
        .column_counts()
        .iter()
        .map(|&c| n.ln() - (c as f32).ln_1p())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_by_hand() {
        // Two items by three users; user 0 has both items.
        let m = Csr::from_triplets(2, 3, &[(0, 0, 1.0), (0, 1, 1.0), (1, 0, 1.0)]).unwrap();
        let idf0 = 2f32.ln() - 2f32.ln_1p();
        let idf1 = 2f32.ln() - 1f32.ln_1p();
        let t = tfidf(&m);
        assert!((t.get(0, 0) - idf0).abs() < 1e-6);
        assert!((t.get(0, 1) - idf1).abs() < 1e-6);
        // BM25 with b = 0 and a single unit value: (k1 + 1) / (k1 + 1) · idf = idf.
        let w = bm25(&m, 100.0, 0.0);
        assert!((w.get(1, 0) - idf0).abs() < 1e-6);
        // With b = 1, item 0 (sum 2, mean 1.5) is longer than the mean: weighed down.
        let w = bm25(&m, 1.0, 1.0);
        let norm0 = 2.0 / 1.5;
        assert!((w.get(0, 1) - 2.0 / (norm0 + 1.0) * idf1).abs() < 1e-6);
        let u = unit_rows(&m);
        assert!((u.get(0, 0) - 0.5f32.sqrt()).abs() < 1e-6);
        assert_eq!(u.get(1, 0), 1.0);
    }
}
