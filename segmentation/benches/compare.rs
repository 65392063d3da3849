//! Clustering against scikit-learn on real data and on a large mixture, in one run on
//! the same matrices and starts: k-means inertia and Gaussian-mixture log-likelihood on
//! UCI Online Shoppers (10 numeric session features), UCI Wholesale customers (6 spend
//! features, log-scaled) and CDNOW (recency, frequency, monetary value per customer,
//! log-scaled), read at run time from `../shared/data/` (`SHARED_DATA`), each standardized;
//! then GMM fit time (full and diagonal) on 200,000 × 8 points from 8 Gaussians. Each line
//! says whether ours is within 1 % of scikit-learn's. scikit-learn runs from
//! `target/venv/bin/python` (or `PYTHON`).
use std::{collections::HashMap, path::PathBuf, process::Command, time::Instant};

use assent_segmentation::{
    gmm::{Covariance, GmmParams, Init},
    kmeans::{kmeans_plus_plus, KMeansParams},
    scale::StandardScaler,
    Points,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr_free::normal;

/// Box–Muller normals without another crate (the bench needs a few million).
mod rand_distr_free {
    use rand::Rng;
    pub fn normal(rng: &mut impl Rng) -> f64 {
        let (u, v): (f64, f64) = (rng.random(), rng.random());
        (-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

struct Task {
    name: String,
    model: &'static str,
    k: usize,
    dim: usize,
    data: Vec<f64>,
    max_iter: usize,
}

fn log1p_columns(rows: &mut [f64]) {
    for v in rows {
        *v = v.max(0.0).ln_1p();
    }
}

/// The ten numeric features, log-scaled; rows with a value missing (14 have none of
/// the first eight) are left out.
fn online_shoppers(dir: &str) -> Option<(Vec<f64>, usize)> {
    let text = std::fs::read_to_string(format!(
        "{dir}/online-shoppers-intention/online_shoppers_intention.csv"
    ))
    .ok()?;
    let mut rows = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.trim_end_matches('\r').split(',').collect();
        let values: Option<Vec<f64>> = f.get(..10)?.iter().map(|v| v.parse().ok()).collect();
        if let Some(values) = values {
            rows.extend(values);
        }
    }
    log1p_columns(&mut rows);
    Some((rows, 10))
}

fn wholesale(dir: &str) -> Option<(Vec<f64>, usize)> {
    let text =
        std::fs::read_to_string(format!("{dir}/wholesale-customers/wholesale_customers.csv"))
            .ok()?;
    let mut rows = Vec::new();
    for line in text.lines().skip(1) {
        for v in line.split(',').skip(2) {
            rows.push(v.trim().parse::<f64>().ok()?);
        }
    }
    log1p_columns(&mut rows);
    Some((rows, 6))
}

/// Recency (days before the last day of the log), frequency and monetary value.
fn cdnow(dir: &str) -> Option<(Vec<f64>, usize)> {
    let text = std::fs::read_to_string(format!("{dir}/cdnow/CDNOW_master.txt")).ok()?;
    let day = |d: &str| -> Option<i64> {
        let y: i32 = d.get(..4)?.parse().ok()?;
        let m: u8 = d.get(4..6)?.parse().ok()?;
        let dd: u8 = d.get(6..8)?.parse().ok()?;
        let date = time::Date::from_calendar_date(y, time::Month::try_from(m).ok()?, dd).ok()?;
        Some(date.to_julian_day() as i64)
    };
    let mut customers: HashMap<String, (i64, f64, f64)> = HashMap::new();
    let mut end = i64::MIN;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let d = day(f[1])?;
        end = end.max(d);
        let e = customers
            .entry(f[0].to_owned())
            .or_insert((i64::MIN, 0.0, 0.0));
        e.0 = e.0.max(d);
        e.1 += 1.0;
        e.2 += f[3].parse::<f64>().ok()?;
    }
    let mut ids: Vec<&String> = customers.keys().collect();
    ids.sort();
    let mut rows = Vec::new();
    for id in ids {
        let (last, freq, money) = customers[id];
        rows.extend([(end - last) as f64, freq, money]);
    }
    log1p_columns(&mut rows);
    Some((rows, 3))
}

fn standardized(raw: &[f64], dim: usize) -> Vec<f64> {
    let p = Points::new(raw, dim).unwrap();
    StandardScaler::fit(p).unwrap().transform(p).unwrap()
}

fn write_f64(path: &std::path::Path, values: &[f64]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let shared = std::env::var("SHARED_DATA").unwrap_or_else(|_| "../../shared/data".into());
    let threads = rayon::current_num_threads();
    println!("clustering vs scikit-learn, same matrices and starts, {threads} threads (2 cores)");
    let mut tasks = Vec::new();
    for (name, k, loaded) in [
        ("online-shoppers", 4, online_shoppers(&shared)),
        ("wholesale", 3, wholesale(&shared)),
        ("cdnow-rfm", 4, cdnow(&shared)),
    ] {
        let Some((raw, dim)) = loaded else {
            println!("{name}: skipped (not found under {shared})");
            continue;
        };
        let data = standardized(&raw, dim);
        for model in ["kmeans", "gmm-diag", "gmm-full"] {
            tasks.push(Task {
                name: format!("{name} {model}"),
                model,
                k,
                dim,
                data: data.clone(),
                max_iter: 100,
            });
        }
    }
    // A large mixture for time: 8 Gaussians in 8 dimensions.
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (n, dim, k) = (200_000, 8, 8);
    let centres: Vec<f64> = (0..k * dim).map(|_| 6.0 * normal(&mut rng)).collect();
    let mut big = Vec::with_capacity(n * dim);
    for i in 0..n {
        let c = i % k;
        for j in 0..dim {
            big.push(centres[c * dim + j] + (1.0 + (j % 3) as f64) * normal(&mut rng));
        }
    }
    let big = standardized(&big, dim);
    for model in ["gmm-diag", "gmm-full"] {
        tasks.push(Task {
            name: format!("mixture-200k {model}"),
            model,
            k,
            dim,
            data: big.clone(),
            max_iter: 100,
        });
    }

    let dir =
        PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "../target".into()))
            .join("segmentation-compare");
    std::fs::create_dir_all(&dir).unwrap();
    let mut manifest = Vec::new();
    let mut ours = HashMap::new();
    for (i, t) in tasks.iter().enumerate() {
        let points = Points::new(&t.data, t.dim).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let means = kmeans_plus_plus(points, t.k, &mut rng);
        let variances: Vec<f64> = {
            let v = StandardScaler::fit(points).unwrap();
            v.scale.iter().map(|s| s * s).collect()
        };
        let covariances: Vec<f64> = match t.model {
            "gmm-full" => (0..t.k)
                .flat_map(|_| {
                    (0..t.dim * t.dim).map(|c| {
                        if c / t.dim == c % t.dim {
                            variances[c % t.dim]
                        } else {
                            0.0
                        }
                    })
                })
                .collect(),
            _ => (0..t.k).flat_map(|_| variances.iter().copied()).collect(),
        };
        let (pf, mf, cf) = (
            format!("p{i}.f64"),
            format!("m{i}.f64"),
            format!("c{i}.f64"),
        );
        write_f64(&dir.join(&pf), &t.data);
        write_f64(&dir.join(&mf), &means);
        write_f64(&dir.join(&cf), &covariances);
        manifest.push(
            serde_json::json!({"name": t.name, "model": t.model, "n": points.len(), "dim": t.dim,
            "k": t.k, "points": pf, "means": mf, "covariances": cf, "max_iter": t.max_iter}),
        );
        let started = Instant::now();
        let (value, iters) = match t.model {
            "kmeans" => {
                let m = KMeansParams::new(t.k)
                    .check()
                    .unwrap()
                    .fit_from(points, &means)
                    .unwrap();
                (m.inertia, m.n_iter)
            }
            _ => {
                let covariance = if t.model == "gmm-full" {
                    Covariance::Full
                } else {
                    Covariance::Diag
                };
                let m = GmmParams::new(t.k)
                    .covariance(covariance)
                    .max_iter(t.max_iter)
                    .init(Init::Given {
                        weights: vec![1.0 / t.k as f64; t.k],
                        means: means.clone(),
                        covariances,
                    })
                    .check()
                    .unwrap()
                    .fit(points)
                    .unwrap();
                (m.score(points).unwrap(), m.n_iter)
            }
        };
        ours.insert(
            t.name.clone(),
            (started.elapsed().as_secs_f64(), value, iters),
        );
    }
    std::fs::write(
        dir.join("tasks.json"),
        serde_json::to_string(&manifest).unwrap(),
    )
    .unwrap();
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "../target/venv/bin/python".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/compare_sklearn.py");
    let out = Command::new(&python).arg(script).arg(&dir).output();
    let theirs: Vec<serde_json::Value> = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("failed")
                    .to_owned(),
                Err(e) => e.to_string(),
            };
            println!(
                "scikit-learn: skipped ({python}: {why}; `make bench-segmentation` installs it)"
            );
            for t in &tasks {
                let (s, v, it) = ours[&t.name];
                println!(
                    "{:28} ours {:>8.1} ms {it:>3} iterations, value {v:.6}",
                    t.name,
                    s * 1e3
                );
            }
            return;
        }
    };
    for v in theirs {
        let name = v["name"].as_str().unwrap();
        let (s, value, iters) = ours[name];
        let (what, their) = match v.get("inertia") {
            Some(x) => ("inertia", x.as_f64().unwrap()),
            None => ("log-likelihood", v["log_likelihood"].as_f64().unwrap()),
        };
        let their_s = v["seconds"].as_f64().unwrap();
        let rel = (value - their).abs() / their.abs().max(1e-12);
        println!(
            "{name:28} {what:14} ours {value:.6} scikit-learn {their:.6} (diff {:.2e}, {}) | ours {:>8.1} ms {iters:>3} it, scikit-learn {:>8.1} ms {:>3} it, {:.2}x",
            rel,
            if rel <= 0.01 { "within 1 %" } else { "DIFFERS" },
            s * 1e3,
            their_s * 1e3,
            v["n_iter"],
            their_s / s
        );
    }
}
