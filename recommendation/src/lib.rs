//! Assent recommendation: ranked items from consented interactions, over plain data.
//!
//! This crate does no IO. It takes interactions as a sparse users-by-items matrix
//! ([`matrix::Csr`], item and user indexes from a [`vocab::Vocabulary`]) and gives
//! models, rankings and metrics back. Seeds and `now` are parameters, so the same input
//! and seed give the same model on every run. The collector wires it to the feed,
//! storage and HTTP.
//!
//! Models: item-based nearest neighbours ([`knn`]), implicit-feedback matrix
//! factorization by alternating least squares ([`als`]), EASE ([`ease`]), content-based
//! by tags ([`content`]), popularity ([`popularity`]), and a blend ([`hybrid`]). Each
//! scores any user's current history ([`Scorer`]), seen in training or not.
//! Evaluation: [`split`] and [`metrics`]; [`drift`] compares live distributions with
//! the training window.
//!
//! Estimators are shaped as scikit-learn's and linfa's: parameters checked once
//! (`check()`), `fit` on data gives a model, the model scores.
#![deny(missing_docs)]

pub mod als;
pub mod content;
pub mod drift;
pub mod ease;
pub mod error;
pub mod hybrid;
pub mod input;
pub mod knn;
pub mod matrix;
pub mod metrics;
pub mod model;
pub mod popularity;
pub mod rank;
pub mod simd;
pub mod split;
pub mod tune;
pub mod vocab;
pub mod weight;

pub use error::{Error, Result};
pub use matrix::Csr;
pub use rank::Exclude;

/// What one user has interacted with: item indexes (sorted ascending, unique) and a
/// value for each (a confidence weight, or a count).
#[derive(Debug, Clone, Copy, Default)]
pub struct History<'a> {
    /// Item indexes, sorted ascending.
    pub items: &'a [u32],
    /// One value per item.
    pub values: &'a [f32],
}

impl<'a> History<'a> {
    /// A history from items and values of the same length.
    pub fn new(items: &'a [u32], values: &'a [f32]) -> History<'a> {
        History { items, values }
    }

    /// Row `user` of a users-by-items matrix.
    pub fn of(matrix: &'a Csr, user: usize) -> History<'a> {
        let (items, values) = matrix.row(user);
        History { items, values }
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// A fitted model that scores the whole catalogue for a history.
pub trait Scorer: Sync {
    /// The number of items it scores.
    fn items(&self) -> usize;

    /// Writes one score per item into `out` (of [`Scorer::items`] length); higher is
    /// better. Items it cannot score get 0 or `-inf`.
    fn score(&self, history: History<'_>, out: &mut [f32]);

    /// As [`Scorer::score`] for user index `user` of the training matrix, whose history
    /// this is: a model that learned something per user (factors) uses it; the others
    /// score the history.
    fn score_known(&self, user: usize, history: History<'_>, out: &mut [f32]) {
        let _ = user;
        self.score(history, out)
    }

    /// The best `k` items for `history`, leaving out what `exclude` names.
    fn recommend(&self, history: History<'_>, k: usize, exclude: Exclude<'_>) -> Vec<(u32, f32)> {
        let mut out = vec![0f32; self.items()];
        self.score(history, &mut out);
        rank::top_k(&out, k, exclude)
    }
}
