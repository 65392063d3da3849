use std::io::Write;

use serde_json::{json, Value};
use sqlx::Row;

use assent_collector::Config;

use crate::helpers::*;

const T0: &str = "2026-11-29T10:00:00.000Z";
const T1: &str = "2026-11-29T10:00:05.000Z";

pub async fn a_batch_is_checked_event_by_event_and_consent_is_enforced(b: Backend) {
    let app = spawn_app(b).await;
    let body = json!({
        "batch": [
            track("e1", "anon-1", None, T1),
            track("e2", "anon-1", Some("advertising"), T1),
            {"messageId": "e3", "type": "track", "anonymousId": "anon-1"},
            track("e4", "anon-1", Some("necessary"), T1),
            track("e5", "anon-2", None, T1),
            "not an event",
        ],
        "consent": [consent("c1", "anon-1", json!({"analytics": true}), T0)],
    });
    let (status, answer) = app.post("/v1/batch", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(answer["duplicates"], 0);
    let rejected: Vec<(u64, &str)> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rejected,
        vec![
            (1, "no_consent"),
            (2, "invalid"),
            (4, "no_consent"),
            (5, "invalid")
        ]
    );
    assert_eq!(app.count("events").await, 2);
    assert_eq!(app.count("dead_letters").await, 4);
    assert_eq!(app.count("consent_records").await, 1);
}

pub async fn duplicates_are_stored_once(b: Backend) {
    let app = spawn_app(b).await;
    let body = json!({"batch": [track("d1", "a", Some("necessary"), T1), track("d1", "a", Some("necessary"), T1)]});
    let (_, first) = app.post("/v1/batch", &body).await;
    assert_eq!(
        (first["accepted"].as_u64(), first["duplicates"].as_u64()),
        (Some(1), Some(1))
    );
    let (_, again) = app.post("/v1/batch", &body).await;
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(app.count("events").await, 1);
    // Inserts come in a few sizes, padded with copies of their last row: the copies count
    // neither as stored nor as duplicates, whether that row is new or not.
    for (ids, stored, duplicates) in [
        (&["d2", "d3", "d1"][..], 2, 1),
        (&["d4", "d5", "d6"][..], 3, 0),
        (&["d7", "d8", "d9", "d10", "d2"][..], 4, 1),
    ] {
        let batch: Vec<Value> = ids
            .iter()
            .map(|id| track(id, "a", Some("necessary"), T1))
            .collect();
        let (_, answer) = app.post("/v1/batch", &json!({ "batch": batch })).await;
        assert_eq!(
            (answer["accepted"].as_u64(), answer["duplicates"].as_u64()),
            (Some(stored), Some(duplicates)),
            "{answer}"
        );
    }
    assert_eq!(app.count("events").await, 10);
}

/// Requests are written together, one transaction for all waiting. One whose rows the
/// database refuses (here a trigger, standing in for any failure of one write) fails alone
/// with 503 and leaves nothing; the requests written with it are written again without it.
pub async fn a_failing_write_fails_only_its_own_request(b: Backend) {
    let app = spawn_app(b).await;
    let poison = match b {
        Backend::Sqlite => vec![
            "CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.message_id = 'poison'
             BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
        ],
        Backend::Postgres => vec![
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.message_id = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF;
             RETURN NEW; END $$",
            "CREATE TRIGGER poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION poison()",
        ],
    };
    for sql in poison {
        sqlx::query(sql).execute(&app.state.db.pool).await.unwrap();
    }
    let requests = (0..24).map(|r| {
        let batch: Vec<Value> = (0..10)
            .map(|e| {
                let id = if r == 7 && e == 3 {
                    "poison".to_owned()
                } else {
                    format!("r{r}-e{e}")
                };
                track(&id, &format!("s{r}"), Some("necessary"), T1)
            })
            .collect();
        let app = &app;
        async move { app.post("/v1/batch", &json!({ "batch": batch })).await }
    });
    let answers = futures_util::future::join_all(requests).await;
    for (r, (status, answer)) in answers.iter().enumerate() {
        if r == 7 {
            assert_eq!(*status, 503, "{answer}");
        } else {
            assert_eq!(
                (*status, answer["accepted"].as_u64()),
                (200, Some(10)),
                "{answer}"
            );
        }
    }
    assert_eq!(app.count("events").await, 230);
}

pub async fn consent_in_the_same_batch_counts_and_time_matters(b: Backend) {
    let app = spawn_app(b).await;
    // Granted at 10:00:00, withdrawn at 10:00:10: an event at 10:00:05 is consented, one
    // at 10:00:15 is not, one before the grant is not.
    let body = json!({
        "batch": [
            track("t1", "s", None, "2026-11-29T09:59:59.000Z"),
            track("t2", "s", None, "2026-11-29T10:00:05.000Z"),
            track("t3", "s", None, "2026-11-29T10:00:15.000Z"),
        ],
        "consent": [
            consent("g", "s", json!({"analytics": true}), "2026-11-29T10:00:00.000Z"),
            consent("w", "s", json!({"analytics": false}), "2026-11-29T10:00:10.000Z"),
        ],
    });
    let (_, answer) = app.post("/v1/batch", &body).await;
    assert_eq!(answer["accepted"], 1, "{answer}");
    let codes: Vec<u64> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, vec![0, 2]);
    // Records stored earlier count for later batches.
    let (_, later) = app
        .post(
            "/v1/batch",
            &json!({"batch": [track("t4", "s", None, "2026-11-29T10:00:06.000Z")]}),
        )
        .await;
    assert_eq!(later["accepted"], 1, "{later}");
}

pub async fn every_way_to_present_a_key_works_and_wrong_keys_fail(b: Backend) {
    let app = spawn_app(b).await;
    let event = |id: &str| json!({"batch": [track(id, "a", Some("necessary"), T1)]});
    let url = format!("{}/v1/batch", app.url);
    let c = &app.client;
    let ok = c
        .post(&url)
        .basic_auth(WRITE_KEY, Some(""))
        .json(&event("k1"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let ok = c
        .post(&url)
        .bearer_auth(WRITE_KEY)
        .json(&event("k2"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let mut with_key = event("k3");
    with_key["writeKey"] = WRITE_KEY.into();
    let ok = c
        .post(&url)
        .header("content-type", "text/plain;charset=UTF-8")
        .body(with_key.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "sendBeacon style");
    for (req, want) in [
        (c.post(&url).json(&event("x1")), 401),
        (
            c.post(&url)
                .basic_auth("wk_forged_key_000000000000", Some(""))
                .json(&event("x2")),
            401,
        ),
        (
            c.post(&url)
                .header("authorization", "Basic !!!")
                .json(&event("x3")),
            401,
        ),
        (
            c.post(&url).bearer_auth(ADMIN_TOKEN).json(&event("x4")),
            403,
        ),
    ] {
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), want);
        let body: Value = r.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    // On the compliance routes a write key is answered as an unknown key is: the public
    // write keys cannot be told apart from nonsense there.
    for key in [WRITE_KEY, "wk_forged_key_000000000000"] {
        let r = c
            .get(format!("{}/v1/audit/verify", app.url))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "a write key is not a compliance token");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["message"], "missing or unknown key");
    }
    // A revoked key stops working at once.
    let key = assent_collector::keys::create(
        &app.state.keys,
        assent_collector::keys::Role::Write,
        Some("mobile"),
        None,
        "t",
        "test",
    )
    .await
    .unwrap();
    let r = c
        .post(&url)
        .basic_auth(&key.raw, Some(""))
        .json(&event("r1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assent_collector::keys::revoke(&app.state.keys, &key.id, "test")
        .await
        .unwrap();
    let r = c
        .post(&url)
        .basic_auth(&key.raw, Some(""))
        .json(&event("r2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(app.count("events").await, 4);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

pub async fn bad_input_gets_its_4xx_and_changes_nothing(b: Backend) {
    let app = spawn_app(b).await;
    let before = app.counts().await;
    let json = "application/json";
    let auth = format!("Bearer {WRITE_KEY}");
    let zeros = vec![b' '; 200 * 1024 * 1024];
    let bomb = gzip(&zeros);
    drop(zeros);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let huge_string = format!(
        r#"{{"batch":[{{"messageId":"h","type":"track","event":"{}","anonymousId":"a"}}]}}"#,
        "x".repeat(600_000)
    );
    let valid = json!({"batch": [track("ok", "a", Some("necessary"), T1)]}).to_string();
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        ("malformed", vec![], b"{\"batch\": [".to_vec(), 400),
        ("truncated", vec![], b"{\"batch\": [{\"messageId\": \"m\"".to_vec(), 400),
        ("not an object", vec![], b"[1, 2, 3]".to_vec(), 400),
        ("batch of the wrong type", vec![], br#"{"batch": {"a": 1}}"#.to_vec(), 400),
        ("invalid utf-8", vec![], vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'], 400),
        ("deep nesting", vec![], deep.into_bytes(), 400),
        ("huge number sentAt", vec![], br#"{"batch": [], "sentAt": 1e999999}"#.to_vec(), 400),
        ("bad sentAt", vec![], br#"{"batch": [], "sentAt": "yesterday"}"#.to_vec(), 400),
        ("bad consent record", vec![], br#"{"batch": [], "consent": [{"consentId": "x"}]}"#.to_vec(), 400),
        ("sql-looking consent", vec![], br#"{"consent": [{"consentId": "'; DROP TABLE events; --", "subjectId": "x", "purposes": {"analytics": "yes'); --"}}]}"#.to_vec(), 400),
        ("oversize", vec![], huge_string.into_bytes(), 413),
        ("gzip bomb", vec![("content-encoding", "gzip".into())], bomb, 413),
        ("not gzip", vec![("content-encoding", "gzip".into())], b"plain".to_vec(), 400),
        ("unknown encoding", vec![("content-encoding", "br".into())], valid.clone().into_bytes(), 415),
        ("wrong type", vec![("content-type", "application/xml".into())], valid.clone().into_bytes(), 415),
        ("no key", vec![("authorization", String::new())], valid.clone().into_bytes(), 401),
    ];
    for (name, extra, body, want) in cases {
        let mut headers: Vec<(&str, String)> = vec![
            ("content-type", json.into()),
            ("authorization", auth.clone()),
        ];
        for (k, v) in extra {
            headers.retain(|(h, _)| *h != k);
            if !v.is_empty() {
                headers.push((k, v));
            }
        }
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, answer, _) = match app.try_raw("/v1/batch", &h, body).await {
            Ok(answer) => answer,
            // A body refused for its size is not read to its end: the connection closes
            // with the rest unread, and the client, still sending, may see the reset
            // before the 413. Refused either way; the counts below check nothing was
            // stored.
            Err(e) if want == 413 && e.is_request() => continue,
            Err(e) => panic!("{name}: {e}"),
        };
        assert_eq!(status, want, "{name}: {answer}");
        assert!(answer["error"]["code"].is_string(), "{name}: {answer}");
        assert!(answer["error"]["message"].is_string(), "{name}: {answer}");
    }
    assert_eq!(
        app.counts().await,
        before,
        "nothing from a refused request is stored"
    );
    // SQL-looking strings inside a valid event are data, not SQL.
    let sneaky = json!({"batch": [{"messageId": "'; DROP TABLE events; --", "type": "track", "event": "x' OR '1'='1",
        "anonymousId": "a\"); DELETE FROM consent_records; --", "purpose": "necessary"}]});
    let (status, answer) = app.post("/v1/batch", &sneaky).await;
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    assert_eq!(app.count("events").await, 1);
}

pub async fn identifiers_and_addresses_are_never_stored_raw(b: Backend) {
    let app = spawn_app(b).await;
    let raw_anon = "raw-anonymous-id-123";
    let raw_user = "alice@example.com";
    let mut e = track("p1", raw_anon, None, T1);
    e["userId"] = raw_user.into();
    e["context"] = json!({"ip": "203.0.113.77", "library": {"name": "x", "version": "1"}});
    let mut bad = track("p2", raw_anon, Some("advertising"), T1);
    bad["userId"] = raw_user.into();
    let body = json!({"batch": [e, bad], "consent": [consent("c", raw_anon, json!({"analytics": true}), T0)]});
    let (_, answer) = app.post("/v1/batch", &body).await;
    assert_eq!(answer["accepted"], 1, "{answer}");
    let mut dump = String::new();
    for table in ["events", "consent_records", "dead_letters", "audit_data"] {
        // PostgreSQL: every column as JSON text (sqlx's Any driver reads no xid8).
        let sql = match b {
            Backend::Sqlite => format!("SELECT * FROM {table}"),
            Backend::Postgres => format!("SELECT to_jsonb(t)::text FROM {table} t"),
        };
        let rows = sqlx::query(&sql)
            .fetch_all(&app.state.db.pool)
            .await
            .unwrap();
        for row in rows {
            for i in 0..sqlx::Row::len(&row) {
                if let Ok(Some(s)) = row.try_get::<Option<String>, _>(i) {
                    dump.push_str(&s);
                    dump.push('\n');
                }
            }
        }
    }
    for raw in [raw_anon, raw_user, "203.0.113.77"] {
        assert!(!dump.contains(raw), "{raw} stored raw:\n{dump}");
    }
    let pseudonym = app.state.pseudonymizer.pseudonym(raw_anon);
    assert!(dump.contains(pseudonym.as_str()));
    assert!(
        dump.contains("127.0.0.0/24"),
        "the client address is kept truncated"
    );
}

pub async fn clock_skew_is_corrected_from_sent_at(b: Backend) {
    let app = spawn_app(b).await;
    // The device clock is 1 hour ahead: sentAt says 11:00, the server receives now.
    let now = assent_protocol::Timestamp::from_unix_millis(app.state.clock.now_ms());
    let device_now = assent_protocol::Timestamp::from_unix_millis(now.unix_millis() + 3_600_000);
    let event_time =
        assent_protocol::Timestamp::from_unix_millis(device_now.unix_millis() - 60_000);
    let body = json!({"batch": [track("s1", "a", Some("necessary"), &event_time.to_string())], "sentAt": device_now.to_string()});
    let (_, answer) = app.post("/v1/batch", &body).await;
    assert_eq!(answer["accepted"], 1);
    let row = sqlx::query(
        "SELECT timestamp_ms, original_timestamp_ms, received_at_ms, sent_at_ms FROM events",
    )
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    let (corrected, original, received, sent): (i64, i64, i64, i64) = (
        row.try_get(0).unwrap(),
        row.try_get(1).unwrap(),
        row.try_get(2).unwrap(),
        row.try_get(3).unwrap(),
    );
    assert_eq!(original, event_time.unix_millis());
    assert_eq!(sent, device_now.unix_millis());
    assert_eq!(
        corrected,
        received - 60_000,
        "one minute before it was received"
    );
}

pub async fn consent_endpoints_record_and_return_the_current_state(b: Backend) {
    let app = spawn_app(b).await;
    let (status, answer) = app
        .post(
            "/v1/consent",
            &consent("one", "visitor", json!({"analytics": true}), T0),
        )
        .await;
    assert_eq!((status, answer["accepted"].as_u64()), (201, Some(1)));
    let records = json!({"records": [
        consent("two", "visitor", json!({"analytics": true, "advertising": true}), T1),
        consent("three", "other", json!({"personalization": true}), T1),
    ]});
    let (status, _) = app.post("/v1/consent", &records).await;
    assert_eq!(status, 201);
    // The write key is public: with it nobody reads a subject's choices or learns which
    // ids exist.
    for id in ["visitor", "nobody"] {
        let r = app
            .client
            .get(format!("{}/v1/consent/{id}?source=default", app.url))
            .basic_auth(WRITE_KEY, Some(""))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = app.admin_get("/v1/consent/visitor").await;
    assert_eq!(r.status(), 400, "the source must be named");
    let r = app.admin_get("/v1/consent/visitor?source=default").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let state: Value = r.json().await.unwrap();
    assert_eq!(
        state["purposes"],
        json!({"analytics": true, "advertising": true, "necessary": true})
    );
    assert_eq!(state["timestamp"], T1);
    let r = app.admin_get("/v1/consent/nobody?source=default").await;
    assert_eq!(r.status(), 404);
    let r = app
        .admin_get("/v1/consent/visitor?source=nosuchsource")
        .await;
    assert_eq!(r.status(), 404);
    // Re-sending a record is idempotent.
    app.post(
        "/v1/consent",
        &consent("one", "visitor", json!({"analytics": true}), T0),
    )
    .await;
    assert_eq!(app.count("consent_records").await, 3);
    let (status, _) = app.post("/v1/consent", &json!({"records": []})).await;
    assert_eq!(status, 400);
}

async fn export(app: &TestApp, format: &str) -> String {
    let r = app
        .admin_get(&format!("/v1/audit/export?format={format}"))
        .await;
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

fn verify_text(text: &str, ext: &str, app: &TestApp) -> assent_collector::audit::Report {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("audit.{ext}"));
    std::fs::write(&path, text).unwrap();
    assent_collector::cli::verify_file(&path, Some(&app.state.pseudonymizer)).unwrap()
}

pub async fn the_audit_trail_exports_and_verifies_and_detects_tampering(b: Backend) {
    let app = spawn_app(b).await;
    for i in 0..12 {
        app.post(
            "/v1/consent",
            &consent(
                &format!("c{i}"),
                &format!("s{i}"),
                json!({"analytics": i % 2 == 0}),
                T0,
            ),
        )
        .await;
    }
    let verify: Value = app
        .admin_get("/v1/audit/verify")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
    assert!(
        verify["checkpoints_verified"].as_u64().unwrap() >= 2,
        "{verify}"
    );

    let jsonl = export(&app, "jsonl").await;
    let lines: Vec<&str> = jsonl.lines().collect();
    assert!(lines.len() >= 15, "{} lines", lines.len());
    let report = verify_text(&jsonl, "jsonl", &app);
    assert!(report.ok, "{report:?}");

    let csv = export(&app, "csv").await;
    assert!(csv.starts_with("seq,at,kind,actor,data_hash,prev_hash,hash,data\r\n"));
    assert!(verify_text(&csv, "csv", &app).ok);

    // Altered data, a removed entry, a reordering: each is named at its first entry.
    let mut altered: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    let target = (5..altered.len())
        .find(|&i| altered[i].contains("\"kind\":\"consent\""))
        .unwrap();
    let target_seq: i64 = serde_json::from_str::<Value>(&altered[target]).unwrap()["seq"]
        .as_i64()
        .unwrap();
    let forged =
        altered[target].replace("purposes\\\":{", "purposes\\\":{\\\"advertising\\\":true,");
    assert_ne!(forged, altered[target]);
    altered[target] = forged;
    let r = verify_text(&altered.join("\n"), "jsonl", &app);
    assert_eq!(
        r.first_break.as_ref().map(|b| b.seq),
        Some(target_seq),
        "{r:?}"
    );
    // The first line is the export's anchor: line i holds entry i.
    let mut removed: Vec<&str> = lines.clone();
    removed.remove(7);
    let r = verify_text(&removed.join("\n"), "jsonl", &app);
    assert_eq!(r.first_break.as_ref().map(|b| b.seq), Some(8), "{r:?}");
    let mut swapped = lines.clone();
    swapped.swap(3, 4);
    let r = verify_text(&swapped.join("\n"), "jsonl", &app);
    assert_eq!(r.first_break.as_ref().map(|b| b.seq), Some(4), "{r:?}");

    let r = app.admin_get("/v1/audit/export?format=xml").await;
    assert_eq!(r.status(), 400);
    let r = app.admin_get("/v1/audit/export?from=not-a-date").await;
    assert_eq!(r.status(), 400);
    // Exports are themselves audited.
    let kinds: Vec<String> = sqlx::query("SELECT kind FROM audit_log ORDER BY seq")
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String, _>(0).unwrap())
        .collect();
    assert!(kinds.iter().filter(|k| *k == "audit_export").count() >= 2);
}

pub async fn the_audit_log_refuses_updates_and_deletes(b: Backend) {
    let app = spawn_app(b).await;
    app.post(
        "/v1/consent",
        &consent("c", "s", json!({"analytics": true}), T0),
    )
    .await;
    let pool = &app.state.db.pool;
    assert!(sqlx::query("UPDATE audit_log SET actor = 'mallory'")
        .execute(pool)
        .await
        .is_err());
    assert!(sqlx::query("DELETE FROM audit_log")
        .execute(pool)
        .await
        .is_err());
    let verify: Value = app
        .admin_get("/v1/audit/verify")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(verify["ok"], true);
}

pub async fn subject_access_and_erasure_keep_the_chain_verifying(b: Backend) {
    let app = spawn_app(b).await;
    let body = json!({
        "batch": [track("a1", "erase-me", None, T1), track("a2", "erase-me", None, T1), track("k1", "keep-me", Some("necessary"), T1)],
        "consent": [consent("c1", "erase-me", json!({"analytics": true}), T0), consent("c2", "keep-me", json!({}), T0)],
    });
    assert_eq!(app.post("/v1/batch", &body).await.1["accepted"], 3);
    // On SQLite these go into the bulk-filled subject index, in two runs; the last one
    // stays in the tail that lookups scan. All must be found, and erased.
    assent_collector::storage::subject_index::merge(&app.state.db)
        .await
        .unwrap();
    let second = json!({"batch": [track("a4", "erase-me", None, T1)]});
    assert_eq!(app.post("/v1/batch", &second).await.1["accepted"], 1);
    assent_collector::storage::subject_index::merge(&app.state.db)
        .await
        .unwrap();
    let tail = json!({"batch": [track("a3", "erase-me", None, T1)]});
    assert_eq!(app.post("/v1/batch", &tail).await.1["accepted"], 1);
    if b == Backend::Sqlite {
        // A forged index entry, as a 64-bit key collision would make: erase-me's key
        // pointing at keep-me's event. Neither access nor erasure may follow it.
        let key = assent_collector::pseudonym::subject_key(
            app.state.pseudonymizer.pseudonym("erase-me").as_str(),
        );
        sqlx::query(
            "INSERT INTO event_subjects (run, subject_key, seq)
             SELECT (SELECT MAX(run) FROM event_subject_runs), $1, seq FROM events WHERE message_id = 'k1'",
        )
        .bind(key)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    }
    let access: Value = app
        .admin_get("/v1/subjects/erase-me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(access["events"].as_array().unwrap().len(), 4, "{access}");
    assert_eq!(access["consent"].as_array().unwrap().len(), 1);

    let r = app
        .client
        .delete(format!("{}/v1/subjects/erase-me", app.url))
        .bearer_auth(WRITE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app.admin_delete("/v1/subjects/erase-me").await;
    assert_eq!(r.status(), 200);
    let summary: Value = r.json().await.unwrap();
    assert_eq!(summary["events"], 4);
    let after: Value = app
        .admin_get("/v1/subjects/erase-me")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        after["events"].as_array().unwrap().is_empty()
            && after["consent"].as_array().unwrap().is_empty()
    );
    let kept: Value = app
        .admin_get("/v1/subjects/keep-me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kept["events"].as_array().unwrap().len(), 1);
    let verify: Value = app
        .admin_get("/v1/audit/verify")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        verify["ok"], true,
        "erasure must not break the chain: {verify}"
    );
    let exported = export(&app, "jsonl").await;
    assert!(
        exported.contains("\"kind\":\"erasure\"")
            && exported.contains("\"kind\":\"subject_access\"")
    );
    assert!(verify_text(&exported, "jsonl", &app).ok);
}

pub async fn segment_consent_stamps_count_and_are_recorded(b: Backend) {
    let app = spawn_app(b).await;
    let stamped_for = |id: &str, subject: &str, analytics: bool| {
        let mut e = track(id, subject, None, T1);
        e["context"] = json!({"consent": {"categoryPreferences": {"Analytics": analytics, "Advertising": false}}});
        e
    };
    let stamped = |id: &str, analytics: bool| stamped_for(id, "seg-user", analytics);
    // By default an event cannot vouch for itself.
    let (_, answer) = app
        .post("/v1/batch", &json!({"batch": [stamped("s0", true)]}))
        .await;
    assert_eq!(answer["rejected"][0]["code"], "no_consent", "{answer}");
    assert_eq!(app.count("consent_records").await, 0);
    let trust = assent_collector::keys::sources::SourceSettings {
        trust_consent_stamps: Some(true),
        ..Default::default()
    };
    assent_collector::keys::sources::set(&app.state.keys, "default", trust, "test")
        .await
        .unwrap();
    let (_, answer) = app
        .post(
            "/v1/batch",
            &json!({"batch": [stamped("s1", true), stamped("s2", true)]}),
        )
        .await;
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(
        app.count("consent_records").await,
        1,
        "recorded once, when it changed the state"
    );
    let (_, answer) = app
        .post("/v1/batch", &json!({"batch": [stamped("s3", false)]}))
        .await;
    assert_eq!(answer["rejected"][0]["code"], "no_consent");
    let origin: String = sqlx::query("SELECT origin FROM consent_records LIMIT 1")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(origin, "api");
    // A consent record in force always wins over a stamp, even where stamps are trusted.
    let (status, _) = app
        .post(
            "/v1/consent",
            &consent("real", "recorded-user", json!({"analytics": false}), T0),
        )
        .await;
    assert_eq!(status, 201);
    let (_, answer) = app
        .post(
            "/v1/batch",
            &json!({"batch": [stamped_for("s4", "recorded-user", true)]}),
        )
        .await;
    assert_eq!(answer["rejected"][0]["code"], "no_consent", "{answer}");
    let stamps: i64 = sqlx::query(
        "SELECT COUNT(*) FROM consent_records WHERE policy_version = 'segment-consent-stamp'",
    )
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap()
    .try_get(0)
    .unwrap();
    assert_eq!(stamps, 2, "the stamp over a record is not recorded either");
}

pub async fn single_event_endpoints_take_the_type_from_the_path(b: Backend) {
    let app = spawn_app(b).await;
    app.post(
        "/v1/consent",
        &consent("c", "u", json!({"analytics": true}), T0),
    )
    .await;
    for (path, body) in [
        (
            "/v1/track",
            json!({"messageId": "1", "event": "E", "anonymousId": "u", "timestamp": T1}),
        ),
        (
            "/v1/identify",
            json!({"messageId": "2", "anonymousId": "u", "traits": {"plan": "pro"}, "timestamp": T1}),
        ),
        (
            "/v1/page",
            json!({"messageId": "3", "name": "Home", "anonymousId": "u", "timestamp": T1}),
        ),
        (
            "/v1/screen",
            json!({"messageId": "4", "name": "Cart", "anonymousId": "u", "timestamp": T1}),
        ),
        (
            "/v1/group",
            json!({"messageId": "5", "groupId": "acme", "anonymousId": "u", "timestamp": T1}),
        ),
        (
            "/v1/alias",
            json!({"messageId": "6", "previousId": "u", "userId": "v", "anonymousId": "u", "timestamp": T1}),
        ),
    ] {
        let (status, answer) = app.post(path, &body).await;
        assert_eq!(
            (status, answer["accepted"].as_u64()),
            (200, Some(1)),
            "{path}: {answer}"
        );
    }
    // sendBeacon style: the key in the body, no header; it is not stored with the event.
    let beacon = json!({"messageId": "7", "event": "Beacon", "anonymousId": "u", "timestamp": T1, "writeKey": WRITE_KEY});
    let (status, answer, _) = app
        .raw(
            "/v1/track",
            &[("content-type", "text/plain;charset=UTF-8")],
            beacon.to_string().into_bytes(),
        )
        .await;
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    let payload: String = sqlx::query("SELECT payload FROM events WHERE message_id = '7'")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert!(!payload.contains(WRITE_KEY));
    let types: Vec<String> = sqlx::query("SELECT type FROM events ORDER BY message_id")
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get(0).unwrap())
        .collect();
    assert_eq!(
        types,
        ["track", "identify", "page", "screen", "group", "alias", "track"]
    );
}

pub async fn health_readiness_metrics_and_openapi(b: Backend) {
    let app = spawn_app(b).await;
    let get = |p: &str| app.client.get(format!("{}{p}", app.url)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    app.post(
        "/v1/batch",
        &json!({"batch": [track("m", "a", Some("necessary"), T1), track("n", "a", None, T1)]}),
    )
    .await;
    // The counts say how busy each site is: the compliance token or the metrics token.
    let r = get("/metrics").await.unwrap();
    assert_eq!(r.status(), 401);
    let metrics = app.admin_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("assent_events_total{outcome=\"accepted\",reason=\"\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("assent_events_total{outcome=\"rejected\",reason=\"no_consent\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("assent_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(metrics.contains("assent_writer_queue_depth 0"), "{metrics}");
    assert!(metrics.contains("assent_requests_in_flight"), "{metrics}");
    // Subject a's consent (none) is kept in memory, on both backends.
    assert!(
        metrics.contains("assent_consent_cache_subjects 1"),
        "{metrics}"
    );
    let doc: Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let r = get("/nowhere").await.unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

pub async fn cors_follows_the_source_allowed_origins(b: Backend) {
    let app = spawn_app(b).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, format!("{}/v1/batch", app.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight("https://shop.example").await.unwrap();
    assert_eq!(
        ok.headers().get("access-control-allow-origin").unwrap(),
        "https://shop.example"
    );
    let no = preflight("https://evil.example").await.unwrap();
    assert!(no.headers().get("access-control-allow-origin").is_none());
    let body = json!({"batch": [track("o1", "a", Some("necessary"), T1)]});
    let r = app
        .client
        .post(format!("{}/v1/batch", app.url))
        .header("origin", "https://evil.example")
        .basic_auth(WRITE_KEY, Some(""))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "a source only takes browser requests from its origins"
    );
    let r = app
        .client
        .post(format!("{}/v1/batch", app.url))
        .header("origin", "https://shop.example")
        .basic_auth(WRITE_KEY, Some(""))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A site owner adds a source for a second site with its origins (what the banner needs).
    use assent_collector::keys::{create, Role};
    let bad = create(
        &app.state.keys,
        Role::Write,
        Some("blog"),
        Some("https://blog.example/path"),
        "",
        "test",
    )
    .await;
    assert!(bad.is_err(), "an origin with a path is refused");
    let blog = preflight("https://blog.example").await.unwrap();
    assert!(blog.headers().get("access-control-allow-origin").is_none());
    create(
        &app.state.keys,
        Role::Write,
        Some("blog"),
        Some(" https://blog.example/ ,https://www.blog.example"),
        "",
        "test",
    )
    .await
    .unwrap();
    app.state.keys.refresh_sources().await.unwrap();
    let blog = preflight("https://blog.example").await.unwrap();
    assert_eq!(
        blog.headers().get("access-control-allow-origin").unwrap(),
        "https://blog.example"
    );
}

pub async fn the_sdk_delivers_to_the_collector_end_to_end(b: Backend) {
    let app = spawn_app(b).await;
    let url = app.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_owned();
    let (answer, pid) = tokio::task::spawn_blocking(move || {
        let mut config =
            assent_core::ClientConfig::new(url, WRITE_KEY, storage, "com.example.e2e", "2026-01");
        config.flush_at = 10_000;
        let client = assent_core::AssentClient::new(config).unwrap();
        client
            .set_consent([("analytics".to_string(), true)].into(), "custom".into())
            .unwrap();
        for i in 0..50 {
            client
                .track(format!("E{i}"), r#"{"n":1}"#.into(), None)
                .unwrap();
        }
        client
            .track("Login".into(), "".into(), Some("necessary".into()))
            .unwrap();
        let result = client.flush().unwrap();
        let pid = client.pseudonymous_id();
        client.shutdown();
        (result, pid)
    })
    .await
    .unwrap();
    assert_eq!(
        (answer.accepted, answer.rejected, answer.remaining),
        (51, 0, 0)
    );
    assert_eq!(app.count("events").await, 51);
    assert_eq!(app.count("consent_records").await, 1);
    let r = app
        .admin_get(&format!("/v1/consent/{pid}?source=default"))
        .await;
    let state: Value = r.json().await.unwrap();
    assert_eq!(state["purposes"]["analytics"], true);
}

pub async fn retention_deletes_expired_events_in_batches(b: Backend) {
    let app = spawn_app(b).await;
    let events: Vec<Value> = (0..250)
        .map(|i| track(&format!("r{i}"), "a", Some("necessary"), T1))
        .collect();
    for chunk in events.chunks(100) {
        app.post("/v1/batch", &json!({"batch": chunk})).await;
    }
    assent_collector::storage::subject_index::merge(&app.state.db)
        .await
        .unwrap();
    // Age half of them beyond the retention period.
    sqlx::query("UPDATE events SET received_at_ms = 0 WHERE message_id LIKE 'r1%'")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let old = sqlx::query("SELECT COUNT(*) FROM events WHERE received_at_ms = 0")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .try_get::<i64, _>(0)
        .unwrap();
    let events_deleted = assent_collector::subjects::retention::sweep(&app.state.subjects)
        .await
        .unwrap()
        .of("events");
    assert_eq!(events_deleted as i64, old);
    assert_eq!(app.count("events").await, 250 - old);
    if b == Backend::Sqlite {
        // The subject index keeps no entry for a deleted event.
        let orphans = sqlx::query(
            "SELECT COUNT(*) FROM event_subjects s WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.seq = s.seq)",
        )
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .try_get::<i64, _>(0)
        .unwrap();
        assert_eq!(orphans, 0);
        assert_eq!(app.count("event_subjects").await, 250 - old);
        assert_eq!(app.count("event_subject_runs").await, 1);
    }
    // Once every event has expired, the index forgets its (now empty) runs too.
    sqlx::query("UPDATE events SET received_at_ms = 0")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    assent_collector::subjects::retention::sweep(&app.state.subjects)
        .await
        .unwrap();
    assert_eq!(app.count("events").await, 0);
    if b == Backend::Sqlite {
        assert_eq!(app.count("event_subjects").await, 0);
        assert_eq!(app.count("event_subject_runs").await, 0);
    }
}

/// On SQLite the subject index is written in runs, which an idle collector folds together
/// one step at a time; every step leaves each event findable, and erasure still finds all.
pub async fn compacting_the_subject_index_keeps_every_event_findable(b: Backend) {
    let app = spawn_app(b).await;
    for run in 0..5 {
        let batch: Vec<Value> = (0..20)
            .map(|e| {
                let subject = if e % 2 == 0 { "alice" } else { "bob" };
                track(&format!("c{run}-{e}"), subject, Some("necessary"), T1)
            })
            .collect();
        assert_eq!(
            app.post("/v1/batch", &json!({ "batch": batch })).await.1["accepted"],
            20
        );
        assent_collector::storage::subject_index::merge(&app.state.db)
            .await
            .unwrap();
    }
    let found = |subject: &'static str| {
        let app = &app;
        async move {
            let access: Value = app
                .admin_get(&format!("/v1/subjects/{subject}"))
                .await
                .json()
                .await
                .unwrap();
            access["events"].as_array().unwrap().len()
        }
    };
    // Step by step (the collector's writer may take some of the steps itself when idle).
    loop {
        assert_eq!((found("alice").await, found("bob").await), (50, 50));
        if !assent_collector::storage::subject_index::compact_step(&app.state.db)
            .await
            .unwrap()
        {
            break;
        }
    }
    if b == Backend::Sqlite {
        assert_eq!(app.count("event_subject_runs").await, 1);
        assert_eq!(app.count("event_subjects").await, 100);
        let entries: i64 = sqlx::query_scalar("SELECT entries FROM event_subject_runs")
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
        assert_eq!(entries, 100);
    }
    let r = app.admin_delete("/v1/subjects/alice").await;
    let summary: Value = r.json().await.unwrap();
    assert_eq!(summary["events"], 50);
    assert_eq!((found("alice").await, found("bob").await), (0, 50));
    assert_eq!(app.count("events").await, 50);
    if b == Backend::Sqlite {
        // A collector that finds several runs at start folds them once it is idle (the
        // first one may too).
        for run in 0..3 {
            let batch = json!({"batch": [track(&format!("i{run}"), "bob", Some("necessary"), T1)]});
            assert_eq!(app.post("/v1/batch", &batch).await.1["accepted"], 1);
            assent_collector::storage::subject_index::merge(&app.state.db)
                .await
                .unwrap();
        }
        let url = app.state.config.database_url.expose().to_owned();
        let other = spawn_with(config(&url), tempfile::tempdir().unwrap()).await;
        let mut runs = 4;
        for _ in 0..100 {
            runs = other.count("event_subject_runs").await;
            if runs == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(runs, 1);
        assert_eq!(found("bob").await, 53);
    }
}

pub async fn two_replicas(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database(b, dir.path()).await;
    let (a, b) = tokio::join!(
        spawn_with(config(&database_url), tempfile::tempdir().unwrap()),
        spawn_with(config(&database_url), tempfile::tempdir().unwrap())
    );
    // Both replicas take consent records at once: one chain.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let app = if i % 2 == 0 { &a } else { &b };
        let c = app.client.clone();
        let url = format!("{}/v1/consent", app.url);
        let record = consent(
            &format!("rc{i}"),
            &format!("subj{i}"),
            json!({"analytics": true}),
            T0,
        );
        tasks.push(tokio::spawn(async move {
            c.post(url)
                .basic_auth(WRITE_KEY, Some(""))
                .json(&record)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    let verify: Value = a.admin_get("/v1/audit/verify").await.json().await.unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
    // A retry that lands on the other replica is a duplicate.
    let body = json!({"batch": [track("same", "subj0", None, T1)]});
    assert_eq!(a.post("/v1/batch", &body).await.1["accepted"], 1);
    let again = b.post("/v1/batch", &body).await.1;
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(a.count("events").await, 1);
    // Both started on an empty database; one bootstrap happened.
    assert_eq!(a.count("api_keys").await, 2);
}

/// The OpenAPI document names exactly the routes the router serves (read from its
/// source), and each documented operation is served.
pub async fn openapi_matches_the_router(b: Backend) {
    let app = spawn_app(b).await;
    let doc: Value = serde_json::from_str(assent_collector::openapi()).unwrap();
    // Every reference in the served document resolves inside it.
    let text = doc.to_string();
    for part in text.split("\"$ref\":\"#/").skip(1) {
        let target = part.split('"').next().unwrap();
        let mut node = &doc;
        for step in target.split('/') {
            node = &node[step];
        }
        assert!(!node.is_null(), "unresolved $ref #/{target}");
    }
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.push((path.clone(), method.clone()));
        }
    }
    documented.sort();
    let source = include_str!("../../src/http/mod.rs");
    let mut served: Vec<(String, String)> = Vec::new();
    let routes = source.split(".fallback(").next().unwrap();
    for chunk in routes.split(".route(").skip(1) {
        let chunk: String = chunk.split_whitespace().collect();
        let raw_path = chunk[1..].split('"').next().unwrap();
        let rest = &chunk[1 + raw_path.len()..];
        let path = raw_path.replace("{subject_id}", "{subjectId}");
        for method in ["get", "post", "put", "delete"] {
            if rest.starts_with(&format!("\",{method}(")) || rest.contains(&format!(").{method}("))
            {
                served.push((path.clone(), method.to_owned()));
            }
        }
    }
    served.sort();
    assert_eq!(documented, served);
    for (path, method) in &documented {
        let url = format!(
            "{}{}",
            app.url,
            path.replace("{subjectId}", "x")
                .replace("{id}", "x")
                .replace("{name}", "x")
        );
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = app
            .client
            .request(method.clone(), &url)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!(
            status != 405 && body["error"]["code"] != "not_found" || path.contains('{'),
            "{method} {path}: {status}"
        );
        let op = &doc["paths"][path][method.as_str().to_lowercase()];
        assert!(
            !op["responses"][status.to_string()].is_null(),
            "{method} {path}: {status} is not documented"
        );
    }
    // What the framework refuses is in our JSON shape too, and documented.
    let admin = |path: &str| {
        app.client
            .get(format!("{}{path}", app.url))
            .bearer_auth(ADMIN_TOKEN)
            .send()
    };
    for (path, want) in [
        ("/v1/consent/%FF?source=default", 400),
        ("/v1/audit/export?format=csv&format=jsonl", 400),
        ("/v1/audit/export?colour=blue", 400),
    ] {
        let r = admin(path).await.unwrap();
        assert_eq!(r.status().as_u16(), want, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "bad_request", "{path}: {body}");
    }
    let r = app
        .client
        .put(format!("{}/v1/batch", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

pub async fn rate_limits_answer_429_with_retry_after(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database(b, dir.path()).await;
    let mut c = config(&database_url);
    c.rate_limit_per_second = 1;
    c.rate_limit_burst = 3;
    let app = spawn_with(c, dir).await;
    let body = json!({"batch": [track("rl", "a", Some("necessary"), T1)]});
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = app
            .client
            .post(format!("{}/v1/batch", app.url))
            .basic_auth(WRITE_KEY, Some(""))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        if status == 429 {
            let retry: u64 = r
                .headers()
                .get("retry-after")
                .unwrap()
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry >= 1);
            let err: Value = r.json().await.unwrap();
            assert_eq!(err["error"]["code"], "rate_limited");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, vec![200, 200, 200, 429, 429]);
    assert_eq!(app.count("events").await, 1);
}

/// PostgreSQL goes away: requests get 503 with Retry-After (nothing half-stored), and the
/// collector recovers by itself when it comes back.
pub async fn an_unreachable_database_gives_503_and_recovers(b: Backend) {
    assert_eq!(b, Backend::Postgres);
    let app = spawn_app(b).await;
    let admin = std::env::var("TEST_DATABASE_URL").unwrap();
    let name = sqlx::query("SELECT current_database()::text")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .try_get::<String, _>(0)
        .unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&mut conn)
        .await
        .unwrap();
    let body = json!({"batch": [track("down", "a", Some("necessary"), T1)]});
    let r = app
        .client
        .post(format!("{}/v1/batch", app.url))
        .basic_auth(WRITE_KEY, Some(""))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "unavailable");
    assert_eq!(
        app.client
            .get(format!("{}/readyz", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    assert_eq!(
        app.client
            .get(format!("{}/healthz", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut recovered = false;
    for _ in 0..50 {
        let (status, answer) = app.post("/v1/batch", &body).await;
        if status == 200 {
            assert_eq!(answer["accepted"], 1);
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered);
    assert_eq!(app.count("events").await, 1);
}

/// The pseudonymization key rotates: new data uses the new key, data stored under the old
/// one is still found (consent in force, access, erasure), and the rotation is audited.
pub async fn pseudonym_keys_rotate_without_losing_subjects(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database(b, dir.path()).await;
    let old_key = "old-pseudonym-key-0123456789abcdef0123";
    let mut c1 = config(&database_url);
    c1.pseudonym_key = Some(assent_collector::config::Secret::new(old_key));
    c1.pseudonym_key_id = "k1".into();
    let before = spawn_with(c1, tempfile::tempdir().unwrap()).await;
    let body = json!({"batch": [track("before", "rot-visitor", None, T1)], "consent": [consent("rc", "rot-visitor", json!({"analytics": true}), T0)]});
    assert_eq!(before.post("/v1/batch", &body).await.1["accepted"], 1);

    let mut c2 = config(&database_url);
    c2.pseudonym_key = Some(assent_collector::config::Secret::new(
        "new-pseudonym-key-0123456789abcdef0123",
    ));
    c2.pseudonym_key_id = "k2".into();
    c2.previous_pseudonym_keys = Some(assent_collector::config::Secret::new(format!(
        "k1={old_key}"
    )));
    let after = spawn_with(c2, tempfile::tempdir().unwrap()).await;
    let (_, answer) = after
        .post(
            "/v1/batch",
            &json!({"batch": [track("after", "rot-visitor", None, T1)]}),
        )
        .await;
    assert_eq!(
        answer["accepted"], 1,
        "consent given under the old key still counts: {answer}"
    );
    let held: Value = after
        .admin_get("/v1/subjects/rot-visitor")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(held["events"].as_array().unwrap().len(), 2, "{held}");
    assert_eq!(held["consent"].as_array().unwrap().len(), 1);
    let kinds: Vec<String> = sqlx::query("SELECT kind FROM audit_log ORDER BY seq")
        .fetch_all(&after.state.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get(0).unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "key_rotation").count(),
        1,
        "{kinds:?}"
    );
    let r = after.admin_delete("/v1/subjects/rot-visitor").await;
    let erased: Value = r.json().await.unwrap();
    assert_eq!(erased["events"], 2);
    let verify: Value = after
        .admin_get("/v1/audit/verify")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
}

/// Consent records and the audit trail's data expire on their own periods; the chained
/// hashes stay, so the trail still verifies afterwards.
pub async fn expired_consent_and_audit_data_go_and_the_chain_still_verifies(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database(b, dir.path()).await;
    let mut c = config(&database_url);
    c.consent_retention_days = 0;
    c.audit_retention_days = 0;
    let app = spawn_with(c, dir).await;
    for i in 0..7 {
        app.post(
            "/v1/consent",
            &consent(
                &format!("x{i}"),
                &format!("s{i}"),
                json!({"analytics": true}),
                T0,
            ),
        )
        .await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let entries = app.count("audit_log").await;
    assent_collector::subjects::retention::sweep(&app.state.subjects)
        .await
        .unwrap();
    // The background job sweeps too (its first run is at start and may overlap the posts
    // above), so the end state is checked rather than who deleted what.
    assert_eq!(app.count("consent_records").await, 0);
    assert_eq!(app.count("audit_data").await, 0);
    assert_eq!(
        app.count("audit_log").await,
        entries,
        "the chain itself is kept"
    );
    let verify: Value = app
        .admin_get("/v1/audit/verify")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
}

/// Consent in force is kept in memory (on SQLite): every change to a subject's records,
/// made through this collector or another one on the same database, and by erasure or
/// retention, must count for the very next event.
pub async fn every_consent_change_counts_at_once_on_every_collector(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database(b, dir.path()).await;
    // One request carries more changes than the cache applies one by one (below).
    let bulk = |url: &str| Config {
        max_consent_records_per_request: 3000,
        consent_records_burst: 3000,
        ..config(url)
    };
    let one = spawn_with(bulk(&database_url), tempfile::tempdir().unwrap()).await;
    let two = spawn_with(bulk(&database_url), dir).await;
    // Each event is new (its own messageId) and later than every decision below.
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    async fn event(app: &TestApp, n: u32, subject: &str) -> u64 {
        let at = format!("2026-11-29T11:00:{n:02}.000Z");
        let body = json!({"batch": [track(&format!("e{n}"), subject, None, &at)]});
        app.post("/v1/batch", &body).await.1["accepted"]
            .as_u64()
            .unwrap()
    }
    async fn decide(app: &TestApp, id: &str, granted: bool, at: &str) {
        let record = consent(id, "alice", json!({"analytics": granted}), at);
        assert_eq!(app.post("/v1/consent", &record).await.0, 201);
    }
    // No consent yet (and that answer is remembered), then a grant through the other one.
    assert_eq!(event(&one, next(), "alice").await, 0);
    assert_eq!(event(&two, next(), "alice").await, 0);
    decide(&two, "g1", true, "2026-11-29T10:00:00.000Z").await;
    assert_eq!(event(&one, next(), "alice").await, 1);
    assert_eq!(event(&two, next(), "alice").await, 1);
    // Withdrawn through one: the other refuses at once.
    decide(&one, "w1", false, "2026-11-29T10:10:00.000Z").await;
    assert_eq!(event(&two, next(), "alice").await, 0);
    assert_eq!(event(&one, next(), "alice").await, 0);
    // Granted again, then erased: no consent is left to count.
    decide(&two, "g2", true, "2026-11-29T10:20:00.000Z").await;
    assert_eq!(event(&one, next(), "alice").await, 1);
    let r = one.admin_delete("/v1/subjects/alice").await;
    assert_eq!(r.status(), 200);
    assert_eq!(event(&two, next(), "alice").await, 0);
    assert_eq!(event(&one, next(), "alice").await, 0);
    // Many changes at once (more than the cache applies one by one), one of them alice's.
    decide(&one, "g3", true, "2026-11-29T10:30:00.000Z").await;
    assert_eq!(event(&two, next(), "alice").await, 1);
    let records: Vec<Value> = (0..2500)
        .map(|i| {
            consent(
                &format!("bulk{i}"),
                &format!("bulk{i}"),
                json!({"analytics": true}),
                T0,
            )
        })
        .chain([consent(
            "w3",
            "alice",
            json!({"analytics": false}),
            "2026-11-29T10:40:00.000Z",
        )])
        .collect();
    assert_eq!(
        one.post("/v1/consent", &json!({"records": records}))
            .await
            .0,
        201
    );
    assert_eq!(event(&two, next(), "alice").await, 0);
    assert_eq!(event(&two, next(), "bulk7").await, 1);
    // Retention removes expired records: what they granted stops counting.
    decide(&two, "g4", true, "2026-11-29T10:50:00.000Z").await;
    assert_eq!(event(&one, next(), "alice").await, 1);
    assent_collector::consent::cache::prune(&one.state.db)
        .await
        .unwrap();
    let mut expired = config(&database_url);
    expired.consent_retention_days = 0;
    let sweeper = spawn_with(expired, tempfile::tempdir().unwrap()).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    // The sweeper's background job sweeps at start too; a sweep that finds its batch
    // taken by the other one ends, so sweep until nothing is left.
    for _ in 0..100 {
        assent_collector::subjects::retention::sweep(&sweeper.state.subjects)
            .await
            .unwrap();
        if one.count("consent_records").await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(one.count("consent_records").await, 0);
    assert_eq!(event(&one, next(), "alice").await, 0);
    assert_eq!(event(&two, next(), "bulk7").await, 0);
}

/// Every table with a column that holds a subject's identity is in the registry that
/// access, erasure and retention follow (or listed, with the reason, as not subject data),
/// on both schemas; and the first page of subject access has a section for each.
pub async fn every_table_with_subject_data_is_registered(b: Backend) {
    use assent_collector::storage::subject_data::{
        NOT_SUBJECT_DATA, SUBJECT_COLUMN_NAMES, SUBJECT_TABLES,
    };
    let app = spawn_app(b).await;
    let sql = match b {
        Backend::Sqlite => {
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
             WHERE m.type = 'table'"
        }
        Backend::Postgres => {
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = 'public'"
        }
    };
    let rows = sqlx::query(sql)
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap();
    let mut found: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for r in rows {
        let (table, column): (String, String) = (r.try_get(0).unwrap(), r.try_get(1).unwrap());
        if SUBJECT_COLUMN_NAMES.contains(&column.as_str()) {
            found.entry(table).or_default().push(column);
        }
    }
    assert!(found.contains_key("events"), "{found:?}");
    for (table, mut columns) in found {
        if NOT_SUBJECT_DATA.iter().any(|(t, _)| *t == table) {
            continue;
        }
        let entry = SUBJECT_TABLES
            .iter()
            .find(|t| t.table == table)
            .unwrap_or_else(|| panic!("{table} holds subject data but is not registered"));
        let mut listed: Vec<String> = entry
            .subject_columns
            .iter()
            .map(|c| c.to_string())
            .collect();
        columns.sort();
        listed.sort();
        assert_eq!(columns, listed, "{table}: subject columns");
    }
    let access: Value = app.admin_json("/v1/subjects/anyone").await;
    // Given the stored pseudonym instead of the raw id, access and erasure say so.
    let pseudonym = app.state.pseudonymizer.pseudonym("anyone");
    let r = app.admin_get(&format!("/v1/subjects/{pseudonym}")).await;
    assert_eq!(r.status(), 400);
    let r = app.admin_delete(&format!("/v1/subjects/{pseudonym}")).await;
    assert_eq!(r.status(), 400);
    for t in SUBJECT_TABLES {
        assert!(
            access[t.access_section].is_array(),
            "access has no {}: {access}",
            t.access_section
        );
    }
}

/// The tables and columns of a fresh database of each backend after the migrations.
async fn schema_of(b: Backend) -> std::collections::BTreeSet<(String, String)> {
    let app = spawn_app(b).await;
    let sql = match b {
        Backend::Sqlite => {
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'"
        }
        Backend::Postgres => {
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = 'public'"
        }
    };
    sqlx::query(sql)
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
        .collect()
}

/// The SQLite and PostgreSQL migrations define the same tables and columns, apart from
/// the differences `storage::DIALECT_DIFFERENCES` lists (and says why).
pub async fn both_schemas_agree_apart_from_the_listed_differences() {
    use assent_collector::storage::DIALECT_DIFFERENCES;
    let sqlite = schema_of(Backend::Sqlite).await;
    let postgres = schema_of(Backend::Postgres).await;
    let listed = |table: &str, column: &str| {
        DIALECT_DIFFERENCES
            .iter()
            .any(|d| d.table == table && (d.column == "*" || d.column == column))
    };
    let only_sqlite: Vec<_> = sqlite
        .difference(&postgres)
        .filter(|(t, c)| !listed(t, c))
        .collect();
    let only_postgres: Vec<_> = postgres
        .difference(&sqlite)
        .filter(|(t, c)| !listed(t, c))
        .collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "unlisted differences: only in SQLite {only_sqlite:?}, only in PostgreSQL {only_postgres:?}"
    );
    // Every listed difference is real (the list does not rot).
    for d in DIALECT_DIFFERENCES {
        let in_sqlite = sqlite
            .iter()
            .any(|(t, c)| t == d.table && (d.column == "*" || c == d.column));
        let in_postgres = postgres
            .iter()
            .any(|(t, c)| t == d.table && (d.column == "*" || c == d.column));
        assert!(
            in_sqlite != in_postgres,
            "{}.{} is no longer a difference",
            d.table,
            d.column
        );
    }
}

/// Retention follows the collector's clock, which the test moves: past the event period
/// the events go, the consent records (kept longer) stay, and the audit chain verifies.
pub async fn retention_follows_the_injected_clock(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(b, dir.path()).await;
    let clock = TestClock::now();
    let c = Config {
        event_retention_days: 30,
        ..config(&url)
    };
    let app = spawn_with_clock(c, dir, clock.clone()).await;
    let body = json!({
        "batch": [track("old-1", "r", None, T1), track("old-2", "r", None, T1)],
        "consent": [consent("rc", "r", json!({"analytics": true}), T0)],
    });
    let (_, answer) = app.post("/v1/batch", &body).await;
    assert_eq!(answer["accepted"], 2, "{answer}");
    let swept = assent_collector::subjects::retention::sweep(&app.state.subjects)
        .await
        .unwrap();
    assert_eq!(swept.of("events"), 0, "nothing is old yet");
    clock.advance_days(31);
    let swept = assent_collector::subjects::retention::sweep(&app.state.subjects)
        .await
        .unwrap();
    assert_eq!(swept.of("events"), 2);
    assert_eq!(swept.of("consentRecords"), 0);
    assert_eq!(app.count("events").await, 0);
    assert_eq!(app.count("consent_records").await, 1);
    let verify: Value = app.admin_json("/v1/audit/verify").await;
    assert_eq!(verify["ok"], true, "{verify}");
}
