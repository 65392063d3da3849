//! Our item-kNN weighting and EASE against `implicit` and NumPy on the same small
//! matrix (`golden/golden.json`, written by `golden/make_golden.py`).
use assent_recommendation::{
    ease::EaseParams,
    knn::{ItemKnnParams, Weighting},
    Csr,
};
use serde_json::Value;

fn golden() -> (Value, Csr) {
    let g: Value = serde_json::from_str(include_str!("golden/golden.json")).unwrap();
    let t: Vec<(u32, u32, f32)> = g["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_u64().unwrap() as u32,
                p[1].as_u64().unwrap() as u32,
                1.0,
            )
        })
        .collect();
    let x = Csr::from_triplets(
        g["users"].as_u64().unwrap() as usize,
        g["items"].as_u64().unwrap() as usize,
        &t,
    )
    .unwrap();
    (g, x)
}

fn compare(name: &str, weighting: Weighting) {
    let (g, x) = golden();
    let n = x.cols();
    let m = ItemKnnParams {
        neighbours: n,
        weighting,
        shrink: 0.0,
    }
    .check()
    .unwrap()
    .fit(&x);
    for i in 0..n {
        for j in 0..n {
            let want = g[name][i][j].as_f64().unwrap();
            let got = m.similarity().get(i, j as u32) as f64;
            assert!(
                (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                "{name} similarity ({i}, {j}): ours {got}, implicit {want}"
            );
        }
    }
}

#[test]
fn bm25_similarities_equal_implicits() {
    compare("bm25", Weighting::Bm25 { k1: 100.0, b: 0.8 });
}

#[test]
fn cosine_similarities_equal_implicits() {
    compare("cosine", Weighting::Cosine);
}

#[test]
fn ease_weights_equal_numpys() {
    let (g, x) = golden();
    let n = x.cols();
    let m = EaseParams {
        lambda: g["ease_lambda"].as_f64().unwrap(),
        ..Default::default()
    }
    .check()
    .unwrap()
    .fit(&x)
    .unwrap();
    for i in 0..n {
        for j in 0..n {
            let want = g["ease"][i][j].as_f64().unwrap();
            let got = m.weight(i, j) as f64;
            assert!(
                (got - want).abs() < 1e-6,
                "B[{i}][{j}]: ours {got}, NumPy {want}"
            );
        }
    }
}
