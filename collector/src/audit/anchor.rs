//! Exports anyone can check with the public key alone. An export carries an anchor: the
//! signed checkpoint it was cut from, a signed statement of the range of entries it holds
//! (so a line removed at either end is noticed), and the inclusion proofs of its first and
//! last entries in that checkpoint's tree; the hash chain ties every entry between them.
//! [`ExportVerifier`] checks an export, [`verify_inclusion`] and [`verify_consistency`]
//! the proof files the routes answer. The format, and the order of the checks (which
//! decides the problem named), are in `docs/audit-format.md`; `tools/verify_audit.py`
//! is a second verifier written from that document.
use serde::{Deserialize, Serialize};

use crate::{
    audit::{
        encoded, merkle,
        note::{self, Checkpoint, Vkey},
        proofs::{ConsistencyProof, InclusionProof, CONSISTENCY_FORMAT, INCLUSION_FORMAT},
        Entry, GENESIS,
    },
    pseudonym::sha256_hex,
};

/// The first line of an export statement's text.
pub const EXPORT_FORMAT: &str = "assent-audit-export/v1";

/// What an export carries besides its entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Anchor {
    /// [`EXPORT_FORMAT`].
    pub format: String,
    /// The C2SP signed checkpoint the export was cut from.
    pub checkpoint: String,
    /// The signed statement of the range (see [`statement_body`]).
    pub statement: String,
    /// The first and last sequence numbers held; both 0 for an export of no entries.
    pub first: i64,
    pub last: i64,
    /// Inclusion proofs (base64, RFC 9162 order) of the first and last entries.
    pub first_proof: Vec<String>,
    pub last_proof: Vec<String>,
}

/// The statement's text: the format, the origin, `first last`, and the checkpoint's size
/// and base64 root, a line each.
pub fn statement_body(origin: &str, first: i64, last: i64, c: &Checkpoint) -> String {
    format!(
        "{EXPORT_FORMAT}\n{origin}\n{first} {last}\n{}\n{}\n",
        c.size,
        note::b64(&c.root)
    )
}

/// A problem found, and where: the first entry that fails, or 0 for the anchor itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub seq: i64,
    /// A short, stable name of the check that failed (the same in both verifiers).
    pub code: &'static str,
    pub detail: String,
}

/// The verdict on an export, a receipt proof or a consistency proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub ok: bool,
    /// What was checked: `export`, `inclusion` or `consistency`.
    pub kind: &'static str,
    pub entries: u64,
    /// Entries whose data was erased (they still verify: the chain holds its hash).
    pub erased: u64,
    /// The tree size of the checkpoint everything was checked against.
    pub tree_size: u64,
    pub problem: Option<Problem>,
}

fn problem(seq: i64, code: &'static str, detail: impl Into<String>) -> Problem {
    Problem {
        seq,
        code,
        detail: detail.into(),
    }
}

fn unb64_all(proof: &[String]) -> Option<Vec<merkle::Hash>> {
    proof.iter().map(|p| note::unb64(p)).collect()
}

/// A checkpoint note opened with `key`, of the log `key` names.
fn open_checkpoint(key: &Vkey, text: &str) -> Result<Checkpoint, Problem> {
    let body = key
        .open(text)
        .map_err(|e| problem(0, "checkpoint-signature", e.to_string()))?;
    let c = Checkpoint::parse(body).map_err(|e| problem(0, "checkpoint", e.to_string()))?;
    if c.origin != key.name {
        return Err(problem(
            0,
            "checkpoint",
            "the checkpoint is of another log than the key's",
        ));
    }
    Ok(c)
}

/// The checks on one entry's own fields: its data against `data_hash`, its fields
/// against `hash`.
fn check_fields(e: &Entry) -> Result<(), Problem> {
    if let Some(data) = &e.data {
        if sha256_hex(data.as_bytes()) != e.data_hash {
            return Err(problem(
                e.seq,
                "data",
                "data altered (does not match data_hash)",
            ));
        }
    }
    if sha256_hex(&encoded(e)) != e.hash {
        return Err(problem(
            e.seq,
            "entry",
            "entry altered (hash does not match its fields)",
        ));
    }
    Ok(())
}

fn included(e: &Entry, proof: &[merkle::Hash], c: &Checkpoint) -> bool {
    let leaf = crate::audit::leaf_of(e);
    e.seq >= 1 && merkle::verify_inclusion(e.seq as u64 - 1, c.size, &leaf, proof, &c.root)
}

/// What a good anchor says the export holds.
#[derive(Debug)]
struct Range {
    first: i64,
    last: i64,
    checkpoint: Checkpoint,
    first_proof: Vec<merkle::Hash>,
    last_proof: Vec<merkle::Hash>,
}

impl Range {
    fn is_empty(&self) -> bool {
        self.first == 0 && self.last == 0
    }
}

/// Checks an export as its lines come: [`ExportVerifier::anchor`] with the first, then
/// [`ExportVerifier::push`] each entry, then [`ExportVerifier::finish`].
#[derive(Debug)]
pub struct ExportVerifier {
    key: Vkey,
    range: Option<Range>,
    next: i64,
    prev_hash: String,
    entries: u64,
    erased: u64,
    problem: Option<Problem>,
}

impl ExportVerifier {
    pub fn new(key: Vkey) -> ExportVerifier {
        ExportVerifier {
            key,
            range: None,
            next: 0,
            prev_hash: String::new(),
            entries: 0,
            erased: 0,
            problem: None,
        }
    }

    /// The anchor (the export's first line), as JSON: an object of exactly the fields of
    /// [`Anchor`]. A second one is a problem.
    pub fn anchor(&mut self, anchor: &serde_json::Value) {
        if self.problem.is_some() {
            return;
        }
        if self.range.is_some() {
            self.problem = Some(problem(0, "anchor", "a second anchor"));
            return;
        }
        let checked = serde_json::from_value::<Anchor>(anchor.clone())
            .map_err(|_| problem(0, "anchor", "the anchor does not have the fields of one"))
            .and_then(|a| self.check_anchor(&a));
        match checked {
            Ok(range) => {
                self.next = range.first;
                self.range = Some(range);
            }
            Err(p) => self.problem = Some(p),
        }
    }

    fn check_anchor(&self, a: &Anchor) -> Result<Range, Problem> {
        if a.format != EXPORT_FORMAT {
            return Err(problem(0, "anchor", "not an assent-audit-export/v1 anchor"));
        }
        let c = open_checkpoint(&self.key, &a.checkpoint)?;
        let stated = self
            .key
            .open(&a.statement)
            .map_err(|e| problem(0, "statement-signature", e.to_string()))?;
        if stated != statement_body(&c.origin, a.first, a.last, &c) {
            return Err(problem(
                0,
                "statement",
                "the signed statement does not state this range of this checkpoint",
            ));
        }
        let empty = a.first == 0 && a.last == 0;
        if !(empty || 1 <= a.first && a.first <= a.last && a.last as u64 <= c.size) {
            return Err(problem(
                0,
                "anchor",
                "the range is not within the checkpoint",
            ));
        }
        let (Some(fp), Some(lp)) = (unb64_all(&a.first_proof), unb64_all(&a.last_proof)) else {
            return Err(problem(0, "anchor", "a proof is not base64 hashes"));
        };
        Ok(Range {
            first: a.first,
            last: a.last,
            checkpoint: c,
            first_proof: fp,
            last_proof: lp,
        })
    }

    /// The next entry of the export.
    pub fn push(&mut self, e: &Entry) {
        if self.problem.is_some() {
            return;
        }
        match self.check(e) {
            Ok(()) => {
                self.next = e.seq + 1;
                self.prev_hash = e.hash.clone();
                self.entries += 1;
                self.erased += u64::from(e.data.is_none());
            }
            Err(p) => self.problem = Some(p),
        }
    }

    fn check(&self, e: &Entry) -> Result<(), Problem> {
        let Some(range) = &self.range else {
            return Err(problem(e.seq, "anchor", "an entry before the anchor"));
        };
        let (first, last, c) = (&range.first, &range.last, &range.checkpoint);
        if range.is_empty() || self.next > *last {
            return Err(problem(e.seq, "extra", "an entry beyond the signed range"));
        }
        if e.seq > self.next {
            return Err(problem(
                e.seq,
                "missing",
                format!("entries {}..{} are missing", self.next, e.seq - 1),
            ));
        }
        if e.seq < self.next {
            return Err(problem(e.seq, "order", "entry out of order or repeated"));
        }
        if e.seq > *first && e.prev_hash != self.prev_hash {
            return Err(problem(
                e.seq,
                "chain",
                "prev_hash does not match the entry before",
            ));
        }
        if e.seq == 1 && e.prev_hash != GENESIS {
            return Err(problem(
                e.seq,
                "genesis",
                "the first entry does not start the chain",
            ));
        }
        check_fields(e)?;
        if e.seq == *first && !included(e, &range.first_proof, c) {
            return Err(problem(
                e.seq,
                "inclusion",
                "the first entry is not in the checkpoint's tree",
            ));
        }
        if e.seq == *last && !included(e, &range.last_proof, c) {
            return Err(problem(
                e.seq,
                "inclusion",
                "the last entry is not in the checkpoint's tree",
            ));
        }
        Ok(())
    }

    pub fn finish(mut self) -> Verdict {
        if self.problem.is_none() {
            match &self.range {
                None => self.problem = Some(problem(0, "anchor", "the export carries no anchor")),
                Some(r) if !r.is_empty() && self.next <= r.last => {
                    self.problem = Some(problem(
                        self.next,
                        "truncated",
                        format!("entries {}..{} are missing at the end", self.next, r.last),
                    ))
                }
                _ => {}
            }
        }
        Verdict {
            ok: self.problem.is_none(),
            kind: "export",
            entries: self.entries,
            erased: self.erased,
            tree_size: self.range.as_ref().map_or(0, |r| r.checkpoint.size),
            problem: self.problem,
        }
    }
}

/// Checks a receipt's inclusion proof file.
pub fn verify_inclusion(key: &Vkey, p: &InclusionProof) -> Verdict {
    let e = &p.entry;
    let check = || -> Result<u64, Problem> {
        if p.format != INCLUSION_FORMAT {
            return Err(problem(
                0,
                "anchor",
                "not an assent-audit-inclusion/v1 proof",
            ));
        }
        let c = open_checkpoint(key, &p.checkpoint)?;
        check_fields(e)?;
        let proof = unb64_all(&p.proof)
            .ok_or_else(|| problem(e.seq, "inclusion", "the proof is not base64 hashes"))?;
        if p.leaf_index as i64 != e.seq - 1 || p.tree_size != c.size || !included(e, &proof, &c) {
            return Err(problem(
                e.seq,
                "inclusion",
                "the entry is not in the checkpoint's tree",
            ));
        }
        Ok(c.size)
    };
    let result = check();
    Verdict {
        ok: result.is_ok(),
        kind: "inclusion",
        entries: 1,
        erased: u64::from(e.data.is_none()),
        tree_size: *result.as_ref().unwrap_or(&0),
        problem: result.err(),
    }
}

/// Checks a consistency proof file.
pub fn verify_consistency(key: &Vkey, p: &ConsistencyProof) -> Verdict {
    let check = || -> Result<u64, Problem> {
        if p.format != CONSISTENCY_FORMAT {
            return Err(problem(
                0,
                "anchor",
                "not an assent-audit-consistency/v1 proof",
            ));
        }
        let old = open_checkpoint(key, &p.from_checkpoint)?;
        let new = open_checkpoint(key, &p.to_checkpoint)?;
        let proof = unb64_all(&p.proof)
            .ok_or_else(|| problem(0, "consistency", "the proof is not base64 hashes"))?;
        if old.size != p.from
            || new.size != p.to
            || !merkle::verify_consistency(old.size, new.size, &proof, &old.root, &new.root)
        {
            return Err(problem(
                0,
                "consistency",
                "the newer checkpoint's tree does not extend the older one's",
            ));
        }
        Ok(new.size)
    };
    let result = check();
    Verdict {
        ok: result.is_ok(),
        kind: "consistency",
        entries: 0,
        erased: 0,
        tree_size: *result.as_ref().unwrap_or(&0),
        problem: result.err(),
    }
}

/// Whether a JSON object has exactly the fields of an entry (serde would take a missing
/// `data` for null and ignore others).
fn entry_shaped(object: &serde_json::Map<String, serde_json::Value>) -> bool {
    object.len() == ENTRY_FIELDS.len() && ENTRY_FIELDS.iter().all(|f| object.contains_key(*f))
}

/// One line of an export file, JSONL or CSV.
#[derive(Debug)]
pub enum Line {
    /// The CSV header row, or a blank line.
    Skip,
    /// `{"anchor": …}` (its content is checked by [`ExportVerifier::anchor`]).
    Anchor(Box<serde_json::Value>),
    Entry(Entry),
}

/// The names of an entry's fields in an export: exactly these, no more, no fewer.
const ENTRY_FIELDS: [&str; 8] = [
    "seq",
    "at_ms",
    "kind",
    "actor",
    "data_hash",
    "prev_hash",
    "hash",
    "data",
];

/// Reads line `line_no` (from 1) of an export; a CSV file is told by its header row.
/// None when the line is neither an entry nor an anchor.
pub fn parse_line(line: &str, line_no: usize, csv: &mut bool) -> Option<Line> {
    if line_no == 1 && line.starts_with("seq,") {
        *csv = true;
        return Some(Line::Skip);
    }
    if line.trim().is_empty() {
        return Some(Line::Skip);
    }
    if *csv {
        let fields = crate::audit::csv_fields(line)?;
        if fields.first().map(String::as_str) == Some("anchor") && fields.len() == 8 {
            return serde_json::from_str(&fields[7])
                .ok()
                .map(|a| Line::Anchor(Box::new(a)));
        }
        return crate::audit::parse_csv_row(line).map(Line::Entry);
    }
    let serde_json::Value::Object(mut object) = serde_json::from_str(line).ok()? else {
        return None;
    };
    if object.len() == 1 {
        return object.remove("anchor").map(|a| Line::Anchor(Box::new(a)));
    }
    if object.len() != ENTRY_FIELDS.len() || !ENTRY_FIELDS.iter().all(|f| object.contains_key(*f)) {
        return None;
    }
    serde_json::from_value::<Entry>(serde_json::Value::Object(object))
        .ok()
        .map(Line::Entry)
}

/// A proof file: one JSON object whose `format` is a proof format.
pub enum Proof {
    Inclusion(InclusionProof),
    Consistency(ConsistencyProof),
    /// A proof format without exactly the fields of one.
    Malformed(&'static str),
}

/// A proof file's JSON; None when it is not one (no proof format).
pub fn parse_proof(text: &str) -> Option<Proof> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let kind = match v.get("format")?.as_str()? {
        INCLUSION_FORMAT => "inclusion",
        CONSISTENCY_FORMAT => "consistency",
        _ => return None,
    };
    let entry_ok = |e: &serde_json::Value| e.as_object().is_some_and(entry_shaped);
    Some(match kind {
        "inclusion" if v.get("entry").is_some_and(entry_ok) => serde_json::from_value(v)
            .map(Proof::Inclusion)
            .unwrap_or(Proof::Malformed(kind)),
        "consistency" => serde_json::from_value(v)
            .map(Proof::Consistency)
            .unwrap_or(Proof::Malformed(kind)),
        _ => Proof::Malformed(kind),
    })
}

/// The verdict on a proof file that lacks the fields of its format.
pub fn malformed_proof(kind: &'static str) -> Verdict {
    Verdict {
        ok: false,
        kind,
        entries: u64::from(kind == "inclusion"),
        erased: 0,
        tree_size: 0,
        problem: Some(problem(0, "anchor", "not a proof of its format")),
    }
}

/// Checks the lines of an export with `key`. A line that is neither an entry nor an
/// anchor is itself a problem (named by the entry after the last good one).
pub fn verify_export_lines(
    key: Vkey,
    lines: impl Iterator<Item = std::io::Result<String>>,
) -> std::io::Result<Verdict> {
    let mut v = ExportVerifier::new(key);
    let mut csv = false;
    for (i, line) in lines.enumerate() {
        let line = line?;
        match parse_line(&line, i + 1, &mut csv) {
            Some(Line::Skip) => {}
            Some(Line::Anchor(a)) => v.anchor(&a),
            Some(Line::Entry(e)) => v.push(&e),
            None => {
                if v.problem.is_none() {
                    v.problem = Some(problem(
                        v.next,
                        "malformed",
                        format!("line {} is not an audit entry", i + 1),
                    ));
                }
            }
        }
    }
    Ok(v.finish())
}
