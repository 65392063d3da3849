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
