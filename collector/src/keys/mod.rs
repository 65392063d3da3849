//! Sources and keys: write keys belong to a source, admin (compliance) tokens to nobody.
//! Only digests are stored; a key is shown once, when it is made. Every change is audited.
//!
//! A digest is HMAC-SHA256 under a server secret (`key_digest_secret`, else one generated
//! and kept in the database), so a copy of the keys table alone does not let anyone test
//! guesses. Keys stored by earlier versions as bare SHA-256 are found too and their digest
//! is rewritten on first use.
pub mod sources;

use serde_json::json;
use sqlx::Row;

use crate::{
    audit::NewEntry,
    config::Secret,
    error::{Error, Result},
    pseudonym::{hex, mac_with, random_token, sha256_hex},
    storage::{Caller, Db, WriteTx},
    AppState,
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

/// The caller a raw key stands for (not revoked); `digest` is [`KeyDigests::digest`] of
/// it. A key found under its old bare SHA-256 gets its digest rewritten.
pub async fn find(db: &Db, digest: &str, raw: &str) -> Result<Option<Caller>> {
    let legacy = sha256_hex(raw.as_bytes());
    let row = sqlx::query(
        "SELECT id, role, source_id, key_hash FROM api_keys
         WHERE key_hash IN ($1, $2) AND revoked_at_ms IS NULL",
    )
    .bind(digest)
    .bind(&legacy)
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let key_id: String = row.try_get(0)?;
    let role: String = row.try_get(1)?;
    let source: Option<String> = row.try_get(2)?;
    let stored: String = row.try_get(3)?;
    if stored == legacy {
        let mut w = db.write().await?;
        sqlx::query("UPDATE api_keys SET key_hash = $1 WHERE id = $2 AND key_hash = $3")
            .bind(digest)
            .bind(&key_id)
            .bind(&legacy)
            .execute(&mut *w.tx)
            .await?;
        w.commit().await?;
    }
    Ok(match (role.as_str(), source) {
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
    now_ms: i64,
) -> Result<String> {
    if let Some(row) = sqlx::query("SELECT id FROM sources WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *w.tx)
        .await?
    {
        return Ok(row.try_get(0)?);
    }
    let id = format!("src_{}", &random_token("")[..16]);
    sqlx::query(
        "INSERT INTO sources (id, name, allowed_origins, created_at_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(name)
    .bind(allowed_origins)
    .bind(now_ms)
    .execute(&mut *w.tx)
    .await?;
    Ok(id)
}

/// Makes a key (`raw` given, or random) inside the caller's transaction, and audits it.
pub async fn create_in(
    state: &AppState,
    w: &mut WriteTx,
    role: Role,
    source_id: Option<&str>,
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
    let now = state.clock.now_ms();
    sqlx::query("INSERT INTO api_keys (id, source_id, role, key_hash, label, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&id)
        .bind(source_id)
        .bind(role.as_str())
        .bind(state.key_digests.digest(&raw))
        .bind(label)
        .bind(now)
        .execute(&mut *w.tx)
        .await?;
    let entry = NewEntry {
        kind: crate::audit::Kind::KeyCreated,
        actor: actor.to_owned(),
        subject: None,
        data: json!({"keyId": id, "role": role.as_str(), "sourceId": source_id, "label": label}),
    };
    state.audit(w, entry).await?;
    Ok(NewKey { id, raw })
}

/// Creates a key. A write key names its source (created when new); `origins`, when given,
/// becomes the source's list of allowed browser origins (audited).
pub async fn create(
    state: &AppState,
    role: Role,
    source: Option<&str>,
    origins: Option<&str>,
    label: &str,
    actor: &str,
) -> Result<NewKey> {
    let mut w = state.db.write().await?;
    w.lock_audit_chain().await?;
    let source_id = match (role, source) {
        (Role::Write | Role::Server, Some(name)) => {
            let id = ensure_source(&mut w, name, "", state.clock.now_ms()).await?;
            if let Some(list) = origins {
                let list = normalize_origins(list)?;
                sqlx::query("UPDATE sources SET allowed_origins = $1 WHERE id = $2")
                    .bind(&list)
                    .bind(&id)
                    .execute(&mut *w.tx)
                    .await?;
                let entry = NewEntry {
                    kind: crate::audit::Kind::SourceOriginsSet,
                    actor: actor.to_owned(),
                    subject: None,
                    data: json!({"sourceId": id, "allowedOrigins": list}),
                };
                state.audit(&mut w, entry).await?;
            }
            Some(id)
        }
        (Role::Write | Role::Server, None) => {
            return Err(Error::Config("a write or server key needs --source".into()))
        }
        (Role::Admin, _) => None,
    };
    let key = create_in(
        state,
        &mut w,
        role,
        source_id.as_deref(),
        label,
        None,
        actor,
    )
    .await?;
    w.commit().await?;
    Ok(key)
}

pub async fn revoke(state: &AppState, key_id: &str, actor: &str) -> Result<()> {
    let mut w = state.db.write().await?;
    let now = state.clock.now_ms();
    let n = sqlx::query(
        "UPDATE api_keys SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL",
    )
    .bind(now)
    .bind(key_id)
    .execute(&mut *w.tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(Error::NotFound);
    }
    let entry = NewEntry {
        kind: crate::audit::Kind::KeyRevoked,
        actor: actor.to_owned(),
        subject: None,
        data: json!({"keyId": key_id}),
    };
    state.audit(&mut w, entry).await?;
    w.commit().await?;
    state.forget_keys();
    Ok(())
}

/// First start on an empty database: a `default` source with a write key and a
/// compliance token. Returns them when they were generated here (to print once), `None`
/// when the database was not empty. Replicas starting together: one wins, under the
/// audit chain lock.
pub async fn bootstrap(state: &AppState) -> Result<Option<(NewKey, NewKey)>> {
    let mut w = state.db.write().await?;
    w.lock_audit_chain().await?;
    let any = sqlx::query("SELECT 1 FROM api_keys LIMIT 1")
        .fetch_optional(&mut *w.tx)
        .await?;
    if any.is_some() {
        return Ok(None);
    }
    let c = &state.config;
    // Checked and normalized as `keys create --origins` does: an origin a browser would
    // never send (a path, a trailing slash) is an error at first start, not a silent
    // CORS failure later.
    let origins = normalize_origins(&c.bootstrap_allowed_origins)?;
    let source = ensure_source(&mut w, "default", &origins, state.clock.now_ms()).await?;
    let write_raw = c
        .bootstrap_write_key
        .as_ref()
        .map(|s| s.expose().to_owned());
    let admin_raw = c
        .bootstrap_admin_token
        .as_ref()
        .map(|s| s.expose().to_owned());
    let write = create_in(
        state,
        &mut w,
        Role::Write,
        Some(&source),
        "bootstrap write key",
        write_raw,
        "server",
    )
    .await?;
    let admin = create_in(
        state,
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
