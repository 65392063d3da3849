//! Model versions of every kind — segmentations and recommenders — kept the same way: a
//! named series of trained versions, one of them `active`. A new version becomes active
//! when there is none or it is not worse than the active one (the caller's comparison);
//! otherwise it stays a `candidate`, which can be promoted by hand; the one replaced is
//! `retired`; rollback brings back the version active before. Every change is audited.
use serde_json::json;

use crate::{
    audit::{self, NewEntry, Trail},
    error::{Error, Result},
    storage::{
        self,
        models::{Registry, StoredModel},
        Db,
    },
};

/// One kind of model versions: where they are stored and how the audit trail names them.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub registry: Registry,
    pub audit: audit::Kind,
    /// What one is called in errors and in the audit entry's data.
    pub noun: &'static str,
}

/// Segmentation models.
pub const SEGMENTATIONS: Family = Family {
    registry: Registry::Segments,
    audit: audit::Kind::SegmentModel,
    noun: "segmentation",
};

/// Recommenders.
pub const RECOMMENDERS: Family = Family {
    registry: Registry::Recommendations,
    audit: audit::Kind::RecommendationModel,
    noun: "recommender",
};

/// Stores `new` as the next version of its name (audited): active if there is no active
/// version or `not_worse(active)` says so, the active one then retired; a candidate
/// otherwise. Returns it as stored.
pub async fn store(
    db: &Db,
    trail: &Trail,
    family: Family,
    mut new: StoredModel,
    not_worse: impl FnOnce(&StoredModel) -> bool,
    actor: String,
) -> Result<StoredModel> {
    let now = trail.now();
    let mut w = db.write().await?;
    w.lock_audit_chain().await?;
    let versions = storage::models::versions_in(&mut w, family.registry, &new.name).await?;
    let active = versions.iter().find(|v| v.status == "active");
    let better = active.is_none_or(not_worse);
    if let (true, Some(a)) = (better, active) {
        storage::models::set_status(
            &mut w,
            family.registry,
            &new.name,
            a.version,
            "retired",
            None,
        )
        .await?;
    }
    new.status = if better { "active" } else { "candidate" }.into();
    new.trained_at_ms = now.millis();
    new.promoted_at_ms = better.then_some(now.millis());
    new.version = storage::models::insert(&mut w, family.registry, &new).await?;
    let entry = NewEntry {
        kind: family.audit,
        actor,
        subject: None,
        data: json!({family.noun: new.name, "version": new.version, "action": "trained",
                     "status": new.status}),
    };
    trail.record(&mut w, entry).await?;
    w.commit().await?;
    Ok(new)
}

/// Makes `version` of `name` the active one, or with None brings back the version that
/// was active before the active one (audited); the one replaced is retired.
pub async fn activate(
    db: &Db,
    trail: &Trail,
    family: Family,
    name: &str,
    version: Option<i64>,
    actor: String,
) -> Result<StoredModel> {
    let noun = family.noun;
    let now = trail.now();
    let mut w = db.write().await?;
    w.lock_audit_chain().await?;
    let versions = storage::models::versions_in(&mut w, family.registry, name).await?;
    if versions.is_empty() {
        return Err(Error::NotFound);
    }
    let active = versions.iter().find(|v| v.status == "active");
    let chosen = match version {
        Some(n) => versions
            .iter()
            .find(|v| v.version == n)
            .ok_or_else(|| Error::BadRequest(format!("{noun} `{name}` has no version {n}")))?,
        // The one promoted last before the active one.
        None => versions
            .iter()
            .filter(|v| v.status == "retired" && v.promoted_at_ms.is_some())
            .max_by_key(|v| v.promoted_at_ms)
            .ok_or_else(|| {
                Error::BadRequest(format!(
                    "{noun} `{name}` has no earlier active version to go back to"
                ))
            })?,
    };
    if active.is_some_and(|a| a.version == chosen.version) {
        return Err(Error::BadRequest(format!(
            "version {} of `{name}` is already active",
            chosen.version
        )));
    }
    if let Some(a) = active {
        storage::models::set_status(&mut w, family.registry, name, a.version, "retired", None)
            .await?;
    }
    storage::models::set_status(
        &mut w,
        family.registry,
        name,
        chosen.version,
        "active",
        Some(now.millis()),
    )
    .await?;
    let action = if version.is_some() {
        "promoted"
    } else {
        "rolled_back"
    };
    let entry = NewEntry {
        kind: family.audit,
        actor,
        subject: None,
        data: json!({noun: name, "version": chosen.version, "action": action,
                     "replaced": active.map(|a| a.version)}),
    };
    trail.record(&mut w, entry).await?;
    w.commit().await?;
    let mut done = chosen.clone();
    done.status = "active".into();
    done.promoted_at_ms = Some(now.millis());
    Ok(done)
}
