//! Storage: one `AnyPool` over SQLite (embedded default, WAL) or PostgreSQL, the write
//! transactions (`writer`: group commit; on SQLite one writing connection), and the SQLite
//! subject index (`subject_index`); the same SQL for both where it can be, and the few
//! places where they differ.
pub mod audiences;
pub mod audit;
pub mod catalog;
pub mod consent;
pub mod definitions;
pub mod duplicates;
pub mod experiments;
pub mod feed;
pub mod feedback;
pub mod identity;
pub mod ingest;
pub mod keys;
pub mod models;
pub mod profiles;
pub mod secrets;
pub mod settings;
pub mod subject_data;
pub mod subject_index;
pub mod subjects;
pub mod writer;

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    any::{AnyConnectOptions, AnyPoolOptions},
    AnyConnection, AnyPool, Connection, Executor,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::{
    error::{Error, Result},
    ids::{Pseudonym, SourceId},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A multi-row INSERT of `rows` rows into `table (columns)` that skips rows already
    /// stored under a unique key. SQLite gets `OR IGNORE`, not `ON CONFLICT DO NOTHING`:
    /// the latter still aborts the statement on other constraints, so SQLite keeps a
    /// statement journal, a copy of every page the insert touches, which was a tenth of
    /// the writer's work (the rows we insert never break the other constraints: NOT NULL
    /// columns we always fill). SQLite also gets plain `?` placeholders: with numbered ones,
    /// binding a long multi-row INSERT costs quadratic time there.
    pub fn insert_skipping_duplicates(self, table: &str, columns: &[&str], rows: usize) -> String {
        let width = columns.len();
        let mut sql = String::with_capacity(64 + rows * width * 6);
        sql.push_str(match self {
            Backend::Sqlite => "INSERT OR IGNORE INTO ",
            Backend::Postgres => "INSERT INTO ",
        });
        sql.push_str(table);
        sql.push_str(" (");
        sql.push_str(&columns.join(", "));
        sql.push_str(") VALUES ");
        for row in 0..rows {
            sql.push_str(if row > 0 { ",(" } else { "(" });
            for column in 0..width {
                if column > 0 {
                    sql.push(',');
                }
                match self {
                    Backend::Sqlite => sql.push('?'),
                    Backend::Postgres => {
                        sql.push('$');
                        sql.push_str(&(row * width + column + 1).to_string());
                    }
                }
            }
            sql.push(')');
        }
        if self == Backend::Postgres {
            sql.push_str(" ON CONFLICT DO NOTHING");
        }
        sql
    }
}

/// A table or column one dialect's migrations have and the other's do not, and why.
#[derive(Debug, Clone, Copy)]
pub struct DialectDifference {
    pub table: &'static str,
    /// A column, or `*` for the whole table.
    pub column: &'static str,
    pub why: &'static str,
}

/// Every difference between the SQLite and PostgreSQL schemas (a test compares the two).
pub const DIALECT_DIFFERENCES: &[DialectDifference] = &[
    DialectDifference {
        table: "events",
        column: "feed_tx",
        why: "PostgreSQL: the writing transaction, the first half of a feed position (postgres/0003); SQLite commits one transaction at a time",
    },
    DialectDifference {
        table: "consent_records",
        column: "feed_tx",
        why: "PostgreSQL: the writing transaction of a feed position (postgres/0003)",
    },
    DialectDifference {
        table: "erasure_notices",
        column: "feed_tx",
        why: "PostgreSQL: the writing transaction of a feed position (postgres/0003)",
    },
    DialectDifference {
        table: "event_subjects",
        column: "*",
        why: "SQLite: the subject index, filled in bulk by the writer (sqlite/0002, 0004); PostgreSQL indexes events.subject_key itself",
    },
    DialectDifference {
        table: "event_subject_runs",
        column: "*",
        why: "SQLite: the subject index's append-only runs (sqlite/0004, 0005)",
    },
    DialectDifference {
        table: "subject_index_progress",
        column: "*",
        why: "SQLite: how far the subject index reaches (sqlite/0002)",
    },
    DialectDifference {
        table: "consent_changes",
        column: "feed_tx",
        why: "PostgreSQL: the writing transaction of a consent cache line, read as the feed is (postgres/0004); SQLite's lines follow commit order",
    },
    DialectDifference {
        table: "consent_changes_pruned",
        column: "*",
        why: "PostgreSQL: below which transaction the consent cache lines were pruned (postgres/0004); SQLite caches check that the last line they saw is still there",
    },
];

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Lock id that serializes appends to the audit chain across PostgreSQL replicas.
const AUDIT_CHAIN_LOCK: i64 = 0x4153_5345_4e54; // "ASSENT"

#[derive(Debug, Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// SQLite: the one connection that writes; holding it is being the writer, which
    /// avoids busy retries and makes the audit chain's read-then-append safe. A connection
    /// of its own, not one from `pool`: in WAL mode a connection drops its whole page cache
    /// when another one committed since it last read, so writes that moved from connection
    /// to connection re-read the hot pages of every index each time, and taking a pooled
    /// connection back waited for a task that returns the last one. None on PostgreSQL.
    sqlite_writer: Option<Arc<Mutex<SqliteWriter>>>,
    /// Counts this process's commits, for whoever waits for new rows (the feed).
    commits: Arc<tokio::sync::watch::Sender<u64>>,
    /// SQLite: connections for long sequential reads ([`Db::sqlite_read`]); None on
    /// PostgreSQL and for an in-memory database.
    sqlite_readers: Option<Arc<SqliteReaders>>,
}

/// SQLite connections for long reads, opened with rusqlite when first needed and kept.
/// Reading the feed through sqlx cost 4 µs a row (each value copied into sqlx's row,
/// converted to `Any`'s, copied again, and each row handed over from sqlx's worker
/// thread); rusqlite reads the columns in place, at under 1 µs a row.
#[derive(Debug)]
struct SqliteReaders {
    path: std::path::PathBuf,
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
}

impl SqliteReaders {
    fn take(&self) -> rusqlite::Result<rusqlite::Connection> {
        if let Some(conn) = self.idle.lock().expect("readers").pop() {
            return Ok(conn);
        }
        let conn = rusqlite::Connection::open(&self.path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // Reads only, whatever a caller's statement says.
        conn.pragma_update(None, "query_only", true)?;
        conn.pragma_update(None, "cache_size", -16384)?;
        conn.pragma_update(None, "mmap_size", 268_435_456)?;
        Ok(conn)
    }

    fn give_back(&self, conn: rusqlite::Connection) {
        let mut idle = self.idle.lock().expect("readers");
        if idle.len() < 4 {
            idle.push(conn);
        }
    }
}

/// SQLite's writing connection, and whether a transaction is open on it.
#[derive(Debug)]
struct SqliteWriter {
    conn: AnyConnection,
    options: AnyConnectOptions,
    open: bool,
}

impl SqliteWriter {
    /// Begins an IMMEDIATE transaction: SQLite's write lock is taken now (waiting up to
    /// busy_timeout). A deferred transaction that reads first and then writes fails at
    /// once with SQLITE_BUSY if another process committed in between. A transaction left
    /// open (its `WriteTx` dropped where no rollback could be started) is rolled back
    /// first; a connection that no longer answers is opened again.
    async fn begin(&mut self) -> Result<()> {
        if self.open {
            let _ = self.conn.execute("ROLLBACK").await;
            self.open = false;
        }
        if let Err(e) = self.conn.execute("BEGIN IMMEDIATE").await {
            if matches!(e, sqlx::Error::Database(_)) {
                return Err(e.into());
            }
            self.conn = connect_sqlite(&self.options).await?;
            self.conn.execute("BEGIN IMMEDIATE").await?;
        }
        self.open = true;
        Ok(())
    }
}

/// The connection a [`WriteTx`] writes on: `&mut *w.tx` is an executor.
pub enum TxConn {
    Postgres(sqlx::Transaction<'static, sqlx::Any>),
    Sqlite(SqliteTx),
}

/// SQLite's writing connection with a transaction open on it. Dropped without a commit,
/// it rolls back (in a task that keeps the connection until it has).
pub struct SqliteTx(Option<OwnedMutexGuard<SqliteWriter>>);

impl Drop for SqliteTx {
    fn drop(&mut self) {
        let Some(mut writer) = self.0.take() else {
            return;
        };
        if !writer.open {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if writer.conn.execute("ROLLBACK").await.is_ok() {
                    writer.open = false;
                }
            });
        }
    }
}

impl std::ops::Deref for TxConn {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match self {
            TxConn::Postgres(tx) => tx,
            TxConn::Sqlite(SqliteTx(writer)) => &writer.as_ref().expect("open until dropped").conn,
        }
    }
}

impl std::ops::DerefMut for TxConn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            TxConn::Postgres(tx) => tx,
            TxConn::Sqlite(SqliteTx(writer)) => {
                &mut writer.as_mut().expect("open until dropped").conn
            }
        }
    }
}

/// A write transaction (on SQLite, on the writing connection, which it holds).
pub struct WriteTx {
    pub tx: TxConn,
    backend: Backend,
    chain_locked: bool,
    commits: Arc<tokio::sync::watch::Sender<u64>>,
}

impl WriteTx {
    pub fn backend(&self) -> Backend {
        self.backend
    }

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

    /// Serializes the transactions that take lock `id` until they end (a no-op on SQLite,
    /// which has one writer): for work that reads what it then writes, such as audience
    /// membership.
    pub async fn lock(&mut self, id: i64) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    pub async fn commit(self) -> Result<()> {
        match self.tx {
            TxConn::Postgres(tx) => tx.commit().await?,
            TxConn::Sqlite(mut tx) => {
                let writer = tx.0.as_mut().expect("open until dropped");
                writer.conn.execute("COMMIT").await?;
                writer.open = false;
            }
        }
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
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
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlite_settings(conn).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await?;
        let sqlite_readers = match backend {
            Backend::Sqlite => sqlite_file(&url).map(|path| {
                Arc::new(SqliteReaders {
                    path,
                    idle: Default::default(),
                })
            }),
            Backend::Postgres => None,
        };
        let sqlite_writer = match backend {
            Backend::Sqlite => Some(Arc::new(Mutex::new(SqliteWriter {
                conn: connect_sqlite(&options).await?,
                options,
                open: false,
            }))),
            Backend::Postgres => None,
        };
        Ok(Db {
            pool,
            backend,
            sqlite_writer,
            commits: Arc::new(tokio::sync::watch::channel(0).0),
            sqlite_readers,
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

    pub async fn write(&self) -> Result<WriteTx> {
        let tx = match &self.sqlite_writer {
            Some(writer) => {
                let mut writer = writer.clone().lock_owned().await;
                writer.begin().await?;
                TxConn::Sqlite(SqliteTx(Some(writer)))
            }
            None => TxConn::Postgres(self.pool.begin().await?),
        };
        Ok(WriteTx {
            tx,
            backend: self.backend,
            chain_locked: false,
            commits: self.commits.clone(),
        })
    }

    /// SQLite: runs `read` on a reading connection of rusqlite's, off the async threads.
    /// An error on PostgreSQL and for an in-memory database.
    pub async fn sqlite_read<T, F>(&self, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let Some(readers) = self.sqlite_readers.clone() else {
            return Err(Error::Config(
                "reading connections need a SQLite database file".into(),
            ));
        };
        let done = tokio::task::spawn_blocking(move || {
            let conn = readers.take()?;
            let out = read(&conn);
            readers.give_back(conn);
            out
        })
        .await;
        match done {
            Ok(out) => out.map_err(Error::from),
            Err(e) => Err(Error::Internal(format!("a read stopped: {e}"))),
        }
    }

    /// Changes after each commit this process makes (on any clone of this `Db`).
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Runs the DELETE that `batch` makes, one transaction each time, until it deletes
    /// nothing (each statement deletes a bounded batch, so writers get their turn between
    /// them); returns the rows deleted. Not "until fewer than a batch": another replica
    /// deleting at the same time can take some of a batch's rows.
    pub async fn delete_in_batches<'q, F>(&self, batch: F) -> Result<u64>
    where
        F: Fn() -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    {
        let mut total = 0;
        loop {
            let mut w = self.write().await?;
            let n = batch().execute(&mut *w.tx).await?.rows_affected();
            w.commit().await?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }

    /// Takes the lock `id` for as long as the returned value lives, if nobody holds it:
    /// what makes one process of many the one that does a job (the NATS relay). PostgreSQL:
    /// a session advisory lock on a connection of its own (closing it, or the process
    /// dying, lets it go). SQLite: one collector process serves a database file, so the
    /// lock is always free.
    pub async fn try_session_lock(&self, id: i64) -> Result<Option<SessionLock>> {
        if self.backend == Backend::Sqlite {
            return Ok(Some(SessionLock(None)));
        }
        let mut conn = self.pool.acquire().await?;
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
        Ok(held.then_some(SessionLock(Some(conn))))
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// The file of a `sqlite:` URL; None for an in-memory database.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
    let path = options.get_filename();
    let memory = path.as_os_str().is_empty() || path.to_string_lossy().contains(":memory:");
    (!memory).then(|| path.to_path_buf())
}

/// A lock from [`Db::try_session_lock`]: on PostgreSQL, a session advisory lock held by
/// the connection inside, which is closed when this is dropped rather than given back to
/// the pool (where it would go on holding the lock for nobody); on SQLite, nothing.
pub struct SessionLock(Option<sqlx::pool::PoolConnection<sqlx::Any>>);

impl SessionLock {
    /// Fails when the connection, and so the lock, is gone.
    pub async fn check(&mut self) -> Result<()> {
        if let Some(conn) = self.0.as_mut() {
            sqlx::query("SELECT 1").execute(&mut **conn).await?;
        }
        Ok(())
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(conn.detach());
        }
    }
}

/// Opens a SQLite connection with our settings (the pool's get them on connect too).
async fn connect_sqlite(options: &AnyConnectOptions) -> Result<AnyConnection> {
    let mut conn = AnyConnection::connect_with(options).await?;
    sqlite_settings(&mut conn).await?;
    Ok(conn)
}

async fn sqlite_settings(conn: &mut AnyConnection) -> std::result::Result<(), sqlx::Error> {
    // WAL: readers never block the writer. FULL: a commit is on disk before the 2xx
    // that acknowledges it.
    // 16 KiB pages: fewer WAL frames (and system calls) per commit. Only takes effect on
    // a new database file.
    conn.execute("PRAGMA page_size = 16384").await?;
    conn.execute("PRAGMA journal_mode = WAL").await?;
    conn.execute("PRAGMA synchronous = FULL").await?;
    conn.execute("PRAGMA busy_timeout = 5000").await?;
    // Keep hot index pages in memory rather than re-reading them.
    conn.execute("PRAGMA cache_size = -65536").await?;
    conn.execute("PRAGMA mmap_size = 268435456").await?;
    // Checkpoints run beside the writer (see `checkpoint`); this is only the safety net
    // should they fall behind.
    conn.execute("PRAGMA wal_autocheckpoint = 16384").await?;
    conn.execute("PRAGMA foreign_keys = ON").await?;
    Ok(())
}

/// `$first,...,$(first + n - 1)`: numbered placeholders for an IN list. Numbered ones can
/// be used several times in one statement, in both databases.
/// Deletes the rows of `table` where any of `columns` holds `subject` — at the sources
/// `at` names, or everywhere when None: what a withdrawal or an erasure does to data
/// derived from a subject. Returns how many rows went.
pub async fn delete_of_subject(
    w: &mut WriteTx,
    table: &str,
    columns: &[&str],
    subject: &Pseudonym,
    at: Option<&[SourceId]>,
) -> Result<u64> {
    let of_subject = columns
        .iter()
        .map(|c| format!("{c} = $1"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let sql = match at {
        Some(sources) => format!(
            "DELETE FROM {table} WHERE ({of_subject}) AND source_id IN ({})",
            numbered(2, sources.len())
        ),
        None => format!("DELETE FROM {table} WHERE {of_subject}"),
    };
    let mut q = sqlx::query(&sql).bind(subject.as_str());
    for s in at.unwrap_or_default() {
        q = q.bind(s.as_str());
    }
    Ok(q.execute(&mut *w.tx).await?.rows_affected())
}

/// Which of `subjects` appear in any of `columns` of `table`, inside a write: a few reads
/// for many subjects, so that deleting what is not there can be skipped.
pub async fn subjects_in(
    w: &mut WriteTx,
    table: &str,
    columns: &[&str],
    subjects: &[&Pseudonym],
) -> Result<std::collections::HashSet<String>> {
    let mut found = std::collections::HashSet::new();
    for column in columns {
        for chunk in subjects.chunks(500) {
            let sql = format!(
                "SELECT DISTINCT {column} FROM {table} WHERE {column} IN ({})",
                numbered(1, chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for s in chunk {
                q = q.bind(s.as_str());
            }
            found.extend(q.fetch_all(&mut *w.tx).await?);
        }
    }
    Ok(found)
}

/// `($1, …, $width), (…)`: the placeholders of `n` rows of a multi-row INSERT.
pub fn value_rows(n: usize, width: usize) -> String {
    (0..n)
        .map(|r| format!("({})", numbered(r * width + 1, width)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn numbered(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Who is calling: a write key of a source (public: it sits in pages and apps), a server
/// key of a source (secret: its back end), or an admin (compliance) token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Source { source_id: SourceId, key_id: String },
    Server { source_id: SourceId, key_id: String },
    Admin { key_id: String },
}

impl Caller {
    pub fn actor(&self) -> String {
        match self {
            Caller::Source { key_id, .. }
            | Caller::Server { key_id, .. }
            | Caller::Admin { key_id } => format!("key:{key_id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::*;

    async fn secrets(db: &Db) -> i64 {
        sqlx::query("SELECT COUNT(*) FROM server_secrets")
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .try_get(0)
            .unwrap()
    }

    /// A write transaction dropped without a commit (an error or a cancelled request)
    /// leaves nothing behind and gives SQLite's write lock back, to this process and to
    /// another one on the same file.
    #[tokio::test]
    async fn a_write_dropped_without_commit_leaves_nothing_and_frees_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        let insert = |name: &'static str| {
            sqlx::query(
                "INSERT INTO server_secrets (name, value, created_at_ms) VALUES ($1, 'v', 0)",
            )
            .bind(name)
        };
        {
            let mut w = db.write().await.unwrap();
            insert("dropped").execute(&mut *w.tx).await.unwrap();
        }
        let other = Db::connect(&url).await.unwrap();
        let mut w = other.write().await.unwrap();
        insert("other").execute(&mut *w.tx).await.unwrap();
        w.commit().await.unwrap();
        let mut w = db.write().await.unwrap();
        insert("kept").execute(&mut *w.tx).await.unwrap();
        w.commit().await.unwrap();
        let names: Vec<String> =
            sqlx::query_scalar("SELECT name FROM server_secrets ORDER BY name")
                .fetch_all(&db.pool)
                .await
                .unwrap();
        assert_eq!(names, ["kept", "other"]);
        assert_eq!(secrets(&other).await, 2);
    }
}
