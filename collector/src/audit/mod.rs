//! The tamper-evident audit trail. Each entry commits to the hash of the one before it and
//! to the hash of its data; the data (which may be personal) is kept in another table so
//! that erasure removes it without breaking the chain. The entries are also the leaves of
//! an RFC 6962 Merkle tree kept as they are appended ([`merkle`], `audit_tree`), whose
//! heads are signed as C2SP checkpoints under the trail's Ed25519 key ([`note`]) every
//! `checkpoint_every` entries, every so many seconds when anything was appended, and on
//! demand: anyone with the public key can check an entry's inclusion, that the log only
//! grew, and an export ([`export`]). Before the tree, every 1,000th entry was a
//! `checkpoint` entry with an HMAC of the chain head; those are still checked when the
//! server key is known, and no longer written.
pub mod anchor;
pub mod export;
pub mod merkle;
pub mod note;
pub mod proofs;

use serde::Serialize;

use std::sync::Arc;

use crate::{
    clock::Clock,
    error::Result,
    ids::{Pseudonym, UnixMs},
    pseudonym::{sha256_hex, Pseudonymizer},
    storage::{self, Db, WriteTx},
};

/// The hash that precedes the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub use crate::storage::audit::Entry;

/// The canonical encoding of an entry's chained fields: a JSON object with fixed field
/// order (`seq`, `at_ms`, `kind`, `actor`, `data_hash`, `prev_hash`), no spaces. Its
/// SHA-256 is the entry's `hash`; it is the entry's Merkle leaf.
pub(crate) fn canonical(
    seq: i64,
    at_ms: i64,
    kind: &str,
    actor: &str,
    data_hash: &str,
    prev_hash: &str,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct Canonical<'a> {
        seq: i64,
        at_ms: i64,
        kind: &'a str,
        actor: &'a str,
        data_hash: &'a str,
        prev_hash: &'a str,
    }
    serde_json::to_vec(&Canonical {
        seq,
        at_ms,
        kind,
        actor,
        data_hash,
        prev_hash,
    })
    .expect("serializes")
}

/// The canonical encoding of an entry as read back.
pub(crate) fn encoded(e: &Entry) -> Vec<u8> {
    canonical(
        e.seq,
        e.at_ms,
        &e.kind,
        &e.actor,
        &e.data_hash,
        &e.prev_hash,
    )
}

/// The Merkle leaf hash of an entry: `SHA-256(0x00 ‖ canonical encoding)`.
pub fn leaf_of(e: &Entry) -> merkle::Hash {
    merkle::leaf_hash(&encoded(e))
}

/// What an audit entry records. Written into the chain as its name ([`Kind::as_str`]);
/// exported entries keep the name as text, so a reader needs no list of kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A consent record (or a trusted Segment stamp) was stored.
    Consent,
    /// A statement of the chain head with an HMAC under the server key (no longer
    /// written: signed checkpoints are kept beside the log, `audit_checkpoints`).
    Checkpoint,
    /// The key that signs checkpoints changed (both verifier keys in the data).
    SigningKeyRotation,
    KeyCreated,
    KeyRevoked,
    /// The pseudonymization key in use changed.
    KeyRotation,
    SourceOriginsSet,
    SourceConsentSettings,
    AuditExport,
    /// Events written out for a warehouse (`export events`).
    EventsExport,
    SubjectAccess,
    Erasure,
    /// An audience created or changed.
    AudienceSet,
    AudienceDeleted,
    /// A computed trait created or changed.
    TraitSet,
    TraitDeleted,
    /// A segmentation model trained, promoted or rolled back.
    SegmentModel,
    /// A recommender trained, promoted or rolled back.
    RecommendationModel,
    /// An item of a recommendation catalogue set or removed.
    CatalogItem,
    /// A run-time setting changed (`settings`).
    SettingChanged,
    /// Profiles scanned for duplicates; a proposed pair confirmed or rejected.
    DuplicateScan,
    DuplicateDecided,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Consent => "consent",
            Kind::Checkpoint => "checkpoint",
            Kind::SigningKeyRotation => "signing_key_rotation",
            Kind::KeyCreated => "key_created",
            Kind::KeyRevoked => "key_revoked",
            Kind::KeyRotation => "key_rotation",
            Kind::SourceOriginsSet => "source_origins_set",
            Kind::SourceConsentSettings => "source_consent_settings",
            Kind::AuditExport => "audit_export",
            Kind::EventsExport => "events_export",
            Kind::SubjectAccess => "subject_access",
            Kind::Erasure => "erasure",
            Kind::AudienceSet => "audience_set",
            Kind::AudienceDeleted => "audience_deleted",
            Kind::TraitSet => "trait_set",
            Kind::TraitDeleted => "trait_deleted",
            Kind::SegmentModel => "segment_model",
            Kind::RecommendationModel => "recommendation_model",
            Kind::CatalogItem => "catalog_item",
            Kind::SettingChanged => "setting_changed",
            Kind::DuplicateScan => "duplicate_scan",
            Kind::DuplicateDecided => "duplicate_decided",
        }
    }
}

/// Something to record.
pub struct NewEntry {
    pub kind: Kind,
    pub actor: String,
    /// The pseudonymized subject the data is about, so erasure can find it.
    pub subject: Option<Pseudonym>,
    pub data: serde_json::Value,
}

/// What appends to the trail and reads it back: the database, the key that signs
/// checkpoints, how often one falls due, the server key (for the HMACs of old
/// checkpoint entries), the clock, and the last verification (reused for a while). Cheap
/// to clone.
#[derive(Clone)]
pub struct Trail {
    db: Db,
    keys: Pseudonymizer,
    signer: Arc<note::NoteSigner>,
    checkpoint_every: u64,
    clock: Arc<dyn Clock>,
    verified: Arc<export::VerifyCache>,
}

impl std::fmt::Debug for Trail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trail")
            .field("checkpoint_every", &self.checkpoint_every)
            .finish_non_exhaustive()
    }
}

impl Trail {
    pub fn new(
        db: Db,
        keys: Pseudonymizer,
        signer: note::NoteSigner,
        checkpoint_every: u64,
        clock: Arc<dyn Clock>,
    ) -> Trail {
        Trail {
            db,
            keys,
            signer: Arc::new(signer),
            checkpoint_every,
            clock,
            verified: Default::default(),
        }
    }

    /// The key that signs checkpoints.
    pub fn signer(&self) -> &note::NoteSigner {
        &self.signer
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The time entries are recorded at.
    pub fn now(&self) -> UnixMs {
        self.clock.now()
    }

    /// Appends one entry inside `w`, at the current time.
    pub async fn record(&self, w: &mut WriteTx, entry: NewEntry) -> Result<()> {
        self.append_at(w, vec![entry], self.now()).await.map(|_| ())
    }

    /// Records one entry in a transaction of its own.
    pub async fn record_alone(&self, entry: NewEntry) -> Result<()> {
        let mut w = self.db.write().await?;
        self.record(&mut w, entry).await?;
        w.commit().await
    }

    /// Appends entries at `at_ms` inside `w`; returns the sequence number of each.
    pub async fn append_at(
        &self,
        w: &mut WriteTx,
        entries: Vec<NewEntry>,
        at: UnixMs,
    ) -> Result<Vec<i64>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        w.lock_audit_chain().await?;
        let (mut seq, mut prev) = storage::audit::head(w)
            .await?
            .unwrap_or_else(|| (0, GENESIS.to_owned()));
        let mut tree = proofs::frontier(w, seq).await?;
        let before = tree.size();
        let mut seqs = Vec::with_capacity(entries.len());
        let mut nodes = Vec::new();
        let mut rows = Vec::with_capacity(entries.len());
        for entry in entries {
            seq += 1;
            let data = entry.data.to_string();
            let data_hash = sha256_hex(data.as_bytes());
            let kind = entry.kind.as_str();
            let leaf = canonical(seq, at.millis(), kind, &entry.actor, &data_hash, &prev);
            let stored = Entry {
                seq,
                at_ms: at.millis(),
                kind: kind.to_owned(),
                actor: entry.actor,
                data_hash,
                prev_hash: prev,
                hash: sha256_hex(&leaf),
                data: Some(data),
            };
            proofs::extend(&mut tree, merkle::leaf_hash(&leaf), &mut nodes);
            prev = stored.hash.clone();
            seqs.push(seq);
            rows.push((stored, entry.subject.map(|s| s.as_str().to_owned())));
        }
        storage::audit::insert_many(w, &rows).await?;
        storage::audit::insert_nodes(w, &nodes).await?;
        let every = self.checkpoint_every.max(1);
        if before / every != tree.size() / every {
            self.sign(w, &tree, at).await?;
        }
        Ok(seqs)
    }

    /// Signs and stores the checkpoint of `tree` (inside the write that extended it).
    async fn sign(
        &self,
        w: &mut WriteTx,
        tree: &merkle::Frontier,
        at: UnixMs,
    ) -> Result<storage::audit::StoredCheckpoint> {
        let checkpoint = note::Checkpoint {
            origin: self.signer.name().to_owned(),
            size: tree.size(),
            root: tree.root(),
        };
        let stored = storage::audit::StoredCheckpoint {
            size: checkpoint.size,
            root: crate::pseudonym::hex(&checkpoint.root),
            signed_at_ms: at.millis(),
            note: self.signer.sign(&checkpoint.body()),
        };
        storage::audit::insert_checkpoint(w, &stored).await?;
        Ok(stored)
    }

    /// The newest signed checkpoint, signing one first when entries were appended since
    /// (and the tree caught up with the chain): what `GET /v1/audit/checkpoint`, proofs and
    /// exports are cut from, and what the periodic signing calls. None for an empty log.
    pub async fn checkpoint(&self) -> Result<Option<storage::audit::StoredCheckpoint>> {
        // Most calls find the newest checkpoint current: answered without a write.
        let latest = storage::audit::latest_checkpoint(&self.db).await?;
        let head = storage::audit::last_seq(&self.db).await?;
        if let Some(c) = latest.filter(|c| c.size as i64 == head) {
            return Ok(Some(c));
        }
        let mut w = self.db.write().await?;
        w.lock_audit_chain().await?;
        let head = storage::audit::head(&mut w).await?.map_or(0, |(s, _)| s);
        let tree = proofs::frontier(&mut w, head).await?;
        let latest = storage::audit::latest_checkpoint_in(&mut w).await?;
        let answer = match latest {
            Some(c) if c.size == tree.size() => Some(c),
            _ if tree.size() == 0 => None,
            _ => Some(self.sign(&mut w, &tree, self.now()).await?),
        };
        w.commit().await?;
        Ok(answer)
    }

    /// Makes sure the key that signs is listed among the public keys; when it is new and
    /// another key signed before, the change goes into the trail with both keys.
    pub async fn publish_key(&self) -> Result<()> {
        let vkey = self.signer.vkey();
        let known = storage::audit::public_keys(&self.db).await?;
        if known.iter().any(|(k, _)| k == &vkey) {
            return Ok(());
        }
        let mut w = self.db.write().await?;
        w.lock_audit_chain().await?;
        if storage::audit::add_public_key(&mut w, &vkey, self.now().millis()).await? {
            if let Some((previous, _)) = known.last() {
                let entry = NewEntry {
                    kind: Kind::SigningKeyRotation,
                    actor: "server".into(),
                    subject: None,
                    data: serde_json::json!({"previous": previous, "current": vkey}),
                };
                self.record(&mut w, entry).await?;
            }
        }
        w.commit().await
    }
}

/// Where a chain stops being what it claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Break {
    /// The first entry that does not verify (or the sequence number that is missing).
    pub seq: i64,
    pub problem: String,
}

/// Checks entries in order, as they come. Feed it every entry, then call `finish`.
#[derive(Debug)]
pub struct Verifier<'k> {
    expected_seq: Option<i64>,
    prev_hash: String,
    checked: u64,
    checkpoints: u64,
    keys: Option<&'k Pseudonymizer>,
    first_break: Option<Break>,
}

/// The verdict on a whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = VerifyReport)]
pub struct Report {
    pub ok: bool,
    pub entries: u64,
    pub checkpoints_verified: u64,
    pub head: String,
    pub first_break: Option<Break>,
}

impl<'k> Verifier<'k> {
    /// `keys`: when given, checkpoint MACs are checked too.
    pub fn new(keys: Option<&'k Pseudonymizer>) -> Verifier<'k> {
        Verifier {
            expected_seq: None,
            prev_hash: GENESIS.into(),
            checked: 0,
            checkpoints: 0,
            keys,
            first_break: None,
        }
    }

    /// An export may start anywhere (a time window): the first entry anchors the chain.
    pub fn push(&mut self, e: &Entry) {
        if self.first_break.is_some() {
            return;
        }
        let problem = self.check(e);
        if let Some(problem) = problem {
            self.first_break = Some(Break {
                seq: e.seq,
                problem,
            });
            return;
        }
        self.expected_seq = Some(e.seq + 1);
        self.prev_hash = e.hash.clone();
        self.checked += 1;
    }

    /// The verdict on a signed checkpoint of the entries up to `seq`: counted when good,
    /// else the first break (unless one came before).
    pub fn signed_checkpoint(&mut self, seq: i64, ok: bool) {
        if self.first_break.is_some() {
            return;
        }
        if ok {
            self.checkpoints += 1;
        } else {
            self.first_break = Some(Break {
                seq,
                problem: "a signed checkpoint does not match the log's Merkle tree head (or its signature does not verify)".into(),
            });
        }
    }

    fn check(&mut self, e: &Entry) -> Option<String> {
        match self.expected_seq {
            Some(expected) if e.seq > expected => {
                return Some(format!("entries {expected}..{} are missing", e.seq - 1));
            }
            Some(expected) if e.seq < expected => {
                return Some("entry out of order or repeated".into())
            }
            None if e.seq == 1 && e.prev_hash != GENESIS => {
                return Some("first entry does not start the chain".into())
            }
            _ => {}
        }
        if self.expected_seq.is_some() && e.prev_hash != self.prev_hash {
            return Some("prev_hash does not match the entry before (removed or reordered)".into());
        }
        if let Some(data) = &e.data {
            if sha256_hex(data.as_bytes()) != e.data_hash {
                return Some("data altered (does not match data_hash)".into());
            }
        }
        if sha256_hex(&encoded(e)) != e.hash {
            return Some("entry altered (hash does not match its fields)".into());
        }
        if e.kind == Kind::Checkpoint.as_str() {
            if let (Some(keys), Some(data)) = (self.keys, &e.data) {
                let v: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
                let up_to = v["upTo"].as_i64().unwrap_or(-1);
                let head = v["head"].as_str().unwrap_or_default();
                if up_to != e.seq - 1
                    || head != e.prev_hash
                    || v["mac"].as_str() != Some(&keys.checkpoint_mac(up_to, head))
                {
                    return Some("checkpoint signature does not verify".into());
                }
                self.checkpoints += 1;
            }
        }
        None
    }

    pub fn finish(self) -> Report {
        Report {
            ok: self.first_break.is_none(),
            entries: self.checked,
            checkpoints_verified: self.checkpoints,
            head: self.prev_hash,
            first_break: self.first_break,
        }
    }
}

/// CSV header of an export; rows are written by [`csv_row`].
pub const CSV_HEADER: &str = "seq,at,kind,actor,data_hash,prev_hash,hash,data\r\n";

/// A CSV field: quoted, with a `'` before a leading `=`, `+`, `-` or `@` (which would make
/// a spreadsheet run a formula).
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub fn csv_row(e: &Entry) -> String {
    let field = csv_field;
    let at = assent_protocol::Timestamp::from_unix_millis(e.at_ms).to_string();
    format!(
        "{},{},{},{},{},{},{},{}\r\n",
        e.seq,
        field(&at),
        field(&e.kind),
        field(&e.actor),
        field(&e.data_hash),
        field(&e.prev_hash),
        field(&e.hash),
        field(e.data.as_deref().unwrap_or(""))
    )
}

/// The fields of a CSV row written by [`csv_row`] (quoted or not), None when malformed.
pub fn csv_fields(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut chars = line.trim_end_matches(['\r', '\n']).chars().peekable();
    loop {
        let mut f = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        f.push('"');
                    } else {
                        break;
                    }
                } else {
                    f.push(c);
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                f.push(c);
                chars.next();
            }
        }
        fields.push(f);
        match chars.next() {
            Some(',') => continue,
            None => break,
            Some(_) => return None,
        }
    }
    Some(fields)
}

/// Reads back a row written by [`csv_row`].
pub fn parse_csv_row(line: &str) -> Option<Entry> {
    let fields = csv_fields(line)?;
    if fields.len() != 8 {
        return None;
    }
    let unguard = |s: &str| {
        if s.starts_with("'") && s[1..].starts_with(['=', '+', '-', '@']) {
            s[1..].to_owned()
        } else {
            s.to_owned()
        }
    };
    Some(Entry {
        seq: fields[0].parse().ok()?,
        at_ms: assent_protocol::Timestamp::parse(&fields[1])
            .ok()?
            .unix_millis(),
        kind: unguard(&fields[2]),
        actor: unguard(&fields[3]),
        data_hash: fields[4].clone(),
        prev_hash: fields[5].clone(),
        hash: fields[6].clone(),
        data: if fields[7].is_empty() {
            None
        } else {
            Some(unguard(&fields[7]))
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn entry_hash(
        seq: i64,
        at_ms: i64,
        kind: &str,
        actor: &str,
        data_hash: &str,
        prev_hash: &str,
    ) -> String {
        sha256_hex(&canonical(seq, at_ms, kind, actor, data_hash, prev_hash))
    }

    fn chain(n: i64) -> Vec<Entry> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let data = format!(r#"{{"n":{seq}}}"#);
                let data_hash = sha256_hex(data.as_bytes());
                let hash = entry_hash(seq, 1000 + seq, "consent", "key:k", &data_hash, &prev);
                let e = Entry {
                    seq,
                    at_ms: 1000 + seq,
                    kind: "consent".into(),
                    actor: "key:k".into(),
                    data_hash,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                    data: Some(data),
                };
                prev = hash;
                e
            })
            .collect()
    }

    fn verify(entries: &[Entry]) -> Report {
        let mut v = Verifier::new(None);
        entries.iter().for_each(|e| v.push(e));
        v.finish()
    }

    #[test]
    fn an_intact_chain_verifies_and_erased_data_is_allowed() {
        let mut c = chain(5);
        assert!(verify(&c).ok);
        c[2].data = None;
        let r = verify(&c);
        assert!(r.ok, "{r:?}");
        assert_eq!(r.entries, 5);
    }

    #[test]
    fn alteration_removal_and_reordering_name_the_first_bad_entry() {
        let mut altered = chain(5);
        altered[2].data = Some(r#"{"n":99}"#.into());
        assert_eq!(verify(&altered).first_break.unwrap().seq, 3);

        let mut forged = chain(5);
        forged[3].actor = "key:someone-else".into();
        assert_eq!(verify(&forged).first_break.unwrap().seq, 4);

        let mut removed = chain(5);
        removed.remove(1);
        let b = verify(&removed).first_break.unwrap();
        assert_eq!(b.seq, 3);
        assert!(b.problem.contains("missing"));

        let mut swapped = chain(5);
        swapped.swap(1, 2);
        assert_eq!(verify(&swapped).first_break.unwrap().seq, 3);
    }

    #[test]
    fn csv_rows_round_trip_including_quotes_and_formula_guards() {
        let mut e = chain(1).remove(0);
        e.data = Some(r#"{"note":"=SUM(A1), \"quoted\""}"#.into());
        e.actor = "-danger".into();
        let row = csv_row(&e);
        assert!(row.contains("\"'-danger\""));
        assert_eq!(parse_csv_row(&row).unwrap(), e);
    }

    #[test]
    fn checkpoint_macs_are_checked_when_the_key_is_known() {
        let keys = Pseudonymizer::new("k1", Secret::new("s".repeat(32)));
        let mut c = chain(2);
        let head = c[1].hash.clone();
        let data =
            serde_json::json!({"upTo": 2, "head": head, "mac": keys.checkpoint_mac(2, &head)})
                .to_string();
        let data_hash = sha256_hex(data.as_bytes());
        let hash = entry_hash(3, 1003, "checkpoint", "server", &data_hash, &head);
        c.push(Entry {
            seq: 3,
            at_ms: 1003,
            kind: "checkpoint".into(),
            actor: "server".into(),
            data_hash,
            prev_hash: head,
            hash,
            data: Some(data),
        });
        let mut v = Verifier::new(Some(&keys));
        c.iter().for_each(|e| v.push(e));
        let r = v.finish();
        assert!(r.ok && r.checkpoints_verified == 1, "{r:?}");
        let other = Pseudonymizer::new("k1", Secret::new("t".repeat(32)));
        let mut v = Verifier::new(Some(&other));
        c.iter().for_each(|e| v.push(e));
        assert_eq!(v.finish().first_break.unwrap().seq, 3);
    }
}
