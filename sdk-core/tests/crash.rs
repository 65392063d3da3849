//! Kill -9 safety: a child process tracks events (while its uploader sends to a real
//! server) and is killed with SIGKILL at random moments, many times. Afterwards every
//! event whose `track` returned must reach the server exactly once after de-duplication
//! by messageId: nothing lost, nothing re-created under another id.
mod support;

use std::{
    collections::{HashMap, HashSet},
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use assent_core::AssentClient;
use support::{config, purposes, Recorder};

const ROUNDS: usize = 40;

/// The child's body; does nothing unless started by `kill_9_loses_nothing`.
#[test]
#[ignore = "run as a child process by kill_9_loses_nothing"]
fn crash_child() {
    let (Ok(dir), Ok(url), Ok(round)) = (
        std::env::var("ASSENT_CRASH_DIR"),
        std::env::var("ASSENT_CRASH_URL"),
        std::env::var("ASSENT_CRASH_ROUND"),
    ) else {
        return;
    };
    let mut cfg = config(&url, std::path::Path::new(&dir));
    cfg.flush_at = 25;
    cfg.flush_interval_ms = 20;
    cfg.max_queue_events = 1_000_000;
    let client = AssentClient::new(cfg).expect("client starts after a crash");
    client
        .set_consent(purposes(&[("analytics", true)]), "custom".into())
        .unwrap();
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let client = client.clone();
            let round = round.clone();
            std::thread::spawn(move || {
                // Paced so the uploader keeps up: the queue bound must never drop a
                // tracked event here, or the test could not tell loss from policy.
                for i in 0..100_000 {
                    if i % 20 == 19 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    let key = format!("{round}-{t}-{i}");
                    let purpose = if i % 3 == 0 { "necessary" } else { "analytics" };
                    let props = format!(r#"{{"key":"{key}"}}"#);
                    if client
                        .track("Crash Test".into(), props, Some(purpose.into()))
                        .unwrap()
                    {
                        println!("TRACKED {key}");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn kill_9_loses_nothing_and_duplicates_nothing() {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut tracked: HashSet<String> = HashSet::new();
    let mut rng = fastrand::Rng::with_seed(0xA55E47);
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("ASSENT_CRASH_DIR", dir.path())
            .env("ASSENT_CRASH_URL", &server.url)
            .env("ASSENT_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(key) = line.strip_prefix("TRACKED ") {
                    let _ = tx.send(key.to_owned());
                }
            }
        });
        // Wait for the child to be tracking, then kill it at a random moment.
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("child tracks");
        tracked.insert(first);
        std::thread::sleep(Duration::from_millis(rng.u64(1..120)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        tracked.extend(rx.try_iter());
    }
    assert!(
        tracked.len() > ROUNDS * 50,
        "only {} events tracked",
        tracked.len()
    );

    // Restart once more and deliver whatever is left.
    let mut cfg = config(&server.url, dir.path());
    cfg.max_queue_events = 1_000_000;
    let client = AssentClient::new(cfg).unwrap();
    assert_eq!(client.stats().dropped, 0);
    for _ in 0..10 {
        if client.flush().is_ok() && client.queued_count() == 0 {
            break;
        }
    }
    assert_eq!(client.queued_count(), 0);

    let mut ids_by_key: HashMap<String, HashSet<String>> = HashMap::new();
    for request in server.requests().iter().filter(|r| r.status == 200) {
        for e in request.body["batch"].as_array().unwrap() {
            let key = e["properties"]["key"].as_str().unwrap().to_owned();
            ids_by_key
                .entry(key)
                .or_default()
                .insert(e["messageId"].as_str().unwrap().to_owned());
        }
    }
    let lost: Vec<&String> = tracked
        .iter()
        .filter(|k| !ids_by_key.contains_key(*k))
        .collect();
    assert!(
        lost.is_empty(),
        "{} tracked events never arrived, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    let recreated: Vec<_> = ids_by_key.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(
        recreated.is_empty(),
        "events sent under two messageIds: {recreated:?}"
    );
    let stored = server.stored();
    assert_eq!(stored.len(), stored.iter().collect::<HashSet<_>>().len());
    eprintln!(
        "crash test: {ROUNDS} kills, {} events tracked, {} stored, {} duplicate deliveries de-duplicated",
        tracked.len(),
        stored.len(),
        server.requests().iter().filter(|r| r.status == 200).map(|r| r.body["batch"].as_array().unwrap().len()).sum::<usize>()
            - stored.len()
    );
}
