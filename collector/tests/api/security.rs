//! What an attacker tried (issue: collector security), each as a test: two sites sharing
//! a subject id, forged dates, self-authorizing stamps, huge and distinct credentials,
//! slow clients, spoofed forwarded headers, NUL in identifiers, refused data kept in dead
//! letters, and consent floods.
use std::time::Duration;

use assent_collector::Config;
use serde_json::{json, Value};
use sqlx::Row;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::*;

const T0: &str = "2026-11-29T10:00:00.000Z";
const T1: &str = "2026-11-29T10:00:05.000Z";

fn record(id: &str, subject: &str, purposes: Value, method: &str, at: &str) -> Value {
    let mut r = consent(id, subject, purposes, at);
    r["method"] = method.into();
    r
}

async fn spawn_configured(b: Backend, change: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(b, dir.path()).await;
    let mut c = config(&url);
    change(&mut c);
    spawn_with(c, dir).await
}

/// The reproduction of the issue: site B's `accept_all` for a subject id must not open
/// site A's advertising to that subject. Sources that share one consent notice (a
/// consent group) do share their records.
pub async fn consent_is_kept_apart_per_site(b: Backend) {
    let app = spawn_app(b).await;
    let site_b = app.new_source("site-b").await;
    let ad = |id: &str, at: &str| json!({"batch": [track(id, "S", Some("advertising"), at)]});
    let reject = record("a-1", "S", json!({"advertising": false}), "reject_all", T0);
    assert_eq!(app.post("/v1/consent", &reject).await.0, 201);
    let (_, answer) = app.post("/v1/batch", &ad("a-ev1", T1)).await;
    assert_eq!(answer["rejected"][0]["code"], "no_consent", "{answer}");

    // Site B can neither read A's record nor override it.
    let r = app
        .client
        .get(format!("{}/v1/consent/S?source=default", app.url))
        .basic_auth(&site_b, Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let grant = record(
        "b-1",
        "S",
        json!({"advertising": true, "analytics": true}),
        "accept_all",
        T0,
    );
    assert_eq!(app.post_as(&site_b, "/v1/consent", &grant).await.0, 201);
    let (_, answer) = app.post("/v1/batch", &ad("a-ev2", T1)).await;
    assert_eq!(
        answer["rejected"][0]["code"], "no_consent",
        "site B's grant opened site A: {answer}"
    );
    // B's own events count B's grant.
    let (_, answer) = app.post_as(&site_b, "/v1/batch", &ad("b-ev1", T1)).await;
    assert_eq!(answer["accepted"], 1, "{answer}");
    // Compliance staff read each site's state apart.
    let a: Value = app.admin_json("/v1/consent/S?source=default").await;
    assert_eq!(a["method"], "reject_all");
    let b_state: Value = app.admin_json("/v1/consent/S?source=site-b").await;
    assert_eq!(b_state["method"], "accept_all");

    // One notice for two sites of one controller: the group shares records, at once.
    for name in ["default", "site-b"] {
        let settings = assent_collector::keys::sources::SourceSettings {
            consent_group: Some(Some("shop".into())),
            ..Default::default()
        };
        assent_collector::keys::sources::set(&app.state.keys, name, settings, "test")
            .await
            .unwrap();
    }
    let later = record(
        "b-2",
        "S",
        json!({"advertising": true}),
        "accept_all",
        "2026-11-29T10:00:01.000Z",
    );
    assert_eq!(app.post_as(&site_b, "/v1/consent", &later).await.0, 201);
    let (_, answer) = app.post("/v1/batch", &ad("a-ev3", T1)).await;
    assert_eq!(
        answer["accepted"], 1,
        "the group's latest record counts: {answer}"
    );
    // A third site outside the group still sees nothing.
    let site_c = app.new_source("site-c").await;
    let (_, answer) = app.post_as(&site_c, "/v1/batch", &ad("c-ev1", T1)).await;
    assert_eq!(answer["rejected"][0]["code"], "no_consent", "{answer}");
}

/// A grant dated in the future cannot outrank the subject's later, real withdrawal, and a
/// date pushed past the year 9999 by a forged sentAt is refused, not stored as 1970.
pub async fn forged_future_dates_are_refused(b: Backend) {
    let app = spawn_app(b).await;
    let before = app.counts().await;
    let future = record(
        "f-1",
        "F",
        json!({"analytics": true}),
        "accept_all",
        "2099-01-01T00:00:00Z",
    );
    let (status, body) = app.post("/v1/consent", &future).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("clock tolerance") && message.contains("refused"),
        "{message}"
    );
    assert_eq!(app.counts().await, before, "nothing stored");
    // A batch whose sentAt says 0001 makes every time in it far in the future.
    let body = json!({
        "batch": [track("f-ev1", "F", Some("necessary"), "9999-12-31T23:59:59Z")],
        "sentAt": "0001-01-01T00:00:00Z"
    });
    let (status, answer) = app.post("/v1/batch", &body).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["rejected"][0]["code"], "future_timestamp",
        "{answer}"
    );
    let body = json!({"batch": [], "consent": [future], "sentAt": T1});
    assert_eq!(app.post("/v1/batch", &body).await.0, 400);
    // The real choices: granted, then withdrawn; the withdrawal is what is in force.
    let grant = record("f-2", "F", json!({"analytics": true}), "accept_all", T0);
    let withdraw = record("f-3", "F", json!({"analytics": false}), "withdraw", T1);
    assert_eq!(app.post("/v1/consent", &grant).await.0, 201);
    assert_eq!(app.post("/v1/consent", &withdraw).await.0, 201);
    let state: Value = app.admin_json("/v1/consent/F?source=default").await;
    assert_eq!(state["method"], "withdraw", "{state}");
    let (_, answer) = app
        .post(
            "/v1/batch",
            &json!({"batch": [track("f-ev2", "F", None, "2026-11-29T10:00:06.000Z")]}),
        )
        .await;
    assert_eq!(answer["rejected"][0]["code"], "no_consent");
}

/// NUL in an identifier made PostgreSQL refuse the whole batch with 503 for ever; now the
/// event is refused alone (on both backends) and its neighbours are stored.
pub async fn control_characters_refuse_the_event_not_the_batch(b: Backend) {
    let app = spawn_app(b).await;
    let mut nul_name = track("n-2", "N", Some("necessary"), T1);
    nul_name["event"] = "Bought\u{0}".into();
    let body = json!({"batch": [
        track("n-1\u{0}", "N", Some("necessary"), T1),
        nul_name,
        track("n-3", "N", Some("necessary"), T1),
        track("n-4", "N\u{0}x", Some("necessary"), T1),
    ]});
    let (status, answer) = app.post("/v1/batch", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 1, "{answer}");
    let codes: Vec<&str> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["invalid_characters"; 3]);
    assert!(
        answer["rejected"][0]["messageId"].is_null(),
        "a NUL id is not echoed"
    );
    // Consent records: the request is refused whole, nothing stored.
    let before = app.counts().await;
    for (field, value) in [("policyVersion", "2026\u{0}"), ("consentId", "c\u{0}")] {
        let mut r = consent("c-n", "N", json!({"analytics": true}), T0);
        r[field] = value.into();
        let (status, body) = app.post("/v1/consent", &r).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("control character"));
    }
    assert_eq!(app.counts().await, before);
    // Should any other value ever be refused by PostgreSQL as data, the answer is final
    // (422), not a 503 that clients retry for ever.
    if b == Backend::Postgres {
        let err = sqlx::query("SELECT 1/0")
            .execute(&app.state.db.pool)
            .await
            .unwrap_err();
        let err = assent_collector::Error::from(err);
        assert_eq!(err.status().as_u16(), 422, "{err}");
    }
}

/// A refused event is exactly what the subject did not agree to give: its dead letter
/// keeps why and whose, never what. Access shows it, erasure removes it, retention ages
/// it out.
pub async fn dead_letters_keep_no_refused_data_and_are_subject_data(b: Backend) {
    let app = spawn_app(b).await;
    let mut e = track("d-1", "dana", Some("advertising"), T1);
    e["properties"] = json!({"email": "dana@example.com"});
    let (_, answer) = app.post("/v1/batch", &json!({"batch": [e]})).await;
    assert_eq!(answer["rejected"][0]["code"], "no_consent");
    let rows = sqlx::query("SELECT payload, message_id, code, subject FROM dead_letters")
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let payload: String = rows[0].try_get(0).unwrap();
    assert_eq!(payload, "", "the refused payload is not kept");
    assert_eq!(rows[0].try_get::<String, _>(2).unwrap(), "no_consent");
    let subject: String = rows[0].try_get(3).unwrap();
    assert_eq!(subject, app.state.pseudonymizer.pseudonym("dana").as_str());
    let access: Value = app.admin_json("/v1/subjects/dana").await;
    assert_eq!(access["refusedEvents"][0]["messageId"], "d-1", "{access}");
    assert!(!access.to_string().contains("dana@example.com"));
    let r = app.admin_delete("/v1/subjects/dana").await;
    let summary: Value = r.json().await.unwrap();
    assert_eq!(summary["deadLetters"], 1, "{summary}");
    assert_eq!(app.count("dead_letters").await, 0);
    // Retention: an old dead letter goes, a fresh one stays.
    app.post(
        "/v1/batch",
        &json!({"batch": [track("d-2", "eve", Some("advertising"), T1), track("d-3", "eve", Some("advertising"), T1)]}),
    )
    .await;
    sqlx::query("UPDATE dead_letters SET received_at_ms = 0 WHERE message_id = 'd-2'")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let swept = assent_collector::subjects::retention::sweep(&app.state.subjects)
        .await
        .unwrap();
    assert_eq!(swept.of("deadLetters"), 1);
    assert_eq!(app.count("dead_letters").await, 1);
}

/// One request may carry only so many consent records, and records are counted against
/// a budget per source and per client, beside the request limits.
pub async fn consent_floods_are_capped_and_rate_limited(b: Backend) {
    let app = spawn_configured(b, |c| {
        c.consent_records_per_second = 1;
        c.consent_records_burst = 150;
    })
    .await;
    let many = |n: usize, tag: &str| {
        let records: Vec<Value> = (0..n)
            .map(|i| {
                consent(
                    &format!("{tag}{i}"),
                    &format!("{tag}{i}"),
                    json!({"analytics": true}),
                    T0,
                )
            })
            .collect();
        json!({"records": records})
    };
    let before = app.counts().await;
    let (status, body) = app.post("/v1/consent", &many(101, "x")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 100"));
    let batch = json!({"batch": [], "consent": many(101, "y")["records"]});
    assert_eq!(app.post("/v1/batch", &batch).await.0, 400);
    assert_eq!(app.counts().await, before, "nothing stored");
    assert_eq!(app.post("/v1/consent", &many(100, "a")).await.0, 201);
    let r = app
        .client
        .post(format!("{}/v1/consent", app.url))
        .basic_auth(WRITE_KEY, Some(""))
        .json(&many(100, "b"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(app.count("consent_records").await, 100);
    // Events still flow.
    let (status, _) = app
        .post(
            "/v1/batch",
            &json!({"batch": [track("ok", "a0", None, T1)]}),
        )
        .await;
    assert_eq!(status, 200);
}

/// A key in a header is checked before the body is read: an unknown key with a body that
/// is not even gzip gets 401, not 400.
pub async fn keys_in_headers_are_checked_before_the_body(b: Backend) {
    let app = spawn_app(b).await;
    let (status, body, _) = app
        .raw(
            "/v1/batch",
            &[
                ("authorization", "Bearer wk_unknown_key_0000000000000000"),
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            b"not gzip at all".to_vec(),
        )
        .await;
    assert_eq!(status, 401, "{body}");
}

/// Distinct credentials of any size leave the limiters' maps small: a head over the cap
/// is refused (431) before any limiter sees it, a header too long to be a key is keyed by
/// the client's address, and the rest by a fixed-size digest.
pub async fn distinct_huge_credentials_leave_memory_bounded(b: Backend) {
    let app = spawn_configured(b, |c| {
        c.rate_limit_per_second = 100_000;
        c.rate_limit_burst = 100_000;
    })
    .await;
    let url = format!("{}/healthz", app.url);
    let entries = || app.limiters.entries();
    for i in 0..200 {
        let huge = format!("Bearer {i:06}{}", "x".repeat(256 * 1024));
        let r = app
            .client
            .get(&url)
            .header("authorization", huge)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 431);
    }
    assert_eq!(entries(), (0, 0), "refused before the limiters");
    for i in 0..200 {
        let long = format!("Bearer {i:06}{}", "x".repeat(4 * 1024));
        let r = app
            .client
            .get(&url)
            .header("authorization", long)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        entries(),
        (1, 1),
        "too long to be a key: keyed by the address"
    );
    for i in 0..200 {
        let r = app
            .client
            .get(&url)
            .bearer_auth(format!("wk_{i:06}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(entries(), (1, 201), "one fixed-size entry per credential");
}

async fn read_all(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut buf = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut buf)).await {
        Ok(_) => Some(String::from_utf8_lossy(&buf).into_owned()),
        Err(_) => None,
    }
}

/// Half-sent headers, slow bodies and idle sockets no longer hold the collector: each is
/// cut off after its timeout, and past the connection limit clients wait their turn.
pub async fn slow_clients_are_cut_off_and_connections_bounded(b: Backend) {
    let app = spawn_configured(b, |c| {
        c.header_timeout_secs = 1;
        c.body_timeout_secs = 1;
        c.max_connections = 3;
    })
    .await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    // Half-sent headers: closed after the header timeout (hyper answers 408 or closes).
    let mut half = TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let answer = read_all(&mut half, Duration::from_secs(5)).await;
    assert!(
        answer.is_some(),
        "a half-sent head was still open after 5 s"
    );
    // A body that stops coming: 408 in our JSON shape.
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WRITE_KEY}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"batch\":["
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let answer = read_all(&mut slow, Duration::from_secs(5)).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"timeout\""), "{answer}");
    // Idle keep-alive connections are closed too.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    assert!(read_all(&mut idle, Duration::from_secs(5)).await.is_some());
    // Three connections held (the limit): a fourth client waits until one is closed.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let url = format!("{}/healthz", app.url);
    assert!(quick.get(&url).send().await.is_err(), "over the limit");
    drop(held);
    let r = app.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200, "served once the held connections are gone");
}

async fn stored_prefix(app: &TestApp, message_id: &str) -> String {
    sqlx::query("SELECT ip_prefix FROM events WHERE message_id = $1")
        .bind(message_id)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

async fn post_forwarded(app: &TestApp, xff: &str, id: &str) -> u16 {
    app.client
        .post(format!("{}/v1/batch", app.url))
        .basic_auth(WRITE_KEY, Some(""))
        .header("x-forwarded-for", xff)
        .json(&json!({"batch": [track(id, "p", Some("necessary"), T1)]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `/healthz` as a visitor behind `xff` (no key: both limits key on the address).
async fn health_forwarded(app: &TestApp, xff: &str) -> u16 {
    app.client
        .get(format!("{}/healthz", app.url))
        .header("x-forwarded-for", xff)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Behind a trusted proxy the client is the right-most forwarded hop that is not a proxy;
/// from any other peer the header is ignored.
pub async fn forwarded_addresses_are_believed_only_from_trusted_proxies(b: Backend) {
    // No trusted proxies: a client cannot choose its address.
    let limited = |c: &mut Config| {
        c.rate_limit_per_second = 1;
        c.rate_limit_burst = 3;
    };
    let plain = spawn_configured(b, limited).await;
    assert_eq!(post_forwarded(&plain, "203.0.113.7", "s-1").await, 200);
    assert_eq!(stored_prefix(&plain, "s-1").await, "127.0.0.0/24");
    // Spoofing new addresses does not buy a new budget either.
    let mut statuses = Vec::new();
    for i in 0..4 {
        statuses.push(health_forwarded(&plain, &format!("198.51.100.{i}")).await);
    }
    assert!(statuses.contains(&429), "{statuses:?}");

    // Loopback is the balancer: its hop is believed, a client's own prefix is not.
    let proxied = spawn_configured(b, |c| {
        limited(c);
        c.trusted_proxies = "127.0.0.0/8, 10.0.0.0/8".into();
    })
    .await;
    assert_eq!(
        post_forwarded(&proxied, "6.6.6.6, 203.0.113.7, 10.1.2.3", "t-1").await,
        200
    );
    assert_eq!(stored_prefix(&proxied, "t-1").await, "203.0.113.0/24");
    // Each visitor behind the balancer has a budget of its own.
    for i in 0..6 {
        let status = health_forwarded(&proxied, &format!("198.51.100.{i}")).await;
        assert_eq!(status, 200, "visitor {i}");
    }
    // IPv6 visitors are limited by their /64: a new interface id is not a new budget.
    let mut statuses = Vec::new();
    for i in 0..5 {
        statuses.push(health_forwarded(&proxied, &format!("2001:db8:5:6::{i:x}")).await);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}

/// Keys are stored as HMAC digests under a server secret; a key stored by an earlier
/// version as a bare SHA-256 still works and is rewritten on first use; an operator's
/// chosen key must be long and random enough.
pub async fn keys_are_digested_with_a_server_secret(b: Backend) {
    let app = spawn_app(b).await;
    let stored: Vec<String> = sqlx::query_scalar("SELECT key_hash FROM api_keys ORDER BY id")
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap();
    let bare = assent_collector::pseudonym::sha256_hex(WRITE_KEY.as_bytes());
    assert!(
        stored.iter().all(|h| h.starts_with("h1:") && *h != bare),
        "{stored:?}"
    );
    // An earlier version's row: the bare SHA-256 of the key.
    sqlx::query("UPDATE api_keys SET key_hash = $1 WHERE role = 'write'")
        .bind(&bare)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    app.state.keys.forget();
    let ok = json!({"batch": [track("h-1", "h", Some("necessary"), T1)]});
    assert_eq!(app.post("/v1/batch", &ok).await.0, 200);
    let now: String = sqlx::query_scalar("SELECT key_hash FROM api_keys WHERE role = 'write'")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(now, app.state.keys.digest(WRITE_KEY));
    // A guessable chosen key stops the first start.
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(b, dir.path()).await;
    let weak = Config {
        bootstrap_write_key: Some(assent_collector::config::Secret::new(
            "wk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        )),
        ..config(&url)
    };
    let err = assent_collector::Application::build(weak)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("entropy"), "{err}");
}

/// A subject with many events is read a page at a time (bounded memory, each page
/// audited) and erased a batch at a time; verification of the chain is shared and reused
/// for a while instead of walking the whole chain on every call.
pub async fn access_pages_erasure_batches_and_verification_is_bounded(b: Backend) {
    let app = spawn_app(b).await;
    for chunk in 0..25 {
        let batch: Vec<Value> = (0..100)
            .map(|i| {
                let n = chunk * 100 + i;
                let at = format!(
                    "2026-11-29T10:{:02}:{:02}.{:03}Z",
                    n / 600,
                    (n / 10) % 60,
                    n % 10
                );
                track(&format!("p{n}"), "pager", Some("necessary"), &at)
            })
            .collect();
        let (status, answer) = app.post("/v1/batch", &json!({"batch": batch})).await;
        assert_eq!(
            (status, answer["accepted"].as_u64()),
            (200, Some(100)),
            "{answer}"
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/subjects/pager?cursor={c}"),
            None => "/v1/subjects/pager".into(),
        };
        let page: Value = app.admin_json(&path).await;
        pages += 1;
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 1000);
        assert_eq!(
            page.get("consent").is_some(),
            cursor.is_none(),
            "consent on the first page only"
        );
        for e in events {
            assert!(
                seen.insert(e["messageId"].as_str().unwrap().to_owned()),
                "repeated {e}"
            );
        }
        match page["next"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (2500, 3));
    let r = app.admin_get("/v1/subjects/pager?cursor=nonsense").await;
    assert_eq!(r.status(), 400);
    let summary: Value = app
        .admin_delete("/v1/subjects/pager")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(summary["events"], 2500, "{summary}");
    assert_eq!(app.count("events").await, 0);
    // Verification: the second call within the reuse period is the same walk.
    let first: Value = app.admin_json("/v1/audit/verify").await;
    let second: Value = app.admin_json("/v1/audit/verify").await;
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(first["verifiedAt"], second["verifiedAt"]);
}

/// A source's back end reads its own consent with a server key (secret, never from a
/// browser); it cannot read another source's, and the public write key reads nothing.
pub async fn server_keys_read_their_own_scope_only(b: Backend) {
    let app = spawn_app(b).await;
    let server = assent_collector::keys::create(
        &app.state.keys,
        assent_collector::keys::Role::Server,
        Some("default"),
        None,
        "back end",
        "test",
    )
    .await
    .unwrap()
    .raw;
    assert!(server.starts_with("sk_"));
    let site_b = app.new_source("site-b").await;
    let grant = record("s-1", "V", json!({"analytics": true}), "accept_all", T0);
    assert_eq!(app.post("/v1/consent", &grant).await.0, 201);
    let b_grant = record("s-2", "V", json!({"advertising": true}), "accept_all", T0);
    assert_eq!(app.post_as(&site_b, "/v1/consent", &b_grant).await.0, 201);
    let get = |path: &str, key: &str, origin: Option<&str>| {
        let mut r = app
            .client
            .get(format!("{}{path}", app.url))
            .bearer_auth(key);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    let r = get("/v1/consent/V", &server, None).await.unwrap();
    assert_eq!(r.status(), 200);
    let state: Value = r.json().await.unwrap();
    assert_eq!(state["purposes"]["analytics"], true, "{state}");
    assert!(
        state["purposes"].get("advertising").is_none(),
        "site B's record: {state}"
    );
    let r = get("/v1/consent/V?source=site-b", &server, None)
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "another source's scope");
    let r = get("/v1/consent/V", &server, Some("https://shop.example"))
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a server key from a browser has leaked");
    // A write key learns nothing, not even which sources exist.
    for path in [
        "/v1/consent/V?source=default",
        "/v1/consent/V?source=nosuch",
    ] {
        assert_eq!(get(path, WRITE_KEY, None).await.unwrap().status(), 401);
    }
    // The server key also sends events for its source (Segment's server-side libraries).
    let (status, answer) = app
        .post_as(
            &server,
            "/v1/batch",
            &json!({"batch": [track("s-ev", "V", None, T1)]}),
        )
        .await;
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    // And it is no compliance token.
    assert_eq!(
        get("/v1/audit/verify", &server, None)
            .await
            .unwrap()
            .status(),
        401
    );
}
