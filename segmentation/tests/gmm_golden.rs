//! Gaussian mixtures against scikit-learn's: the same points and starting parameters
//! (`tests/golden/gmm.json`, written by `tests/golden/make_gmm.py`) give the same
//! weights, means, covariances, bound, steps, score, BIC and soft assignments, with full
//! and with diagonal covariances.
use assent_segmentation::{
    gmm::{Covariance, GmmParams, Init},
    Points,
};

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(name: &str, what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: {what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "{name}: {what}[{i}] = {g}, scikit-learn {w}"
        );
    }
}

#[test]
fn gaussian_mixtures_match_scikit_learn_from_the_same_start() {
    let golden: serde_json::Value = serde_json::from_str(include_str!("golden/gmm.json")).unwrap();
    for case in golden["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (dim, k) = (
            case["dim"].as_u64().unwrap() as usize,
            case["k"].as_u64().unwrap() as usize,
        );
        let covariance = match case["covariance"].as_str().unwrap() {
            "full" => Covariance::Full,
            _ => Covariance::Diag,
        };
        let data = floats(&case["points"]);
        let points = Points::new(&data, dim).unwrap();
        let init = &case["init"];
        let model = GmmParams::new(k)
            .covariance(covariance)
            .max_iter(200)
            .tol(1e-6)
            .init(Init::Given {
                weights: floats(&init["weights"]),
                means: floats(&init["means"]),
                covariances: floats(&init["covariances"]),
            })
            .check()
            .unwrap()
            .fit(points)
            .unwrap();
        assert_eq!(
            model.n_iter,
            case["n_iter"].as_u64().unwrap() as usize,
            "{name}"
        );
        assert_eq!(model.converged, case["converged"].as_bool().unwrap());
        close(
            name,
            "weights",
            &model.weights,
            &floats(&case["weights"]),
            1e-7,
        );
        close(name, "means", &model.means, &floats(&case["means"]), 1e-7);
        close(
            name,
            "covariances",
            &model.covariances,
            &floats(&case["covariances"]),
            1e-7,
        );
        let bound = case["lower_bound"].as_f64().unwrap();
        close(name, "lower bound", &[model.lower_bound], &[bound], 1e-9);
        let score = case["score"].as_f64().unwrap();
        close(
            name,
            "score",
            &[model.score(points).unwrap()],
            &[score],
            1e-9,
        );
        let bic = case["bic"].as_f64().unwrap();
        close(name, "bic", &[model.bic(points).unwrap()], &[bic], 1e-9);
        let proba: Vec<f64> = (0..5)
            .flat_map(|i| model.predict_proba(points.row(i)).unwrap())
            .collect();
        close(name, "proba", &proba, &floats(&case["proba"]), 1e-7);
    }
}
