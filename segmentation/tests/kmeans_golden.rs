//! k-means against scikit-learn's: the same points and starting centroids
//! (`tests/golden/kmeans.json`, written by `tests/golden/make_kmeans.py`) give the same
//! centroids, inertia and labels, by Lloyd's iterations and by Hamerly's.
use assent_segmentation::{
    kmeans::{Algorithm, KMeansParams},
    Points,
};

#[test]
fn kmeans_matches_scikit_learn_from_the_same_start() {
    let golden: serde_json::Value =
        serde_json::from_str(include_str!("golden/kmeans.json")).unwrap();
    let floats = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    for case in golden["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (dim, k) = (
            case["dim"].as_u64().unwrap() as usize,
            case["k"].as_u64().unwrap() as usize,
        );
        let data = floats(&case["points"]);
        let points = Points::new(&data, dim).unwrap();
        let (init, want) = (floats(&case["init"]), floats(&case["centroids"]));
        let inertia = case["inertia"].as_f64().unwrap();
        let labels: Vec<u32> = case["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_u64().unwrap() as u32)
            .collect();
        for algorithm in [Algorithm::Lloyd, Algorithm::Hamerly] {
            let model = KMeansParams::new(k)
                .algorithm(algorithm)
                .check()
                .unwrap()
                .fit_from(points, &init)
                .unwrap();
            for (got, want) in model.centroids.iter().zip(&want) {
                assert!(
                    (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                    "{name} {algorithm:?}: centroid {got} vs scikit-learn's {want}"
                );
            }
            let rel = (model.inertia - inertia).abs() / inertia;
            assert!(
                rel < 1e-9,
                "{name} {algorithm:?}: inertia {} vs {inertia}",
                model.inertia
            );
            assert_eq!(
                model.predict_all(points).unwrap(),
                labels,
                "{name} {algorithm:?}"
            );
        }
    }
}
