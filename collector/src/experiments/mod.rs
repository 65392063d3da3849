//! Content, flags and experiments: block types, content slots, feature flags and A/B
//! experiments (each definition kept version by version, [`definitions`]), what a
//! subject is served (consent first; sticky assignment; an exposure logged only when a
//! variant is served), the metrics counted from the feed ([`metrics`]) and results.
pub mod definitions;
pub mod metrics;
mod results;

pub use results::table;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use assent_experiments::{
    assign::{assign, Assigned},
    blocks::BlockTypeDefinition,
    flags::{Evaluation, FlagDefinition},
    targeting::Context,
};
use serde::Serialize;
use serde_json::{json, Value};

use crate::{
    clock::Clock,
    error::{Error, Result},
    ids::{SourceId, UnixMs},
    keys::sources::ConsentScope,
    pseudonym::Pseudonymizer,
    segments::{name_ok, Segments, NAME_RULE},
    storage::{self, experiments::StoredDefinition, Db},
};

use definitions::{Catalogue, SlotDefinition};
pub use definitions::{Kind, REALTIME_FLAG};

/// How long a server trusts the definitions it holds before asking the database again
/// (another replica may have changed them).
const RECHECK: Duration = Duration::from_secs(1);

/// The pre-exposure window of CUPED's covariate, and how much of a subject's history is
/// read for it (pages of events).
const PRE_PERIOD_MS: i64 = 30 * 24 * 3600 * 1000;
const PRE_PAGE: usize = 500;
const PRE_PAGES: usize = 20;

/// What a request says of where it comes from, beyond the subject.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub device: Option<String>,
    pub os: Option<String>,
    pub browser: Option<String>,
    pub country: Option<String>,
    pub utc_offset_minutes: Option<i32>,
    pub app_version: Option<semver::Version>,
}

/// One version of a definition, as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    pub name: String,
    pub version: i64,
    pub definition: Option<Value>,
    pub actor: String,
    pub at: String,
    pub changes: Vec<String>,
}

fn version_of(d: StoredDefinition) -> Version {
    Version {
        name: d.name,
        version: d.version,
        definition: d.body.and_then(|b| serde_json::from_str(&b).ok()),
        actor: d.actor,
        at: UnixMs::from_millis(d.at_ms).to_string(),
        changes: serde_json::from_str(&d.changes).unwrap_or_default(),
    }
}

/// Who asks: the source, its consent scope, the subject's raw id (may be empty) and the
/// request's context.
#[derive(Clone, Copy)]
struct Who<'a> {
    source: &'a SourceId,
    scope: &'a ConsentScope,
    raw: &'a str,
    request: &'a RequestContext,
}

/// Why a subject got the variant they got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    /// Their variant of a running experiment (an exposure).
    Experiment,
    /// A targeting rule matched.
    Targeting,
    /// No rule matched.
    Default,
    /// No `personalization` consent, or no profile yet: the fallback, never a
    /// personalized choice.
    Fallback,
}

/// The content served for a slot.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Served {
    pub slot: String,
    pub block_type: String,
    pub variant: String,
    pub reason: Choice,
    pub content: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    /// Whether the answer depends on who asked (not cacheable by others).
    #[serde(skip)]
    pub personal: bool,
}

/// The definitions in force as last read: when, the database's stamps of each kind.
type Held = (Instant, [(i64, i64); 4], Arc<Catalogue>);

pub struct Experiments {
    db: Db,
    pseudonymizer: Arc<Pseudonymizer>,
    segments: Arc<Segments>,
    clock: Arc<dyn Clock>,
    held: Mutex<Option<Held>>,
}

impl std::fmt::Debug for Experiments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Experiments").finish_non_exhaustive()
    }
}

const KINDS: [Kind; 4] = [Kind::BlockType, Kind::Slot, Kind::Flag, Kind::Experiment];

impl Experiments {
    pub fn new(
        db: Db,
        pseudonymizer: Arc<Pseudonymizer>,
        segments: Arc<Segments>,
        clock: Arc<dyn Clock>,
    ) -> Experiments {
        Experiments {
            db,
            pseudonymizer,
            segments,
            clock,
            held: Mutex::new(None),
        }
    }

    /// Everything in force (read again after [`RECHECK`] when the database changed).
    pub async fn catalogue(&self) -> Result<Arc<Catalogue>> {
        if let Some((at, _, c)) = &*self.held.lock().expect("not poisoned") {
            if at.elapsed() < RECHECK {
                return Ok(c.clone());
            }
        }
        let mut stamps = [(0, 0); 4];
        for (i, k) in KINDS.iter().enumerate() {
            stamps[i] = storage::experiments::stamp(&self.db, k.as_str()).await?;
        }
        if let Some((at, s, c)) = &mut *self.held.lock().expect("not poisoned") {
            if *s == stamps {
                *at = Instant::now();
                return Ok(c.clone());
            }
        }
        let mut c = Catalogue::default();
        let read = |body: &Option<String>| -> Option<Value> {
            body.as_deref().and_then(|b| serde_json::from_str(b).ok())
        };
        for d in storage::experiments::current(&self.db, Kind::BlockType.as_str()).await? {
            if let Some(t) =
                read(&d.body).and_then(|v| serde_json::from_value::<BlockTypeDefinition>(v).ok())
            {
                c.block_types.insert(d.name, t);
            }
        }
        for d in storage::experiments::current(&self.db, Kind::Slot.as_str()).await? {
            if let Some(s) =
                read(&d.body).and_then(|v| serde_json::from_value::<SlotDefinition>(v).ok())
            {
                c.slots.insert(d.name, s);
            }
        }
        for s in c.slots.values() {
            if !c.compiled.contains_key(&s.block_type) {
                if let Some(t) = c.block_type(&s.block_type).and_then(|d| d.check().ok()) {
                    c.compiled.insert(s.block_type.clone(), t);
                }
            }
        }
        for d in storage::experiments::current(&self.db, Kind::Flag.as_str()).await? {
            let flag = read(&d.body)
                .and_then(|v| serde_json::from_value::<FlagDefinition>(v).ok())
                .and_then(|f| f.check(&d.name).ok());
            if let Some(f) = flag {
                c.flags.insert(d.name, f);
            }
        }
        for d in storage::experiments::current(&self.db, Kind::Experiment.as_str()).await? {
            if let Some(e) = read(&d.body).and_then(|v| c.experiment(&d.name, &v).ok()) {
                c.experiments.insert(d.name, e);
            }
        }
        let c = Arc::new(c);
        *self.held.lock().expect("not poisoned") = Some((Instant::now(), stamps, c.clone()));
        Ok(c)
    }

    fn forget(&self) {
        *self.held.lock().expect("not poisoned") = None;
    }

    /// Stores a new version of definition `name` of `kind`, checked against everything
    /// in force; nothing is stored when it does not hold.
    pub async fn put(
        &self,
        kind: Kind,
        name: &str,
        body: &Value,
        actor: String,
    ) -> Result<Version> {
        if !name_ok(name) {
            return Err(Error::BadRequest(format!(
                "{}: the name must be {NAME_RULE}",
                kind.as_str()
            )));
        }
        let audiences: Vec<String> = self
            .segments
            .audiences()
            .await?
            .into_iter()
            .map(|a| a.name)
            .collect();
        self.catalogue()
            .await?
            .check(kind, name, body, (&audiences, self.clock.now_ms()))?;
        self.write(kind, name, Some(body), actor).await
    }

    async fn write(
        &self,
        kind: Kind,
        name: &str,
        body: Option<&Value>,
        actor: String,
    ) -> Result<Version> {
        let mut w = self.db.write().await?;
        let before = storage::experiments::latest_in(&mut w, kind.as_str(), name).await?;
        let before_body: Option<Value> = before
            .as_ref()
            .and_then(|b| b.body.as_deref())
            .and_then(|b| serde_json::from_str(b).ok());
        let d = StoredDefinition {
            name: name.to_owned(),
            version: before.as_ref().map_or(1, |b| b.version + 1),
            body: body.map(Value::to_string),
            actor,
            at_ms: self.clock.now_ms(),
            changes: json!(definitions::changes(before_body.as_ref(), body)).to_string(),
        };
        storage::experiments::insert(&mut w, kind.as_str(), &d).await?;
        w.commit().await?;
        self.forget();
        Ok(version_of(d))
    }

    /// Deletes definition `name` (a version without a body; the history stays). A slot
    /// or flag an experiment runs on, or a block type a slot uses, is refused.
    pub async fn delete(&self, kind: Kind, name: &str, actor: String) -> Result<Version> {
        let c = self.catalogue().await?;
        let exists = match kind {
            Kind::BlockType => c.block_types.contains_key(name),
            Kind::Slot => c.slots.contains_key(name),
            Kind::Flag => c.flags.contains_key(name),
            Kind::Experiment => c.experiments.contains_key(name),
        };
        if !exists {
            return Err(Error::NotFound);
        }
        let used_by = match kind {
            Kind::BlockType => c
                .slots
                .iter()
                .find(|(_, s)| s.block_type == name)
                .map(|(n, _)| format!("slot {n:?}")),
            Kind::Slot => c
                .experiments
                .iter()
                .find(|(_, e)| e.def.slot.as_deref() == Some(name))
                .map(|(n, _)| format!("experiment {n:?}")),
            Kind::Flag => c
                .experiments
                .iter()
                .find(|(_, e)| e.def.flag.as_deref() == Some(name))
                .map(|(n, _)| format!("experiment {n:?}")),
            Kind::Experiment => None,
        };
        if let Some(user) = used_by {
            return Err(Error::BadRequest(format!(
                "{} {name:?} is used by {user}",
                kind.as_str()
            )));
        }
        self.write(kind, name, None, actor).await
    }

    /// Every version of definition `name`, oldest first.
    pub async fn history(&self, kind: Kind, name: &str) -> Result<Vec<Version>> {
        let h = storage::experiments::history(&self.db, kind.as_str(), name).await?;
        if h.is_empty() {
            return Err(Error::NotFound);
        }
        Ok(h.into_iter().map(version_of).collect())
    }

    /// The definitions of `kind` in force.
    pub async fn list(&self, kind: Kind) -> Result<Vec<Version>> {
        Ok(storage::experiments::current(&self.db, kind.as_str())
            .await?
            .into_iter()
            .map(version_of)
            .collect())
    }

    /// The definition `name` in force.
    pub async fn get(&self, kind: Kind, name: &str) -> Result<Version> {
        match storage::experiments::latest(&self.db, kind.as_str(), name).await? {
            Some(d) if d.body.is_some() => Ok(version_of(d)),
            _ => Err(Error::NotFound),
        }
    }

    /// Puts version `version` of `name` back in force, as a new version (checked as a
    /// new definition would be).
    pub async fn rollback(
        &self,
        kind: Kind,
        name: &str,
        version: i64,
        actor: String,
    ) -> Result<Version> {
        let old = self
            .history(kind, name)
            .await?
            .into_iter()
            .find(|v| v.version == version)
            .ok_or(Error::NotFound)?;
        let body = old
            .definition
            .ok_or_else(|| Error::BadRequest(format!("version {version} is a deletion")))?;
        self.put(kind, name, &body, actor).await
    }

    /// The subject's segments, when they granted `personalization` and have a profile.
    async fn personal(
        &self,
        source: &SourceId,
        scope: &ConsentScope,
        raw: &str,
    ) -> Result<Option<Vec<String>>> {
        if raw.is_empty()
            || !crate::consent::grants(&self.db, &self.pseudonymizer, scope, raw, "personalization")
                .await?
        {
            return Ok(None);
        }
        Ok(self
            .segments
            .segments_of(source, raw)
            .await?
            .map(|m| m.into_iter().map(|m| m.audience).collect()))
    }

    /// The experiment running on a slot or flag, and the subject's variant in it: only
    /// for a subject who granted `analytics` (the others are not counted). Stored at
    /// once (sticky), with the exposure when `exposed`.
    async fn variant_in(
        &self,
        c: &Catalogue,
        target: (&str, &str),
        source: &SourceId,
        scope: &ConsentScope,
        raw: &str,
        exposed: bool,
    ) -> Result<Option<(String, String)>> {
        let now = self.clock.now_ms();
        let Some(e) = c.experiments.values().find(|e| {
            e.running(now)
                && match target.0 {
                    "slot" => e.def.slot.as_deref() == Some(target.1),
                    "recommender" => e.def.recommender.as_deref() == Some(target.1),
                    _ => e.def.flag.as_deref() == Some(target.1),
                }
        }) else {
            return Ok(None);
        };
        if raw.is_empty()
            || !crate::consent::grants(&self.db, &self.pseudonymizer, scope, raw, "analytics")
                .await?
        {
            return Ok(None);
        }
        let all = self.pseudonymizer.all_pseudonyms(raw);
        let current = self.pseudonymizer.pseudonym(raw);
        let stored = storage::experiments::assignment(&self.db, &e.name, source, &all).await?;
        let assigned = assign(
            &e.seed,
            &e.split,
            e.def.layer.as_ref(),
            current.as_str(),
            stored.as_ref().map(|s| s.variant as usize),
        );
        let Some(v) = assigned.variant() else {
            return Ok(None);
        };
        let exposed_at = if exposed { Some(now) } else { None };
        let fresh = matches!(assigned, Assigned::New(_));
        // Moved to the current pseudonym, so events after a key rotation still count.
        if let Some(s) = stored.as_ref().filter(|s| s.subject != current) {
            storage::experiments::rekey(&self.db, &e.name, source, &s.subject, &current).await?;
        }
        let unexposed = exposed && stored.as_ref().is_some_and(|s| s.exposed_at_ms.is_none());
        if fresh || unexposed {
            let at = stored.as_ref().and_then(|s| s.exposed_at_ms).or(exposed_at);
            storage::experiments::assign(&self.db, &e.name, source, &current, v as i64, at, now)
                .await?;
            if exposed && (fresh || unexposed) {
                for (metric, pre) in self.pre_values(e, source, &all, now).await? {
                    storage::experiments::set_pre_value(
                        &self.db, &e.name, source, &current, &metric, pre, now,
                    )
                    .await?;
                }
            }
        }
        Ok(Some((e.name.clone(), e.def.variants[v].clone())))
    }

    /// Each metric of `e` over the [`PRE_PERIOD_MS`] before `exposed_at`, from the
    /// subject's stored events at `source` (CUPED's covariate; a rate counts whether it
    /// happened).
    async fn pre_values(
        &self,
        e: &definitions::Experiment,
        source: &SourceId,
        all: &[crate::ids::Pseudonym],
        exposed_at: i64,
    ) -> Result<Vec<(String, f64)>> {
        let mut values: Vec<(String, f64)> = e.metrics().map(|m| (m.name.clone(), 0.0)).collect();
        let mut after = (exposed_at - PRE_PERIOD_MS, String::new(), String::new());
        'pages: for _ in 0..PRE_PAGES {
            let page =
                storage::subjects::events_after(&self.db, all, after.clone(), PRE_PAGE).await?;
            for ev in &page {
                if ev.timestamp_ms >= exposed_at {
                    break 'pages;
                }
                if ev.source_id != source.as_str() {
                    continue;
                }
                let payload: Value = serde_json::from_str(&ev.payload).unwrap_or(Value::Null);
                for (m, (_, v)) in e.metrics().zip(values.iter_mut()) {
                    if payload["event"].as_str() != Some(m.event.as_str()) {
                        continue;
                    }
                    *v += match (m.kind.is_rate(), &m.property) {
                        (true, _) => 1.0,
                        (false, Some(p)) => payload["properties"][p]
                            .as_f64()
                            .filter(|x| x.is_finite())
                            .unwrap_or(0.0),
                        (false, None) => 0.0,
                    };
                }
            }
            match page.last() {
                Some(last) if page.len() == PRE_PAGE => {
                    after = (
                        last.timestamp_ms,
                        last.source_id.clone(),
                        last.message_id.clone(),
                    )
                }
                _ => break,
            }
        }
        for (m, (_, v)) in e.metrics().zip(values.iter_mut()) {
            if m.kind.is_rate() {
                *v = v.min(1.0);
            }
        }
        Ok(values)
    }

    fn context<'a>(
        &self,
        subject: &'a str,
        segments: &'a [String],
        r: &'a RequestContext,
    ) -> Context<'a> {
        Context {
            subject,
            segments,
            device: r.device.as_deref(),
            os: r.os.as_deref(),
            browser: r.browser.as_deref(),
            country: r.country.as_deref(),
            app_version: r.app_version.as_ref(),
            now_ms: self.clock.now_ms(),
            utc_offset_minutes: r.utc_offset_minutes,
        }
    }

    /// The variant of `slot` for the subject whose raw id is `raw` (may be empty).
    pub async fn content(
        &self,
        source: &SourceId,
        scope: &ConsentScope,
        raw: &str,
        slot: &str,
        request: &RequestContext,
    ) -> Result<Served> {
        let c = self.catalogue().await?;
        let s = c.slots.get(slot).ok_or(Error::NotFound)?;
        let (variant, reason, experiment) = match self
            .variant_in(&c, ("slot", slot), source, scope, raw, true)
            .await?
        {
            Some((e, v)) => (v, Choice::Experiment, Some(e)),
            None => match self.personal(source, scope, raw).await? {
                Some(segments) => {
                    let subject = self.pseudonymizer.pseudonym(raw);
                    let ctx = self.context(subject.as_str(), &segments, request);
                    match s.rules.iter().find(|r| r.when.matches(&ctx, slot)) {
                        Some(r) => (r.variant.clone(), Choice::Targeting, None),
                        None => (s.default.clone(), Choice::Default, None),
                    }
                }
                None => (
                    s.fallback.clone().unwrap_or_else(|| s.default.clone()),
                    Choice::Fallback,
                    None,
                ),
            },
        };
        let content = s.variants.get(&variant).cloned().unwrap_or(Value::Null);
        let html = c
            .compiled
            .get(&s.block_type)
            .map(|t| t.render(&content))
            .transpose()
            .map_err(|e| Error::Internal(format!("slot {slot:?}: {e}")))?
            .flatten();
        Ok(Served {
            slot: slot.to_owned(),
            block_type: s.block_type.clone(),
            personal: reason != Choice::Fallback,
            variant,
            reason,
            content,
            html,
            experiment,
        })
    }

    /// Every flag for the subject whose raw id is `raw` (may be empty), as OpenFeature
    /// resolution details; an experiment's flag gives the subject's variant (stored, not
    /// an exposure: [`Experiments::flag`] is). The subject's segments are read once.
    pub async fn flags(
        &self,
        subject: (&SourceId, &ConsentScope, &str),
        request: &RequestContext,
    ) -> Result<Value> {
        let c = self.catalogue().await?;
        let (who, segments) = self.who(subject, request).await?;
        let mut out = serde_json::Map::new();
        for key in c.flags.keys() {
            let details = self.evaluate(&c, &who, &segments, key, None, false).await?;
            out.insert(key.clone(), details);
        }
        Ok(Value::Object(out))
    }

    /// Flag `key` for the subject, with the caller's default; an exposure when an
    /// experiment runs on it.
    pub async fn flag(
        &self,
        subject: (&SourceId, &ConsentScope, &str),
        key: &str,
        request: &RequestContext,
        default: Option<Value>,
    ) -> Result<Value> {
        let c = self.catalogue().await?;
        if !c.flags.contains_key(key) {
            return Ok(json!({"value": default, "reason": "ERROR", "errorCode": "FLAG_NOT_FOUND"}));
        }
        let (who, segments) = self.who(subject, request).await?;
        self.evaluate(&c, &who, &segments, key, default, true).await
    }

    /// The subject a flag is evaluated for, and their segments when they may be
    /// personalized.
    async fn who<'a>(
        &self,
        (source, scope, raw): (&'a SourceId, &'a ConsentScope, &'a str),
        request: &'a RequestContext,
    ) -> Result<(Who<'a>, Option<Vec<String>>)> {
        let segments = self.personal(source, scope, raw).await?;
        let who = Who {
            source,
            scope,
            raw,
            request,
        };
        Ok((who, segments))
    }

    async fn evaluate(
        &self,
        c: &Catalogue,
        who: &Who<'_>,
        segments: &Option<Vec<String>>,
        key: &str,
        default: Option<Value>,
        exposed: bool,
    ) -> Result<Value> {
        let Who {
            source,
            scope,
            raw,
            request,
        } = *who;
        let f = &c.flags[key];
        if let Some((e, v)) = self
            .variant_in(c, ("flag", key), source, scope, raw, exposed)
            .await?
        {
            return Ok(
                json!({"value": f.value_of(&v), "variant": v, "reason": "SPLIT", "experiment": e}),
            );
        }
        let subject = if raw.is_empty() {
            None
        } else {
            Some(self.pseudonymizer.pseudonym(raw))
        };
        let none = Vec::new();
        // Without personalization, rules see no segments (the rest of the context is the
        // request's, not a profile's).
        let ctx = self.context(
            subject.as_ref().map_or("", |s| s.as_str()),
            segments.as_deref().unwrap_or(&none),
            request,
        );
        let default = default.unwrap_or(Value::Null);
        // No caller default: any value of the flag's type will do as one.
        let probe = match default.is_null() {
            true => f
                .variant_names()
                .next()
                .and_then(|v| f.value_of(v))
                .cloned()
                .unwrap_or(Value::Null),
            false => default.clone(),
        };
        let Evaluation {
            value,
            variant,
            reason,
            error,
        } = f.evaluate(&ctx, &probe);
        // The probe stands for no default: served as null.
        let value = if variant.is_none() && default.is_null() {
            &Value::Null
        } else {
            value
        };
        let mut out = json!({"value": value, "reason": reason});
        if let Some(v) = variant {
            out["variant"] = json!(v);
        }
        if let Some(e) = error {
            out["errorCode"] = json!(e);
        }
        Ok(out)
    }

    /// The model version of recommender `name` the subject gets from a running
    /// experiment on it (with their `analytics` consent; stored and an exposure), and the
    /// experiment's name.
    pub async fn recommender_version(
        &self,
        source: &SourceId,
        scope: &ConsentScope,
        raw: &str,
        name: &str,
    ) -> Result<Option<(String, i64)>> {
        let c = self.catalogue().await?;
        Ok(self
            .variant_in(&c, ("recommender", name), source, scope, raw, true)
            .await?
            .and_then(|(e, v)| Some((e, v.parse().ok()?))))
    }

    /// The results of experiment `name`.
    pub async fn results(&self, name: &str) -> Result<Value> {
        let c = self.catalogue().await?;
        let e = c.experiments.get(name).ok_or(Error::NotFound)?;
        results::of(&self.db, e, self.clock.now_ms()).await
    }
}
