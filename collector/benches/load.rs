//! Load generator: `make bench-collector` (or `cargo bench -p assent-collector --bench load`
//! with TEST_DATABASE_URL for PostgreSQL). Posts batches of 100 consented events over many
//! connections to a real collector on this machine and prints accepted events/s and
//! p50/p99 latency per backend, then the rate of a bare bulk insert of the same rows into
//! the same database, and the ratio. Load generator and collector share the machine.
use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use assent_collector::{config::Secret, Application, Config};

/// mimalloc for Rust's allocations, and (its `override` feature) for SQLite's malloc too:
/// glibc's allocator was a quarter of the CPU time under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use futures_util::TryStreamExt;
use serde_json::json;

const BATCH: usize = 100;
const SUBJECTS: usize = 1000;
const WRITE_KEY: &str = "wk_load_generator_key_Pc3Hd6Jf1Kb5Ws0YeUx";
const ADMIN_TOKEN: &str = "adm_load_generator_token_Nv7Qa2Xe9Rd4Kw6";

fn arg(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn fresh_db(kind: &str, dir: &std::path::Path) -> Option<String> {
    match kind {
        "sqlite" => Some(format!("sqlite://{}", dir.join("load.db").display())),
        _ => {
            let admin = std::env::var("TEST_DATABASE_URL").ok()?;
            static RUN: AtomicU64 = AtomicU64::new(0);
            let name = format!(
                "assent_load_{}_{}",
                std::process::id(),
                RUN.fetch_add(1, Ordering::Relaxed)
            );
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                .await
                .ok()?;
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                .execute(&mut conn)
                .await;
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .ok()?;
            Some(format!("{}/{name}", admin.rsplit_once('/').unwrap().0))
        }
    }
}

/// A batch of 100 events as the JSON body a client would send, written from a template
/// (as a load tool such as wrk sends prepared bodies): building and dropping a
/// `serde_json::Value` per event cost the generator, which shares the 2 cores, more CPU
/// than the request's parsing in the collector.
fn batch_body(first: u64, run: &str) -> Vec<u8> {
    use std::fmt::Write;
    let mut body = String::with_capacity(BATCH * 330 + 64);
    body.push_str(r#"{"batch":["#);
    for n in first..first + BATCH as u64 {
        if n > first {
            body.push(',');
        }
        write!(
            body,
            r#"{{"messageId":"{run}-{n}","type":"track","event":"Product Viewed","anonymousId":"subject-{}","properties":{{"product_id":"sku-1234","price":19.99,"currency":"EUR"}},"context":{{"library":{{"name":"load","version":"1"}},"locale":"en-GB"}},"timestamp":"2026-11-29T10:00:05.000Z"}}"#,
            n as usize % SUBJECTS
        )
        .expect("writing to a String");
    }
    body.push_str(r#"],"sentAt":"2026-11-29T10:00:06.000Z"}"#);
    body.into_bytes()
}

/// A collector on a fresh database of `kind` whose subjects all consented to analytics;
/// with `feed` false, the feed's parts of the events table are taken out first (see
/// [`without_feed`]). None when PostgreSQL is not available.
async fn start(
    kind: &str,
    feed: bool,
    consent_cache: bool,
) -> Option<(
    Arc<assent_collector::AppState>,
    String,
    reqwest::Client,
    tokio::task::JoinHandle<std::io::Result<()>>,
    tempfile::TempDir,
)> {
    start_with(
        kind,
        feed,
        consent_cache,
        true,
        SUBJECTS,
        json!({"analytics": true}),
    )
    .await
}

/// [`start`] with segmentation on or off, and `subjects` subjects granting `purposes`.
async fn start_with(
    kind: &str,
    feed: bool,
    consent_cache: bool,
    segmentation: bool,
    subjects: usize,
    purposes: serde_json::Value,
) -> Option<(
    Arc<assent_collector::AppState>,
    String,
    reqwest::Client,
    tokio::task::JoinHandle<std::io::Result<()>>,
    tempfile::TempDir,
)> {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_db(kind, dir.path()).await?;
    let config = Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        database_url: Secret::new(url.clone()),
        bootstrap_write_key: Some(Secret::new(WRITE_KEY)),
        bootstrap_admin_token: Some(Secret::new(ADMIN_TOKEN)),
        rate_limit_per_second: 1_000_000,
        rate_limit_burst: 1_000_000,
        // The setup sends the subjects' consent 500 records at a time.
        max_consent_records_per_request: 500,
        consent_records_per_second: 1_000_000,
        consent_records_burst: 1_000_000,
        consent_cache,
        segmentation,
        ..Config::default()
    };
    let app = Application::build(config).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    if !feed {
        without_feed(&state.db).await;
    }
    let server = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();

    // Every subject consents first.
    let records: Vec<_> = (0..subjects)
        .map(|s| json!({"consentId": format!("c{s}"), "subjectId": format!("subject-{s}"), "purposes": purposes,
            "policyVersion": "1", "method": "custom", "source": "sdk", "timestamp": "2026-11-29T10:00:00.000Z"}))
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
    Some((state, base, client, server, dir))
}

/// The events table as it was before the feed, for the A/B: on SQLite a row number
/// without AUTOINCREMENT (no counter read and written per INSERT); on PostgreSQL no
/// transaction id, no sequence number and no feed index per row.
async fn without_feed(db: &assent_collector::storage::Db) {
    let statements: &[&str] = match db.backend {
        assent_collector::storage::Backend::Sqlite => &[
            "DROP TRIGGER events_leave_subject_index",
            "CREATE TABLE events_plain (seq INTEGER PRIMARY KEY, source_id TEXT NOT NULL,
             message_id TEXT NOT NULL, type TEXT NOT NULL, name TEXT, purpose TEXT NOT NULL,
             subject TEXT NOT NULL, subject_key BIGINT NOT NULL, anonymous_id TEXT,
             user_id TEXT, timestamp_ms BIGINT NOT NULL, original_timestamp_ms BIGINT,
             sent_at_ms BIGINT, received_at_ms BIGINT NOT NULL, ip_prefix TEXT,
             payload TEXT NOT NULL, UNIQUE (source_id, message_id))",
            "DROP TABLE events",
            "ALTER TABLE events_plain RENAME TO events",
            "CREATE INDEX events_user ON events (user_id) WHERE user_id IS NOT NULL",
            "CREATE INDEX events_received ON events (received_at_ms)",
            "CREATE TRIGGER events_leave_subject_index AFTER DELETE ON events
             BEGIN DELETE FROM event_subjects WHERE seq = OLD.seq; END",
        ],
        assent_collector::storage::Backend::Postgres => &[
            "DROP INDEX events_feed",
            "ALTER TABLE events ALTER COLUMN seq DROP NOT NULL",
            "ALTER TABLE events ALTER COLUMN seq DROP DEFAULT",
            "ALTER TABLE events ALTER COLUMN feed_tx DROP NOT NULL",
            "ALTER TABLE events ALTER COLUMN feed_tx DROP DEFAULT",
        ],
    };
    let mut w = db.write().await.unwrap();
    for sql in statements {
        sqlx::query(sql).execute(&mut *w.tx).await.unwrap();
    }
    w.commit().await.unwrap();
}

/// Posts batches over `connections` connections for `seconds`; (accepted events, elapsed
/// seconds, sorted latencies).
async fn drive(
    base: &str,
    client: &reqwest::Client,
    connections: usize,
    seconds: u64,
    run: &'static str,
) -> (u64, f64, Vec<Duration>) {
    let next = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, base, next, accepted, stop) = (
            client.clone(),
            base.to_owned(),
            next.clone(),
            accepted.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let first = next.fetch_add(BATCH as u64, Ordering::Relaxed);
                let body = batch_body(first, run);
                let t = Instant::now();
                let r = client
                    .post(format!("{base}/v1/batch"))
                    .bearer_auth(WRITE_KEY)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                let answer: serde_json::Value = r.json().await.unwrap();
                latencies.push(t.elapsed());
                assert_eq!(status, 200, "{answer}");
                accepted.fetch_add(answer["accepted"].as_u64().unwrap(), Ordering::Relaxed);
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies: Vec<Duration> = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    latencies.sort_unstable();
    (
        accepted.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        latencies,
    )
}

/// What an A/B turns on and off.
#[derive(Clone, Copy)]
enum Switch {
    /// The feed's parts of the events table (taken out by [`without_feed`]).
    Feed,
    /// The consent cache (off: consent read from the database for every batch).
    ConsentCache,
    /// The segmentation consumer following the feed beside ingest (on by default; the
    /// load's subjects did not grant personalization, so it reads and skips).
    Segmentation,
}

impl Switch {
    fn name(self) -> &'static str {
        match self {
            Switch::Feed => "the feed",
            Switch::ConsentCache => "the consent cache",
            Switch::Segmentation => "segmentation",
        }
    }
}

/// An ingest A/B: the same load with `switch` off and on, alternated `FEED_AB_ROUNDS`
/// times, each on a fresh database, off-on then on-off so that a drift over the run (the
/// disk filling, the page cache) counts against both alike.
async fn ab(kind: &str, switch: Switch, connections: usize, seconds: u64) {
    let rounds = arg("FEED_AB_ROUNDS", 2);
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let order = if round % 2 == 1 {
            [false, true]
        } else {
            [true, false]
        };
        for enabled in order {
            let (feed, cache, segmentation) = match switch {
                Switch::Feed => (enabled, true, false),
                Switch::ConsentCache => (true, enabled, false),
                Switch::Segmentation => (true, true, enabled),
            };
            let purposes = json!({"analytics": true});
            let started = start_with(kind, feed, cache, segmentation, SUBJECTS, purposes).await;
            let Some((state, base, client, server, _dir)) = started else {
                return;
            };
            let (total, elapsed, _) = drive(&base, &client, connections, seconds, "ab").await;
            server.abort();
            // Its connections go (PostgreSQL would run out over the rounds).
            state.db.pool.close().await;
            let rate = total as f64 / elapsed;
            let label = if enabled { "on " } else { "off" };
            println!(
                "{kind:8} ingest, {} {label} (round {round}): {rate:>9.0} events/s",
                switch.name()
            );
            if enabled {
                on.push(rate)
            } else {
                off.push(rate)
            }
        }
    }
    if rounds == 0 {
        return;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!(
        "{kind:8} ingest with {} / without: {:.3} (means of {rounds} alternated rounds, {connections} connections, {seconds} s each)",
        switch.name(),
        mean(&on) / mean(&off)
    );
}

/// Reads the whole feed from the start, `MAX_READ` items at a time.
async fn feed_read(kind: &str, db: &assent_collector::storage::Db) {
    use assent_collector::feed;
    let t = Instant::now();
    let (mut at, mut items) = (feed::Position::START, 0usize);
    loop {
        let page = feed::read(db, at, feed::MAX_READ).await.unwrap();
        let Some(last) = page.last() else { break };
        at = last.position();
        items += page.len();
    }
    let elapsed = t.elapsed().as_secs_f64();
    println!(
        "{kind:8} feed read: {:>9.0} items/s ({items} items from the start, {} per read)",
        items as f64 / elapsed,
        feed::MAX_READ
    );
}

/// Relays the feed to a JetStream stream on a `nats-server -js` started here (file
/// storage in a temporary folder): the collector's relay from the start of the feed, timed
/// until the stream holds every item.
async fn relay(kind: &str, state: &Arc<assent_collector::AppState>) {
    use assent_collector::feed;
    let store = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let Ok(mut server) = std::process::Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    else {
        println!("{kind:8} relay: skipped (no nats-server; Debian package nats-server)");
        return;
    };
    let url = format!("nats://127.0.0.1:{port}");
    let mut client = None;
    for _ in 0..100 {
        if let Ok(c) = async_nats::connect(&url).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let js = async_nats::jetstream::new(client.expect("nats-server starts"));
    let mut items = 0u64;
    let mut at = feed::Position::START;
    loop {
        let page = feed::read(&state.db, at, feed::MAX_READ).await.unwrap();
        let Some(last) = page.last() else { break };
        at = last.position();
        items += page.len() as u64;
    }
    let settings = feed::nats::Settings {
        url,
        stream: "BENCH".into(),
        prefix: "bench".into(),
    };
    let t = Instant::now();
    let relay = tokio::spawn(feed::nats::run(
        state.db.clone(),
        settings,
        state.clock.clone(),
    ));
    loop {
        let held = match js.get_stream("BENCH").await {
            Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        };
        if held >= items {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = t.elapsed().as_secs_f64();
    relay.abort();
    let _ = server.kill();
    let _ = server.wait();
    println!(
        "{kind:8} relay to JetStream: {:>9.0} items/s ({items} items, nats-server 2.9 -js file store, same machine)",
        items as f64 / elapsed
    );
}

/// Folds the whole feed into profiles with `apply`, from the start; returns
/// (events folded, seconds).
async fn fold_feed(state: &assent_collector::AppState) -> (usize, f64) {
    let clock = assent_collector::SystemClock;
    let t = Instant::now();
    let (mut at, mut folded) = (assent_collector::feed::Position::START, 0usize);
    loop {
        let items = assent_collector::feed::read(&state.db, at, 10_000)
            .await
            .unwrap();
        if items.is_empty() {
            break;
        }
        folded += items
            .iter()
            .filter(|i| matches!(i, assent_collector::feed::Item::Event(_)))
            .count();
        at = assent_collector::segments::consumer::apply(
            &state.segments,
            &state.keys.sources,
            &state.consent_cache,
            &items,
            &clock,
            true,
        )
        .await
        .unwrap()
        .0;
    }
    (folded, t.elapsed().as_secs_f64())
}

/// Segmentation: how fast the `segments` consumer folds a feed of events into profiles
/// (each subject granted personalization; PROFILE_SUBJECTS subjects, 10 events each,
/// interleaved), without audiences and with the seed's three example audiences decided
/// as it goes; a model trained on the profiles; an audience backfilled over them; then
/// the time from an event's 2xx until `GET /v1/profiles/{subject}/segments` shows the
/// audience it puts the subject in, with the consumer running in the collector.
async fn segmentation(kind: &str) {
    let subjects = arg("PROFILE_SUBJECTS", 20_000) as usize;
    let purposes = json!({"analytics": true, "personalization": true});
    let Some((state, base, client, server, _dir)) =
        start_with(kind, true, true, false, subjects, purposes).await
    else {
        return;
    };
    let events = subjects * 10;
    for first in (0..events).step_by(BATCH) {
        let batch: Vec<_> = (first..first + BATCH)
            .map(|n| json!({"messageId": format!("s-{n}"), "type": if n % 3 == 0 { "page" } else { "track" },
                "event": if n % 7 == 0 { "Order Completed" } else { "Product Viewed" }, "name": "Product",
                "anonymousId": format!("subject-{}", n % subjects),
                "properties": {"price": 19.99, "revenue": (n % 50) as f64}, "timestamp": "2026-11-29T10:00:05.000Z"}))
            .collect();
        let r = client
            .post(format!("{base}/v1/batch"))
            .bearer_auth(WRITE_KEY)
            .json(&json!({"batch": batch}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let (folded, secs) = fold_feed(&state).await;
    let profiles: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT subject) FROM profile_events")
        .fetch_one(&state.db.pool)
        .await
        .unwrap();
    println!(
        "{kind:8} profile updates from the feed: {:>9.0} events/s ({folded} events into {profiles} profiles, 10 each, in {secs:.1} s; no audiences)",
        folded as f64 / secs
    );
    let put = |path: String, body: serde_json::Value| {
        let (client, base) = (&client, &base);
        async move {
            let t = Instant::now();
            let r = client
                .request(reqwest::Method::PUT, format!("{base}{path}"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            (r.json::<serde_json::Value>().await.unwrap(), t.elapsed())
        }
    };
    for (name, rule) in assent_segmentation::rules::examples() {
        put(format!("/v1/audiences/{name}"), json!({"rule": rule})).await;
    }
    for table in ["profile_events", "audience_members", "audience_changes"] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&state.db.pool)
            .await
            .unwrap();
    }
    let (folded, secs) = fold_feed(&state).await;
    let members: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audience_members")
        .fetch_one(&state.db.pool)
        .await
        .unwrap();
    println!(
        "{kind:8} profile updates from the feed: {:>9.0} events/s ({folded} events in {secs:.1} s; 3 audiences decided as they go, {members} memberships)",
        folded as f64 / secs
    );
    let t = Instant::now();
    let trained: serde_json::Value = client
        .post(format!("{base}/v1/segmentations/bench/models"))
        .bearer_auth(ADMIN_TOKEN)
        .json(
            &json!({"features": ["views_30d", "purchases_30d", "revenue_30d", "engagement"],
                      "clusters": {"fixed": 8}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    println!(
        "{kind:8} model trained over the API: {:.0} ms ({} profiles read, {} trained on, k = {})",
        t.elapsed().as_secs_f64() * 1e3,
        trained["report"]["profiles"],
        trained["report"]["trainedOn"],
        trained["report"]["k"]
    );
    let late = json!({"rule": {"performed": {"event": "Late Signal", "within_days": 1}}});
    let (set, took) = put("/v1/audiences/late_signal".into(), late).await;
    println!(
        "{kind:8} audience set and backfilled: {:.0} ms ({} profiles)",
        took.as_secs_f64() * 1e3,
        set["backfill"]["profiles"]
    );

    // Event to segment: the collector's own consumer, switched on as the admin API does
    // (the feed folded above is its starting point).
    state
        .segments
        .set_realtime(true, "bench".into())
        .await
        .unwrap();
    let mut latencies = Vec::new();
    for n in 0..200 {
        let subject = format!("subject-{}", n % subjects);
        let url = format!("{base}/v1/profiles/{subject}/segments?source=default");
        let now = assent_protocol::Timestamp::from_unix_millis(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64,
        );
        let event = json!({"batch": [{"messageId": format!("late-{n}"), "type": "track", "event": "Late Signal",
            "anonymousId": subject, "timestamp": now.to_string()}]});
        let r = client
            .post(format!("{base}/v1/batch"))
            .bearer_auth(WRITE_KEY)
            .json(&event)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let acknowledged = Instant::now();
        loop {
            let body: serde_json::Value = client
                .get(&url)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let segments = body["segments"].as_array().cloned().unwrap_or_default();
            if segments.iter().any(|s| s == "late_signal") {
                break;
            }
            if acknowledged.elapsed() > Duration::from_secs(10) {
                panic!("the segments of {subject} did not show its event within 10 s: {body}");
            }
        }
        latencies.push(acknowledged.elapsed());
    }
    server.abort();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{kind:8} event to segment: p50 {:.1} ms, p99 {:.1} ms (200 events, from the 2xx until GET /v1/profiles/{{subject}}/segments shows the audience it enters; 4 audiences, 1 model)",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3
    );
    state.db.pool.close().await;
}

async fn run(kind: &str) {
    // Segmentation alone.
    if arg("LOAD_SEGMENTATION_ONLY", 0) == 1 {
        segmentation(kind).await;
        return;
    }
    let sample: serde_json::Value = serde_json::from_slice(&batch_body(7, "check")).unwrap();
    assert_eq!(sample["batch"].as_array().unwrap().len(), BATCH);
    assert_eq!(sample["batch"][0]["anonymousId"], "subject-7");
    let connections = arg("LOAD_CONNECTIONS", 32) as usize;
    let seconds = arg("LOAD_SECONDS", 10);
    let Some((state, base, client, _server, _dir)) = start(kind, true, true).await else {
        println!("{kind}: skipped (set TEST_DATABASE_URL, or run `make bench-collector`)");
        return;
    };
    let (total, elapsed, latencies) = drive(&base, &client, connections, seconds, "load").await;
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let rate = total as f64 / elapsed;
    println!(
        "{kind:8} collector: {rate:>9.0} events/s accepted ({total} in {elapsed:.1} s, {connections} connections, batches of {BATCH}); latency p50 {:.1} ms, p99 {:.1} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3
    );
    // For an A/B of two builds, ingest alone.
    if arg("LOAD_INGEST_ONLY", 0) == 1 {
        return;
    }
    feed_read(kind, &state.db).await;
    relay(kind, &state).await;

    // What the side index costs readers: a subject access request (GDPR art. 15) finds
    // one subject's events among all those just stored, with the index as the load left
    // it, then once an idle collector has folded its runs together (done here, timed).
    let runs = || async {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM event_subject_runs")
            .fetch_one(&state.db.pool)
            .await
            .unwrap();
        n
    };
    let access = || {
        let (client, base) = (&client, &base);
        async move {
            let t = Instant::now();
            let access: serde_json::Value = client
                .get(format!("{base}/v1/subjects/subject-7"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let found = access["events"].as_array().map_or(0, Vec::len);
            format!(
                "{found} events of one subject among {total} in {:.0} ms",
                t.elapsed().as_secs_f64() * 1e3
            )
        }
    };
    if kind == "sqlite" {
        assent_collector::storage::subject_index::merge(&state.db)
            .await
            .unwrap();
        let (before, first) = (runs().await, access().await);
        let t = Instant::now();
        while assent_collector::storage::subject_index::compact_step(&state.db)
            .await
            .unwrap()
        {}
        let folding = t.elapsed().as_secs_f64();
        let (after, second) = (runs().await, access().await);
        println!(
            "{kind:8} subject access: {first} ({before} index runs); {second} after folding them into {after} ({folding:.1} s)"
        );
    } else {
        println!("{kind:8} subject access: {}", access().await);
    }

    // The same rows, inserted bare into a table of the same shape (same key and
    // indexes): multi-row INSERTs of 100, committed every 10,000 rows, nothing else. On
    // SQLite the events table has no subject index (the collector fills a side table in
    // bulk instead, and that work is not part of the bare insert). Every row the collector
    // stored, in the order it stored them; only the inserts are timed.
    let pool = &state.db.pool;
    let backend = state.db.backend;
    let (key, subject_index) = if kind == "sqlite" {
        (
            "seq INTEGER PRIMARY KEY, ",
            "UNIQUE (source_id, message_id))",
        )
    } else {
        ("", "PRIMARY KEY (source_id, message_id))")
    };
    let table = format!(
        "CREATE TABLE bare_events ({key}source_id TEXT NOT NULL, message_id TEXT NOT NULL, type TEXT NOT NULL, name TEXT,
         purpose TEXT NOT NULL, subject TEXT NOT NULL, subject_key BIGINT NOT NULL, anonymous_id TEXT, user_id TEXT,
         timestamp_ms BIGINT NOT NULL,
         original_timestamp_ms BIGINT, sent_at_ms BIGINT, received_at_ms BIGINT NOT NULL, ip_prefix TEXT,
         payload TEXT NOT NULL, {subject_index}"
    );
    let mut ddl = vec![
        table.as_str(),
        "CREATE INDEX bare_user ON bare_events (user_id) WHERE user_id IS NOT NULL",
        "CREATE INDEX bare_received ON bare_events (received_at_ms)",
    ];
    if kind != "sqlite" {
        ddl.push("CREATE INDEX bare_subject_key ON bare_events (subject_key)");
    }
    for ddl in ddl {
        sqlx::query(ddl).execute(pool).await.unwrap();
    }
    let columns: Vec<&str> = COLUMNS.split(',').map(str::trim).collect();
    // The fastest form for each database (on SQLite `OR IGNORE`, which keeps no statement
    // journal, and `?` placeholders), written by the collector's own statement builder.
    let insert = backend.insert_skipping_duplicates("bare_events", &columns, BATCH);
    // A table scan gives them in the order stored; a page of 100,000 at a time.
    let (mut rows, mut inserting) = (0usize, Duration::ZERO);
    let select = format!("SELECT {COLUMNS} FROM events");
    let mut stored = sqlx::query_as::<_, StoredRow>(&select).fetch(pool);
    loop {
        let mut page = Vec::with_capacity(100_000);
        while page.len() < 100_000 {
            match stored.try_next().await.unwrap() {
                Some(row) => page.push(row),
                None => break,
            }
        }
        if page.is_empty() {
            break;
        }
        // 10,000 rows per transaction, through the collector's write transactions (on
        // SQLite its one writing connection), every column as the collector stored it.
        let t = Instant::now();
        for transaction in page.chunks(10_000) {
            let mut w = state.db.write().await.unwrap();
            for chunk in transaction.chunks(BATCH) {
                let partial;
                let sql = if chunk.len() == BATCH {
                    &insert
                } else {
                    partial =
                        backend.insert_skipping_duplicates("bare_events", &columns, chunk.len());
                    &partial
                };
                let mut q = sqlx::query(sql);
                for r in chunk {
                    q = q
                        .bind(&r.source_id)
                        .bind(&r.message_id)
                        .bind(&r.kind)
                        .bind(&r.name)
                        .bind(&r.purpose)
                        .bind(&r.subject)
                        .bind(r.subject_key)
                        .bind(&r.anonymous_id)
                        .bind(&r.user_id)
                        .bind(r.timestamp_ms)
                        .bind(r.original_timestamp_ms)
                        .bind(r.sent_at_ms)
                        .bind(r.received_at_ms)
                        .bind(&r.ip_prefix)
                        .bind(&r.payload);
                }
                q.execute(&mut *w.tx).await.unwrap();
            }
            w.commit().await.unwrap();
        }
        inserting += t.elapsed();
        rows += page.len();
    }
    let bare = rows as f64 / inserting.as_secs_f64();
    println!(
        "{kind:8} bare bulk insert: {bare:>9.0} rows/s ({rows} rows); collector/bare = {:.2}",
        rate / bare
    );
    segmentation(kind).await;
    ab(kind, Switch::Feed, connections, seconds).await;
    ab(kind, Switch::Segmentation, connections, seconds).await;
    if kind == "postgres" {
        ab(kind, Switch::ConsentCache, connections, seconds).await;
    }
}

/// The columns of a stored event, in the order [`StoredRow`] reads them.
const COLUMNS: &str =
    "source_id, message_id, type, name, purpose, subject, subject_key, anonymous_id, user_id, \
     timestamp_ms, original_timestamp_ms, sent_at_ms, received_at_ms, ip_prefix, payload";

/// One stored event, as the bare insert copies it.
#[derive(sqlx::FromRow)]
struct StoredRow {
    source_id: String,
    message_id: String,
    #[sqlx(rename = "type")]
    kind: String,
    name: Option<String>,
    purpose: String,
    subject: String,
    subject_key: i64,
    anonymous_id: Option<String>,
    user_id: Option<String>,
    timestamp_ms: i64,
    original_timestamp_ms: Option<i64>,
    sent_at_ms: Option<i64>,
    received_at_ms: i64,
    ip_prefix: Option<String>,
    payload: String,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "assent-collector load benchmark ({} cores, generator in the same process)",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        // LOAD_ONLY=sqlite or postgres runs one backend.
        let only = std::env::var("LOAD_ONLY").unwrap_or_default();
        if only != "postgres" {
            run("sqlite").await;
            // The SQLite run's writes reach the disk now, not during PostgreSQL's fsyncs.
            let _ = std::process::Command::new("sync").status();
        }
        if only != "sqlite" {
            run("postgres").await;
        }
    });
}
