//! Sources and keys: write keys belong to a source, admin (compliance) tokens to nobody.
//! Only digests are stored; a key is shown once, when it is made. Every change is audited.
//!
//! A digest is HMAC-SHA256 under a server secret (`key_digest_secret`, else one generated
//! and kept in the database), so a copy of the keys table alone does not let anyone test
//! guesses. Keys stored by earlier versions as bare SHA-256 are found too and their digest
//! is rewritten on first use.
pub mod sources;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use serde_json::json;

use crate::{
    audit::{NewEntry, Trail},
    config::{Config, Secret},
    error::{Error, Result},
    ids::{SourceId, UnixMs},
    keys::sources::Sources,
    pseudonym::{hex, mac_with, random_token, sha256_hex},
    storage::{self, Caller, Db, WriteTx},
};

/// What tells a digest of this version from a bare SHA-256 of an earlier one.
const DIGEST_PREFIX: &str = "h1:";

/// Shortest key an operator may choose (generated keys are 32 random bytes).
pub const MIN_CHOSEN_KEY_CHARS: usize = 32;
/// Least estimated entropy of a chosen key, in bits.
pub const MIN_CHOSEN_KEY_BITS: f64 = 128.0;

/// Turns raw keys into what `api_keys.key_hash` stores.
#[derive(Clone)]
pub struct KeyDigests {
    secret: Secret,
}

impl std::fmt::Debug for KeyDigests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyDigests(***)")
    }
}

impl KeyDigests {
    pub fn new(secret: Secret) -> KeyDigests {
        KeyDigests { secret }
    }

    pub fn digest(&self, raw: &str) -> String {
        format!(
            "{DIGEST_PREFIX}{}",
            hex(&mac_with(&self.secret, b"assent api key\0", raw.as_bytes()))
        )
    }
}

/// How long a valid key is trusted without asking the database again. A revocation takes
/// effect at once on the replica that made it, and within this time on the others.
pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// Keys and sources as handlers and the command line use them: who a key stands for
/// (recently seen keys from memory), which origins and consent scope each source has, and
/// making and revoking keys, audited. Cheap to clone.
#[derive(Clone)]
pub struct Keys {
    trail: Trail,
    digests: KeyDigests,
    /// Each source's allowed browser origins and consent scope, refreshed periodically.
    pub sources: Arc<Sources>,
    /// Recently seen valid keys (by digest), so most requests skip the key lookup.
    found: Arc<Mutex<HashMap<String, (Caller, Instant)>>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(***)")
    }
}

impl Keys {
    pub fn new(trail: Trail, digests: KeyDigests) -> Keys {
        Keys {
            trail,
            digests,
            sources: Default::default(),
            found: Default::default(),
        }
    }

    fn db(&self) -> &Db {
        self.trail.db()
    }

    /// The caller a raw key stands for, from memory when it is fresh.
    pub async fn find(&self, raw: &str) -> Result<Option<Caller>> {
        let digest = self.digests.digest(raw);
        if let Some((caller, at)) = self.found.lock().expect("key cache").get(&digest) {
            if at.elapsed() < KEY_CACHE_TTL {
                return Ok(Some(caller.clone()));
            }
        }
        let found = lookup(self.db(), &digest, raw).await?;
        let mut cache = self.found.lock().expect("key cache");
        match &found {
            Some(caller) => {
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(digest, (caller.clone(), Instant::now()));
            }
            None => {
                cache.remove(&digest);
            }
        }
        Ok(found)
    }

    /// What `api_keys.key_hash` stores for a raw key.
    pub fn digest(&self, raw: &str) -> String {
        self.digests.digest(raw)
    }

    /// Forgets the keys held in memory (after a revocation here).
    pub fn forget(&self) {
        self.found.lock().expect("key cache").clear();
    }

    /// Reads the sources again (origins, consent scopes).
    pub async fn refresh_sources(&self) -> Result<()> {
        self.sources.refresh(self.db()).await.map(|_| ())
    }

    /// The id of the source named `id_or_name` (its id or its name).
    pub async fn find_source(&self, id_or_name: &str) -> Result<Option<SourceId>> {
        storage::keys::find_source(self.db(), id_or_name).await
    }

    /// A browser request (it names an `origin`) must come from an origin its source
    /// allows.
    pub fn check_origin(&self, source_id: &SourceId, origin: Option<&str>) -> Result<()> {
        match origin {
            Some(origin) if !self.sources.origin_allowed(source_id, origin) => {
                Err(Error::Forbidden)
            }
            _ => Ok(()),
        }
    }
}

/// The caller a raw key stands for (not revoked); `digest` is [`KeyDigests::digest`] of
/// it. A key found under its old bare SHA-256 gets its digest rewritten.
async fn lookup(db: &Db, digest: &str, raw: &str) -> Result<Option<Caller>> {
    let legacy = sha256_hex(raw.as_bytes());
    let Some(row) = storage::keys::find_key(db, digest, &legacy).await? else {
        return Ok(None);
    };
    let key_id = row.id;
    if row.stored_digest == legacy {
        let mut w = db.write().await?;
        storage::keys::rewrite_digest(&mut w, &key_id, &legacy, digest).await?;
        w.commit().await?;
    }
    Ok(match (row.role.as_str(), row.source_id) {
        ("write", Some(source_id)) => Some(Caller::Source { source_id, key_id }),
        ("server", Some(source_id)) => Some(Caller::Server { source_id, key_id }),
        ("admin", _) => Some(Caller::Admin { key_id }),
        _ => None,
    })
}

/// Estimated entropy of a chosen key: its length times the Shannon entropy of its
/// characters. A crude bound, but it refuses what people type (`aaaa…`, `password123…`).
pub fn estimated_bits(raw: &str) -> f64 {
    let chars: Vec<char> = raw.chars().collect();
    let mut counts: std::collections::HashMap<char, usize> = Default::default();
    for c in &chars {
        *counts.entry(*c).or_default() += 1;
    }
    let n = chars.len() as f64;
    let per_char: f64 = counts
        .values()
        .map(|&k| {
            let p = k as f64 / n;
            -p * p.log2()
        })
        .sum();
    per_char * n
}

/// Refuses a key an operator chose that is too short or too guessable.
pub fn check_chosen(raw: &str) -> Result<()> {
    if raw.chars().count() < MIN_CHOSEN_KEY_CHARS || estimated_bits(raw) < MIN_CHOSEN_KEY_BITS {
        return Err(Error::Config(format!(
            "a chosen key must have at least {MIN_CHOSEN_KEY_CHARS} characters and about {MIN_CHOSEN_KEY_BITS} bits of entropy (use a random one: leave it unset)"
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Write,
    /// A source's secret key for its back end: ingest, and its own scope's consent.
    Server,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Write => "write",
            Role::Server => "server",
            Role::Admin => "admin",
        }
    }
}

/// `https://a.example, https://b.example/` → `https://a.example,https://b.example`; each
/// must be `*` or a scheme and host (and port), nothing more.
fn normalize_origins(list: &str) -> Result<String> {
    let mut out = Vec::new();
    for o in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let o = o.trim_end_matches('/');
        let ok = o == "*"
            || ((o.starts_with("https://") || o.starts_with("http://"))
                && !o
                    .split_once("://")
                    .is_some_and(|(_, rest)| rest.is_empty() || rest.contains('/')));
        if !ok {
            return Err(Error::Config(format!(
                "allowed origins are like https://shop.example (got {o:?})"
            )));
        }
        out.push(o.to_owned());
    }
    Ok(out.join(","))
}

/// A key just made: the only time its raw value exists outside the caller's hands.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: String,
    pub raw: String,
}

pub async fn ensure_source(
    w: &mut WriteTx,
    name: &str,
    allowed_origins: &str,
    now: UnixMs,
) -> Result<SourceId> {
    if let Some(id) = storage::keys::source_id_by_name(w, name).await? {
        return Ok(id);
    }
    let id = SourceId::parse(format!("src_{}", &random_token("")[..16]))?;
    storage::keys::insert_source(w, &id, name, allowed_origins, now).await?;
    Ok(id)
}

/// Makes a key (`raw` given, or random) inside the caller's transaction, and audits it.
pub async fn create_in(
    keys: &Keys,
    w: &mut WriteTx,
    role: Role,
    source_id: Option<&SourceId>,
    label: &str,
    raw: Option<String>,
    actor: &str,
) -> Result<NewKey> {
    let raw = match raw {
        Some(chosen) => {
            check_chosen(&chosen)?;
            chosen
        }
        None => random_token(match role {
            Role::Write => "wk_",
            Role::Server => "sk_",
            Role::Admin => "adm_",
        }),
    };
    let id = format!("key_{}", &random_token("")[..16]);
    let now = keys.trail.now();
    let digest = keys.digests.digest(&raw);
    let row = storage::keys::NewKeyRow {
        id: &id,
        source_id,
        role: role.as_str(),
        digest: &digest,
        label,
        created_at: now,
    };
    storage::keys::insert_key(w, row).await?;
    let entry = NewEntry {
        kind: crate::audit::Kind::KeyCreated,
        actor: actor.to_owned(),
        subject: None,
        data: json!({"keyId": id, "role": role.as_str(), "sourceId": source_id, "label": label}),
    };
    keys.trail.record(w, entry).await?;
    Ok(NewKey { id, raw })
}

/// Creates a key. A write key names its source (created when new); `origins`, when given,
/// becomes the source's list of allowed browser origins (audited).
pub async fn create(
    keys: &Keys,
    role: Role,
    source: Option<&str>,
    origins: Option<&str>,
    label: &str,
    actor: &str,
) -> Result<NewKey> {
    let mut w = keys.db().write().await?;
    w.lock_audit_chain().await?;
    let source_id = match (role, source) {
        (Role::Write | Role::Server, Some(name)) => {
            let id = ensure_source(&mut w, name, "", keys.trail.now()).await?;
            if let Some(list) = origins {
                let list = normalize_origins(list)?;
                storage::keys::set_allowed_origins(&mut w, &id, &list).await?;
                let entry = NewEntry {
                    kind: crate::audit::Kind::SourceOriginsSet,
                    actor: actor.to_owned(),
                    subject: None,
                    data: json!({"sourceId": id, "allowedOrigins": list}),
                };
                keys.trail.record(&mut w, entry).await?;
            }
            Some(id)
        }
        (Role::Write | Role::Server, None) => {
            return Err(Error::Config("a write or server key needs --source".into()))
        }
        (Role::Admin, _) => None,
    };
    let key = create_in(keys, &mut w, role, source_id.as_ref(), label, None, actor).await?;
    w.commit().await?;
    Ok(key)
}

pub async fn revoke(keys: &Keys, key_id: &str, actor: &str) -> Result<()> {
    let mut w = keys.db().write().await?;
    let now = keys.trail.now();
    if !storage::keys::revoke_key(&mut w, key_id, now).await? {
        return Err(Error::NotFound);
    }
    let entry = NewEntry {
        kind: crate::audit::Kind::KeyRevoked,
        actor: actor.to_owned(),
        subject: None,
        data: json!({"keyId": key_id}),
    };
    keys.trail.record(&mut w, entry).await?;
    w.commit().await?;
    keys.forget();
    Ok(())
}

/// First start on an empty database: a `default` source with a write key and a
/// compliance token. Returns them when they were generated here (to print once), `None`
/// when the database was not empty. Replicas starting together: one wins, under the
/// audit chain lock.
pub async fn bootstrap(keys: &Keys, c: &Config) -> Result<Option<(NewKey, NewKey)>> {
    let mut w = keys.db().write().await?;
    w.lock_audit_chain().await?;
    if storage::keys::any_key(&mut w).await? {
        return Ok(None);
    }
    // Checked and normalized as `keys create --origins` does: an origin a browser would
    // never send (a path, a trailing slash) is an error at first start, not a silent
    // CORS failure later.
    let origins = normalize_origins(&c.bootstrap_allowed_origins)?;
    let source = ensure_source(&mut w, "default", &origins, keys.trail.now()).await?;
    let write_raw = c
        .bootstrap_write_key
        .as_ref()
        .map(|s| s.expose().to_owned());
    let admin_raw = c
        .bootstrap_admin_token
        .as_ref()
        .map(|s| s.expose().to_owned());
    let write = create_in(
        keys,
        &mut w,
        Role::Write,
        Some(&source),
        "bootstrap write key",
        write_raw,
        "server",
    )
    .await?;
    let admin = create_in(
        keys,
        &mut w,
        Role::Admin,
        None,
        "bootstrap compliance token",
        admin_raw,
        "server",
    )
    .await?;
    w.commit().await?;
    Ok(Some((write, admin)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chosen_keys_need_length_and_entropy() {
        assert!(check_chosen("wk_short_0123456789").is_err());
        assert!(check_chosen(&"a".repeat(64)).is_err());
        assert!(check_chosen(&"ab".repeat(40)).is_err());
        assert!(check_chosen("wk_7Qm2Zr9vLx4Tn8Pc3Hd6Jf1Kb5Ws0Ye").is_ok());
        assert!(check_chosen(&random_token("wk_")).is_ok());
    }

    #[test]
    fn digests_depend_on_the_secret() {
        let a = KeyDigests::new(Secret::new("one secret"));
        let b = KeyDigests::new(Secret::new("another secret"));
        assert_ne!(a.digest("wk_x"), b.digest("wk_x"));
        assert!(a.digest("wk_x").starts_with(DIGEST_PREFIX));
        assert_ne!(a.digest("wk_x"), sha256_hex(b"wk_x"));
    }
}
