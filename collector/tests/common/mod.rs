//! Shared by the tests that run the real `assent-collector` binary (kill, relay): a free
//! port, a fresh PostgreSQL database, the binary started with the settings every such
//! test needs, and the wait for it to answer.
use std::{
    process::{Command, Stdio},
    time::Duration,
};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `assent-collector serve` on `port` and `database_url`, with `write_key` bootstrapped,
/// a fixed pseudonymization key, rate limits out of the way and its output silenced; the
/// caller adds its own variables and spawns it.
pub fn collector(database_url: &str, port: u16, write_key: &str, pseudonym_key: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_assent-collector"));
    command
        .arg("serve")
        .env("ASSENT_BIND", format!("127.0.0.1:{port}"))
        .env("ASSENT_DATABASE_URL", database_url)
        .env("ASSENT_BOOTSTRAP_WRITE_KEY", write_key)
        .env("ASSENT_PSEUDONYM_KEY", pseudonym_key)
        .env("ASSENT_RATE_LIMIT_PER_SECOND", "100000")
        .env("ASSENT_RATE_LIMIT_BURST", "100000")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Whether the collector at `base` answered `/readyz` within 10 s.
pub async fn ready(client: &reqwest::Client, base: &str) -> bool {
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A new, empty database on the PostgreSQL server of `TEST_DATABASE_URL`, named
/// `PREFIX_<uuid>`; its URL.
pub async fn fresh_postgres(prefix: &str) -> String {
    let admin = std::env::var("TEST_DATABASE_URL")
        .expect("the PostgreSQL suite needs TEST_DATABASE_URL (`make test-rust` starts a throwaway cluster and sets it)");
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
}
