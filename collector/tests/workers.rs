//! Segmentation scaled out: two `assent-collector worker` processes consume the feed from
//! a real `nats-server` (JetStream) as one durable consumer group, with the profiles in
//! PostgreSQL; one is SIGKILLed mid-stream. Beside them, a second collector on its own
//! database receives the same requests and segments them in process, one batch at a
//! time. Every profile, and every audience membership, ends the same in both: nothing
//! lost, nothing counted twice.
mod common;
#[path = "common/nats.rs"]
mod nats;

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{json, Value};

const WRITE_KEY: &str = "wk_workers_test_write_key_Hq3Zp8Lm1Vx6Kd";
const ADMIN_TOKEN: &str = "adm_workers_test_admin_token_Rt5Wn2Qc9Jb4";
const PSEUDONYM_KEY: &str = "workers-test-pseudonym-key-0123456789abcdef";
const SUBJECTS: usize = 40;

struct Process(Child);

impl Process {
    fn kill(mut self) {
        self.0.kill().unwrap(); // SIGKILL
        self.0.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve(
    database_url: &str,
    extra: &[(&str, &str)],
    client: &reqwest::Client,
) -> (Process, String) {
    let port = common::free_port();
    let mut command = common::collector(database_url, port, WRITE_KEY, PSEUDONYM_KEY);
    command.env("ASSENT_BOOTSTRAP_ADMIN_TOKEN", ADMIN_TOKEN);
    for (k, v) in extra {
        command.env(k, v);
    }
    let child = Process(command.spawn().expect("collector binary starts"));
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        common::ready(client, &base).await,
        "collector did not start"
    );
    (child, base)
}

fn worker(database_url: &str, nats: &str) -> Process {
    Process(
        Command::new(env!("CARGO_BIN_EXE_assent-collector"))
            .arg("worker")
            .env("ASSENT_DATABASE_URL", database_url)
            .env("ASSENT_PSEUDONYM_KEY", PSEUDONYM_KEY)
            .env("ASSENT_NATS_URL", nats)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("worker starts"),
    )
}

fn at(ms: i64) -> String {
    assent_protocol::Timestamp::from_unix_millis(ms).to_string()
}

/// Batch `b` of the same requests both collectors get: consent first, then events; the
/// last batch withdraws one subject's personalization.
fn batch(b: usize, now: i64) -> Value {
    let mut body = json!({});
    if b == 0 {
        let consent: Vec<Value> = (0..SUBJECTS)
            .map(|s| {
                json!({"consentId": format!("c-{s}"), "subjectId": format!("s{s}"),
                "purposes": {"analytics": true, "personalization": s % 5 != 4},
                "policyVersion": "v1", "method": "custom", "source": "sdk", "timestamp": at(now - 3_600_000)})
            })
            .collect();
        body["consent"] = json!(consent);
    }
    if b == 39 {
        body["consent"] = json!([{"consentId": "c-w", "subjectId": "s3",
            "purposes": {"analytics": true, "personalization": false},
            "policyVersion": "v1", "method": "custom", "source": "sdk", "timestamp": at(now - 1_000)}]);
    }
    let events: Vec<Value> = (0..50)
        .map(|i| {
            let n = b * 50 + i;
            let s = n % SUBJECTS;
            let t = now - 3_000_000 + n as i64 * 500;
            if n.is_multiple_of(7) {
                json!({"messageId": format!("e-{n}"), "type": "page", "name": "Shoes",
                       "anonymousId": format!("s{s}"), "timestamp": at(t)})
            } else {
                json!({"messageId": format!("e-{n}"), "type": "track", "event": "Order Completed",
                       "anonymousId": format!("s{s}"), "timestamp": at(t),
                       "properties": {"revenue": (n % 13) as f64}})
            }
        })
        .collect();
    body["batch"] = json!(events);
    body
}

async fn post(client: &reqwest::Client, base: &str, body: &Value) {
    let r = client
        .post(format!("{base}/v1/batch"))
        .bearer_auth(WRITE_KEY)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// What the profiles and memberships hold, without what differs by database (source
/// ids, arrival times).
async fn state(db: &sqlx::PgPool) -> (Vec<(String, i64, String, String)>, Vec<(String, String)>) {
    let events = sqlx::query_as(
        "SELECT subject, at_ms, message_id, event FROM profile_events ORDER BY subject, at_ms, message_id",
    )
    .fetch_all(db)
    .await
    .unwrap();
    let members =
        sqlx::query_as("SELECT audience, subject FROM audience_members ORDER BY audience, subject")
            .fetch_all(db)
            .await
            .unwrap();
    (events, members)
}

async fn count(db: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_one_killed_mid_stream_end_as_one_in_process_run_postgres() {
    let nats = nats::start_nats().await;
    let client = reqwest::Client::new();
    let (shared_url, alone_url) = (
        common::fresh_postgres("workers").await,
        common::fresh_postgres("alone").await,
    );
    let (_shared, shared_base) = serve(
        &shared_url,
        &[
            ("ASSENT_NATS_URL", &nats.url),
            ("ASSENT_SEGMENTATION_WORKERS", "true"),
        ],
        &client,
    )
    .await;
    let (_alone, alone_base) = serve(&alone_url, &[], &client).await;
    let (shared_db, alone_db) = (
        sqlx::PgPool::connect(&shared_url).await.unwrap(),
        sqlx::PgPool::connect(&alone_url).await.unwrap(),
    );
    let audience = json!({"rule": {"performed": {"event": "Order Completed", "at_least": 30, "within_days": 30}}});
    for base in [&shared_base, &alone_base] {
        let r = client
            .put(format!("{base}/v1/audiences/regulars"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&audience)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let first = worker(&shared_url, &nats.url);
    let _second = worker(&shared_url, &nats.url);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for b in 0..20 {
        let body = batch(b, now);
        post(&client, &shared_base, &body).await;
        post(&client, &alone_base, &body).await;
    }
    // Mid-stream: once the workers have folded some of it, one of them dies.
    for _ in 0..200 {
        if count(&shared_db, "SELECT COUNT(*) FROM profile_events").await > 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill();
    for b in 20..40 {
        let body = batch(b, now);
        post(&client, &shared_base, &body).await;
        post(&client, &alone_base, &body).await;
    }
    // 2,000 events from 40 subjects, 32 of whom granted personalization, one of whom
    // withdrew it at the end: 31 × 50 events stay.
    let expected = 31 * 50;
    let mut last = (Vec::new(), Vec::new());
    for _ in 0..600 {
        let (a, b) = (state(&shared_db).await, state(&alone_db).await);
        if a.0.len() == expected && a == b {
            return assert!(!a.1.is_empty(), "some subjects are regulars");
        }
        last = (a.0, b.0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the workers' profiles ({} events) never matched the in-process run's ({}); {expected} expected",
        last.0.len(),
        last.1.len()
    );
}
