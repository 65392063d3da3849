//! Consent proofs' costs: `make bench-audit` (or `cargo bench -p assent-collector --bench
//! audit`). Prints
//! 1. consent records stored per second over HTTP by a real collector on SQLite, the audit
//!    chain and its Merkle tree maintained (100 records per request, 16 connections), with
//!    segmentation's feed consumers on (the default) and off, and audit entries appended
//!    per second in process (100 per transaction);
//! 2. inclusion and consistency proof generation time and size with 1,000,000 and
//!    10,000,000 leaves, the tree stored in SQLite and built by the code the trail
//!    appends with (leaves of synthetic entries: proofs read only the tree).
//!
//! `AUDIT_RECORDS` (default 100000) and `AUDIT_LEAVES` (default 10000000) change the sizes.
use std::time::Instant;

use assent_collector::{
    audit::{self, merkle, proofs},
    config::Secret,
    storage::Db,
    Application, Config,
};
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WRITE_KEY: &str = "wk_audit_bench_key_Pc3Hd6Jf1Kb5Ws0YeUxQ2";
const ADMIN_TOKEN: &str = "adm_audit_bench_token_Nv7Qa2Xe9Rd4Kw6Lm";

fn arg(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn http_consent(records: u64, modules: bool) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        database_url: Secret::new(format!("sqlite://{}", dir.path().join("a.db").display())),
        bootstrap_write_key: Some(Secret::new(WRITE_KEY)),
        bootstrap_admin_token: Some(Secret::new(ADMIN_TOKEN)),
        rate_limit_per_second: 1_000_000,
        rate_limit_burst: 1_000_000,
        consent_records_per_second: 1_000_000,
        consent_records_burst: 1_000_000,
        segmentation: modules,
        ..Config::default()
    };
    let app = Application::build(config).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let requests = records / 100;
    let started = Instant::now();
    let connections = arg("AUDIT_CONNECTIONS", 16);
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let (client, base) = (client.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let mut r = worker;
            while r < requests {
                let batch: Vec<_> = (0..100)
                    .map(|i| {
                        let n = r * 100 + i;
                        json!({"consentId": format!("c{n}"), "subjectId": format!("subject-{n}"),
                               "purposes": {"analytics": n % 2 == 0}, "policyVersion": "2026-01",
                               "method": "custom", "source": "api", "timestamp": "2026-12-01T10:00:00Z"})
                    })
                    .collect();
                let answer = client
                    .post(format!("{base}/v1/consent"))
                    .basic_auth(WRITE_KEY, Some(""))
                    .json(&json!({ "records": batch }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(answer.status(), 201, "{}", answer.text().await.unwrap());
                r += connections;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let stored = requests * 100;
    println!(
        "consent over HTTP (SQLite, tree maintained, {connections} connections, segmentation {}): {stored} records in {secs:.2} s = {:.0} records/s",
        if modules { "on" } else { "off" },
        stored as f64 / secs
    );
    if !modules {
        return;
    }
    let c = state.trail.checkpoint().await.unwrap().unwrap();
    let started = Instant::now();
    let verdict = audit::export::verify_db(&state.trail).await.unwrap();
    assert!(verdict.ok, "{verdict:?}");
    println!(
        "  the log then: {} entries, {} signed checkpoints checked against the recomputed tree in {:.2} s",
        c.size,
        verdict.checkpoints_verified,
        started.elapsed().as_secs_f64()
    );

    // The trail alone, in process: 100 entries per transaction.
    let n = records;
    let started = Instant::now();
    for chunk in 0..n / 100 {
        let mut w = state.db.write().await.unwrap();
        let entries = (0..100)
            .map(|i| audit::NewEntry {
                kind: audit::Kind::Consent,
                actor: "bench".into(),
                subject: None,
                data: json!({"n": chunk * 100 + i}),
            })
            .collect();
        state
            .trail
            .append_at(&mut w, entries, state.trail.now())
            .await
            .unwrap();
        w.commit().await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "audit append in process (SQLite, 100 per transaction, tree maintained): {n} entries in {secs:.2} s = {:.0} entries/s",
        n as f64 / secs
    );
}

/// Extends the stored tree of `db` from `from` to `to` leaves.
async fn grow(db: &Db, tree: &mut merkle::Frontier, to: u64) {
    const PER_WRITE: u64 = 100_000;
    while tree.size() < to {
        let mut w = db.write().await.unwrap();
        let mut nodes = Vec::new();
        let end = (tree.size() + PER_WRITE).min(to);
        while tree.size() < end {
            let leaf = merkle::leaf_hash(&tree.size().to_le_bytes());
            proofs::extend(tree, leaf, &mut nodes);
        }
        assent_collector::storage::audit::insert_nodes(&mut w, &nodes)
            .await
            .unwrap();
        w.commit().await.unwrap();
    }
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Proof timings (µs) and the longest proof, printed as one line.
#[derive(Default)]
struct Timings {
    micros: Vec<f64>,
    hashes: usize,
}

impl Timings {
    fn add(&mut self, started: Instant, proof: &[merkle::Hash]) {
        self.micros.push(started.elapsed().as_secs_f64() * 1e6);
        self.hashes = self.hashes.max(proof.len());
    }

    fn print(mut self, what: &str) {
        self.micros.sort_by(f64::total_cmp);
        let n = self.micros.len();
        println!(
            "  {what}: median {:.0} µs, p99 {:.0} µs, at most {} hashes ({} bytes)",
            self.micros[n / 2],
            self.micros[n * 99 / 100],
            self.hashes,
            self.hashes * 32
        );
    }
}

async fn proofs_at(db: &Db, tree: &merkle::Frontier) {
    let size = tree.size();
    let root = tree.root();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    const ROUNDS: usize = 1000;
    let mut inclusion = Timings::default();
    for _ in 0..ROUNDS {
        let index = xorshift(&mut seed) % size;
        let started = Instant::now();
        let proof = proofs::inclusion(db, index, size).await.unwrap();
        inclusion.add(started, &proof);
        let leaf = merkle::leaf_hash(&index.to_le_bytes());
        assert!(merkle::verify_inclusion(index, size, &leaf, &proof, &root));
    }
    inclusion.print(&format!("inclusion proof at {size} leaves"));
    let mut consistency = Timings::default();
    for _ in 0..ROUNDS {
        let from = 1 + xorshift(&mut seed) % (size - 1);
        let started = Instant::now();
        let proof = proofs::consistency(db, from, size).await.unwrap();
        consistency.add(started, &proof);
    }
    consistency.print(&format!("consistency proof to {size} leaves"));
}

async fn tree_proofs(leaves: u64) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let mut tree = merkle::Frontier::default();
    for size in [1_000_000u64, leaves].into_iter().filter(|&s| s <= leaves) {
        let started = Instant::now();
        let from = tree.size();
        grow(&db, &mut tree, size).await;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "tree of {size} leaves stored in SQLite (grown from {from} in {secs:.1} s, {:.0} leaves/s)",
            (size - from) as f64 / secs
        );
        proofs_at(&db, &tree).await;
        if size == leaves {
            break;
        }
    }
    db.checkpoint().await.unwrap();
    let bytes: u64 = ["t.db", "t.db-wal"]
        .iter()
        .map(|f| std::fs::metadata(dir.path().join(f)).map_or(0, |m| m.len()))
        .sum();
    println!(
        "  database file: {:.0} MB ({:.0} bytes per leaf)",
        bytes as f64 / 1e6,
        bytes as f64 / tree.size() as f64
    );
}

#[tokio::main]
async fn main() {
    println!(
        "machine: {} cores; collector and load generator share it",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    http_consent(arg("AUDIT_RECORDS", 100_000), true).await;
    http_consent(arg("AUDIT_RECORDS", 100_000), false).await;
    tree_proofs(arg("AUDIT_LEAVES", 10_000_000)).await;
}
