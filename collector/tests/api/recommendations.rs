//! Recommendations over the real server: trained on the consented profiles of a
//! source, served from the subject's current history, never personalized without
//! `personalization`, cached by what the answer depends on, filtered by the catalogue.
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

fn ago(minutes: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assent_protocol::Timestamp::from_unix_millis(now - minutes * 60_000).to_string()
}

fn viewed(id: &str, subject: &str, item: &str, minutes: i64) -> Value {
    json!({"messageId": id, "type": "track", "event": "Product Viewed", "anonymousId": subject,
           "timestamp": ago(minutes), "properties": {"product_id": item}})
}

/// Waits (up to 10 s) until `subject`'s profile at the default source has `events`.
async fn profile_has(app: &TestApp, subject: &str, events: u64) {
    let started = Instant::now();
    loop {
        let p = app
            .admin_json(&format!("/v1/profiles/{subject}?source=default"))
            .await;
        if p["events"].as_u64() == Some(events) || started.elapsed() > Duration::from_secs(10) {
            assert_eq!(p["events"].as_u64(), Some(events), "{p}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get(
    app: &TestApp,
    path: &str,
    etag: Option<&str>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut r = app
        .client
        .get(format!("{}{path}", app.url))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(t) = etag {
        r = r.header("if-none-match", t);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, r.json().await.unwrap_or(Value::Null), headers)
}

fn items(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item"].as_str().unwrap().to_owned())
        .collect()
}

/// Twenty readers in two groups that never meet (items a1-a5, b1-b5), each with four of
/// their group's five items; Nina views group A's items without personalization.
async fn readers(app: &TestApp) {
    let yes = json!({"analytics": true, "personalization": true});
    let no = json!({"analytics": true, "personalization": false});
    let mut consent_list = vec![
        consent("c-nina", "nina", no, &ago(120)),
        consent("c-gia", "gia", yes.clone(), &ago(120)),
    ];
    let mut batch = Vec::new();
    for u in 0..20 {
        let subject = format!("u{u}");
        consent_list.push(consent(&format!("c-{u}"), &subject, yes.clone(), &ago(120)));
        let group = if u % 2 == 0 { "a" } else { "b" };
        for i in 1..=5 {
            if i != u % 5 + 1 {
                batch.push(viewed(
                    &format!("v-{u}-{i}"),
                    &subject,
                    &format!("{group}{i}"),
                    60 - i,
                ));
            }
        }
    }
    for i in 1..=3 {
        batch.push(viewed(&format!("v-nina-{i}"), "nina", &format!("a{i}"), 30));
    }
    let (status, answer) = app
        .post(
            "/v1/batch",
            &json!({"consent": consent_list, "batch": batch}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    profile_has(app, "u19", 4).await;
}

pub async fn recommendations_follow_consent_history_and_the_catalogue(b: Backend) {
    let app = spawn_app(b).await;
    readers(&app).await;
    // No recommender yet: 404.
    let (status, _, _) = get(&app, "/v1/recommendations/u0?source=default", None).await;
    assert_eq!(status, 404);

    let knn = json!({"model": {"kind": "item_knn", "neighbours": 10, "weighting": {"kind": "cosine"}, "shrink": 0.0}});
    let (status, v) = app
        .admin_send(
            "POST",
            "/v1/recommenders/default/models?source=default",
            &knn,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["version"].as_i64(), v["status"].as_str()),
        (Some(1), Some("active")),
        "{v}"
    );
    assert_eq!(
        v["report"]["users"], 20,
        "Nina's events are not in any profile: {v}"
    );
    assert_eq!(v["report"]["items"], 10);
    assert!(
        v["report"]["heldOut"]["ndcg"].as_f64().unwrap()
            > v["report"]["popularity"]["ndcg"].as_f64().unwrap(),
        "{v}"
    );

    // u0 (group A, without a1): a1 first, nothing of group B, nothing u0 has.
    let (status, r, h) = get(
        &app,
        "/v1/recommendations/u0?source=default&k=3&slot=home",
        None,
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (r["reason"].as_str(), r["personalized"].as_bool()),
        (Some("personalized"), Some(true))
    );
    assert_eq!(items(&r)[0], "a1", "{r}");
    assert!(
        items(&r).iter().all(|i| i == "a1" || i.starts_with('b')),
        "{r}"
    );
    assert_eq!(r["model"]["version"], 1);
    assert_eq!(r["slot"], "home");
    assert_eq!(h["x-assent-cache"], "miss");
    // The same request again: from the cache, the same ETag; revalidation answers 304.
    let etag = h["etag"].to_str().unwrap().to_owned();
    let (_, again, h) = get(
        &app,
        "/v1/recommendations/u0?source=default&k=3&slot=home",
        None,
    )
    .await;
    assert_eq!(
        (&again["items"], &again["recId"]),
        (&r["items"], &r["recId"])
    );
    assert_eq!(
        (r["cached"].as_bool(), again["cached"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(
        (
            h["x-assent-cache"].to_str().unwrap(),
            h["etag"].to_str().unwrap()
        ),
        ("hit", etag.as_str())
    );
    let (status, _, _) = get(
        &app,
        "/v1/recommendations/u0?source=default&k=3&slot=home",
        Some(&etag),
    )
    .await;
    assert_eq!(status, 304);

    // The feedback loop: an impression and a click carrying the list's recId count for
    // its version, from the feed.
    let rec_id = r["recId"].as_str().unwrap().to_owned();
    assert!(rec_id.starts_with("default.1."), "{rec_id}");
    let shown = json!({"messageId": "f-1", "type": "track", "event": "Recommendation Viewed",
        "anonymousId": "u0", "timestamp": ago(0), "properties": {"rec_id": rec_id, "slot": "home"}});
    let clicked = json!({"messageId": "f-2", "type": "track", "event": "Recommendation Clicked",
        "anonymousId": "u0", "timestamp": ago(0), "properties": {"rec_id": rec_id, "item_id": "a1"}});
    let (status, _) = app
        .post("/v1/batch", &json!({"batch": [shown, clicked]}))
        .await;
    assert_eq!(status, 200);
    let started = Instant::now();
    let feedback = loop {
        let f = app
            .admin_json("/v1/recommenders/default/feedback?source=default")
            .await;
        if f["versions"][0]["clicks"] == 1 || started.elapsed() > Duration::from_secs(10) {
            break f;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(feedback["versions"][0]["version"], 1, "{feedback}");
    assert_eq!(feedback["versions"][0]["impressions"], 1, "{feedback}");
    assert_eq!(feedback["versions"][0]["ctr"], 1.0, "{feedback}");

    // Nina did not grant personalization: the popular items, as for someone unknown.
    let (_, nina, h) = get(&app, "/v1/recommendations/nina?source=default&k=4", None).await;
    assert_eq!(
        (nina["reason"].as_str(), nina["personalized"].as_bool()),
        (Some("no_consent"), Some(false)),
        "{nina}"
    );
    assert_eq!(
        h["cache-control"], "private, no-cache",
        "revalidated: her consent may arrive at any moment"
    );
    let (_, stranger, _) = get(&app, "/v1/recommendations/zed?source=default&k=4", None).await;
    assert_eq!(stranger["reason"], "no_consent", "no record: not granted");
    assert_eq!(
        items(&nina),
        items(&stranger),
        "no history-based ranking without consent"
    );
    // Gia granted it but has done nothing yet: the popular items too.
    let (_, gia, _) = get(&app, "/v1/recommendations/gia?source=default&k=4", None).await;
    assert_eq!(
        (gia["reason"].as_str(), gia["personalized"].as_bool()),
        (Some("new_user"), Some(false)),
        "{gia}"
    );
    assert_eq!(items(&gia), items(&nina));

    // u0 views a1: the history changed, so the answer is computed again without it.
    let (status, _) = app
        .post(
            "/v1/batch",
            &json!({"batch": [viewed("v-0-new", "u0", "a1", 1)]}),
        )
        .await;
    assert_eq!(status, 200);
    profile_has(&app, "u0", 7).await; // 4 views, the impression and click, and this one
    let (_, r, h) = get(
        &app,
        "/v1/recommendations/u0?source=default&k=3&slot=home",
        None,
    )
    .await;
    assert_eq!(h["x-assent-cache"], "miss");
    assert!(!items(&r).contains(&"a1".to_owned()), "{r}");
    // Unless asked to keep what the subject has.
    let (_, keep, _) = get(
        &app,
        "/v1/recommendations/u0?source=default&k=5&includeConsumed=true",
        None,
    )
    .await;
    assert!(items(&keep).contains(&"a1".to_owned()), "{keep}");

    // The catalogue: b1 out of stock is never shown; c9 only for Germany.
    let (status, item) = app
        .admin_send(
            "PUT",
            "/v1/items/b1?source=default",
            &json!({"available": false, "tags": ["shoes"]}),
        )
        .await;
    assert_eq!(status, 200, "{item}");
    let (_, r, _) = get(&app, "/v1/recommendations/u1?source=default&k=10", None).await;
    assert!(!items(&r).contains(&"b1".to_owned()), "{r}");
    assert_eq!(items(&r)[0], "b2", "u1 lacks b2: {r}");
    let (_, r, _) = get(
        &app,
        "/v1/recommendations/u0?source=default&k=10&exclude=b2,b3",
        None,
    )
    .await;
    assert!(!items(&r).iter().any(|i| i == "b2" || i == "b3"), "{r}");
    let (status, _) = app
        .admin_send(
            "PUT",
            "/v1/items/a2?source=default",
            &json!({"countries": ["DE"]}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, fr, _) = get(
        &app,
        "/v1/recommendations/u6?source=default&k=10&country=FR",
        None,
    )
    .await;
    assert!(!items(&fr).contains(&"a2".to_owned()), "{fr}");
    let (_, de, _) = get(
        &app,
        "/v1/recommendations/u6?source=default&k=10&country=DE",
        None,
    )
    .await;
    assert_eq!(items(&de)[0], "a2", "u6 lacks a2: {de}");

    // Similar items: a1's neighbours are group A's.
    let (status, s, _) = get(&app, "/v1/items/a1/similar?source=default&k=3", None).await;
    assert_eq!(status, 200, "{s}");
    assert!(
        items(&s).iter().all(|i| i.starts_with('a') && i != "a1"),
        "{s}"
    );
    let (status, _, _) = get(&app, "/v1/items/zz/similar?source=default", None).await;
    assert_eq!(status, 404);

    // Bad input: a clear 4xx, nothing stored.
    let (status, _, _) = get(&app, "/v1/recommendations/u0?source=default&k=0", None).await;
    assert_eq!(status, 400);
    let (status, _, _) = get(
        &app,
        "/v1/recommendations/u0?source=default&model=other",
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, e) = app
        .admin_send(
            "POST",
            "/v1/recommenders/default/models?source=default",
            &json!({"model": {"kind": "svd"}}),
        )
        .await;
    assert_eq!(status, 400, "{e}");
    let (status, e) = app
        .admin_send("POST", "/v1/recommenders/default/models?source=default", &json!({"model": {"kind": "als", "factors": 0, "regularization": 0.1, "alpha": 1.0, "iterations": 5, "cg_steps": 3, "seed": 0}}))
        .await;
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("factors"),
        "{e}"
    );
    let (status, _) = app
        .admin_send(
            "PUT",
            "/v1/items/a3?source=default",
            &json!({"colour": "red"}),
        )
        .await;
    assert_eq!(status, 400);

    // Versions: ALS as version 2 (active or candidate by its held-out NDCG); promote and
    // roll back.
    let als = json!({"model": {"kind": "als", "factors": 4, "regularization": 0.1, "alpha": 10.0, "iterations": 10, "cg_steps": 3, "seed": 1}});
    let (status, v2) = app
        .admin_send(
            "POST",
            "/v1/recommenders/default/models?source=default",
            &als,
        )
        .await;
    assert_eq!(status, 200, "{v2}");
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["report"]["activeOnSameSplit"]["version"], 1, "{v2}");
    let (status, p) = app
        .admin_send(
            "POST",
            "/v1/recommenders/default/promote?source=default",
            &json!({"version": 2}),
        )
        .await;
    if v2["status"] == "active" {
        assert_eq!(status, 400, "already active: {p}");
    } else {
        assert_eq!(status, 200, "{p}");
    }
    let (_, r, _) = get(&app, "/v1/recommendations/u0?source=default&k=3", None).await;
    assert_eq!(
        (r["model"]["version"].as_i64(), r["model"]["kind"].as_str()),
        (Some(2), Some("als")),
        "{r}"
    );
    let (status, back) = app
        .admin_send(
            "POST",
            "/v1/recommenders/default/rollback?source=default",
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{back}");
    assert_eq!(back["version"], 1);
    let (_, r, _) = get(&app, "/v1/recommendations/u0?source=default&k=3", None).await;
    assert_eq!(r["model"]["version"], 1, "{r}");
    // A live comparison: every subject with history on version 2, then about half.
    let (status, sp) = app
        .admin_send(
            "PUT",
            "/v1/recommenders/default/split?source=default",
            &json!({"version": 2, "share": 1.0}),
        )
        .await;
    assert_eq!(status, 200, "{sp}");
    let (_, r, _) = get(&app, "/v1/recommendations/u0?source=default&k=3", None).await;
    assert_eq!(r["model"]["version"], 2, "{r}");
    assert!(
        r["recId"].as_str().unwrap().starts_with("default.2."),
        "{r}"
    );
    let (_, nina, _) = get(&app, "/v1/recommendations/nina?source=default&k=3", None).await;
    assert_eq!(
        nina["model"]["version"], 1,
        "no consent, no comparison: {nina}"
    );
    app.admin_send(
        "PUT",
        "/v1/recommenders/default/split?source=default",
        &json!({"version": 2, "share": 0.5}),
    )
    .await;
    let mut on_two = 0;
    for u in 0..20 {
        let path = format!("/v1/recommendations/u{u}?source=default&k=3");
        let (_, first, _) = get(&app, &path, None).await;
        let (_, again, _) = get(&app, &path, None).await;
        assert_eq!(
            first["model"]["version"], again["model"]["version"],
            "each subject stays on one side"
        );
        on_two += (first["model"]["version"] == 2) as usize;
    }
    assert!(
        (3..=17).contains(&on_two),
        "about half on version 2: {on_two}"
    );
    let (status, _) = app
        .admin_send(
            "PUT",
            "/v1/recommenders/default/split?source=default",
            &json!({"version": 9, "share": 0.5}),
        )
        .await;
    assert_eq!(status, 400, "no version 9");
    let (status, _) = app
        .admin_send(
            "PUT",
            "/v1/recommenders/default/split?source=default",
            &json!({"version": 2, "share": 1.5}),
        )
        .await;
    assert_eq!(status, 400);
    app.admin_send(
        "PUT",
        "/v1/recommenders/default/split?source=default",
        &json!({"version": 2, "share": 0}),
    )
    .await;
    let (_, r, _) = get(&app, "/v1/recommendations/u0?source=default&k=3", None).await;
    assert_eq!(r["model"]["version"], 1, "the comparison ended: {r}");

    let list = app.admin_json("/v1/recommenders").await;
    assert_eq!(list["recommenders"].as_array().unwrap().len(), 2, "{list}");
    // Training and promotion are audited.
    let kinds = app.count("audit_log").await;
    assert!(kinds > 0);
}

/// A real `redis-server` (Debian's package) on a free port, without persistence;
/// stopped when dropped.
struct RedisServer {
    child: std::process::Child,
    url: String,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_redis() -> RedisServer {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redis-server runs (Debian package redis-server; `make test` installs it)");
    let url = format!("redis://127.0.0.1:{port}/");
    let client = redis::Client::open(url.as_str()).unwrap();
    for _ in 0..100 {
        if let Ok(mut c) = client.get_multiplexed_async_connection().await {
            let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut c).await;
            if pong.is_ok() {
                return RedisServer { child, url };
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("redis-server did not start");
}

/// With `ASSENT_REDIS_URL`, answers are kept in Redis: a second replica serves what the
/// first computed, and a change to the subject's history is a new key.
pub async fn replicas_share_recommendations_through_redis(b: Backend) {
    let redis = start_redis().await;
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(b, dir.path()).await;
    let with_redis = || {
        let mut c = config(&url);
        c.redis_url = Some(assent_collector::config::Secret::new(redis.url.clone()));
        c
    };
    let a = spawn_with(with_redis(), tempfile::tempdir().unwrap()).await;
    let replica_b = spawn_with(with_redis(), dir).await;
    readers(&a).await;
    let knn = json!({"model": {"kind": "item_knn", "neighbours": 10, "weighting": {"kind": "cosine"}, "shrink": 0.0}});
    let (status, v) = a
        .admin_send(
            "POST",
            "/v1/recommenders/default/models?source=default",
            &knn,
        )
        .await;
    assert_eq!(status, 200, "{v}");

    let (_, first, h) = get(&a, "/v1/recommendations/u2?source=default&k=3", None).await;
    assert_eq!(h["x-assent-cache"], "miss");
    let (_, second, h) = get(
        &replica_b,
        "/v1/recommendations/u2?source=default&k=3",
        None,
    )
    .await;
    assert_eq!(
        h["x-assent-cache"], "hit",
        "the other replica's answer, from Redis"
    );
    assert_eq!(first["items"], second["items"]);
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("assent:rec:*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&keys[0])
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 300, "kept for a time: {ttl}");
    let stored: String = redis::cmd("GET")
        .arg(&keys[0])
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(!stored.contains("u2"), "no raw id in the cache: {stored}");

    // u2 views another item: a new key, computed again, without it.
    let (status, _) = a
        .post(
            "/v1/batch",
            &json!({"batch": [viewed("v-2-new", "u2", "a3", 1)]}),
        )
        .await;
    assert_eq!(status, 200);
    profile_has(&a, "u2", 5).await;
    let (_, third, h) = get(
        &replica_b,
        "/v1/recommendations/u2?source=default&k=3",
        None,
    )
    .await;
    assert_eq!(h["x-assent-cache"], "miss");
    assert!(!items(&third).contains(&"a3".to_owned()), "{third}");
    drop(redis);
    // Redis gone: answers are still served, computed each time.
    let (status, r, h) = get(&a, "/v1/recommendations/u4?source=default&k=3", None).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(h["x-assent-cache"], "miss");
}

/// `/metrics` shows each recommender's drift from its training window once enough
/// requests were served, whether retraining is due, and the cache's hits and misses.
pub async fn drift_and_the_cache_show_in_metrics(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(b, dir.path()).await;
    let mut c = config(&url);
    c.recommendation_drift_min_samples = 5;
    // Any divergence at all counts as due here, to see the flag.
    c.recommendation_drift_threshold = 0.0;
    let app = spawn_with(c, dir).await;
    readers(&app).await;
    let knn = json!({"model": {"kind": "item_knn", "neighbours": 10, "weighting": {"kind": "cosine"}, "shrink": 0.0}});
    let (status, v) = app
        .admin_send(
            "POST",
            "/v1/recommenders/default/models?source=default",
            &knn,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    for u in 0..6 {
        let (status, _, _) = get(
            &app,
            &format!("/v1/recommendations/u{u}?source=default&k=3"),
            None,
        )
        .await;
        assert_eq!(status, 200);
    }
    get(&app, "/v1/recommendations/u0?source=default&k=3", None).await; // a hit
    let text = app.admin_get("/metrics").await.text().await.unwrap();
    // Recommenders are named SOURCE/NAME, the source by its id.
    let line = |prefix: &str, part: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix) && l.contains(part))
            .unwrap_or_else(|| panic!("no {prefix}…{part} in\n{text}"))
            .to_owned()
    };
    let drift = "assent_recommendation_drift{recommender=\"";
    let history = line(drift, "/default\",signal=\"history_length\"}");
    let value: f64 = history.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(value.is_finite() && value >= 0.0, "{history}");
    line(drift, "/default\",signal=\"top_score\"}");
    assert!(line("assent_recommendation_retrain_due{", "/default\"}").ends_with(" 1"));
    assert!(
        line("assent_recommendation_cache_lookups{outcome=\"hit\"}", "").ends_with(" 1"),
        "{text}"
    );
    assert!(
        line("assent_recommendation_cache_lookups{outcome=\"miss\"}", "").ends_with(" 6"),
        "{text}"
    );
}

/// A content-based recommender ranks by the tags of what the subject interacted with,
/// and can recommend an item nobody has seen yet; without tags it is refused.
pub async fn content_recommenders_use_item_tags(b: Backend) {
    let app = spawn_app(b).await;
    readers(&app).await;
    let spec = json!({"model": {"kind": "content"}});
    let (status, e) = app
        .admin_send(
            "POST",
            "/v1/recommenders/articles/models?source=default",
            &spec,
        )
        .await;
    assert_eq!(status, 400, "no tags yet: {e}");
    for (items, tag) in [
        (["a1", "a2", "a3", "a4", "a5", "a-new"], "fantasy"),
        (["b1", "b2", "b3", "b4", "b5", "b-new"], "history"),
    ] {
        for item in items {
            let (status, v) = app
                .admin_send(
                    "PUT",
                    &format!("/v1/items/{item}?source=default"),
                    &json!({"tags": [tag, "books"]}),
                )
                .await;
            assert_eq!(status, 200, "{v}");
        }
    }
    let (status, v) = app
        .admin_send(
            "POST",
            "/v1/recommenders/articles/models?source=default",
            &spec,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["report"]["items"], 12,
        "the catalogue's unseen items too: {v}"
    );
    let (_, r, _) = get(
        &app,
        "/v1/recommendations/u0?source=default&k=2&model=articles",
        None,
    )
    .await;
    assert_eq!(r["model"]["kind"], "content", "{r}");
    let got = items(&r);
    assert!(
        got.contains(&"a-new".to_owned()),
        "an item nobody has seen, by its tags: {r}"
    );
    assert!(got.iter().all(|i| i.starts_with('a')), "{r}");
    let (_, s, _) = get(
        &app,
        "/v1/items/b-new/similar?source=default&k=3&model=articles",
        None,
    )
    .await;
    assert!(items(&s).iter().all(|i| i.starts_with('b')), "{s}");

    // A hybrid blends the neighbours of what u0 read with the tags of it: a1 (both say
    // so) first, then the unseen a-new (tags only); a bad part is refused, naming it.
    let hybrid = json!({"model": {"kind": "hybrid", "parts": [
        {"model": {"kind": "item_knn", "neighbours": 10}, "weight": 1.0},
        {"model": {"kind": "content"}, "weight": 0.5}]}});
    let (status, v) = app
        .admin_send(
            "POST",
            "/v1/recommenders/mixed/models?source=default",
            &hybrid,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (_, r, _) = get(
        &app,
        "/v1/recommendations/u0?source=default&k=2&model=mixed",
        None,
    )
    .await;
    assert_eq!(r["model"]["kind"], "hybrid", "{r}");
    assert_eq!(items(&r), ["a1", "a-new"], "{r}");
    let (_, s, _) = get(
        &app,
        "/v1/items/a1/similar?source=default&k=3&model=mixed",
        None,
    )
    .await;
    assert!(items(&s).iter().all(|i| i.starts_with('a')), "{s}");
    let bad = json!({"model": {"kind": "hybrid", "parts": [
        {"model": {"kind": "item_knn"}, "weight": 1.0},
        {"model": {"kind": "als", "factors": 0}, "weight": 1.0}]}});
    let (status, e) = app
        .admin_send("POST", "/v1/recommenders/mixed/models?source=default", &bad)
        .await;
    assert_eq!(status, 400, "{e}");
    assert!(e.to_string().contains("part 1"), "{e}");
    assert_eq!(
        app.admin_json("/v1/recommenders").await["recommenders"]
            .as_array()
            .map(|a| a
                .iter()
                .filter(|r| r["name"].as_str().unwrap_or("").contains("mixed"))
                .count()),
        Some(1),
        "nothing stored for the refused spec"
    );
}

/// New users get the popular items of the smallest of their segments, else of the
/// request's country, else of its device type, else overall; visitors without
/// `personalization` always the overall ones.
pub async fn new_users_get_what_is_popular_in_their_segment_or_context(b: Backend) {
    let app = spawn_app(b).await;
    let yes = json!({"analytics": true, "personalization": true});
    let no = json!({"analytics": true, "personalization": false});
    let (status, v) = app
        .admin_send(
            "PUT",
            "/v1/audiences/newsletter",
            &json!({"rule": {"performed": {"event": "Newsletter Joined", "within_days": 30}}}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let mut consents = vec![
        consent("c-nora", "nora", yes.clone(), &ago(120)),
        consent("c-fred", "fred", yes.clone(), &ago(120)),
        consent("c-nils", "nils", no, &ago(120)),
    ];
    let mut batch = Vec::new();
    let mut event = |id: String, subject: &str, name: &str, item: Option<&str>, ctx: Value| {
        let mut e = json!({"messageId": id, "type": "track", "event": name,
            "anonymousId": subject, "timestamp": ago(30), "context": ctx});
        if let Some(item) = item {
            e["properties"] = json!({"product_id": item});
        }
        batch.push(e);
    };
    let mobile_fr = json!({"device": {"type": "mobile"}, "location": {"country": "FR"}});
    let desktop_de = json!({"device": {"type": "desktop"}, "location": {"country": "DE"}});
    // 25 on mobile in France (m1, m2), 30 on desktops in Germany (d1, d2), and 20 more
    // there who joined the newsletter and read n1: d1 and d2 are the most popular overall.
    for (group, users, items, ctx) in [
        ("m", 25, &["m1", "m2"][..], &mobile_fr),
        ("d", 30, &["d1", "d2"][..], &desktop_de),
        ("n", 20, &["n1"][..], &desktop_de),
    ] {
        for u in 0..users {
            let subject = format!("{group}{u}");
            consents.push(consent(
                &format!("c-{subject}"),
                &subject,
                yes.clone(),
                &ago(120),
            ));
            for item in items {
                event(
                    format!("v-{subject}-{item}"),
                    &subject,
                    "Product Viewed",
                    Some(item),
                    ctx.clone(),
                );
            }
            if group == "n" {
                event(
                    format!("j-{subject}"),
                    &subject,
                    "Newsletter Joined",
                    None,
                    ctx.clone(),
                );
            }
        }
    }
    event(
        "j-nora".into(),
        "nora",
        "Newsletter Joined",
        None,
        json!({}),
    );
    let (status, answer) = app
        .post("/v1/batch", &json!({"consent": consents, "batch": batch}))
        .await;
    assert_eq!(status, 200, "{answer}");
    profile_has(&app, "nora", 1).await;
    profile_has(&app, "n19", 2).await;
    let started = Instant::now();
    while app.admin_json("/v1/profiles/nora?source=default").await["segments"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nora never joined"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, v) = app
        .admin_send(
            "POST",
            "/v1/recommenders/default/models?source=default",
            &json!({"model": {"kind": "item_knn"}}),
        )
        .await;
    assert_eq!(status, 200, "{v}");

    let ask = |who: &str, query: &str| {
        let path = format!("/v1/recommendations/{who}?source=default&k=2{query}");
        let app = &app;
        async move {
            let (status, r, _) = get(app, &path, None).await;
            assert_eq!(status, 200, "{r}");
            (
                r["reason"].as_str().unwrap().to_owned(),
                r["popularity"].as_str().unwrap().to_owned(),
                items(&r),
            )
        }
    };
    let overall = vec!["d1".to_owned(), "d2".to_owned()];
    // Nora is in the newsletter segment: its members' favourite, whatever the context.
    let (reason, popularity, got) = ask("nora", "&country=FR").await;
    assert_eq!(
        (reason.as_str(), popularity.as_str()),
        ("new_user", "segment")
    );
    assert_eq!(got[0], "n1", "{got:?}");
    // Fred is in no segment: his country's favourites, else his device's, else overall.
    let (_, popularity, got) = ask("fred", "&country=fr").await;
    assert_eq!(
        (popularity.as_str(), got),
        ("country", vec!["m1".to_owned(), "m2".to_owned()])
    );
    let (_, popularity, got) = ask("fred", "&device=Mobile&country=US").await;
    assert_eq!(
        (popularity.as_str(), got),
        ("device", vec!["m1".to_owned(), "m2".to_owned()])
    );
    let (_, popularity, got) = ask("fred", "&country=US").await;
    assert_eq!((popularity.as_str(), &got), ("overall", &overall));
    // Nils did not grant personalization: the overall list, in any context.
    let (reason, popularity, got) = ask("nils", "&country=FR&device=mobile").await;
    assert_eq!(
        (reason.as_str(), popularity.as_str(), &got),
        ("no_consent", "overall", &overall)
    );
}

/// EASE on a catalogue too large to store whole is refused with what to do instead;
/// with `keep`, each item's strongest weights are stored and it serves.
pub async fn a_large_catalogue_takes_a_pruned_ease(b: Backend) {
    let app = spawn_app(b).await;
    let yes = json!({"analytics": true, "personalization": true});
    let consents = vec![
        consent("c-p", "pia", yes.clone(), &ago(120)),
        consent("c-q", "quin", yes, &ago(120)),
    ];
    let (status, answer) = app
        .post("/v1/batch", &json!({"consent": consents, "batch": []}))
        .await;
    assert_eq!(status, 200, "{answer}");
    // 2,100 items: pia has the even ones and item 1, quin the odd ones and item 0.
    let all: Vec<Value> = (0..2_100)
        .flat_map(|i| {
            let mut v = vec![viewed(
                &format!("v{i}"),
                if i % 2 == 0 { "pia" } else { "quin" },
                &format!("i{i}"),
                50,
            )];
            if i < 2 {
                v.push(viewed(
                    &format!("w{i}"),
                    if i == 0 { "quin" } else { "pia" },
                    &format!("i{i}"),
                    40,
                ));
            }
            v
        })
        .collect();
    for chunk in all.chunks(500) {
        let (status, answer) = app.post("/v1/batch", &json!({"batch": chunk})).await;
        assert_eq!(status, 200, "{answer}");
    }
    profile_has(&app, "pia", 1_051).await;
    profile_has(&app, "quin", 1_051).await;
    let train = |spec: Value| {
        let app = &app;
        async move {
            app.admin_send(
                "POST",
                "/v1/recommenders/big/models?source=default",
                &json!({"model": spec}),
            )
            .await
        }
    };
    let (status, e) = train(json!({"kind": "ease", "lambda": 1.0})).await;
    assert_eq!(status, 400, "{e}");
    assert!(e.to_string().contains("set keep"), "{e}");
    let (status, v) = train(json!({"kind": "ease", "lambda": 1.0, "keep": 20})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["report"]["items"], 2_100, "{v}");
    let (status, r, _) = get(
        &app,
        "/v1/recommendations/pia?source=default&k=3&model=big",
        None,
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (r["model"]["kind"].as_str(), r["reason"].as_str()),
        (Some("ease"), Some("personalized")),
        "{r}"
    );
    assert!(
        items(&r)
            .iter()
            .all(|i| i.trim_start_matches('i').parse::<u32>().unwrap() % 2 == 1),
        "three items, none of those pia has (she has the even ones): {r}"
    );
}

/// Model versions compared live through an experiment: each subject with history gets
/// the version their variant names (the same one every time), and is counted as exposed.
pub async fn experiments_choose_a_recommenders_version(b: Backend) {
    let app = spawn_app(b).await;
    readers(&app).await;
    for neighbours in [10, 5] {
        let spec = json!({"model": {"kind": "item_knn", "neighbours": neighbours, "weighting": {"kind": "cosine"}}});
        let (status, v) = app
            .admin_send(
                "POST",
                "/v1/recommenders/default/models?source=default",
                &spec,
            )
            .await;
        assert_eq!(status, 200, "{v}");
    }
    let experiment = json!({"recommender": "default", "variants": ["1", "2"], "weights": [0.5, 0.5],
        "primary": {"name": "clicks", "kind": "click_through", "event": "Recommendation Clicked"}});
    let (status, v) = app
        .admin_send(
            "PUT",
            "/v1/definitions/experiments/default-models",
            &experiment,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let bad = json!({"recommender": "default", "variants": ["1", "latest"], "weights": [0.5, 0.5],
        "primary": {"name": "clicks", "kind": "click_through", "event": "Recommendation Clicked"}});
    let (status, e) = app
        .admin_send("PUT", "/v1/definitions/experiments/other", &bad)
        .await;
    assert_eq!(status, 400, "{e}");
    let mut seen = std::collections::BTreeSet::new();
    for u in 0..20 {
        let path = format!("/v1/recommendations/u{u}?source=default&k=2");
        let (_, first, _) = get(&app, &path, None).await;
        let (_, again, _) = get(&app, &path, None).await;
        assert_eq!(
            first["model"]["version"], again["model"]["version"],
            "u{u} stays on one version"
        );
        seen.insert(first["model"]["version"].as_i64().unwrap());
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [1, 2],
        "both versions served"
    );
    let r = app
        .admin_json("/v1/experiments/default-models/results")
        .await;
    assert_eq!(
        r["variants"][0]["visitors"].as_u64().unwrap()
            + r["variants"][1]["visitors"].as_u64().unwrap(),
        20,
        "{r}"
    );
}
