//! The segmentation consumer of the feed (`segments`), run by one process per database
//! (the lease of [`crate::storage::Db::try_session_lock`]): each batch of items that
//! changes a profile is applied, its audience memberships decided again, and its position
//! saved, in one transaction, so each item takes effect exactly once; a batch that
//! changes nothing writes nothing (on SQLite every write transaction takes the one writer
//! from ingest), and the position is saved with the next change or within
//! [`SAVE_IDLE_POSITION`] (items read again after a crash change nothing either). Items
//! are gathered for up to [`GATHER`] before a batch. An event is folded into the profile
//! at its source only if the subject's consent in force there granted `personalization`
//! at the event's time and still does; a consent record that does not grant it deletes
//! the subject's profiles and memberships in the source's consent scope; an erasure
//! deletes them everywhere. Every `segmentation_sweep_secs` the consumer decides every
//! membership again (time windows lapse without events).
use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use assent_protocol::Purpose;
use assent_segmentation::{
    normalize::{self, Currencies},
    profile::{Context, Event, Kind},
};
use serde_json::Value;

use crate::{
    clock::Clock,
    consent::cache::ConsentCache,
    error::Result,
    feed::{self, ConsentItem, EventItem, Follower, Item, Position},
    ids::{Pseudonym, SourceId},
    keys::sources::{ConsentScope, Sources},
    segments::{
        identity::Graph,
        membership::{self, Definitions},
        Segments,
    },
    storage::{self, Db},
};

/// The consumer's name in `feed_consumers` (and in `assent_feed_lag`).
pub const CONSUMER: &str = "segments";

/// Lock id of the consumer's lease across PostgreSQL replicas.
const LEASE: i64 = 0x0053_4547_4d45_4e54; // "SEGMENT"

/// Items per transaction: a commit costs milliseconds on SQLite, so catching up goes
/// in large batches (measured: 1,000 a batch folds ~45,000 events/s, 10,000 ~90,000 to
/// 120,000); in real time batches are what arrived within [`GATHER`].
const BATCH: usize = 10_000;

/// How often a process without the lease tries to take it, and how often the follower
/// looks for other processes' commits.
const POLL: Duration = Duration::from_secs(1);

/// The purpose a profile needs.
const PURPOSE: &str = "personalization";

/// How long the consumer waits for more items after a batch smaller than [`BATCH`]: fewer,
/// larger batches, at that cost in latency.
pub const GATHER: Duration = Duration::from_millis(20);

/// How often the position of batches that changed nothing is saved.
pub const SAVE_IDLE_POSITION: Duration = Duration::from_secs(1);

/// Runs the consumer for good: takes the lease, follows the feed, applies each batch;
/// after an error, waits and starts again from the saved position.
pub async fn run(
    segments: Arc<Segments>,
    sources: Arc<Sources>,
    consent: Arc<ConsentCache>,
    clock: Arc<dyn Clock>,
    sweep_every: Duration,
) {
    loop {
        let done = follow(&segments, &sources, &consent, clock.as_ref(), sweep_every).await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "segmentation consumer stopped; will start again");
            tokio::time::sleep(POLL).await;
        }
    }
}

async fn follow(
    segments: &Segments,
    sources: &Sources,
    consent: &ConsentCache,
    clock: &dyn Clock,
    sweep_every: Duration,
) -> Result<()> {
    let db = &segments.db;
    let mut lease = loop {
        if let Some(lock) = db.try_session_lock(LEASE).await? {
            break lock;
        }
        tokio::time::sleep(POLL).await;
    };
    let mut follower = Follower::new(db.clone(), CONSUMER, BATCH, POLL).await?;
    let mut saved = Instant::now();
    let mut swept = Instant::now();
    let mut unsaved: Option<Position> = None;
    let mut switch = Switch::default();
    let mut was_off = false;
    loop {
        if !switch.on(segments).await? {
            // Off: items wait in the feed, and are caught up when it is on again.
            was_off = true;
            tokio::time::sleep(SWITCH_CHECK).await;
            continue;
        }
        if was_off {
            // On again: from the position saved meanwhile (a backfill or another
            // process may have moved it).
            follower = Follower::new(db.clone(), CONSUMER, BATCH, POLL).await?;
            unsaved = None;
            was_off = false;
        }
        if swept.elapsed() >= sweep_every {
            sweep(segments, clock).await?;
            swept = Instant::now();
        }
        let items = match unsaved {
            // Nothing new for a while: the position of what changed nothing is saved.
            Some(at) => match tokio::time::timeout(SAVE_IDLE_POSITION, follower.next()).await {
                Ok(items) => items?,
                Err(_) => {
                    save_position(db, at, clock).await?;
                    unsaved = None;
                    saved = Instant::now();
                    continue;
                }
            },
            None => follower.next().await?,
        };
        lease.check().await?;
        if !switch.on(segments).await? {
            continue;
        }
        let full = items.len() >= BATCH;
        let (to, wrote) = apply(segments, sources, consent, &items, clock, false).await?;
        follower.advance(to);
        if wrote {
            unsaved = None;
            saved = Instant::now();
        } else if saved.elapsed() >= SAVE_IDLE_POSITION {
            save_position(db, to, clock).await?;
            unsaved = None;
            saved = Instant::now();
        } else {
            unsaved = Some(to);
        }
        if !full {
            tokio::time::sleep(GATHER).await;
        }
    }
}

/// How often the consumer reads the real-time switch ([`Segments::realtime`]).
pub const SWITCH_CHECK: Duration = Duration::from_secs(1);

/// The real-time switch as last read, read again after [`SWITCH_CHECK`].
#[derive(Default)]
struct Switch {
    read: Option<(Instant, bool)>,
}

impl Switch {
    async fn on(&mut self, segments: &Segments) -> Result<bool> {
        match self.read {
            Some((at, on)) if at.elapsed() < SWITCH_CHECK => Ok(on),
            _ => {
                let on = segments.realtime().await?.enabled;
                self.read = Some((Instant::now(), on));
                Ok(on)
            }
        }
    }
}

/// Decides every membership again over stored history.
async fn sweep(segments: &Segments, clock: &dyn Clock) -> Result<()> {
    let mut w = segments.db.write().await?;
    w.lock(membership::LOCK).await?;
    let definitions = Definitions::load_in(&mut w).await?;
    if definitions.audiences.is_empty() {
        return Ok(());
    }
    let done = membership::backfill(
        &mut w,
        &definitions,
        &segments.vocabulary,
        None,
        clock.now(),
        &|_| {},
    )
    .await?;
    w.commit().await?;
    tracing::info!(
        profiles = done.profiles,
        entered = done.entered,
        exited = done.exited,
        "audience sweep"
    );
    Ok(())
}

async fn save_position(db: &Db, at: Position, clock: &dyn Clock) -> Result<()> {
    let mut w = db.write().await?;
    feed::save_position(&mut w, CONSUMER, at, clock.now_ms()).await?;
    w.commit().await
}

/// Applies a batch of feed items (in feed order) in one transaction with the consumer's
/// position, when they change a profile (or `save` says to save the position anyway);
/// returns the position after them and whether it wrote.
pub async fn apply(
    segments: &Segments,
    sources: &Sources,
    cache: &ConsentCache,
    items: &[Item],
    clock: &dyn Clock,
    save: bool,
) -> Result<(Position, bool)> {
    let Some(last) = items.last().map(Item::position) else {
        return Ok((feed::position_of(&segments.db, CONSUMER).await?, false));
    };
    let wrote = write(segments, sources, cache, items, clock, Some((last, save))).await?;
    Ok((last, wrote))
}

/// Applies a batch of feed items (in feed order among themselves) that other processes
/// may be applying others of at the same time — the workers sharing the NATS stream —
/// without a position: consent is read again under the lock that serializes batches,
/// so a withdrawal another worker applied first counts. Every effect is idempotent, so
/// a batch applied twice (redelivered after a crash) changes nothing the second time.
pub async fn apply_shared(
    segments: &Segments,
    sources: &Sources,
    cache: &ConsentCache,
    items: &[Item],
    clock: &dyn Clock,
) -> Result<bool> {
    write(segments, sources, cache, items, clock, None).await
}

/// What each item does given the consent records.
fn effects_of<'a>(items: &'a [Item], consent: &Consent, sources: &Sources) -> Vec<Effect<'a>> {
    items
        .iter()
        .map(|item| match item {
            Item::Event(e) if consent.allows(sources, &e.source_id, &e.subject, e.timestamp_ms) => {
                Effect::Fold(e)
            }
            Item::Consent(c) if !c.purposes.get(PURPOSE).copied().unwrap_or(false) => {
                Effect::DeleteInScope(c)
            }
            Item::Erasure(x) => Effect::Erase(&x.subject),
            Item::Event(_) | Item::Consent(_) => Effect::Nothing,
        })
        .collect()
}

/// Writes the items' effects (and `position`, saving it even without effects when its
/// flag says so) in one transaction; whether it wrote.
async fn write(
    segments: &Segments,
    sources: &Sources,
    cache: &ConsentCache,
    items: &[Item],
    clock: &dyn Clock,
    position: Option<(Position, bool)>,
) -> Result<bool> {
    let db = &segments.db;
    let consent = Consent::load(db, sources, cache, items).await?;
    // What each item does, decided once: the check for "nothing to write" and the writes
    // below follow the same list.
    let mut effects = effects_of(items, &consent, sources);
    let save_anyway = position.is_some_and(|(_, save)| save);
    if !save_anyway && effects.iter().all(|e| matches!(e, Effect::Nothing)) {
        return Ok(false);
    }
    let now = clock.now();
    let mut w = db.write().await?;
    // Merges and memberships read what they change: one batch, backfill or confirmed
    // duplicate at a time.
    w.lock(membership::LOCK).await?;
    if position.is_none() {
        // Shared with other workers: decided again now that no other batch is applied.
        let consent = Consent::load(db, sources, cache, items).await?;
        effects = effects_of(items, &consent, sources);
    }
    let mut events = Vec::new();
    let mut others = Vec::new();
    for effect in &effects {
        match effect {
            Effect::Fold(e) => events.push(*e),
            Effect::DeleteInScope(c) => others.push(&c.subject),
            Effect::Erase(subject) => others.push(*subject),
            Effect::Nothing => {}
        }
    }
    let mut graph = Graph::load(&mut w, &events, &others).await?;
    // The subjects of this batch's deletions that have anything stored: most consent
    // records that do not grant personalization name someone who never had a profile,
    // and five DELETEs each for nothing cost more than the records' own writes. A merge
    // in the batch stores rows for its two subjects, so they count as stored from then.
    let mut stored = storage::profiles::named(&mut w, &others).await?;
    stored.extend(storage::audiences::named(&mut w, &others).await?);
    stored.extend(storage::identity::named(&mut w, &others).await?);
    stored.extend(storage::duplicates::named(&mut w, &others).await?);
    // A profile is its events, one row each: folding is an insert that skips an event
    // already there. Inserts wait for the end of the batch; a merge moves those pending
    // of the profile merged away, a deletion drops those of its subject.
    let mut rows: Vec<storage::profiles::ProfileEvent<'_>> = Vec::new();
    // Profiles whose memberships are decided again besides those of `rows`.
    let mut touched: Vec<Pseudonym> = Vec::new();
    for effect in effects {
        match effect {
            Effect::Fold(e) => {
                if let Some(merge) = graph.merge_for(e) {
                    for r in rows.iter_mut() {
                        if r.source == &e.source_id && r.subject == merge.from {
                            r.origin.get_or_insert_with(|| merge.from.clone());
                            r.subject = merge.into.clone();
                        }
                    }
                    storage::identity::merge(&mut w, &Graph::link(e, &merge), now).await?;
                    stored.extend([
                        merge.from.as_str().to_owned(),
                        merge.into.as_str().to_owned(),
                    ]);
                    touched.extend([merge.from, merge.into]);
                }
                let profile = graph.profile_of(&e.source_id, &e.subject);
                rows.push(storage::profiles::ProfileEvent {
                    source: &e.source_id,
                    origin: (profile != e.subject).then(|| e.subject.clone()),
                    subject: profile,
                    at_ms: e.timestamp_ms,
                    message_id: &e.message_id,
                    event: serde_json::to_string(&event_of(e, segments.currencies.as_ref()))
                        .expect("serializes"),
                });
            }
            Effect::DeleteInScope(c) => {
                let members = sources.get(&c.source_id).scope.members.clone();
                let of_subject = |r: &storage::profiles::ProfileEvent<'_>| {
                    r.subject == c.subject || r.origin.as_ref() == Some(&c.subject)
                };
                rows.retain(|r| !(members.contains(r.source) && of_subject(r)));
                if stored.contains(c.subject.as_str()) {
                    storage::profiles::delete_at(&mut w, &members, &c.subject).await?;
                    storage::audiences::forget_at(&mut w, &members, &c.subject).await?;
                    storage::identity::forget_at(&mut w, &members, &c.subject).await?;
                    storage::duplicates::forget_at(&mut w, &members, &c.subject).await?;
                }
                touched.extend(graph.forget(&c.subject, |s| members.contains(s)));
            }
            Effect::Erase(subject) => {
                rows.retain(|r| r.subject != *subject && r.origin.as_ref() != Some(subject));
                storage::profiles::delete_everywhere(&mut w, subject).await?;
                storage::audiences::forget_everywhere(&mut w, subject).await?;
                storage::identity::forget_everywhere(&mut w, subject).await?;
                storage::duplicates::forget_everywhere(&mut w, subject).await?;
                touched.extend(graph.forget(subject, |_| true));
            }
            Effect::Nothing => {}
        }
    }
    storage::profiles::insert(&mut w, &rows, now).await?;
    touched.extend(rows.iter().map(|r| r.subject.clone()));
    if !touched.is_empty() {
        let definitions = Definitions::load_in(&mut w).await?;
        if !definitions.audiences.is_empty() {
            touched.sort_unstable();
            touched.dedup();
            let touched: Vec<&Pseudonym> = touched.iter().collect();
            membership::refresh(&mut w, &definitions, &segments.vocabulary, &touched, now).await?;
        }
    }
    if let Some((last, _)) = position {
        feed::save_position(&mut w, CONSUMER, last, now.millis()).await?;
    }
    w.commit().await?;
    Ok(true)
}

/// What one feed item does to the profiles.
enum Effect<'a> {
    /// An event of a subject who granted personalization, then and now.
    Fold(&'a EventItem),
    /// A consent record that does not grant it: the profiles in its scope go.
    DeleteInScope(&'a ConsentItem),
    /// An erasure: the subject's profiles go everywhere.
    Erase(&'a Pseudonym),
    Nothing,
}

/// The consent records of a batch's subjects, per consent scope, oldest first.
struct Consent {
    /// (scope id, subject) → (time in force, personalization granted).
    records: BTreeMap<(String, String), Vec<(i64, bool)>>,
}

impl Consent {
    /// Through the consent cache ingest uses (kept right across processes and replicas),
    /// so following the feed asks the database for little.
    async fn load(
        db: &Db,
        sources: &Sources,
        cache: &ConsentCache,
        items: &[Item],
    ) -> Result<Consent> {
        let mut wanted: BTreeMap<String, (Arc<ConsentScope>, Vec<&str>)> = BTreeMap::new();
        for item in items {
            if let Item::Event(e) = item {
                let scope = sources.get(&e.source_id).scope.clone();
                wanted
                    .entry(scope.id.clone())
                    .or_insert_with(|| (scope, Vec::new()))
                    .1
                    .push(e.subject.as_str());
            }
        }
        cache.follow_scope_changes(sources.scope_changes());
        let mut records: BTreeMap<(String, String), Vec<(i64, bool)>> = BTreeMap::new();
        for (id, (scope, mut subjects)) in wanted {
            subjects.sort_unstable();
            subjects.dedup();
            for (subject, list) in cache.records_of(db, &scope, &subjects).await? {
                let granted: Vec<(i64, bool)> = list
                    .iter()
                    .map(|e| {
                        let yes = e.purposes.get(&Purpose::Personalization).copied();
                        (e.at, yes.unwrap_or(false))
                    })
                    .collect();
                records.insert((id.clone(), subject), granted);
            }
        }
        Ok(Consent { records })
    }

    /// Whether `personalization` was granted at `at_ms` and still is, in the consent
    /// scope of `source`.
    fn allows(
        &self,
        sources: &Sources,
        source: &SourceId,
        subject: &Pseudonym,
        at_ms: i64,
    ) -> bool {
        let scope = sources.get(source).scope.id.clone();
        let Some(list) = self.records.get(&(scope, subject.to_string())) else {
            return false;
        };
        let then = list
            .iter()
            .rev()
            .find(|(t, _)| *t <= at_ms)
            .is_some_and(|r| r.1);
        let now = list.last().is_some_and(|r| r.1);
        then && now
    }
}

/// Properties that carry an amount of the event's `currency`.
const AMOUNTS: [&str; 4] = ["revenue", "value", "total", "price"];

/// A feed event as a profile takes it, normalized: the kind and name, the properties
/// (amounts in the configured currency, when there is one), and what the context says
/// of the device (or the user agent infers), the visit and the place (an ISO 3166-1
/// alpha-2 country).
fn event_of(e: &EventItem, currencies: Option<&Currencies>) -> Event {
    let payload: Value = serde_json::from_str(&e.payload).unwrap_or(Value::Null);
    let context = &payload["context"];
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let kind = match e.kind.as_str() {
        "page" => Kind::Page,
        "screen" => Kind::Screen,
        "identify" => Kind::Identify,
        "group" => Kind::Group,
        "alias" => Kind::Alias,
        _ => Kind::Track,
    };
    // An identify's traits (name, email…) are what the profile keeps of it.
    let carried = match kind {
        Kind::Identify => &payload["traits"],
        _ => &payload["properties"],
    };
    let mut properties: BTreeMap<String, Value> = carried
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    if let (Some(c), Some(currency)) = (
        currencies,
        properties
            .get("currency")
            .and_then(Value::as_str)
            .map(str::to_owned),
    ) {
        let mut unconverted = false;
        for name in AMOUNTS {
            if let Some(amount) = properties.get(name).and_then(Value::as_f64) {
                match c.convert(amount, &currency) {
                    Some(v) => {
                        properties.insert(name.into(), Value::from(v));
                    }
                    None => unconverted = true,
                }
            }
        }
        if unconverted {
            // No rate: the amounts stay as given, and say so.
            properties.insert("currency_unconverted".into(), Value::Bool(true));
        } else {
            properties.insert("currency".into(), Value::from(c.base.clone()));
        }
    }
    // A device type the SDK did not give: "Mobi" in a user agent is what browsers put
    // there for phones (MDN's advice for telling them apart); tablets say iPad or Tablet.
    let device_type = text(&context["device"]["type"]).or_else(|| {
        let ua = context["userAgent"].as_str()?;
        Some(
            if ua.contains("iPad") || ua.contains("Tablet") {
                "tablet"
            } else if ua.contains("Mobi") {
                "mobile"
            } else {
                "desktop"
            }
            .to_owned(),
        )
    });
    let country =
        text(&context["location"]["country"]).map(|c| normalize::country_code(&c).unwrap_or(c));
    let referrer = context["page"]["referrer"]
        .as_str()
        .and_then(|r| r.split("://").nth(1))
        .and_then(|r| r.split('/').next())
        .map(str::to_owned);
    Event {
        message_id: e.message_id.clone(),
        at_ms: e.timestamp_ms,
        kind,
        name: e.name.clone(),
        properties,
        context: Context {
            device_type,
            referrer,
            utm_source: text(&context["campaign"]["source"]),
            utm_medium: text(&context["campaign"]["medium"]),
            utm_campaign: text(&context["campaign"]["name"]),
            country,
            locale: text(&context["locale"]),
            utc_offset_minutes: None,
        },
    }
}
