use std::time::{SystemTime, UNIX_EPOCH};

use assent_protocol::Timestamp;

/// Where the engine reads the wall clock, so tests can set it.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;

    /// The current time as a protocol timestamp.
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_millis(self.now_millis())
    }
}

/// The device's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}
