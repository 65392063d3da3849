//! The warehouse sink: the feed written as files in Hive-style partitions, the layout
//! BigQuery, Snowflake, Spark and DuckDB load as they are:
//!
//! ```text
//! DIR/events/source=SOURCE/date=YYYY-MM-DD/part-TX.SEQ.parquet
//! DIR/consent/source=SOURCE/date=YYYY-MM-DD/part-TX.SEQ.parquet
//! DIR/erasures/date=YYYY-MM-DD/part-TX.SEQ.parquet
//! ```
//!
//! The date is the day (UTC) the item was received; `TX.SEQ` is the position of the
//! file's first item. Only what the feed holds leaves: pseudonyms, never raw ids. The
//! erasure files list the pseudonyms erased since: the warehouse deletes their rows
//! (for example `DELETE FROM events WHERE subject IN (SELECT subject FROM erasures)`).
//!
//! Each file is written under a temporary name, flushed to disk and renamed, so a crash
//! leaves no half file. The sink ([`run`]) saves its feed position once a batch's files
//! are renamed; started again, it first removes files past its saved position (written
//! by a batch whose position was never saved) and leftover temporary files, then writes
//! the batch again. `assent-collector export events` writes the same layout once, for a
//! backfill ([`export_events`]).
use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use parquet::{
    basic::Compression,
    data_type::{ByteArray, ByteArrayType, Int64Type},
    file::{properties::WriterProperties, writer::SerializedFileWriter},
    schema::{parser::parse_message_type, types::Type},
};

use crate::{
    clock::Clock,
    error::{Error, Result},
    feed::{self, ConsentItem, ErasureItem, EventItem, Item, Position},
    ids::Pseudonym,
    storage::Db,
};

/// The sink's name in `feed_consumers` (and in `assent_feed_lag`).
pub const CONSUMER: &str = "warehouse";

/// Most items one file holds (a batch of the sink).
pub const BATCH_ITEMS: usize = 200_000;

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Apache Parquet, Snappy-compressed.
    Parquet,
    /// One JSON item per line.
    Ndjson,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Ndjson => "ndjson",
        }
    }
}

const EVENTS_SCHEMA: &str = "message event {
    REQUIRED INT64 position_tx;
    REQUIRED INT64 position_seq;
    REQUIRED BYTE_ARRAY source_id (UTF8);
    REQUIRED BYTE_ARRAY message_id (UTF8);
    REQUIRED BYTE_ARRAY type (UTF8);
    OPTIONAL BYTE_ARRAY name (UTF8);
    REQUIRED BYTE_ARRAY purpose (UTF8);
    REQUIRED BYTE_ARRAY subject (UTF8);
    OPTIONAL BYTE_ARRAY anonymous_id (UTF8);
    OPTIONAL BYTE_ARRAY user_id (UTF8);
    REQUIRED INT64 timestamp (TIMESTAMP(MILLIS,true));
    REQUIRED INT64 received_at (TIMESTAMP(MILLIS,true));
    REQUIRED BYTE_ARRAY payload (JSON);
}";

const CONSENT_SCHEMA: &str = "message consent {
    REQUIRED INT64 position_tx;
    REQUIRED INT64 position_seq;
    REQUIRED BYTE_ARRAY source_id (UTF8);
    REQUIRED BYTE_ARRAY consent_id (UTF8);
    REQUIRED BYTE_ARRAY subject (UTF8);
    REQUIRED BYTE_ARRAY purposes (JSON);
    REQUIRED BYTE_ARRAY policy_version (UTF8);
    REQUIRED INT64 timestamp (TIMESTAMP(MILLIS,true));
    REQUIRED INT64 received_at (TIMESTAMP(MILLIS,true));
}";

const ERASURES_SCHEMA: &str = "message erasure {
    REQUIRED INT64 position_tx;
    REQUIRED INT64 position_seq;
    REQUIRED BYTE_ARRAY subject (UTF8);
    REQUIRED INT64 received_at (TIMESTAMP(MILLIS,true));
}";

/// One column's values for a file.
enum Column {
    Int(Vec<i64>),
    /// Text; `None` is NULL (the column is OPTIONAL).
    Text(Vec<Option<ByteArray>>),
}

fn ints(items: &[&Item], f: impl Fn(&Item) -> i64) -> Column {
    Column::Int(items.iter().map(|i| f(i)).collect())
}

fn texts(items: &[&Item], f: impl Fn(&Item) -> Option<&str>) -> Column {
    Column::Text(
        items
            .iter()
            .map(|i| f(i).map(|s| ByteArray::from(s.as_bytes().to_vec())))
            .collect(),
    )
}

fn event(i: &Item) -> &EventItem {
    match i {
        Item::Event(e) => e,
        _ => unreachable!("grouped by kind"),
    }
}

fn consent(i: &Item) -> &ConsentItem {
    match i {
        Item::Consent(c) => c,
        _ => unreachable!("grouped by kind"),
    }
}

fn erasure(i: &Item) -> &ErasureItem {
    match i {
        Item::Erasure(x) => x,
        _ => unreachable!("grouped by kind"),
    }
}

/// The columns of a file of items of one kind, in the order of its schema.
fn columns(kind: feed::ItemKind, items: &[&Item]) -> (&'static str, Vec<Column>) {
    let tx = ints(items, |i| i.position().tx);
    let seq = ints(items, |i| i.position().seq);
    match kind {
        feed::ItemKind::Event => (
            EVENTS_SCHEMA,
            vec![
                tx,
                seq,
                texts(items, |i| Some(event(i).source_id.as_str())),
                texts(items, |i| Some(&event(i).message_id)),
                texts(items, |i| Some(&event(i).kind)),
                texts(items, |i| event(i).name.as_deref()),
                texts(items, |i| Some(&event(i).purpose)),
                texts(items, |i| Some(event(i).subject.as_str())),
                texts(items, |i| {
                    event(i).anonymous_id.as_ref().map(Pseudonym::as_str)
                }),
                texts(items, |i| event(i).user_id.as_ref().map(Pseudonym::as_str)),
                ints(items, |i| event(i).timestamp_ms),
                ints(items, |i| event(i).received_at_ms),
                texts(items, |i| Some(&event(i).payload)),
            ],
        ),
        feed::ItemKind::Consent => {
            let purposes: Vec<String> = items
                .iter()
                .map(|i| serde_json::to_string(&consent(i).purposes).expect("serializes"))
                .collect();
            (
                CONSENT_SCHEMA,
                vec![
                    tx,
                    seq,
                    texts(items, |i| Some(consent(i).source_id.as_str())),
                    texts(items, |i| Some(&consent(i).consent_id)),
                    texts(items, |i| Some(consent(i).subject.as_str())),
                    Column::Text(
                        purposes
                            .into_iter()
                            .map(|p| Some(ByteArray::from(p.into_bytes())))
                            .collect(),
                    ),
                    texts(items, |i| Some(&consent(i).policy_version)),
                    ints(items, |i| consent(i).timestamp_ms),
                    ints(items, |i| consent(i).received_at_ms),
                ],
            )
        }
        feed::ItemKind::Erasure => (
            ERASURES_SCHEMA,
            vec![
                tx,
                seq,
                texts(items, |i| Some(erasure(i).subject.as_str())),
                ints(items, |i| erasure(i).received_at_ms),
            ],
        ),
    }
}

fn parquet_error(e: parquet::errors::ParquetError) -> Error {
    Error::Internal(format!("writing Parquet: {e}"))
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Internal(format!("{}: {e}", path.display()))
}

/// Writes items of one kind as a Parquet file to `out`.
fn write_parquet(out: std::fs::File, kind: feed::ItemKind, items: &[&Item]) -> Result<()> {
    let (schema, columns) = columns(kind, items);
    let schema: Arc<Type> = Arc::new(parse_message_type(schema).map_err(parquet_error)?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let mut writer = SerializedFileWriter::new(out, schema, props).map_err(parquet_error)?;
    let mut group = writer.next_row_group().map_err(parquet_error)?;
    let mut values = columns.into_iter();
    while let Some(mut column) = group.next_column().map_err(parquet_error)? {
        match values.next().expect("a value list per column") {
            Column::Int(v) => {
                column
                    .typed::<Int64Type>()
                    .write_batch(&v, None, None)
                    .map_err(parquet_error)?;
            }
            Column::Text(v) => {
                let levels: Vec<i16> = v.iter().map(|x| i16::from(x.is_some())).collect();
                let present: Vec<ByteArray> = v.into_iter().flatten().collect();
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&present, Some(&levels), None)
                    .map_err(parquet_error)?;
            }
        }
        column.close().map_err(parquet_error)?;
    }
    group.close().map_err(parquet_error)?;
    let file = writer.into_inner().map_err(parquet_error)?;
    file.sync_all()
        .map_err(|e| Error::Internal(format!("fsync: {e}")))?;
    Ok(())
}

fn write_ndjson(out: std::fs::File, items: &[&Item]) -> Result<()> {
    let mut out = std::io::BufWriter::new(out);
    for item in items {
        serde_json::to_writer(&mut out, item).expect("items serialize");
        out.write_all(b"\n")
            .map_err(|e| Error::Internal(format!("writing: {e}")))?;
    }
    let file = out
        .into_inner()
        .map_err(|e| Error::Internal(format!("writing: {e}")))?;
    file.sync_all()
        .map_err(|e| Error::Internal(format!("fsync: {e}")))?;
    Ok(())
}

/// A partition value as a path segment: `/`, `=`, `\` and control characters become `_`.
fn segment(text: &str) -> String {
    text.chars()
        .map(|c| {
            if matches!(c, '/' | '=' | '\\') || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// `date=YYYY-MM-DD` of a Unix ms time (UTC).
fn date_of(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let d = at.date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The folder (under the output) an item's file goes to.
fn partition(item: &Item) -> PathBuf {
    let date = format!("date={}", date_of(item.received_at_ms()));
    match item {
        Item::Event(e) => Path::new("events")
            .join(format!("source={}", segment(e.source_id.as_str())))
            .join(date),
        Item::Consent(c) => Path::new("consent")
            .join(format!("source={}", segment(c.source_id.as_str())))
            .join(date),
        Item::Erasure(_) => Path::new("erasures").join(date),
    }
}

/// The position in a file name `part-TX.SEQ.EXT`.
fn position_in_name(name: &str) -> Option<Position> {
    let rest = name.strip_prefix("part-")?;
    let stem = rest
        .strip_suffix(".parquet")
        .or_else(|| rest.strip_suffix(".ndjson"))?;
    Position::parse(stem).ok()
}

/// Writes `items` under `dir`, a file per partition, each named after its first item's
/// position; returns the files written.
pub fn write_items(dir: &Path, items: &[Item], format: Format) -> Result<Vec<PathBuf>> {
    let mut groups: BTreeMap<PathBuf, Vec<&Item>> = BTreeMap::new();
    for item in items {
        groups.entry(partition(item)).or_default().push(item);
    }
    let mut written = Vec::with_capacity(groups.len());
    for (folder, group) in groups {
        let folder = dir.join(folder);
        std::fs::create_dir_all(&folder).map_err(|e| io_error(&folder, e))?;
        let first = group[0].position();
        let name = format!("part-{first}.{}", format.extension());
        let temporary = folder.join(format!(".{name}.tmp"));
        let file = std::fs::File::create(&temporary).map_err(|e| io_error(&temporary, e))?;
        match format {
            Format::Parquet => write_parquet(file, group[0].kind(), &group)?,
            Format::Ndjson => write_ndjson(file, &group)?,
        }
        let path = folder.join(name);
        std::fs::rename(&temporary, &path).map_err(|e| io_error(&path, e))?;
        // The rename itself is durable once the folder is.
        std::fs::File::open(&folder)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_error(&folder, e))?;
        written.push(path);
    }
    Ok(written)
}

/// Removes what a crash may have left under `dir`: temporary files, and files whose
/// first position is after `saved` (their batch's position was never saved, so the
/// batch will be written again). Returns how many it removed.
pub fn remove_unsaved(dir: &Path, saved: Position) -> Result<usize> {
    let mut removed = 0;
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(&folder, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&folder, e))?;
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let unsaved = name.starts_with(".part-") && name.ends_with(".tmp")
                || position_in_name(&name).is_some_and(|p| p > saved);
            if unsaved {
                std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// The next batch: items after `*at` that `keep` accepts, until [`BATCH_ITEMS`] are kept
/// or the feed ends; `*at` moves past everything read. Also says whether the feed ended.
async fn next_batch(
    db: &Db,
    at: &mut Position,
    keep: impl Fn(&Item) -> bool,
) -> Result<(Vec<Item>, bool)> {
    let mut items = Vec::new();
    while items.len() < BATCH_ITEMS {
        let page = feed::read(db, *at, feed::MAX_READ.min(BATCH_ITEMS - items.len())).await?;
        let Some(last) = page.last() else {
            return Ok((items, true));
        };
        *at = last.position();
        items.extend(page.into_iter().filter(|i| keep(i)));
    }
    Ok((items, false))
}

/// [`write_items`] on a blocking thread.
async fn write_off_thread(dir: &Path, items: Vec<Item>, format: Format) -> Result<Vec<PathBuf>> {
    let folder = dir.to_path_buf();
    tokio::task::spawn_blocking(move || write_items(&folder, &items, format))
        .await
        .map_err(|e| Error::Internal(format!("writing files stopped: {e}")))?
}

/// One pass of the sink: every item after its saved position, [`BATCH_ITEMS`] at a time,
/// written and then saved. Returns how many items it wrote.
pub async fn sink_once(db: &Db, dir: &Path, clock: &dyn Clock) -> Result<usize> {
    let mut at = feed::position_of(db, CONSUMER).await?;
    let mut total = 0;
    loop {
        let (items, end) = next_batch(db, &mut at, |_| true).await?;
        if items.is_empty() {
            return Ok(total);
        }
        total += items.len();
        write_off_thread(dir, items, Format::Parquet).await?;
        let mut w = db.write().await?;
        feed::save_position(&mut w, CONSUMER, at, clock.now_ms()).await?;
        w.commit().await?;
        if end {
            return Ok(total);
        }
    }
}

/// Runs the sink for good: cleans up after a crash, then writes what is new every
/// `every` (a micro-batch, as warehouses load them).
pub async fn run(db: Db, dir: PathBuf, every: Duration, clock: Arc<dyn Clock>) {
    let mut cleaned = false;
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if !cleaned {
            let saved = match feed::position_of(&db, CONSUMER).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "warehouse sink: cannot read its position");
                    continue;
                }
            };
            match remove_unsaved(&dir, saved) {
                Ok(n) if n > 0 => {
                    tracing::info!(files = n, "warehouse sink: removed unsaved files")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "warehouse sink: cannot clean its folder");
                    continue;
                }
            }
            cleaned = true;
        }
        if let Err(e) = sink_once(&db, &dir, clock.as_ref()).await {
            tracing::warn!(error = %e, "warehouse sink failed; will retry");
        }
    }
}

/// How an export went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exported {
    pub events: u64,
    pub files: usize,
}

/// Writes the events received in `[since_ms, until_ms)` under `dir` (the sink's layout),
/// calling `progress` with the events written so far. Reads the feed from the start;
/// saves no position.
pub async fn export_events(
    db: &Db,
    dir: &Path,
    since_ms: i64,
    until_ms: i64,
    format: Format,
    progress: impl Fn(u64),
) -> Result<Exported> {
    let mut at = Position::START;
    let mut done = Exported::default();
    let in_window = |i: &Item| matches!(i, Item::Event(e) if e.received_at_ms >= since_ms && e.received_at_ms < until_ms);
    loop {
        let (events, end) = next_batch(db, &mut at, in_window).await?;
        if !events.is_empty() {
            done.events += events.len() as u64;
            done.files += write_off_thread(dir, events, format).await?.len();
            progress(done.events);
        }
        if end {
            return Ok(done);
        }
    }
}

/// Events received in `[since_ms, until_ms)`: an export's total, for its progress bar.
pub async fn count_events(db: &Db, since_ms: i64, until_ms: i64) -> Result<u64> {
    crate::storage::feed::events_received_between(db, since_ms, until_ms).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_carry_the_first_position_and_dates_are_utc_days() {
        assert_eq!(
            position_in_name("part-0.42.parquet"),
            Some(Position { tx: 0, seq: 42 })
        );
        assert_eq!(position_in_name("part-x.parquet"), None);
        assert_eq!(date_of(1_764_547_199_999), "2025-11-30");
        assert_eq!(date_of(1_764_547_200_000), "2025-12-01");
        assert_eq!(segment("a/b=c"), "a_b_c");
    }

    fn event(seq: i64, source: &str) -> Item {
        Item::Event(EventItem {
            position: Position { tx: 0, seq },
            source_id: crate::ids::SourceId::parse(source).unwrap(),
            message_id: format!("m{seq}"),
            kind: "track".into(),
            name: None,
            purpose: "necessary".into(),
            subject: Pseudonym::parse("k1.00000000000000000000000000000000").unwrap(),
            anonymous_id: None,
            user_id: None,
            timestamp_ms: 0,
            received_at_ms: 1_764_547_200_000,
            payload: "{}".into(),
        })
    }

    /// After a crash: files of a batch whose position was never saved, and temporary
    /// files, go; files up to the saved position stay.
    #[test]
    fn a_restart_removes_what_an_unsaved_batch_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let saved =
            write_items(dir.path(), &[event(1, "a"), event(2, "b")], Format::Parquet).unwrap();
        let unsaved = write_items(dir.path(), &[event(3, "a")], Format::Parquet).unwrap();
        let folder = dir.path().join("events/source=a/date=2025-12-01");
        assert_eq!(unsaved, [folder.join("part-0.3.parquet")]);
        std::fs::write(folder.join(".part-0.4.parquet.tmp"), b"half").unwrap();
        let removed = remove_unsaved(dir.path(), Position { tx: 0, seq: 2 }).unwrap();
        assert_eq!(removed, 2);
        assert!(saved.iter().all(|p| p.exists()));
        assert!(!unsaved[0].exists());
        assert!(!folder.join(".part-0.4.parquet.tmp").exists());
    }
}
