//! The stored Merkle tree (`audit_tree`): extending it as entries are appended, catching
//! up with entries appended before it existed, and answering inclusion and consistency
//! proofs from the heads of its complete subtrees (O(log n) nodes read per proof).
use crate::{
    audit::{
        leaf_of,
        merkle::{self, Frontier, Hash, Span},
        Entry,
    },
    error::{Error, Result},
    pseudonym::{hex, unhex},
    storage::{self, Db, WriteTx},
};

/// How many old entries one read brings when the tree catches up with the chain.
const CATCH_UP_PAGE: i64 = 10_000;

fn parse(h: &str) -> Result<Hash> {
    unhex(h)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Internal("a stored Merkle node is not a hash".into()))
}

fn missing() -> Error {
    Error::Internal("the stored Merkle tree lacks a node it should have".into())
}

/// Appends a leaf to `tree`, adding the subtrees it completes to `nodes` (to store).
pub fn extend(tree: &mut Frontier, leaf: Hash, nodes: &mut Vec<(u32, u64, String)>) {
    nodes.extend(
        tree.push(leaf)
            .into_iter()
            .map(|(level, i, h)| (level, i, hex(&h))),
    );
}

/// The stored tree's right edge, inside a write with the chain locked, first extended
/// with any entries up to `head` that it lacks (a log written before the tree existed,
/// caught up in pages).
pub async fn frontier(w: &mut WriteTx, head: i64) -> Result<Frontier> {
    let size = storage::audit::tree_size(w).await?;
    let peaks = storage::audit::nodes_in(w, &Frontier::peak_nodes(size))
        .await?
        .into_iter()
        .map(|h| h.ok_or_else(missing).and_then(|h| parse(&h)))
        .collect::<Result<Vec<_>>>()?;
    let mut tree = Frontier::from_parts(size, peaks).ok_or_else(missing)?;
    while (tree.size() as i64) < head {
        let from = tree.size() as i64 + 1;
        let entries =
            storage::audit::chained_in(w, from, (from + CATCH_UP_PAGE - 1).min(head)).await?;
        let mut nodes = Vec::new();
        for e in &entries {
            if e.seq != tree.size() as i64 + 1 {
                return Err(Error::Internal(format!(
                    "audit entry {} is missing: the tree cannot be extended",
                    tree.size() + 1
                )));
            }
            extend(&mut tree, leaf_of(e), &mut nodes);
        }
        if entries.is_empty() {
            return Err(Error::Internal("the audit chain ends early".into()));
        }
        storage::audit::insert_nodes(w, &nodes).await?;
    }
    Ok(tree)
}

/// The heads of `spans`, from the stored complete subtrees: one read.
async fn heads(db: &Db, spans: &[Span]) -> Result<Vec<Hash>> {
    let per_span: Vec<Vec<(u32, u64)>> = spans.iter().map(|&s| merkle::span_nodes(s)).collect();
    let wanted: Vec<(u32, u64)> = per_span.iter().flatten().copied().collect();
    let mut found = storage::audit::nodes(db, &wanted).await?.into_iter();
    per_span
        .iter()
        .map(|nodes| {
            let hs = nodes
                .iter()
                .map(|_| {
                    found
                        .next()
                        .flatten()
                        .ok_or_else(missing)
                        .and_then(|h| parse(&h))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(merkle::fold(&hs))
        })
        .collect()
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves (RFC 9162 order).
pub async fn inclusion(db: &Db, index: u64, size: u64) -> Result<Vec<Hash>> {
    heads(db, &merkle::inclusion_spans(index, size)).await
}

/// The consistency proof from the tree of `from` leaves to the tree of `to`.
pub async fn consistency(db: &Db, from: u64, to: u64) -> Result<Vec<Hash>> {
    heads(db, &merkle::consistency_spans(from, to)).await
}

/// An entry with the proof that it is leaf `leaf_index` of the tree a signed checkpoint
/// states: what `GET /v1/consent/receipts/{consentId}/proof` answers (format in
/// `docs/audit-format.md`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InclusionProof {
    /// `assent-audit-inclusion/v1`.
    pub format: String,
    pub entry: Entry,
    /// `entry.seq − 1`.
    pub leaf_index: u64,
    /// The size of the tree of `checkpoint`.
    pub tree_size: u64,
    /// The audit path, leaf to root (RFC 9162 §2.1.3), base64.
    pub proof: Vec<String>,
    /// The C2SP signed checkpoint the proof leads to.
    pub checkpoint: String,
}

/// A proof that the tree of one signed checkpoint extends the tree of an older one.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsistencyProof {
    /// `assent-audit-consistency/v1`.
    pub format: String,
    pub from: u64,
    pub to: u64,
    /// The signed checkpoints of both sizes.
    pub from_checkpoint: String,
    pub to_checkpoint: String,
    /// RFC 9162 §2.1.4, base64.
    pub proof: Vec<String>,
}

pub const INCLUSION_FORMAT: &str = "assent-audit-inclusion/v1";
pub const CONSISTENCY_FORMAT: &str = "assent-audit-consistency/v1";

fn b64_all(hs: Vec<Hash>) -> Vec<String> {
    hs.iter().map(crate::audit::note::b64).collect()
}

/// Entry `seq` with its inclusion proof to the newest signed checkpoint (signed now when
/// the newest does not cover it yet).
pub async fn inclusion_of(trail: &crate::audit::Trail, seq: i64) -> Result<InclusionProof> {
    let entry = storage::audit::entry(trail.db(), seq)
        .await?
        .ok_or(Error::NotFound)?;
    let checkpoint = trail.checkpoint().await?.ok_or(Error::NotFound)?;
    let index = seq as u64 - 1;
    Ok(InclusionProof {
        format: INCLUSION_FORMAT.into(),
        entry,
        leaf_index: index,
        tree_size: checkpoint.size,
        proof: b64_all(inclusion(trail.db(), index, checkpoint.size).await?),
        checkpoint: checkpoint.note,
    })
}

/// The consistency proof between the signed checkpoints of sizes `from` and `to` (the
/// newest when absent).
pub async fn consistency_between(
    trail: &crate::audit::Trail,
    from: u64,
    to: Option<u64>,
) -> Result<ConsistencyProof> {
    let db = trail.db();
    let to = match to {
        Some(size) => storage::audit::checkpoint(db, size).await?,
        None => trail.checkpoint().await?,
    }
    .ok_or_else(|| Error::BadRequest("`to` is not the size of a signed checkpoint".into()))?;
    if from > to.size {
        return Err(Error::BadRequest("`from` must not be above `to`".into()));
    }
    let old = storage::audit::checkpoint(db, from)
        .await?
        .ok_or_else(|| Error::BadRequest("`from` is not the size of a signed checkpoint".into()))?;
    Ok(ConsistencyProof {
        format: CONSISTENCY_FORMAT.into(),
        from,
        to: to.size,
        from_checkpoint: old.note,
        proof: b64_all(consistency(db, from, to.size).await?),
        to_checkpoint: to.note,
    })
}
