//! `assent-collector recommend evaluate --input FILE`: a plain user–item–value–timestamp
//! file split into train and test, each model family's grid searched by k-fold
//! cross-validation on the training part, the best of each refitted and judged on the
//! test part (Precision, Recall, MAP, NDCG at K, catalogue coverage), the popularity
//! baseline beside them, printed as a table.
use std::fmt::Write;

use assent_recommendation::{
    input,
    model::{parse_grid, ModelSpec},
    split::{self, Split},
    tune::{self, Tuned},
};

use crate::error::{Error, Result};

/// How test interactions are held out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SplitKind {
    /// A random share of the distinct (user, item) pairs.
    Random,
    /// A random share of each user's items.
    PerUser,
    /// Each user's latest item.
    LeaveLastOut,
    /// Everything at or after a time.
    ByTime(i64),
}

/// What to evaluate and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub split: SplitKind,
    pub test_fraction: f64,
    pub folds: usize,
    pub k: usize,
    pub seed: u64,
    /// Grids as `kind:name=v1,v2;…` (empty: the default grids).
    pub grids: Vec<String>,
}

/// The default grids: neighbours, factors and λ around what works on public data.
pub const DEFAULT_GRIDS: [&str; 3] = [
    "item_knn:weighting=bm25;neighbours=50,100,200",
    "als:factors=64;regularization=0.1,1;alpha=4,19",
    "ease:lambda=250,500,1000",
];

/// EASE inverts an items × items matrix; beyond this many items the default grid
/// leaves it out (it can still be asked for).
const EASE_DEFAULT_MAX_ITEMS: usize = 20_000;

fn bad(e: assent_recommendation::Error) -> Error {
    Error::BadRequest(e.to_string())
}

/// Reads, splits, searches and judges; returns the table to print. `progress(done,
/// total)` counts model fits.
pub fn evaluate(
    text: &str,
    options: &Options,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<String> {
    let parsed = input::parse(text).map_err(bad)?;
    let (users, items) = (parsed.users.len(), parsed.items.len());
    let data = &parsed.interactions;
    let Split { train, test } = match options.split {
        SplitKind::Random => split::random(data, options.test_fraction, options.seed),
        SplitKind::PerUser => split::per_user(data, options.test_fraction, options.seed),
        SplitKind::LeaveLastOut => Ok(split::leave_last_out(data)),
        SplitKind::ByTime(cutoff) => Ok(split::by_time(data, cutoff)),
    }
    .map_err(bad)?;
    if train.is_empty() || test.is_empty() {
        return Err(Error::BadRequest(format!(
            "the split leaves {} training and {} test interactions: both must have some",
            train.len(),
            test.len()
        )));
    }
    let mut grids: Vec<Vec<ModelSpec>> = Vec::new();
    if options.grids.is_empty() {
        for g in DEFAULT_GRIDS {
            if g.starts_with("ease") && items > EASE_DEFAULT_MAX_ITEMS {
                continue;
            }
            grids.push(parse_grid(g).map_err(bad)?);
        }
    } else {
        for g in &options.grids {
            grids.push(parse_grid(g).map_err(bad)?);
        }
    }
    grids.push(vec![ModelSpec::Popularity]);
    let fits: usize = grids.iter().map(|g| g.len() * options.folds + 1).sum();
    let mut done_before = 0;
    let started = std::time::Instant::now();
    let clock = move || started.elapsed().as_secs_f64();
    let mut results: Vec<Tuned> = Vec::new();
    for grid in &grids {
        let tuned = tune::search(
            grid,
            &train,
            &test,
            users,
            items,
            options.folds,
            options.k,
            options.seed,
            &clock,
            &mut |d, _| progress(done_before + d, fits),
        )
        .map_err(bad)?;
        done_before += grid.len() * options.folds + 1;
        results.push(tuned);
    }
    Ok(table(
        &results,
        options,
        users,
        items,
        train.len(),
        test.len(),
    ))
}

fn table(
    results: &[Tuned],
    options: &Options,
    users: usize,
    items: usize,
    train: usize,
    test: usize,
) -> String {
    let k = options.k;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{users} users, {items} items; {train} training and {test} test interactions; {}-fold cross-validation on the training part; metrics at {k} on test, training items left out",
        options.folds
    );
    let _ = writeln!(
        out,
        "{:<12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}  best parameters (cv ndcg)",
        "model", "prec", "recall", "map", "ndcg", "coverage", "users", "fit s"
    );
    for t in results {
        let r = &t.test;
        let params = serde_json::to_value(&t.best).unwrap_or_default();
        let cv = t
            .trials
            .iter()
            .find(|x| x.spec == t.best)
            .map(|x| x.ndcg)
            .unwrap_or(0.0);
        let _ = writeln!(
            out,
            "{:<12} {:>9.4} {:>9.4} {:>9.4} {:>9.4} {:>9.3} {:>9} {:>8.2}  {} ({cv:.4})",
            t.best.kind(),
            r.precision,
            r.recall,
            r.map,
            r.ndcg,
            r.coverage,
            r.users,
            t.fit_seconds,
            params
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_with_every_family_and_the_baseline() {
        let mut text = String::from("user,item,value,timestamp\n");
        for u in 0..40 {
            for i in 0..8 {
                if (u + i) % 3 != 0 {
                    let item = if u % 2 == 0 { i } else { 8 + i };
                    text.push_str(&format!("u{u},i{item},1,{}\n", u * 10 + i));
                }
            }
        }
        let options = Options {
            split: SplitKind::Random,
            test_fraction: 0.2,
            folds: 2,
            k: 5,
            seed: 3,
            grids: vec!["item_knn:neighbours=5,10".into(), "als:factors=4".into()],
        };
        let mut calls = 0;
        let t = evaluate(&text, &options, &mut |_, _| calls += 1).unwrap();
        assert!(
            t.contains("item_knn") && t.contains("als") && t.contains("popularity"),
            "{t}"
        );
        assert!(calls > 0);
        let bad = Options {
            grids: vec!["svd".into()],
            ..options.clone()
        };
        let e = evaluate(&text, &bad, &mut |_, _| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown model kind"), "{e}");
        let e = evaluate("u,i,x\n", &options, &mut |_, _| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("no interactions"), "{e}");
    }
}
