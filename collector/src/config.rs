//! Configuration: defaults, then a TOML file, then `ASSENT_*` environment variables.
use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use crate::error::{Error, Result};

/// A value that must never be printed (keys, tokens, database passwords).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The default `RECOMMENDATION_WEIGHTS`: Segment's e-commerce and content event names
/// (views count less than clicks, clicks less than adding to a cart, that less than
/// buying).
pub const DEFAULT_RECOMMENDATION_WEIGHTS: &str = "page=1,screen=1,Product Viewed=1,Content Viewed=1,Product Clicked=2,Recommendation Clicked=2,Product Added=4,Order Completed=8";

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where to listen.
    pub bind: SocketAddr,
    /// `sqlite://assent.db` (the default) or `postgres://...`.
    pub database_url: Secret,
    /// Largest request body, compressed or inflated.
    pub max_body_bytes: usize,
    /// Pseudonymization key (any string of 32+ bytes). Absent: one is generated and kept
    /// in the database on first start.
    pub pseudonym_key: Option<Secret>,
    /// Id of `pseudonym_key`, written into every pseudonym so keys can rotate.
    pub pseudonym_key_id: String,
    /// Keys rotated out, `id=key,id=key`: data stored under them is still found (access,
    /// erasure, consent in force) while new data uses `pseudonym_key`.
    pub previous_pseudonym_keys: Option<Secret>,
    /// Write key used for the `default` source on first start (else a random one).
    pub bootstrap_write_key: Option<Secret>,
    /// Admin (compliance) token created on first start (else a random one).
    pub bootstrap_admin_token: Option<Secret>,
    /// Allowed browser origins for the `default` source, comma-separated (`*` for any).
    pub bootstrap_allowed_origins: String,
    /// Days events are kept.
    pub event_retention_days: u32,
    /// Days consent records are kept.
    pub consent_retention_days: u32,
    /// Days the audit trail keeps its data (the part that may be personal). The chained
    /// hashes stay for good, so the chain still verifies after the data goes.
    pub audit_retention_days: u32,
    /// Requests per second allowed per client IP and per key, with this burst.
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    /// How often the retention job runs, in seconds.
    pub retention_interval_secs: u64,
    /// A signed audit checkpoint at least every this many entries.
    pub audit_checkpoint_every: u64,
    /// And every this many seconds when anything was appended.
    pub audit_checkpoint_interval_secs: u64,
    /// The Ed25519 key that signs audit checkpoints: 64 hex digits (its 32-byte seed).
    /// Absent: one is generated and kept in the database on first start.
    pub audit_signing_key: Option<Secret>,
    /// Id of the generated signing key: a new id makes a new key (a rotation, audited;
    /// the old public key stays listed).
    pub audit_signing_key_id: String,
    /// The log's name in its checkpoints (C2SP origin, also the key's name): best the
    /// collector's public host and path, e.g. `consent.example.com/audit`. Absent: one is
    /// generated on first start and kept.
    pub audit_origin: Option<String>,
    /// Folder of the web banner's built bundle, served at `/sdk/`.
    pub sdk_dir: PathBuf,
    /// How far after the time received a record's or event's time (corrected by
    /// `sentAt`) may be; later ones are refused, so a forged date cannot outrank a later
    /// withdrawal.
    pub clock_tolerance_secs: u64,
    /// Most consent records in one request (each is a permanent audit entry).
    pub max_consent_records_per_request: usize,
    /// Consent records per second allowed per source and per client address, with this
    /// burst (counted in records, beside the request limits).
    pub consent_records_per_second: u32,
    pub consent_records_burst: u32,
    /// Proxies whose `X-Forwarded-For` is believed, as CIDRs (`10.0.0.0/8,::1/128`). The
    /// client is the right-most hop not in this list; empty: the socket peer.
    pub trusted_proxies: String,
    /// Most open connections; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// A client must send a request's headers within this time (idle keep-alive
    /// connections are closed after it too) ...
    pub header_timeout_secs: u64,
    /// ... and its body within this one.
    pub body_timeout_secs: u64,
    /// Largest request head (request line and headers); larger ones get 431.
    pub max_header_bytes: usize,
    /// Days dead letters (refused events: code, reason, message id) are kept.
    pub dead_letter_retention_days: u32,
    /// Days an erasure notice (the feed's word to its consumers that a subject was
    /// erased) is kept: consumers that fall further behind than this miss it.
    pub erasure_notice_retention_days: u32,
    /// The secret keys' digests are made with (any string of 32+ bytes). Absent: one is
    /// generated and kept in the database; given, a copy of the database alone does not
    /// let anyone test guessed keys.
    pub key_digest_secret: Option<Secret>,
    /// A token for `/metrics` (Prometheus' `bearer_token`); the compliance token works too.
    pub metrics_token: Option<Secret>,
    /// NATS server (`nats://host:4222`): when set, the feed is relayed to JetStream.
    pub nats_url: Option<Secret>,
    /// The JetStream stream the relay publishes to (made when missing).
    pub nats_stream: String,
    /// First token of the relay's subjects: `PREFIX.SOURCE.KIND`.
    pub nats_subject_prefix: String,
    /// A folder: when set, the feed is written there as Parquet files in Hive-style
    /// partitions, for a warehouse to load.
    pub warehouse_dir: Option<PathBuf>,
    /// How often the warehouse sink writes what is new.
    pub warehouse_every_secs: u64,
    /// Keep subjects' consent records in memory (kept right across processes and
    /// replicas); false reads them from the database for every batch.
    pub consent_cache: bool,
    /// Keep segmentation profiles from the feed (subjects who granted `personalization`)
    /// in real time; false leaves the feed's items waiting, and they are caught up when it
    /// is true again. The admin API's switch (`PUT /v1/segmentation/realtime`), once set,
    /// overrides it for every replica without a restart.
    pub segmentation: bool,
    /// How often every audience is evaluated again over every profile, so that rules over
    /// time windows ("within 30 days") let members go without a new event.
    pub segmentation_sweep_secs: u64,
    /// Leave the feed to `assent-collector worker` processes (over NATS JetStream, state
    /// in the shared database): serve processes then run no segmentation consumer.
    pub segmentation_workers: bool,
    /// How old an active segmentation model may grow before it is trained again with its
    /// spec (7 days; 0: never on a schedule).
    pub segmentation_retrain_secs: u64,
    /// The half-life, in days, of a tagged event's weight in a profile's interests.
    pub segmentation_interest_half_life_days: u32,
    /// The currency (ISO 4217) profiles keep amounts in; empty: amounts as given.
    pub segmentation_currency: String,
    /// How much of that currency one unit of another is: `USD=0.92,GBP=1.17`.
    pub segmentation_currency_rates: String,
    /// The confidence weight of each event name that counts as an interaction with an
    /// item, `NAME=WEIGHT,…` (`page` and `screen` for pages and screens).
    pub recommendation_weights: String,
    /// A request header a trusted proxy or CDN sets to the visitor's country (ISO
    /// 3166-1 alpha-2), e.g. `cf-ipcountry`; content and flag targeting read it.
    pub country_header: Option<String>,
    /// A MaxMind-format database file (GeoLite2-Country.mmdb) for the country of a
    /// visitor's address, when no trusted header says it.
    pub geoip_database: Option<String>,
    /// Answers kept per generation of the recommendations cache (in process).
    pub recommendation_cache_entries: usize,
    /// `redis://host:port/db`: keep recommendation answers in Redis, shared by every
    /// replica, instead of in each process.
    pub redis_url: Option<Secret>,
    /// How long an answer stays in Redis.
    pub recommendation_cache_secs: u64,
    /// `KL(live ‖ training)`, in nats, of a recommender's inputs or scores above which
    /// retraining is due (`assent_recommendation_retrain_due` in `/metrics`).
    pub recommendation_drift_threshold: f64,
    /// Live values a drift reading needs.
    pub recommendation_drift_min_samples: u64,
    /// How old an active recommender may grow before it is trained again with its spec
    /// (1 day; 0: never on a schedule); one whose drift is due is trained at the next
    /// check (hourly, or sooner when the interval is shorter).
    pub recommendation_retrain_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "127.0.0.1:8080".parse().expect("valid address"),
            database_url: Secret::new("sqlite://assent.db"),
            max_body_bytes: assent_protocol::MAX_BATCH_BYTES,
            pseudonym_key: None,
            pseudonym_key_id: "k1".into(),
            previous_pseudonym_keys: None,
            bootstrap_write_key: None,
            bootstrap_admin_token: None,
            bootstrap_allowed_origins: String::new(),
            event_retention_days: 395,
            consent_retention_days: 5 * 365,
            audit_retention_days: 6 * 365,
            rate_limit_per_second: 1000,
            rate_limit_burst: 2000,
            retention_interval_secs: 3600,
            audit_checkpoint_every: 1000,
            audit_checkpoint_interval_secs: 60,
            audit_signing_key: None,
            audit_signing_key_id: "s1".into(),
            audit_origin: None,
            sdk_dir: PathBuf::from("consent-ui/dist"),
            clock_tolerance_secs: 300,
            max_consent_records_per_request: assent_protocol::MAX_CONSENT_RECORDS_PER_BATCH,
            consent_records_per_second: 100,
            consent_records_burst: 500,
            trusted_proxies: String::new(),
            max_connections: 1024,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            max_header_bytes: 16 * 1024,
            dead_letter_retention_days: 30,
            erasure_notice_retention_days: 30,
            metrics_token: None,
            key_digest_secret: None,
            nats_url: None,
            nats_stream: "ASSENT".into(),
            nats_subject_prefix: "assent".into(),
            warehouse_dir: None,
            warehouse_every_secs: 60,
            consent_cache: true,
            segmentation: true,
            segmentation_sweep_secs: 3600,
            segmentation_workers: false,
            segmentation_retrain_secs: 7 * 24 * 3600,
            segmentation_interest_half_life_days: 30,
            segmentation_currency: String::new(),
            segmentation_currency_rates: String::new(),
            recommendation_weights: DEFAULT_RECOMMENDATION_WEIGHTS.into(),
            recommendation_cache_entries: 50_000,
            country_header: None,
            geoip_database: None,
            redis_url: None,
            recommendation_cache_secs: 300,
            recommendation_drift_threshold: 0.1,
            recommendation_drift_min_samples: 200,
            recommendation_retrain_secs: 24 * 3600,
        }
    }
}

impl Config {
    /// Defaults, overlaid by the TOML file (when given) and then by the environment.
    pub fn load(
        file: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Config> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
                toml::from_str(&text)
                    .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?
            }
            None => Config::default(),
        };
        for (name, value) in env {
            let Some(key) = name.strip_prefix("ASSENT_") else {
                continue;
            };
            config.set(key, &value)?;
        }
        if !name_ok(&config.pseudonym_key_id) {
            return Err(Error::Config(
                "pseudonym_key_id must be 1-16 letters, digits, '-' or '_'".into(),
            ));
        }
        if !name_ok(&config.audit_signing_key_id) {
            return Err(Error::Config(
                "audit_signing_key_id must be 1-16 letters, digits, '-' or '_'".into(),
            ));
        }
        config.proxies()?;
        if config
            .key_digest_secret
            .as_ref()
            .is_some_and(|s| s.expose().len() < 32)
        {
            return Err(Error::Config(
                "key_digest_secret must be at least 32 bytes".into(),
            ));
        }
        Ok(config)
    }

    /// The trusted proxies, parsed.
    pub fn proxies(&self) -> Result<Vec<ipnet::IpNet>> {
        self.trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        Error::Config(format!(
                            "trusted_proxies: {s:?} is not a CIDR such as 10.0.0.0/8"
                        ))
                    })
            })
            .collect()
    }

    pub fn clock_tolerance_ms(&self) -> i64 {
        i64::try_from(self.clock_tolerance_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        fn num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T> {
            v.parse()
                .map_err(|_| Error::Config(format!("ASSENT_{key} must be a number")))
        }
        match key {
            "BIND" => {
                self.bind = value
                    .parse()
                    .map_err(|_| Error::Config("ASSENT_BIND must be host:port".into()))?
            }
            "DATABASE_URL" => self.database_url = Secret::new(value),
            "MAX_BODY_BYTES" => self.max_body_bytes = num(key, value)?,
            "PSEUDONYM_KEY" => self.pseudonym_key = Some(Secret::new(value)),
            "PSEUDONYM_KEY_ID" => self.pseudonym_key_id = value.into(),
            "PREVIOUS_PSEUDONYM_KEYS" => self.previous_pseudonym_keys = Some(Secret::new(value)),
            "BOOTSTRAP_WRITE_KEY" => self.bootstrap_write_key = Some(Secret::new(value)),
            "BOOTSTRAP_ADMIN_TOKEN" => self.bootstrap_admin_token = Some(Secret::new(value)),
            "BOOTSTRAP_ALLOWED_ORIGINS" => self.bootstrap_allowed_origins = value.into(),
            "EVENT_RETENTION_DAYS" => self.event_retention_days = num(key, value)?,
            "CONSENT_RETENTION_DAYS" => self.consent_retention_days = num(key, value)?,
            "AUDIT_RETENTION_DAYS" => self.audit_retention_days = num(key, value)?,
            "RATE_LIMIT_PER_SECOND" => self.rate_limit_per_second = num(key, value)?,
            "RATE_LIMIT_BURST" => self.rate_limit_burst = num(key, value)?,
            "RETENTION_INTERVAL_SECS" => self.retention_interval_secs = num(key, value)?,
            "AUDIT_CHECKPOINT_EVERY" => self.audit_checkpoint_every = num(key, value)?,
            "AUDIT_CHECKPOINT_INTERVAL_SECS" => {
                self.audit_checkpoint_interval_secs = num(key, value)?
            }
            "AUDIT_SIGNING_KEY" => self.audit_signing_key = Some(Secret::new(value)),
            "AUDIT_SIGNING_KEY_ID" => self.audit_signing_key_id = value.into(),
            "AUDIT_ORIGIN" => self.audit_origin = Some(value.into()),
            "SDK_DIR" => self.sdk_dir = PathBuf::from(value),
            "CLOCK_TOLERANCE_SECS" => self.clock_tolerance_secs = num(key, value)?,
            "MAX_CONSENT_RECORDS_PER_REQUEST" => {
                self.max_consent_records_per_request = num(key, value)?
            }
            "CONSENT_RECORDS_PER_SECOND" => self.consent_records_per_second = num(key, value)?,
            "CONSENT_RECORDS_BURST" => self.consent_records_burst = num(key, value)?,
            "TRUSTED_PROXIES" => self.trusted_proxies = value.into(),
            "MAX_CONNECTIONS" => self.max_connections = num(key, value)?,
            "HEADER_TIMEOUT_SECS" => self.header_timeout_secs = num(key, value)?,
            "BODY_TIMEOUT_SECS" => self.body_timeout_secs = num(key, value)?,
            "MAX_HEADER_BYTES" => self.max_header_bytes = num(key, value)?,
            "DEAD_LETTER_RETENTION_DAYS" => self.dead_letter_retention_days = num(key, value)?,
            "ERASURE_NOTICE_RETENTION_DAYS" => {
                self.erasure_notice_retention_days = num(key, value)?
            }
            "METRICS_TOKEN" => self.metrics_token = Some(Secret::new(value)),
            "KEY_DIGEST_SECRET" => self.key_digest_secret = Some(Secret::new(value)),
            "NATS_URL" => self.nats_url = Some(Secret::new(value)),
            "NATS_STREAM" => self.nats_stream = value.into(),
            "NATS_SUBJECT_PREFIX" => self.nats_subject_prefix = value.into(),
            "WAREHOUSE_DIR" => self.warehouse_dir = Some(PathBuf::from(value)),
            "WAREHOUSE_EVERY_SECS" => self.warehouse_every_secs = num(key, value)?,
            "CONSENT_CACHE" => {
                self.consent_cache = value.parse().map_err(|_| {
                    Error::Config("ASSENT_CONSENT_CACHE must be true or false".into())
                })?
            }
            "SEGMENTATION" => {
                self.segmentation = value.parse().map_err(|_| {
                    Error::Config("ASSENT_SEGMENTATION must be true or false".into())
                })?
            }
            "SEGMENTATION_SWEEP_SECS" => self.segmentation_sweep_secs = num(key, value)?,
            "SEGMENTATION_WORKERS" => {
                self.segmentation_workers = value.parse().map_err(|_| {
                    Error::Config("ASSENT_SEGMENTATION_WORKERS must be true or false".into())
                })?
            }
            "SEGMENTATION_RETRAIN_SECS" => self.segmentation_retrain_secs = num(key, value)?,
            "SEGMENTATION_INTEREST_HALF_LIFE_DAYS" => {
                self.segmentation_interest_half_life_days = num(key, value)?
            }
            "SEGMENTATION_CURRENCY" => self.segmentation_currency = value.into(),
            "SEGMENTATION_CURRENCY_RATES" => self.segmentation_currency_rates = value.into(),
            "RECOMMENDATION_WEIGHTS" => self.recommendation_weights = value.into(),
            "GEOIP_DATABASE" => {
                self.geoip_database = (!value.trim().is_empty()).then(|| value.trim().to_owned())
            }
            "COUNTRY_HEADER" => {
                self.country_header =
                    (!value.trim().is_empty()).then(|| value.trim().to_ascii_lowercase())
            }
            "RECOMMENDATION_CACHE_ENTRIES" => self.recommendation_cache_entries = num(key, value)?,
            // Variables of other tools (and ASSENT_CONFIG, read by the CLI) are not ours.
            _ => {}
        }
        Ok(())
    }

    pub fn retention_interval(&self) -> Duration {
        Duration::from_secs(self.retention_interval_secs.max(1))
    }
}

fn name_ok(s: &str) -> bool {
    (1..=16).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("assent.toml");
        std::fs::write(
            &file,
            "bind = \"127.0.0.1:9000\"\nevent_retention_days = 30\n",
        )
        .unwrap();
        let env = vec![
            ("ASSENT_EVENT_RETENTION_DAYS".to_string(), "7".to_string()),
            ("ASSENT_PSEUDONYM_KEY".to_string(), "x".repeat(40)),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let c = Config::load(Some(&file), env.into_iter()).unwrap();
        assert_eq!(c.bind.port(), 9000);
        assert_eq!(c.event_retention_days, 7);
        assert_eq!(format!("{:?}", c.pseudonym_key), "Some(Secret(***))");
    }

    #[test]
    fn bad_values_are_named() {
        let env = vec![("ASSENT_RATE_LIMIT_BURST".to_string(), "lots".to_string())];
        let err = Config::load(None, env.into_iter()).unwrap_err();
        assert!(err.to_string().contains("ASSENT_RATE_LIMIT_BURST"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "colour = \"blue\"\n").unwrap();
        assert!(Config::load(Some(&file), std::iter::empty()).is_err());
    }
}
