//! EASE, "Embarrassingly Shallow Autoencoders" (Steck 2019): an item-by-item weight
//! matrix `B` with a zero diagonal that best rebuilds `X` from `X·B` under an L2
//! penalty λ. Its closed form is `P = (XᵀX + λI)⁻¹`, `B_ij = −P_ij / P_jj` (`i ≠ j`).
//!
//! `B` is dense: memory and the inversion grow with the square and the cube of the
//! catalogue (10,000 items: 400 MB for `B`, seconds to invert on two cores), which is
//! why it suits catalogues up to tens of thousands of items. With `keep` set, each
//! item keeps only its `keep` strongest weights (by magnitude), so what is stored and
//! scored grows with the catalogue, not its square.

use faer::linalg::solvers::DenseSolveCore;
use faer::Mat;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{parameter, Error, Result};
use crate::matrix::Csr;
use crate::simd::axpy;
use crate::{History, Scorer};

/// Parameters of [`Ease`], checked by [`EaseParams::check`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EaseParams {
    /// λ, the L2 penalty (> 0; hundreds for 0/1 data).
    pub lambda: f64,
    /// The largest catalogue accepted (the work grows with its cube).
    pub max_items: usize,
    /// Weights kept per item, the strongest by magnitude; 0 keeps them all (dense).
    pub keep: usize,
}

impl Default for EaseParams {
    fn default() -> Self {
        EaseParams {
            lambda: 500.0,
            max_items: 40_000,
            keep: 0,
        }
    }
}

/// Parameters that passed [`EaseParams::check`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidEaseParams(EaseParams);

impl EaseParams {
    /// Checks each parameter's range.
    pub fn check(self) -> Result<ValidEaseParams> {
        if !(self.lambda.is_finite() && self.lambda > 0.0) {
            return Err(parameter("lambda", "must be a finite number > 0"));
        }
        Ok(ValidEaseParams(self))
    }
}

impl ValidEaseParams {
    /// Fits `B` to a users-by-items matrix. The Gram matrix is built in double precision
    /// one item row per task, inverted by Cholesky (faer, in parallel), and `B` kept in
    /// single precision.
    pub fn fit(&self, user_items: &Csr) -> Result<Ease> {
        let n = user_items.cols();
        if n > self.0.max_items {
            return Err(Error::Data(format!(
                "{n} items is more than EASE's limit of {} (max_items)",
                self.0.max_items
            )));
        }
        let items = user_items.transpose();
        let mut gram = Mat::<f64>::zeros(n, n);
        // Column j of the Gram matrix is item j's co-occurrences (it is symmetric), and
        // faer stores columns contiguously: one task per column.
        let cols: Vec<Vec<f64>> = (0..n)
            .into_par_iter()
            .map(|j| {
                let mut col = vec![0f64; n];
                let (users, vj) = items.row(j);
                for (&u, &v) in users.iter().zip(vj) {
                    let (is, vi) = user_items.row(u as usize);
                    for (&i, &w) in is.iter().zip(vi) {
                        col[i as usize] += v as f64 * w as f64;
                    }
                }
                col[j] += self.0.lambda;
                col
            })
            .collect();
        for (j, col) in cols.into_iter().enumerate() {
            gram.col_mut(j)
                .iter_mut()
                .zip(col)
                .for_each(|(g, v)| *g = v);
        }
        let par = faer::get_global_parallelism();
        faer::set_global_parallelism(faer::Par::rayon(0));
        let llt = gram.llt(faer::Side::Lower);
        drop(gram);
        let inverse = llt
            .map_err(|e| Error::Numerical(format!("XᵀX + λI is not positive definite: {e:?}")))?
            .inverse();
        faer::set_global_parallelism(par);
        // B_ij = −P_ij / P_jj: row i of B (what item i adds to each other item) is row i
        // of P scaled column by column; P is symmetric, so read its column i.
        let diag: Vec<f64> = (0..n).map(|j| inverse[(j, j)]).collect();
        let row_of = |i: usize, row: &mut [f32]| {
            let col = inverse.col(i);
            for (j, (w, p)) in row.iter_mut().zip(col.iter()).enumerate() {
                *w = if i == j { 0.0 } else { (-p / diag[j]) as f32 };
            }
        };
        let keep = self.0.keep;
        let weights = if keep == 0 || keep >= n {
            let mut dense = vec![0f32; n * n];
            dense
                .par_chunks_mut(n.max(1))
                .enumerate()
                .for_each(|(i, row)| row_of(i, row));
            Weights::Dense(dense)
        } else {
            let rows: Vec<Vec<(u32, f32)>> = (0..n)
                .into_par_iter()
                .map_init(
                    || vec![0f32; n],
                    |row, i| {
                        row_of(i, row);
                        let mut order: Vec<u32> =
                            (0..n as u32).filter(|&j| j as usize != i).collect();
                        let strongest = |a: &u32, b: &u32| {
                            row[*b as usize]
                                .abs()
                                .total_cmp(&row[*a as usize].abs())
                                .then(a.cmp(b))
                        };
                        if order.len() > keep {
                            order.select_nth_unstable_by(keep - 1, strongest);
                            order.truncate(keep);
                        }
                        order.sort_unstable();
                        order.into_iter().map(|j| (j, row[j as usize])).collect()
                    },
                )
                .collect();
            let mut offsets = Vec::with_capacity(n + 1);
            offsets.push(0u32);
            let (mut cols, mut values) = (Vec::new(), Vec::new());
            for r in rows {
                for (j, w) in r {
                    cols.push(j);
                    values.push(w);
                }
                offsets.push(cols.len() as u32);
            }
            Weights::Sparse {
                offsets,
                cols,
                values,
            }
        };
        Ok(Ease {
            params: self.0,
            items: n,
            weights,
        })
    }
}

/// `B`, whole or with each row's strongest weights (untagged: a dense model stored
/// before pruning existed reads as it was written, a plain array).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Weights {
    /// Row-major, items × items.
    Dense(Vec<f32>),
    /// Row `i`'s kept weights are `cols[offsets[i]..offsets[i + 1]]` (ascending) with
    /// `values` alongside.
    Sparse {
        offsets: Vec<u32>,
        cols: Vec<u32>,
        values: Vec<f32>,
    },
}

impl Weights {
    /// Row `i`'s kept columns and weights (sparse only; empty when dense).
    fn row(&self, i: usize) -> (&[u32], &[f32]) {
        match self {
            Weights::Sparse {
                offsets,
                cols,
                values,
            } => {
                let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
                (&cols[a..b], &values[a..b])
            }
            Weights::Dense(_) => (&[], &[]),
        }
    }
}

/// A fitted EASE model: the item-by-item weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ease {
    params: EaseParams,
    items: usize,
    weights: Weights,
}

impl Ease {
    /// The parameters it was fitted with.
    pub fn params(&self) -> EaseParams {
        self.params
    }

    /// `B_ij`: how much having item `i` adds to item `j`'s score (0 where pruned).
    pub fn weight(&self, i: usize, j: usize) -> f32 {
        match &self.weights {
            Weights::Dense(w) => w[i * self.items + j],
            Weights::Sparse { .. } => {
                let (cols, values) = self.weights.row(i);
                cols.binary_search(&(j as u32)).map_or(0.0, |k| values[k])
            }
        }
    }

    /// The number of weights held (items² when dense).
    pub fn stored_weights(&self) -> usize {
        match &self.weights {
            Weights::Dense(w) => w.len(),
            Weights::Sparse { values, .. } => values.len(),
        }
    }
}

impl Scorer for Ease {
    fn items(&self) -> usize {
        self.items
    }

    /// `x·B` for the history `x`: any user, without retraining.
    fn score(&self, history: History<'_>, out: &mut [f32]) {
        out.fill(0.0);
        let n = self.items;
        for (&i, &v) in history.items.iter().zip(history.values) {
            let i = i as usize;
            if i >= n {
                continue;
            }
            match &self.weights {
                Weights::Dense(w) => axpy(v, &w[i * n..(i + 1) * n], out),
                Weights::Sparse { .. } => {
                    let (cols, values) = self.weights.row(i);
                    for (&j, &w) in cols.iter().zip(values) {
                        out[j as usize] += v * w;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn closed_form_on_a_small_matrix() {
        // X (3 users × 3 items): G = XᵀX = [[2,1,0],[1,2,1],[0,1,1]]; with λ = 1,
        // G + I = [[3,1,0],[1,3,1],[0,1,2]], whose inverse is
        // [[5,-2,1],[-2,6,-3],[1,-3,8]] / 13.
        let x = Csr::from_triplets(
            3,
            3,
            &[
                (0, 0, 1.0),
                (0, 1, 1.0),
                (1, 0, 1.0),
                (2, 1, 1.0),
                (2, 2, 1.0),
            ],
        )
        .unwrap();
        let m = EaseParams {
            lambda: 1.0,
            ..Default::default()
        }
        .check()
        .unwrap()
        .fit(&x)
        .unwrap();
        let p = [[5.0, -2.0, 1.0], [-2.0, 6.0, -3.0], [1.0, -3.0, 8.0]];
        for i in 0..3 {
            for j in 0..3 {
                let want = if i == j { 0.0 } else { -p[i][j] / p[j][j] };
                assert!(
                    (m.weight(i, j) as f64 - want).abs() < 1e-6,
                    "B[{i}][{j}] = {} ≠ {want}",
                    m.weight(i, j)
                );
            }
        }
        let mut out = vec![0.0; 3];
        m.score(History::new(&[0], &[1.0]), &mut out);
        assert!((out[1] - 2.0 / 6.0).abs() < 1e-6);
        assert!(EaseParams {
            lambda: 0.0,
            ..Default::default()
        }
        .check()
        .is_err());
        let small = EaseParams {
            max_items: 2,
            ..Default::default()
        }
        .check()
        .unwrap();
        assert!(small.fit(&x).unwrap_err().to_string().contains("max_items"));

        // Keeping one weight per item: the strongest of each row, the rest 0.
        let pruned = EaseParams {
            lambda: 1.0,
            keep: 1,
            ..Default::default()
        }
        .check()
        .unwrap()
        .fit(&x)
        .unwrap();
        assert_eq!(pruned.stored_weights(), 3);
        for i in 0..3 {
            let strongest = (0..3)
                .filter(|&j| j != i)
                .max_by(|&a, &b| m.weight(i, a).abs().total_cmp(&m.weight(i, b).abs()))
                .unwrap();
            for j in 0..3 {
                let want = if j == strongest { m.weight(i, j) } else { 0.0 };
                assert_eq!(pruned.weight(i, j), want, "B[{i}][{j}]");
            }
        }
        let back: Ease = serde_json::from_str(&serde_json::to_string(&pruned).unwrap()).unwrap();
        assert_eq!(back, pruned);
    }
}
