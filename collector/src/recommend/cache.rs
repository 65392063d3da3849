//! Recent answers in process memory, by a key that names everything an answer depends
//! on (the recommender's version, the subject's history as a fingerprint, the request),
//! so a change to the history or a new active version is a different key: nothing has
//! to be invalidated, and a stale answer cannot be served. Two generations bound the
//! memory: entries go into the current one; when it is full it becomes the previous one
//! (the one before is dropped), and a hit in the previous one moves back.
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

/// One generation of entries.
type Generation<V> = HashMap<String, Arc<V>>;

/// A bounded map of recent answers.
pub struct Cache<V> {
    /// The current generation and the previous one.
    generations: Mutex<(Generation<V>, Generation<V>)>,
    /// Entries per generation.
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<V> Cache<V> {
    /// A cache of up to about `2 × capacity` entries.
    pub fn new(capacity: usize) -> Cache<V> {
        Cache {
            generations: Mutex::new((HashMap::new(), HashMap::new())),
            capacity: capacity.max(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The answer kept under `key`, if any.
    pub fn get(&self, key: &str) -> Option<Arc<V>> {
        let mut g = self.generations.lock().expect("not poisoned");
        let found = match g.0.get(key) {
            Some(v) => Some(v.clone()),
            None => g.1.remove(key).inspect(|v| {
                g.0.insert(key.to_owned(), v.clone());
            }),
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keeps `value` under `key`.
    pub fn put(&self, key: String, value: Arc<V>) {
        let mut g = self.generations.lock().expect("not poisoned");
        if g.0.len() >= self.capacity {
            g.1 = std::mem::take(&mut g.0);
        }
        g.0.insert(key, value);
    }

    /// Drops every entry (a recommender retrained or rolled back here).
    pub fn clear(&self) {
        let mut g = self.generations.lock().expect("not poisoned");
        g.0.clear();
        g.1.clear();
    }

    /// Hits and misses so far.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

/// Answers in Redis (`ASSENT_REDIS_URL`), shared by every replica: the same keys, each
/// kept for a time. The connection is made on first use and kept (reconnecting by
/// itself); when Redis cannot be reached an answer is computed as without a cache, and
/// the failure counted and logged (without the URL, which may hold a password).
pub struct Redis {
    client: redis::Client,
    connection: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
    ttl_secs: u64,
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
}

/// How long a Redis round trip may take before the answer is computed without it.
const TIMEOUT: std::time::Duration = std::time::Duration::from_millis(250);

/// The prefix of every key this cache writes.
pub const REDIS_PREFIX: &str = "assent:rec:";

impl Redis {
    /// A cache at `url`; nothing is connected yet.
    pub fn new(url: &str, ttl_secs: u64) -> crate::error::Result<Redis> {
        let client = redis::Client::open(url).map_err(|_| {
            crate::error::Error::Config("ASSENT_REDIS_URL is not a redis:// URL".into())
        })?;
        Ok(Redis {
            client,
            connection: tokio::sync::OnceCell::new(),
            ttl_secs: ttl_secs.max(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        })
    }

    async fn connection(&self) -> Option<redis::aio::ConnectionManager> {
        let made = self
            .connection
            .get_or_try_init(|| {
                // A cache must never hold an answer up: short timeouts, one retry.
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(TIMEOUT))
                    .set_response_timeout(Some(TIMEOUT))
                    .set_number_of_retries(1)
                    .set_max_delay(TIMEOUT);
                self.client.get_connection_manager_with_config(config)
            })
            .await;
        match made {
            Ok(c) => Some(c.clone()),
            Err(e) => {
                self.failed(&e);
                None
            }
        }
    }

    fn failed(&self, e: &redis::RedisError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(kind = ?e.kind(), "the recommendations cache in Redis failed; answering without it");
    }

    /// The answer kept under `key`, if any (None too when Redis fails).
    pub async fn get<V: serde::de::DeserializeOwned>(&self, key: &str) -> Option<V> {
        let mut c = self.connection().await?;
        let got: redis::RedisResult<Option<Vec<u8>>> = redis::cmd("GET")
            .arg(format!("{REDIS_PREFIX}{key}"))
            .query_async(&mut c)
            .await;
        let found = match got {
            Ok(v) => v.and_then(|bytes| serde_json::from_slice(&bytes).ok()),
            Err(e) => {
                self.failed(&e);
                None
            }
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keeps `value` under `key` for the configured time.
    pub async fn put<V: serde::Serialize>(&self, key: &str, value: &V) {
        let Some(mut c) = self.connection().await else {
            return;
        };
        let body = serde_json::to_vec(value).expect("serializes");
        let set: redis::RedisResult<()> = redis::cmd("SET")
            .arg(format!("{REDIS_PREFIX}{key}"))
            .arg(body)
            .arg("EX")
            .arg(self.ttl_secs)
            .query_async(&mut c)
            .await;
        if let Err(e) = set {
            self.failed(&e);
        }
    }

    /// Hits, misses and failures so far.
    pub fn stats(&self) -> (u64, u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}

/// Where answers are kept: in this process, or in Redis.
pub enum Answers<V> {
    Memory(Cache<V>),
    Redis(Redis),
}

impl<V: serde::Serialize + serde::de::DeserializeOwned> Answers<V> {
    /// The answer kept under `key`, if any.
    pub async fn get(&self, key: &str) -> Option<Arc<V>> {
        match self {
            Answers::Memory(c) => c.get(key),
            Answers::Redis(r) => r.get(key).await.map(Arc::new),
        }
    }

    /// Keeps `value` under `key`.
    pub async fn put(&self, key: String, value: Arc<V>) {
        match self {
            Answers::Memory(c) => c.put(key, value),
            Answers::Redis(r) => r.put(&key, &*value).await,
        }
    }

    /// Drops what this process keeps (Redis entries expire on their own; their keys
    /// name the version they were computed with, so none is served after a change).
    pub fn clear(&self) {
        if let Answers::Memory(c) = self {
            c.clear()
        }
    }

    /// Hits, misses and failures so far.
    pub fn stats(&self) -> (u64, u64, u64) {
        match self {
            Answers::Memory(c) => {
                let (h, m) = c.stats();
                (h, m, 0)
            }
            Answers::Redis(r) => r.stats(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_generations() {
        let c = Cache::new(2);
        c.put("a".into(), Arc::new(1));
        c.put("b".into(), Arc::new(2));
        c.put("c".into(), Arc::new(3)); // a and b move to the previous generation
        assert_eq!(c.get("a").as_deref(), Some(&1)); // and a comes back
        c.put("d".into(), Arc::new(4)); // current (c, a) is full: b is dropped
        assert!(c.get("b").is_none());
        assert_eq!(c.get("c").as_deref(), Some(&3));
        assert_eq!(c.stats(), (2, 1));
        c.clear();
        assert!(c.get("d").is_none());
    }
}
