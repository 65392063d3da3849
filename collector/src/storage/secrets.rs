//! The statements on `server_secrets`: secrets generated once and shared by every replica
//! (the pseudonymization key, the key digest secret), and which pseudonymization key was
//! in use at the last start.
use sqlx::Row;

use crate::{
    config::{Config, Secret},
    error::{Error, Result},
    ids::UnixMs,
    pseudonym::random_token,
    storage::{Db, WriteTx},
};

/// The name the pseudonymization key `key_id` is kept under.
fn pseudonym_key_name(key_id: &str) -> String {
    format!("pseudonym_key.{key_id}")
}

/// The pseudonymization key: from the configuration, or generated once and kept in the
/// database (so that every replica and every restart uses the same one).
pub async fn pseudonym_key(db: &Db, config: &Config, now: UnixMs) -> Result<Secret> {
    if let Some(key) = &config.pseudonym_key {
        if key.expose().len() < 32 {
            return Err(Error::Config(
                "pseudonym_key must be at least 32 bytes".into(),
            ));
        }
        return Ok(key.clone());
    }
    server_secret(db, &pseudonym_key_name(&config.pseudonym_key_id), now).await
}

/// The pseudonymization key `key_id` kept in the database, without making one.
pub async fn stored_pseudonym_key(db: &Db, key_id: &str) -> Result<Option<Secret>> {
    let value: Option<String> =
        sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1")
            .bind(pseudonym_key_name(key_id))
            .fetch_optional(&db.pool)
            .await?;
    Ok(value.map(Secret::new))
}

/// The seed of the Ed25519 key that signs audit checkpoints: from the configuration (64
/// hex digits), or generated once and kept in the database under its id.
pub async fn audit_signing_seed(db: &Db, config: &Config, now: UnixMs) -> Result<[u8; 32]> {
    let hex = match &config.audit_signing_key {
        Some(key) => key.clone(),
        None => {
            let name = format!("audit_signing_key.{}", config.audit_signing_key_id);
            server_secret(db, &name, now).await?
        }
    };
    crate::pseudonym::unhex(hex.expose())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Config("audit_signing_key must be 64 hex digits".into()))
}

/// The audit log's origin: from the configuration, or generated once and kept.
pub async fn audit_origin(db: &Db, config: &Config, now: UnixMs) -> Result<String> {
    if let Some(origin) = &config.audit_origin {
        return Ok(origin.clone());
    }
    let nonce = server_secret(db, "audit_origin_nonce", now).await?;
    Ok(format!("assent-audit/{}", &nonce.expose()[..16]))
}

/// A secret generated once and kept in `server_secrets` under `name`. Several
/// replicas may start at once: the first insert wins, all read the winner.
pub async fn server_secret(db: &Db, name: &str, now: UnixMs) -> Result<Secret> {
    let mut w = db.write().await?;
    sqlx::query("INSERT INTO server_secrets (name, value, created_at_ms) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
        .bind(name).bind(random_token("")).bind(now.millis()).execute(&mut *w.tx).await?;
    let value: String = sqlx::query("SELECT value FROM server_secrets WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *w.tx)
        .await?
        .try_get(0)?;
    w.commit().await?;
    Ok(Secret::new(value))
}

/// The id of the pseudonymization key recorded as in use, inside a write.
pub async fn key_in_use(w: &mut WriteTx) -> Result<Option<String>> {
    let row = sqlx::query("SELECT value FROM server_secrets WHERE name = 'pseudonym_key_in_use'")
        .fetch_optional(&mut *w.tx)
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Records `key_id` as the pseudonymization key in use.
pub async fn set_key_in_use(w: &mut WriteTx, key_id: &str, now: UnixMs) -> Result<()> {
    sqlx::query("INSERT INTO server_secrets (name, value, created_at_ms) VALUES ('pseudonym_key_in_use', $1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
        .bind(key_id)
        .bind(now.millis())
        .execute(&mut *w.tx)
        .await?;
    Ok(())
}
