use assent_segmentation::{kmeans::{kmeans_plus_plus, Algorithm, KMeansParams}, Points};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
fn main() {
    let (n, dim, k) = (1_000_000, 8, 8);
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let data: Vec<f64> = (0..n * dim).map(|_| rng.random::<f64>() * 3.4 - 1.7).collect();
    let p = Points::new(&data, dim).unwrap();
    let init = kmeans_plus_plus(p, k, &mut ChaCha8Rng::seed_from_u64(42));
    let alg = if std::env::var("ALG").as_deref() == Ok("lloyd") { Algorithm::Lloyd } else { Algorithm::Hamerly };
    let t = std::time::Instant::now();
    let m = KMeansParams::new(k).algorithm(alg).check().unwrap().fit_from(p, &init).unwrap();
    println!("{:?} {} iters {:.1} ms/iter", alg, m.n_iter, t.elapsed().as_secs_f64() * 1e3 / m.n_iter as f64);
}
