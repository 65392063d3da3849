//! Audit export (streamed, a page at a time: constant memory whatever the size) and
//! verification of the chain as stored.
use bytes::Bytes;
use futures_util::stream;
use serde::Deserialize;

use crate::{
    audit::{
        self,
        anchor::{self, Anchor},
        merkle, note, proofs, Entry, Trail, Verifier,
    },
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

/// What an export holds, decided before its first byte: the signed checkpoint it is cut
/// from, the entries (every one from the first recorded at or after `from` to the last
/// recorded at or before `to`, within the checkpoint: contiguous, so the chain ties
/// them), and the anchor that proves both.
#[derive(Debug, Clone)]
pub struct Cut {
    pub anchor: Anchor,
}

/// Records that `actor` exports (`data`: what they asked for), then cuts the export.
pub async fn begin(
    trail: &Trail,
    actor: String,
    data: serde_json::Value,
    from: i64,
    to: i64,
) -> Result<Cut> {
    trail
        .record_alone(audit::NewEntry {
            kind: audit::Kind::AuditExport,
            actor,
            subject: None,
            data,
        })
        .await?;
    cut(trail, from, to).await
}

/// Cuts an export of the entries recorded at `from..=to` (ms) from a checkpoint signed
/// now if need be.
pub async fn cut(trail: &Trail, from: i64, to: i64) -> Result<Cut> {
    let stored = trail
        .checkpoint()
        .await?
        .ok_or_else(|| Error::Internal("an export of an empty log".into()))?;
    let checkpoint = note::Checkpoint {
        origin: trail.signer.name().to_owned(),
        size: stored.size,
        root: crate::pseudonym::unhex(&stored.root)
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| Error::Internal("a stored checkpoint root is not a hash".into()))?,
    };
    let size = stored.size as i64;
    let (first, last) = if from == i64::MIN && to == i64::MAX {
        (1, size)
    } else {
        match storage::audit::seq_bounds(&trail.db, from, to).await? {
            Some((a, b)) if a <= size => (a, b.min(size)),
            _ => (0, 0),
        }
    };
    let proof = |seq: i64| async move {
        if seq == 0 {
            return Ok(Vec::new());
        }
        let hs = proofs::inclusion(&trail.db, seq as u64 - 1, stored.size).await?;
        Ok::<_, Error>(hs.iter().map(note::b64).collect())
    };
    let anchor = Anchor {
        format: anchor::EXPORT_FORMAT.into(),
        statement: trail.signer.sign(&anchor::statement_body(
            trail.signer.name(),
            first,
            last,
            &checkpoint,
        )),
        checkpoint: stored.note.clone(),
        first,
        last,
        first_proof: proof(first).await?,
        last_proof: proof(last).await?,
    };
    Ok(Cut { anchor })
}

/// The anchor as a CSV row: `anchor` in the `seq` column, its JSON in `data`.
pub fn csv_anchor(a: &Anchor) -> String {
    let json = serde_json::to_string(a).expect("serializes");
    format!(
        "\"anchor\",\"\",\"\",\"\",\"\",\"\",\"\",\"{}\"\r\n",
        json.replace('"', "\"\"")
    )
}

/// An export rendered in `format`: the CSV header, the anchor, then the cut's entries, a
/// page at a time as they are read (constant memory whatever the size). A read that fails
/// ends the stream with the error (the status line is gone by then: the reader sees a
/// short file, which verification calls truncated).
pub fn rendered(
    db: Db,
    cut: Cut,
    format: Format,
) -> impl futures_util::Stream<Item = Result<Bytes>> + Send + 'static {
    let head = match format {
        Format::Csv => format!("{}{}", audit::CSV_HEADER, csv_anchor(&cut.anchor)),
        Format::Jsonl => format!("{}\n", serde_json::json!({ "anchor": cut.anchor })),
    };
    let (first, last) = (cut.anchor.first, cut.anchor.last);
    let pages = stream::unfold(Some(first - 1), move |after| {
        let db = db.clone();
        async move {
            let after = after.filter(|&a| a < last && first > 0)?;
            match page(&db, after, i64::MIN, i64::MAX).await {
                Ok(mut entries) => {
                    entries.retain(|e| e.seq <= last);
                    let next = entries.last().map(|e| e.seq);
                    next?;
                    Some((Ok(Bytes::from(format.render(&entries))), next))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    });
    futures_util::StreamExt::chain(stream::iter([Ok::<_, Error>(Bytes::from(head))]), pages)
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
