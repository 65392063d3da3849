//! Gaussian mixtures fitted by expectation–maximization, with full or diagonal
//! covariances, as scikit-learn's `GaussianMixture` does them: initial responsibilities
//! from k-means labels, `reg_covar` added to every variance, convergence when the mean
//! log-likelihood gains less than `tol`, the best of `n_init` runs by that bound. Soft
//! assignments ([`GaussianMixture::predict_proba`]) and the Bayesian information
//! criterion ([`GaussianMixture::bic`]) to choose the number of components. The E-step
//! and the sums of the M-step run in chunks over rayon.
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    kmeans::KMeansParams,
    points::Points,
};

/// Points per parallel chunk.
const CHUNK: usize = 4_096;

/// The shape of each component's covariance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Covariance {
    /// A full matrix per component.
    Full,
    /// Variances only (axes independent within a component).
    Diag,
}

/// Where EM starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Init {
    /// Responsibilities from k-means labels (scikit-learn's default, `init_params="kmeans"`).
    KMeans,
    /// These parameters (scikit-learn's `weights_init`, `means_init` and, as covariances,
    /// the inverse of `precisions_init`).
    Given {
        /// Per component, summing to 1.
        weights: Vec<f64>,
        /// k × d, row-major.
        means: Vec<f64>,
        /// Full: k × d × d; diagonal: k × d.
        covariances: Vec<f64>,
    },
}

/// Parameters of a fit; [`GmmParams::check`] turns them into a [`Gmm`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GmmParams {
    k: usize,
    covariance: Covariance,
    max_iter: usize,
    tol: f64,
    reg_covar: f64,
    n_init: usize,
    seed: u64,
    init: Init,
}

impl GmmParams {
    /// `k` components, full covariances, scikit-learn's defaults otherwise (`max_iter`
    /// 100, `tol` 1e-3, `reg_covar` 1e-6, one run, seed 0, k-means start).
    pub fn new(k: usize) -> GmmParams {
        GmmParams {
            k,
            covariance: Covariance::Full,
            max_iter: 100,
            tol: 1e-3,
            reg_covar: 1e-6,
            n_init: 1,
            seed: 0,
            init: Init::KMeans,
        }
    }

    /// The covariances' shape.
    pub fn covariance(mut self, covariance: Covariance) -> GmmParams {
        self.covariance = covariance;
        self
    }

    /// Most EM steps per run.
    pub fn max_iter(mut self, max_iter: usize) -> GmmParams {
        self.max_iter = max_iter;
        self
    }

    /// Converged when the mean log-likelihood gains less than this.
    pub fn tol(mut self, tol: f64) -> GmmParams {
        self.tol = tol;
        self
    }

    /// Added to every variance, keeping covariances positive definite.
    pub fn reg_covar(mut self, reg_covar: f64) -> GmmParams {
        self.reg_covar = reg_covar;
        self
    }

    /// Runs, the best kept.
    pub fn n_init(mut self, n_init: usize) -> GmmParams {
        self.n_init = n_init;
        self
    }

    /// The seed of the k-means starts.
    pub fn seed(mut self, seed: u64) -> GmmParams {
        self.seed = seed;
        self
    }

    /// Where EM starts.
    pub fn init(mut self, init: Init) -> GmmParams {
        self.init = init;
        self
    }

    /// Checks the parameters once.
    pub fn check(&self) -> Result<Gmm> {
        let bad = |name, reason: &str| {
            Err(Error::Parameter {
                name,
                reason: reason.into(),
            })
        };
        if self.k == 0 {
            return bad("k", "at least 1");
        }
        if self.max_iter == 0 {
            return bad("max_iter", "at least 1");
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return bad("tol", "a finite number, 0 or more");
        }
        if !(self.reg_covar.is_finite() && self.reg_covar >= 0.0) {
            return bad("reg_covar", "a finite number, 0 or more");
        }
        if self.n_init == 0 {
            return bad("n_init", "at least 1");
        }
        if let Init::Given { weights, .. } = &self.init {
            if weights.len() != self.k {
                return bad("init", "one weight per component");
            }
            if weights.iter().any(|w| !(w.is_finite() && *w >= 0.0))
                || (weights.iter().sum::<f64>() - 1.0).abs() > 1e-6
            {
                return bad("init", "weights of 0 or more summing to 1");
            }
        }
        Ok(Gmm {
            params: self.clone(),
        })
    }
}

/// Checked parameters, ready to fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Gmm {
    params: GmmParams,
}

/// A fitted mixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GaussianMixture {
    /// Features per point.
    pub dim: usize,
    /// The covariances' shape.
    pub covariance: Covariance,
    /// Per component.
    pub weights: Vec<f64>,
    /// k × d, row-major.
    pub means: Vec<f64>,
    /// Full: k × d × d; diagonal: k × d.
    pub covariances: Vec<f64>,
    /// Per component, the lower Cholesky factor of its covariance (full: d × d), or the
    /// standard deviations (diagonal: d).
    factors: Vec<f64>,
    /// Per component, the log of its weight minus half the log-determinant and
    /// d/2 · ln 2π: the constant of its log density.
    constants: Vec<f64>,
    /// The mean log-likelihood at the last E-step (scikit-learn's `lower_bound_`).
    pub lower_bound: f64,
    /// EM steps taken.
    pub n_iter: usize,
    /// Whether it converged within `max_iter`.
    pub converged: bool,
}

/// Per-chunk sums of the M-step: responsibilities, weighted sums of points and of their
/// outer products (full) or squares (diagonal).
struct Sums {
    nk: Vec<f64>,
    sx: Vec<f64>,
    sxx: Vec<f64>,
}

impl Sums {
    fn zero(k: usize, d: usize, covariance: Covariance) -> Sums {
        let per = match covariance {
            Covariance::Full => d * d,
            Covariance::Diag => d,
        };
        Sums {
            nk: vec![0.0; k],
            sx: vec![0.0; k * d],
            sxx: vec![0.0; k * per],
        }
    }

    fn add(mut self, other: Sums) -> Sums {
        for (a, b) in [
            (&mut self.nk, &other.nk),
            (&mut self.sx, &other.sx),
            (&mut self.sxx, &other.sxx),
        ] {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        self
    }
}

/// The lower Cholesky factor of the d × d matrix `a`, or None when it is not positive
/// definite.
fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let mut s = a[i * d + j];
            for m in 0..j {
                s -= l[i * d + m] * l[j * d + m];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i * d + i] = s.sqrt();
            } else {
                l[i * d + j] = s / l[j * d + j];
            }
        }
    }
    Some(l)
}

impl GaussianMixture {
    /// Components.
    pub fn k(&self) -> usize {
        self.weights.len()
    }

    fn from_parameters(
        dim: usize,
        covariance: Covariance,
        weights: Vec<f64>,
        means: Vec<f64>,
        covariances: Vec<f64>,
    ) -> Result<GaussianMixture> {
        let k = weights.len();
        let d = dim;
        let mut factors = Vec::with_capacity(covariances.len());
        let mut constants = Vec::with_capacity(k);
        let half_log_2pi = 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln();
        for j in 0..k {
            let log_det = match covariance {
                Covariance::Full => {
                    let l =
                        cholesky(&covariances[j * d * d..(j + 1) * d * d], d).ok_or_else(|| {
                            Error::Data(format!(
                                "the covariance of component {j} is not positive definite: \
                                 raise reg_covar or use fewer components"
                            ))
                        })?;
                    let log_det = 2.0 * (0..d).map(|i| l[i * d + i].ln()).sum::<f64>();
                    factors.extend(l);
                    log_det
                }
                Covariance::Diag => {
                    let vars = &covariances[j * d..(j + 1) * d];
                    if vars.iter().any(|v| !(*v > 0.0 && v.is_finite())) {
                        return Err(Error::Data(format!(
                            "a variance of component {j} is not positive: raise reg_covar \
                             or use fewer components"
                        )));
                    }
                    factors.extend(vars.iter().map(|v| v.sqrt()));
                    vars.iter().map(|v| v.ln()).sum::<f64>()
                }
            };
            constants.push(weights[j].ln() - 0.5 * log_det - half_log_2pi);
        }
        Ok(GaussianMixture {
            dim,
            covariance,
            weights,
            means,
            covariances,
            factors,
            constants,
            lower_bound: f64::NEG_INFINITY,
            n_iter: 0,
            converged: false,
        })
    }

    /// Per component, log(weight · density at `x`), into `out` (k values).
    fn weighted_log_densities(&self, x: &[f64], out: &mut [f64], z: &mut [f64]) {
        let d = self.dim;
        for (j, o) in out.iter_mut().enumerate() {
            let mean = &self.means[j * d..(j + 1) * d];
            let mut q = 0.0;
            match self.covariance {
                Covariance::Full => {
                    // Solve L z = x − μ by forward substitution; q = |z|².
                    let l = &self.factors[j * d * d..(j + 1) * d * d];
                    for i in 0..d {
                        let mut s = x[i] - mean[i];
                        for m in 0..i {
                            s -= l[i * d + m] * z[m];
                        }
                        z[i] = s / l[i * d + i];
                        q += z[i] * z[i];
                    }
                }
                Covariance::Diag => {
                    let sd = &self.factors[j * d..(j + 1) * d];
                    for i in 0..d {
                        let t = (x[i] - mean[i]) / sd[i];
                        q += t * t;
                    }
                }
            }
            *o = self.constants[j] - 0.5 * q;
        }
    }

    /// Turns log densities into responsibilities in place; returns their log-sum-exp
    /// (the point's log-likelihood).
    fn normalize(log: &mut [f64]) -> f64 {
        let max = log.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = log.iter().map(|v| (v - max).exp()).sum();
        let lse = max + sum.ln();
        for v in log.iter_mut() {
            *v = (*v - lse).exp();
        }
        lse
    }

    /// One E-step and the M-step's sums over `points`; returns (mean log-likelihood,
    /// sums).
    fn expect(&self, points: Points<'_>) -> (f64, Sums) {
        let (k, d, cov) = (self.k(), self.dim, self.covariance);
        let n = points.len();
        let (total, sums) = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let mut sums = Sums::zero(k, d, cov);
                let mut resp = vec![0.0; k];
                let mut z = vec![0.0; d];
                let mut total = 0.0;
                for i in c * CHUNK..((c + 1) * CHUNK).min(n) {
                    let x = points.row(i);
                    self.weighted_log_densities(x, &mut resp, &mut z);
                    total += Self::normalize(&mut resp);
                    for (j, r) in resp.iter().enumerate() {
                        sums.nk[j] += r;
                        let sx = &mut sums.sx[j * d..(j + 1) * d];
                        for a in 0..d {
                            sx[a] += r * x[a];
                        }
                        match cov {
                            Covariance::Full => {
                                let sxx = &mut sums.sxx[j * d * d..(j + 1) * d * d];
                                for a in 0..d {
                                    let rx = r * x[a];
                                    for b in 0..=a {
                                        sxx[a * d + b] += rx * x[b];
                                    }
                                }
                            }
                            Covariance::Diag => {
                                let sxx = &mut sums.sxx[j * d..(j + 1) * d];
                                for a in 0..d {
                                    sxx[a] += r * x[a] * x[a];
                                }
                            }
                        }
                    }
                }
                (total, sums)
            })
            .reduce(
                || (0.0, Sums::zero(k, d, cov)),
                |(t1, s1), (t2, s2)| (t1 + t2, s1.add(s2)),
            );
        (total / n as f64, sums)
    }

    /// The probability of each component for `row`.
    pub fn predict_proba(&self, row: &[f64]) -> Result<Vec<f64>> {
        self.check_row(row)?;
        let mut out = vec![0.0; self.k()];
        let mut z = vec![0.0; self.dim];
        self.weighted_log_densities(row, &mut out, &mut z);
        Self::normalize(&mut out);
        Ok(out)
    }

    /// The most likely component for `row`.
    pub fn predict(&self, row: &[f64]) -> Result<usize> {
        let p = self.predict_proba(row)?;
        Ok(p.iter()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |best, (j, v)| {
                if *v > best.1 {
                    (j, *v)
                } else {
                    best
                }
            })
            .0)
    }

    fn check_row(&self, row: &[f64]) -> Result<()> {
        if row.len() != self.dim {
            return Err(Error::Shape(format!(
                "a row of {} features for a mixture of {}",
                row.len(),
                self.dim
            )));
        }
        Ok(())
    }

    /// The mean log-likelihood of `points` (scikit-learn's `score`).
    pub fn score(&self, points: Points<'_>) -> Result<f64> {
        if points.dim() != self.dim {
            return Err(Error::Shape(format!(
                "points of {} features for a mixture of {}",
                points.dim(),
                self.dim
            )));
        }
        if points.is_empty() {
            return Err(Error::Data("no points to score".into()));
        }
        Ok(self.expect(points).0)
    }

    /// Free parameters: weights, means and covariances.
    pub fn n_parameters(&self) -> usize {
        let (k, d) = (self.k(), self.dim);
        let cov = match self.covariance {
            Covariance::Full => k * d * (d + 1) / 2,
            Covariance::Diag => k * d,
        };
        cov + k * d + k - 1
    }

    /// The Bayesian information criterion on `points` (lower is better):
    /// −2 · n · score + parameters · ln n.
    pub fn bic(&self, points: Points<'_>) -> Result<f64> {
        let n = points.len() as f64;
        Ok(-2.0 * self.score(points)? * n + self.n_parameters() as f64 * n.ln())
    }
}

impl Gmm {
    /// The parameters.
    pub fn params(&self) -> &GmmParams {
        &self.params
    }

    /// Fits the mixture: the best of `n_init` runs by their final lower bound.
    pub fn fit(&self, points: Points<'_>) -> Result<GaussianMixture> {
        let p = &self.params;
        if points.len() < p.k {
            return Err(Error::Data(format!(
                "{} points are too few for {} components",
                points.len(),
                p.k
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        let mut best: Option<GaussianMixture> = None;
        for _ in 0..p.n_init {
            let start = self.start(points, &mut rng)?;
            let fitted = self.em(points, start)?;
            if best
                .as_ref()
                .is_none_or(|b| fitted.lower_bound > b.lower_bound)
            {
                best = Some(fitted);
            }
        }
        Ok(best.expect("n_init is at least 1"))
    }

    fn start(&self, points: Points<'_>, rng: &mut ChaCha8Rng) -> Result<GaussianMixture> {
        let p = &self.params;
        let d = points.dim();
        match &p.init {
            Init::Given {
                weights,
                means,
                covariances,
            } => {
                let per = match p.covariance {
                    Covariance::Full => d * d,
                    Covariance::Diag => d,
                };
                if means.len() != p.k * d || covariances.len() != p.k * per {
                    return Err(Error::Shape(format!(
                        "initial means or covariances do not fit {} components of {d} features",
                        p.k
                    )));
                }
                GaussianMixture::from_parameters(
                    d,
                    p.covariance,
                    weights.clone(),
                    means.clone(),
                    covariances.clone(),
                )
            }
            Init::KMeans => {
                // Hard responsibilities from one k-means run, as scikit-learn starts.
                let labels = KMeansParams::new(p.k)
                    .n_init(1)
                    .seed(rand::Rng::random(rng))
                    .check()?
                    .fit(points)?
                    .predict_all(points)?;
                let k = p.k;
                let mut sums = Sums::zero(k, d, p.covariance);
                for (i, &l) in labels.iter().enumerate() {
                    let (j, x) = (l as usize, points.row(i));
                    sums.nk[j] += 1.0;
                    for a in 0..d {
                        sums.sx[j * d + a] += x[a];
                        match p.covariance {
                            Covariance::Full => {
                                for b in 0..=a {
                                    sums.sxx[j * d * d + a * d + b] += x[a] * x[b];
                                }
                            }
                            Covariance::Diag => sums.sxx[j * d + a] += x[a] * x[a],
                        }
                    }
                }
                self.maximize(d, sums, points.len())
            }
        }
    }

    /// The M-step: parameters from the sums of responsibilities.
    fn maximize(&self, d: usize, sums: Sums, n: usize) -> Result<GaussianMixture> {
        let p = &self.params;
        let k = p.k;
        // scikit-learn adds 10 machine epsilons to every component's weight.
        let nk: Vec<f64> = sums.nk.iter().map(|v| v + 10.0 * f64::EPSILON).collect();
        let weights: Vec<f64> = nk.iter().map(|v| v / n as f64).collect();
        let total: f64 = weights.iter().sum();
        let weights: Vec<f64> = weights.iter().map(|w| w / total).collect();
        let mut means = vec![0.0; k * d];
        for j in 0..k {
            for a in 0..d {
                means[j * d + a] = sums.sx[j * d + a] / nk[j];
            }
        }
        let covariances = match p.covariance {
            Covariance::Full => {
                let mut c = vec![0.0; k * d * d];
                for j in 0..k {
                    let m = &means[j * d..(j + 1) * d];
                    // Σ r (x − μ)(x − μ)ᵀ = Σ r x xᵀ − μ sxᵀ − sx μᵀ + nk μ μᵀ; with
                    // sx = nk μ that is Σ r x xᵀ / nk − μ μᵀ, per unit of nk.
                    for a in 0..d {
                        for b in 0..=a {
                            let v = sums.sxx[j * d * d + a * d + b] / nk[j] - m[a] * m[b];
                            c[j * d * d + a * d + b] = v;
                            c[j * d * d + b * d + a] = v;
                        }
                        c[j * d * d + a * d + a] += p.reg_covar;
                    }
                }
                c
            }
            Covariance::Diag => (0..k * d)
                .map(|i| {
                    let m = means[i];
                    sums.sxx[i] / nk[i / d] - m * m + p.reg_covar
                })
                .collect(),
        };
        GaussianMixture::from_parameters(d, p.covariance, weights, means, covariances)
    }

    fn em(&self, points: Points<'_>, mut model: GaussianMixture) -> Result<GaussianMixture> {
        let p = &self.params;
        let d = points.dim();
        let mut lower_bound = f64::NEG_INFINITY;
        let mut converged = false;
        let mut n_iter = 0;
        for iter in 1..=p.max_iter {
            n_iter = iter;
            let previous = lower_bound;
            let (mean_log_likelihood, sums) = model.expect(points);
            model = self.maximize(d, sums, points.len())?;
            lower_bound = mean_log_likelihood;
            if (lower_bound - previous).abs() < p.tol {
                converged = true;
                break;
            }
        }
        model.lower_bound = lower_bound;
        model.n_iter = n_iter;
        model.converged = converged;
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_sum_to_one_and_bic_prefers_the_true_count() {
        // Three tight, well-apart groups.
        let mut data = Vec::new();
        for (c, (x, y)) in [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)].iter().enumerate() {
            for i in 0..50 {
                let t = i as f64 * 0.37 + c as f64;
                data.extend([x + t.sin(), y + (1.3 * t).cos()]);
            }
        }
        let points = Points::new(&data, 2).unwrap();
        let fit = |k: usize, cov| {
            GmmParams::new(k)
                .covariance(cov)
                .seed(3)
                .check()
                .unwrap()
                .fit(points)
                .unwrap()
        };
        for cov in [Covariance::Full, Covariance::Diag] {
            let bics: Vec<f64> = (1..=5).map(|k| fit(k, cov).bic(points).unwrap()).collect();
            let best = bics
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            assert_eq!(best + 1, 3, "{cov:?}: {bics:?}");
            let m = fit(3, cov);
            assert!(m.converged);
            let p = m.predict_proba(&[10.0, 0.5]).unwrap();
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert!(p.iter().any(|v| *v > 0.999));
        }
    }

    #[test]
    fn parameters_and_shapes_are_checked() {
        assert!(GmmParams::new(0).check().is_err());
        assert!(GmmParams::new(2).tol(-1.0).check().is_err());
        assert!(GmmParams::new(2)
            .init(Init::Given {
                weights: vec![0.7, 0.7],
                means: vec![],
                covariances: vec![]
            })
            .check()
            .is_err());
        let data = [0.0, 1.0, 2.0];
        let points = Points::new(&data, 1).unwrap();
        assert!(GmmParams::new(4).check().unwrap().fit(points).is_err());
        let m = GmmParams::new(1).check().unwrap().fit(points).unwrap();
        assert!(m.predict(&[1.0, 2.0]).is_err());
    }
}
