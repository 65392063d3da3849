//! The identity graph of profiles, per source: an event carrying both an anonymous id and
//! a user id (an `identify`, typically), or an `alias` from a previous id to a user id,
//! merges the first's profile into the second's, as Segment's identity resolution does.
//! Links are kept one hop from the end of each chain (a merge into a merged id goes to
//! the profile it is part of), so finding a profile is one lookup and no chain can loop.
//! Each event keeps the pseudonym it came under, so a withdrawal or an erasure by that
//! id removes exactly its events from the merged profile.
use std::collections::BTreeMap;

use serde_json::Value;

use crate::{
    error::Result,
    feed::EventItem,
    ids::{Pseudonym, SourceId},
    storage::{self, identity::Link, WriteTx},
};

/// The links a batch may meet, kept up to date as it merges.
#[derive(Debug, Default)]
pub struct Graph {
    /// (source, pseudonym merged away) → the profile it is part of.
    links: BTreeMap<(SourceId, Pseudonym), Pseudonym>,
}

/// The merge an event asks for: `from`'s profile into `into`'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    pub from: Pseudonym,
    pub into: Pseudonym,
}

impl Graph {
    /// The stored links from any pseudonym the events name, and from `others`.
    pub async fn load(
        w: &mut WriteTx,
        events: &[&EventItem],
        others: &[&Pseudonym],
    ) -> Result<Graph> {
        let mut named: Vec<&Pseudonym> = others.to_vec();
        let mut previous = Vec::new();
        for e in events {
            named.push(&e.subject);
            named.extend(e.anonymous_id.iter());
            named.extend(e.user_id.iter());
            previous.extend(previous_id(e));
        }
        named.extend(previous.iter());
        named.sort_unstable();
        named.dedup();
        let mut graph = Graph::default();
        for link in storage::identity::links_from(w, &named).await? {
            graph
                .links
                .insert((link.source, link.previous), link.subject);
        }
        Ok(graph)
    }

    /// The profile `subject` is part of at `source` (itself when not merged).
    pub fn profile_of(&self, source: &SourceId, subject: &Pseudonym) -> Pseudonym {
        self.links
            .get(&(source.clone(), subject.clone()))
            .unwrap_or(subject)
            .clone()
    }

    /// The merge event `e` asks for, if its ids are not in one profile already; the
    /// graph takes it in.
    pub fn merge_for(&mut self, e: &EventItem) -> Option<Merge> {
        let (from, to) = match e.kind.as_str() {
            "alias" => (
                previous_id(e)?,
                e.user_id.clone().unwrap_or(e.subject.clone()),
            ),
            _ => (e.anonymous_id.clone()?, e.user_id.clone()?),
        };
        let (from, into) = (
            self.profile_of(&e.source_id, &from),
            self.profile_of(&e.source_id, &to),
        );
        if from == into {
            return None;
        }
        for ((source, _), target) in self.links.iter_mut() {
            if *source == e.source_id && *target == from {
                *target = into.clone();
            }
        }
        self.links
            .insert((e.source_id.clone(), from.clone()), into.clone());
        Some(Merge { from, into })
    }

    /// Forgets the links from or into `subject` at the sources `at` says yes to;
    /// returns the profiles it had been merged into there (they lose its events).
    pub fn forget(
        &mut self,
        subject: &Pseudonym,
        at: impl Fn(&SourceId) -> bool,
    ) -> Vec<Pseudonym> {
        let mut merged_into = Vec::new();
        self.links.retain(|(source, from), into| {
            let goes = at(source) && (from == subject || into == subject);
            if goes && from == subject {
                merged_into.push(into.clone());
            }
            !goes
        });
        merged_into
    }

    /// The link to record for a merge event `e` asked for.
    pub fn link(e: &EventItem, merge: &Merge) -> Link {
        Link {
            source: e.source_id.clone(),
            previous: merge.from.clone(),
            subject: merge.into.clone(),
            kind: if e.kind == "alias" {
                "alias"
            } else {
                "identify"
            }
            .into(),
            message_id: e.message_id.clone(),
            at_ms: e.timestamp_ms,
        }
    }
}

/// An alias's `previousId` (stored pseudonymized, as every identifier).
fn previous_id(e: &EventItem) -> Option<Pseudonym> {
    if e.kind != "alias" {
        return None;
    }
    let payload: Value = serde_json::from_str(&e.payload).ok()?;
    Pseudonym::parse(payload["previousId"].as_str()?).ok()
}
