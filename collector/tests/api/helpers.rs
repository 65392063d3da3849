//! Black-box helpers: a real collector on a random port, against a fresh SQLite file or a
//! fresh PostgreSQL database, and an HTTP client.
use std::sync::Arc;

use assent_collector::{config::Secret, AppState, Application, Clock as _, Config};
use serde_json::Value;
use sqlx::{Connection, Row};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const WRITE_KEY: &str = "wk_test_write_key_7Qm2Zr9vLx4Tn8Pc3Hd6Jf";
pub const ADMIN_TOKEN: &str = "adm_test_admin_token_Gk5Rw8Ny2Bs6Vq9Tz3Lm";

pub struct TestApp {
    pub url: String,
    pub state: Arc<AppState>,
    /// The request limiters' sizes.
    pub limiters: assent_collector::http::ratelimit::Sizes,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// A fresh, empty database URL for the backend.
pub async fn fresh_database(backend: Backend, dir: &std::path::Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.join("assent.db").display()),
        Backend::Postgres => {
            let admin = std::env::var("TEST_DATABASE_URL").expect(
                "the PostgreSQL suite needs TEST_DATABASE_URL (`make test-rust` starts a throwaway cluster and sets it)",
            );
            let name = format!("assent_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .expect("connect to TEST_DATABASE_URL");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .unwrap();
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            format!("{base}/{name}")
        }
    }
}

pub fn config(database_url: &str) -> Config {
    Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        database_url: Secret::new(database_url),
        bootstrap_write_key: Some(Secret::new(WRITE_KEY)),
        bootstrap_admin_token: Some(Secret::new(ADMIN_TOKEN)),
        // Written as people do (trailing slash, spaces): stored as the browser sends it.
        bootstrap_allowed_origins: " https://shop.example/ ".into(),
        audit_checkpoint_every: 5,
        ..Config::default()
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database(backend, dir.path()).await;
    spawn_with(config(&database_url), dir).await
}

/// A clock the test moves: it starts at the real time and only goes where it is told.
#[derive(Debug)]
pub struct TestClock(std::sync::atomic::AtomicI64);

impl TestClock {
    pub fn now() -> Arc<TestClock> {
        Arc::new(TestClock(std::sync::atomic::AtomicI64::new(
            assent_collector::SystemClock.now_ms(),
        )))
    }

    pub fn advance_days(&self, days: i64) {
        self.0
            .fetch_add(days * 24 * 3600 * 1000, std::sync::atomic::Ordering::SeqCst);
    }
}

impl assent_collector::Clock for TestClock {
    fn now(&self) -> assent_collector::ids::UnixMs {
        assent_collector::ids::UnixMs::from_millis(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

pub async fn spawn_with(config: Config, dir: tempfile::TempDir) -> TestApp {
    spawn_with_clock(config, dir, Arc::new(assent_collector::SystemClock)).await
}

/// A collector that reads the time from `clock`.
pub async fn spawn_with_clock(
    config: Config,
    dir: tempfile::TempDir,
    clock: Arc<dyn assent_collector::Clock>,
) -> TestApp {
    let app = Application::build_with_clock(config, clock)
        .await
        .expect("collector starts");
    let url = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let limiters = app.limiters();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        url,
        state,
        limiters,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

impl TestApp {
    /// The app's temporary folder (its SQLite database lives there).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_as(WRITE_KEY, path, body).await
    }

    /// Posts JSON with another write key.
    pub async fn post_as(&self, key: &str, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.url))
            .basic_auth(key, Some(""))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A write key for a new source `name`.
    pub async fn new_source(&self, name: &str) -> String {
        assent_collector::keys::create(
            &self.state.keys,
            assent_collector::keys::Role::Write,
            Some(name),
            None,
            "test",
            "test",
        )
        .await
        .unwrap()
        .raw
    }

    pub async fn raw(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        self.try_raw(path, headers, body).await.unwrap()
    }

    /// [`TestApp::raw`], with the transport's error when the request did not complete.
    pub async fn try_raw(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(u16, Value, reqwest::header::HeaderMap), reqwest::Error> {
        let mut req = self.client.post(format!("{}{path}", self.url)).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let h = r.headers().clone();
        Ok((status, r.json().await.unwrap_or(Value::Null), h))
    }

    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
    }

    /// `admin_get`, read as JSON.
    pub async fn admin_json(&self, path: &str) -> Value {
        self.admin_get(path).await.json().await.unwrap()
    }

    /// A JSON body sent with the compliance token by `method`: the status and the answer.
    pub async fn admin_send(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn admin_delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(format!("{}{path}", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&self.state.db.pool)
            .await
            .unwrap()
            .try_get::<i64, _>(0)
            .unwrap()
    }

    /// Row counts of every table a request could write.
    pub async fn counts(&self) -> Vec<i64> {
        let mut v = Vec::new();
        for t in [
            "events",
            "consent_records",
            "dead_letters",
            "audit_log",
            "audit_data",
        ] {
            v.push(self.count(t).await);
        }
        v
    }
}

pub fn consent(id: &str, subject: &str, purposes: Value, at: &str) -> Value {
    serde_json::json!({
        "consentId": id, "subjectId": subject, "purposes": purposes, "policyVersion": "2026-01",
        "method": "custom", "source": "sdk", "timestamp": at
    })
}

pub fn track(id: &str, subject: &str, purpose: Option<&str>, at: &str) -> Value {
    let mut e = serde_json::json!({"messageId": id, "type": "track", "event": "Bought", "anonymousId": subject, "timestamp": at});
    if let Some(p) = purpose {
        e["purpose"] = p.into();
    }
    e
}
