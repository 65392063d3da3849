//! A hash map with a fast, per-process seeded hasher (foldhash), for the maps ingest and
//! the consent cache build on every request from the ids in it; std's SipHash was a few
//! percent of ingest.
use std::collections::HashMap;

pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
