//! Kill test: the real `assent-collector` binary takes load, is killed with SIGKILL at a
//! random moment, and restarted, three times over. Every messageId it acknowledged with a
//! 2xx must be in the store afterwards, and the audit chain must still verify.
mod common;

use std::{
    collections::HashSet,
    process::Child,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::free_port;

use serde_json::json;
use sqlx::Row;

const WRITE_KEY: &str = "wk_kill_test_write_key_Hs4Ty8Wm1Pq6Zc3Vb";
const ADMIN: &str = "adm_kill_test_admin_token_Jd2Lk7Rf5Gx9Qn";

fn start(database_url: &str, port: u16) -> Child {
    common::collector(
        database_url,
        port,
        WRITE_KEY,
        "kill-test-pseudonym-key-0123456789abcdef",
    )
    .env("ASSENT_BOOTSTRAP_ADMIN_TOKEN", ADMIN)
    .spawn()
    .expect("collector binary starts")
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    assert!(
        common::ready(client, base).await,
        "collector did not become ready"
    );
}

async fn kill_and_check(database_url: String) {
    let client = reqwest::Client::new();
    let acked: Arc<Mutex<HashSet<String>>> = Default::default();
    let mut rng_state = 0x9E37_79B9_u64;
    let mut next_id = 0u64;
    for round in 0..3 {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = start(&database_url, port);
        wait_ready(&client, &base).await;
        let mut tasks = Vec::new();
        for worker in 0..8 {
            let (client, base, acked) = (client.clone(), base.clone(), acked.clone());
            let first = next_id + worker * 1_000_000;
            tasks.push(tokio::spawn(async move {
                for b in 0.. {
                    let ids: Vec<String> = (0..50).map(|i| format!("r{round}-w{worker}-{}", first + b * 50 + i)).collect();
                    let batch: Vec<_> = ids
                        .iter()
                        .map(|id| json!({"messageId": id, "type": "track", "event": "Kill", "anonymousId": "k", "purpose": "necessary"}))
                        .collect();
                    let sent = client.post(format!("{base}/v1/batch")).bearer_auth(WRITE_KEY).json(&json!({"batch": batch})).send().await;
                    match sent {
                        Ok(r) if r.status() == 200 => {
                            let answer: serde_json::Value = r.json().await.unwrap_or_default();
                            if answer["accepted"].as_u64().unwrap_or(0) + answer["duplicates"].as_u64().unwrap_or(0) == 50 {
                                acked.lock().unwrap().extend(ids);
                            }
                        }
                        // The server died mid-request: this batch was never acknowledged.
                        _ => return,
                    }
                }
            }));
        }
        next_id += 10_000_000;
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        tokio::time::sleep(Duration::from_millis(300 + rng_state % 700)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for t in tasks {
            let _ = t.await;
        }
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 1_000,
        "only {} events acknowledged",
        acked.len()
    );

    // Restart once more: the store has every acknowledged event, and the chain verifies.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start(&database_url, port);
    wait_ready(&client, &base).await;
    let verify: serde_json::Value = client
        .get(format!("{base}/v1/audit/verify"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(verify["ok"], true, "{verify}");

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&database_url).await.unwrap();
    let stored: HashSet<String> = sqlx::query("SELECT message_id FROM events")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String, _>(0).unwrap())
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    eprintln!(
        "kill test: 3 kills, {} acknowledged, {} stored, none lost",
        acked.len(),
        stored.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_event_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    kill_and_check(format!("sqlite://{}", dir.path().join("kill.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_event_postgres() {
    kill_and_check(common::fresh_postgres("assent_kill").await).await;
}
