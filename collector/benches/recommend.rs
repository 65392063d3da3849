//! Recommendation serving under load: `cargo bench -p assent-collector --bench recommend`.
//! A real collector on SQLite on this machine; 20,000 subjects who granted
//! `personalization` view items of a 100,000-item catalogue (each item viewed at least
//! once, popular ones far more: 12 views each, 240,000 events through `/v1/batch` and the
//! segmentation consumer); item-kNN and ALS trained on them; then, per model, a load
//! generator on the same machine sends `GET /v1/recommendations/{subject}?k=10` over 16
//! connections for `SECONDS` (default 10) twice: every request a new list (uncached: a
//! new slot each time), then a warm set of 200 lists (cached). Prints p50 / p99 / max and
//! requests per second. Load generator and collector share the 2 cores.
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use assent_collector::{config::Secret, Application, Config};
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WRITE_KEY: &str = "wk_recommend_bench_key_Pc3Hd6Jf1Kb5Ws0Ye";
const ADMIN_TOKEN: &str = "adm_recommend_bench_token_Nv7Qa2Xe9Rd4K";
const SUBJECTS: usize = 20_000;
const ITEMS: usize = 100_000;
const VIEWS: usize = 12;
const CONNECTIONS: usize = 16;

fn arg(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator (SplitMix64): the bench needs reproducible draws.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn load(
    client: &reqwest::Client,
    base: &str,
    seconds: u64,
    cached: bool,
    warm: &[(usize, u64)],
) -> (Vec<f64>, f64, u64) {
    let fresh = Arc::new(AtomicU64::new(1_000_000));
    let hits = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let (client, base, fresh, hits) =
            (client.clone(), base.to_owned(), fresh.clone(), hits.clone());
        let warm = warm.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = c;
            while Instant::now() < until {
                let (subject, slot) = if cached {
                    n += CONNECTIONS;
                    warm[n % warm.len()]
                } else {
                    let s = fresh.fetch_add(1, Ordering::Relaxed);
                    ((s as usize * 7919) % SUBJECTS, s)
                };
                let url = format!(
                    "{base}/v1/recommendations/subject-{subject}?source=default&k=10&slot=s{slot}"
                );
                let t = Instant::now();
                let r = client
                    .get(url)
                    .bearer_auth(ADMIN_TOKEN)
                    .send()
                    .await
                    .unwrap();
                let hit = r
                    .headers()
                    .get("x-assent-cache")
                    .is_some_and(|v| v == "hit");
                assert_eq!(r.status(), 200);
                let _ = r.bytes().await.unwrap();
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                if hit {
                    hits.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    (all, elapsed, hits.load(Ordering::Relaxed))
}

#[tokio::main]
async fn main() {
    let seconds = arg("SECONDS", 10);
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        database_url: Secret::new(format!("sqlite://{}", dir.path().join("recs.db").display())),
        bootstrap_write_key: Some(Secret::new(WRITE_KEY)),
        bootstrap_admin_token: Some(Secret::new(ADMIN_TOKEN)),
        rate_limit_per_second: 1_000_000,
        rate_limit_burst: 1_000_000,
        max_consent_records_per_request: 500,
        consent_records_per_second: 1_000_000,
        consent_records_burst: 1_000_000,
        recommendation_cache_entries: 1_000_000,
        ..Config::default()
    };
    let app = Application::build(config).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let _server = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let at = |ms: i64| assent_protocol::Timestamp::from_unix_millis(ms).to_string();

    let setup = Instant::now();
    let records: Vec<_> = (0..SUBJECTS)
        .map(|s| {
            json!({"consentId": format!("c{s}"), "subjectId": format!("subject-{s}"),
            "purposes": {"analytics": true, "personalization": true}, "policyVersion": "1",
            "method": "custom", "source": "sdk", "timestamp": at(now - 3_600_000)})
        })
        .collect();
    for chunk in records.chunks(500) {
        let r = client
            .post(format!("{base}/v1/consent"))
            .bearer_auth(WRITE_KEY)
            .json(&json!({"records": chunk}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    // Each subject views 5 items of a sweep over the catalogue (every item at least
    // once) and 7 drawn with a skew towards the first items (the popular ones).
    let mut draw = Draw(7);
    let mut batch = Vec::with_capacity(100);
    let mut sent = 0;
    for s in 0..SUBJECTS {
        for v in 0..VIEWS {
            let item = if v < 5 {
                (s * 5 + v) % ITEMS
            } else {
                ((draw.unit().powi(3)) * ITEMS as f64) as usize
            };
            batch.push(
                json!({"messageId": format!("v{s}-{v}"), "type": "track", "event": "Product Viewed",
                "anonymousId": format!("subject-{s}"), "timestamp": at(now - 60_000 + v as i64),
                "properties": {"product_id": format!("item-{item}")}}),
            );
            if batch.len() == 100 {
                let r = client
                    .post(format!("{base}/v1/batch"))
                    .bearer_auth(WRITE_KEY)
                    .json(&json!({"batch": batch}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                sent += batch.len();
                batch.clear();
            }
        }
    }
    // Wait for the segmentation consumer to fold every event into the profiles.
    let last = format!("{base}/v1/profiles/subject-{}?source=default", SUBJECTS - 1);
    loop {
        let p: serde_json::Value = client
            .get(&last)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or_default();
        if p["events"].as_u64() == Some(VIEWS as u64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "machine: 2 cores, load generator and collector on it; SQLite; {SUBJECTS} subjects, {sent} events over a {ITEMS}-item catalogue (set up in {:.1} s); {CONNECTIONS} connections, {seconds} s per run",
        setup.elapsed().as_secs_f64()
    );
    let source = state.keys.find_source("default").await.unwrap().unwrap();
    for (name, spec) in [
        (
            "item_knn",
            json!({"kind": "item_knn", "neighbours": 100, "weighting": {"kind": "bm25", "k1": 100.0, "b": 0.8}, "shrink": 0.0}),
        ),
        (
            "als",
            json!({"kind": "als", "factors": 64, "regularization": 1.0, "alpha": 10.0, "iterations": 10, "cg_steps": 3, "seed": 0}),
        ),
    ] {
        let training =
            assent_collector::recommend::Training::parse(&json!({"model": spec})).unwrap();
        let t = Instant::now();
        let v = state
            .recommendations
            .train(&source, "default", training, "bench".into(), &|_| {})
            .await
            .unwrap();
        // A version not better than the active one stays a candidate: serve this one.
        if v.status != "active" {
            state
                .recommendations
                .promote(&source, "default", v.version, "bench".into())
                .await
                .unwrap();
        }
        println!(
            "\n{name}: trained in {:.1} s (fit {:.2} s; {} users, {} items; random views, so held-out NDCG@10 {:.4} vs popularity {:.4} says nothing: speed only)",
            t.elapsed().as_secs_f64(),
            v.report["fitSeconds"].as_f64().unwrap_or(0.0),
            v.report["users"], v.report["items"],
            v.report["heldOut"]["ndcg"].as_f64().unwrap_or(0.0),
            v.report["popularity"]["ndcg"].as_f64().unwrap_or(0.0),
        );
        // One request loads the version into the server (not measured).
        client
            .get(format!(
                "{base}/v1/recommendations/subject-0?source=default&k=10&slot=warm"
            ))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let (lat, secs, hits) = load(&client, &base, seconds, false, &[]).await;
        println!(
            "  uncached: {} requests, {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({hits} cache hits; goal p99 ≤ 20 ms)",
            lat.len(), lat.len() as f64 / secs, percentile(&lat, 0.5), percentile(&lat, 0.99), lat[lat.len() - 1]
        );
        let warm: Vec<(usize, u64)> = (0..200).map(|i| ((i * 97) % SUBJECTS, 7)).collect();
        for (s, slot) in &warm {
            client
                .get(format!(
                    "{base}/v1/recommendations/subject-{s}?source=default&k=10&slot=s{slot}"
                ))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
        }
        let (lat, secs, hits) = load(&client, &base, seconds, true, &warm).await;
        println!(
            "  cached:   {} requests, {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({:.1} % cache hits; goal p99 ≤ 5 ms)",
            lat.len(), lat.len() as f64 / secs, percentile(&lat, 0.5), percentile(&lat, 0.99), lat[lat.len() - 1],
            hits as f64 * 100.0 / lat.len() as f64
        );
    }
}
