//! Flag evaluations per second on one core (one thread): a flag with a segment rule, a
//! country-and-device rule and a percentage split, evaluated for a million distinct
//! subjects with varied contexts, and an experiment's assignment for the same subjects.
use std::hint::black_box;
use std::time::Instant;

use assent_experiments::assign::{assign, SplitParams};
use assent_experiments::flags::FlagDefinition;
use assent_experiments::targeting::Context;
use serde_json::json;

fn main() {
    let flag = serde_json::from_value::<FlagDefinition>(json!({
        "kind": "string",
        "variants": {"control": "blue", "treatment": "green", "beta": "purple"},
        "default_variant": "control",
        "rules": [
            {"when": {"segment": "beta-testers"}, "serve": {"variant": "beta"}},
            {"when": {"all": [{"country": ["FR", "BE", "CH"]}, {"device": ["mobile"]}]},
             "serve": {"variant": "treatment"}},
            {"when": {"rollout": 50}, "serve": {"split": {"control": 0.5, "treatment": 0.5}}}
        ]
    }))
    .unwrap()
    .check("checkout-colour")
    .unwrap();
    let subjects: Vec<String> = (0..1_000_000)
        .map(|i| {
            format!(
                "{:032x}",
                (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834)
            )
        })
        .collect();
    let segments = [
        vec![],
        vec!["newsletter".to_owned()],
        vec!["beta-testers".to_owned()],
    ];
    let countries = ["FR", "DE", "US", "BE"];
    let devices = ["mobile", "desktop"];
    let default = json!("blue");
    let rounds = 5;
    let mut best = f64::MAX;
    let mut served = [0u64; 3];
    for _ in 0..rounds {
        let start = Instant::now();
        for (i, s) in subjects.iter().enumerate() {
            let ctx = Context {
                subject: s,
                segments: &segments[i % 7 / 3],
                country: Some(countries[i % 4]),
                device: Some(devices[i % 2]),
                ..Default::default()
            };
            let e = flag.evaluate(black_box(&ctx), &default);
            served[e.reason as usize % 3] += 1;
            black_box(e);
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    black_box(served);
    let split = SplitParams {
        weights: vec![0.5, 0.25, 0.25],
        coverage: 0.9,
    }
    .check()
    .unwrap();
    let mut best_assign = f64::MAX;
    for _ in 0..rounds {
        let start = Instant::now();
        for s in &subjects {
            black_box(assign("checkout-2026", &split, None, black_box(s), None));
        }
        best_assign = best_assign.min(start.elapsed().as_secs_f64());
    }
    let n = subjects.len() as f64;
    println!(
        "one thread; {} subjects; best of {rounds} rounds",
        subjects.len()
    );
    println!(
        "flag evaluations: {:.2} million/s ({:.0} ns each; 3 rules: segment, country and device, rollout + split; goal ≥ 5 million/s)",
        n / best / 1e6,
        best / n * 1e9
    );
    println!(
        "experiment assignments: {:.2} million/s ({:.0} ns each; 3 variants, coverage 0.9)",
        n / best_assign / 1e6,
        best_assign / n * 1e9
    );
}
