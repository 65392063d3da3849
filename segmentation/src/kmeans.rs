//! k-means: k centroids that minimise the sum of squared distances of points to their
//! nearest centroid (the inertia).
//!
//! Initialization is greedy k-means++ (as scikit-learn does it: each new centroid the best
//! of `2 + ln k` candidates drawn in proportion to the squared distance to the centroids
//! so far). Iterations are Lloyd's (every point against every centroid) or Hamerly's
//! (Hamerly 2010, "Making k-means even faster"): each point keeps an upper bound on the
//! distance to its centroid and a lower bound on the distance to any other, moved by how
//! far the centroids moved, and is only compared with the centroids when the bounds no
//! longer prove its assignment. Both give the same centroids from the same start; Hamerly
//! skips most distance computations once clusters settle. Points are processed in chunks
//! over rayon's threads.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    points::{squared_distance, Points},
};

/// Points per task given to a thread.
const CHUNK: usize = 4096;

/// How each iteration assigns points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    /// Every point against every centroid, each iteration.
    Lloyd,
    /// Lloyd's iterations, with distance bounds that let most points skip the centroids.
    Hamerly,
}

/// The parameters of k-means, checked by [`KMeansParams::check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeansParams {
    /// Clusters (at least 1).
    pub k: usize,
    /// Runs from different initializations; the one of least inertia is kept.
    pub n_init: usize,
    /// Most iterations per run.
    pub max_iter: usize,
    /// Convergence: the run stops when the sum of the squared moves of the centroids is
    /// at most `tol` times the mean variance of the features (scikit-learn's rule).
    pub tol: f64,
    /// How iterations assign points.
    pub algorithm: Algorithm,
    /// Seed of the initialization (run `r` uses `seed + r`).
    pub seed: u64,
}

impl KMeansParams {
    /// `k` clusters, one run, at most 300 iterations, `tol` 1e-4, Hamerly, seed 0.
    pub fn new(k: usize) -> KMeansParams {
        KMeansParams {
            k,
            n_init: 1,
            max_iter: 300,
            tol: 1e-4,
            algorithm: Algorithm::Hamerly,
            seed: 0,
        }
    }

    /// Sets the number of runs.
    pub fn n_init(mut self, n_init: usize) -> KMeansParams {
        self.n_init = n_init;
        self
    }

    /// Sets the most iterations per run.
    pub fn max_iter(mut self, max_iter: usize) -> KMeansParams {
        self.max_iter = max_iter;
        self
    }

    /// Sets the convergence tolerance.
    pub fn tol(mut self, tol: f64) -> KMeansParams {
        self.tol = tol;
        self
    }

    /// Sets the algorithm.
    pub fn algorithm(mut self, algorithm: Algorithm) -> KMeansParams {
        self.algorithm = algorithm;
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> KMeansParams {
        self.seed = seed;
        self
    }

    /// Checks the parameters once; the estimator holds only valid ones.
    pub fn check(&self) -> Result<KMeans> {
        let bad = |name, reason: &str| Error::Parameter {
            name,
            reason: reason.into(),
        };
        if self.k == 0 {
            return Err(bad("k", "at least 1 cluster"));
        }
        if self.n_init == 0 {
            return Err(bad("n_init", "at least 1 run"));
        }
        if self.max_iter == 0 {
            return Err(bad("max_iter", "at least 1 iteration"));
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return Err(bad("tol", "a finite number, 0 or more"));
        }
        Ok(KMeans {
            params: self.clone(),
        })
    }
}

/// A k-means estimator with checked parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    params: KMeansParams,
}

/// A fitted k-means model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeansModel {
    /// Features per point.
    pub dim: usize,
    /// The centroids, `k` rows of `dim`.
    pub centroids: Vec<f64>,
    /// Sum of squared distances of the training points to their centroids.
    pub inertia: f64,
    /// Iterations run (of the run kept).
    pub n_iter: usize,
    /// Whether the run kept met the tolerance before `max_iter`.
    pub converged: bool,
}

impl KMeans {
    /// The parameters.
    pub fn params(&self) -> &KMeansParams {
        &self.params
    }

    /// Fits on `points`: `n_init` runs from k-means++ starts, the least inertia kept.
    pub fn fit(&self, points: Points<'_>) -> Result<KMeansModel> {
        self.check_points(points)?;
        let mut best: Option<KMeansModel> = None;
        for run in 0..self.params.n_init {
            let mut rng = ChaCha8Rng::seed_from_u64(self.params.seed.wrapping_add(run as u64));
            let init = kmeans_plus_plus(points, self.params.k, &mut rng);
            let model = self.iterate(points, init);
            if best.as_ref().is_none_or(|b| model.inertia < b.inertia) {
                best = Some(model);
            }
        }
        Ok(best.expect("at least one run"))
    }

    /// Fits from the given initial centroids (`k` rows of `dim`), one run.
    pub fn fit_from(&self, points: Points<'_>, init: &[f64]) -> Result<KMeansModel> {
        self.check_points(points)?;
        if init.len() != self.params.k * points.dim() {
            return Err(Error::Shape(format!(
                "{} initial values for {} centroids of {} features",
                init.len(),
                self.params.k,
                points.dim()
            )));
        }
        Points::new(init, points.dim())?;
        Ok(self.iterate(points, init.to_vec()))
    }

    fn check_points(&self, points: Points<'_>) -> Result<()> {
        if points.len() < self.params.k {
            return Err(Error::Data(format!(
                "{} points cannot make {} clusters",
                points.len(),
                self.params.k
            )));
        }
        Ok(())
    }

    fn iterate(&self, points: Points<'_>, centroids: Vec<f64>) -> KMeansModel {
        let tol = self.params.tol * mean_variance(points);
        let mut run = Run::new(points, centroids, self.params.k);
        let mut converged = false;
        let mut n_iter = 0;
        for _ in 0..self.params.max_iter {
            n_iter += 1;
            let changed = match self.params.algorithm {
                Algorithm::Lloyd => run.lloyd_step(),
                Algorithm::Hamerly => run.hamerly_step(n_iter == 1),
            };
            let shift = run.move_centroids();
            if changed == 0 {
                // The assignments are stable: the centroids just computed are final.
                converged = true;
                break;
            }
            if shift <= tol {
                converged = true;
                break;
            }
        }
        // The labels and the inertia of the final centroids (scikit-learn ends the same
        // way: one more assignment step).
        let inertia = inertia(points, &run.centroids, self.params.k);
        KMeansModel {
            dim: points.dim(),
            centroids: run.centroids,
            inertia,
            n_iter,
            converged,
        }
    }
}

impl KMeansModel {
    /// Number of clusters.
    pub fn k(&self) -> usize {
        self.centroids.len() / self.dim
    }

    /// Centroid `j`.
    pub fn centroid(&self, j: usize) -> &[f64] {
        &self.centroids[j * self.dim..(j + 1) * self.dim]
    }

    /// The cluster of one point: its nearest centroid (the first, on a tie).
    pub fn predict(&self, row: &[f64]) -> Result<usize> {
        if row.len() != self.dim {
            return Err(Error::Shape(format!(
                "the model has {} features, the point {}",
                self.dim,
                row.len()
            )));
        }
        Ok(nearest(row, &self.centroids, self.k()).0)
    }

    /// The clusters of many points, in parallel.
    pub fn predict_all(&self, points: Points<'_>) -> Result<Vec<u32>> {
        if points.dim() != self.dim {
            return Err(Error::Shape(format!(
                "the model has {} features, the points {}",
                self.dim,
                points.dim()
            )));
        }
        let table = Nearest::new(&self.centroids, self.k(), self.dim);
        let mut labels = vec![0u32; points.len()];
        labels
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, out)| {
                for (o, i) in out.iter_mut().zip(c * CHUNK..) {
                    *o = table.nearest(points.row(i)).0 as u32;
                }
            });
        Ok(labels)
    }
}

/// The nearest of `k` centroids to `x` and its squared distance (one point at a time;
/// the loops over many use a [`Nearest`]).
#[inline]
fn nearest(x: &[f64], centroids: &[f64], k: usize) -> (usize, f64) {
    let dim = x.len();
    let mut best = (0, f64::INFINITY);
    for j in 0..k {
        let d = squared_distance(x, &centroids[j * dim..(j + 1) * dim]);
        if d < best.1 {
            best = (j, d);
        }
    }
    best
}

/// Most centroids the vectorized distances take ([`Nearest`]); more go one by one.
const MAX_TABLE_K: usize = 16;

/// Finds the nearest centroids of many points. For up to [`MAX_TABLE_K`] centroids they
/// are laid out feature by feature and padded with centroids at infinity to 4, 8 or 16,
/// and the distances to all of them are summed feature by feature in a fixed-size array
/// the compiler unrolls and vectorizes; the nearest two are then found by halving the
/// array (minima of pairs), without a branch per centroid. The distance of one pair
/// summed on its own is a chain of dependent additions, and comparing centroid by
/// centroid a chain of unpredictable branches: those bounded the loops before.
struct Nearest<'c> {
    centroids: &'c [f64],
    k: usize,
    dim: usize,
    padded: usize,
    by_feature: Vec<f64>,
}

#[inline(always)]
fn smaller(a: f64, b: f64) -> f64 {
    if a < b {
        a
    } else {
        b
    }
}

/// The least value of `v` (its length a power of two), by halving.
#[inline(always)]
fn least<const P: usize>(mut v: [f64; P]) -> f64 {
    let mut width = P;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            v[l] = smaller(v[l], v[l + width]);
        }
    }
    v[0]
}

/// The least value of `d` and the first place it stands, without a branch per value.
#[inline(always)]
fn first_least<const P: usize>(d: &[f64; P]) -> (usize, f64) {
    let d1 = least(*d);
    let mut a = 0;
    for l in (0..P).rev() {
        a = if d[l] == d1 { l } else { a };
    }
    (a, d1)
}

impl<'c> Nearest<'c> {
    fn new(centroids: &'c [f64], k: usize, dim: usize) -> Nearest<'c> {
        let padded = match k {
            0..=4 => 4,
            5..=8 => 8,
            9..=MAX_TABLE_K => 16,
            _ => 0,
        };
        let mut by_feature = vec![f64::INFINITY; dim * padded];
        if padded > 0 {
            for j in 0..k {
                for t in 0..dim {
                    by_feature[t * padded + j] = centroids[j * dim + t];
                }
            }
        }
        Nearest {
            centroids,
            k,
            dim,
            padded,
            by_feature,
        }
    }

    /// Squared distances from `x` to the `P` centroids of the table.
    #[inline(always)]
    fn distances<const P: usize>(&self, x: &[f64]) -> [f64; P] {
        let mut acc = [0.0f64; P];
        for (row, &v) in self.by_feature.chunks_exact(P).zip(x) {
            let row: &[f64; P] = row.try_into().expect("rows of P");
            for l in 0..P {
                let d = v - row[l];
                acc[l] += d * d;
            }
        }
        acc
    }

    #[inline(always)]
    fn nearest_in<const P: usize>(&self, x: &[f64]) -> (usize, f64) {
        first_least(&self.distances::<P>(x))
    }

    #[inline(always)]
    fn two_nearest_in<const P: usize>(&self, x: &[f64]) -> (usize, f64, f64) {
        let mut d = self.distances::<P>(x);
        let (a, d1) = first_least(&d);
        d[a] = f64::INFINITY;
        (a, d1.sqrt(), least(d).sqrt())
    }

    /// The nearest centroid and its squared distance.
    #[inline(always)]
    fn nearest(&self, x: &[f64]) -> (usize, f64) {
        match self.padded {
            4 => self.nearest_in::<4>(x),
            8 => self.nearest_in::<8>(x),
            16 => self.nearest_in::<16>(x),
            _ => nearest(x, self.centroids, self.k),
        }
    }

    /// The nearest and second nearest: (index, distance, second distance), distances
    /// not squared.
    #[inline(always)]
    fn two_nearest(&self, x: &[f64]) -> (usize, f64, f64) {
        match self.padded {
            4 => self.two_nearest_in::<4>(x),
            8 => self.two_nearest_in::<8>(x),
            16 => self.two_nearest_in::<16>(x),
            _ => {
                let (mut a, mut d1, mut d2) = (0, f64::INFINITY, f64::INFINITY);
                for j in 0..self.k {
                    let c = &self.centroids[j * self.dim..(j + 1) * self.dim];
                    let d = squared_distance(x, c);
                    if d < d1 {
                        d2 = d1;
                        d1 = d;
                        a = j;
                    } else if d < d2 {
                        d2 = d;
                    }
                }
                (a, d1.sqrt(), d2.sqrt())
            }
        }
    }
}

/// Sum of squared distances of the points to their nearest centroid.
pub fn inertia(points: Points<'_>, centroids: &[f64], k: usize) -> f64 {
    let table = Nearest::new(centroids, k, points.dim());
    (0..points.len().div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let end = ((c + 1) * CHUNK).min(points.len());
            (c * CHUNK..end)
                .map(|i| table.nearest(points.row(i)).1)
                .sum::<f64>()
        })
        .sum()
}

/// The mean of the features' variances (what `tol` is relative to).
fn mean_variance(points: Points<'_>) -> f64 {
    let (n, dim) = (points.len() as f64, points.dim());
    let mut mean = vec![0.0; dim];
    for i in 0..points.len() {
        for (m, v) in mean.iter_mut().zip(points.row(i)) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = 0.0;
    for i in 0..points.len() {
        var += squared_distance(points.row(i), &mean);
    }
    var / n / dim as f64
}

/// Greedy k-means++: `k` starting centroids drawn from the points.
pub fn kmeans_plus_plus(points: Points<'_>, k: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let (n, dim) = (points.len(), points.dim());
    let trials = 2 + (k as f64).ln().floor() as usize;
    let mut centroids = Vec::with_capacity(k * dim);
    let first = rng.random_range(0..n);
    centroids.extend_from_slice(points.row(first));
    let mut closest: Vec<f64> = (0..n)
        .into_par_iter()
        .with_min_len(CHUNK)
        .map(|i| squared_distance(points.row(i), points.row(first)))
        .collect();
    let mut cumulative = vec![0.0; n];
    for _ in 1..k {
        let mut total = 0.0;
        for (c, d) in cumulative.iter_mut().zip(&closest) {
            total += d;
            *c = total;
        }
        let candidates: Vec<usize> = (0..trials)
            .map(|_| {
                if total <= 0.0 {
                    // Every point sits on a centroid already: any point will do.
                    return rng.random_range(0..n);
                }
                let r = rng.random::<f64>() * total;
                cumulative.partition_point(|c| *c <= r).min(n - 1)
            })
            .collect();
        // The candidate that lowers the potential most.
        let potentials: Vec<f64> = candidates
            .iter()
            .map(|&cand| {
                let c = points.row(cand);
                (0..n)
                    .into_par_iter()
                    .with_min_len(CHUNK)
                    .map(|i| closest[i].min(squared_distance(points.row(i), c)))
                    .sum()
            })
            .collect();
        let best = (0..trials)
            .min_by(|&a, &b| potentials[a].total_cmp(&potentials[b]))
            .expect("at least two trials");
        let chosen = points.row(candidates[best]);
        closest
            .par_iter_mut()
            .with_min_len(CHUNK)
            .enumerate()
            .for_each(|(i, d)| *d = d.min(squared_distance(points.row(i), chosen)));
        centroids.extend_from_slice(chosen);
    }
    centroids
}

/// Defines `fn name(args) -> ret` whose body is compiled twice, for the baseline
/// processor and with AVX2, and runs the AVX2 one when the processor has it (checked
/// once and cached by the standard library): the loops over points then take four
/// distances per instruction rather than two. Only the width changes, not the order of
/// any sum, so the results are the same either way.
macro_rules! with_avx2 {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block) => {
        $(#[$doc])*
        fn $name($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn body($($arg: $ty),*) -> $ret $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) -> $ret {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the processor has AVX2, checked just above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

/// What Hamerly's pass over the points needs of the centroids: where they are, how far
/// each moved, half the gap to each one's nearest other, and the largest moves.
struct Bounds<'c> {
    table: Nearest<'c>,
    centroids: &'c [f64],
    moved: &'c [f64],
    half_gap: Vec<f64>,
    /// The largest move, the centroid that made it, and the largest of the others.
    far: f64,
    far_j: usize,
    second: f64,
}

with_avx2! {
    /// Lloyd over one chunk of points starting at `start`: assigns each, sums them.
    fn lloyd_chunk(points: Points<'_>, table: &Nearest<'_>, start: usize, labels: &mut [u32]) -> Partial {
        let (k, dim) = (table.k, points.dim());
        let mut p = Partial::new(k, dim);
        for (label, i) in labels.iter_mut().zip(start..) {
            let x = points.row(i);
            let a = table.nearest(x).0;
            if *label != a as u32 {
                *label = a as u32;
                p.changed += 1;
            }
            p.counts[a] += 1;
            let s = &mut p.sums[a * dim..(a + 1) * dim];
            s.iter_mut().zip(x).for_each(|(s, v)| *s += v);
        }
        p
    }
}

with_avx2! {
    /// Hamerly over one chunk of points starting at `start` (after the first step).
    fn hamerly_chunk(
        points: Points<'_>,
        b: &Bounds<'_>,
        start: usize,
        labels: &mut [u32],
        upper: &mut [f64],
        lower: &mut [f64],
    ) -> Partial {
        let (k, dim) = (b.table.k, points.dim());
        let mut p = Partial::new(k, dim);
        for (j, i) in (start..).take(labels.len()).enumerate() {
            let a = labels[j] as usize;
            upper[j] += b.moved[a];
            lower[j] -= if a == b.far_j { b.second } else { b.far };
            let bound = b.half_gap[a].max(lower[j]);
            let x = points.row(i);
            // Read the point even when the bounds skip it: reading every point in order
            // lets the hardware prefetch them, where reading a quarter of them at
            // irregular gaps waited on memory for most (it made this pass as slow as
            // Lloyd's).
            std::hint::black_box(x[0]);
            if upper[j] <= bound {
                continue;
            }
            upper[j] = squared_distance(x, &b.centroids[a * dim..(a + 1) * dim]).sqrt();
            if upper[j] <= bound {
                continue;
            }
            let (n, d1, d2) = b.table.two_nearest(x);
            upper[j] = d1;
            lower[j] = d2;
            if n != a {
                labels[j] = n as u32;
                p.changed += 1;
                p.counts[a] -= 1;
                p.counts[n] += 1;
                for (t, v) in x.iter().enumerate() {
                    p.sums[a * dim + t] -= v;
                    p.sums[n * dim + t] += v;
                }
            }
        }
        p
    }
}

/// What one run of iterations keeps.
struct Run<'a> {
    points: Points<'a>,
    k: usize,
    centroids: Vec<f64>,
    /// Sum of the points of each cluster and their count (Hamerly keeps them up to date
    /// as points change clusters; Lloyd recomputes them).
    sums: Vec<f64>,
    counts: Vec<u64>,
    labels: Vec<u32>,
    /// Hamerly: per point, an upper bound on the distance to its centroid and a lower
    /// bound on the distance to any other.
    upper: Vec<f64>,
    lower: Vec<f64>,
    /// How far each centroid moved in the last update (not squared).
    moved: Vec<f64>,
}

/// One chunk's contribution to an iteration.
struct Partial {
    sums: Vec<f64>,
    counts: Vec<i64>,
    changed: usize,
}

impl Partial {
    fn new(k: usize, dim: usize) -> Partial {
        Partial {
            sums: vec![0.0; k * dim],
            counts: vec![0; k],
            changed: 0,
        }
    }

    fn merge(mut self, other: Partial) -> Partial {
        self.sums
            .iter_mut()
            .zip(&other.sums)
            .for_each(|(a, b)| *a += b);
        self.counts
            .iter_mut()
            .zip(&other.counts)
            .for_each(|(a, b)| *a += b);
        self.changed += other.changed;
        self
    }
}

impl<'a> Run<'a> {
    fn new(points: Points<'a>, centroids: Vec<f64>, k: usize) -> Run<'a> {
        let n = points.len();
        Run {
            points,
            k,
            sums: vec![0.0; k * points.dim()],
            counts: vec![0; k],
            labels: vec![u32::MAX; n],
            upper: vec![0.0; n],
            lower: vec![0.0; n],
            moved: vec![0.0; k],
            centroids,
        }
    }

    /// Lloyd: assigns every point, recomputes the sums; returns how many points changed.
    fn lloyd_step(&mut self) -> usize {
        let (points, k, dim) = (self.points, self.k, self.points.dim());
        let table = Nearest::new(&self.centroids, k, dim);
        let partial = self
            .labels
            .par_chunks_mut(CHUNK)
            .enumerate()
            .map(|(c, labels)| lloyd_chunk(points, &table, c * CHUNK, labels))
            .reduce(|| Partial::new(k, dim), Partial::merge);
        self.sums = partial.sums;
        self.counts = partial.counts.iter().map(|&c| c as u64).collect();
        partial.changed
    }

    /// Hamerly: first moves every point's bounds by how far the centroids moved, then
    /// compares with the centroids only the points whose bounds no longer prove their
    /// assignment; the sums change by the points that moved. The first step assigns
    /// every point (and sets the bounds and sums).
    fn hamerly_step(&mut self, first: bool) -> usize {
        let (points, k, dim) = (self.points, self.k, self.points.dim());
        let table = Nearest::new(&self.centroids, k, dim);
        if first {
            let partial = self
                .labels
                .par_chunks_mut(CHUNK)
                .zip(self.upper.par_chunks_mut(CHUNK))
                .zip(self.lower.par_chunks_mut(CHUNK))
                .enumerate()
                .map(|(c, ((labels, upper), lower))| {
                    let mut p = Partial::new(k, dim);
                    for (j, i) in (c * CHUNK..).take(labels.len()).enumerate() {
                        let x = points.row(i);
                        let (a, d1, d2) = table.two_nearest(x);
                        labels[j] = a as u32;
                        upper[j] = d1;
                        lower[j] = d2;
                        p.counts[a] += 1;
                        let s = &mut p.sums[a * dim..(a + 1) * dim];
                        s.iter_mut().zip(x).for_each(|(s, v)| *s += v);
                    }
                    p.changed = labels.len();
                    p
                })
                .reduce(|| Partial::new(k, dim), Partial::merge);
            self.sums = partial.sums;
            self.counts = partial.counts.iter().map(|&c| c as u64).collect();
            return partial.changed;
        }
        // Half the distance from each centroid to its nearest other: a point closer than
        // that to its centroid cannot be nearer another.
        let half_gap: Vec<f64> = (0..k)
            .map(|j| {
                let cj = &self.centroids[j * dim..(j + 1) * dim];
                (0..k)
                    .filter(|&o| o != j)
                    .map(|o| squared_distance(cj, &self.centroids[o * dim..(o + 1) * dim]))
                    .fold(f64::INFINITY, f64::min)
                    .sqrt()
                    / 2.0
            })
            .collect();
        // The largest move, and the largest of the others (for the points of the
        // centroid that moved most).
        let (mut far, mut far_j, mut second) = (0.0, usize::MAX, 0.0);
        for (j, &m) in self.moved.iter().enumerate() {
            if m > far {
                second = far;
                far = m;
                far_j = j;
            } else if m > second {
                second = m;
            }
        }
        let bounds = Bounds {
            table,
            centroids: &self.centroids,
            moved: &self.moved,
            half_gap,
            far,
            far_j,
            second,
        };
        let partial = self
            .labels
            .par_chunks_mut(CHUNK)
            .zip(self.upper.par_chunks_mut(CHUNK))
            .zip(self.lower.par_chunks_mut(CHUNK))
            .enumerate()
            .map(|(c, ((labels, upper), lower))| {
                hamerly_chunk(points, &bounds, c * CHUNK, labels, upper, lower)
            })
            .reduce(|| Partial::new(k, dim), Partial::merge);
        self.sums
            .iter_mut()
            .zip(&partial.sums)
            .for_each(|(s, d)| *s += d);
        for (c, d) in self.counts.iter_mut().zip(&partial.counts) {
            *c = (*c as i64 + d) as u64;
        }
        partial.changed
    }

    /// Moves each centroid to the mean of its points (an empty cluster keeps its
    /// centroid); returns the sum of the squared moves.
    fn move_centroids(&mut self) -> f64 {
        let dim = self.points.dim();
        let mut shift = 0.0;
        for j in 0..self.k {
            if self.counts[j] == 0 {
                self.moved[j] = 0.0;
                continue;
            }
            let n = self.counts[j] as f64;
            let c = &mut self.centroids[j * dim..(j + 1) * dim];
            let mut d2 = 0.0;
            for (cv, s) in c.iter_mut().zip(&self.sums[j * dim..(j + 1) * dim]) {
                let new = s / n;
                d2 += (new - *cv) * (new - *cv);
                *cv = new;
            }
            self.moved[j] = d2.sqrt();
            shift += d2;
        }
        shift
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three well separated blobs of 200 points in 2-D, with their labels.
    fn blobs(seed: u64) -> (Vec<f64>, Vec<u32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres = [(0.0, 0.0), (10.0, 10.0), (-10.0, 10.0)];
        let (mut data, mut labels) = (Vec::new(), Vec::new());
        for (l, (cx, cy)) in centres.iter().enumerate() {
            for _ in 0..200 {
                data.push(cx + rng.random::<f64>() * 2.0 - 1.0);
                data.push(cy + rng.random::<f64>() * 2.0 - 1.0);
                labels.push(l as u32);
            }
        }
        (data, labels)
    }

    #[test]
    fn parameters_are_checked() {
        assert!(KMeansParams::new(0).check().is_err());
        assert!(KMeansParams::new(2).n_init(0).check().is_err());
        assert!(KMeansParams::new(2).tol(f64::NAN).check().is_err());
        assert!(KMeansParams::new(2).check().is_ok());
        let one = [1.0, 2.0];
        let p = Points::new(&one, 2).unwrap();
        assert!(KMeansParams::new(2).check().unwrap().fit(p).is_err());
    }

    #[test]
    fn blobs_are_found_by_both_algorithms_alike() {
        let (data, truth) = blobs(7);
        let p = Points::new(&data, 2).unwrap();
        let lloyd = KMeansParams::new(3)
            .algorithm(Algorithm::Lloyd)
            .seed(3)
            .check()
            .unwrap()
            .fit(p)
            .unwrap();
        let hamerly = KMeansParams::new(3)
            .seed(3)
            .check()
            .unwrap()
            .fit(p)
            .unwrap();
        assert!(lloyd.converged && hamerly.converged);
        assert_eq!(lloyd.centroids.len(), 6);
        for (a, b) in lloyd.centroids.iter().zip(&hamerly.centroids) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
        let labels = hamerly.predict_all(p).unwrap();
        let ari = crate::metrics::adjusted_rand_index(&truth, &labels).unwrap();
        assert!(ari > 0.999, "ARI {ari}");
        assert!(hamerly.predict(&[1.0]).is_err());
    }

    #[test]
    fn the_same_seed_gives_the_same_model() {
        let (data, _) = blobs(1);
        let p = Points::new(&data, 2).unwrap();
        let fit = |seed| {
            KMeansParams::new(4)
                .n_init(3)
                .seed(seed)
                .check()
                .unwrap()
                .fit(p)
                .unwrap()
        };
        assert_eq!(fit(5), fit(5));
    }

    #[test]
    fn inertia_never_rises_across_lloyd_steps() {
        let (data, _) = blobs(11);
        let p = Points::new(&data, 2).unwrap();
        // A poor start: the first four points, all in one blob.
        let init = data[..8].to_vec();
        let mut last = f64::INFINITY;
        for iterations in 1..10 {
            let m = KMeansParams::new(4)
                .max_iter(iterations)
                .tol(0.0)
                .algorithm(Algorithm::Lloyd)
                .check()
                .unwrap()
                .fit_from(p, &init)
                .unwrap();
            assert!(m.inertia <= last + 1e-9, "{} after {}", m.inertia, last);
            last = m.inertia;
        }
    }
}
