//! Kill test: the real `assent-collector` binary takes load (events, consent records,
//! checkpoints signed on demand), is killed with SIGKILL at a random moment, and
//! restarted, three times over. Every messageId and consent record it acknowledged with a
//! 2xx must be in the store afterwards; the audit chain, its Merkle tree and the stored
//! signed checkpoints must agree; and every proof handed out before a kill (receipts'
//! inclusion proofs, checkpoints) must still verify against the log after it.
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
    .env("ASSENT_AUDIT_CHECKPOINT_EVERY", "40")
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
    let consents: Arc<Mutex<Vec<String>>> = Default::default();
    // Proofs and checkpoints handed out before the kills: (file text, consent id).
    let proofs: Arc<Mutex<Vec<String>>> = Default::default();
    let checkpoint_sizes: Arc<Mutex<Vec<u64>>> = Default::default();
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
        // Consent records, each acknowledged one's receipt proof fetched at once, and
        // checkpoints signed on demand, all while the events flow.
        for worker in 0..2u64 {
            let (client, base) = (client.clone(), base.clone());
            let (consents, proofs) = (consents.clone(), proofs.clone());
            let first = next_id + worker * 1_000_000;
            tasks.push(tokio::spawn(async move {
                for b in 0.. {
                    let ids: Vec<String> = (0..20).map(|i| format!("c{round}-{worker}-{}", first + b * 20 + i)).collect();
                    let records: Vec<_> = ids.iter().map(|id| json!({"consentId": id, "subjectId": format!("s-{id}"),
                        "purposes": {"analytics": true}, "policyVersion": "2026-01", "method": "custom", "source": "api",
                        "timestamp": "2026-12-01T10:00:00Z"})).collect();
                    let sent = client.post(format!("{base}/v1/consent")).bearer_auth(WRITE_KEY)
                        .json(&json!({"records": records})).send().await;
                    match sent {
                        Ok(r) if r.status() == 201 => consents.lock().unwrap().extend(ids.iter().cloned()),
                        _ => return,
                    }
                    let proof = client.get(format!("{base}/v1/consent/receipts/{}/proof?source=default", ids[0]))
                        .bearer_auth(ADMIN).send().await;
                    match proof {
                        Ok(r) if r.status() == 200 => match r.text().await {
                            Ok(text) => proofs.lock().unwrap().push(text),
                            Err(_) => return,
                        },
                        _ => return,
                    }
                }
            }));
        }
        {
            let (client, base, sizes) = (client.clone(), base.clone(), checkpoint_sizes.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let r = client
                        .get(format!("{base}/v1/audit/checkpoint"))
                        .bearer_auth(ADMIN)
                        .send()
                        .await;
                    let Ok(r) = r else { return };
                    let Ok(note) = r.text().await else { return };
                    if let Some(size) = note.lines().nth(1).and_then(|l| l.parse().ok()) {
                        sizes.lock().unwrap().push(size);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
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
    assert_eq!(verify["ok"], true, "{verify}");
    assert!(
        verify["checkpoints_verified"].as_u64().unwrap() > 3,
        "the stored checkpoints agree with the tree recomputed from the chain: {verify}"
    );

    // Every proof and checkpoint handed out before a kill still holds: receipts verify
    // offline with the public key, and each old checkpoint is consistent with today's.
    let keys: serde_json::Value = client
        .get(format!("{base}/.well-known/assent-audit-keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = keys["current"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    // The offline verifier's verdict on a proof file.
    let verdict = |name: String, proof: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, proof).unwrap();
        assent_collector::cli::verify_anchored(&path, &key).unwrap()
    };
    let proofs = proofs.lock().unwrap().clone();
    assert!(proofs.len() >= 3, "only {} receipt proofs", proofs.len());
    for (i, proof) in proofs.iter().enumerate() {
        let v = verdict(format!("proof-{i}.json"), proof);
        assert!(v.ok, "{v:?}");
    }
    let mut sizes = checkpoint_sizes.lock().unwrap().clone();
    sizes.sort_unstable();
    sizes.dedup();
    assert!(sizes.len() > 3, "{sizes:?}");
    for size in sizes {
        let proof = client
            .get(format!("{base}/v1/audit/consistency?from={size}"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let v = verdict(format!("consistency-{size}.json"), &proof);
        assert!(v.ok, "from {size}: {v:?} {proof}");
    }
    child.kill().unwrap();
    child.wait().unwrap();

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&database_url).await.unwrap();
    let ids = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query(sql)
                .fetch_all(&pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get::<String, _>(0).unwrap())
                .collect::<HashSet<String>>()
        }
    };
    let stored = ids("SELECT message_id FROM events").await;
    let stored_consents = ids("SELECT consent_id FROM consent_records").await;
    let consents = consents.lock().unwrap().clone();
    assert!(
        consents.len() > 100,
        "only {} consent records",
        consents.len()
    );
    let lost_consent: Vec<&String> = consents
        .iter()
        .filter(|id| !stored_consents.contains(*id))
        .collect();
    assert!(
        lost_consent.is_empty(),
        "{} acknowledged consent records lost",
        lost_consent.len()
    );
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    eprintln!(
        "kill test: 3 kills, {} events acknowledged, {} stored, none lost; {} consent records, {} receipt proofs still verifying",
        acked.len(),
        stored.len(),
        consents.len(),
        proofs.len()
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
