//! Sources as the rest of the collector sees them, read from `sources` at start and
//! refreshed periodically: the browser origins each allows, and whose consent counts for
//! it. Consent is given to one controller for one site, so a source's consent scope is the
//! source alone, or the sources of its `consent_group` (sites that show one consent
//! notice). Consent records stored by any source outside the scope never count for it.
use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use serde_json::json;
use sqlx::Row;

use crate::{
    audit::NewEntry,
    error::{Error, Result},
    storage::Db,
    AppState,
};

/// Whose consent records count for a source: an id (the group's name, or the source's
/// own id) and the sources whose records are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentScope {
    /// `group:<name>` or the source id: what the consent cache files records under.
    pub id: String,
    /// The sources of the scope, sorted.
    pub members: Vec<String>,
}

/// What the collector knows of one source.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    pub allowed_origins: Vec<String>,
    pub scope: Arc<ConsentScope>,
    /// Whether Segment consent stamps on this source's events count (off by default).
    pub trust_consent_stamps: bool,
}

/// Every source, by id.
#[derive(Debug, Default)]
pub struct Sources(RwLock<HashMap<String, Arc<SourceInfo>>>);

impl Sources {
    /// Reads the sources table again; returns whether any consent scope changed (callers
    /// then drop what they cached per scope).
    pub async fn refresh(&self, db: &Db) -> Result<bool> {
        let rows = sqlx::query(
            "SELECT id, allowed_origins, consent_group, trust_consent_stamps FROM sources",
        )
        .fetch_all(&db.pool)
        .await?;
        let mut listed = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get(0)?;
            let origins: String = r.try_get(1)?;
            let group: Option<String> = r.try_get(2)?;
            let trust: i64 = r.try_get(3)?;
            listed.push((id, origins, group, trust != 0));
        }
        let mut groups: HashMap<String, Vec<String>> = HashMap::new();
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
        let map: HashMap<String, Arc<SourceInfo>> = listed
            .into_iter()
            .map(|(id, origins, group, trust)| {
                let scope = match group.as_ref().and_then(|g| scopes.get(g)) {
                    Some(s) => s.clone(),
                    None => Arc::new(ConsentScope {
                        id: id.clone(),
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
        let mut current = self.0.write().expect("sources lock");
        let changed = current.len() != map.len()
            || map
                .iter()
                .any(|(id, info)| current.get(id).is_none_or(|c| c.scope != info.scope));
        *current = map;
        Ok(changed)
    }

    /// The source's info; a source made since the last refresh (by another replica) is
    /// its own scope, trusts no stamps and allows no origin until the next refresh.
    pub fn get(&self, source_id: &str) -> Arc<SourceInfo> {
        self.0
            .read()
            .expect("sources lock")
            .get(source_id)
            .cloned()
            .unwrap_or_else(|| {
                Arc::new(SourceInfo {
                    allowed_origins: Vec::new(),
                    scope: Arc::new(ConsentScope {
                        id: source_id.to_owned(),
                        members: vec![source_id.to_owned()],
                    }),
                    trust_consent_stamps: false,
                })
            })
    }

    /// Whether any source allows `origin` (for CORS preflights, which carry no key).
    pub fn origin_allowed_anywhere(&self, origin: &str) -> bool {
        self.0
            .read()
            .expect("sources lock")
            .values()
            .flat_map(|s| &s.allowed_origins)
            .any(|o| o == "*" || o == origin)
    }

    /// Whether `source_id` allows `origin`.
    pub fn origin_allowed(&self, source_id: &str, origin: &str) -> bool {
        self.0
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
pub async fn set(state: &AppState, name: &str, s: SourceSettings, actor: &str) -> Result<()> {
    if let Some(Some(g)) = &s.consent_group {
        if !group_name_ok(g) {
            return Err(Error::Config(
                "a consent group is 1-64 letters, digits, '-', '_' or '.'".into(),
            ));
        }
    }
    let mut w = state.db.write().await?;
    w.lock_audit_chain().await?;
    let id: String = sqlx::query("SELECT id FROM sources WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *w.tx)
        .await?
        .ok_or(Error::NotFound)?
        .try_get(0)?;
    if let Some(group) = &s.consent_group {
        sqlx::query("UPDATE sources SET consent_group = $1 WHERE id = $2")
            .bind(group.as_deref())
            .bind(&id)
            .execute(&mut *w.tx)
            .await?;
    }
    if let Some(trust) = s.trust_consent_stamps {
        sqlx::query("UPDATE sources SET trust_consent_stamps = $1 WHERE id = $2")
            .bind(i64::from(trust))
            .bind(&id)
            .execute(&mut *w.tx)
            .await?;
    }
    let entry = NewEntry {
        kind: crate::audit::Kind::SourceConsentSettings,
        actor: actor.to_owned(),
        subject: None,
        data: json!({"sourceId": id, "consentGroup": s.consent_group, "trustConsentStamps": s.trust_consent_stamps}),
    };
    state.audit(&mut w, entry).await?;
    w.commit().await?;
    state.refresh_sources().await
}
