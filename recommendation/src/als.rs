//! Matrix factorization for implicit feedback by alternating least squares (Hu, Koren &
//! Volinsky 2008), each least-squares solve done by a few steps of conjugate gradient
//! from the previous solution (Takács, Pilászy & Tikk 2011), users and items in parallel.
//! The first alternation has no previous solution (the start is random), so its solves
//! take a few more steps.
//!
//! The loss is `Σ c_ui (p_ui − x_u·y_i)² + λ (Σ‖x_u‖² + Σ‖y_i‖²)` over every user and
//! item, with `p_ui = 1` and `c_ui = 1 + α·v_ui` where the user has the item (value
//! `v_ui`), and `p = 0`, `c = 1` elsewhere. The elsewhere part is the same for everyone
//! (`YᵀY`), so a solve only costs the user's own items.

use faer::linalg::solvers::Solve;
use faer::Mat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{parameter, Error, Result};
use crate::matrix::Csr;
use crate::simd::{dispatch, Lanes};
use crate::{History, Scorer};

/// Conjugate-gradient steps per solve, at least, in the first alternation, which starts
/// from random factors rather than from a previous solution. Chosen on the validation
/// split of goodbooks-10k ratings at one step per solve after it (NDCG@10 over 4
/// starts: 0.1434 without, 0.1442 with 2, 0.1459 with 3, 0.1456 with 5 or 10).
const FIRST_CG_STEPS: usize = 3;

/// Parameters of [`Als`], checked by [`AlsParams::check`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlsParams {
    /// Latent factors per user and item (1 to 1,024).
    pub factors: usize,
    /// λ, the L2 penalty on every factor (≥ 0).
    pub regularization: f32,
    /// α, how much an interaction's value raises its confidence (≥ 0).
    pub alpha: f32,
    /// Alternations (users, then items) to run (at least 1).
    pub iterations: usize,
    /// Conjugate-gradient steps per solve (at least 1; 3 is usually enough; the first
    /// alternation takes at least 3).
    pub cg_steps: usize,
    /// Seed of the random start.
    pub seed: u64,
}

impl Default for AlsParams {
    fn default() -> Self {
        AlsParams {
            factors: 64,
            regularization: 0.01,
            alpha: 1.0,
            iterations: 15,
            cg_steps: 3,
            seed: 0,
        }
    }
}

/// Parameters that passed [`AlsParams::check`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidAlsParams(AlsParams);

impl AlsParams {
    /// Checks each parameter's range.
    pub fn check(self) -> Result<ValidAlsParams> {
        if !(1..=1024).contains(&self.factors) {
            return Err(parameter("factors", "must be between 1 and 1024"));
        }
        if !(self.regularization.is_finite() && self.regularization >= 0.0) {
            return Err(parameter("regularization", "must be a finite number ≥ 0"));
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(parameter("alpha", "must be a finite number ≥ 0"));
        }
        if self.iterations == 0 {
            return Err(parameter("iterations", "must be at least 1"));
        }
        if self.cg_steps == 0 {
            return Err(parameter("cg_steps", "must be at least 1"));
        }
        Ok(ValidAlsParams(self))
    }
}

impl ValidAlsParams {
    /// Fits factors to a users-by-items matrix of interaction values (which must not be
    /// negative).
    pub fn fit(&self, user_items: &Csr) -> Result<Als> {
        self.fit_with(user_items, |_| {})
    }

    /// As [`ValidAlsParams::fit`], calling `progress` with the number of alternations
    /// done after each one.
    pub fn fit_with(&self, user_items: &Csr, mut progress: impl FnMut(usize)) -> Result<Als> {
        let p = self.0;
        if let Some(v) = user_items.data().iter().find(|v| **v < 0.0) {
            return Err(Error::Data(format!("interaction value {v} is negative")));
        }
        let f = p.factors;
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        let mut random =
            |n: usize| -> Vec<f32> { (0..n * f).map(|_| rng.random::<f32>() * 0.01).collect() };
        let mut users = random(user_items.rows());
        let mut items = random(user_items.cols());
        let item_users = user_items.transpose();
        for done in 1..=p.iterations {
            // Few steps per solve pay because each starts from the last solution; the
            // first alternation starts from random factors instead.
            let q = if done == 1 {
                AlsParams {
                    cg_steps: p.cg_steps.max(FIRST_CG_STEPS),
                    ..p
                }
            } else {
                p
            };
            half_step(user_items, &items, &mut users, &q);
            half_step(&item_users, &users, &mut items, &q);
            progress(done);
        }
        // The users were last solved against the items of the step before; once more
        // against the final items, so the training users' factors are what a fold-in
        // would give them now.
        half_step(user_items, &items, &mut users, &p);
        let gram = gram(&items, f);
        Ok(Als {
            params: p,
            users,
            items,
            gram,
        })
    }
}

/// `YᵀY` of rows of `f` factors, summed in fixed chunks so the result does not depend on
/// the number of threads.
fn gram(y: &[f32], f: usize) -> Vec<f32> {
    const CHUNK: usize = 2048;
    y.par_chunks(CHUNK * f)
        .map(|rows| gram_chunk(rows, f))
        .collect::<Vec<_>>()
        .into_iter()
        .reduce(|mut a, b| {
            a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
            a
        })
        .unwrap_or_else(|| vec![0f32; f * f])
}

dispatch! {
    /// The Gram matrix of some rows.
    fn gram_chunk = gram_chunk_with(rows: &[f32], f: usize) -> Vec<f32>
}

#[inline(always)]
fn gram_chunk_with<L: Lanes>(rows: &[f32], f: usize) -> Vec<f32> {
    let mut g = vec![0f32; f * f];
    for row in rows.chunks_exact(f) {
        for (a, &ya) in row.iter().enumerate() {
            L::axpy(ya, row, &mut g[a * f..(a + 1) * f]);
        }
    }
    g
}

/// `out = G·v` for a symmetric `f × f` matrix.
#[inline(always)]
fn symv<L: Lanes>(g: &[f32], v: &[f32], out: &mut [f32]) {
    let f = v.len();
    for (a, o) in out.iter_mut().enumerate() {
        *o = L::dot(&g[a * f..(a + 1) * f], v);
    }
}

/// What every solve of one half-step shares.
struct Shared<'a> {
    yty: &'a [f32],
    y: &'a [f32],
    f: usize,
    alpha: f32,
    cg_steps: usize,
}

/// Scratch vectors of one thread.
struct Scratch {
    r: Vec<f32>,
    dir: Vec<f32>,
    ap: Vec<f32>,
}

dispatch! {
    /// A few conjugate-gradient steps on one row's system, from its current value.
    fn solve_row = solve_row_with(s: &Shared<'_>, items: &[u32], values: &[f32], xu: &mut [f32], w: &mut Scratch) -> ()
}

/// [`solve_row`] over given kernels (compiled once per kernel, the calls inlined).
#[inline(always)]
fn solve_row_with<L: Lanes>(
    s: &Shared<'_>,
    items: &[u32],
    values: &[f32],
    xu: &mut [f32],
    w: &mut Scratch,
) {
    {
        let (f, y) = (s.f, s.y);
        let (r, dir, ap) = (&mut w.r[..], &mut w.dir[..], &mut w.ap[..]);
        // r = b − A·x, with A = YᵀY + λI + Σ (c − 1) y yᵀ and b = Σ c y.
        symv::<L>(s.yty, xu, r);
        r.iter_mut().for_each(|v| *v = -*v);
        for (&i, &v) in items.iter().zip(values) {
            let yi = &y[i as usize * f..(i as usize + 1) * f];
            let conf = 1.0 + s.alpha * v;
            L::axpy(conf - (conf - 1.0) * L::dot(yi, xu), yi, r);
        }
        dir.copy_from_slice(r);
        let mut rs = L::dot(r, r);
        for _ in 0..s.cg_steps {
            if rs < 1e-20 {
                break;
            }
            symv::<L>(s.yty, dir, ap);
            for (&i, &v) in items.iter().zip(values) {
                let yi = &y[i as usize * f..(i as usize + 1) * f];
                L::axpy(s.alpha * v * L::dot(yi, dir), yi, ap);
            }
            let step = rs / L::dot(dir, ap);
            L::axpy(step, dir, xu);
            L::axpy(-step, ap, r);
            let next = L::dot(r, r);
            let beta = next / rs;
            dir.iter_mut()
                .zip(r.iter())
                .for_each(|(d, r)| *d = r + beta * *d);
            rs = next;
        }
    }
}

/// Solves every row of `x` against the fixed factors `y` by conjugate gradient.
fn half_step(c: &Csr, y: &[f32], x: &mut [f32], p: &AlsParams) {
    let f = p.factors;
    let mut yty = gram(y, f);
    for a in 0..f {
        yty[a * f + a] += p.regularization;
    }
    let shared = Shared {
        yty: &yty,
        y,
        f,
        alpha: p.alpha,
        cg_steps: p.cg_steps,
    };
    x.par_chunks_mut(f).enumerate().for_each_init(
        || Scratch {
            r: vec![0f32; f],
            dir: vec![0f32; f],
            ap: vec![0f32; f],
        },
        |scratch, (u, xu)| {
            let (items, values) = c.row(u);
            if items.is_empty() {
                xu.fill(0.0);
            } else {
                solve_row(&shared, items, values, xu, scratch);
            }
        },
    );
}

dispatch! {
    /// `out[i] = x · y_i` for consecutive rows `y_i` of `items`.
    fn score_rows = score_rows_with(items: &[f32], x: &[f32], out: &mut [f32]) -> ()
}

#[inline(always)]
fn score_rows_with<L: Lanes>(items: &[f32], x: &[f32], out: &mut [f32]) {
    for (o, y) in out.iter_mut().zip(items.chunks_exact(x.len())) {
        *o = L::dot(x, y);
    }
}

/// Fitted factors: one row of `factors` per user and per item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Als {
    params: AlsParams,
    users: Vec<f32>,
    items: Vec<f32>,
    /// `YᵀY` of the item factors, kept for folding in new users.
    gram: Vec<f32>,
}

impl Als {
    /// The parameters it was fitted with.
    pub fn params(&self) -> AlsParams {
        self.params
    }

    /// The same model without its user factors: what serving keeps, since it folds each
    /// user in from their current history (and user factors are per person).
    pub fn without_users(mut self) -> Als {
        self.users = Vec::new();
        self
    }

    /// The number of users with factors.
    pub fn users(&self) -> usize {
        self.users.len() / self.params.factors
    }

    /// User `u`'s factors (empty beyond the users trained).
    pub fn user_factors(&self, u: usize) -> &[f32] {
        let f = self.params.factors;
        self.users.get(u * f..(u + 1) * f).unwrap_or(&[])
    }

    /// Item `i`'s factors (empty beyond the catalogue).
    pub fn item_factors(&self, i: usize) -> &[f32] {
        let f = self.params.factors;
        self.items.get(i * f..(i + 1) * f).unwrap_or(&[])
    }

    /// The factors of a user with this history, solved exactly against the fixed item
    /// factors ("fold-in"): what an alternation would give that user, without retraining.
    pub fn fold_in(&self, history: History<'_>) -> Vec<f32> {
        let f = self.params.factors;
        let mut a = Mat::<f64>::from_fn(f, f, |r, c| {
            self.gram[r * f + c] as f64
                + if r == c {
                    self.params.regularization as f64
                } else {
                    0.0
                }
        });
        let mut b = Mat::<f64>::zeros(f, 1);
        let mut any = false;
        for (&i, &v) in history.items.iter().zip(history.values) {
            let yi = self.item_factors(i as usize);
            if yi.is_empty() {
                continue;
            }
            any = true;
            let conf = 1.0 + (self.params.alpha * v) as f64;
            for r in 0..f {
                b[(r, 0)] += conf * yi[r] as f64;
                for c in 0..f {
                    a[(r, c)] += (conf - 1.0) * yi[r] as f64 * yi[c] as f64;
                }
            }
        }
        if !any {
            return vec![0.0; f];
        }
        match a.llt(faer::Side::Lower) {
            Ok(llt) => {
                let x = llt.solve(&b);
                (0..f).map(|r| x[(r, 0)] as f32).collect()
            }
            Err(_) => vec![0.0; f],
        }
    }

    fn score_factors(&self, xu: &[f32], out: &mut [f32]) {
        let f = self.params.factors;
        const CHUNK: usize = 16_384;
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| {
                let start = c * CHUNK * f;
                let items = &self.items[start..start + chunk.len() * f];
                score_rows(items, xu, chunk);
            });
    }
}

impl Scorer for Als {
    fn items(&self) -> usize {
        self.items.len() / self.params.factors
    }

    /// Folds the history in ([`Als::fold_in`]) and scores every item by dot product.
    fn score(&self, history: History<'_>, out: &mut [f32]) {
        let xu = self.fold_in(history);
        self.score_factors(&xu, out);
    }

    /// A user seen in training is scored by the factors learned for them.
    fn score_known(&self, user: usize, history: History<'_>, out: &mut [f32]) {
        if user < self.users() {
            let xu = self.user_factors(user).to_vec();
            self.score_factors(&xu, out);
        } else {
            self.score(history, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Exclude;

    /// Two blocks of users and items that never meet: ALS must rank the other items of
    /// a user's own block first.
    fn blocks() -> Csr {
        let mut t = Vec::new();
        for u in 0..20u32 {
            let base = if u < 10 { 0 } else { 5 };
            for i in 0..5u32 {
                if (u + i) % 5 != 0 {
                    t.push((u, base + i, 1.0));
                }
            }
        }
        Csr::from_triplets(20, 10, &t).unwrap()
    }

    #[test]
    fn learns_blocks_and_folds_in_new_users() {
        let x = blocks();
        // Two factors, the blocks' rank: more let a two-item newcomer's fold-in reach
        // into the other block for some starts.
        let params = AlsParams {
            factors: 2,
            regularization: 0.1,
            alpha: 10.0,
            iterations: 20,
            cg_steps: 4,
            seed: 7,
        };
        let m = params.check().unwrap().fit(&x).unwrap();
        for u in 0..20 {
            let h = History::of(&x, u);
            let mut out = vec![0.0; 10];
            m.score_known(u, h, &mut out);
            let missing = (0..10u32).find(|i| x.get(u, *i) == 0.0 && (*i < 5) == (u < 10));
            let best = crate::rank::top_k(
                &out,
                1,
                Exclude {
                    consumed: h.items,
                    ..Default::default()
                },
            );
            assert_eq!(Some(best[0].0), missing, "user {u}: {out:?}");
        }
        // A new user with items 5 and 6 gets the rest of the second block.
        let recs = m.recommend(
            History::new(&[5, 6], &[1.0, 1.0]),
            3,
            Exclude {
                consumed: &[5, 6],
                ..Default::default()
            },
        );
        let got: Vec<u32> = recs.iter().map(|r| r.0).collect();
        assert!(got.iter().all(|i| (7..10).contains(i)), "{got:?}");
        // Folding in a training user's history lands near the factors learned for them.
        let h = History::of(&x, 3);
        let folded = m.fold_in(h);
        let learned = m.user_factors(3);
        let gap: f32 = folded.iter().zip(learned).map(|(a, b)| (a - b).abs()).sum();
        let size: f32 = learned.iter().map(|v| v.abs()).sum();
        assert!(
            gap < 0.2 * size,
            "fold-in {folded:?} vs learned {learned:?}"
        );
        // Same seed, same model.
        assert_eq!(params.check().unwrap().fit(&x).unwrap(), m);
    }

    #[test]
    fn parameters_and_data_are_checked() {
        let bad = AlsParams {
            factors: 0,
            ..Default::default()
        };
        assert!(bad.check().is_err());
        let neg = Csr::from_triplets(1, 1, &[(0, 0, -1.0)]).unwrap();
        assert!(AlsParams::default().check().unwrap().fit(&neg).is_err());
    }

    #[test]
    fn the_first_alternation_takes_at_least_three_steps() {
        let x = blocks();
        let fit = |iterations, cg_steps| {
            let p = AlsParams {
                factors: 2,
                iterations,
                cg_steps,
                seed: 3,
                ..Default::default()
            };
            p.check().unwrap().fit(&x).unwrap()
        };
        // One alternation (and the final users' pass, at 1 or 3 steps): the same items.
        assert_eq!(fit(1, 1).items, fit(1, 3).items);
        // Later alternations take the steps asked for.
        assert_ne!(fit(2, 1).items, fit(2, 3).items);
    }
}
