//! Duplicate detection on Febrl's synthetic person records (read at run time from
//! `../shared/data/febrl/`, or `FEBRL_DIR`): ours and recordlinkage's (PyPI, through
//! `febrl_recordlinkage.py`, with the same blocks, comparisons and threshold) on the same
//! records in the same run, each with its precision and recall against the known true
//! pairs, the time, and the ratio. `make bench-segmentation` installs recordlinkage in
//! `target/venv`; without it its lines say skipped.
use std::{collections::HashSet, process::Command, time::Instant};

use assent_segmentation::dedup::{febrl, precision_recall};

fn main() {
    let dir = std::env::var("FEBRL_DIR").unwrap_or_else(|_| "../../shared/data/febrl".into());
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "../target/venv/bin/python".into());
    let threads = rayon::current_num_threads();
    println!(
        "dedup on Febrl, threshold {:.2}, {threads} threads:",
        febrl::matcher().threshold
    );
    for file in ["dataset1.csv", "dataset2.csv", "dataset3.csv"] {
        let path = format!("{dir}/{file}");
        let Ok(text) = std::fs::read_to_string(&path) else {
            println!("{file}: skipped ({path} not found)");
            continue;
        };
        let (ids, records) = febrl::parse(&text);
        let truth: HashSet<(usize, usize)> = febrl::true_pairs(&ids).into_iter().collect();
        let matcher = febrl::matcher();
        // Best of three runs.
        let mut best = f64::INFINITY;
        let mut found = None;
        for _ in 0..3 {
            let started = Instant::now();
            let f = matcher.find(&records).expect("matches");
            best = best.min(started.elapsed().as_secs_f64());
            found = Some(f);
        }
        let found = found.expect("ran");
        let (p, r) = precision_recall(&found.pairs, &truth);
        println!(
            "{file}: {} records, {} true pairs, {} candidates | ours: {} proposed, precision {p:.4}, recall {r:.4}, {:.1} ms",
            records.len(),
            truth.len(),
            found.candidates,
            found.pairs.len(),
            best * 1e3
        );
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/febrl_recordlinkage.py"
        );
        let out = Command::new(&python)
            .arg(script)
            .arg(&path)
            .arg(matcher.threshold.to_string())
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let v: serde_json::Value =
                    serde_json::from_slice(&o.stdout).expect("one JSON line");
                let secs = v["seconds"].as_f64().unwrap_or(f64::NAN);
                println!(
                    "{file}: recordlinkage: {} candidates, {} proposed, precision {:.4}, recall {:.4}, {:.1} ms | ours {:.1}x faster",
                    v["candidates"],
                    v["proposed"],
                    v["precision"].as_f64().unwrap_or(f64::NAN),
                    v["recall"].as_f64().unwrap_or(f64::NAN),
                    secs * 1e3,
                    secs / best
                );
            }
            Ok(o) => println!(
                "{file}: recordlinkage: skipped ({})",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("failed")
            ),
            Err(e) => println!("{file}: recordlinkage: skipped ({python}: {e})"),
        }
    }
}
