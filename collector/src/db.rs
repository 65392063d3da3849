//! The database: one `AnyPool` over SQLite (embedded default, WAL) or PostgreSQL, the same
//! SQL for both where it can be, and the few places where they differ.
use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    any::{AnyConnectOptions, AnyPoolOptions},
    AnyPool, Executor, Row,
};
use tokio::sync::{Mutex, MutexGuard};

use crate::{
    config::{Config, Secret},
    error::{Error, Result},
    pseudonym::{random_token, sha256_hex},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Lock id that serializes appends to the audit chain across PostgreSQL replicas.
const AUDIT_CHAIN_LOCK: i64 = 0x4153_5345_4e54; // "ASSENT"

#[derive(Debug, Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// SQLite has one writer: taking it here first avoids busy retries and makes the
    /// audit chain's read-then-append safe. Unused for PostgreSQL.
    writer: Arc<Mutex<()>>,
    /// Where write transactions run. On SQLite one connection of its own: in WAL mode a
    /// connection drops its whole page cache when another one committed since it last
    /// read, so writes that moved from connection to connection re-read the hot pages of
    /// every index from the WAL each time. On PostgreSQL, `pool`.
    write_pool: AnyPool,
}

/// A write transaction (and, on SQLite, the writer lock).
pub struct WriteTx<'a> {
    pub tx: sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    chain_locked: bool,
    _writer: Option<MutexGuard<'a, ()>>,
}

impl WriteTx<'_> {
    /// Serializes audit chain appends (a no-op on SQLite, which has one writer).
    pub async fn lock_audit_chain(&mut self) -> Result<()> {
        if self.backend == Backend::Postgres && !self.chain_locked {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(AUDIT_CHAIN_LOCK)
                .execute(&mut *self.tx)
                .await?;
            self.chain_locked = true;
        }
        Ok(())
    }

    /// Appends the placeholder of the `n`th (1-based) parameter. SQLite gets plain `?`:
    /// with numbered ones, binding a long multi-row INSERT costs quadratic time there.
    pub fn placeholder(&self, sql: &mut String, n: usize) {
        match self.backend {
            Backend::Sqlite => sql.push('?'),
            Backend::Postgres => {
                sql.push('$');
                sql.push_str(&n.to_string());
            }
        }
    }

    /// How a multi-row insert that skips rows already stored begins (`INSERT` and its
    /// conflict clause, [`on_duplicate_skip`](Self::on_duplicate_skip), go together). On
    /// SQLite `OR IGNORE`, not `ON CONFLICT DO NOTHING`: the latter still aborts the
    /// statement on other constraints, so SQLite keeps a statement journal, a copy of
    /// every page the insert touches, which was a tenth of the writer's work. Our rows
    /// never break the other constraints (they are NOT NULL columns we always fill).
    pub fn insert_skipping_duplicates(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "INSERT OR IGNORE",
            Backend::Postgres => "INSERT",
        }
    }

    /// The end of an insert begun with [`insert_skipping_duplicates`](Self::insert_skipping_duplicates).
    pub fn on_duplicate_skip(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " ON CONFLICT DO NOTHING",
        }
    }

    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl Db {
    pub async fn connect(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            let url = if url.contains('?') {
                url.to_owned()
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(Error::Config(
                "database_url must start with sqlite: or postgres:".into(),
            ));
        };
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|e| Error::Config(format!("database_url: {e}")))?;
        let pool = Self::pool_options(backend, if backend == Backend::Sqlite { 8 } else { 16 })
            .connect_with(options.clone())
            .await?;
        let write_pool = match backend {
            // Kept open for good: a fresh connection would start with a cold cache.
            Backend::Sqlite => {
                Self::pool_options(backend, 1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => pool.clone(),
        };
        Ok(Db {
            pool,
            backend,
            writer: Arc::new(Mutex::new(())),
            write_pool,
        })
    }

    fn pool_options(backend: Backend, connections: u32) -> AnyPoolOptions {
        AnyPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers never block the writer. FULL: a commit is on disk
                        // before the 2xx that acknowledges it.
                        // 16 KiB pages: fewer WAL frames (and system calls) per commit.
                        // Only takes effect on a new database file.
                        conn.execute("PRAGMA page_size = 16384").await?;
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        // Keep hot index pages in memory rather than re-reading them.
                        conn.execute("PRAGMA cache_size = -65536").await?;
                        conn.execute("PRAGMA mmap_size = 268435456").await?;
                        // Checkpoints run beside the writer (see `checkpoint`); this
                        // is only the safety net should they fall behind.
                        conn.execute("PRAGMA wal_autocheckpoint = 16384").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
    }

    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// SQLite: copies the WAL into the database without blocking the writer (a PASSIVE
    /// checkpoint on a connection of its own), so the writer never pauses to do it.
    pub async fn checkpoint(&self) -> Result<()> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_all(&self.pool)
                .await?;
        }
        Ok(())
    }

    pub async fn write(&self) -> Result<WriteTx<'_>> {
        let guard = match self.backend {
            Backend::Sqlite => Some(self.writer.lock().await),
            Backend::Postgres => None,
        };
        let tx = match self.backend {
            // IMMEDIATE: take SQLite's write lock now (waiting up to busy_timeout). A
            // deferred transaction that reads first and then writes fails at once with
            // SQLITE_BUSY if another process committed in between.
            Backend::Sqlite => self.write_pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.write_pool.begin().await?,
        };
        Ok(WriteTx {
            tx,
            backend: self.backend,
            chain_locked: false,
            _writer: guard,
        })
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The pseudonymization key: from the configuration, or generated once and kept in the
    /// database (so that every replica and every restart uses the same one).
    pub async fn pseudonym_key(&self, config: &Config, now_ms: i64) -> Result<Secret> {
        if let Some(key) = &config.pseudonym_key {
            if key.expose().len() < 32 {
                return Err(Error::Config(
                    "pseudonym_key must be at least 32 bytes".into(),
                ));
            }
            return Ok(key.clone());
        }
        let name = format!("pseudonym_key.{}", config.pseudonym_key_id);
        let mut w = self.write().await?;
        // Several replicas may start at once: the first insert wins, all read the winner.
        sqlx::query("INSERT INTO server_secrets (name, value, created_at_ms) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
            .bind(&name).bind(random_token("")).bind(now_ms).execute(&mut *w.tx).await?;
        let value: String = sqlx::query("SELECT value FROM server_secrets WHERE name = $1")
            .bind(&name)
            .fetch_one(&mut *w.tx)
            .await?
            .try_get(0)?;
        w.commit().await?;
        Ok(Secret::new(value))
    }
}

/// `$first,...,$(first + n - 1)`: numbered placeholders for an IN list. Numbered ones can
/// be used several times in one statement, in both databases.
pub fn numbered(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Who is calling: a write key of a source, or an admin (compliance) token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Source { source_id: String, key_id: String },
    Admin { key_id: String },
}

impl Caller {
    pub fn actor(&self) -> String {
        match self {
            Caller::Source { key_id, .. } | Caller::Admin { key_id } => format!("key:{key_id}"),
        }
    }
}

/// Keys are stored as SHA-256 hashes; the raw key is shown once, when created.
pub fn key_hash(raw: &str) -> String {
    sha256_hex(raw.as_bytes())
}

pub async fn find_key(db: &Db, raw: &str) -> Result<Option<Caller>> {
    let row = sqlx::query(
        "SELECT id, role, source_id FROM api_keys WHERE key_hash = $1 AND revoked_at_ms IS NULL",
    )
    .bind(key_hash(raw))
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let key_id: String = row.try_get(0)?;
    let role: String = row.try_get(1)?;
    let source: Option<String> = row.try_get(2)?;
    Ok(match (role.as_str(), source) {
        ("write", Some(source_id)) => Some(Caller::Source { source_id, key_id }),
        ("admin", _) => Some(Caller::Admin { key_id }),
        _ => None,
    })
}

/// One key as `keys list` shows it (never the key itself).
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub role: String,
    pub source: Option<String>,
    pub label: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

pub async fn list_keys(db: &Db) -> Result<Vec<KeyInfo>> {
    let rows = sqlx::query(
        "SELECT k.id, k.role, s.name, k.label, k.created_at_ms, k.revoked_at_ms
         FROM api_keys k LEFT JOIN sources s ON s.id = k.source_id ORDER BY k.created_at_ms, k.id",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(KeyInfo {
                id: r.try_get(0)?,
                role: r.try_get(1)?,
                source: r.try_get(2)?,
                label: r.try_get(3)?,
                created_at_ms: r.try_get(4)?,
                revoked_at_ms: r.try_get(5)?,
            })
        })
        .collect()
}
