//! Who is in each audience. A profile's events give its features and computed traits;
//! each audience's rule over them decides. Kept in storage and changed, with the time of
//! each entry and exit, in three places that share [`Definitions::decide`]: as events
//! arrive ([`refresh`], in the consumer's transaction), when an audience or a computed
//! trait is set ([`backfill`] over stored history, so an edit applies to everyone at
//! once), and by the sweep that lets time-window rules lapse.
use std::collections::{BTreeMap, BTreeSet};

use assent_segmentation::{
    profile::{ComputedTrait, Event, Profile, Vocabulary},
    rules::{Rule, Subject},
};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    ids::{Pseudonym, SourceId, UnixMs},
    storage::{self, audiences::Member, definitions::Kind, WriteTx},
};

/// Lock id that serializes the transactions deciding membership across PostgreSQL
/// replicas (the consumer's batches, backfills and sweeps): each reads the profiles and
/// members it then writes.
pub const LOCK: i64 = 0x0041_5544_4945_4e43; // "AUDIENC"

/// The audiences and computed traits in force, parsed.
#[derive(Debug, Clone, Default)]
pub struct Definitions {
    pub audiences: Vec<(String, Rule)>,
    pub traits: Vec<ComputedTrait>,
}

/// What a profile is now: its features, computed traits and audiences.
#[derive(Debug, Clone)]
pub struct Decided {
    pub features: assent_segmentation::profile::Features,
    pub traits: BTreeMap<String, Value>,
    pub audiences: Vec<String>,
}

/// How many profiles a backfill read, and how many entries and exits it recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Backfilled {
    pub profiles: u64,
    pub entered: u64,
    pub exited: u64,
}

impl Definitions {
    /// Parses stored audiences and traits; a stored one that no longer parses is an
    /// internal error (they are checked before they are stored).
    pub fn parse(
        audiences: Vec<storage::definitions::Stored>,
        traits: Vec<storage::definitions::Stored>,
    ) -> Result<Definitions> {
        let broken = |what: &str, e: String| Error::Internal(format!("a stored {what}: {e}"));
        let audiences = audiences
            .into_iter()
            .map(|a| {
                let json: Value =
                    serde_json::from_str(&a.json).map_err(|e| broken("rule", e.to_string()))?;
                let rule = Rule::parse(&json).map_err(|e| broken("rule", e.to_string()))?;
                Ok((a.name, rule))
            })
            .collect::<Result<_>>()?;
        let traits = traits
            .into_iter()
            .map(|t| {
                let json: Value =
                    serde_json::from_str(&t.json).map_err(|e| broken("trait", e.to_string()))?;
                ComputedTrait::parse(&json).map_err(|e| broken("trait", e.to_string()))
            })
            .collect::<Result<_>>()?;
        Ok(Definitions { audiences, traits })
    }

    /// The definitions as the write transaction sees them.
    pub async fn load_in(w: &mut WriteTx) -> Result<Definitions> {
        let audiences = storage::definitions::list_in(w, Kind::Audience).await?;
        let traits = storage::definitions::list_in(w, Kind::Trait).await?;
        Definitions::parse(audiences, traits)
    }

    /// The profile's features, traits and audiences at `now_ms`.
    pub fn decide(&self, profile: &Profile, now_ms: i64, vocabulary: &Vocabulary) -> Decided {
        let features = profile.features(now_ms, vocabulary);
        let traits: BTreeMap<String, Value> = self
            .traits
            .iter()
            .map(|t| (t.name.clone(), t.evaluate(profile, now_ms)))
            .collect();
        let subject = Subject {
            profile,
            features: &features,
            traits: &traits,
            now_ms,
        };
        let audiences = self
            .audiences
            .iter()
            .filter(|(_, rule)| rule.matches(&subject))
            .map(|(name, _)| name.clone())
            .collect();
        Decided {
            features,
            traits,
            audiences,
        }
    }
}

/// A profile from its stored events (JSON).
pub fn profile_of(events: &[String]) -> Result<Profile> {
    Ok(Profile::from(events_of(events)?))
}

/// Stored profile events (JSON) parsed.
pub fn events_of(events: &[String]) -> Result<Vec<Event>> {
    events
        .iter()
        .map(|json| {
            serde_json::from_str(json)
                .map_err(|e| Error::Internal(format!("a stored profile event does not parse: {e}")))
        })
        .collect()
}

type Key = (String, SourceId, Pseudonym);

fn key(m: &Member) -> Key {
    (m.audience.clone(), m.source.clone(), m.subject.clone())
}

/// Records the entries into `wanted` that are not in `current` and the exits of those
/// in `current` not wanted; returns how many of each.
async fn apply_difference(
    w: &mut WriteTx,
    wanted: &BTreeSet<Key>,
    current: &[Member],
    now: UnixMs,
) -> Result<(u64, u64)> {
    let have: BTreeSet<Key> = current.iter().map(key).collect();
    let member = |(audience, source, subject): &Key| Member {
        audience: audience.clone(),
        source: source.clone(),
        subject: subject.clone(),
        since_ms: now.millis(),
    };
    let entering: Vec<Member> = wanted.difference(&have).map(member).collect();
    let exiting: Vec<Member> = current
        .iter()
        .filter(|m| !wanted.contains(&key(m)))
        .cloned()
        .collect();
    storage::audiences::enter(w, &entering, now).await?;
    storage::audiences::exit(w, &exiting, now).await?;
    Ok((entering.len() as u64, exiting.len() as u64))
}

/// Decides again the memberships of `subjects`' profiles (at every source) from their
/// stored events, in the write transaction that changed them.
pub async fn refresh(
    w: &mut WriteTx,
    definitions: &Definitions,
    vocabulary: &Vocabulary,
    subjects: &[&Pseudonym],
    now: UnixMs,
) -> Result<()> {
    let mut profiles: BTreeMap<(SourceId, Pseudonym), Vec<String>> = BTreeMap::new();
    for (source, subject, event) in storage::profiles::events_of(w, subjects).await? {
        profiles.entry((source, subject)).or_default().push(event);
    }
    let mut wanted = BTreeSet::new();
    for ((source, subject), events) in profiles {
        let decided = definitions.decide(&profile_of(&events)?, now.millis(), vocabulary);
        for audience in decided.audiences {
            wanted.insert((audience, source.clone(), subject.clone()));
        }
    }
    let current = storage::audiences::members_of(w, subjects).await?;
    apply_difference(w, &wanted, &current, now).await?;
    Ok(())
}

/// Decides the memberships of every stored profile in the audiences named by `only` (all
/// of them when None) from stored history, reporting each profile read to `progress`.
pub async fn backfill(
    w: &mut WriteTx,
    definitions: &Definitions,
    vocabulary: &Vocabulary,
    only: Option<&str>,
    now: UnixMs,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<Backfilled> {
    let chosen = Definitions {
        audiences: definitions
            .audiences
            .iter()
            .filter(|(name, _)| only.is_none_or(|o| o == name))
            .cloned()
            .collect(),
        traits: definitions.traits.clone(),
    };
    let mut wanted = BTreeSet::new();
    let mut profiles = 0u64;
    storage::profiles::for_each(&mut w.tx, |source, subject, events| {
        let decided = chosen.decide(&profile_of(&events)?, now.millis(), vocabulary);
        for audience in decided.audiences {
            wanted.insert((audience, source.clone(), subject.clone()));
        }
        profiles += 1;
        progress(profiles);
        Ok(())
    })
    .await?;
    let names: Vec<&str> = chosen.audiences.iter().map(|(n, _)| n.as_str()).collect();
    let current = storage::audiences::members_in(w, &names).await?;
    let (entered, exited) = apply_difference(w, &wanted, &current, now).await?;
    Ok(Backfilled {
        profiles,
        entered,
        exited,
    })
}
