//! Choosing hyperparameters: each spec of a grid scored by k-fold cross-validation on
//! the training interactions (mean NDCG@K over the folds), the best refitted on all of
//! them and judged once on the held-out test set, beside the popularity baseline.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::metrics::{evaluate, Protocol, Report};
use crate::model::ModelSpec;
use crate::split::{self, Interaction};

/// One spec's cross-validated score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// The spec tried.
    pub spec: ModelSpec,
    /// Mean NDCG@K over the folds.
    pub ndcg: f64,
}

/// The outcome of a search over one grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tuned {
    /// Every spec tried, in grid order.
    pub trials: Vec<Trial>,
    /// The best one.
    pub best: ModelSpec,
    /// The best refitted on all training interactions, judged on the test set.
    pub test: Report,
    /// Its fitting time on all training interactions, in seconds.
    pub fit_seconds: f64,
}

/// Searches `grid` by `folds`-fold cross-validation on `train` (seeded), then refits the
/// best on `train` and judges it on `test` at `k`. `progress(done, total)` counts fits.
/// `clock` gives seconds since any start (time is passed in).
#[allow(clippy::too_many_arguments)]
pub fn search(
    grid: &[ModelSpec],
    train: &[Interaction],
    test: &[Interaction],
    users: usize,
    items: usize,
    folds: usize,
    k: usize,
    seed: u64,
    clock: &dyn Fn() -> f64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Tuned> {
    let splits = split::k_fold(train, folds, seed)?;
    let matrices: Vec<_> = splits
        .iter()
        .map(|s| s.matrices(users, items))
        .collect::<Result<_>>()?;
    let total = grid.len() * folds + 1;
    let mut done = 0;
    let mut trials = Vec::new();
    for spec in grid {
        let mut sum = 0.0;
        for (tr, te) in &matrices {
            let model = spec.fit(tr, |_, _| {})?;
            sum += evaluate(model.scorer(), tr, te, k, Protocol::default(), None).ndcg;
            done += 1;
            progress(done, total);
        }
        trials.push(Trial {
            spec: spec.clone(),
            ndcg: sum / folds as f64,
        });
    }
    let best = trials
        .iter()
        .fold(None::<&Trial>, |b, t| match b {
            Some(b) if b.ndcg >= t.ndcg => Some(b),
            _ => Some(t),
        })
        .map(|t| t.spec.clone())
        .unwrap_or(ModelSpec::Popularity);
    let tr = split::to_matrix(train, users, items)?;
    let te = split::to_matrix(test, users, items)?;
    let start = clock();
    let model = best.fit(&tr, |_, _| {})?;
    let fit_seconds = clock() - start;
    let report = evaluate(model.scorer(), &tr, &te, k, Protocol::default(), None);
    progress(total, total);
    Ok(Tuned {
        trials,
        best,
        test: report,
        fit_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_grid;

    #[test]
    fn picks_the_best_of_the_grid_by_cross_validation() {
        // Two blocks of users and items: neighbours find the block, popularity cannot.
        let mut all = Vec::new();
        for user in 0..60u32 {
            let base = if user % 2 == 0 { 0 } else { 10 };
            for i in 0..10u32 {
                if (user + i) % 3 != 0 {
                    all.push(Interaction {
                        user,
                        item: base + i,
                        value: 1.0,
                        time: 0,
                    });
                }
            }
        }
        let s = split::random(&all, 0.2, 1).unwrap();
        let mut grid = parse_grid("item_knn:neighbours=1,20;weighting=cosine").unwrap();
        grid.push(ModelSpec::Popularity);
        let t = search(
            &grid,
            &s.train,
            &s.test,
            60,
            20,
            3,
            5,
            7,
            &|| 0.0,
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(t.trials.len(), 3);
        assert!(
            matches!(t.best, ModelSpec::ItemKnn(p) if p.neighbours == 20),
            "{:?}",
            t.trials
        );
        assert!(
            t.test.ndcg > t.trials[2].ndcg,
            "neighbours beat popularity on test"
        );
    }
}
