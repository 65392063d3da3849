//! A real `nats-server -js` (Debian's package) for the tests that need JetStream (relay,
//! workers): a free port, a temporary store, stopped when dropped.
use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use super::common::free_port;

/// A `nats-server -js` on a free port with its store in a temporary folder; stopped
/// when dropped.
pub struct Nats {
    child: Child,
    pub url: String,
    port: u16,
    store: tempfile::TempDir,
}

impl Nats {
    /// Stops the server (SIGKILL); gives its port and store for a start on them again.
    #[allow(dead_code)] // the relay test restarts the server; the workers test does not
    pub fn stop(mut self) -> (u16, tempfile::TempDir) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let store = std::mem::replace(&mut self.store, tempfile::tempdir().unwrap());
        (self.port, store)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn start_nats() -> Nats {
    start_nats_on(free_port(), tempfile::tempdir().unwrap()).await
}

pub async fn start_nats_on(port: u16, store: tempfile::TempDir) -> Nats {
    let mut child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server runs (Debian package nats-server; `make test` installs it)");
    let url = format!("nats://127.0.0.1:{port}");
    for _ in 0..100 {
        if async_nats::connect(&url).await.is_ok() {
            return Nats {
                child,
                url,
                port,
                store,
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("nats-server did not start");
}
