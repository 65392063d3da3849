//! The feed: one order over events, consent records and erasures that never skips a
//! committed item (also with PostgreSQL transactions committing out of order on several
//! replicas), consumer positions in the database, wake-ups, and the lag metric.
use std::{collections::BTreeSet, time::Duration};

use assent_collector::{
    feed::{self, Item, Position},
    storage::Db,
};
use serde_json::json;

use crate::helpers::*;

const T0: &str = "2026-11-29T10:00:00.000Z";
const T1: &str = "2026-11-29T10:00:05.000Z";
const T2: &str = "2026-11-29T10:00:09.000Z";

/// Waits until every committed item can be read (PostgreSQL: other tests' transactions on
/// the same cluster hold the horizon back for a moment).
async fn settle(db: &Db) {
    while feed::pending(db).await.unwrap() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn everything(db: &Db) -> Vec<Item> {
    settle(db).await;
    let mut out = Vec::new();
    let mut at = Position::START;
    loop {
        let items = feed::read(db, at, 3).await.unwrap();
        let Some(last) = items.last() else { break };
        at = last.position();
        out.extend(items);
    }
    out
}

/// Events, a withdrawal and an erasure come out in the order they were committed, as
/// stored (pseudonyms only), each once, and a consumer's position is kept in the database.
pub async fn the_feed_carries_events_consent_and_erasures_in_commit_order(b: Backend) {
    let app = spawn_app(b).await;
    let grant = consent("c-1", "alice", json!({"analytics": true}), T0);
    assert_eq!(app.post("/v1/consent", &grant).await.0, 201);
    let batch = json!({"batch": [
        track("m-1", "alice", Some("analytics"), T1),
        track("m-2", "alice", Some("analytics"), T1),
        track("m-3", "bob", Some("necessary"), T1),
    ]});
    let (status, answer) = app.post("/v1/batch", &batch).await;
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(3)),
        "{answer}"
    );
    let withdraw = consent("c-2", "alice", json!({"analytics": false}), T2);
    assert_eq!(app.post("/v1/consent", &withdraw).await.0, 201);
    assert_eq!(app.admin_delete("/v1/subjects/bob").await.status(), 200);

    let items = everything(&app.state.db).await;
    let summary: Vec<(String, String)> = items
        .iter()
        .map(|i| match i {
            Item::Event(e) => ("event".into(), e.message_id.clone()),
            Item::Consent(c) => ("consent".into(), c.consent_id.clone()),
            Item::Erasure(_) => ("erasure".into(), String::new()),
        })
        .collect();
    // bob's event went with the erasure; the erasure itself is an item.
    let expected = [
        ("consent", "c-1"),
        ("event", "m-1"),
        ("event", "m-2"),
        ("consent", "c-2"),
        ("erasure", ""),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(summary, expected);
    let positions: Vec<Position> = items.iter().map(Item::position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    let alice = app.state.pseudonymizer.pseudonym("alice");
    let bob = app.state.pseudonymizer.pseudonym("bob");
    assert_eq!(items[1].subject(), &alice);
    assert_eq!(items[4].subject(), &bob);
    let Item::Consent(withdrawal) = &items[3] else {
        panic!()
    };
    assert_eq!(withdrawal.purposes.get("analytics"), Some(&false));
    let text = serde_json::to_string(&items).unwrap();
    assert!(
        !text.contains("\"alice\"") && !text.contains("\"bob\""),
        "a raw id in the feed: {text}"
    );

    // A consumer's position: saved in a transaction, never moved back.
    assert_eq!(
        feed::position_of(&app.state.db, "a-module").await.unwrap(),
        Position::START
    );
    let mut w = app.state.db.write().await.unwrap();
    feed::save_position(&mut w, "a-module", positions[2], 1)
        .await
        .unwrap();
    w.commit().await.unwrap();
    let mut w = app.state.db.write().await.unwrap();
    feed::save_position(&mut w, "a-module", positions[0], 2)
        .await
        .unwrap();
    w.commit().await.unwrap();
    assert_eq!(
        feed::position_of(&app.state.db, "a-module").await.unwrap(),
        positions[2]
    );
    // A rolled-back save is no save.
    let mut w = app.state.db.write().await.unwrap();
    feed::save_position(&mut w, "a-module", positions[4], 3)
        .await
        .unwrap();
    drop(w);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        feed::position_of(&app.state.db, "a-module").await.unwrap(),
        positions[2]
    );
    settle(&app.state.db).await;
    let after: Vec<Position> = feed::read(&app.state.db, positions[2], 100)
        .await
        .unwrap()
        .iter()
        .map(Item::position)
        .collect();
    assert_eq!(after, positions[3..]);

    // The lag is in /metrics, per consumer.
    let metrics = app.admin_get("/metrics").await.text().await.unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("assent_feed_lag{consumer=\"a-module\"}"))
        .unwrap_or_else(|| panic!("no lag line: {metrics}"));
    let lag: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    // Two committed items after its position: the withdrawal and the erasure.
    assert_eq!(lag, 2, "{line}");
}

/// A position is never given twice: erasing the newest events and storing new ones puts
/// the new ones after everything a reader passed (SQLite would otherwise reuse numbers).
pub async fn positions_are_never_given_again_after_the_newest_rows_go(b: Backend) {
    let app = spawn_app(b).await;
    let batch = |id: &str, who: &str| json!({"batch": [track(id, who, Some("necessary"), T1)]});
    assert_eq!(app.post("/v1/batch", &batch("m-1", "keep")).await.0, 200);
    assert_eq!(app.post("/v1/batch", &batch("m-2", "gone")).await.0, 200);
    assert_eq!(app.post("/v1/batch", &batch("m-3", "gone")).await.0, 200);
    let read = everything(&app.state.db).await;
    let passed = read.last().unwrap().position();
    assert_eq!(app.admin_delete("/v1/subjects/gone").await.status(), 200);
    assert_eq!(app.post("/v1/batch", &batch("m-4", "new")).await.0, 200);
    settle(&app.state.db).await;
    let after = feed::read(&app.state.db, passed, 100).await.unwrap();
    let kinds: Vec<&str> = after.iter().map(|i| i.kind().as_str()).collect();
    assert_eq!(kinds, ["erasure", "event"], "{after:?}");
    let Item::Event(e) = &after[1] else { panic!() };
    assert_eq!(e.message_id, "m-4");
}

/// A follower waits without polling when idle and wakes when this process commits.
pub async fn a_follower_wakes_on_commit(b: Backend) {
    let app = spawn_app(b).await;
    let mut follower = feed::Follower::new(
        app.state.db.clone(),
        "waker",
        100,
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    let waiting = tokio::spawn(async move { follower.next().await.map(|i| i.len()) });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "nothing to read yet");
    let batch = json!({"batch": [track("m-1", "w", Some("necessary"), T1)]});
    assert_eq!(app.post("/v1/batch", &batch).await.0, 200);
    let got = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("woken by the commit, not by the hour-long poll")
        .unwrap()
        .unwrap();
    assert_eq!(got, 1);
}

/// Writes one event in its own transaction on `db`, holding the transaction open for
/// `hold` after the insert (so a later transaction can commit first).
async fn slow_insert(db: &Db, id: String, hold: Duration) {
    let mut w = db.write().await.unwrap();
    sqlx::query(
        "INSERT INTO events (source_id, message_id, type, purpose, subject, subject_key,
         timestamp_ms, received_at_ms, payload) VALUES ('src', $1, 'track', 'necessary',
         'k1.00000000000000000000000000000000', 0, 0, 0, '{}')",
    )
    .bind(&id)
    .execute(&mut *w.tx)
    .await
    .unwrap();
    tokio::time::sleep(hold).await;
    w.commit().await.unwrap();
}

/// PostgreSQL, several replicas (pools) writing at once, transactions held open so that
/// smaller numbers commit after larger ones: a reader following the feed the whole time
/// still gets every committed item exactly once.
pub async fn out_of_order_commits_on_several_replicas_are_never_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(Backend::Postgres, dir.path()).await;
    let first = Db::connect(&url).await.unwrap();
    first.migrate().await.unwrap();
    let mut replicas = vec![first];
    for _ in 0..2 {
        replicas.push(Db::connect(&url).await.unwrap());
    }

    // Deterministic: A takes its number first and commits last.
    let reader = replicas[0].clone();
    let a = tokio::spawn({
        let db = replicas[1].clone();
        async move { slow_insert(&db, "slow".into(), Duration::from_millis(800)).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    slow_insert(&replicas[2], "fast".into(), Duration::ZERO).await;
    let early = feed::read(&reader, Position::START, 100).await.unwrap();
    assert!(
        early.is_empty(),
        "the fast transaction committed, but a slower one with a smaller number is still open: {early:?}"
    );
    a.await.unwrap();
    settle(&reader).await;
    let ids: Vec<String> = feed::read(&reader, Position::START, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|i| match i {
            Item::Event(e) => e.message_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, ["slow", "fast"]);

    // Many writers on three replicas, random hold times, a reader following throughout.
    let writers: Vec<_> = (0..24)
        .map(|w| {
            let db = replicas[w % replicas.len()].clone();
            tokio::spawn(async move {
                for i in 0..15 {
                    let hold = Duration::from_millis(((w * 7 + i * 13) % 40) as u64);
                    slow_insert(&db, format!("w{w}-{i}"), hold).await;
                }
            })
        })
        .collect();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follow = tokio::spawn({
        let (db, done) = (reader.clone(), done.clone());
        async move {
            let mut seen: Vec<String> = Vec::new();
            let mut at = Position::START;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let items = feed::read(&db, at, 7).await.unwrap();
                if let Some(last) = items.last() {
                    at = last.position();
                }
                let empty = items.is_empty();
                for i in items {
                    if let Item::Event(e) = i {
                        seen.push(e.message_id);
                    }
                }
                if finished && empty {
                    return seen;
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }
    });
    for w in writers {
        w.await.unwrap();
    }
    settle(&reader).await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = follow.await.unwrap();
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an item came twice");
    let stored: Vec<String> = sqlx::query_scalar("SELECT message_id FROM events")
        .fetch_all(&reader.pool)
        .await
        .unwrap();
    let stored: BTreeSet<&String> = stored.iter().collect();
    assert_eq!(stored.len(), 2 + 24 * 15);
    assert_eq!(unique, stored, "the reader skipped committed items");
}

/// Consent cached on every replica: replica B sends without pause while replica A
/// withdraws and grants again. Every batch B began after one of A's decisions was
/// acknowledged, and finished before A sent the next, follows that decision.
pub async fn a_withdrawal_on_one_replica_counts_at_once_on_another(b: Backend) {
    use assent_collector::Clock as _;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(b, dir.path()).await;
    let a = spawn_with(config(&url), tempfile::tempdir().unwrap()).await;
    let replica_b = Arc::new(spawn_with(config(&url), dir).await);
    let decide = |id: String, granted: bool| {
        let now = assent_collector::SystemClock.now_ms();
        let at = assent_protocol::Timestamp::from_unix_millis(now).to_string();
        consent(&id, "alice", json!({"analytics": granted}), &at)
    };
    assert_eq!(
        a.post("/v1/consent", &decide("g0".into(), true)).await.0,
        201
    );

    // (began, ended, accepted) of every batch B sent.
    let sent: Arc<Mutex<Vec<(Instant, Instant, bool)>>> = Default::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = tokio::spawn({
        let (app, sent, stop) = (replica_b.clone(), sent.clone(), stop.clone());
        async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let body = json!({"batch": [{"messageId": format!("b{n}"), "type": "track",
                    "event": "Seen", "anonymousId": "alice", "purpose": "analytics"}]});
                let began = Instant::now();
                let (status, answer) = app.post("/v1/batch", &body).await;
                assert_eq!(status, 200, "{answer}");
                let accepted = answer["accepted"] == 1;
                sent.lock().unwrap().push((began, Instant::now(), accepted));
            }
        }
    });
    // (sent, acknowledged, granted) of each decision A made.
    let mut decisions = Vec::new();
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(80)).await;
        let granted = round % 2 == 1;
        let record = decide(format!("d{round}"), granted);
        let began = Instant::now();
        assert_eq!(a.post("/v1/consent", &record).await.0, 201);
        decisions.push((began, Instant::now(), granted));
    }
    tokio::time::sleep(Duration::from_millis(80)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    sender.await.unwrap();
    let sent = sent.lock().unwrap().clone();
    let mut checked = 0;
    for (i, (_, acknowledged, granted)) in decisions.iter().enumerate() {
        let next_sent = decisions.get(i + 1).map(|d| d.0);
        for (began, ended, accepted) in &sent {
            if began > acknowledged && next_sent.is_none_or(|n| ended < &n) {
                assert_eq!(
                    accepted, granted,
                    "a batch after decision {i} (granted: {granted})"
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} batches fell between decisions"
    );
    // Replica B did keep consent in memory meanwhile.
    assert!(!replica_b.state.consent_cache.is_empty());
}

/// Erasure notices are subject data: access lists them, a second erasure leaves them
/// (they are what tells consumers to delete), and retention removes them after
/// `erasure_notice_retention_days`.
pub async fn erasure_notices_are_listed_kept_by_erasure_and_aged_out(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(b, dir.path()).await;
    let clock = TestClock::now();
    let app = spawn_with_clock(config(&url), dir, clock.clone()).await;
    let batch = json!({"batch": [track("m-1", "gone", Some("necessary"), T1)]});
    assert_eq!(app.post("/v1/batch", &batch).await.0, 200);
    assert_eq!(app.admin_delete("/v1/subjects/gone").await.status(), 200);
    let access: serde_json::Value = app.admin_json("/v1/subjects/gone").await;
    assert_eq!(
        access["erasureNotices"].as_array().unwrap().len(),
        1,
        "{access}"
    );
    assert_eq!(app.admin_delete("/v1/subjects/gone").await.status(), 200);
    assert_eq!(app.count("erasure_notices").await, 2);
    clock.advance_days(29);
    let swept = assent_collector::subjects::retention::sweep(&app.state.subjects)
        .await
        .unwrap();
    assert_eq!(swept.of("erasureNotices"), 0);
    clock.advance_days(2);
    let swept = assent_collector::subjects::retention::sweep(&app.state.subjects)
        .await
        .unwrap();
    assert_eq!(swept.of("erasureNotices"), 2);
    assert_eq!(app.count("erasure_notices").await, 0);
}
