//! Sources as the rest of the collector sees them, read from `sources` at start and
//! refreshed periodically: the browser origins each allows, and whose consent counts for
//! it. Consent is given to one controller for one site, so a source's consent scope is the
//! source alone, or the sources of its `consent_group` (sites that show one consent
//! notice). Consent records stored by any source outside the scope never count for it.
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, RwLock,
    },
};

use crate::{
    audit::NewEntry,
    error::{Error, Result},
    ids::SourceId,
    keys::Keys,
    storage::{self, Db},
};
use serde_json::json;

/// Whose consent records count for a source: an id (the group's name, or the source's
/// own id) and the sources whose records are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentScope {
    /// `group:<name>` or the source id: what the consent cache files records under.
    pub id: String,
    /// The sources of the scope, sorted.
    pub members: Vec<SourceId>,
}

/// What the collector knows of one source.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    pub allowed_origins: Vec<String>,
    pub scope: Arc<ConsentScope>,
    /// Whether Segment consent stamps on this source's events count (off by default).
    pub trust_consent_stamps: bool,
}

/// Every source, by id, and how many times consent scopes changed since the start.
#[derive(Debug, Default)]
pub struct Sources {
    by_id: RwLock<HashMap<SourceId, Arc<SourceInfo>>>,
    scope_changes: AtomicU64,
}

impl Sources {
    /// Reads the sources table again; returns whether any consent scope changed (callers
    /// then drop what they cached per scope).
    pub async fn refresh(&self, db: &Db) -> Result<bool> {
        let listed: Vec<_> = storage::keys::list_sources(db)
            .await?
            .into_iter()
            .map(|r| {
                (
                    r.id,
                    r.allowed_origins,
                    r.consent_group,
                    r.trust_consent_stamps,
                )
            })
            .collect();
        let mut groups: HashMap<String, Vec<SourceId>> = HashMap::new();
        for (id, _, group, _) in &listed {
            if let Some(g) = group {
                groups.entry(g.clone()).or_default().push(id.clone());
            }
        }
        let mut scopes: HashMap<String, Arc<ConsentScope>> = HashMap::new();
        for (name, mut members) in groups {
            members.sort();
            let scope = Arc::new(ConsentScope {
                id: format!("group:{name}"),
                members,
            });
            scopes.insert(name, scope);
        }
        let map: HashMap<SourceId, Arc<SourceInfo>> = listed
            .into_iter()
            .map(|(id, origins, group, trust)| {
                let scope = match group.as_ref().and_then(|g| scopes.get(g)) {
                    Some(s) => s.clone(),
                    None => Arc::new(ConsentScope {
                        id: id.to_string(),
                        members: vec![id.clone()],
                    }),
                };
                let info = SourceInfo {
                    allowed_origins: origins
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect(),
                    scope,
                    trust_consent_stamps: trust,
                };
                (id, Arc::new(info))
            })
            .collect();
        let mut current = self.by_id.write().expect("sources lock");
        let changed = current.len() != map.len()
            || map
                .iter()
                .any(|(id, info)| current.get(id).is_none_or(|c| c.scope != info.scope));
        *current = map;
        if changed {
            self.scope_changes.fetch_add(1, Ordering::SeqCst);
        }
        Ok(changed)
    }

    /// How many refreshes changed a consent scope: what was cached per scope before the
    /// count moved may count records of the wrong sources.
    pub fn scope_changes(&self) -> u64 {
        self.scope_changes.load(Ordering::SeqCst)
    }

    /// The source's info; a source made since the last refresh (by another replica) is
    /// its own scope, trusts no stamps and allows no origin until the next refresh.
    pub fn get(&self, source_id: &SourceId) -> Arc<SourceInfo> {
        self.by_id
            .read()
            .expect("sources lock")
            .get(source_id)
            .cloned()
            .unwrap_or_else(|| {
                Arc::new(SourceInfo {
                    allowed_origins: Vec::new(),
                    scope: Arc::new(ConsentScope {
                        id: source_id.to_string(),
                        members: vec![source_id.clone()],
                    }),
                    trust_consent_stamps: false,
                })
            })
    }

    /// Whether any source allows `origin` (for CORS preflights, which carry no key).
    pub fn origin_allowed_anywhere(&self, origin: &str) -> bool {
        self.by_id
            .read()
            .expect("sources lock")
            .values()
            .flat_map(|s| &s.allowed_origins)
            .any(|o| o == "*" || o == origin)
    }

    /// Whether `source_id` allows `origin`.
    pub fn origin_allowed(&self, source_id: &SourceId, origin: &str) -> bool {
        self.by_id
            .read()
            .expect("sources lock")
            .get(source_id)
            .is_some_and(|s| s.allowed_origins.iter().any(|o| o == "*" || o == origin))
    }
}

/// What `sources set` changes; `None` leaves a setting as it is.
#[derive(Debug, Default)]
pub struct SourceSettings {
    /// `Some(None)` takes the source out of its group.
    pub consent_group: Option<Option<String>>,
    pub trust_consent_stamps: Option<bool>,
}

fn group_name_ok(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Changes a source's consent settings (audited). A change of consent group changes whose
/// records count for the source: every process drops its cached consent when it sees it.
pub async fn set(keys: &Keys, name: &str, s: SourceSettings, actor: &str) -> Result<()> {
    if let Some(Some(g)) = &s.consent_group {
        if !group_name_ok(g) {
            return Err(Error::Config(
                "a consent group is 1-64 letters, digits, '-', '_' or '.'".into(),
            ));
        }
    }
    let mut w = keys.db().write().await?;
    w.lock_audit_chain().await?;
    let id = storage::keys::source_id_by_name(&mut w, name)
        .await?
        .ok_or(Error::NotFound)?;
    if let Some(group) = &s.consent_group {
        storage::keys::set_consent_group(&mut w, &id, group.as_deref()).await?;
    }
    if let Some(trust) = s.trust_consent_stamps {
        storage::keys::set_trust_consent_stamps(&mut w, &id, trust).await?;
    }
    let entry = NewEntry {
        kind: crate::audit::Kind::SourceConsentSettings,
        actor: actor.to_owned(),
        subject: None,
        data: json!({"sourceId": id, "consentGroup": s.consent_group, "trustConsentStamps": s.trust_consent_stamps}),
    };
    keys.trail.record(&mut w, entry).await?;
    w.commit().await?;
    keys.refresh_sources().await
}
