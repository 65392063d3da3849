//! `cargo bench -p assent-core --bench track`: track throughput (one and four threads),
//! per-call latency, memory with 100,000 events queued, and the size of the cdylib.
//! Every event is on disk (kill -9 safe) when `track` returns, as in production.
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use assent_core::{AssentClient, ClientConfig};

fn client(dir: &std::path::Path) -> Arc<AssentClient> {
    // Nothing listens on port 9 and the thresholds are never reached: this measures
    // tracking, not uploading.
    let mut c = ClientConfig::new(
        "http://127.0.0.1:9",
        "bench",
        dir.to_str().unwrap(),
        "bench.app",
        "1",
    );
    c.flush_at = u32::MAX;
    c.flush_interval_ms = 24 * 3600 * 1000;
    c.max_queue_events = u32::MAX;
    c.app_version = Some("1.0.0".into());
    c.locale = Some("en-GB".into());
    let client = AssentClient::new(c).unwrap();
    client
        .set_consent([("analytics".to_string(), true)].into(), "custom".into())
        .unwrap();
    client
}

const PROPS: &str =
    r#"{"product_id":"sku-1234","price":19.99,"currency":"EUR","category":"books"}"#;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn throughput(threads: usize, per_thread: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let c = client(dir.path());
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let c = &c;
            s.spawn(move || {
                for _ in 0..per_thread {
                    assert!(c
                        .track("Product Viewed".into(), PROPS.into(), None)
                        .unwrap());
                }
            });
        }
    });
    (threads * per_thread) as f64 / start.elapsed().as_secs_f64()
}

fn rss_with_100k_queued() {
    let dir = tempfile::tempdir().unwrap();
    let before = rss_kib();
    let c = client(dir.path());
    for _ in 0..100_000 {
        c.track("Product Viewed".into(), PROPS.into(), None)
            .unwrap();
    }
    let after = rss_kib();
    println!(
        "RSS with 100,000 events queued: {:.1} MB growth ({} KiB -> {} KiB, fresh process), queued = {}",
        (after.saturating_sub(before)) as f64 / 1024.0,
        before,
        after,
        c.queued_count()
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if std::env::var_os("ASSENT_BENCH_RSS_ONLY").is_some() {
        rss_with_100k_queued();
        return;
    }
    println!(
        "assent-core track benchmark ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let _warm = throughput(1, 20_000);
    println!(
        "track throughput, 1 thread : {:>10.0} events/s",
        throughput(1, 200_000)
    );
    println!(
        "track throughput, 4 threads: {:>10.0} events/s",
        throughput(4, 50_000)
    );

    let dir = tempfile::tempdir().unwrap();
    let c = client(dir.path());
    let mut samples: Vec<Duration> = Vec::with_capacity(100_000);
    for _ in 0..100_000 {
        let t = Instant::now();
        c.track("Product Viewed".into(), PROPS.into(), None)
            .unwrap();
        samples.push(t.elapsed());
    }
    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "track latency p50: {:?}  p99: {:?}  max: {:?}",
        pct(0.50),
        pct(0.99),
        samples[samples.len() - 1]
    );
    drop(c);

    // Memory is measured in a fresh process, so allocations above do not blur it.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("ASSENT_BENCH_RSS_ONLY", "1")
        .output()
        .unwrap();
    print!("{}", String::from_utf8_lossy(&out.stdout));

    // `make bench` strips a copy of the release cdylib here first.
    let lib = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/libassent_core.stripped.so");
    match std::fs::metadata(&lib) {
        Ok(m) => println!(
            "cdylib size (release, stripped, x86_64): {:.2} MB ({} bytes)",
            m.len() as f64 / 1e6,
            m.len()
        ),
        Err(_) => println!(
            "cdylib size: not measured (run `make bench`, which strips the release cdylib first)"
        ),
    }
}
