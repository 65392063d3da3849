//! The plain records the client's API takes and gives: its configuration, the consent in
//! force, what a flush achieved, and what was not delivered.
use std::collections::HashMap;

/// How a client is set up. Only the first five fields are required; the rest have the
/// defaults shown.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ClientConfig {
    /// Base URL of the collector, such as `https://collector.example.com`.
    pub collector_url: String,
    /// The source's write key.
    pub write_key: String,
    /// A folder private to the app where the SDK keeps its state and queue.
    pub storage_dir: String,
    /// Scopes the pseudonymous id: two apps on one device get unlinkable ids.
    pub app_id: String,
    /// Version of the privacy policy; a new one asks for consent again.
    pub policy_version: String,
    /// When set (at least 16 bytes), `identify` sends HMAC-SHA256(pepper, user id)
    /// instead of the raw user id.
    #[uniffi(default = None)]
    pub user_id_pepper: Option<String>,
    /// Upload when this many entries are queued.
    #[uniffi(default = 20)]
    pub flush_at: u32,
    /// Upload when the oldest entry has waited this long.
    #[uniffi(default = 30000)]
    pub flush_interval_ms: u64,
    /// Past this many queued events, the oldest optional ones are dropped.
    #[uniffi(default = 10000)]
    pub max_queue_events: u32,
    /// Largest batch body, uncompressed (at most 512000, the protocol's limit).
    #[uniffi(default = 512000)]
    pub max_batch_bytes: u32,
    /// A Global Privacy Control signal is present: `advertising` is denied.
    #[uniffi(default = false)]
    pub gpc: bool,
    /// Start a new, unlinkable `anonymousId` when the user withdraws every optional purpose.
    #[uniffi(default = false)]
    pub rotate_id_on_full_withdrawal: bool,
    /// First retry delay ceiling; it doubles with each failure (full jitter).
    #[uniffi(default = 1000)]
    pub retry_base_ms: u64,
    /// Largest retry delay ceiling.
    #[uniffi(default = 300000)]
    pub retry_max_ms: u64,
    /// `context.app.version`.
    #[uniffi(default = None)]
    pub app_version: Option<String>,
    /// `context.os.name`; the build target's OS when absent.
    #[uniffi(default = None)]
    pub os_name: Option<String>,
    /// `context.os.version`.
    #[uniffi(default = None)]
    pub os_version: Option<String>,
    /// `context.device.type` (`ios`, `android`, `desktop`, `server`...).
    #[uniffi(default = None)]
    pub device_type: Option<String>,
    /// `context.locale`, BCP 47.
    #[uniffi(default = None)]
    pub locale: Option<String>,
    /// `context.timezone`, IANA.
    #[uniffi(default = None)]
    pub timezone: Option<String>,
    /// `context.screen.width`.
    #[uniffi(default = None)]
    pub screen_width: Option<u32>,
    /// `context.screen.height`.
    #[uniffi(default = None)]
    pub screen_height: Option<u32>,
}

impl ClientConfig {
    /// A configuration with the required fields and every default.
    pub fn new(
        collector_url: impl Into<String>,
        write_key: impl Into<String>,
        storage_dir: impl Into<String>,
        app_id: impl Into<String>,
        policy_version: impl Into<String>,
    ) -> ClientConfig {
        ClientConfig {
            collector_url: collector_url.into(),
            write_key: write_key.into(),
            storage_dir: storage_dir.into(),
            app_id: app_id.into(),
            policy_version: policy_version.into(),
            user_id_pepper: None,
            flush_at: 20,
            flush_interval_ms: 30_000,
            max_queue_events: 10_000,
            max_batch_bytes: 512_000,
            gpc: false,
            rotate_id_on_full_withdrawal: false,
            retry_base_ms: 1_000,
            retry_max_ms: 300_000,
            app_version: None,
            os_name: None,
            os_version: None,
            device_type: None,
            locale: None,
            timezone: None,
            screen_width: None,
            screen_height: None,
        }
    }
}

/// The consent in force.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ConsentState {
    /// Every purpose and whether it is granted now (`necessary` always is).
    pub purposes: HashMap<String, bool>,
    /// The policy version in force.
    pub policy_version: String,
    /// When consent last changed, ISO 8601; absent before the first answer.
    pub updated_at: Option<String>,
    /// True until the user answers under the current policy version: show the prompt.
    pub needs_prompt: bool,
    /// Whether a GPC signal is in force.
    pub gpc: bool,
}

/// What one `flush` achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct FlushResult {
    /// Events the collector stored.
    pub accepted: u32,
    /// Events the collector already had (a retry of a delivered batch).
    pub duplicates: u32,
    /// Entries the collector refused for good (logged and removed).
    pub rejected: u32,
    /// Entries still queued afterwards (tracked while flushing).
    pub remaining: u64,
}

/// Counters of what was not delivered, by cause, since the client started.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct ClientStats {
    /// Events dropped by the `max_queue_events` bound.
    pub dropped: u64,
    /// Queued events removed because their purpose was withdrawn.
    pub purged: u64,
    /// Entries the collector refused for good.
    pub rejected: u64,
    /// Calls that recorded nothing because the purpose was not granted.
    pub refused_no_consent: u64,
    /// Damaged records skipped (or torn tails cut) when the queue was opened.
    pub corrupt_records: u64,
    /// Times the uploader thread woke up. It sleeps without a timer while nothing is
    /// queued (or uploads are paused by a refused key), so this stays still when idle.
    pub uploader_wakeups: u64,
}
