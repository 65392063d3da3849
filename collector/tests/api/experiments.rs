//! Content, flags and experiments over the real server: definitions checked and
//! versioned, variants served by consent, targeting and sticky assignment, traffic of
//! simulated visitors through the real ingest path, and the results the statistics
//! predict — a difference detected, none detected, a broken split flagged.
use std::time::{Duration, Instant};

use assent_experiments::hash::bucket;
use serde_json::{json, Value};

use crate::helpers::*;

fn now_minus(minutes: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assent_protocol::Timestamp::from_unix_millis(now - minutes * 60_000).to_string()
}

async fn put(app: &TestApp, kind: &str, name: &str, body: Value) -> (u16, Value) {
    app.admin_send("PUT", &format!("/v1/definitions/{kind}/{name}"), &body)
        .await
}

/// `GET` with the write key (what the web script sends), optionally a User-Agent.
async fn serve(
    app: &TestApp,
    path: &str,
    ua: Option<&str>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut r = app
        .client
        .get(format!("{}{path}", app.url))
        .basic_auth(WRITE_KEY, Some(""));
    if let Some(ua) = ua {
        r = r.header("user-agent", ua);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    )
}

fn headline(title: &str) -> Value {
    json!({"title": title})
}

fn slot(variants: &[&str]) -> Value {
    let v: serde_json::Map<String, Value> = variants
        .iter()
        .map(|n| (n.to_string(), headline(&format!("The {n} one"))))
        .collect();
    json!({"blockType": "headline", "variants": v, "default": variants[0]})
}

fn experiment(slot: &str, weights: [f64; 2], mde: f64) -> Value {
    json!({"slot": slot, "variants": ["control", "treatment"], "weights": weights, "mde": mde,
           "primary": {"name": "signups", "kind": "conversion", "event": "Signed Up"}})
}

/// `n` visitors who granted analytics are served `slot`; those whose deterministic draw
/// falls under their variant's true rate sign up. Returns the visitors per variant and
/// the sign-ups sent.
async fn traffic(
    app: &TestApp,
    prefix: &str,
    n: usize,
    slot: &str,
    rates: [f64; 2],
) -> ([u64; 2], u64) {
    let yes = json!({"analytics": true, "personalization": false});
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    for chunk in ids.chunks(100) {
        let consents: Vec<Value> = chunk
            .iter()
            .map(|s| consent(&format!("c-{s}"), s, yes.clone(), &now_minus(30)))
            .collect();
        let (status, v) = app
            .post("/v1/batch", &json!({"consent": consents, "batch": []}))
            .await;
        assert_eq!(status, 200, "{v}");
    }
    let mut seen = [0u64; 2];
    let mut signups = Vec::new();
    for s in &ids {
        let (status, r, _) = serve(app, &format!("/v1/content/{slot}?subject={s}"), None).await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(r["reason"], "experiment", "{r}");
        let v = usize::from(r["variant"] == "treatment");
        seen[v] += 1;
        if bucket("conversion", s) < rates[v] {
            signups.push(
                json!({"messageId": format!("su-{s}"), "type": "track", "event": "Signed Up",
                "anonymousId": s, "timestamp": now_minus(0)}),
            );
        }
    }
    for chunk in signups.chunks(400) {
        let (status, v) = app.post("/v1/batch", &json!({"batch": chunk})).await;
        assert_eq!(status, 200, "{v}");
    }
    (seen, signups.len() as u64)
}

/// Results once the metrics consumer has counted `conversions` sign-ups.
async fn results(app: &TestApp, name: &str, conversions: u64) -> Value {
    let started = Instant::now();
    loop {
        let r = app
            .admin_json(&format!("/v1/experiments/{name}/results"))
            .await;
        let counted: u64 = r["metrics"][0]["variants"]
            .as_array()
            .map(|vs| {
                vs.iter()
                    .map(|v| v["conversions"].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0);
        if counted >= conversions || started.elapsed() > Duration::from_secs(20) {
            assert_eq!(counted, conversions, "{r}");
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn experiments_detect_what_is_there_and_flag_a_broken_split(b: Backend) {
    // Thousands of simulated visitors from one address: limits for a crowd.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&fresh_database(b, dir.path()).await);
    cfg.consent_records_per_second = 100_000;
    cfg.consent_records_burst = 100_000;
    cfg.rate_limit_per_second = 100_000;
    cfg.rate_limit_burst = 100_000;
    // A fixed pseudonymization key: the same pseudonyms, so the same split, every run
    // (the figures below are one draw, not a fresh one each time).
    cfg.pseudonym_key = Some(assent_collector::config::Secret::new(
        "experiments-test-key-0123456789abcdef",
    ));
    let app = spawn_with(cfg, dir).await;
    // Definitions: checked, nothing stored when they do not hold.
    let (status, v) = put(&app, "slots", "hero", slot(&["control", "treatment"])).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["version"], 1);
    let bad_content =
        json!({"blockType": "headline", "variants": {"a": {"subtitle": 3}}, "default": "a"});
    let (status, e) = put(&app, "slots", "broken", bad_content).await;
    assert_eq!(status, 400, "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("/subtitle") && message.contains("title"),
        "{message}"
    );
    let (status, e) = put(
        &app,
        "block-types",
        "quote",
        json!({"schema": {"type": "nope"}}),
    )
    .await;
    assert_eq!(status, 400, "{e}");
    assert!(e.to_string().contains("does not compile"), "{e}");
    let (status, e) = put(
        &app,
        "block-types",
        "quote",
        json!({"schema": {"type": "object"}, "template": "{{#each}}"}),
    )
    .await;
    assert_eq!(status, 400, "{e}");
    let (status, e) = put(&app, "block-types", "quote",
        json!({"schema": {"type": "object", "properties": {"text": {"type": "string"}}}, "template": "<q>{{text}}</q> {{author}}"})).await;
    assert_eq!(status, 200, "{e}");
    let (status, e) = put(
        &app,
        "slots",
        "quotes",
        json!({"blockType": "quote", "variants": {"a": {"text": "Hi"}}, "default": "a"}),
    )
    .await;
    assert_eq!(
        status, 400,
        "a template field the content lacks fails when saved: {e}"
    );
    assert!(e.to_string().contains("does not render"), "{e}");
    let (status, e) = put(
        &app,
        "experiments",
        "bad",
        experiment("hero", [0.7, 0.7], 0.5),
    )
    .await;
    assert_eq!(status, 400, "{e}");
    assert!(e.to_string().contains("sum to 1"), "{e}");
    let (status, e) = put(
        &app,
        "experiments",
        "bad",
        experiment("hero", [-0.5, 1.5], 0.5),
    )
    .await;
    assert_eq!(status, 400, "{e}");
    let mut segmented = slot(&["control", "treatment"]);
    segmented["rules"] = json!([{"when": {"segment": "nobody-made-this"}, "variant": "treatment"}]);
    let (status, e) = put(&app, "slots", "segmented", segmented).await;
    assert_eq!(status, 400, "{e}");
    assert!(e.to_string().contains("no audience"), "{e}");
    for (kind, name) in [
        ("slots", "broken"),
        ("slots", "quotes"),
        ("experiments", "bad"),
        ("slots", "segmented"),
    ] {
        let r = app
            .admin_get(&format!("/v1/definitions/{kind}/{name}"))
            .await;
        assert_eq!(r.status().as_u16(), 404, "{kind}/{name} was not stored");
    }

    // Before any experiment: targeting by device needs personalization; without it the
    // fallback.
    let mut targeted = slot(&["control", "treatment"]);
    targeted["rules"] = json!([{"when": {"device": ["mobile"]}, "variant": "treatment"}]);
    targeted["fallback"] = json!("control");
    assert_eq!(put(&app, "slots", "hero", targeted).await.0, 200);
    let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
    let (status, r, h) = serve(&app, "/v1/content/hero?subject=nobody", Some(iphone)).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (r["variant"].as_str(), r["reason"].as_str()),
        (Some("control"), Some("fallback")),
        "{r}"
    );
    // Named: revalidated each time, since the visitor's consent may arrive any moment.
    assert_eq!(h["cache-control"], "private, no-cache");
    let (_, _, anyone) = serve(&app, "/v1/content/hero", Some(iphone)).await;
    assert_eq!(anyone["cache-control"], "public, max-age=60");
    let (_, html, _) = serve(&app, "/v1/content/hero?subject=nobody&format=html", None).await;
    assert_eq!(html, "<h2>The control one</h2>");
    let yes = json!({"analytics": true, "personalization": true});
    let (status, _) = app
        .post("/v1/batch", &json!({"consent": [consent("c-pat", "pat", yes, &now_minus(30))],
            "batch": [{"messageId": "p-1", "type": "page", "anonymousId": "pat", "timestamp": now_minus(5)}]}))
        .await;
    assert_eq!(status, 200);
    let started = Instant::now();
    let targeted = loop {
        let (_, r, _) = serve(&app, "/v1/content/hero?subject=pat", Some(iphone)).await;
        if r["reason"] == "targeting" || started.elapsed() > Duration::from_secs(10) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        targeted["variant"], "treatment",
        "an iPhone is a mobile device: {targeted}"
    );
    let history = app.admin_json("/v1/definitions/slots/hero/history").await;
    assert_eq!(history["versions"].as_array().unwrap().len(), 2);
    assert!(
        history["versions"][1]["changes"]
            .to_string()
            .contains("/rules"),
        "{history}"
    );

    // 1. A real difference (10 % against 30 %), enough visitors: detected.
    let (status, v) = put(
        &app,
        "experiments",
        "hero-test",
        experiment("hero", [0.5, 0.5], 0.6),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (status, e) = put(
        &app,
        "experiments",
        "hero-again",
        experiment("hero", [0.5, 0.5], 0.6),
    )
    .await;
    assert_eq!(status, 400, "one experiment per slot at a time: {e}");
    let rates = [0.10, 0.30];
    let (seen, sent) = traffic(&app, "a", 1_200, "hero", rates).await;
    let r = results(&app, "hero-test", sent).await;
    assert_eq!(
        r["variants"][0]["visitors"].as_u64().unwrap()
            + r["variants"][1]["visitors"].as_u64().unwrap(),
        1_200,
        "{r}"
    );
    assert_eq!(
        [
            r["variants"][0]["visitors"].as_u64().unwrap(),
            r["variants"][1]["visitors"].as_u64().unwrap()
        ],
        seen
    );
    let c = &r["metrics"][0]["comparisons"][0];
    assert!(c["pValue"].as_f64().unwrap() < 1e-6, "{c}");
    assert!(c["relative"]["low"].as_f64().unwrap() > 0.0, "{c}");
    assert_eq!(r["srm"]["mismatch"], false, "{r}");
    assert_eq!(r["sampleSize"]["reached"], true, "{r}");
    assert!(
        r["verdict"]
            .as_str()
            .unwrap()
            .starts_with("treatment beats the control on signups"),
        "{r}"
    );
    // The command line's table says the same.
    let table = assent_collector::experiments::table(&r);
    assert!(
        table.contains("verdict: treatment beats the control on signups"),
        "{table}"
    );
    assert!(
        table.contains(&format!("control{:>17}", seen[0])),
        "{table}"
    );
    assert!(
        table.contains("sample ratio: chi-square") && table.contains("(ok)"),
        "{table}"
    );
    // Sticky: new weights do not move anyone already served.
    let mut before = Vec::new();
    for i in 0..50 {
        let (_, r, _) = serve(&app, &format!("/v1/content/hero?subject=a-{i}"), None).await;
        before.push(r["variant"].clone());
    }
    assert_eq!(
        put(
            &app,
            "experiments",
            "hero-test",
            experiment("hero", [0.1, 0.9], 0.6)
        )
        .await
        .0,
        200
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for (i, was) in before.iter().enumerate() {
        let (_, again, _) = serve(&app, &format!("/v1/content/hero?subject=a-{i}"), None).await;
        assert_eq!(
            (&again["variant"], again["reason"].as_str()),
            (was, Some("experiment")),
            "a-{i}"
        );
    }

    // Layers: two experiments whose shares of one layer overlap are refused.
    assert_eq!(
        put(&app, "slots", "side", slot(&["control", "treatment"]))
            .await
            .0,
        200
    );
    assert_eq!(
        put(&app, "slots", "aside", slot(&["control", "treatment"]))
            .await
            .0,
        200
    );
    let mut first = experiment("side", [0.5, 0.5], 0.6);
    first["layer"] = json!({"layer": "pages", "start": 0.0, "end": 0.6});
    assert_eq!(put(&app, "experiments", "side-test", first).await.0, 200);
    let mut second = experiment("aside", [0.5, 0.5], 0.6);
    second["layer"] = json!({"layer": "pages", "start": 0.5, "end": 1.0});
    let (status, e) = put(&app, "experiments", "aside-test", second.clone()).await;
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("overlaps experiment \"side-test\""),
        "{e}"
    );
    second["layer"]["start"] = json!(0.6);
    assert_eq!(
        put(&app, "experiments", "aside-test", second.clone())
            .await
            .0,
        200
    );
    // Once side-test has stopped, its share is free again.
    let mut stopped = experiment("side", [0.5, 0.5], 0.6);
    stopped["layer"] = json!({"layer": "pages", "start": 0.0, "end": 0.6});
    stopped["stop"] = json!(now_minus(1));
    assert_eq!(put(&app, "experiments", "side-test", stopped).await.0, 200);
    second["layer"]["start"] = json!(0.5);
    let (status, v) = put(&app, "experiments", "aside-test", second).await;
    assert_eq!(status, 200, "{v}");

    // 2. No difference (15 % both): first too few visitors for the fixed horizon, so no
    // verdict; with the sequential option, no difference found.
    assert_eq!(
        put(&app, "slots", "footer", slot(&["control", "treatment"]))
            .await
            .0,
        200
    );
    assert_eq!(
        put(
            &app,
            "experiments",
            "footer-test",
            experiment("footer", [0.5, 0.5], 0.6)
        )
        .await
        .0,
        200
    );
    let (_, sent) = traffic(&app, "b", 400, "footer", [0.15, 0.15]).await;
    let r = results(&app, "footer-test", sent).await;
    assert_eq!(r["sampleSize"]["reached"], false, "{r}");
    assert!(
        r["verdict"]
            .as_str()
            .unwrap()
            .starts_with("Not enough visitors yet"),
        "{r}"
    );
    let mut sequential = experiment("footer", [0.5, 0.5], 0.6);
    sequential["sequential"] = json!(true);
    assert_eq!(
        put(&app, "experiments", "footer-test", sequential).await.0,
        200
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let r = results(&app, "footer-test", sent).await;
    let c = &r["metrics"][0]["comparisons"][0];
    assert!(c["sequential"]["pValue"].as_f64().unwrap() > 0.05, "{c}");
    assert!(c["pValue"].as_f64().unwrap() > 0.05, "{c}");
    assert!(
        r["verdict"]
            .as_str()
            .unwrap()
            .starts_with("No significant difference"),
        "{r}"
    );

    // 3. A broken split: weights changed mid-way (the first visitors stay where they
    // were), so visitors no longer match the weights — the sample-ratio check says so.
    assert_eq!(
        put(&app, "slots", "banner", slot(&["control", "treatment"]))
            .await
            .0,
        200
    );
    assert_eq!(
        put(
            &app,
            "experiments",
            "banner-test",
            experiment("banner", [0.5, 0.5], 0.6)
        )
        .await
        .0,
        200
    );
    let (_, sent_1) = traffic(&app, "c", 300, "banner", [0.2, 0.2]).await;
    assert_eq!(
        put(
            &app,
            "experiments",
            "banner-test",
            experiment("banner", [0.9, 0.1], 0.6)
        )
        .await
        .0,
        200
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (_, sent_2) = traffic(&app, "d", 300, "banner", [0.2, 0.2]).await;
    let r = results(&app, "banner-test", sent_1 + sent_2).await;
    assert_eq!(r["srm"]["mismatch"], true, "{r}");
    assert!(
        r["verdict"]
            .as_str()
            .unwrap()
            .starts_with("Sample ratio mismatch"),
        "{r}"
    );

    // 4. CUPED: each visitor's orders of the month before exposure predict their orders
    // after it, so the adjusted interval of the revenue lift is much narrower.
    assert_eq!(
        put(&app, "slots", "cart", slot(&["control", "treatment"]))
            .await
            .0,
        200
    );
    let mut cart = experiment("cart", [0.5, 0.5], 0.2);
    cart["primary"] = json!({"name": "revenue", "kind": "revenue", "event": "Order Completed", "property": "revenue"});
    assert_eq!(put(&app, "experiments", "cart-test", cart).await.0, 200);
    let yes = json!({"analytics": true});
    let ids: Vec<String> = (0..300).map(|i| format!("e-{i}")).collect();
    let spend = |s: &str| 20.0 + 60.0 * bucket("spend", s);
    for chunk in ids.chunks(100) {
        let consents: Vec<Value> = chunk
            .iter()
            .map(|s| consent(&format!("c-{s}"), s, yes.clone(), &now_minus(4 * 1440)))
            .collect();
        let before: Vec<Value> = chunk
            .iter()
            .map(|s| {
                json!({"messageId": format!("pre-{s}"), "type": "track",
            "event": "Order Completed", "anonymousId": s, "timestamp": now_minus(2 * 1440),
            "properties": {"revenue": spend(s)}})
            })
            .collect();
        let (status, v) = app
            .post("/v1/batch", &json!({"consent": consents, "batch": before}))
            .await;
        assert_eq!(status, 200, "{v}");
    }
    let mut after = Vec::new();
    let mut total = 0.0;
    for s in &ids {
        let (_, r, _) = serve(&app, &format!("/v1/content/cart?subject={s}"), None).await;
        let lift = if r["variant"] == "treatment" {
            3.0
        } else {
            0.0
        };
        after.push(
            json!({"messageId": format!("post-{s}"), "type": "track", "event": "Order Completed",
            "anonymousId": s, "timestamp": now_minus(0),
            "properties": {"revenue": spend(s) + lift + 10.0 * bucket("noise", s) - 5.0}}),
        );
        total += after.last().unwrap()["properties"]["revenue"]
            .as_f64()
            .unwrap();
    }
    for chunk in after.chunks(100) {
        assert_eq!(app.post("/v1/batch", &json!({"batch": chunk})).await.0, 200);
    }
    let started = Instant::now();
    let r = loop {
        let r = app.admin_json("/v1/experiments/cart-test/results").await;
        let sum: f64 = r["metrics"][0]["variants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["sum"].as_f64().unwrap_or(0.0))
            .sum();
        if (sum - total).abs() < 1e-6 * total || started.elapsed() > Duration::from_secs(20) {
            assert!(
                (sum - total).abs() < 1e-6 * total,
                "counted {sum} of {total}: {r}"
            );
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let c = &r["metrics"][0]["comparisons"][0];
    let width = |i: &Value| i["high"].as_f64().unwrap() - i["low"].as_f64().unwrap();
    assert_eq!(c["decidedBy"], "cuped", "{c}");
    assert!(
        c["cuped"]["varianceReduction"].as_f64().unwrap() > 0.8,
        "{c}"
    );
    assert!(
        width(&c["cuped"]["absolute"]) < 0.5 * width(&c["absolute"]),
        "{c}"
    );
    let lift = &c["cuped"]["absolute"];
    assert!(
        lift["low"].as_f64().unwrap() < 3.0 && lift["high"].as_f64().unwrap() > 3.0,
        "the true lift is inside: {c}"
    );

    // A visitor without analytics consent sees the default and is not counted.
    let banner = app.admin_json("/v1/experiments/banner-test/results").await;
    let before = banner["variants"][0]["visitors"].as_u64().unwrap()
        + banner["variants"][1]["visitors"].as_u64().unwrap();
    let (_, r, _) = serve(&app, "/v1/content/banner?subject=stranger", None).await;
    assert_eq!(
        (r["variant"].as_str(), r["reason"].as_str()),
        (Some("control"), Some("fallback")),
        "{r}"
    );
    let after = app.admin_json("/v1/experiments/banner-test/results").await;
    assert_eq!(
        after["variants"][0]["visitors"].as_u64().unwrap()
            + after["variants"][1]["visitors"].as_u64().unwrap(),
        before
    );
}

/// Assignments survive a rotation of the pseudonymization key: a visitor served under
/// the old key keeps their variant under the new one (though the new pseudonym would
/// hash elsewhere for some), and their conversions after it still count.
pub async fn assignments_survive_a_key_rotation(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(b, dir.path()).await;
    let old_key = "old-experiments-key-0123456789abcdef";
    let mut c1 = config(&url);
    c1.pseudonym_key = Some(assent_collector::config::Secret::new(old_key));
    c1.pseudonym_key_id = "k1".into();
    let before = spawn_with(c1, tempfile::tempdir().unwrap()).await;
    assert_eq!(
        put(&before, "slots", "hero", slot(&["control", "treatment"]))
            .await
            .0,
        200
    );
    let (status, v) = put(
        &before,
        "experiments",
        "hero-test",
        experiment("hero", [0.5, 0.5], 0.5),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let yes = json!({"analytics": true});
    let ids: Vec<String> = (0..40).map(|i| format!("r-{i}")).collect();
    let consents: Vec<Value> = ids
        .iter()
        .map(|s| consent(&format!("c-{s}"), s, yes.clone(), &now_minus(30)))
        .collect();
    assert_eq!(
        before
            .post("/v1/batch", &json!({"consent": consents, "batch": []}))
            .await
            .0,
        200
    );
    let mut variants = Vec::new();
    for s in &ids {
        let (_, r, _) = serve(&before, &format!("/v1/content/hero?subject={s}"), None).await;
        assert_eq!(r["reason"], "experiment", "{r}");
        variants.push(r["variant"].as_str().unwrap().to_owned());
    }

    let mut c2 = config(&url);
    c2.pseudonym_key = Some(assent_collector::config::Secret::new(
        "new-experiments-key-0123456789abcdef",
    ));
    c2.pseudonym_key_id = "k2".into();
    c2.previous_pseudonym_keys = Some(assent_collector::config::Secret::new(format!(
        "k1={old_key}"
    )));
    let after = spawn_with(c2, tempfile::tempdir().unwrap()).await;
    let split = assent_experiments::assign::SplitParams {
        weights: vec![0.5, 0.5],
        coverage: 1.0,
    }
    .check()
    .unwrap();
    let mut would_move = 0;
    for (s, was) in ids.iter().zip(&variants) {
        let (_, r, _) = serve(&after, &format!("/v1/content/hero?subject={s}"), None).await;
        assert_eq!(
            r["variant"].as_str(),
            Some(was.as_str()),
            "{s} kept their variant: {r}"
        );
        let fresh = after.state.pseudonymizer.pseudonym(s);
        let by_hash =
            assent_experiments::assign::assign("hero-test", &split, None, fresh.as_str(), None);
        if by_hash.variant().map(|v| ["control", "treatment"][v]) != Some(was.as_str()) {
            would_move += 1;
        }
    }
    assert!(
        would_move > 5,
        "only storage keeps them ({would_move} would move)"
    );
    // A conversion under the new key counts for the variant served under the old one.
    let signup = json!({"messageId": "su-r-0", "type": "track", "event": "Signed Up", "anonymousId": "r-0", "timestamp": now_minus(0)});
    assert_eq!(
        after.post("/v1/batch", &json!({"batch": [signup]})).await.0,
        200
    );
    let r = results(&after, "hero-test", 1).await;
    let v = usize::from(variants[0] == "treatment");
    assert_eq!(r["metrics"][0]["variants"][v]["conversions"], 1, "{r}");
    assert_eq!(
        r["variants"][0]["visitors"].as_u64().unwrap()
            + r["variants"][1]["visitors"].as_u64().unwrap(),
        40,
        "each visitor counted once, under either key: {r}"
    );
}

/// The published served vectors (`protocol/test-vectors/assignment.json`): under their
/// test key, each id a client sends has the pseudonym they give and is served the
/// variant they give, or (outside the coverage) the slot's fallback.
pub async fn served_variants_follow_the_published_vectors(b: Backend) {
    let v: Value = serde_json::from_str(include_str!(
        "../../../protocol/test-vectors/assignment.json"
    ))
    .unwrap();
    let served = &v["served"];
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(b, dir.path()).await;
    let mut c = config(&url);
    c.pseudonym_key = Some(assent_collector::config::Secret::new(
        served["key"].as_str().unwrap(),
    ));
    c.pseudonym_key_id = served["key_id"].as_str().unwrap().into();
    let app = spawn_with(c, tempfile::tempdir().unwrap()).await;
    let (status, r) = put(&app, "slots", "vectors", slot(&["v0", "v1", "v2"])).await;
    assert_eq!(status, 200, "{r}");
    let (status, r) = put(
        &app,
        "experiments",
        "vectors",
        json!({"slot": "vectors", "variants": ["v0", "v1", "v2"], "seed": served["seed"],
               "weights": served["weights"], "coverage": served["coverage"],
               "primary": {"name": "signups", "kind": "conversion", "event": "Signed Up"}}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    let cases = served["cases"].as_array().unwrap();
    let consents: Vec<Value> = cases
        .iter()
        .map(|case| {
            let s = case["subject"].as_str().unwrap();
            consent(
                &format!("c-{s}"),
                s,
                json!({"analytics": true}),
                &now_minus(30),
            )
        })
        .collect();
    let (status, r) = app
        .post("/v1/batch", &json!({"consent": consents, "batch": []}))
        .await;
    assert_eq!(status, 200, "{r}");
    for case in cases {
        let s = case["subject"].as_str().unwrap();
        assert_eq!(
            app.state.pseudonymizer.pseudonym(s).as_str(),
            case["pseudonym"].as_str().unwrap()
        );
        let (status, r, _) = serve(&app, &format!("/v1/content/vectors?subject={s}"), None).await;
        assert_eq!(status, 200, "{r}");
        match case["variant"].as_u64() {
            Some(i) => {
                assert_eq!(r["reason"], "experiment", "{case} {r}");
                assert_eq!(r["variant"], format!("v{i}"), "{case} {r}");
            }
            None => assert_eq!(
                (&r["reason"], &r["variant"]),
                (&json!("fallback"), &json!("v0")),
                "{case} {r}"
            ),
        }
    }
}

/// A MaxMind-format database (IPv4, 24-bit records) that knows one /8: every address
/// whose first octet is `octet` is in country `iso`. Written from the format's
/// specification (search tree, 16-byte separator, data section, metadata).
fn mmdb(octet: u8, iso: &str) -> Vec<u8> {
    const NODES: u32 = 8;
    let mut out = Vec::new();
    for depth in 0..8u32 {
        let bit = (octet >> (7 - depth)) & 1;
        // The last node points at the data (offset 0): NODES + 16 + offset.
        let next = if depth == 7 { NODES + 16 } else { depth + 1 };
        let (left, right) = if bit == 0 {
            (next, NODES)
        } else {
            (NODES, next)
        };
        for record in [left, right] {
            out.extend_from_slice(&record.to_be_bytes()[1..]);
        }
    }
    out.extend_from_slice(&[0u8; 16]);
    let text = |out: &mut Vec<u8>, s: &str| {
        out.push(0x40 | s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    };
    out.push(0xE1);
    text(&mut out, "country");
    out.push(0xE1);
    text(&mut out, "iso_code");
    text(&mut out, iso);
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    out.push(0xE9);
    let uint16 = |out: &mut Vec<u8>, v: u8| out.extend_from_slice(&[0xA1, v]);
    text(&mut out, "binary_format_major_version");
    uint16(&mut out, 2);
    text(&mut out, "binary_format_minor_version");
    out.push(0xA0);
    text(&mut out, "build_epoch");
    out.extend_from_slice(&[0x01, 0x02, 0x01]); // uint64 (extended type 9), 1 byte
    text(&mut out, "database_type");
    text(&mut out, "Assent-Test-Country");
    text(&mut out, "description");
    out.push(0xE1);
    text(&mut out, "en");
    text(&mut out, "a test database");
    text(&mut out, "ip_version");
    uint16(&mut out, 4);
    text(&mut out, "languages");
    out.extend_from_slice(&[0x01, 0x04]); // array (extended type 11) of 1
    text(&mut out, "en");
    text(&mut out, "node_count");
    out.extend_from_slice(&[0xC1, NODES as u8]);
    text(&mut out, "record_size");
    uint16(&mut out, 24);
    out
}

/// With a MaxMind-format database configured, a slot's country rule follows the
/// visitor's address (here 127.0.0.1, which the test database places in France).
pub async fn country_rules_follow_a_maxmind_database(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("countries.mmdb");
    std::fs::write(&file, mmdb(127, "FR")).unwrap();
    let mut cfg = config(&fresh_database(b, dir.path()).await);
    cfg.geoip_database = Some(file.display().to_string());
    let app = spawn_with(cfg, dir).await;
    let mut s = slot(&["control", "french"]);
    s["rules"] = json!([{"when": {"country": ["FR"]}, "variant": "french"}]);
    assert_eq!(put(&app, "slots", "hero", s).await.0, 200);
    let yes = json!({"analytics": true, "personalization": true});
    let (status, _) = app
        .post("/v1/batch", &json!({"consent": [consent("c-pia", "pia", yes, &now_minus(30))],
            "batch": [{"messageId": "p-1", "type": "page", "anonymousId": "pia", "timestamp": now_minus(5)}]}))
        .await;
    assert_eq!(status, 200);
    let started = Instant::now();
    let r = loop {
        let (_, r, _) = serve(&app, "/v1/content/hero?subject=pia", None).await;
        if r["reason"] == "targeting" || started.elapsed() > Duration::from_secs(10) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        (r["reason"].as_str(), r["variant"].as_str()),
        (Some("targeting"), Some("french")),
        "{r}"
    );
    // A file that is not a database stops the collector at start, naming the setting.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.mmdb");
    std::fs::write(&bad, b"not a database").unwrap();
    let mut cfg = config(&fresh_database(b, dir.path()).await);
    cfg.geoip_database = Some(bad.display().to_string());
    let e = assent_collector::startup::Application::build(cfg)
        .await
        .err()
        .expect("refused");
    assert!(e.to_string().contains("GEOIP_DATABASE"), "{e}");
}

/// Flags over the API: every flag's details at once, segment rules only for visitors
/// who granted personalization, the caller's default on any error, 400 for a default
/// that is not JSON.
pub async fn flags_follow_their_rules_and_consent(b: Backend) {
    let app = spawn_app(b).await;
    let (status, v) = app
        .admin_send(
            "PUT",
            "/v1/audiences/visitors",
            &json!({"rule": {"performed": {"event": "Signed Up", "within_days": 30}}}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let flag = json!({"kind": "boolean", "variants": {"on": true, "off": false}, "default_variant": "off",
        "rules": [{"when": {"segment": "visitors"}, "serve": {"variant": "on"}}]});
    assert_eq!(put(&app, "flags", "beta-ui", flag).await.0, 200);
    let off =
        json!({"kind": "string", "enabled": false, "variants": {"a": "x"}, "default_variant": "a"});
    assert_eq!(put(&app, "flags", "retired", off).await.0, 200);
    let consents = [
        consent(
            "c-pat",
            "pat",
            json!({"analytics": true, "personalization": true}),
            &now_minus(30),
        ),
        consent("c-nop", "nop", json!({"analytics": true}), &now_minus(30)),
    ];
    let events: Vec<Value> = ["pat", "nop"]
        .iter()
        .map(|s| {
            json!({"messageId": format!("su-{s}"), "type": "track", "event": "Signed Up",
                        "anonymousId": s, "timestamp": now_minus(5)})
        })
        .collect();
    let (status, _) = app
        .post("/v1/batch", &json!({"consent": consents, "batch": events}))
        .await;
    assert_eq!(status, 200);
    let started = Instant::now();
    let pat = loop {
        let (_, r, _) = serve(&app, "/v1/flags?subject=pat", None).await;
        if r["flags"]["beta-ui"]["reason"] == "TARGETING_MATCH"
            || started.elapsed() > Duration::from_secs(10)
        {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        pat["flags"]["beta-ui"],
        json!({"value": true, "variant": "on", "reason": "TARGETING_MATCH"}),
        "{pat}"
    );
    assert_eq!(
        pat["flags"]["retired"],
        json!({"value": null, "reason": "DISABLED"}),
        "{pat}"
    );
    let (_, nop, h) = serve(&app, "/v1/flags?subject=nop", None).await;
    assert_eq!(
        nop["flags"]["beta-ui"],
        json!({"value": false, "variant": "off", "reason": "DEFAULT"}),
        "no segments without personalization: {nop}"
    );
    assert!(h["cache-control"].to_str().unwrap().starts_with("private"));
    let (_, r, _) = serve(
        &app,
        "/v1/flags/beta-ui?subject=pat&default=%22yes%22",
        None,
    )
    .await;
    assert_eq!(
        r,
        json!({"value": "yes", "reason": "ERROR", "errorCode": "TYPE_MISMATCH"})
    );
    let (_, r, _) = serve(&app, "/v1/flags/nothing?default=3", None).await;
    assert_eq!(
        r,
        json!({"value": 3, "reason": "ERROR", "errorCode": "FLAG_NOT_FOUND"})
    );
    let (_, r, _) = serve(&app, "/v1/flags/retired?default=%22mine%22", None).await;
    assert_eq!(r, json!({"value": "mine", "reason": "DISABLED"}));
    let (status, r, _) = serve(&app, "/v1/flags/beta-ui?default=not-json", None).await;
    assert_eq!(status, 400, "{r}");
}

/// The collector uses a flag itself: defining `segmentation-realtime` turns real-time
/// segmentation on or off for every replica; a flag of another type is refused.
pub async fn a_flag_switches_real_time_segmentation(b: Backend) {
    let app = spawn_app(b).await;
    let switch = |on: bool| {
        json!({"kind": "boolean", "variants": {"on": true, "off": false},
               "default_variant": if on { "on" } else { "off" }})
    };
    for on in [false, true, false] {
        let (status, v) = put(&app, "flags", "segmentation-realtime", switch(on)).await;
        assert_eq!(status, 200, "{v}");
        let r = app.admin_json("/v1/segmentation/realtime").await;
        assert_eq!(r["enabled"], on, "{r}");
    }
    let (status, e) = put(
        &app,
        "flags",
        "segmentation-realtime",
        json!({"kind": "string", "variants": {"a": "x"}, "default_variant": "a"}),
    )
    .await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(
        app.admin_json("/v1/segmentation/realtime").await["enabled"],
        false
    );
    // Rolling the flag back to the version that was on switches it on again.
    let (status, v) = app
        .admin_send(
            "POST",
            "/v1/definitions/flags/segmentation-realtime/rollback",
            &json!({"version": 2}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        app.admin_json("/v1/segmentation/realtime").await["enabled"],
        true
    );
}

/// The SDK reads flags from the real collector: before the user answers, the value for
/// no one in particular; once analytics is granted (and the consent record uploaded), the
/// install's variant of the experiment running on the flag.
pub async fn the_sdk_reads_flags_from_the_collector(b: Backend) {
    let app = spawn_app(b).await;
    let theme = json!({"kind": "string", "variants": {"light": "#fff", "dark": "#000"}, "default_variant": "light"});
    assert_eq!(put(&app, "flags", "theme", theme).await.0, 200);
    let test = json!({"flag": "theme", "variants": ["light", "dark"], "weights": [0.0, 1.0],
        "primary": {"name": "signups", "kind": "conversion", "event": "Signed Up"}});
    assert_eq!(put(&app, "experiments", "theme-test", test).await.0, 200);
    let url = app.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_owned();
    let (before, after) = tokio::task::spawn_blocking(move || {
        let config =
            assent_core::ClientConfig::new(url, WRITE_KEY, storage, "com.example.flags", "2026-01");
        let client = assent_core::AssentClient::new(config).unwrap();
        let before = client.flags().unwrap();
        client
            .set_consent([("analytics".to_string(), true)].into(), "custom".into())
            .unwrap();
        client.flush().unwrap();
        let after = client.flags().unwrap();
        client.shutdown();
        (before, after)
    })
    .await
    .unwrap();
    let (b, a) = (&before["theme"], &after["theme"]);
    assert_eq!(
        (
            b.value_json.as_str(),
            b.variant.as_deref(),
            b.reason.as_str()
        ),
        ("\"#fff\"", Some("light"), "STATIC"),
        "{b:?}"
    );
    assert_eq!(
        (
            a.value_json.as_str(),
            a.variant.as_deref(),
            a.reason.as_str()
        ),
        ("\"#000\"", Some("dark"), "SPLIT"),
        "{a:?}"
    );
    let r = app.admin_json("/v1/experiments/theme-test/results").await;
    assert_eq!(
        r["variants"][1]["visitors"], 0,
        "the bulk read is not an exposure: {r}"
    );
}

/// The SDK reads a content slot from the real collector: before the user answers, the
/// fallback; once analytics is granted (and the consent record uploaded), the install's
/// variant of the experiment on the slot, counted as its exposure. A slot the collector
/// does not have, and a name that is not a slot's, are the caller's errors.
pub async fn the_sdk_reads_content_from_the_collector(b: Backend) {
    let app = spawn_app(b).await;
    assert_eq!(
        put(&app, "slots", "hero", slot(&["control", "treatment"]))
            .await
            .0,
        200
    );
    let test = experiment("hero", [0.0, 1.0], 0.05);
    assert_eq!(put(&app, "experiments", "hero-test", test).await.0, 200);
    let url = app.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_owned();
    let (before, after, missing, malformed) = tokio::task::spawn_blocking(move || {
        let config = assent_core::ClientConfig::new(
            url,
            WRITE_KEY,
            storage,
            "com.example.content",
            "2026-01",
        );
        let client = assent_core::AssentClient::new(config).unwrap();
        let before = client.content("hero".into()).unwrap();
        client
            .set_consent([("analytics".to_string(), true)].into(), "custom".into())
            .unwrap();
        client.flush().unwrap();
        let after = client.content("hero".into()).unwrap();
        let missing = client.content("nowhere".into()).unwrap_err();
        let malformed = client.content("../v1/flags".into()).unwrap_err();
        client.shutdown();
        (before, after, missing, malformed)
    })
    .await
    .unwrap();
    assert_eq!(
        (
            before.variant.as_str(),
            before.reason.as_str(),
            before.experiment.as_deref()
        ),
        ("control", "fallback", None),
        "{before:?}"
    );
    assert_eq!(
        (
            after.variant.as_str(),
            after.reason.as_str(),
            after.experiment.as_deref()
        ),
        ("treatment", "experiment", Some("hero-test")),
        "{after:?}"
    );
    assert_eq!(after.block_type, "headline");
    let content: Value = serde_json::from_str(&after.content_json).unwrap();
    assert_eq!(content, headline("The treatment one"));
    assert!(
        after
            .html
            .as_deref()
            .is_some_and(|h| h.contains("The treatment one")),
        "{after:?}"
    );
    for e in [&missing, &malformed] {
        assert!(
            matches!(e, assent_core::AssentError::InvalidArgument { .. }),
            "{e:?}"
        );
    }
    let r = app.admin_json("/v1/experiments/hero-test/results").await;
    assert_eq!(
        (&r["variants"][0]["visitors"], &r["variants"][1]["visitors"]),
        (&json!(0), &json!(1)),
        "the install's view is its exposure: {r}"
    );
}
