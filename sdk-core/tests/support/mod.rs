//! Test support: a real HTTP collector stand-in on a random loopback port that records
//! every batch, answers like the Assent collector (de-duplicating by messageId), and can be
//! scripted to fail.
#![allow(dead_code)]

use std::{
    collections::{HashSet, VecDeque},
    io::Read,
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use assent_core::{ClientConfig, Clock};
use serde_json::Value;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub authorization: Option<String>,
    pub gzip: bool,
    pub raw_len: usize,
    pub body: Value,
    pub status: u16,
}

#[derive(Default)]
struct State {
    script: VecDeque<(u16, Option<String>)>,
    requests: Vec<Received>,
    seen: HashSet<String>,
    /// Every messageId stored, in arrival order, duplicates excluded.
    stored: Vec<String>,
    consent: Vec<Value>,
}

pub struct Recorder {
    pub url: String,
    state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Recorder {
    pub fn start() -> Recorder {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
        let url = format!(
            "http://{}",
            server.server_addr().to_ip().expect("ip address")
        );
        let state = Arc::new(Mutex::new(State::default()));
        let (srv, st) = (Arc::clone(&server), Arc::clone(&state));
        let handle = thread::spawn(move || {
            for mut request in srv.incoming_requests() {
                let header = |name: &str| {
                    request
                        .headers()
                        .iter()
                        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
                        .map(|h| h.value.as_str().to_owned())
                };
                let authorization = header("authorization");
                let gzip = header("content-encoding").as_deref() == Some("gzip");
                let mut raw = Vec::new();
                if request.as_reader().read_to_end(&mut raw).is_err() {
                    // The client died mid-request (the crash test kills it): no answer.
                    continue;
                }
                let raw_len = raw.len();
                let text = if gzip {
                    let mut out = Vec::new();
                    let inflated =
                        flate2::read::GzDecoder::new(raw.as_slice()).read_to_end(&mut out);
                    if inflated.is_err() {
                        // A body cut short by a killed client.
                        let _ = request.respond(tiny_http::Response::empty(400));
                        continue;
                    }
                    out
                } else {
                    raw
                };
                let body: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
                let mut s = st.lock().unwrap();
                let (status, retry_after) = s.script.pop_front().unwrap_or((200, None));
                let mut answer =
                    serde_json::json!({"accepted": 0, "duplicates": 0, "rejected": []});
                if status == 200 {
                    let (mut accepted, mut duplicates) = (0, 0);
                    for e in body["batch"].as_array().cloned().unwrap_or_default() {
                        let id = e["messageId"].as_str().unwrap_or_default().to_owned();
                        if s.seen.insert(id.clone()) {
                            s.stored.push(id);
                            accepted += 1;
                        } else {
                            duplicates += 1;
                        }
                    }
                    for c in body["consent"].as_array().cloned().unwrap_or_default() {
                        s.consent.push(c);
                    }
                    answer["accepted"] = accepted.into();
                    answer["duplicates"] = duplicates.into();
                }
                s.requests.push(Received {
                    authorization,
                    gzip,
                    raw_len,
                    body,
                    status,
                });
                drop(s);
                let mut response =
                    tiny_http::Response::from_string(answer.to_string()).with_status_code(status);
                if let Some(after) = retry_after {
                    response
                        .add_header(tiny_http::Header::from_bytes("Retry-After", after).unwrap());
                }
                let _ = request.respond(response);
            }
        });
        Recorder {
            url,
            state,
            server,
            handle: Some(handle),
        }
    }

    /// The next answers, in order; 200 after they run out.
    pub fn script(&self, answers: &[(u16, Option<&str>)]) {
        let mut s = self.state.lock().unwrap();
        s.script
            .extend(answers.iter().map(|(c, r)| (*c, r.map(str::to_owned))));
    }

    pub fn requests(&self) -> Vec<Received> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn stored(&self) -> Vec<String> {
        self.state.lock().unwrap().stored.clone()
    }

    pub fn consent(&self) -> Vec<Value> {
        self.state.lock().unwrap().consent.clone()
    }

    /// Every event body stored (first copy of each messageId).
    pub fn events(&self) -> Vec<Value> {
        let s = self.state.lock().unwrap();
        let mut seen = HashSet::new();
        s.requests
            .iter()
            .filter(|r| r.status == 200)
            .flat_map(|r| r.body["batch"].as_array().cloned().unwrap_or_default())
            .filter(|e| seen.insert(e["messageId"].as_str().unwrap_or_default().to_owned()))
            .collect()
    }

    /// Waits until `cond` holds, up to `timeout`.
    pub fn wait_for(&self, timeout: Duration, cond: impl Fn(&Recorder) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if cond(self) {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        cond(self)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A device clock that moves one second forward every time it is read.
#[derive(Debug)]
pub struct TickingClock(AtomicI64);

impl TickingClock {
    pub fn starting_at(millis: i64) -> Arc<TickingClock> {
        Arc::new(TickingClock(AtomicI64::new(millis)))
    }
}

impl Clock for TickingClock {
    fn now_millis(&self) -> i64 {
        self.0.fetch_add(1_000, Ordering::SeqCst)
    }
}

/// A config for tests: nothing is sent unless the test flushes or sets thresholds.
pub fn config(url: &str, dir: &std::path::Path) -> ClientConfig {
    let mut c = ClientConfig::new(
        url,
        "test-write-key",
        dir.to_str().unwrap(),
        "com.example.test",
        "policy-1",
    );
    c.flush_at = 1_000_000;
    c.flush_interval_ms = 3_600_000;
    c.retry_base_ms = 20;
    c.retry_max_ms = 200;
    c
}

pub fn purposes(pairs: &[(&str, bool)]) -> std::collections::HashMap<String, bool> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}
