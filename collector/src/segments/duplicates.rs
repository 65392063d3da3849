//! Duplicate profiles at a source: a scan matches the profiles' identify traits (name,
//! email, phone, address) with [`assent_segmentation::dedup`] and stores the close pairs
//! as proposals; someone confirms one, which merges the two profiles through the identity
//! graph (recorded as a `dedup` link), or rejects it, which keeps the pair from being
//! proposed again. Scans and decisions are audited (pseudonyms only in the audit data).
use serde_json::Value;

use assent_segmentation::dedup::{Block, Compare, Field, Matcher, Normalize};

use crate::{
    audit::{self, NewEntry},
    error::{Error, Result},
    ids::{Pseudonym, SourceId},
    segments::{iso, membership, Segments},
    storage::{self, identity::Link},
};

/// Pairs scoring this or more are proposed unless the caller says otherwise.
pub const THRESHOLD: f64 = 0.85;

/// The matcher on identify traits: names by Jaro–Winkler, email exactly once normalized,
/// phone and address by Levenshtein; blocks on the name's first three letters, the email
/// and the phone.
pub fn matcher(threshold: f64) -> Matcher {
    let field = |name: &str, compare, weight, normalize| Field {
        name: name.into(),
        compare,
        weight,
        normalize,
    };
    Matcher {
        fields: vec![
            field("name", Compare::JaroWinkler, 1.0, Normalize::Text),
            field("email", Compare::Exact, 1.0, Normalize::Email),
            field("phone", Compare::Levenshtein, 1.0, Normalize::Phone),
            field("address", Compare::Levenshtein, 0.5, Normalize::Text),
        ],
        blocks: vec![
            Block {
                field: 0,
                prefix: Some(3),
            },
            Block {
                field: 1,
                prefix: None,
            },
            Block {
                field: 2,
                prefix: None,
            },
        ],
        threshold,
        max_block: 1_000,
    }
}

/// A trait as text: a string, a number, or an address object's parts joined.
fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Object(o)) => ["street", "city", "postal_code", "postalCode", "country"]
            .iter()
            .filter_map(|k| o.get(*k).and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// A profile's record for matching: Segment's reserved traits (`name`, or `firstName` and
/// `lastName`; `email`; `phone`; `address`).
fn record(traits: &std::collections::BTreeMap<String, Value>) -> Vec<String> {
    let name = match traits.get("name") {
        Some(v) => text(Some(v)),
        None => [text(traits.get("firstName")), text(traits.get("lastName"))]
            .join(" ")
            .trim()
            .to_owned(),
    };
    vec![
        name,
        text(traits.get("email")),
        text(traits.get("phone")),
        text(traits.get("address")),
    ]
}

/// A proposal as listed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Proposal {
    /// The profile kept.
    pub subject: Pseudonym,
    /// The profile that merges into it when confirmed.
    pub duplicate: Pseudonym,
    pub score: f64,
    /// `proposed`, `confirmed` or `rejected`.
    pub status: String,
    pub decided_at: Option<String>,
}

/// What a scan did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Scan {
    /// Profiles with at least one of the traits compared.
    pub profiles: u64,
    /// Pairs compared after blocking.
    pub candidates: usize,
    /// Pairs proposed.
    pub proposed: usize,
}

impl Segments {
    /// Scans the profiles at `source` for duplicates and stores the pairs at or above
    /// `threshold` as proposals (replacing the undecided ones; audited).
    pub async fn scan_duplicates(
        &self,
        source: &SourceId,
        threshold: f64,
        actor: String,
    ) -> Result<Scan> {
        let m = matcher(threshold);
        let mut subjects = Vec::new();
        let mut records = Vec::new();
        let mut conn = self.db.pool.acquire().await?;
        storage::profiles::for_each(&mut conn, |at, subject, events| {
            if at != *source {
                return Ok(());
            }
            let traits = membership::profile_of(&events)?.identity_traits();
            let r = record(&traits);
            if r.iter().any(|f| !f.is_empty()) {
                subjects.push(subject);
                records.push(r);
            }
            Ok(())
        })
        .await?;
        drop(conn);
        let found = m
            .find(&records)
            .map_err(|e| Error::BadRequest(e.to_string()))?;
        // The profile kept is the one first in pseudonym order: the same pair is always
        // proposed the same way round.
        let pairs: Vec<(Pseudonym, Pseudonym, String)> = found
            .pairs
            .iter()
            .map(|p| {
                let (x, y) = (&subjects[p.a], &subjects[p.b]);
                let (keep, merge) = if x < y { (x, y) } else { (y, x) };
                (keep.clone(), merge.clone(), format!("{:.4}", p.score))
            })
            .collect();
        let mut w = self.db.write().await?;
        w.lock_audit_chain().await?;
        storage::duplicates::replace_proposed(&mut w, source, &pairs, self.trail.now()).await?;
        let scan = Scan {
            profiles: records.len() as u64,
            candidates: found.candidates,
            proposed: pairs.len(),
        };
        let entry = NewEntry {
            kind: audit::Kind::DuplicateScan,
            actor,
            subject: None,
            data: serde_json::json!({"source": source, "threshold": threshold, "scan": scan}),
        };
        self.trail.record(&mut w, entry).await?;
        w.commit().await?;
        Ok(scan)
    }

    /// The duplicate proposals at `source`, undecided first.
    pub async fn duplicates(&self, source: &SourceId) -> Result<Vec<Proposal>> {
        Ok(storage::duplicates::list(&self.db, source)
            .await?
            .into_iter()
            .map(|p| Proposal {
                score: p.score.parse().unwrap_or(f64::NAN),
                subject: p.subject,
                duplicate: p.previous,
                status: p.status,
                decided_at: p.decided_at_ms.map(iso),
            })
            .collect())
    }

    /// Confirms (merging `duplicate`'s profile into `subject`'s through the identity
    /// graph) or rejects a proposal at `source` (audited); `NotFound` when no such pair
    /// is proposed.
    pub async fn decide_duplicate(
        &self,
        source: &SourceId,
        subject: &str,
        duplicate: &str,
        confirm: bool,
        actor: String,
    ) -> Result<()> {
        let now = self.trail.now();
        let mut w = self.db.write().await?;
        w.lock_audit_chain().await?;
        w.lock(membership::LOCK).await?;
        let status = if confirm { "confirmed" } else { "rejected" };
        if !storage::duplicates::decide(&mut w, source, subject, duplicate, status, now).await? {
            return Err(Error::NotFound);
        }
        if confirm {
            let (keep, merge) = (
                Pseudonym::parse(subject).map_err(|e| Error::BadRequest(e.to_string()))?,
                Pseudonym::parse(duplicate).map_err(|e| Error::BadRequest(e.to_string()))?,
            );
            // Either may have been merged elsewhere since the scan: the merge is of the
            // profiles they are part of now.
            let links = storage::identity::links_from(&mut w, &[&keep, &merge]).await?;
            let now_in = |p: &Pseudonym| {
                links
                    .iter()
                    .find(|l| l.source == *source && l.previous == *p)
                    .map_or_else(|| p.clone(), |l| l.subject.clone())
            };
            let (keep, merge) = (now_in(&keep), now_in(&merge));
            if keep == merge {
                return self
                    .record_decision(w, source, subject, duplicate, status, actor)
                    .await;
            }
            let link = Link {
                source: source.clone(),
                previous: merge.clone(),
                subject: keep.clone(),
                kind: "dedup".into(),
                message_id: String::new(),
                at_ms: now.millis(),
            };
            storage::identity::merge(&mut w, &link, now).await?;
            let definitions = membership::Definitions::load_in(&mut w).await?;
            if !definitions.audiences.is_empty() {
                membership::refresh(
                    &mut w,
                    &definitions,
                    &self.vocabulary,
                    &[&keep, &merge],
                    now,
                )
                .await?;
            }
        }
        self.record_decision(w, source, subject, duplicate, status, actor)
            .await
    }

    async fn record_decision(
        &self,
        mut w: storage::WriteTx,
        source: &SourceId,
        subject: &str,
        duplicate: &str,
        status: &str,
        actor: String,
    ) -> Result<()> {
        let entry = NewEntry {
            kind: audit::Kind::DuplicateDecided,
            actor,
            subject: None,
            data: serde_json::json!({"source": source, "subject": subject,
                                     "duplicate": duplicate, "decision": status}),
        };
        self.trail.record(&mut w, entry).await?;
        w.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traits_make_records_and_close_ones_match() {
        let traits = |v: Value| v.as_object().unwrap().clone().into_iter().collect();
        let a = record(&traits(
            serde_json::json!({"firstName": "Ana", "lastName": "Lima",
            "email": "Ana.Lima@gmail.com", "address": {"street": "Rua Augusta 10", "city": "Lisboa"}}),
        ));
        assert_eq!(a[0], "Ana Lima");
        assert_eq!(a[3], "Rua Augusta 10 Lisboa");
        let b = record(&traits(
            serde_json::json!({"name": "ana lima", "email": "analima@gmail.com",
            "phone": "+351 912 345 678"}),
        ));
        let found = matcher(THRESHOLD).find(&[a, b]).unwrap();
        assert_eq!(found.pairs.len(), 1, "{found:?}");
    }
}
