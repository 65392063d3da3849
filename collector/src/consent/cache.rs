//! Subjects' consent records, kept in memory so that enforcing consent on a batch need not
//! ask the database for the records of every subject in it (on SQLite that lookup was a
//! fifth of the work of ingesting a batch).
//!
//! It stays right whichever process or replica changes the records: every change to
//! `consent_records` leaves a line in `consent_changes` (by trigger) naming the subject's
//! bucket ([`bucket`]), and before each use the cache reads the lines it has not applied
//! and drops those buckets. Records loaded from the database are kept only if no line was
//! applied between that read and the load.
//!
//! Which lines are new: on SQLite, those after the last one seen (its single writer makes
//! the order of the lines the order of commits). On PostgreSQL, where replicas commit in
//! any order, those of every transaction at or above the horizon of the last look (the
//! oldest transaction then running; every line below it was applied at that look or
//! before), less those already applied; a withdrawal committed on any replica is a line
//! the next look on every other replica reads, before the batch it serves is checked.
use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc, Mutex, MutexGuard,
};

use assent_protocol::PurposeMap;

use crate::{
    error::Result,
    fast_map::FastMap,
    keys::sources::ConsentScope,
    storage::{consent as stored, Db},
};

/// One subject's consent records, oldest first.
pub type Records = Arc<Vec<Entry>>;

/// One stored consent record, as enforcement needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Time in force (corrected for the device's clock), Unix milliseconds.
    pub at: i64,
    pub purposes: PurposeMap,
    /// Whether it came from a Segment consent stamp on an event rather than from a
    /// consent record: any consent record in force wins over stamps.
    pub stamp: bool,
}

/// The policy version under which consent taken from Segment stamps is stored.
pub const STAMP_POLICY_VERSION: &str = "segment-consent-stamp";

/// Subjects kept before the cache starts afresh.
const MAX_SUBJECTS: usize = 200_000;
/// More new lines than this since the last look: start afresh rather than drop bucket by
/// bucket.
const MAX_CHANGES: i64 = 2_000;
/// Lines kept in `consent_changes` when it is pruned (more than any cache reads at once).
const KEEP_CHANGES: i64 = 10 * MAX_CHANGES;

/// The bucket of a stored subject pseudonym: its last four characters, as
/// `substr(subject, -4)` in the triggers of migration `sqlite/0003`.
pub fn bucket(subject: &str) -> &str {
    let start = subject.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
    &subject[start..]
}

#[derive(Debug)]
pub struct ConsentCache {
    inner: Option<Mutex<Inner>>,
    /// One look at `consent_changes` at a time; requests that arrive during one wait for
    /// the next, which then serves them all.
    looking: tokio::sync::Mutex<()>,
    /// Looks begun (each is numbered by this count when it begins)...
    begun: AtomicU64,
    /// ...and the number of the last one completed.
    completed: AtomicU64,
    /// The sources' count of consent scope changes when last followed.
    scope_changes: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    /// How far `consent_changes` was read.
    cursor: stored::ChangeCursor,
    /// Changes each time a look drops something or starts afresh: loads made before a
    /// change may be stale and are not kept.
    generation: u64,
    /// bucket → consent scope id → subject → records.
    buckets: FastMap<String, FastMap<String, FastMap<String, Records>>>,
    subjects: usize,
}

impl Inner {
    fn get(&self, scope: &str, subject: &str) -> Option<&Records> {
        self.buckets.get(bucket(subject))?.get(scope)?.get(subject)
    }

    fn put(&mut self, scope: &str, subject: &str, records: Records) {
        if self.subjects >= MAX_SUBJECTS {
            self.buckets.clear();
            self.subjects = 0;
        }
        let in_bucket = self.buckets.entry(bucket(subject).to_owned()).or_default();
        let in_scope = match in_bucket.get_mut(scope) {
            Some(map) => map,
            None => in_bucket.entry(scope.to_owned()).or_default(),
        };
        if in_scope.insert(subject.to_owned(), records).is_none() {
            self.subjects += 1;
        }
    }

    fn drop_bucket(&mut self, bucket: &str) {
        if let Some(gone) = self.buckets.remove(bucket) {
            self.subjects -= gone.values().map(|m| m.len()).sum::<usize>();
        }
    }

    fn restart(&mut self) {
        self.buckets.clear();
        self.subjects = 0;
        self.generation += 1;
    }
}

impl ConsentCache {
    /// A cache for either backend; `enabled` false reads the database for every batch.
    pub fn new(enabled: bool) -> ConsentCache {
        ConsentCache {
            inner: enabled.then(Default::default),
            looking: Default::default(),
            begun: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            scope_changes: AtomicU64::new(0),
        }
    }

    /// Drops everything held when consent scopes changed since the last call (`changes`
    /// is [`crate::keys::sources::Sources::scope_changes`]): records filed under a scope
    /// may belong to sources no longer in it, and miss those that joined.
    pub fn follow_scope_changes(&self, changes: u64) {
        if self.scope_changes.swap(changes, Ordering::SeqCst) != changes {
            self.clear();
        }
    }

    /// The consent records of `scope` stored under each of `subjects` (stored
    /// pseudonyms), from memory where they are known and unchanged, otherwise from the
    /// database. A subject without records gets an empty list. Records that other sources
    /// than the scope's stored are never among them.
    pub async fn records_of(
        &self,
        db: &Db,
        scope: &ConsentScope,
        subjects: &[&str],
    ) -> Result<FastMap<String, Records>> {
        let Some(inner) = &self.inner else {
            return load(db, scope, subjects).await;
        };
        let synced = self.look(db, inner).await?;
        let mut found = FastMap::with_capacity_and_hasher(subjects.len(), Default::default());
        let mut missing = Vec::new();
        {
            let cache = lock(inner);
            for s in subjects {
                match cache.get(&scope.id, s) {
                    Some(records) => {
                        found.insert((*s).to_owned(), records.clone());
                    }
                    None => missing.push(*s),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let mut loaded = load(db, scope, &missing).await?;
        let mut cache = lock(inner);
        // A line applied since `synced` may concern what was just read: keep nothing then.
        let keep = cache.generation == synced;
        for s in missing {
            let records = loaded.remove(s).unwrap_or_default();
            if keep {
                cache.put(&scope.id, s, records.clone());
            }
            found.insert(s.to_owned(), records);
        }
        Ok(found)
    }

    /// Brings the cache up to date with every change committed before this call; returns
    /// the generation after it. A look that began after this call did is as good as one
    /// of its own, so concurrent requests share looks instead of each asking the database.
    async fn look(&self, db: &Db, inner: &Mutex<Inner>) -> Result<u64> {
        let arrived = self.begun.load(Ordering::SeqCst);
        let _one_at_a_time = self.looking.lock().await;
        if self.completed.load(Ordering::SeqCst) > arrived {
            return Ok(lock(inner).generation);
        }
        let number = self.begun.fetch_add(1, Ordering::SeqCst) + 1;
        let cursor = lock(inner).cursor.clone();
        let (changes, cursor) = stored::changes_since(db, &cursor, MAX_CHANGES).await?;
        let mut cache = lock(inner);
        cache.cursor = cursor;
        match changes {
            stored::Changes::Restart => cache.restart(),
            stored::Changes::Buckets(buckets) => {
                for bucket in &buckets {
                    cache.drop_bucket(bucket);
                }
                if !buckets.is_empty() {
                    cache.generation += 1;
                }
            }
        }
        self.completed.store(number, Ordering::SeqCst);
        Ok(cache.generation)
    }

    /// Subjects held in memory.
    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| lock(i).subjects)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops everything held (after a change of consent scopes).
    pub fn clear(&self) {
        if let Some(inner) = &self.inner {
            lock(inner).restart();
        }
    }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // The cache holds no invariant a panic elsewhere could break halfway.
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads the consent records that the sources of `scope` stored for `subjects`.
async fn load(
    db: &Db,
    scope: &ConsentScope,
    subjects: &[&str],
) -> Result<FastMap<String, Records>> {
    let mut lists: FastMap<String, Vec<Entry>> = FastMap::default();
    for record in stored::records_of(db, &scope.members, subjects).await? {
        let purposes: PurposeMap = serde_json::from_str(&record.purposes).unwrap_or_default();
        lists.entry(record.subject).or_default().push(Entry {
            at: record.timestamp_ms,
            purposes,
            stamp: record.policy_version == STAMP_POLICY_VERSION,
        });
    }
    Ok(lists
        .into_iter()
        .map(|(subject, mut list)| {
            list.sort_by_key(|e| e.at);
            (subject, Arc::new(list))
        })
        .collect())
}

/// Prunes `consent_changes` (run by the retention job). SQLite: keeps the last
/// [`KEEP_CHANGES`] lines; a cache further behind starts afresh. PostgreSQL: deletes the
/// lines of transactions below the horizon the previous prune saw, and records that
/// bound; a cache whose horizon is below it starts afresh.
pub async fn prune(db: &Db) -> Result<u64> {
    stored::prune_lines(db, KEEP_CHANGES).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_the_last_four_characters() {
        assert_eq!(bucket("k1.0123456789abcdef"), "cdef");
        assert_eq!(bucket("ab"), "ab");
        assert_eq!(bucket("héllo"), "éllo");
        assert_eq!(bucket(""), "");
    }

    #[test]
    fn dropping_a_bucket_drops_its_subjects_only() {
        let mut inner = Inner::default();
        let one: Records = Arc::new(vec![Entry {
            at: 1,
            purposes: PurposeMap::new(),
            stamp: false,
        }]);
        inner.put("src_a", "k1.aaaa0001", one.clone());
        inner.put("src_a", "k1.bbbb0001", one.clone());
        inner.put("src_a", "k1.cccc0002", one.clone());
        inner.put("src_b", "k1.cccc0002", one.clone());
        assert_eq!(inner.subjects, 4);
        assert!(inner.get("src_c", "k1.cccc0002").is_none());
        inner.drop_bucket("0001");
        assert_eq!(inner.subjects, 2);
        assert!(inner.get("src_a", "k1.aaaa0001").is_none());
        assert!(inner.get("src_a", "k1.cccc0002").is_some());
    }
}
