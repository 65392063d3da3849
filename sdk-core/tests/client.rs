//! The client end to end against a real HTTP server on a random port.
mod support;

use std::{sync::Arc, time::Duration};

use assent_core::{AssentClient, AssentError, SystemClock, UreqTransport};
use assent_protocol::{ConsentRecord, Event, EventType, Purpose};
use support::{config, purposes, Recorder, TickingClock};

/// The events of an uploaded batch body, each parsed as a protocol event.
fn events_in(body: &serde_json::Value) -> Vec<Event> {
    body["batch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Event::from_json(&e.to_string()).expect("a valid protocol event"))
        .collect()
}

fn client(cfg: assent_core::ClientConfig) -> Arc<AssentClient> {
    AssentClient::new(cfg).expect("client starts")
}

#[test]
fn nothing_is_stored_before_consent_and_necessary_always_is() {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let c = client(config(&server.url, dir.path()));
    assert!(c.consent().needs_prompt);
    assert!(!c.track("Viewed".into(), "{}".into(), None).unwrap());
    assert!(!c
        .track("Ad Seen".into(), "".into(), Some("advertising".into()))
        .unwrap());
    assert!(!c.screen("Home".into(), "".into()).unwrap());
    assert_eq!(c.queued_count(), 0);
    assert!(c
        .track("Login".into(), "".into(), Some("necessary".into()))
        .unwrap());
    assert_eq!(c.queued_count(), 1);
    assert_eq!(c.stats().refused_no_consent, 3);
    assert_eq!(
        c.track("x".into(), "".into(), Some("telemetry".into())),
        Err(AssentError::InvalidPurpose)
    );
    assert_eq!(
        c.set_consent(purposes(&[("telemetry", true)]), "custom".into()),
        Err(AssentError::InvalidPurpose)
    );
    assert!(matches!(
        c.track("x".into(), "[1]".into(), None),
        Err(AssentError::InvalidJson { .. })
    ));
    assert!(matches!(
        c.track("x".into(), "{".into(), None),
        Err(AssentError::InvalidJson { .. })
    ));
    assert_eq!(c.queued_count(), 1, "bad input changes nothing");
}

#[test]
fn a_flush_delivers_valid_protocol_events_and_the_consent_record() {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&server.url, dir.path());
    cfg.app_version = Some("3.1.0".into());
    cfg.locale = Some("fr-FR".into());
    let c = client(cfg);
    c.set_consent(purposes(&[("analytics", true)]), "custom".into())
        .unwrap();
    assert!(c
        .track(
            "Bought".into(),
            r#"{"price": 12.5, "sku": "A-1"}"#.into(),
            None
        )
        .unwrap());
    assert!(c.screen("Cart".into(), "".into()).unwrap());
    let result = c.flush().unwrap();
    assert_eq!(
        (
            result.accepted,
            result.duplicates,
            result.rejected,
            result.remaining
        ),
        (2, 0, 0, 0)
    );
    assert_eq!(c.queued_count(), 0);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let expected_auth = format!("Basic {}", base64_of("test-write-key:"));
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some(expected_auth.as_str())
    );
    let body = &requests[0].body;
    assert!(body["sentAt"].as_str().unwrap().ends_with('Z'));
    let events = events_in(body);
    assert_eq!(events[0].kind, EventType::Track);
    assert_eq!(events[0].event.as_deref(), Some("Bought"));
    assert_eq!(events[0].properties.as_ref().unwrap()["sku"], "A-1");
    assert_eq!(events[0].effective_purpose(), Purpose::Analytics);
    assert_eq!(events[1].kind, EventType::Screen);
    assert_eq!(events[1].name.as_deref(), Some("Cart"));
    for e in &events {
        assert_eq!(
            e.anonymous_id.as_deref(),
            Some(c.pseudonymous_id().as_str())
        );
        let id = uuid::Uuid::parse_str(e.message_id.as_str()).unwrap();
        assert_eq!(id.get_version_num(), 7);
        let ctx = e.context.as_ref().unwrap();
        assert_eq!(ctx.library.as_ref().unwrap().name, "assent-core");
        assert_eq!(ctx.locale.as_deref(), Some("fr-FR"));
        assert_eq!(ctx.app.as_ref().unwrap()["version"], "3.1.0");
    }
    let records: Vec<ConsentRecord> = body["consent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| ConsentRecord::from_json(&r.to_string()).expect("a valid consent record"))
        .collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].subject_id, c.pseudonymous_id());
    assert!(records[0].grants(Purpose::Analytics));
    assert!(!records[0].grants(Purpose::Advertising));
    assert!(!records[0].previous.as_ref().unwrap()[&Purpose::Analytics]);
    assert_eq!(records[0].policy_version, "policy-1");
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn withdrawing_a_purpose_purges_its_queued_events_at_once() {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let c = client(config(&server.url, dir.path()));
    c.set_consent(purposes(&[]), "accept_all".into()).unwrap();
    for _ in 0..5 {
        c.track("Ad".into(), "".into(), Some("advertising".into()))
            .unwrap();
        c.track("Click".into(), "".into(), None).unwrap();
    }
    c.set_consent(purposes(&[("advertising", false)]), "withdraw".into())
        .unwrap();
    assert_eq!(c.stats().purged, 5);
    assert!(!c
        .track("Ad".into(), "".into(), Some("advertising".into()))
        .unwrap());
    c.flush().unwrap();
    let events = server.events();
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|e| e["purpose"] == "analytics"));
    let methods: Vec<String> = server
        .consent()
        .iter()
        .map(|r| r["method"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(methods, vec!["accept_all", "withdraw"]);
}

#[test]
fn consent_ids_and_queue_survive_a_restart() {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let (id, updated) = {
        let c = client(config(&server.url, dir.path()));
        c.set_consent(purposes(&[("personalization", true)]), "custom".into())
            .unwrap();
        c.track("Liked".into(), "".into(), Some("personalization".into()))
            .unwrap();
        (c.pseudonymous_id(), c.consent().updated_at)
    };
    let c = client(config(&server.url, dir.path()));
    assert_eq!(c.pseudonymous_id(), id);
    let state = c.consent();
    assert!(!state.needs_prompt);
    assert_eq!(state.updated_at, updated);
    assert!(state.purposes["personalization"]);
    assert!(!state.purposes["analytics"]);
    assert_eq!(c.queued_count(), 2);
    assert_eq!(c.flush().unwrap().accepted, 1);
    assert_eq!(server.consent().len(), 1);
}

#[test]
fn two_apps_in_one_place_get_unlinkable_ids_and_a_dir_has_one_client() {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let a = client(config(&server.url, &dir.path().join("a")));
    let mut other = config(&server.url, &dir.path().join("b"));
    other.app_id = "com.example.other".into();
    let b = client(other);
    assert_ne!(a.pseudonymous_id(), b.pseudonymous_id());
    assert_eq!(
        AssentClient::new(config(&server.url, &dir.path().join("a"))).unwrap_err(),
        AssentError::StorageLocked
    );
}

#[test]
fn a_new_policy_version_asks_again_and_stops_optional_collection() {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    {
        let c = client(config(&server.url, dir.path()));
        c.set_consent(purposes(&[]), "accept_all".into()).unwrap();
        c.track("Old".into(), "".into(), None).unwrap();
    }
    let mut cfg = config(&server.url, dir.path());
    cfg.policy_version = "policy-2".into();
    let c = client(cfg);
    let state = c.consent();
    assert!(state.needs_prompt);
    assert_eq!(state.policy_version, "policy-2");
    assert!(state
        .purposes
        .iter()
        .all(|(p, on)| *on == (p == "necessary")));
    assert!(!c.track("New".into(), "".into(), None).unwrap());
    c.set_consent(purposes(&[("analytics", true)]), "custom".into())
        .unwrap();
    assert!(!c.consent().needs_prompt);
    assert!(c.track("New".into(), "".into(), None).unwrap());
    c.flush().unwrap();
    let methods: Vec<String> = server
        .consent()
        .iter()
        .map(|r| r["method"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(methods, vec!["accept_all", "policy_change", "custom"]);
    let names: Vec<String> = server
        .events()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        vec!["New"],
        "events of the old policy were purged with it"
    );
}

#[test]
fn gpc_denies_advertising_and_is_recorded() {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let c = client(config(&server.url, dir.path()));
    c.set_consent(purposes(&[]), "accept_all".into()).unwrap();
    assert!(c
        .track("Ad".into(), "".into(), Some("advertising".into()))
        .unwrap());
    c.set_gpc(true).unwrap();
    let state = c.consent();
    assert!(state.gpc);
    assert!(!state.purposes["advertising"]);
    assert!(state.purposes["analytics"]);
    assert!(!c
        .track("Ad".into(), "".into(), Some("advertising".into()))
        .unwrap());
    c.flush().unwrap();
    let records = server.consent();
    assert_eq!(records.last().unwrap()["method"], "gpc");
    assert_eq!(
        records.last().unwrap()["gpc"],
        serde_json::Value::Bool(true)
    );
    assert!(
        server.events().is_empty(),
        "the queued advertising event was purged"
    );

    // From configuration, at start.
    let dir2 = tempfile::tempdir().unwrap();
    let mut cfg = config(&server.url, dir2.path());
    cfg.gpc = true;
    let c2 = client(cfg);
    c2.set_consent(purposes(&[]), "accept_all".into()).unwrap();
    assert!(!c2.consent().purposes["advertising"]);
}

#[test]
fn identify_sends_the_peppered_user_id_of_the_test_vectors() {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&server.url, dir.path());
    cfg.user_id_pepper = Some("assent-test-pepper-0001".into());
    let c = client(cfg);
    c.set_consent(purposes(&[("analytics", true)]), "custom".into())
        .unwrap();
    assert!(c
        .identify("  Alice@Example.COM \t".into(), r#"{"plan":"pro"}"#.into())
        .unwrap());
    c.track("After".into(), "".into(), None).unwrap();
    c.flush().unwrap();
    let expected = "1463b0a64dbadf0dab88b750e289e87e41603a8184375dd97a0c1f1a901af17c";
    for e in server.events() {
        assert_eq!(e["userId"], expected);
    }
    let raw: String = server
        .requests()
        .iter()
        .map(|r| r.body.to_string())
        .collect();
    assert!(
        !raw.to_lowercase().contains("alice"),
        "the raw user id never leaves the device"
    );
}

#[test]
fn reset_starts_a_new_unlinkable_identity_and_carries_consent_over() {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let c = client(config(&server.url, dir.path()));
    c.set_consent(purposes(&[("analytics", true)]), "custom".into())
        .unwrap();
    c.identify("user-1".into(), "".into()).unwrap();
    let before = c.pseudonymous_id();
    c.reset().unwrap();
    let after = c.pseudonymous_id();
    assert_ne!(before, after);
    c.track("Fresh".into(), "".into(), None).unwrap();
    c.flush().unwrap();
    let fresh = server
        .events()
        .into_iter()
        .find(|e| e["event"] == "Fresh")
        .unwrap();
    assert_eq!(fresh["anonymousId"], after.as_str());
    assert!(fresh.get("userId").is_none());
    let carried = server
        .consent()
        .into_iter()
        .find(|r| r["subjectId"] == after.as_str())
        .unwrap();
    assert_eq!(
        carried["purposes"]["analytics"],
        serde_json::Value::Bool(true)
    );
    assert!(carried.get("previous").is_none());
    drop(c);
    assert_eq!(
        client(config(&server.url, dir.path())).pseudonymous_id(),
        after,
        "the new id persists"
    );
}

#[test]
fn full_withdrawal_rotates_the_id_when_configured() {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&server.url, dir.path());
    cfg.rotate_id_on_full_withdrawal = true;
    let c = client(cfg);
    c.set_consent(purposes(&[("analytics", true)]), "custom".into())
        .unwrap();
    let before = c.pseudonymous_id();
    c.set_consent(purposes(&[("personalization", false)]), "withdraw".into())
        .unwrap();
    assert_eq!(
        c.pseudonymous_id(),
        before,
        "withdrawing something not granted changes nothing"
    );
    c.set_consent(purposes(&[]), "reject_all".into()).unwrap();
    assert_ne!(c.pseudonymous_id(), before);
    c.flush().unwrap();
    let last = server.consent().last().unwrap().clone();
    assert_eq!(
        last["subjectId"],
        before.as_str(),
        "the withdrawal is recorded for the old subject"
    );
}

#[test]
fn a_413_splits_the_batch_and_a_400_drops_it() {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let c = client(config(&server.url, dir.path()));
    c.set_consent(purposes(&[("analytics", true)]), "custom".into())
        .unwrap();
    for i in 0..7 {
        c.track(format!("E{i}"), "".into(), None).unwrap();
    }
    server.script(&[(413, None), (413, None)]);
    let result = c.flush().unwrap();
    assert_eq!(result.accepted, 7);
    assert_eq!(server.stored().len(), 7);
    let sizes: Vec<usize> = server
        .requests()
        .iter()
        .map(|r| r.body["batch"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![7, 3, 1, 2, 4]);

    c.track("Doomed".into(), "".into(), None).unwrap();
    server.script(&[(400, None)]);
    let result = c.flush().unwrap();
    assert_eq!(result.rejected, 1);
    assert_eq!(c.queued_count(), 0);
    assert_eq!(c.stats().rejected, 1);
}

#[test]
fn a_401_pauses_uploads_until_the_write_key_changes() {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let c = client(config(&server.url, dir.path()));
    c.track("Login".into(), "".into(), Some("necessary".into()))
        .unwrap();
    server.script(&[(401, None)]);
    assert_eq!(c.flush(), Err(AssentError::Unauthorized));
    assert_eq!(
        c.flush(),
        Err(AssentError::Unauthorized),
        "no retry against a refused key"
    );
    assert_eq!(server.requests().len(), 1);
    assert_eq!(c.queued_count(), 1, "events stay queued");
    c.set_write_key("new-key".into()).unwrap();
    assert_eq!(c.flush().unwrap().accepted, 1);
    let auth = server
        .requests()
        .last()
        .unwrap()
        .authorization
        .clone()
        .unwrap();
    assert_eq!(auth, format!("Basic {}", base64_of("new-key:")));
}

#[test]
fn a_429_reports_retry_after_and_keeps_the_events() {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let c = client(config(&server.url, dir.path()));
    c.track("Login".into(), "".into(), Some("necessary".into()))
        .unwrap();
    server.script(&[(429, Some("3"))]);
    assert_eq!(
        c.flush(),
        Err(AssentError::RateLimited {
            retry_after_ms: 3000
        })
    );
    assert_eq!(c.queued_count(), 1);
    server.script(&[(503, None)]);
    assert!(matches!(c.flush(), Err(AssentError::Network { .. })));
    assert_eq!(c.flush().unwrap().accepted, 1);
}

#[test]
fn the_uploader_sends_at_flush_at_and_retries_server_errors_with_a_fresh_sent_at() {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    // A device clock that moves one second every time it is read: each attempt's sentAt
    // must differ from the one before, whatever the scheduling.
    let clock = TickingClock::starting_at(1_800_000_000_000);
    let mut cfg = config(&server.url, dir.path());
    cfg.flush_at = 5;
    let c = AssentClient::build(cfg, Arc::new(UreqTransport::default()), clock).unwrap();
    server.script(&[(503, None), (500, None)]);
    for _ in 0..4 {
        c.track("E".into(), "".into(), Some("necessary".into()))
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        server.requests().is_empty(),
        "below flush_at nothing is sent"
    );
    c.track("E".into(), "".into(), Some("necessary".into()))
        .unwrap();
    assert!(server.wait_for(Duration::from_secs(10), |s| s.stored().len() == 5));
    let requests = server.requests();
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![503, 500, 200]
    );
    let sent: Vec<&str> = requests
        .iter()
        .map(|r| r.body["sentAt"].as_str().unwrap())
        .collect();
    assert_ne!(sent[0], sent[2], "sentAt is stamped at each attempt");
    let ids = |r: &support::Received| {
        r.body["batch"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["messageId"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&requests[0]),
        ids(&requests[2]),
        "messageIds are fixed at creation"
    );
    assert!(server.wait_for(Duration::from_secs(2), |_| c.queued_count() == 0));
}

#[test]
fn the_uploader_sends_after_the_flush_interval() {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&server.url, dir.path());
    cfg.flush_interval_ms = 200;
    let c = client(cfg);
    c.track("E".into(), "".into(), Some("necessary".into()))
        .unwrap();
    assert!(server.wait_for(Duration::from_secs(5), |s| s.stored().len() == 1));
}

#[test]
fn large_batches_are_gzipped_and_split_by_the_byte_limit() {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&server.url, dir.path());
    cfg.max_batch_bytes = 64 * 1024;
    let c = client(cfg);
    let props = format!(r#"{{"blob":"{}"}}"#, "x".repeat(10_000));
    for _ in 0..20 {
        c.track("Big".into(), props.clone(), Some("necessary".into()))
            .unwrap();
    }
    assert_eq!(
        c.track(
            "Huge".into(),
            format!(r#"{{"blob":"{}"}}"#, "x".repeat(40_000)),
            Some("necessary".into())
        ),
        Err(AssentError::EventTooLarge)
    );
    assert_eq!(c.flush().unwrap().accepted, 20);
    let requests = server.requests();
    assert!(requests.len() >= 4, "{} requests", requests.len());
    for r in &requests {
        assert!(r.gzip);
        assert!(r.body.to_string().len() <= 64 * 1024);
        assert!(
            r.raw_len < 2_000,
            "gzip shrinks repetitive JSON ({} bytes)",
            r.raw_len
        );
    }
}

#[test]
fn the_queue_bound_drops_the_oldest_optional_events_and_counts_them() {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&server.url, dir.path());
    cfg.max_queue_events = 10;
    let c = client(cfg);
    c.set_consent(purposes(&[("analytics", true)]), "custom".into())
        .unwrap();
    c.track("Keep".into(), "".into(), Some("necessary".into()))
        .unwrap();
    for i in 0..15 {
        c.track(format!("A{i}"), "".into(), None).unwrap();
    }
    assert_eq!(c.stats().dropped, 6);
    assert_eq!(c.queued_count(), 11, "ten events and the consent record");
    c.flush().unwrap();
    let names: Vec<String> = server
        .events()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    let mut expected = vec!["Keep".to_owned()];
    expected.extend((6..15).map(|i| format!("A{i}")));
    assert_eq!(names, expected);
    assert_eq!(server.consent().len(), 1);
}

#[test]
fn calls_after_shutdown_fail_cleanly_and_release_nothing_twice() {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let c = client(config(&server.url, dir.path()));
    c.shutdown();
    c.shutdown();
    assert_eq!(
        c.track("E".into(), "".into(), None),
        Err(AssentError::ShutDown)
    );
    assert_eq!(c.flush(), Err(AssentError::ShutDown));
    assert_eq!(
        c.set_consent(purposes(&[]), "accept_all".into()),
        Err(AssentError::ShutDown)
    );
    let reopened = client(config(&server.url, dir.path()));
    assert_eq!(
        reopened.pseudonymous_id(),
        c.pseudonymous_id(),
        "shutdown released the folder"
    );
}

#[test]
fn bad_configuration_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let base = config("http://127.0.0.1:9", dir.path());
    type Change = Box<dyn Fn(&mut assent_core::ClientConfig)>;
    let cases: Vec<Change> = vec![
        Box::new(|c| c.collector_url = "ftp://example.com".into()),
        Box::new(|c| c.write_key = " ".into()),
        Box::new(|c| c.app_id = "".into()),
        Box::new(|c| c.user_id_pepper = Some("short".into())),
        Box::new(|c| c.flush_at = 0),
        Box::new(|c| c.max_batch_bytes = 600_000),
        Box::new(|c| c.retry_base_ms = 0),
    ];
    for change in cases {
        let mut cfg = base.clone();
        change(&mut cfg);
        assert!(matches!(
            AssentClient::new(cfg),
            Err(AssentError::InvalidArgument { .. })
        ));
    }
    let unreachable = AssentClient::build(
        base,
        Arc::new(UreqTransport::default()),
        Arc::new(SystemClock),
    )
    .unwrap();
    unreachable
        .track("E".into(), "".into(), Some("necessary".into()))
        .unwrap();
    assert!(matches!(
        unreachable.flush(),
        Err(AssentError::Network { .. })
    ));
    assert_eq!(unreachable.queued_count(), 1);
}

#[test]
fn the_uploader_does_not_wake_while_idle_or_paused() {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&server.url, dir.path());
    cfg.flush_interval_ms = 50;
    let c = client(cfg);
    std::thread::sleep(Duration::from_millis(100));
    let idle = c.stats().uploader_wakeups;
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        c.stats().uploader_wakeups,
        idle,
        "no timer while the queue is empty"
    );

    // A refused key pauses uploads without polling.
    server.script(&[(401, None)]);
    c.track("E".into(), "".into(), Some("necessary".into()))
        .unwrap();
    assert!(server.wait_for(Duration::from_secs(5), |s| s.requests().len() == 1));
    std::thread::sleep(Duration::from_millis(100));
    let paused = c.stats().uploader_wakeups;
    c.track("E".into(), "".into(), Some("necessary".into()))
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        c.stats().uploader_wakeups <= paused + 1,
        "at most the one wake-up the new event caused"
    );
    assert_eq!(server.requests().len(), 1);
    c.set_write_key("fixed".into()).unwrap();
    assert!(server.wait_for(Duration::from_secs(5), |s| s.stored().len() == 2));
}

#[test]
fn recommendation_feedback_carries_the_lists_rec_id() {
    let server = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let c = client(config(&server.url, dir.path()));
    let rec_id = "home.3.0123456789abcdef0123456789abcdef".to_owned();
    assert!(
        !c.recommendation_viewed(rec_id.clone(), "".into()).unwrap(),
        "no analytics yet: nothing stored"
    );
    c.set_consent(purposes(&[("analytics", true)]), "custom".into())
        .unwrap();
    assert!(c
        .recommendation_viewed(rec_id.clone(), r#"{"slot": "home"}"#.into())
        .unwrap());
    assert!(c
        .recommendation_clicked(rec_id.clone(), "book-7".into(), "".into())
        .unwrap());
    let queued = c.queued_count();
    for bad in ["", "home.3", "home.x.0123456789abcdef0123456789abcdef"] {
        assert!(matches!(
            c.recommendation_viewed(bad.into(), "".into()),
            Err(AssentError::InvalidArgument { .. })
        ));
    }
    assert!(matches!(
        c.recommendation_clicked(rec_id.clone(), " ".into(), "".into()),
        Err(AssentError::InvalidArgument { .. })
    ));
    assert!(matches!(
        c.recommendation_viewed(rec_id.clone(), "[1]".into()),
        Err(AssentError::InvalidJson { .. })
    ));
    assert_eq!(c.queued_count(), queued, "bad input changes nothing");
    assert_eq!(c.flush().unwrap().accepted, 2);
    let body = &server.requests()[0].body;
    let events = events_in(body);
    let props = |i: usize| events[i].properties.as_ref().unwrap().clone();
    assert_eq!(
        events[0].event.as_deref(),
        Some(assent_protocol::RECOMMENDATION_VIEWED)
    );
    assert_eq!(props(0)["rec_id"], rec_id.as_str());
    assert_eq!(props(0)["slot"], "home");
    assert_eq!(
        events[1].event.as_deref(),
        Some(assent_protocol::RECOMMENDATION_CLICKED)
    );
    assert_eq!(
        (&props(1)["rec_id"], &props(1)["item_id"]),
        (&rec_id.as_str().into(), &"book-7".into())
    );
}
