//! Segmentation profiles kept from the feed: only for subjects who granted
//! `personalization` at the source, updated within moments of their events, gone on a
//! withdrawal and on an erasure, and shown by subject access.
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

/// Times as the protocol writes them, so many minutes before now.
fn minutes_ago() -> impl Fn(i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    move |minutes: i64| {
        assent_protocol::Timestamp::from_unix_millis(now - minutes * 60_000).to_string()
    }
}

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
            json!({"subjectId": "rosa", "source": seen.1["source"], "segments": [], "clusters": {}, "sparse": false})
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

/// Waits (up to 10 s) until `GET path` with the compliance token answers what `ready`
/// accepts; returns the last answer.
async fn admin_when(app: &TestApp, path: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let body: Value = app
            .admin_get(path)
            .await
            .json()
            .await
            .unwrap_or(Value::Null);
        if ready(&body) || started.elapsed() > Duration::from_secs(10) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn audiences_backfill_keep_members_and_their_history_and_read_traits(b: Backend) {
    let app = spawn_app(b).await;
    let at = minutes_ago();
    let grant = json!({"analytics": true, "personalization": true});
    let coupon = |id: &str, subject: &str, minutes_ago: i64| {
        json!({"messageId": id, "type": "track", "event": "Order Completed", "anonymousId": subject,
               "timestamp": at(minutes_ago), "properties": {"revenue": 20.0, "coupon": "WINTER"}})
    };
    // History first: two coupon orders for ana, one for ben, none for cy.
    let history = json!({
        "consent": [consent("c-a", "ana", grant.clone(), &at(90)), consent("c-b", "ben", grant.clone(), &at(90)),
                    consent("c-c", "cy", grant, &at(90))],
        "batch": [coupon("a-1", "ana", 60), coupon("a-2", "ana", 50), coupon("b-1", "ben", 40),
                  page("c-1", "cy", &at(30))]
    });
    assert_eq!(app.post("/v1/batch", &history).await.0, 200);
    for s in ["ana", "ben", "cy"] {
        let (status, _) = profile_when(&app, s, |s, _| s == 200).await;
        assert_eq!(status, 200, "{s}");
    }

    // A rule reading a trait not defined is refused, and nothing is stored.
    let rule = json!({"trait": "coupon_orders", "op": ">=", "value": 2});
    let (status, err) = app
        .admin_send("PUT", "/v1/audiences/coupon_fans", &json!({"rule": rule}))
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("coupon_orders"));
    assert_eq!(app.count("audiences").await, 0);
    // A bad trait names its fault.
    let bad =
        json!({"name": "coupon_orders", "kind": "count", "property": "coupon", "window_days": 30});
    let (status, err) = app
        .admin_send("PUT", "/v1/traits/coupon_orders", &bad)
        .await;
    assert_eq!(status, 400);
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("property"));
    let counter = json!({"name": "coupon_orders", "kind": "count", "event": "Order Completed", "window_days": 30});
    let (status, stored) = app
        .admin_send("PUT", "/v1/traits/coupon_orders", &counter)
        .await;
    assert_eq!(status, 200, "{stored}");
    let spend = json!({"name": "spend", "kind": "sum", "property": "revenue", "window_days": 90});
    assert_eq!(
        app.admin_send("PUT", "/v1/traits/spend", &spend).await.0,
        200
    );
    assert_eq!(
        app.admin_json("/v1/traits").await["traits"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let (_, p) = profile_when(&app, "ana", |_, _| true).await;
    assert_eq!(
        p["traits"],
        json!({"coupon_orders": 2, "spend": 40.0}),
        "{p}"
    );

    // Created: its members come from stored history at once.
    let (status, set) = app
        .admin_send(
            "POST",
            "/v1/audiences",
            &json!({"name": "coupon_fans", "rule": rule}),
        )
        .await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(
        set["backfill"],
        json!({"profiles": 3, "entered": 1, "exited": 0})
    );
    let (status, _) = app
        .admin_send(
            "POST",
            "/v1/audiences",
            &json!({"name": "coupon_fans", "rule": rule}),
        )
        .await;
    assert_eq!(status, 400, "a second create is refused");
    let lookup = |s: &str| format!("/v1/audiences/coupon_fans/members/{s}?source=default");
    let ana = app.admin_json(&lookup("ana")).await;
    assert_eq!(ana["member"], true, "{ana}");
    assert!(ana["since"].is_string());
    assert_eq!(app.admin_json(&lookup("ben")).await["member"], false);
    // The trait cannot go while the audience reads it.
    assert_eq!(
        app.admin_delete("/v1/traits/coupon_orders").await.status(),
        400
    );

    // Ben's second coupon order puts him in as the feed folds it.
    let more = json!({"batch": [coupon("b-2", "ben", 1)]});
    assert_eq!(app.post("/v1/batch", &more).await.0, 200);
    let ben = admin_when(&app, &lookup("ben"), |v| v["member"] == true).await;
    assert_eq!(ben["member"], true, "{ben}");
    let segments = app
        .admin_json("/v1/profiles/ben/segments?source=default")
        .await;
    assert_eq!(segments["segments"], json!(["coupon_fans"]));

    // Members are listed by pseudonym, a page at a time; no raw id.
    let first = app
        .admin_json("/v1/audiences/coupon_fans/members?source=default&limit=1")
        .await;
    assert_eq!(
        first["members"].as_array().map(Vec::len),
        Some(1),
        "{first}"
    );
    let next = first["next"].as_str().expect("a next page").to_owned();
    let second = app
        .admin_json(&format!(
            "/v1/audiences/coupon_fans/members?source=default&limit=1&after={next}"
        ))
        .await;
    assert_eq!(second["members"].as_array().map(Vec::len), Some(1));
    let third = app
        .admin_json(&format!(
            "/v1/audiences/coupon_fans/members?source=default&limit=1&after={}",
            second["next"].as_str().unwrap()
        ))
        .await;
    assert_eq!(third["members"], json!([]));
    let listed = format!("{first}{second}");
    assert!(
        !listed.contains("ana") && !listed.contains("ben"),
        "{listed}"
    );
    let limit = app
        .admin_get("/v1/audiences/coupon_fans/members?source=default&limit=0")
        .await;
    assert_eq!(limit.status(), 400);
    assert_eq!(
        app.admin_get("/v1/audiences/nope/members?source=default")
            .await
            .status(),
        404
    );

    // Editing the rule backfills again: ana and ben leave, cy (no order) enters.
    let edit = json!({"rule": {"trait": "spend", "op": "=", "value": 0}});
    let (status, set) = app
        .admin_send("PUT", "/v1/audiences/coupon_fans", &edit)
        .await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["backfill"]["entered"], 1, "{set}");
    assert_eq!(set["backfill"]["exited"], 2, "{set}");
    assert_eq!(app.admin_json(&lookup("cy")).await["member"], true);

    // The history: every entry and exit, oldest first, a page at a time.
    let changes = app
        .admin_json("/v1/audiences/coupon_fans/changes?source=default&limit=3")
        .await;
    let kinds: Vec<&str> = changes["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["change"].as_str().unwrap())
        .collect();
    // Ana's and ben's entries, then the edit's two exits and one entry (at one time).
    assert_eq!(kinds[..2], ["entered", "entered"], "{changes}");
    let rest = app
        .admin_json(&format!(
            "/v1/audiences/coupon_fans/changes?source=default&limit=3&after={}",
            changes["next"].as_str().unwrap()
        ))
        .await;
    assert_eq!(rest["changes"].as_array().map(Vec::len), Some(2), "{rest}");
    assert_eq!(
        app.admin_get("/v1/audiences/coupon_fans/changes?source=default&after=x")
            .await
            .status(),
        400
    );

    // Subject access shows cy's membership and history; a withdrawal removes both.
    let access = app.admin_json("/v1/subjects/cy").await;
    assert_eq!(
        access["audienceMemberships"][0]["audience"], "coupon_fans",
        "{access}"
    );
    assert_eq!(access["audienceChanges"][0]["change"], "entered");
    let withdraw = json!({"consent": [consent("c-c2", "cy", json!({"analytics": true}), &at(0))]});
    assert_eq!(app.post("/v1/batch", &withdraw).await.0, 200);
    let cy = admin_when(&app, &lookup("cy"), |v| v["member"] == false).await;
    assert_eq!(cy["member"], false);
    let access = app.admin_json("/v1/subjects/cy").await;
    assert_eq!(access["audienceMemberships"], json!([]), "{access}");
    assert_eq!(access["audienceChanges"], json!([]));
    // An erasure removes ana's history everywhere.
    assert_eq!(app.admin_delete("/v1/subjects/ana").await.status(), 200);
    let access = admin_when(&app, "/v1/subjects/ana", |v| {
        v["audienceChanges"] == json!([])
    })
    .await;
    assert_eq!(access["audienceChanges"], json!([]), "{access}");
    // Deleting the audience deletes its members.
    assert_eq!(
        app.admin_delete("/v1/audiences/coupon_fans").await.status(),
        200
    );
    assert_eq!(app.count("audience_members").await, 0);
    assert_eq!(
        app.admin_delete("/v1/traits/coupon_orders").await.status(),
        200
    );
    assert_eq!(
        app.admin_delete("/v1/traits/coupon_orders").await.status(),
        404
    );
}

pub async fn models_are_trained_versioned_promoted_and_rolled_back(b: Backend) {
    let app = spawn_app(b).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let at = |minutes_ago: i64| {
        assent_protocol::Timestamp::from_unix_millis(now - minutes_ago * 60_000).to_string()
    };
    let grant = json!({"analytics": true, "personalization": true});
    // Three kinds of people: buyers, browsers, the barely there; and one bot.
    let mut consents = Vec::new();
    let mut events = Vec::new();
    for i in 0..12 {
        let s = format!("u{i}");
        consents.push(consent(&format!("c-{s}"), &s, grant.clone(), &at(600)));
        let (pages, orders) = [(2, 6), (10, 0), (1, 0)][i % 3];
        for p in 0..pages {
            events.push(page(&format!("{s}-p{p}"), &s, &at(300 - 7 * p as i64)));
        }
        for o in 0..orders {
            events.push(order(
                &format!("{s}-o{o}"),
                &s,
                &at(200 - 9 * o as i64),
                25.0,
            ));
        }
    }
    consents.push(consent("c-bot", "bot", grant, &at(600)));
    for p in 0..150 {
        let t = assent_protocol::Timestamp::from_unix_millis(now - 100_000 + p * 100);
        events.push(page(&format!("bot-{p}"), "bot", &t.to_string()));
    }
    let batch = json!({"consent": consents, "batch": events});
    let (status, answer) = app.post("/v1/batch", &batch).await;
    assert_eq!(status, 200, "{answer}");
    for s in ["u11", "bot"] {
        assert_eq!(profile_when(&app, s, |s, _| s == 200).await.0, 200);
    }
    let (_, p) = profile_when(&app, "u0", |_, v| v["events"] == 8).await;
    assert_eq!(p["events"], 8, "{p}");

    // A bad spec names its fault; nothing is stored.
    let (status, err) = app
        .admin_send(
            "POST",
            "/v1/segmentations/shoppers/models",
            &json!({"features": ["views_30d", "nope"], "clusters": {"fixed": 3}}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(err["error"]["message"].as_str().unwrap().contains("nope"));
    let spec = json!({"features": ["views_30d", "purchases_30d"], "clusters": {"best": {"from": 2, "to": 3}}, "seed": 7});
    let (status, v1) = app
        .admin_send("POST", "/v1/segmentations/shoppers/models", &spec)
        .await;
    assert_eq!(status, 200, "{v1}");
    assert_eq!(
        (v1["version"].clone(), v1["status"].clone()),
        (json!(1), json!("active"))
    );
    let report = &v1["report"];
    assert_eq!(report["profiles"], 13, "{report}");
    assert_eq!(report["bots"], 1, "the bot stays out");
    assert_eq!(report["trainedOn"], 12);
    assert_eq!(report["k"], 3, "silhouette finds the three kinds: {report}");

    // Profiles get the cluster of the active model: one per kind.
    let cluster = |s: String| {
        let app = &app;
        async move {
            let v = app
                .admin_json(&format!("/v1/profiles/{s}/segments?source=default"))
                .await;
            v["clusters"]["shoppers"].as_u64().expect("a cluster")
        }
    };
    let mut kinds = Vec::new();
    for i in 0..6 {
        kinds.push(cluster(format!("u{i}")).await);
    }
    assert_eq!(kinds[..3], kinds[3..], "{kinds:?}");
    assert!(kinds[0] != kinds[1] && kinds[1] != kinds[2] && kinds[0] != kinds[2]);

    // A Gaussian mixture and Ward's clustering, each a segmentation of its own.
    for (name, method) in [("mixture", json!({"gmm": "diag"})), ("tree", json!("ward"))] {
        let spec = json!({"features": ["views_30d", "purchases_30d"], "clusters": {"fixed": 3},
                          "method": method, "outliers": {"iqr": {"k": 3}}});
        let (status, v) = app
            .admin_send("POST", &format!("/v1/segmentations/{name}/models"), &spec)
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["report"]["k"], 3, "{v}");
        assert_eq!(v["report"]["bic"].is_number(), name == "mixture", "{v}");
    }
    let v = app
        .admin_json("/v1/profiles/u0/segments?source=default")
        .await;
    assert_eq!(v["clusters"].as_object().map(|o| o.len()), Some(3), "{v}");

    // One cluster has no silhouette: not better, so it stays a candidate.
    let one = json!({"features": ["views_30d"], "clusters": {"fixed": 1}, "outliers": {"robust_z": {"threshold": 3.5}}});
    let (status, v2) = app
        .admin_send("POST", "/v1/segmentations/shoppers/models", &one)
        .await;
    assert_eq!(status, 200, "{v2}");
    assert_eq!(v2["status"], "candidate", "{v2}");
    // Robust z-scores leave out the browsers' many views on so little data.
    assert_eq!(v2["report"]["outliers"], 4, "{v2}");
    // Promoted by hand, then rolled back to version 1.
    let (status, p) = app
        .admin_send(
            "POST",
            "/v1/segmentations/shoppers/promote",
            &json!({"version": 2}),
        )
        .await;
    assert_eq!((status, p["status"].clone()), (200, json!("active")), "{p}");
    assert_eq!(cluster("u1".into()).await, 0, "one cluster");
    let (status, back) = app
        .admin_send("POST", "/v1/segmentations/shoppers/rollback", &json!({}))
        .await;
    assert_eq!((status, back["version"].clone()), (200, json!(1)), "{back}");
    assert_eq!(cluster("u1".into()).await, kinds[1]);
    let list = app.admin_json("/v1/segmentations").await;
    let statuses: Vec<&str> = list["segmentations"]["shoppers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["retired", "active"], "{list}");
    assert_eq!(
        app.admin_send(
            "POST",
            "/v1/segmentations/shoppers/promote",
            &json!({"version": 9})
        )
        .await
        .0,
        400
    );
    assert_eq!(
        app.admin_send("POST", "/v1/segmentations/nope/rollback", &json!({}))
            .await
            .0,
        404
    );
    let export = app
        .admin_get("/v1/audit/export")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(export.matches("\"segment_model\"").count(), 6, "{export}");
}

pub async fn realtime_segmentation_turns_off_and_catches_up_without_a_restart(b: Backend) {
    let app = spawn_app(b).await;
    let at = minutes_ago();
    let grant = json!({"analytics": true, "personalization": true});
    let first = json!({"consent": [consent("c-d", "dora", grant, &at(60))],
                       "batch": [order("d-1", "dora", &at(30), 5.0)]});
    assert_eq!(app.post("/v1/batch", &first).await.0, 200);
    let (_, p) = profile_when(&app, "dora", |s, _| s == 200).await;
    assert_eq!(p["events"], 1);
    let realtime = app.admin_json("/v1/segmentation/realtime").await;
    assert_eq!(realtime, json!({"enabled": true, "setAt": null}));
    let (status, off) = app
        .admin_send(
            "PUT",
            "/v1/segmentation/realtime",
            &json!({"enabled": false}),
        )
        .await;
    assert_eq!(
        (status, off["enabled"].clone()),
        (200, json!(false)),
        "{off}"
    );
    assert_eq!(
        app.admin_send(
            "PUT",
            "/v1/segmentation/realtime",
            &json!({"enabled": "no"})
        )
        .await
        .0,
        400
    );
    // The consumer reads the switch within a second; then events wait in the feed.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let later =
        json!({"batch": [order("d-2", "dora", &at(20), 5.0), order("d-3", "dora", &at(10), 5.0)]});
    assert_eq!(app.post("/v1/batch", &later).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (_, p) = profile_when(&app, "dora", |_, _| true).await;
    assert_eq!(p["events"], 1, "off: nothing folded in");
    // On again: caught up, in order, without a restart.
    let (status, _) = app
        .admin_send(
            "PUT",
            "/v1/segmentation/realtime",
            &json!({"enabled": true}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, p) = profile_when(&app, "dora", |_, v| v["events"] == 3).await;
    assert_eq!(p["events"], 3, "{p}");
    let export = app
        .admin_get("/v1/audit/export")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(export.matches("\"setting_changed\"").count(), 2);
}

pub async fn identify_and_alias_merge_profiles_and_a_withdrawal_takes_back_its_events(b: Backend) {
    let app = spawn_app(b).await;
    let at = minutes_ago();
    let grant = json!({"analytics": true, "personalization": true});
    let consents: Vec<Value> = ["phone", "laptop", "old-id"]
        .iter()
        .map(|s| consent(&format!("c-{s}"), s, grant.clone(), &at(120)))
        .collect();
    // Two devices and an old id, each with its own events, not yet known as one person.
    let first = json!({"consent": consents, "batch": [
        page("ph-1", "phone", &at(100)), page("lp-1", "laptop", &at(90)),
        order("old-1", "old-id", &at(80), 12.0)]});
    assert_eq!(app.post("/v1/batch", &first).await.0, 200);
    for s in ["phone", "laptop", "old-id"] {
        assert_eq!(profile_when(&app, s, |s, _| s == 200).await.0, 200, "{s}");
    }
    // Both devices identify as user-9; the old id is aliased to it.
    let identify = |id: &str, device: &str, minutes_ago: i64| {
        json!({"messageId": id, "type": "identify", "anonymousId": device, "userId": "user-9",
               "timestamp": at(minutes_ago), "traits": {"plan": "pro"}})
    };
    let merges = json!({"batch": [identify("id-1", "phone", 70), identify("id-2", "laptop", 60),
        {"messageId": "al-1", "type": "alias", "previousId": "old-id", "userId": "user-9", "anonymousId": "phone",
         "timestamp": at(50)},
        page("ph-2", "phone", &at(40))]});
    let (status, answer) = app.post("/v1/batch", &merges).await;
    assert_eq!(status, 200, "{answer}");
    // One profile, found from any of the ids: 3 events before, 2 identifies, the alias
    // and the page after.
    let (_, p) = profile_when(&app, "user-9", |s, v| s == 200 && v["events"] == 7).await;
    assert_eq!(p["events"], 7, "{p}");
    for s in ["phone", "laptop", "old-id"] {
        let (_, v) = profile_when(&app, s, |_, _| true).await;
        assert_eq!(v["events"], 7, "{s}: {v}");
    }
    assert_eq!(
        p["features"]["windows"][0]["purchases"], 1,
        "the old id's order came along"
    );
    // The merges are recorded and shown to the subject.
    let access = app.admin_json("/v1/subjects/laptop").await;
    let links = access["identityLinks"].as_array().unwrap();
    assert_eq!(links.len(), 1, "{access}");
    assert_eq!(links[0]["kind"], "identify");
    let access = app.admin_json("/v1/subjects/old-id").await;
    assert_eq!(access["identityLinks"][0]["kind"], "alias", "{access}");
    // The profile holds the laptop's events: its access shows them.
    assert!(!access["profiles"][0]["events"]
        .as_array()
        .unwrap()
        .is_empty());

    // The laptop withdraws personalization: its events leave the merged profile, the
    // others' stay.
    let withdraw =
        json!({"consent": [consent("c-laptop-2", "laptop", json!({"analytics": true}), &at(1))]});
    assert_eq!(app.post("/v1/batch", &withdraw).await.0, 200);
    let (_, p) = profile_when(&app, "user-9", |_, v| v["events"] == 5).await;
    assert_eq!(p["events"], 5, "{p}");
    assert_eq!(
        app.admin_json("/v1/subjects/laptop").await["identityLinks"],
        json!([])
    );
    // Erasing the user erases the merged profile and every link into it.
    assert_eq!(app.admin_delete("/v1/subjects/user-9").await.status(), 200);
    let (status, _) = profile_when(&app, "phone", |s, _| s == 404).await;
    assert_eq!(status, 404);
    assert_eq!(app.count("identity_links").await, 0);
    assert_eq!(app.count("profile_events").await, 0);
}

pub async fn duplicate_profiles_are_proposed_and_merged_when_confirmed(b: Backend) {
    let app = spawn_app(b).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let at = |minutes_ago: i64| {
        assent_protocol::Timestamp::from_unix_millis(now - minutes_ago * 60_000).to_string()
    };
    let grant = json!({"analytics": true, "personalization": true});
    let people = [
        (
            "d1",
            json!({"firstName": "Ana", "lastName": "Lima", "email": "Ana.Lima+news@gmail.com", "phone": "+351 912 345 678"}),
        ),
        (
            "d2",
            json!({"name": "ana lima", "email": "analima@gmail.com", "phone": "+351912345678"}),
        ),
        (
            "d3",
            json!({"name": "Bruno Costa", "email": "bruno@example.org"}),
        ),
        (
            "d4",
            json!({"name": "Bruna Costa", "email": "bruna.c@example.net", "phone": "+44 20 7946 0000"}),
        ),
    ];
    let consents: Vec<Value> = people
        .iter()
        .map(|(s, _)| consent(&format!("c-{s}"), s, grant.clone(), &at(60)))
        .collect();
    let events: Vec<Value> = people
        .iter()
        .map(|(s, traits)| {
            json!({"messageId": format!("i-{s}"), "type": "identify", "anonymousId": s,
                                   "timestamp": at(30), "traits": traits})
        })
        .chain([order("o-d2", "d2", &at(20), 40.0)])
        .collect();
    assert_eq!(
        app.post("/v1/batch", &json!({"consent": consents, "batch": events}))
            .await
            .0,
        200
    );
    let (_, p) = profile_when(&app, "d2", |_, v| v["events"] == 2).await;
    assert_eq!(p["events"], 2, "{p}");
    assert_eq!(profile_when(&app, "d4", |s, _| s == 200).await.0, 200);

    let (status, scan) = app
        .admin_send("POST", "/v1/duplicates/scan?source=default", &json!({}))
        .await;
    assert_eq!(status, 200, "{scan}");
    assert_eq!(scan["profiles"], 4);
    assert_eq!(scan["proposed"], 1, "only ana's two profiles: {scan}");
    let list = app.admin_json("/v1/duplicates?source=default").await;
    let proposal = &list["duplicates"][0];
    assert_eq!(proposal["status"], "proposed", "{list}");
    assert!(
        !list.to_string().contains("Lima"),
        "pseudonyms only: {list}"
    );
    let (subject, duplicate) = (
        proposal["subject"].as_str().unwrap().to_owned(),
        proposal["duplicate"].as_str().unwrap().to_owned(),
    );
    let decide =
        |decision: &str| json!({"subject": subject, "duplicate": duplicate, "decision": decision});
    assert_eq!(
        app.admin_send(
            "POST",
            "/v1/duplicates/decide?source=default",
            &decide("maybe")
        )
        .await
        .0,
        400
    );
    let (status, done) = app
        .admin_send(
            "POST",
            "/v1/duplicates/decide?source=default",
            &decide("confirm"),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    // Decided once: a second decision finds nothing proposed.
    assert_eq!(
        app.admin_send(
            "POST",
            "/v1/duplicates/decide?source=default",
            &decide("reject")
        )
        .await
        .0,
        404
    );
    // One profile now, found from either id, with both identifies and the order.
    for s in ["d1", "d2"] {
        let (_, v) = profile_when(&app, s, |_, _| true).await;
        assert_eq!(v["events"], 3, "{s}: {v}");
    }
    // A new scan does not propose the confirmed pair again.
    let (_, scan) = app
        .admin_send("POST", "/v1/duplicates/scan?source=default", &json!({}))
        .await;
    assert_eq!(scan["proposed"], 0, "{scan}");
    let access = app.admin_json("/v1/subjects/d1").await;
    assert_eq!(
        access["duplicateProposals"][0]["status"], "confirmed",
        "{access}"
    );
    assert_eq!(access["identityLinks"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        app.admin_send("POST", "/v1/duplicates/scan?source=nope", &json!({}))
            .await
            .0,
        404
    );
}

pub async fn profiles_keep_countries_as_codes_and_amounts_in_one_currency(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(b, dir.path()).await;
    let mut c = config(&url);
    c.segmentation_currency = "EUR".into();
    c.segmentation_currency_rates = "USD=0.5,GBP=1.25".into();
    let app = spawn_with(c, dir).await;
    let at = minutes_ago();
    let priced = |id: &str, revenue: f64, currency: &str| {
        json!({"messageId": id, "type": "track", "event": "Order Completed", "anonymousId": "nia",
               "timestamp": at(10), "properties": {"revenue": revenue, "currency": currency, "tags": ["Shoes"]},
               "context": {"location": {"country": "PRT"},
                           "userAgent": "Mozilla/5.0 (Linux; Android 14) Mobile Safari/537.36"}})
    };
    let batch = json!({
        "consent": [consent("c-n", "nia", json!({"personalization": true, "analytics": true}), &at(60))],
        "batch": [priced("n-1", 10.0, "USD"), priced("n-2", 8.0, "gbp"), priced("n-3", 1.0, "EUR"),
                  priced("n-4", 100.0, "JPY")]
    });
    assert_eq!(app.post("/v1/batch", &batch).await.0, 200);
    let (_, p) = profile_when(&app, "nia", |_, v| v["events"] == 4).await;
    // 10 USD = 5, 8 GBP = 10, 1 EUR = 1; the yen, without a rate, counts as given.
    assert_eq!(p["features"]["windows"][0]["revenue"], 116.0, "{p}");
    assert_eq!(p["features"]["country"], "PT", "{p}");
    assert_eq!(
        p["features"]["device_type"], "mobile",
        "from the user agent"
    );
    let access = app.admin_json("/v1/subjects/nia").await;
    let events = access["profiles"][0]["events"].as_array().unwrap();
    let yen = events
        .iter()
        .find(|e| e["message_id"] == "n-4" || e["messageId"] == "n-4")
        .expect("the yen order");
    assert_eq!(yen["properties"]["currency_unconverted"], true, "{yen}");
}
