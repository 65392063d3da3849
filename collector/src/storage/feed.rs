//! The feed as stored: positions, the items, and every statement that reads them or
//! saves a consumer's position (the feed's domain, `crate::feed`, builds on these).
//!
//! SQLite takes positions under its one write lock, so they follow commit order
//! (migration sqlite/0007). On PostgreSQL a position is the writing transaction's id,
//! then a sequence number, and only transactions older than the oldest one still running
//! are read (migration postgres/0003): a slower transaction that took a smaller number
//! can no longer commit below what a reader passed.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{
    error::{Error, Result},
    ids::{Pseudonym, SourceId},
    storage::{Backend, Db, WriteTx},
};

/// A place in the feed: after the item at this position. SQLite's `tx` is always 0.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Position {
    /// The writing transaction (PostgreSQL), 0 on SQLite and for rows older than the feed.
    pub tx: i64,
    /// The item's number, from the one counter of the feed.
    pub seq: i64,
}

impl Position {
    /// Before every item.
    pub const START: Position = Position { tx: 0, seq: 0 };

    /// Parses the text form `tx.seq` (what [`Position`]'s `Display` writes).
    pub fn parse(text: &str) -> Result<Position> {
        let bad = || Error::BadRequest(format!("feed position {text:?} is not TX.SEQ"));
        let (tx, seq) = text.split_once('.').ok_or_else(bad)?;
        Ok(Position {
            tx: tx.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.tx, self.seq)
    }
}

/// A stored event, as it was stored (identifiers pseudonymized, no address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventItem {
    pub position: Position,
    pub source_id: SourceId,
    pub message_id: String,
    /// `track`, `page`, `screen`, `identify`, `group` or `alias`.
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
    pub purpose: String,
    /// The subject's pseudonym.
    pub subject: Pseudonym,
    pub anonymous_id: Option<Pseudonym>,
    pub user_id: Option<Pseudonym>,
    /// When it happened (corrected for the device's clock), Unix ms.
    pub timestamp_ms: i64,
    pub received_at_ms: i64,
    /// The event's JSON as stored (serialized as JSON, not as a string of it).
    #[serde(serialize_with = "as_json", deserialize_with = "json_text")]
    pub payload: String,
}

/// Writes stored JSON text as the JSON it is (as a string, should it not be JSON).
fn as_json<S: serde::Serializer>(text: &str, s: S) -> std::result::Result<S::Ok, S::Error> {
    match serde_json::from_str::<&serde_json::value::RawValue>(text) {
        Ok(raw) => raw.serialize(s),
        Err(_) => s.serialize_str(text),
    }
}

/// Reads what [`as_json`] wrote back as JSON text (the same JSON; the keys perhaps in
/// another order). Through a `Value`: the item's tag makes serde buffer the fields, and
/// a buffered field cannot be read as raw text.
fn json_text<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        // Written as a string because it was not JSON.
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    })
}

/// A stored consent record: the subject's purposes from `timestamp_ms` on. A purpose set
/// to false is a withdrawal: consumers stop using, and delete, what they derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentItem {
    pub position: Position,
    pub source_id: SourceId,
    pub consent_id: String,
    pub subject: Pseudonym,
    pub purposes: BTreeMap<String, bool>,
    pub policy_version: String,
    pub timestamp_ms: i64,
    pub received_at_ms: i64,
}

/// A subject was erased: everything derived from `subject` must go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErasureItem {
    pub position: Position,
    /// One of the pseudonyms the subject was stored under (one item per key).
    pub subject: Pseudonym,
    pub received_at_ms: i64,
}

/// One item of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Item {
    Event(EventItem),
    Consent(ConsentItem),
    Erasure(ErasureItem),
}

/// What an item is, for names (subjects of a NATS stream, metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemKind {
    Event,
    Consent,
    Erasure,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Event => "event",
            ItemKind::Consent => "consent",
            ItemKind::Erasure => "erasure",
        }
    }
}

impl Item {
    pub fn position(&self) -> Position {
        match self {
            Item::Event(e) => e.position,
            Item::Consent(c) => c.position,
            Item::Erasure(x) => x.position,
        }
    }

    pub fn kind(&self) -> ItemKind {
        match self {
            Item::Event(_) => ItemKind::Event,
            Item::Consent(_) => ItemKind::Consent,
            Item::Erasure(_) => ItemKind::Erasure,
        }
    }

    /// The subject's pseudonym.
    pub fn subject(&self) -> &Pseudonym {
        match self {
            Item::Event(e) => &e.subject,
            Item::Consent(c) => &c.subject,
            Item::Erasure(x) => &x.subject,
        }
    }

    /// The source that stored it; an erasure is of every source.
    pub fn source_id(&self) -> Option<&SourceId> {
        match self {
            Item::Event(e) => Some(&e.source_id),
            Item::Consent(c) => Some(&c.source_id),
            Item::Erasure(_) => None,
        }
    }

    /// An id unique in the feed and the same each time the item is read (a duplicate
    /// filter's key, such as NATS's `Nats-Msg-Id`).
    pub fn id(&self) -> String {
        match self {
            Item::Event(e) => format!("e.{}.{}", e.source_id, e.message_id),
            Item::Consent(c) => format!("c.{}.{}", c.source_id, c.consent_id),
            Item::Erasure(x) => format!("x.{}", x.position),
        }
    }

    /// When it was received, Unix ms.
    pub fn received_at_ms(&self) -> i64 {
        match self {
            Item::Event(e) => e.received_at_ms,
            Item::Consent(c) => c.received_at_ms,
            Item::Erasure(x) => x.received_at_ms,
        }
    }
}

/// Most items one [`read`] returns.
pub const MAX_READ: usize = 10_000;

const EVENT_COLUMNS: &str = "source_id, message_id, type, name, purpose, subject, \
     anonymous_id, user_id, timestamp_ms, received_at_ms, payload";
const CONSENT_COLUMNS: &str =
    "source_id, consent_id, subject, purposes, policy_version, timestamp_ms, received_at_ms";
const ERASURE_COLUMNS: &str = "subject, received_at_ms";

/// SQLite's reads: after `?1` (a seq), at most `?2`. One writer, so every committed
/// position is final.
fn sqlite_statement(seq: &str, columns: &str, table: &str) -> String {
    format!("SELECT {seq}, {columns} FROM {table} WHERE {seq} > ?1 ORDER BY {seq} LIMIT ?2")
}

/// PostgreSQL's reads: after (`$1`, `$2`), of transactions below `$3`, at most `$4`. The
/// transaction id is returned under another name than `feed_tx`: ORDER BY would otherwise
/// sort by the converted value, and scan and sort the table instead of reading its index.
fn postgres_statement(seq: &str, columns: &str, table: &str) -> String {
    format!(
        "SELECT feed_tx::text::bigint AS position_tx, {seq}, {columns} FROM {table}
         WHERE (feed_tx, {seq}) > ($1::bigint::text::xid8, $2)
           AND feed_tx < $3::bigint::text::xid8
         ORDER BY feed_tx, {seq} LIMIT $4"
    )
}

/// The tables that hold feed items, in the order a read returns them before sorting:
/// each with the column of its positions' numbers and the columns an item is read from.
const FEED_TABLES: [(&str, &str, &str); 3] = [
    ("events", "seq", EVENT_COLUMNS),
    ("consent_records", "feed_seq", CONSENT_COLUMNS),
    ("erasure_notices", "seq", ERASURE_COLUMNS),
];

/// `part(table, seq column)` for each of [`FEED_TABLES`], joined by `join`.
fn over_feed_tables(part: impl Fn(&str, &str) -> String, join: &str) -> String {
    FEED_TABLES
        .iter()
        .map(|(table, seq, _)| part(table, seq))
        .collect::<Vec<_>>()
        .join(join)
}

/// The three statements of a read, in the order events, consent, erasures.
fn statements(statement: fn(&str, &str, &str) -> String) -> [String; 3] {
    FEED_TABLES.map(|(table, seq, columns)| statement(seq, columns, table))
}

fn sqlite_sql() -> &'static [String; 3] {
    static SQL: std::sync::OnceLock<[String; 3]> = std::sync::OnceLock::new();
    SQL.get_or_init(|| statements(sqlite_statement))
}

fn postgres_sql() -> &'static [String; 3] {
    static SQL: std::sync::OnceLock<[String; 3]> = std::sync::OnceLock::new();
    SQL.get_or_init(|| statements(postgres_statement))
}

/// The position below which every transaction has ended: no item can still commit at or
/// under a position read below it (PostgreSQL); everything on SQLite.
pub async fn horizon(db: &Db) -> Result<i64> {
    match db.backend {
        Backend::Sqlite => Ok(i64::MAX),
        Backend::Postgres => Ok(sqlx::query_scalar(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
        )
        .fetch_one(&db.pool)
        .await?),
    }
}

/// Up to `limit` items after `after`, in position order (at most [`MAX_READ`]).
pub async fn read(db: &Db, after: Position, limit: usize) -> Result<Vec<Item>> {
    read_below(db, after, limit, horizon(db).await?).await
}

/// [`read`], of the transactions below `below` (a [`horizon`]).
pub(crate) async fn read_below(
    db: &Db,
    after: Position,
    limit: usize,
    below: i64,
) -> Result<Vec<Item>> {
    let limit = limit.clamp(1, MAX_READ);
    let mut items = match db.backend {
        Backend::Sqlite => {
            db.sqlite_read(move |conn| read_sqlite(conn, after.seq, limit))
                .await?
        }
        Backend::Postgres => read_postgres(db, after, limit, below).await?,
    };
    if items.iter().any(|i| !matches!(i, Item::Event(_))) {
        items.sort_unstable_by_key(Item::position);
        items.truncate(limit);
    }
    Ok(items)
}

fn read_sqlite(
    conn: &rusqlite::Connection,
    after: i64,
    limit: usize,
) -> rusqlite::Result<Vec<Item>> {
    let [events, consent, erasures] = sqlite_sql();
    let params = rusqlite::params![after, limit as i64];
    let at = |seq| Position { tx: 0, seq };
    let mut items = Vec::with_capacity(limit);
    let mut statement = conn.prepare_cached(events)?;
    let mut rows = statement.query(params)?;
    while let Some(r) = rows.next()? {
        items.push(Item::Event(EventItem {
            position: at(r.get(0)?),
            source_id: SourceId::from_stored(r.get(1)?),
            message_id: r.get(2)?,
            kind: r.get(3)?,
            name: r.get(4)?,
            purpose: r.get(5)?,
            subject: Pseudonym::from_stored(r.get(6)?),
            anonymous_id: r.get::<_, Option<String>>(7)?.map(Pseudonym::from_stored),
            user_id: r.get::<_, Option<String>>(8)?.map(Pseudonym::from_stored),
            timestamp_ms: r.get(9)?,
            received_at_ms: r.get(10)?,
            payload: r.get(11)?,
        }));
    }
    let mut statement = conn.prepare_cached(consent)?;
    let mut rows = statement.query(params)?;
    while let Some(r) = rows.next()? {
        let purposes: String = r.get(4)?;
        items.push(Item::Consent(ConsentItem {
            position: at(r.get(0)?),
            source_id: SourceId::from_stored(r.get(1)?),
            consent_id: r.get(2)?,
            subject: Pseudonym::from_stored(r.get(3)?),
            purposes: serde_json::from_str(&purposes).unwrap_or_default(),
            policy_version: r.get(5)?,
            timestamp_ms: r.get(6)?,
            received_at_ms: r.get(7)?,
        }));
    }
    let mut statement = conn.prepare_cached(erasures)?;
    let mut rows = statement.query(params)?;
    while let Some(r) = rows.next()? {
        items.push(Item::Erasure(ErasureItem {
            position: at(r.get(0)?),
            subject: Pseudonym::from_stored(r.get(1)?),
            received_at_ms: r.get(2)?,
        }));
    }
    Ok(items)
}

async fn read_postgres(db: &Db, after: Position, limit: usize, below: i64) -> Result<Vec<Item>> {
    let [events, consent, erasures] = postgres_sql();
    let run = |statement: &'static str| {
        sqlx::query(statement)
            .bind(after.tx)
            .bind(after.seq)
            .bind(below)
            .bind(limit as i64)
            .fetch_all(&db.pool)
    };
    let position = |r: &sqlx::any::AnyRow| -> Result<Position> {
        Ok(Position {
            tx: r.try_get(0)?,
            seq: r.try_get(1)?,
        })
    };
    let mut items = Vec::with_capacity(limit);
    for r in run(events).await? {
        items.push(Item::Event(EventItem {
            position: position(&r)?,
            source_id: SourceId::from_stored(r.try_get(2)?),
            message_id: r.try_get(3)?,
            kind: r.try_get(4)?,
            name: r.try_get(5)?,
            purpose: r.try_get(6)?,
            subject: Pseudonym::from_stored(r.try_get(7)?),
            anonymous_id: r
                .try_get::<Option<String>, _>(8)?
                .map(Pseudonym::from_stored),
            user_id: r
                .try_get::<Option<String>, _>(9)?
                .map(Pseudonym::from_stored),
            timestamp_ms: r.try_get(10)?,
            received_at_ms: r.try_get(11)?,
            payload: r.try_get(12)?,
        }));
    }
    for r in run(consent).await? {
        let purposes: String = r.try_get(5)?;
        items.push(Item::Consent(ConsentItem {
            position: position(&r)?,
            source_id: SourceId::from_stored(r.try_get(2)?),
            consent_id: r.try_get(3)?,
            subject: Pseudonym::from_stored(r.try_get(4)?),
            purposes: serde_json::from_str(&purposes).unwrap_or_default(),
            policy_version: r.try_get(6)?,
            timestamp_ms: r.try_get(7)?,
            received_at_ms: r.try_get(8)?,
        }));
    }
    for r in run(erasures).await? {
        items.push(Item::Erasure(ErasureItem {
            position: position(&r)?,
            subject: Pseudonym::from_stored(r.try_get(2)?),
            received_at_ms: r.try_get(3)?,
        }));
    }
    Ok(items)
}

/// PostgreSQL: whether items have committed that [`read`] does not return yet, because
/// an older transaction (of any database of the cluster) is still running.
pub async fn pending(db: &Db) -> Result<bool> {
    pending_below(db, horizon(db).await?).await
}

/// [`pending`], against the horizon `below` a read used.
pub(crate) async fn pending_below(db: &Db, below: i64) -> Result<bool> {
    if db.backend == Backend::Sqlite {
        return Ok(false);
    }
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        let exists = |table: &str, _: &str| {
            format!("EXISTS (SELECT 1 FROM {table} WHERE feed_tx >= $1::bigint::text::xid8)")
        };
        format!("SELECT 1 WHERE {}", over_feed_tables(exists, " OR "))
    });
    let found: Option<i64> = sqlx::query_scalar(sql)
        .bind(below)
        .fetch_optional(&db.pool)
        .await?;
    Ok(found.is_some())
}

/// Where consumer `name` is: [`Position::START`] before its first save.
pub async fn position_of(db: &Db, name: &str) -> Result<Position> {
    let row = sqlx::query("SELECT position_tx, position_seq FROM feed_consumers WHERE name = $1")
        .bind(name)
        .fetch_optional(&db.pool)
        .await?;
    Ok(match row {
        Some(r) => Position {
            tx: r.try_get(0)?,
            seq: r.try_get(1)?,
        },
        None => Position::START,
    })
}

/// Saves consumer `name`'s position inside `w`, the transaction that writes the effects
/// of the items up to it. A position never moves back: a save behind the stored one (a
/// second instance of the consumer that fell behind) changes nothing.
pub async fn save_position(w: &mut WriteTx, name: &str, at: Position, now_ms: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO feed_consumers (name, position_tx, position_seq, updated_at_ms)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO UPDATE SET position_tx = excluded.position_tx,
             position_seq = excluded.position_seq, updated_at_ms = excluded.updated_at_ms
         WHERE (feed_consumers.position_tx, feed_consumers.position_seq)
             < (excluded.position_tx, excluded.position_seq)",
    )
    .bind(name)
    .bind(at.tx)
    .bind(at.seq)
    .bind(now_ms)
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}

/// Most items a lag counts.
pub const LAG_CAP: i64 = 1_000_000;

/// Committed items after `after`, counted up to [`LAG_CAP`] (PostgreSQL: those readable
/// now, below the horizon).
pub async fn items_after(db: &Db, after: Position) -> Result<i64> {
    static SQLITE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static POSTGRES: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let n: i64 = match db.backend {
        Backend::Sqlite => {
            let sql = SQLITE.get_or_init(|| {
                let count = |table: &str, seq: &str| {
                    format!(
                        "(SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE {seq} > $1 LIMIT $2))"
                    )
                };
                format!("SELECT {}", over_feed_tables(count, " + "))
            });
            sqlx::query_scalar(sql)
                .bind(after.seq)
                .bind(LAG_CAP)
                .fetch_one(&db.pool)
                .await?
        }
        Backend::Postgres => {
            let sql = POSTGRES.get_or_init(|| {
                let count = |table: &str, seq: &str| {
                    format!(
                        "(SELECT COUNT(*) FROM (SELECT 1 FROM {table}
                          WHERE (feed_tx, {seq}) > ($1::bigint::text::xid8, $2)
                            AND feed_tx < $3::bigint::text::xid8 LIMIT $4) x)"
                    )
                };
                format!("SELECT {}", over_feed_tables(count, " + "))
            });
            sqlx::query_scalar(sql)
                .bind(after.tx)
                .bind(after.seq)
                .bind(horizon(db).await?)
                .bind(LAG_CAP)
                .fetch_one(&db.pool)
                .await?
        }
    };
    Ok(n.min(LAG_CAP))
}

/// Every consumer and how many committed items it has yet to take (up to [`LAG_CAP`]).
pub async fn lags(db: &Db) -> Result<Vec<(String, i64)>> {
    let rows =
        sqlx::query("SELECT name, position_tx, position_seq FROM feed_consumers ORDER BY name")
            .fetch_all(&db.pool)
            .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let at = Position {
            tx: r.try_get(1)?,
            seq: r.try_get(2)?,
        };
        out.push((r.try_get(0)?, items_after(db, at).await?));
    }
    Ok(out)
}

/// How many events were received in `[since_ms, until_ms)`.
pub async fn events_received_between(db: &Db, since_ms: i64, until_ms: i64) -> Result<u64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM events WHERE received_at_ms >= $1 AND received_at_ms < $2",
    )
    .bind(since_ms)
    .bind(until_ms)
    .fetch_one(&db.pool)
    .await?;
    Ok(n.max(0) as u64)
}

#[cfg(test)]
mod round_trip {
    use super::*;

    #[test]
    fn items_read_back_as_they_were_written() {
        let event = Item::Event(EventItem {
            position: Position { tx: 3, seq: 7 },
            source_id: SourceId::parse("src_a").unwrap(),
            message_id: "m-1".into(),
            kind: "track".into(),
            name: Some("Order Completed".into()),
            purpose: "analytics".into(),
            subject: Pseudonym::parse("k1.0123456789abcdef0123456789abcdef").unwrap(),
            anonymous_id: None,
            user_id: None,
            timestamp_ms: 5,
            received_at_ms: 6,
            payload: r#"{"properties":{"revenue":1.5}}"#.into(),
        });
        let text = serde_json::to_string(&event).unwrap();
        assert!(text.contains(r#""payload":{"properties""#), "{text}");
        assert_eq!(serde_json::from_str::<Item>(&text).unwrap(), event);
        let bad = text.replace("k1.0123", "k1.X123");
        assert!(
            serde_json::from_str::<Item>(&bad).is_err(),
            "pseudonyms are parsed"
        );
    }
}
