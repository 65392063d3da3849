//! The collector's clock, passed in so tests can move it.
use std::time::{SystemTime, UNIX_EPOCH};

use crate::ids::UnixMs;

/// Where the collector reads the time, so tests can set it.
pub trait Clock: Send + Sync {
    fn now(&self) -> UnixMs;

    /// [`Clock::now`] as the integer that storage writes.
    fn now_ms(&self) -> i64 {
        self.now().millis()
    }
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixMs {
        UnixMs::from_millis(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        )
    }
}
