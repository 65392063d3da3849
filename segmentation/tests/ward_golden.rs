//! Ward's agglomerative clustering against SciPy's and scikit-learn's: the same points
//! (`tests/golden/ward.json`, written by `tests/golden/make_ward.py`) give SciPy's merge
//! heights and sizes, and a cut into k clusters gives scikit-learn's partition.
use assent_segmentation::{metrics::adjusted_rand_index, ward::ward, Points};

#[test]
fn ward_matches_scipy_and_scikit_learn() {
    let golden: serde_json::Value = serde_json::from_str(include_str!("golden/ward.json")).unwrap();
    for case in golden["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let dim = case["dim"].as_u64().unwrap() as usize;
        let k = case["k"].as_u64().unwrap() as usize;
        let data: Vec<f64> = case["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let d = ward(Points::new(&data, dim).unwrap()).unwrap();
        let heights = case["heights"].as_array().unwrap();
        let sizes = case["sizes"].as_array().unwrap();
        assert_eq!(d.merges.len(), heights.len(), "{name}");
        for (i, m) in d.merges.iter().enumerate() {
            let h = heights[i].as_f64().unwrap();
            assert!(
                (m.distance - h).abs() <= 1e-9 * h.max(1.0),
                "{name}: merge {i} at {}, SciPy {h}",
                m.distance
            );
            assert_eq!(
                m.size as u64,
                sizes[i].as_u64().unwrap(),
                "{name}: merge {i}"
            );
        }
        let want: Vec<u32> = case["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = d.cut(k).unwrap();
        let ari = adjusted_rand_index(&got, &want).unwrap();
        assert!((ari - 1.0).abs() < 1e-12, "{name}: ARI {ari}");
    }
}
