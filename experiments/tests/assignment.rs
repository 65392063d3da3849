//! Assignment: the published vectors, uniformity over a million ids, stickiness, layers.
use assent_experiments::assign::{assign, disjoint, Assigned, LayerShare, SplitParams};
use assent_experiments::hash::{bucket, hash, rollout_bucket};
use assent_experiments::stats::sample_ratio;
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("../../protocol/test-vectors/assignment.json")).unwrap()
}

#[test]
fn the_published_vectors_hold() {
    let v = vectors();
    for case in v["vectors"].as_array().unwrap() {
        let (seed, subject) = (
            case["seed"].as_str().unwrap(),
            case["subject"].as_str().unwrap(),
        );
        assert_eq!(
            hash(&[seed, subject]) as u64,
            case["hash"].as_u64().unwrap(),
            "{case}"
        );
        // The bucket is the hash over 2³² (the JSON's decimal is within parsing error).
        let h = case["hash"].as_u64().unwrap() as f64;
        assert_eq!(bucket(seed, subject), h / 4_294_967_296.0, "{case}");
        assert!((bucket(seed, subject) - case["bucket"].as_f64().unwrap()).abs() < 1e-15);
        assert_eq!(
            (rollout_bucket(seed, subject) * 4_294_967_296.0) as u64,
            case["rollout_hash"].as_u64().unwrap(),
            "{case}"
        );
    }
    for split in v["splits"].as_array().unwrap() {
        let params: SplitParams = serde_json::from_value(
            serde_json::json!({"weights": split["weights"], "coverage": split["coverage"]}),
        )
        .unwrap();
        let s = params.check().unwrap();
        for case in split["cases"].as_array().unwrap() {
            let (seed, subject) = (
                case["seed"].as_str().unwrap(),
                case["subject"].as_str().unwrap(),
            );
            let want = case["variant"].as_u64().map(|v| v as usize);
            assert_eq!(
                assign(seed, &s, None, subject, None).variant(),
                want,
                "{split} {case}"
            );
        }
    }
}

#[test]
fn the_published_served_vectors_hold_for_pseudonyms() {
    // The collector assigns the pseudonym of the id a client sends; the collector's tests
    // check the pseudonyms and what is served, these the assignment of each one.
    let served = &vectors()["served"];
    let params: SplitParams = serde_json::from_value(
        serde_json::json!({"weights": served["weights"], "coverage": served["coverage"]}),
    )
    .unwrap();
    let split = params.check().unwrap();
    let seed = served["seed"].as_str().unwrap();
    let cases = served["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for case in cases {
        let pseudonym = case["pseudonym"].as_str().unwrap();
        assert!((bucket(seed, pseudonym) - case["bucket"].as_f64().unwrap()).abs() < 1e-15);
        let want = case["variant"].as_u64().map(|v| v as usize);
        assert_eq!(
            assign(seed, &split, None, pseudonym, None).variant(),
            want,
            "{case}"
        );
    }
}

#[test]
fn buckets_are_uniform_over_a_million_ids() {
    // 100 equal bins: chi-square with 99 degrees of freedom stays under its 0.001
    // critical value (148.23) for a uniform hash.
    let mut bins = [0u64; 100];
    for i in 0..1_000_000 {
        bins[(bucket("uniformity", &format!("subject-{i}")) * 100.0) as usize] += 1;
    }
    let srm = sample_ratio(&bins, &[0.01; 100]).unwrap();
    assert!(
        srm.statistic < 148.23,
        "chi-square {} (p {})",
        srm.statistic,
        srm.p_value
    );
    // And a 10/90 split gets what it asks, within the same test.
    let split = SplitParams {
        weights: vec![0.1, 0.9],
        coverage: 1.0,
    }
    .check()
    .unwrap();
    let mut counts = [0u64; 2];
    for i in 0..1_000_000 {
        let v = assign("ten-ninety", &split, None, &format!("subject-{i}"), None);
        counts[v.variant().unwrap()] += 1;
    }
    let srm = sample_ratio(&counts, &[0.1, 0.9]).unwrap();
    assert!(!srm.mismatch, "{counts:?}: p {}", srm.p_value);
}

#[test]
fn stored_assignments_survive_new_weights_and_coverage_only_adds() {
    let before = SplitParams {
        weights: vec![0.5, 0.5],
        coverage: 0.5,
    }
    .check()
    .unwrap();
    let after = SplitParams {
        weights: vec![0.2, 0.8],
        coverage: 1.0,
    }
    .check()
    .unwrap();
    let wider = SplitParams {
        weights: vec![0.5, 0.5],
        coverage: 1.0,
    }
    .check()
    .unwrap();
    let mut moved_without_storage = 0;
    for i in 0..10_000 {
        let s = format!("s{i}");
        let first = assign("exp", &before, None, &s, None);
        if let Some(v) = first.variant() {
            assert_eq!(first, Assigned::New(v));
            assert_eq!(
                assign("exp", &after, None, &s, Some(v)),
                Assigned::Stored(v)
            );
            assert_eq!(
                assign("exp", &wider, None, &s, None).variant(),
                Some(v),
                "coverage only adds"
            );
            if assign("exp", &after, None, &s, None).variant() != Some(v) {
                moved_without_storage += 1;
            }
        }
    }
    assert!(
        moved_without_storage > 300,
        "new weights would move many ({moved_without_storage}): storage is what keeps them"
    );
}

#[test]
fn layers_keep_experiments_apart_and_overlaps_are_refused() {
    let share = |start, end| LayerShare {
        layer: "checkout".into(),
        start,
        end,
    };
    let (a, b) = (share(0.0, 0.5), share(0.5, 1.0));
    disjoint(&[&a, &b]).unwrap();
    let e = disjoint(&[&a, &share(0.4, 0.6)]).unwrap_err().to_string();
    assert!(e.contains("overlap"), "{e}");
    assert!(share(0.6, 0.6).check().is_err());
    let split = SplitParams {
        weights: vec![0.5, 0.5],
        coverage: 1.0,
    }
    .check()
    .unwrap();
    for i in 0..10_000 {
        let s = format!("s{i}");
        let in_a = assign("exp-a", &split, Some(&a), &s, None)
            .variant()
            .is_some();
        let in_b = assign("exp-b", &split, Some(&b), &s, None)
            .variant()
            .is_some();
        assert!(in_a != in_b, "{s}: in exactly one experiment of the layer");
    }
}

#[test]
fn bad_splits_name_their_fault() {
    let fault = |weights: Vec<f64>, coverage: f64| {
        SplitParams { weights, coverage }
            .check()
            .unwrap_err()
            .to_string()
    };
    assert!(fault(vec![0.5, -0.5, 1.0], 1.0).contains("weight 1"));
    assert!(fault(vec![0.5, 0.6], 1.0).contains("sum to 1"));
    assert!(fault(vec![1.0], 1.0).contains("2 to"));
    assert!(fault(vec![0.5, 0.5], 0.0).contains("coverage"));
    assert!(fault(vec![0.5, f64::NAN], 1.0).contains("weight 1"));
}
