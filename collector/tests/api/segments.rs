//! Segmentation profiles kept from the feed: only for subjects who granted
//! `personalization` at the source, updated within moments of their events, gone on a
//! withdrawal and on an erasure, and shown by subject access.
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

/// The profile of `subject` at the default source, waiting (up to 10 s) until `ready`
/// says it is what the test waits for.
async fn profile_when(
    app: &TestApp,
    subject: &str,
    ready: impl Fn(u16, &Value) -> bool,
) -> (u16, Value) {
    let started = Instant::now();
    loop {
        let r = app
            .admin_get(&format!("/v1/profiles/{subject}?source=default"))
            .await;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if ready(status, &body) || started.elapsed() > Duration::from_secs(10) {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn page(id: &str, subject: &str, at: &str) -> Value {
    json!({"messageId": id, "type": "page", "name": "Shoes", "anonymousId": subject, "timestamp": at,
           "context": {"campaign": {"source": "newsletter", "medium": "email", "name": "winter-sale"},
                       "device": {"type": "mobile"}}})
}

fn order(id: &str, subject: &str, at: &str, revenue: f64) -> Value {
    json!({"messageId": id, "type": "track", "event": "Order Completed", "anonymousId": subject,
           "timestamp": at, "properties": {"revenue": revenue}})
}

pub async fn profiles_follow_personalization_and_go_on_withdrawal_and_erasure(b: Backend) {
    let app = spawn_app(b).await;
    let now = assent_protocol::Timestamp::from_unix_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    );
    let at = |minutes_ago: i64| {
        assent_protocol::Timestamp::from_unix_millis(now.unix_millis() - minutes_ago * 60_000)
            .to_string()
    };
    let both = json!({"analytics": true, "personalization": true});
    let analytics_only = json!({"analytics": true, "personalization": false});
    let batch = json!({
        "consent": [consent("c-p", "pia", both, &at(60)), consent("c-q", "quinn", analytics_only, &at(60))],
        "batch": [page("p-1", "pia", &at(30)), order("p-2", "pia", &at(29), 30.5),
                  page("q-1", "quinn", &at(30)), order("q-2", "quinn", &at(29), 12.0)]
    });
    let (status, answer) = app.post("/v1/batch", &batch).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 4, "{answer}");

    // Pia granted personalization: her profile appears, with her events' features.
    let (status, p) = profile_when(&app, "pia", |s, _| s == 200).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["events"], 2);
    let day = &p["features"]["windows"][0];
    assert_eq!(
        (day["views"].clone(), day["purchases"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(day["revenue"], 30.5);
    assert_eq!(p["features"]["first_touch"]["campaign"], "winter-sale");
    assert_eq!(p["features"]["device_type"], "mobile");

    // A redelivered event changes nothing; a new one is folded in.
    let again =
        json!({"batch": [order("p-2", "pia", &at(29), 30.5), order("p-3", "pia", &at(10), 5.0)]});
    assert_eq!(app.post("/v1/batch", &again).await.0, 200);
    let (_, p) = profile_when(&app, "pia", |_, v| v["events"] == 3).await;
    assert_eq!(p["events"], 3, "{p}");
    assert_eq!(p["features"]["windows"][0]["revenue"], 35.5);
    // Quinn's events came before pia's last: they were seen, and gave no profile.
    let (status, _) = profile_when(&app, "quinn", |_, _| true).await;
    assert_eq!(status, 404);

    // Subject access shows the profile.
    let access = app.admin_json("/v1/subjects/pia").await;
    assert_eq!(
        access["profiles"].as_array().map(Vec::len),
        Some(1),
        "{access}"
    );
    assert_eq!(
        access["profiles"][0]["events"].as_array().map(Vec::len),
        Some(3)
    );

    // Withdrawing personalization deletes the profile.
    let withdraw = json!({"consent": [consent("c-p2", "pia", json!({"analytics": true}), &at(5))]});
    assert_eq!(app.post("/v1/batch", &withdraw).await.0, 200);
    let (status, _) = profile_when(&app, "pia", |s, _| s == 404).await;
    assert_eq!(status, 404);
    // And events after it build nothing.
    let later = json!({"batch": [order("p-4", "pia", &at(1), 9.0)]});
    assert_eq!(app.post("/v1/batch", &later).await.0, 200);

    // Granted again: a fresh profile; then an erasure deletes it.
    let grant = json!({"consent": [consent("c-p3", "pia", json!({"personalization": true, "analytics": true}), &at(0))]});
    assert_eq!(app.post("/v1/batch", &grant).await.0, 200);
    let soon = assent_protocol::Timestamp::from_unix_millis(now.unix_millis() + 1000).to_string();
    let fresh = json!({"batch": [order("p-5", "pia", &soon, 1.0)]});
    assert_eq!(app.post("/v1/batch", &fresh).await.0, 200);
    let (status, p) = profile_when(&app, "pia", |s, _| s == 200).await;
    assert_eq!((status, p["events"].clone()), (200, json!(1)), "{p}");
    assert_eq!(app.admin_delete("/v1/subjects/pia").await.status(), 200);
    let (status, _) = profile_when(&app, "pia", |s, _| s == 404).await;
    assert_eq!(status, 404);
    assert_eq!(app.count("profile_events").await, 0);
}

pub async fn audiences_are_checked_stored_and_matched_as_events_arrive(b: Backend) {
    let app = spawn_app(b).await;
    let put = |name: &str, body: Value| {
        let url = format!("{}/v1/audiences/{name}", app.url);
        let client = app.client.clone();
        async move {
            let r = client
                .put(url)
                .bearer_auth(ADMIN_TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let frequent =
        json!({"performed": {"event": "Order Completed", "at_least": 6, "within_days": 30}});
    let (status, stored) = put("frequent_buyers", json!({"rule": frequent})).await;
    assert_eq!(status, 200, "{stored}");
    // A bad rule is refused with the path of its fault, and nothing is stored.
    let bad =
        json!({"rule": {"all": [{"performed": {"event": "Order Completed", "within_days": 0}}]}});
    let (status, err) = put("broken", bad).await;
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("$.all[0].performed.within_days"),
        "{err}"
    );
    assert_eq!(put("Not A Name", json!({"rule": frequent})).await.0, 400);
    let list = app.admin_json("/v1/audiences").await;
    assert_eq!(
        list["audiences"].as_array().map(Vec::len),
        Some(1),
        "{list}"
    );
    assert_eq!(list["audiences"][0]["rule"], frequent);
    // Write keys cannot set audiences.
    let r = app
        .client
        .put(format!("{}/v1/audiences/x", app.url))
        .bearer_auth(WRITE_KEY)
        .json(&json!({"rule": frequent}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let at = |minutes_ago: i64| {
        assent_protocol::Timestamp::from_unix_millis(now - minutes_ago * 60_000).to_string()
    };
    let grant = json!({"analytics": true, "personalization": true});
    let orders: Vec<Value> = (0..5)
        .map(|i| order(&format!("o-{i}"), "rosa", &at(50 - i), 10.0))
        .collect();
    let first = json!({"consent": [consent("c-r", "rosa", grant, &at(60))], "batch": orders});
    assert_eq!(app.post("/v1/batch", &first).await.0, 200);
    let segments = |subject: &'static str| {
        let app = &app;
        async move {
            let r = app
                .admin_get(&format!("/v1/profiles/{subject}/segments?source=default"))
                .await;
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let started = Instant::now();
    let mut seen = segments("rosa").await;
    while seen.0 != 200 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        seen = segments("rosa").await;
    }
    assert_eq!(
        seen,
        (
            200,
            json!({"subjectId": "rosa", "source": seen.1["source"], "segments": []})
        )
    );
    // The sixth order puts her in, as soon as the feed has folded it in.
    let sixth = json!({"batch": [order("o-5", "rosa", &at(1), 10.0)]});
    assert_eq!(app.post("/v1/batch", &sixth).await.0, 200);
    let started = Instant::now();
    loop {
        let (_, body) = segments("rosa").await;
        if body["segments"] == json!(["frequent_buyers"]) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // No profile, no audience.
    assert_eq!(segments("nobody").await.0, 404);
    // Deleting the audience takes her out; a second delete finds nothing.
    let delete = || app.admin_delete("/v1/audiences/frequent_buyers");
    assert_eq!(delete().await.status(), 200);
    assert_eq!(delete().await.status(), 404);
    assert_eq!(segments("rosa").await.1["segments"], json!([]));
    // Both changes are in the audit trail.
    let export = app
        .admin_get("/v1/audit/export")
        .await
        .text()
        .await
        .unwrap();
    assert!(export.contains("\"audience_set\"") && export.contains("\"audience_deleted\""));
}
