//! Ranking metrics at K, per user and averaged over the users who have test items:
//!
//! - precision@K = hits / K;
//! - recall@K = hits / (the user's test items);
//! - AP@K = Σ over the ranks r ≤ K holding a hit of precision@r, divided by
//!   min(K, test items); MAP@K is its mean;
//! - NDCG@K = DCG / ideal DCG with binary relevance, DCG = Σ over hits at rank r of
//!   1 / log2(r + 1), the ideal putting min(K, test items) hits first;
//! - catalogue coverage = distinct items recommended to anyone / items.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::matrix::Csr;
use crate::rank::{top_k, Exclude};
use crate::{History, Scorer};

/// One user's metrics at K.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UserMetrics {
    /// Hits / K.
    pub precision: f64,
    /// Hits / test items.
    pub recall: f64,
    /// Average precision at K.
    pub average_precision: f64,
    /// Normalized discounted cumulative gain at K.
    pub ndcg: f64,
}

/// The metrics of one ranking (`recommended`, best first, at most K long is not
/// required: only its first `k` count) against the user's `relevant` items (sorted).
pub fn at_k(recommended: &[u32], relevant: &[u32], k: usize) -> UserMetrics {
    if relevant.is_empty() || k == 0 {
        return UserMetrics::default();
    }
    let (mut hits, mut ap, mut dcg) = (0usize, 0f64, 0f64);
    let mut found: Vec<u32> = Vec::new();
    for (r, item) in recommended.iter().take(k).enumerate() {
        // An item listed twice counts once.
        if relevant.binary_search(item).is_ok() && !found.contains(item) {
            found.push(*item);
            hits += 1;
            ap += hits as f64 / (r + 1) as f64;
            dcg += 1.0 / ((r + 2) as f64).log2();
        }
    }
    let ideal = relevant.len().min(k);
    let idcg: f64 = (0..ideal).map(|r| 1.0 / ((r + 2) as f64).log2()).sum();
    UserMetrics {
        precision: hits as f64 / k as f64,
        recall: hits as f64 / relevant.len() as f64,
        average_precision: ap / ideal as f64,
        ndcg: dcg / idcg,
    }
}

/// A model's metrics at K over a test set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// K.
    pub k: usize,
    /// Users with at least one test item (the ones averaged).
    pub users: usize,
    /// Mean precision@K.
    pub precision: f64,
    /// Mean recall@K.
    pub recall: f64,
    /// MAP@K.
    pub map: f64,
    /// Mean NDCG@K.
    pub ndcg: f64,
    /// Share of the catalogue recommended to at least one user.
    pub coverage: f64,
}

/// How [`evaluate`] treats the history rows it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocol {
    /// Leave each user's history items out of their ranking.
    pub exclude_history: bool,
    /// The histories are not what the model trained on (cold-start users held out):
    /// score them as new users ([`Scorer::score`], fold-in) rather than by what the
    /// model learned per user ([`Scorer::score_known`]).
    pub unseen_users: bool,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            exclude_history: true,
            unseen_users: false,
        }
    }
}

/// Ranks the whole catalogue for every user with test items (their `history` row as
/// the history), leaving out their history items when the protocol says so, and
/// averages [`at_k`] against their `test` row. Users run in parallel. `rankings`, when
/// given, receives each user's top K (to judge the very same lists elsewhere).
pub fn evaluate(
    model: &dyn Scorer,
    history: &Csr,
    test: &Csr,
    k: usize,
    protocol: Protocol,
    rankings: Option<&mut Vec<(u32, Vec<u32>)>>,
) -> Report {
    let n = model.items();
    let users: Vec<usize> = (0..test.rows()).filter(|&u| test.row_len(u) > 0).collect();
    let lists: Vec<(u32, Vec<u32>)> = users
        .par_iter()
        .map_init(
            || vec![0f32; n],
            |scores, &u| {
                let h = History::of(history, u);
                if protocol.unseen_users {
                    model.score(h, scores);
                } else {
                    model.score_known(u, h, scores);
                }
                let consumed = if protocol.exclude_history {
                    h.items
                } else {
                    &[]
                };
                let best = top_k(
                    scores,
                    k,
                    Exclude {
                        consumed,
                        ..Default::default()
                    },
                );
                (u as u32, best.into_iter().map(|(i, _)| i).collect())
            },
        )
        .collect();
    let report = summarize(&lists, test, k, n);
    if let Some(out) = rankings {
        *out = lists;
    }
    report
}

/// Averages [`at_k`] over given rankings `(user, items best first)` against `test`.
pub fn summarize(lists: &[(u32, Vec<u32>)], test: &Csr, k: usize, items: usize) -> Report {
    let mut sum = UserMetrics::default();
    let mut seen = vec![false; items];
    for (u, list) in lists {
        let m = at_k(list, test.row(*u as usize).0, k);
        sum.precision += m.precision;
        sum.recall += m.recall;
        sum.average_precision += m.average_precision;
        sum.ndcg += m.ndcg;
        for &i in list.iter().take(k) {
            if let Some(s) = seen.get_mut(i as usize) {
                *s = true;
            }
        }
    }
    let users = lists.len().max(1) as f64;
    Report {
        k,
        users: lists.len(),
        precision: sum.precision / users,
        recall: sum.recall / users,
        map: sum.average_precision / users,
        ndcg: sum.ndcg / users,
        coverage: seen.iter().filter(|s| **s).count() as f64 / items.max(1) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_values() {
        // Hits at ranks 1 and 3 of 4; three relevant items.
        let m = at_k(&[10, 20, 30, 40], &[10, 30, 50], 4);
        assert_eq!(m.precision, 0.5);
        assert!((m.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.average_precision - (1.0 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        let dcg = 1.0 + 1.0 / 4f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!((m.ndcg - dcg / idcg).abs() < 1e-12);
        // A perfect ranking scores 1; none of the relevant scores 0.
        let p = at_k(&[3, 1, 2], &[1, 2, 3], 3);
        assert_eq!(
            (p.precision, p.recall, p.average_precision, p.ndcg),
            (1.0, 1.0, 1.0, 1.0)
        );
        assert_eq!(at_k(&[7, 8], &[1], 2), UserMetrics::default());
        // Only the first k count.
        assert_eq!(at_k(&[7, 1], &[1], 1).ndcg, 0.0);
    }
}
