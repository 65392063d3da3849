//! Segmentation in the collector: profiles kept from the feed for the subjects who
//! granted `personalization` at a source, their computed traits and audiences, and who is
//! in each audience. The algorithms (profiles, features, traits, rules, models) are the
//! `assent-segmentation` crate; [`consumer`] folds feed items into stored profiles,
//! [`membership`] decides who is in each audience, and [`Segments`] answers for them.
pub mod consumer;
pub mod duplicates;
pub mod identity;
pub mod membership;
pub mod models;
pub mod worker;

use std::{collections::BTreeMap, sync::Arc};

use assent_segmentation::{
    profile::{ComputedTrait, Features, Profile, Vocabulary},
    rules::Rule,
};
use serde_json::Value;

use crate::{
    audit::{self, NewEntry, Trail},
    error::{Error, Result},
    ids::{Pseudonym, SourceId, UnixMs},
    pseudonym::Pseudonymizer,
    storage::{self, definitions::Kind, Db, WriteTx},
};
use membership::{Backfilled, Definitions};

/// Profiles, computed traits and audiences as handlers read and set them.
#[derive(Clone)]
pub struct Segments {
    db: Db,
    trail: Trail,
    pseudonymizer: Arc<Pseudonymizer>,
    vocabulary: Vocabulary,
    /// Whether real-time segmentation is on when no one has set it (the configuration).
    realtime_default: bool,
    /// The currency amounts are kept in, when one is configured.
    currencies: Option<assent_segmentation::normalize::Currencies>,
}

/// The real-time segmentation switch: on, feed items update profiles, memberships and
/// clusters as they arrive; off, they wait in the feed and are caught up when it is on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Realtime {
    pub enabled: bool,
    /// When it was last set through the API (ISO 8601); None: the configuration's value.
    pub set_at: Option<String>,
}

/// The setting's name in `settings`.
const REALTIME: &str = "realtime_segmentation";

/// An audience: a name and a rule ([`Rule`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Audience {
    pub name: String,
    pub rule: Value,
    /// When it was last set, ISO 8601.
    pub updated_at: String,
}

/// An audience as set: the audience, and what backfilling it from stored history did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AudienceSet {
    #[serde(flatten)]
    pub audience: Audience,
    pub backfill: Backfilled,
}

/// A computed trait: its definition ([`ComputedTrait`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraitDefinition {
    pub definition: Value,
    /// When it was last set, ISO 8601.
    pub updated_at: String,
}

/// A subject's membership of an audience.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    pub audience: String,
    /// When the subject entered, ISO 8601.
    pub since: String,
}

/// A profile as read: its events, what they make of it now, and its memberships.
#[derive(Debug, Clone)]
pub struct ProfileView {
    pub profile: Profile,
    pub features: Features,
    pub traits: BTreeMap<String, Value>,
    pub segments: Vec<Membership>,
}

/// A member of an audience, by pseudonym (members are listed, never by raw id).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub subject: Pseudonym,
    pub since: String,
}

/// An entry into or exit from an audience.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub subject: Pseudonym,
    /// `entered` or `exited`.
    pub change: &'static str,
    pub at: String,
}

/// A page of a list and where the next one starts (None at the end).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// A name of an audience or trait: 1 to 64 lowercase letters, digits, `_` or `-`.
pub(crate) fn name_ok(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

pub(crate) const NAME_RULE: &str = "1 to 64 lowercase letters, digits, '_' or '-'";

pub(crate) fn iso(ms: i64) -> String {
    UnixMs::from_millis(ms).to_string()
}

impl std::fmt::Debug for Segments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Segments(***)")
    }
}

impl Segments {
    /// Profiles and audiences over the trail's database; `realtime` is the configured
    /// switch, `currencies` the currency amounts are converted into, `vocabulary` the
    /// names features count (and interests' half-life).
    pub fn new(
        trail: Trail,
        pseudonymizer: Arc<Pseudonymizer>,
        realtime: bool,
        currencies: Option<assent_segmentation::normalize::Currencies>,
        vocabulary: Vocabulary,
    ) -> Segments {
        Segments {
            db: trail.db().clone(),
            trail,
            pseudonymizer,
            vocabulary,
            realtime_default: realtime,
            currencies,
        }
    }

    /// The pseudonyms the profile at `source` of the subject whose raw id is `raw` may be
    /// stored under: the profile it was merged into, else its own (under each key).
    async fn profile_keys(&self, source: &SourceId, raw: &str) -> Result<Vec<Pseudonym>> {
        let all = self.pseudonymizer.all_pseudonyms(raw);
        Ok(
            match storage::identity::merged_into(&self.db, source, &all).await? {
                Some(profile) => vec![profile],
                None => all,
            },
        )
    }

    /// The real-time switch, as every replica reads it.
    pub async fn realtime(&self) -> Result<Realtime> {
        Ok(match storage::settings::get(&self.db, REALTIME).await? {
            Some((value, at)) => Realtime {
                enabled: value == "true",
                set_at: Some(iso(at)),
            },
            None => Realtime {
                enabled: self.realtime_default,
                set_at: None,
            },
        })
    }

    /// Turns real-time segmentation on or off for every replica, without a restart
    /// (audited); the consumer sees it within [`consumer::SWITCH_CHECK`].
    pub async fn set_realtime(&self, enabled: bool, actor: String) -> Result<Realtime> {
        let now = self.trail.now();
        let mut w = self.db.write().await?;
        w.lock_audit_chain().await?;
        storage::settings::put(&mut w, REALTIME, &enabled.to_string(), now).await?;
        let entry = NewEntry {
            kind: audit::Kind::SettingChanged,
            actor,
            subject: None,
            data: serde_json::json!({"name": REALTIME, "value": enabled}),
        };
        self.trail.record(&mut w, entry).await?;
        w.commit().await?;
        Ok(Realtime {
            enabled,
            set_at: Some(now.to_string()),
        })
    }

    /// A write transaction that may decide memberships, with the definitions it sees.
    async fn deciding(&self) -> Result<(WriteTx, Definitions)> {
        let mut w = self.db.write().await?;
        w.lock_audit_chain().await?;
        w.lock(membership::LOCK).await?;
        let definitions = Definitions::load_in(&mut w).await?;
        Ok((w, definitions))
    }

    /// Creates or replaces audience `name` (audited) and decides its members from stored
    /// history in the same transaction. A rule that does not parse is refused with the
    /// JSON path of its fault, as is one reading a computed trait not defined; nothing is
    /// stored then. With `create`, one of that name already there is refused too.
    pub async fn set_audience(
        &self,
        name: &str,
        rule: &Value,
        actor: String,
        create: bool,
    ) -> Result<AudienceSet> {
        if !name_ok(name) {
            return Err(Error::BadRequest(format!(
                "an audience name is {NAME_RULE}"
            )));
        }
        let parsed = Rule::parse(rule).map_err(|e| Error::BadRequest(e.to_string()))?;
        let now = self.trail.now();
        let (mut w, mut definitions) = self.deciding().await?;
        if create && definitions.audiences.iter().any(|(n, _)| n == name) {
            return Err(Error::BadRequest(format!(
                "audience `{name}` exists: PUT /v1/audiences/{name} replaces it"
            )));
        }
        if let Some(missing) = parsed
            .traits()
            .into_iter()
            .find(|t| !definitions.traits.iter().any(|d| d.name == *t))
        {
            return Err(Error::BadRequest(format!(
                "rule: the computed trait `{missing}` is not defined (PUT /v1/traits/{missing})"
            )));
        }
        storage::definitions::put(&mut w, Kind::Audience, name, &rule.to_string(), now).await?;
        definitions.audiences.retain(|(n, _)| n != name);
        definitions.audiences.push((name.to_owned(), parsed));
        let backfill = membership::backfill(
            &mut w,
            &definitions,
            &self.vocabulary,
            Some(name),
            now,
            &|_| {},
        )
        .await?;
        let entry = NewEntry {
            kind: audit::Kind::AudienceSet,
            actor,
            subject: None,
            data: serde_json::json!({"name": name, "rule": rule}),
        };
        self.trail.record(&mut w, entry).await?;
        w.commit().await?;
        Ok(AudienceSet {
            audience: Audience {
                name: name.to_owned(),
                rule: rule.clone(),
                updated_at: now.to_string(),
            },
            backfill,
        })
    }

    /// Deletes audience `name` with its members and their history (audited); `NotFound`
    /// when there is none.
    pub async fn delete_audience(&self, name: &str, actor: String) -> Result<()> {
        let (mut w, _) = self.deciding().await?;
        if !storage::definitions::delete(&mut w, Kind::Audience, name).await? {
            return Err(Error::NotFound);
        }
        storage::audiences::delete_members(&mut w, name).await?;
        let entry = NewEntry {
            kind: audit::Kind::AudienceDeleted,
            actor,
            subject: None,
            data: serde_json::json!({"name": name}),
        };
        self.trail.record(&mut w, entry).await?;
        w.commit().await
    }

    /// Every audience, by name.
    pub async fn audiences(&self) -> Result<Vec<Audience>> {
        storage::definitions::list(&self.db, Kind::Audience)
            .await?
            .into_iter()
            .map(|a| {
                Ok(Audience {
                    rule: serde_json::from_str(&a.json).map_err(|e| {
                        Error::Internal(format!("a stored rule does not parse: {e}"))
                    })?,
                    name: a.name,
                    updated_at: iso(a.updated_at_ms),
                })
            })
            .collect()
    }

    /// Decides every audience's members again from stored history (what the sweep does),
    /// reporting each profile read to `progress`.
    pub async fn backfill(&self, progress: &(dyn Fn(u64) + Send + Sync)) -> Result<Backfilled> {
        let (mut w, definitions) = self.deciding().await?;
        let now = self.trail.now();
        let done =
            membership::backfill(&mut w, &definitions, &self.vocabulary, None, now, progress)
                .await?;
        w.commit().await?;
        Ok(done)
    }

    /// How many profiles there are (for a progress bar).
    pub async fn profile_count(&self) -> Result<u64> {
        storage::profiles::count(&self.db).await
    }

    /// Creates or replaces computed trait `name` (audited): `definition` is a
    /// [`ComputedTrait`] whose `name` is `name`. The audiences are decided again, since a
    /// rule may read it. A definition that does not parse is refused, nothing stored.
    pub async fn set_trait(
        &self,
        name: &str,
        definition: &Value,
        actor: String,
    ) -> Result<TraitDefinition> {
        if !name_ok(name) {
            return Err(Error::BadRequest(format!("a trait name is {NAME_RULE}")));
        }
        let parsed =
            ComputedTrait::parse(definition).map_err(|e| Error::BadRequest(e.to_string()))?;
        if parsed.name != name {
            return Err(Error::BadRequest(format!(
                "computed trait: name: `{}` is not the name in the path, `{name}`",
                parsed.name
            )));
        }
        let now = self.trail.now();
        let (mut w, mut definitions) = self.deciding().await?;
        storage::definitions::put(&mut w, Kind::Trait, name, &definition.to_string(), now).await?;
        definitions.traits.retain(|t| t.name != name);
        definitions.traits.push(parsed);
        if !definitions.audiences.is_empty() {
            membership::backfill(&mut w, &definitions, &self.vocabulary, None, now, &|_| {})
                .await?;
        }
        let entry = NewEntry {
            kind: audit::Kind::TraitSet,
            actor,
            subject: None,
            data: serde_json::json!({"name": name, "definition": definition}),
        };
        self.trail.record(&mut w, entry).await?;
        w.commit().await?;
        Ok(TraitDefinition {
            definition: definition.clone(),
            updated_at: now.to_string(),
        })
    }

    /// Deletes computed trait `name` (audited); `NotFound` when there is none, refused
    /// while an audience's rule reads it.
    pub async fn delete_trait(&self, name: &str, actor: String) -> Result<()> {
        let (mut w, definitions) = self.deciding().await?;
        if let Some((audience, _)) = definitions
            .audiences
            .iter()
            .find(|(_, rule)| rule.traits().contains(&name))
        {
            return Err(Error::BadRequest(format!(
                "the computed trait `{name}` is read by audience `{audience}`"
            )));
        }
        if !storage::definitions::delete(&mut w, Kind::Trait, name).await? {
            return Err(Error::NotFound);
        }
        let entry = NewEntry {
            kind: audit::Kind::TraitDeleted,
            actor,
            subject: None,
            data: serde_json::json!({"name": name}),
        };
        self.trail.record(&mut w, entry).await?;
        w.commit().await
    }

    /// Every computed trait, by name.
    pub async fn traits(&self) -> Result<Vec<TraitDefinition>> {
        storage::definitions::list(&self.db, Kind::Trait)
            .await?
            .into_iter()
            .map(|t| {
                Ok(TraitDefinition {
                    definition: serde_json::from_str(&t.json).map_err(|e| {
                        Error::Internal(format!("a stored trait does not parse: {e}"))
                    })?,
                    updated_at: iso(t.updated_at_ms),
                })
            })
            .collect()
    }

    /// The events (as profiles keep them, oldest first) of the profile at `source` of the
    /// subject whose raw id is `raw`, with the pseudonym it is stored under; None without
    /// one (a subject who did not grant `personalization` has none). What
    /// recommendations read as a subject's interactions.
    pub async fn events_of(
        &self,
        source: &SourceId,
        raw: &str,
    ) -> Result<Option<(Pseudonym, Vec<assent_segmentation::profile::Event>)>> {
        for key in self.profile_keys(source, raw).await? {
            if let Some(stored) =
                storage::profiles::find(&self.db, source, std::slice::from_ref(&key)).await?
            {
                return Ok(Some((key, membership::events_of(&stored)?)));
            }
        }
        Ok(None)
    }

    /// Every profile at `source`, one at a time: its pseudonym and events.
    pub async fn for_each_profile_at(
        &self,
        source: &SourceId,
        mut each: impl FnMut(Pseudonym, Vec<assent_segmentation::profile::Event>) -> Result<()>,
    ) -> Result<()> {
        let mut conn = self.db.pool.acquire().await?;
        storage::profiles::for_each(&mut conn, |at, subject, events| {
            if &at == source {
                each(subject, membership::events_of(&events)?)?;
            }
            Ok(())
        })
        .await
    }

    /// The audiences the profile at `source` of the subject whose raw id is `raw` is in,
    /// as kept by the consumer; None without a profile (a subject who did not grant
    /// `personalization` is in none).
    pub async fn segments_of(
        &self,
        source: &SourceId,
        raw: &str,
    ) -> Result<Option<Vec<Membership>>> {
        let all = self.profile_keys(source, raw).await?;
        if !storage::profiles::exists(&self.db, source, &all).await? {
            return Ok(None);
        }
        self.memberships(source, &all).await.map(Some)
    }

    /// The memberships at `source` of the profile stored under one of `keys`.
    async fn memberships(&self, source: &SourceId, keys: &[Pseudonym]) -> Result<Vec<Membership>> {
        let members = storage::audiences::audiences_of(&self.db, source, keys).await?;
        Ok(members
            .into_iter()
            .map(|m| Membership {
                audience: m.audience,
                since: iso(m.since_ms),
            })
            .collect())
    }

    /// The profile at `source` of the subject whose raw id is `raw` (under any key it may
    /// be stored with): its events, features and computed traits at `now_ms`, and its
    /// audiences.
    pub async fn profile(
        &self,
        source: &SourceId,
        raw: &str,
        now_ms: i64,
    ) -> Result<Option<ProfileView>> {
        let all = self.profile_keys(source, raw).await?;
        let Some(stored) = storage::profiles::find(&self.db, source, &all).await? else {
            return Ok(None);
        };
        let profile = membership::profile_of(&stored)?;
        let definitions = Definitions::parse(
            Vec::new(),
            storage::definitions::list(&self.db, Kind::Trait).await?,
        )?;
        let decided = definitions.decide(&profile, now_ms, &self.vocabulary);
        let segments = self.memberships(source, &all).await?;
        Ok(Some(ProfileView {
            profile,
            features: decided.features,
            traits: decided.traits,
            segments,
        }))
    }

    /// Whether the subject whose raw id is `raw` is in audience `name` at `source`, and
    /// since when: the point lookup flags and experiments use. `NotFound` for an audience
    /// that does not exist.
    pub async fn membership(
        &self,
        name: &str,
        source: &SourceId,
        raw: &str,
    ) -> Result<Option<Membership>> {
        self.require_audience(name).await?;
        let all = self.profile_keys(source, raw).await?;
        Ok(storage::audiences::member(&self.db, name, source, &all)
            .await?
            .map(|m| Membership {
                audience: m.audience,
                since: iso(m.since_ms),
            }))
    }

    async fn require_audience(&self, name: &str) -> Result<()> {
        if storage::definitions::list(&self.db, Kind::Audience)
            .await?
            .iter()
            .any(|a| a.name == name)
        {
            Ok(())
        } else {
            Err(Error::NotFound)
        }
    }

    /// A page of audience `name`'s members at `source`, by pseudonym, after `after`.
    pub async fn members(
        &self,
        name: &str,
        source: &SourceId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Member>> {
        self.require_audience(name).await?;
        let rows =
            storage::audiences::members_page(&self.db, name, source, after.unwrap_or(""), limit)
                .await?;
        let next = (rows.len() == limit as usize)
            .then(|| rows.last().map(|m| m.subject.to_string()))
            .flatten();
        Ok(Page {
            items: rows
                .into_iter()
                .map(|m| Member {
                    subject: m.subject,
                    since: iso(m.since_ms),
                })
                .collect(),
            next,
        })
    }

    /// A page of audience `name`'s entries and exits at `source`, oldest first, after the
    /// cursor `after` (a page's `next`).
    pub async fn changes(
        &self,
        name: &str,
        source: &SourceId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Change>> {
        self.require_audience(name).await?;
        let bad = || Error::BadRequest("after: not a cursor this list gave".into());
        let after = match after {
            None => None,
            Some(cursor) => {
                let mut parts = cursor.splitn(3, '.');
                let at: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
                let entered = match parts.next() {
                    Some("1") => true,
                    Some("0") => false,
                    _ => return Err(bad()),
                };
                Some((at, parts.next().ok_or_else(bad)?, entered))
            }
        };
        let rows = storage::audiences::changes_page(&self.db, name, source, after, limit).await?;
        let next = (rows.len() == limit as usize)
            .then(|| {
                rows.last()
                    .map(|c| format!("{}.{}.{}", c.at_ms, u8::from(c.entered), c.subject))
            })
            .flatten();
        Ok(Page {
            items: rows
                .into_iter()
                .map(|c| Change {
                    subject: c.subject,
                    change: if c.entered { "entered" } else { "exited" },
                    at: iso(c.at_ms),
                })
                .collect(),
            next,
        })
    }
}
