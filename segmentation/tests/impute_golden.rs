//! KNN imputation against scikit-learn's `KNNImputer`: the matrices of
//! `tests/golden/impute.json` (written by `tests/golden/make_impute.py`) are filled with
//! its values within 1e-9.
use assent_segmentation::impute::KnnImputer;

#[test]
fn knn_imputation_matches_scikit_learn() {
    let golden: serde_json::Value =
        serde_json::from_str(include_str!("golden/impute.json")).unwrap();
    for case in golden["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let dim = case["dim"].as_u64().unwrap() as usize;
        let k = case["k"].as_u64().unwrap() as usize;
        let rows: Vec<f64> = case["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap_or(f64::NAN))
            .collect();
        let missing = rows.iter().filter(|v| v.is_nan()).count();
        assert!(missing > 0, "{name} has values to fill");
        let got = KnnImputer::new(k)
            .unwrap()
            .fit_transform(&rows, dim)
            .unwrap();
        for (i, (g, want)) in got
            .iter()
            .zip(case["filled"].as_array().unwrap())
            .enumerate()
        {
            let want = want.as_f64().unwrap();
            assert!(
                (g - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{name} value {i}: {g} vs scikit-learn's {want}"
            );
        }
    }
}
