//! Audit export (streamed, a page at a time: constant memory whatever the size) and
//! verification of the chain as stored.
use bytes::Bytes;
use futures_util::stream;
use serde::Deserialize;

use crate::{
    audit::{self, merkle, note, Entry, Trail, Verifier},
    error::{Error, Result},
    storage::{self, Db},
};

const PAGE: i64 = 1000;

/// `from` / `to` of the audit endpoints: ISO 8601.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub from: Option<String>,
    pub to: Option<String>,
    pub format: Option<String>,
}

impl Window {
    pub fn bounds(&self) -> Result<(i64, i64)> {
        let parse = |v: &Option<String>, default: i64| match v {
            None => Ok(default),
            Some(s) => assent_protocol::Timestamp::parse(s)
                .map(|t| t.unix_millis())
                .map_err(|_| Error::BadRequest("from/to must be ISO 8601 date-times".into())),
        };
        Ok((parse(&self.from, i64::MIN)?, parse(&self.to, i64::MAX)?))
    }
}

/// Entries with `seq > after` and `from <= at_ms <= to`, in order.
pub async fn page(db: &Db, after: i64, from: i64, to: i64) -> Result<Vec<Entry>> {
    storage::audit::page(db, after, from, to, PAGE).await
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Jsonl,
    Csv,
}

impl Format {
    pub fn parse(s: Option<&str>) -> Result<Format> {
        match s.unwrap_or("jsonl") {
            "jsonl" | "json" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            _ => Err(Error::BadRequest("format must be jsonl or csv".into())),
        }
    }

    pub fn render(self, entries: &[Entry]) -> String {
        let mut out = String::new();
        for e in entries {
            match self {
                Format::Jsonl => {
                    out.push_str(&serde_json::to_string(e).expect("serializes"));
                    out.push('\n');
                }
                Format::Csv => out.push_str(&audit::csv_row(e)),
            }
        }
        out
    }
}

/// The entries of `from..=to` rendered in `format` (the CSV header first), a page at a
/// time as they are read: constant memory whatever the size. A read that fails ends the
/// stream with the error (the status line is gone by then: the reader sees a short file).
pub fn rendered(
    db: Db,
    from: i64,
    to: i64,
    format: Format,
) -> impl futures_util::Stream<Item = Result<Bytes>> + Send + 'static {
    let header_chunk = (format == Format::Csv)
        .then(|| Ok::<_, Error>(Bytes::from_static(audit::CSV_HEADER.as_bytes())));
    let pages = stream::unfold(Some(0i64), move |after| {
        let db = db.clone();
        async move {
            let after = after?;
            match page(&db, after, from, to).await {
                Ok(entries) if entries.is_empty() => None,
                Ok(entries) => {
                    let next = entries.last().map(|e| e.seq);
                    Some((Ok(Bytes::from(format.render(&entries))), next))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    });
    futures_util::StreamExt::chain(stream::iter(header_chunk), pages)
}

/// Verifies the whole stored chain, a page at a time, and every signed checkpoint against
/// the Merkle tree head recomputed from the entries (under any key that has signed).
pub async fn verify_db(trail: &Trail) -> Result<audit::Report> {
    let vkeys: Vec<note::Vkey> = storage::audit::public_keys(&trail.db)
        .await?
        .iter()
        .filter_map(|(k, _)| note::Vkey::parse(k).ok())
        .collect();
    let mut verifier = Verifier::new(Some(&trail.keys));
    let mut tree = merkle::Frontier::default();
    let mut checkpoints = std::collections::VecDeque::new();
    let mut checkpoints_after = 0;
    // Up to the head as it is now: entries and checkpoints appended meanwhile wait.
    let upto = storage::audit::last_seq(&trail.db).await?;
    let mut after = 0;
    while after < upto {
        let entries = page(&trail.db, after, i64::MIN, i64::MAX).await?;
        let Some(last) = entries.last() else { break };
        after = last.seq;
        for e in entries.iter().filter(|e| e.seq <= upto) {
            verifier.push(e);
            tree.push(audit::leaf_of(e));
            if checkpoints.is_empty() {
                checkpoints
                    .extend(storage::audit::checkpoints(&trail.db, checkpoints_after, PAGE).await?);
                if let Some(c) = checkpoints.back() {
                    checkpoints_after = c.size;
                }
            }
            while checkpoints.front().is_some_and(|c| c.size == tree.size()) {
                let c = checkpoints.pop_front().expect("just seen");
                let stated = vkeys
                    .iter()
                    .find_map(|k| k.open(&c.note).ok())
                    .and_then(|text| note::Checkpoint::parse(text).ok());
                let ok = stated.is_some_and(|s| {
                    s.size == c.size && s.root == tree.root() && s.origin == trail.signer.name()
                });
                verifier.signed_checkpoint(e.seq, ok);
            }
        }
    }
    if let Some(c) = checkpoints.front().filter(|c| c.size as i64 <= upto) {
        verifier.signed_checkpoint(c.size as i64, false);
    }
    Ok(verifier.finish())
}

/// How long a verification of the stored chain answers `GET /v1/audit/verify` before the
/// chain is walked again. Walking is O(entries): one walk at a time, shared by everyone
/// asking meanwhile, so the endpoint cannot be used to keep the database busy.
pub const VERIFY_REUSE: std::time::Duration = std::time::Duration::from_secs(30);

/// The last verification of the stored chain and when it was made.
#[derive(Debug, Default)]
pub struct VerifyCache(tokio::sync::Mutex<Option<(std::time::Instant, i64, audit::Report)>>);

/// The verdict on the stored chain and when it was reached (Unix ms): the last one when it
/// is younger than [`VERIFY_REUSE`], else a new walk (one at a time).
pub async fn verified(trail: &Trail) -> Result<(audit::Report, i64)> {
    let mut last = trail.verified.0.lock().await;
    if let Some((when, at_ms, report)) = &*last {
        if when.elapsed() < VERIFY_REUSE {
            return Ok((report.clone(), *at_ms));
        }
    }
    let report = verify_db(trail).await?;
    let at_ms = trail.now().millis();
    *last = Some((std::time::Instant::now(), at_ms, report.clone()));
    Ok((report, at_ms))
}
