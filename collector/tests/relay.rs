//! The NATS JetStream relay against a real `nats-server` (Debian's package, JetStream on,
//! a temporary store), started and stopped here: the collector binary relays while
//! taking load, is killed with SIGKILL mid-stream several times and restarted, and the
//! stream ends up holding every committed feed item exactly once. On PostgreSQL two
//! replicas share one relay, and the survivor takes it over when the other is killed.
mod common;
#[path = "common/nats.rs"]
mod nats;

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Child,
    time::Duration,
};

use assent_collector::{
    feed::{self, Position},
    storage::Db,
};
use async_nats::jetstream;
use common::free_port;
use futures_util::StreamExt;
use nats::{start_nats, start_nats_on};
use serde_json::json;

const WRITE_KEY: &str = "wk_relay_test_write_key_Ux7Qp2Lm9Vz4Kd1";
const STREAM: &str = "ASSENT";

fn start_collector(database_url: &str, nats: &str, port: u16) -> Child {
    common::collector(
        database_url,
        port,
        WRITE_KEY,
        "relay-test-pseudonym-key-0123456789abcdef",
    )
    .env("ASSENT_NATS_URL", nats)
    .spawn()
    .expect("collector binary starts")
}

/// A collector process on a port.
struct Replica {
    child: Child,
    base: String,
}

impl Replica {
    async fn start(database_url: &str, nats: &str, client: &reqwest::Client) -> Replica {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = start_collector(database_url, nats, port);
        if common::ready(client, &base).await {
            return Replica { child, base };
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("collector did not become ready");
    }

    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

/// Posts `n` events in batches of 100 from four connections at once.
async fn post_events(client: &reqwest::Client, base: &str, tag: &str, n: usize) {
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let (client, base, tag) = (client.clone(), base.to_owned(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            for b in (worker * 100..n).step_by(400) {
                let batch: Vec<_> = (b..(b + 100).min(n))
                    .map(|i| json!({"messageId": format!("{tag}-{i}"), "type": "track", "event": "Relayed",
                        "anonymousId": format!("s{}", i % 50), "purpose": "necessary"}))
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
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Messages in the stream now (0 before the relay made it).
async fn stream_count(js: &jetstream::Context) -> u64 {
    match js.get_stream(STREAM).await {
        Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Every feed item's id, with its position, read from the database.
async fn feed_ids(db: &Db) -> BTreeMap<String, Position> {
    while feed::pending(db).await.unwrap() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (mut out, mut at) = (BTreeMap::new(), Position::START);
    loop {
        let items = feed::read(db, at, feed::MAX_READ).await.unwrap();
        let Some(last) = items.last() else { break };
        at = last.position();
        out.extend(items.iter().map(|i| (i.id(), i.position())));
    }
    out
}

/// Waits until the stream holds `n` messages.
async fn wait_for(js: &jetstream::Context, n: u64, what: &str) {
    for _ in 0..600 {
        if stream_count(js).await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{what}: the stream has {} of {n} messages",
        stream_count(js).await
    );
}

/// The ids of every message in the stream, and how many messages there are.
async fn stream_ids(js: &jetstream::Context) -> (Vec<String>, Vec<Position>) {
    let stream = js.get_stream(STREAM).await.unwrap();
    let total = stream_count(js).await as usize;
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let (mut ids, mut positions) = (Vec::new(), Vec::new());
    while ids.len() < total {
        let m = tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await
            .expect("the stream delivers")
            .unwrap()
            .unwrap();
        let headers = m.headers.as_ref().expect("relayed messages carry headers");
        ids.push(headers.get("Nats-Msg-Id").unwrap().as_str().to_owned());
        positions.push(Position::parse(headers.get("Assent-Position").unwrap().as_str()).unwrap());
        // The payload is the item as the feed gives it: pseudonyms only.
        let item: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        assert!(item["subject"].as_str().unwrap().contains('.'), "{item}");
        if item["kind"] == "event" {
            assert!(item["payload"]["messageId"].is_string(), "{item}");
        }
    }
    (ids, positions)
}

/// Every committed item once, in feed order.
async fn check_exactly_once(js: &jetstream::Context, db: &Db) -> usize {
    let expected = feed_ids(db).await;
    wait_for(js, expected.len() as u64, "after the last restart").await;
    let (ids, positions) = stream_ids(js).await;
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "duplicates in the stream");
    let wanted: BTreeSet<&String> = expected.keys().collect();
    assert_eq!(unique, wanted, "the stream and the feed differ");
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "out of feed order"
    );
    ids.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_killed_mid_stream_publishes_every_item_once_sqlite() {
    let nats = start_nats().await;
    let js = jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("relay.db").display());
    let client = reqwest::Client::new();
    let mut state = 0x2545_F491_u64;
    let mut mid_stream = 0;
    for round in 0..4 {
        let replica = Replica::start(&url, &nats.url, &client).await;
        post_events(&client, &replica.base, &format!("r{round}"), 20_000).await;
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        tokio::time::sleep(Duration::from_millis(state % 60)).await;
        replica.kill();
        let db = Db::connect(&url).await.unwrap();
        let items = feed_ids(&db).await.len() as u64;
        if stream_count(&js).await < items {
            mid_stream += 1;
        }
    }
    assert!(mid_stream > 0, "no kill came while the relay was behind");
    let replica = Replica::start(&url, &nats.url, &client).await;
    let db = Db::connect(&url).await.unwrap();
    let n = check_exactly_once(&js, &db).await;
    replica.kill();
    assert!(n >= 80_000, "{n}");
    eprintln!(
        "relay: 4 kills ({mid_stream} with the relay behind), {n} items in the stream once each"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_relay_and_the_survivor_takes_over_postgres() {
    let url = common::fresh_postgres("assent_relay").await;
    let nats = start_nats().await;
    let js = jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    let client = reqwest::Client::new();
    let mut a = Replica::start(&url, &nats.url, &client).await;
    let mut b = Replica::start(&url, &nats.url, &client).await;
    let db = Db::connect(&url).await.unwrap();
    for round in 0..4 {
        // Both take load; then one is killed mid-stream, and the other alone must bring
        // the stream up to everything committed (so it relays: it had the lease, or it
        // took it over).
        let (tag_a, tag_b) = (format!("a{round}"), format!("b{round}"));
        tokio::join!(
            post_events(&client, &a.base, &tag_a, 5_000),
            post_events(&client, &b.base, &tag_b, 5_000),
        );
        let survivor_tag = format!("s{round}");
        let (killed, survivor) = if round % 2 == 0 { (a, b) } else { (b, a) };
        killed.kill();
        post_events(&client, &survivor.base, &survivor_tag, 2_000).await;
        let items = feed_ids(&db).await.len() as u64;
        wait_for(&js, items, &format!("round {round}, one replica left")).await;
        let restarted = Replica::start(&url, &nats.url, &client).await;
        (a, b) = if round % 2 == 0 {
            (restarted, survivor)
        } else {
            (survivor, restarted)
        };
    }
    // NATS itself goes away for a while: the relay fails, lets its lease go, and takes
    // it again once the server is back; nothing is lost or doubled.
    let (port, store) = nats.stop();
    post_events(&client, &a.base, "down", 3_000).await;
    let nats = start_nats_on(port, store).await;
    let js = jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    let n = check_exactly_once(&js, &db).await;
    a.kill();
    b.kill();
    assert_eq!(n, 4 * 12_000 + 3_000);
}
