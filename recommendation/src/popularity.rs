//! Popularity: the same ranking for everyone, by how many users have each item
//! (optionally with older interactions counting less). The baseline beside every model,
//! and what new users, sparse profiles and visitors without personalization get.

use serde::{Deserialize, Serialize};

use crate::matrix::Csr;
use crate::{History, Scorer};

/// Item popularity scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Popularity {
    scores: Vec<f32>,
}

impl Popularity {
    /// The number of users who have each item, over every row of `user_items`.
    pub fn fit(user_items: &Csr) -> Popularity {
        Popularity::fit_rows(user_items, 0..user_items.rows())
    }

    /// As [`Popularity::fit`] over some rows only: the users of one segment or context.
    pub fn fit_rows(user_items: &Csr, rows: impl IntoIterator<Item = usize>) -> Popularity {
        let mut scores = vec![0f32; user_items.cols()];
        for r in rows {
            for &i in user_items.row(r).0 {
                scores[i as usize] += 1.0;
            }
        }
        Popularity { scores }
    }

    /// Popularity from `(item, age)` interactions, each counting `0.5^(age / half_life)`
    /// (ages and half-life in the same unit, ages ≥ 0), so what is popular now ranks
    /// above what was popular long ago. Items beyond `items` are ignored.
    pub fn decayed(items: usize, interactions: &[(u32, f64)], half_life: f64) -> Popularity {
        let mut scores = vec![0f32; items];
        for &(i, age) in interactions {
            if let Some(s) = scores.get_mut(i as usize) {
                *s += 0.5f64.powf(age.max(0.0) / half_life) as f32;
            }
        }
        Popularity { scores }
    }

    /// Popularity from scores already counted (one per item).
    pub fn from_scores(scores: Vec<f32>) -> Popularity {
        Popularity { scores }
    }

    /// Each item's score.
    pub fn scores(&self) -> &[f32] {
        &self.scores
    }
}

impl Scorer for Popularity {
    fn items(&self) -> usize {
        self.scores.len()
    }

    fn score(&self, _history: History<'_>, out: &mut [f32]) {
        out.copy_from_slice(&self.scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_users_and_decays_by_age() {
        let x = Csr::from_triplets(3, 3, &[(0, 0, 5.0), (1, 0, 1.0), (2, 2, 1.0)]).unwrap();
        assert_eq!(Popularity::fit(&x).scores(), &[2.0, 0.0, 1.0]);
        assert_eq!(Popularity::fit_rows(&x, [2]).scores(), &[0.0, 0.0, 1.0]);
        let p = Popularity::decayed(2, &[(0, 0.0), (1, 10.0), (1, 10.0), (7, 0.0)], 10.0);
        assert_eq!(p.scores(), &[1.0, 1.0]);
    }
}
