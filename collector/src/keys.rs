//! Sources and keys: write keys belong to a source, admin (compliance) tokens to nobody.
//! Only hashes are stored; a key is shown once, when it is made. Every change is audited.
use serde_json::json;
use sqlx::Row;

use crate::{
    audit::NewEntry,
    db::{key_hash, WriteTx},
    error::{Error, Result},
    pseudonym::random_token,
    AppState,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Write,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Write => "write",
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
    let raw = raw.unwrap_or_else(|| random_token(if role == Role::Write { "wk_" } else { "adm_" }));
    if raw.len() < 16 {
        return Err(Error::Config("keys must be at least 16 characters".into()));
    }
    let id = format!("key_{}", &random_token("")[..16]);
    let now = state.clock.now_ms();
    sqlx::query("INSERT INTO api_keys (id, source_id, role, key_hash, label, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&id)
        .bind(source_id)
        .bind(role.as_str())
        .bind(key_hash(&raw))
        .bind(label)
        .bind(now)
        .execute(&mut *w.tx)
        .await?;
    let entry = NewEntry {
        kind: "key_created",
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
        (Role::Write, Some(name)) => {
            let id = ensure_source(&mut w, name, "", state.clock.now_ms()).await?;
            if let Some(list) = origins {
                let list = normalize_origins(list)?;
                sqlx::query("UPDATE sources SET allowed_origins = $1 WHERE id = $2")
                    .bind(&list)
                    .bind(&id)
                    .execute(&mut *w.tx)
                    .await?;
                let entry = NewEntry {
                    kind: "source_origins_set",
                    actor: actor.to_owned(),
                    subject: None,
                    data: json!({"sourceId": id, "allowedOrigins": list}),
                };
                state.audit(&mut w, entry).await?;
            }
            Some(id)
        }
        (Role::Write, None) => return Err(Error::Config("a write key needs --source".into())),
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
        kind: "key_revoked",
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
