//! k-means against scikit-learn, in one run on the same data: 1,000,000 × 8 uniform
//! points, standardized, k = 8 (`KMEANS_N`, `KMEANS_K` to change). Prints the fit to
//! convergence (ours: Hamerly and Lloyd, from our k-means++ start and from the start
//! scikit-learn is also given), time per Lloyd iteration next to a bare pass over the
//! same data, and assignments per second on one core. scikit-learn runs from
//! `target/venv/bin/python` (or `PYTHON`); without it its lines say skipped.
use std::{io::Write, path::PathBuf, process::Command, time::Instant};

use assent_segmentation::{
    kmeans::{kmeans_plus_plus, Algorithm, KMeansParams},
    scale::StandardScaler,
    Points,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn arg(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let (n, dim, k, seed) = (arg("KMEANS_N", 1_000_000), 8, arg("KMEANS_K", 8), 42u64);
    let threads = rayon::current_num_threads();
    println!("k-means bench: {n} x {dim} uniform points, standardized, k = {k}, seed {seed}, {threads} threads (2 cores)");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let raw: Vec<f64> = (0..n * dim).map(|_| rng.random::<f64>()).collect();
    let scaler = StandardScaler::fit(Points::new(&raw, dim).unwrap()).unwrap();
    let data = scaler.transform(Points::new(&raw, dim).unwrap()).unwrap();
    drop(raw);
    let points = Points::new(&data, dim).unwrap();

    // A bare pass: every value read once (the memory-bandwidth floor of an iteration).
    let bare = (0..5)
        .map(|_| {
            let t = Instant::now();
            let s: f64 = std::hint::black_box(&data).iter().sum();
            std::hint::black_box(s);
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);

    let mut init_rng = ChaCha8Rng::seed_from_u64(seed);
    let t = Instant::now();
    let init = kmeans_plus_plus(points, k, &mut init_rng);
    let init_s = t.elapsed().as_secs_f64();

    let dir =
        PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "../target".into()))
            .join("segmentation-bench");
    std::fs::create_dir_all(&dir).unwrap();
    write_f64(&dir.join("points.f64"), &data);
    write_f64(&dir.join("init.f64"), &init);
    std::fs::write(
        dir.join("meta.json"),
        format!(r#"{{"n": {n}, "dim": {dim}, "k": {k}, "seed": {seed}}}"#),
    )
    .unwrap();

    let fit = |name: &str, algorithm, from: Option<&[f64]>| {
        let km = KMeansParams::new(k)
            .algorithm(algorithm)
            .seed(seed)
            .check()
            .unwrap();
        let t = Instant::now();
        let m = match from {
            Some(init) => km.fit_from(points, init).unwrap(),
            None => km.fit(points).unwrap(),
        };
        let s = t.elapsed().as_secs_f64();
        println!(
            "ours     {name:34} {:>8.1} ms, {:>3} iterations ({:>6.2} ms each), inertia {:.6e}",
            s * 1e3,
            m.n_iter,
            s * 1e3 / m.n_iter as f64,
            m.inertia
        );
        (s, m)
    };
    println!(
        "ours     k-means++ start alone          {:>8.1} ms",
        init_s * 1e3
    );
    let (ours_pp, model) = fit("hamerly, k-means++ (its own)", Algorithm::Hamerly, None);
    fit("lloyd, k-means++ (its own)", Algorithm::Lloyd, None);
    let (ours_same, same) = fit("hamerly, the same start", Algorithm::Hamerly, Some(&init));
    let (lloyd_s, lloyd) = fit("lloyd, the same start", Algorithm::Lloyd, Some(&init));
    println!(
        "bare pass over the points: {:.2} ms; a Lloyd iteration is {:.1} bare passes",
        bare * 1e3,
        lloyd_s / lloyd.n_iter as f64 / bare
    );

    // Assignments on one core: the nearest centroid of each point.
    let t = Instant::now();
    let mut checksum = 0usize;
    for i in 0..n {
        checksum += model.predict(points.row(i)).unwrap();
    }
    std::hint::black_box(checksum);
    let assign = n as f64 / t.elapsed().as_secs_f64();
    println!("ours     assignments on one core: {assign:.0} points/s");

    let python = std::env::var("PYTHON").unwrap_or_else(|_| "../target/venv/bin/python".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/kmeans_sklearn.py");
    let out = Command::new(&python).arg(script).arg(&dir).output();
    let lines = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            println!(
                "scikit-learn: skipped ({})",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("failed")
            );
            return;
        }
        Err(e) => {
            println!(
                "scikit-learn: skipped ({python}: {e}; `make bench-segmentation` installs it)"
            );
            return;
        }
    };
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let (name, s, iters, inertia) = (
            v["fit"].as_str().unwrap(),
            v["seconds"].as_f64().unwrap(),
            v["n_iter"].as_u64().unwrap(),
            v["inertia"].as_f64().unwrap(),
        );
        println!(
            "sklearn  {name:34} {:>8.1} ms, {iters:>3} iterations ({:>6.2} ms each), inertia {inertia:.6e}",
            s * 1e3,
            s * 1e3 / iters as f64
        );
        let (ours_s, ours) = if name.contains("same start") {
            (ours_same, &same)
        } else {
            (ours_pp, &model)
        };
        println!(
            "         ours (hamerly) is {:.2}x faster; inertia ours/sklearn = {:.5}",
            s / ours_s,
            ours.inertia / inertia
        );
    }
}

fn write_f64(path: &std::path::Path, values: &[f64]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for v in values {
        f.write_all(&v.to_le_bytes()).unwrap();
    }
    f.flush().unwrap();
}
