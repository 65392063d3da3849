//! Profiles: what one pseudonymous subject did, folded event by event, and the features
//! read from it at a given time.
//!
//! A profile keeps the events it was given (in a compact form) ordered by time and
//! message id, and computes every feature and trait from them when asked, for a `now`
//! the caller passes. So folding is idempotent by construction (a redelivered message id
//! changes nothing) and commutative (the same events in any order give the same
//! profile), which a feed redelivering and reordering items needs. Events older than the
//! longest window ([`Profile::forget_before`]) are dropped by the caller's schedule.
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 24 * 3600 * 1000;

/// A gap longer than this between two events starts a new session (the usual 30 minutes).
pub const SESSION_GAP_MS: i64 = 30 * 60 * 1000;

/// The windows behavioural features are computed over, in days.
pub const WINDOWS: [u32; 4] = [1, 7, 30, 90];

/// Fewer events than this in the last 90 days make a profile sparse
/// ([`Features::sparse`]).
pub const SPARSE_BELOW: u64 = 3;

/// What kind of event it is (the Segment spec's types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A user action, named.
    Track,
    /// A web page view.
    Page,
    /// An app screen view.
    Screen,
    /// Traits of the user.
    Identify,
    /// Membership of a group.
    Group,
    /// Another id of the same user.
    Alias,
}

/// Where an event came from: what the SDK or the browser said of the device and the visit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// `mobile`, `tablet`, `desktop`, `tv`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
    /// The referring host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// UTM source, medium and campaign of the visit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_source: Option<String>,
    /// UTM medium.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_medium: Option<String>,
    /// UTM campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_campaign: Option<String>,
    /// ISO 3166-1 alpha-2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// BCP 47.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// The device's offset from UTC, in minutes, for the local hour of day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utc_offset_minutes: Option<i32>,
}

impl Context {
    /// Whether it says nothing.
    pub fn is_empty(&self) -> bool {
        *self == Context::default()
    }
}

/// One event as a profile takes it (already pseudonymized, its consent already checked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique per source: what makes folding idempotent.
    pub message_id: String,
    /// When it happened, Unix milliseconds.
    pub at_ms: i64,
    /// What kind of event.
    pub kind: Kind,
    /// The event's name (track) or the page's / screen's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its properties, as sent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, Value>,
    /// Where it came from.
    #[serde(default, skip_serializing_if = "Context::is_empty")]
    pub context: Context,
}

/// Event names counted as conversions and purchases, and the property holding a
/// purchase's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vocabulary {
    /// Names of purchase events.
    pub purchases: Vec<String>,
    /// Names of other conversions (sign-ups, leads...).
    pub conversions: Vec<String>,
    /// Names of click events.
    pub clicks: Vec<String>,
    /// The property of a purchase with its value.
    pub revenue_property: String,
    /// The half-life, in days, of an event's weight in the interest vector
    /// ([`Features::interests`]).
    #[serde(default = "default_half_life")]
    pub interest_half_life_days: f64,
}

fn default_half_life() -> f64 {
    30.0
}

impl Default for Vocabulary {
    /// The names of Segment's e-commerce and B2B specs.
    fn default() -> Vocabulary {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Vocabulary {
            purchases: names(&["Order Completed"]),
            conversions: names(&["Signed Up", "Lead Created", "Trial Started"]),
            clicks: names(&["Product Clicked", "Promotion Clicked", "CTA Clicked"]),
            revenue_property: "revenue".into(),
            interest_half_life_days: default_half_life(),
        }
    }
}

/// The events of one subject. Serialized as the list of its events, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<Event>", into = "Vec<Event>")]
pub struct Profile {
    events: BTreeMap<(i64, String), Event>,
}

impl From<Vec<Event>> for Profile {
    fn from(events: Vec<Event>) -> Profile {
        let mut p = Profile::default();
        for e in events {
            p.fold(e);
        }
        p
    }
}

impl From<Profile> for Vec<Event> {
    fn from(p: Profile) -> Vec<Event> {
        p.events.into_values().collect()
    }
}

/// Behavioural features over one window ending at `now`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Its length in days.
    pub days: u32,
    /// Events of any kind.
    pub events: u64,
    /// Sessions that had an event in the window (a session: events less than
    /// [`SESSION_GAP_MS`] apart).
    pub sessions: u64,
    /// Page and screen views.
    pub views: u64,
    /// Click events ([`Vocabulary::clicks`]).
    pub clicks: u64,
    /// Conversion events ([`Vocabulary::conversions`]).
    pub conversions: u64,
    /// Purchases and their summed value.
    pub purchases: u64,
    /// Summed value of the purchases.
    pub revenue: f64,
    /// Mean views per session.
    pub views_per_session: f64,
    /// Mean time from a view to the next event of its session, in seconds (time on
    /// page); 0 without such pairs.
    pub seconds_per_view: f64,
}

/// First and last touch: where the subject came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touch {
    /// UTM source.
    pub source: Option<String>,
    /// UTM medium.
    pub medium: Option<String>,
    /// UTM campaign.
    pub campaign: Option<String>,
    /// Referring host.
    pub referrer: Option<String>,
}

/// Everything the profile says at `now`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Features {
    /// One per [`WINDOWS`].
    pub windows: Vec<Window>,
    /// Days since the last event (None without events before `now`).
    pub recency_days: Option<f64>,
    /// An engagement score in [0, 1]: sessions, views, clicks and conversions of the last
    /// 30 days, each saturating, with recency.
    pub engagement: f64,
    /// The device type seen most (ties: the latest).
    pub device_type: Option<String>,
    /// The country and locale last seen.
    pub country: Option<String>,
    /// The locale last seen.
    pub locale: Option<String>,
    /// The local hour of day (0-23) the subject is most active at.
    pub active_hour: Option<u8>,
    /// The first visit's campaign and referrer.
    pub first_touch: Touch,
    /// The last visit's that had any.
    pub last_touch: Touch,
    /// Interests from tagged content: for each tag in events' `properties.tags` (a list
    /// of strings, or one), the sum of its events' weights, each halved every
    /// [`Vocabulary::interest_half_life_days`] of age, by tag.
    #[serde(default)]
    pub interests: BTreeMap<String, f64>,
    /// Too little to personalize on: fewer than [`SPARSE_BELOW`] events in the last 90
    /// days. Content and recommendations fall back to generic experiences for it.
    #[serde(default)]
    pub sparse: bool,
}

impl Profile {
    /// Folds one event in; false when it was there already (the same message id at the
    /// same time), which changes nothing.
    pub fn fold(&mut self, event: Event) -> bool {
        let key = (event.at_ms, event.message_id.clone());
        if self.events.contains_key(&key) {
            return false;
        }
        self.events.insert(key, event);
        true
    }

    /// Folds another profile's events in (an identity merge); returns how many were new.
    pub fn merge(&mut self, other: Profile) -> usize {
        other
            .events
            .into_values()
            .map(|e| usize::from(self.fold(e)))
            .sum()
    }

    /// Drops events before `cutoff_ms`; returns how many.
    pub fn forget_before(&mut self, cutoff_ms: i64) -> usize {
        let keep = self.events.split_off(&(cutoff_ms, String::new()));
        let dropped = self.events.len();
        self.events = keep;
        dropped
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event is held.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// What the subject's `identify` events say of them (their `traits`, which the
    /// profile keeps as the event's properties): each trait's latest value.
    pub fn identity_traits(&self) -> BTreeMap<String, Value> {
        let mut traits = BTreeMap::new();
        for e in self.events.values().filter(|e| e.kind == Kind::Identify) {
            for (k, v) in &e.properties {
                if !v.is_null() {
                    traits.insert(k.clone(), v.clone());
                }
            }
        }
        traits
    }

    /// The events in `[from_ms, to_ms)`, oldest first.
    pub fn events_between(&self, from_ms: i64, to_ms: i64) -> impl Iterator<Item = &Event> {
        self.events
            .range((from_ms, String::new())..(to_ms, String::new()))
            .map(|(_, e)| e)
    }

    /// The features at `now_ms` (events after `now_ms` are not counted).
    pub fn features(&self, now_ms: i64, vocabulary: &Vocabulary) -> Features {
        let end = now_ms.saturating_add(1);
        let windows = WINDOWS
            .iter()
            .map(|&days| self.window(now_ms - i64::from(days) * DAY_MS, end, days, vocabulary))
            .collect::<Vec<_>>();
        let upto: Vec<&Event> = self.events_between(i64::MIN, end).collect();
        let recency_days = upto
            .last()
            .map(|e| (now_ms - e.at_ms) as f64 / DAY_MS as f64);
        let month = &windows[2];
        let saturate = |x: f64, half: f64| x / (x + half);
        let engagement = recency_days.map_or(0.0, |r| {
            let activity = 0.3 * saturate(month.sessions as f64, 4.0)
                + 0.25 * saturate(month.views as f64, 20.0)
                + 0.2 * saturate(month.clicks as f64, 5.0)
                + 0.25 * saturate(month.conversions as f64 + month.purchases as f64, 1.0);
            activity * (-r / 30.0).exp()
        });
        let mut devices: BTreeMap<&str, (u64, i64)> = BTreeMap::new();
        let mut hours = [0u64; 24];
        let (mut country, mut locale) = (None, None);
        let mut first_touch: Option<Touch> = None;
        let mut last_touch = Touch::default();
        for e in &upto {
            let c = &e.context;
            if let Some(d) = &c.device_type {
                let entry = devices.entry(d).or_default();
                entry.0 += 1;
                entry.1 = e.at_ms;
            }
            if let Some(offset) = c.utc_offset_minutes {
                let local = e.at_ms + i64::from(offset) * 60_000;
                hours[local.rem_euclid(DAY_MS) as usize / 3_600_000] += 1;
            }
            country = c.country.clone().or(country);
            locale = c.locale.clone().or(locale);
            let touch = Touch {
                source: c.utm_source.clone(),
                medium: c.utm_medium.clone(),
                campaign: c.utm_campaign.clone(),
                referrer: c.referrer.clone(),
            };
            if first_touch.is_none() {
                first_touch = Some(touch.clone());
            }
            if touch != Touch::default() {
                last_touch = touch;
            }
        }
        let device_type = devices
            .iter()
            .max_by_key(|(_, (n, last))| (*n, *last))
            .map(|(d, _)| d.to_string());
        let active_hour = (hours.iter().any(|&h| h > 0)).then(|| {
            (0..24)
                .max_by_key(|&h| (hours[h], std::cmp::Reverse(h)))
                .unwrap() as u8
        });
        let mut interests: BTreeMap<String, f64> = BTreeMap::new();
        let half_life_ms = vocabulary.interest_half_life_days.max(1e-9) * DAY_MS as f64;
        for e in &upto {
            let weight = 0.5f64.powf((now_ms - e.at_ms) as f64 / half_life_ms);
            let tags: Vec<&str> = match e.properties.get("tags") {
                Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
                Some(Value::String(one)) => vec![one.as_str()],
                _ => Vec::new(),
            };
            for tag in tags.into_iter().map(str::trim).filter(|t| !t.is_empty()) {
                *interests.entry(tag.to_lowercase()).or_default() += weight;
            }
        }
        let sparse = windows.last().is_none_or(|w| w.events < SPARSE_BELOW);
        Features {
            windows,
            recency_days,
            engagement,
            device_type,
            country,
            locale,
            active_hour,
            first_touch: first_touch.unwrap_or_default(),
            last_touch,
            interests,
            sparse,
        }
    }

    fn window(&self, from_ms: i64, to_ms: i64, days: u32, vocabulary: &Vocabulary) -> Window {
        let mut w = Window {
            days,
            ..Window::default()
        };
        // Sessions are found over everything up to the window's end, so a session that
        // began before the window and went on into it counts once.
        let mut last_at: Option<i64> = None;
        let mut session_in_window = false;
        let mut open_view: Option<i64> = None;
        let (mut viewed_ms, mut timed_views) = (0i64, 0u64);
        for e in self.events_between(i64::MIN, to_ms) {
            let new_session = last_at.is_none_or(|t| e.at_ms - t > SESSION_GAP_MS);
            if new_session {
                if session_in_window {
                    w.sessions += 1;
                }
                session_in_window = false;
                open_view = None;
            }
            last_at = Some(e.at_ms);
            if e.at_ms < from_ms {
                continue;
            }
            session_in_window = true;
            if let Some(v) = open_view.take() {
                viewed_ms += e.at_ms - v;
                timed_views += 1;
            }
            w.events += 1;
            let name = e.name.as_deref().unwrap_or_default();
            let named = |list: &[String]| list.iter().any(|n| n == name);
            match e.kind {
                Kind::Page | Kind::Screen => {
                    w.views += 1;
                    open_view = Some(e.at_ms);
                }
                Kind::Track if named(&vocabulary.purchases) => {
                    w.purchases += 1;
                    w.revenue += e
                        .properties
                        .get(&vocabulary.revenue_property)
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0);
                }
                Kind::Track if named(&vocabulary.conversions) => w.conversions += 1,
                Kind::Track if named(&vocabulary.clicks) => w.clicks += 1,
                _ => {}
            }
        }
        if session_in_window {
            w.sessions += 1;
        }
        if w.sessions > 0 {
            w.views_per_session = w.views as f64 / w.sessions as f64;
        }
        if timed_views > 0 {
            w.seconds_per_view = viewed_ms as f64 / timed_views as f64 / 1000.0;
        }
        w
    }
}

/// How a computed trait reduces the events it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduce {
    /// How many events.
    Count,
    /// Sum of a numeric property.
    Sum,
    /// Mean of a numeric property.
    Average,
    /// Least value of a numeric property.
    Min,
    /// Greatest value of a numeric property.
    Max,
    /// The value of a property seen most often (ties: the latest seen).
    MostFrequent,
    /// The value of a property on the first event.
    First,
    /// The value of a property on the last event.
    Last,
    /// The distinct values of a property, sorted.
    UniqueList,
    /// How many distinct values of a property.
    UniqueCount,
}

/// A computed trait, as users define them (Segment Engage's kinds): a reduction of the
/// events of the last `window_days` days, optionally only those of one name, for example
/// `{"name": "purchases_30d", "kind": "count", "event": "Order Completed", "window_days": 30}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComputedTrait {
    /// The trait's name (letters, digits, `_`; at most 64).
    pub name: String,
    /// How the events are reduced.
    pub kind: Reduce,
    /// The property reduced (every kind but `count` needs one).
    #[serde(default)]
    pub property: Option<String>,
    /// Only events of this name (track events' names, or page / screen names).
    #[serde(default)]
    pub event: Option<String>,
    /// How many days back from `now` (1 to 3650).
    pub window_days: u32,
}

impl ComputedTrait {
    /// Parses a definition, naming the field at fault.
    pub fn parse(definition: &Value) -> Result<ComputedTrait> {
        let t: ComputedTrait = serde_json::from_value(definition.clone())
            .map_err(|e| Error::Data(format!("computed trait: {e}")))?;
        let fault = |what: &str| Err(Error::Data(format!("computed trait: {what}")));
        let name_ok = (1..=64).contains(&t.name.len())
            && t.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !name_ok {
            return fault("name: 1 to 64 letters, digits or '_'");
        }
        if !(1..=3650).contains(&t.window_days) {
            return fault("window_days: from 1 to 3650");
        }
        match (t.kind, t.property.as_deref()) {
            (Reduce::Count, Some(_)) => return fault("property: count takes none"),
            (Reduce::Count, None) => {}
            (_, None | Some("")) => return fault("property: this kind needs one"),
            (_, Some(_)) => {}
        }
        Ok(t)
    }

    /// The trait's value for `profile` at `now_ms`: a number, a value of the property, a
    /// list, or null when no selected event carries the property.
    pub fn evaluate(&self, profile: &Profile, now_ms: i64) -> Value {
        let from = now_ms - i64::from(self.window_days) * DAY_MS;
        let selected = profile
            .events_between(from, now_ms.saturating_add(1))
            .filter(|e| {
                self.event
                    .as_ref()
                    .is_none_or(|n| e.name.as_ref() == Some(n))
            });
        let Some(property) = self.property.as_deref() else {
            return Value::from(selected.count() as u64);
        };
        let values: Vec<&Value> = selected
            .filter_map(|e| e.properties.get(property))
            .filter(|v| !v.is_null())
            .collect();
        let numbers = || values.iter().filter_map(|v| v.as_f64());
        let number = |x: Option<f64>| x.map_or(Value::Null, Value::from);
        match self.kind {
            // Parsed definitions give count no property; one built by hand counts the
            // events that have it.
            Reduce::Count => Value::from(values.len() as u64),
            Reduce::Sum => Value::from(numbers().sum::<f64>()),
            Reduce::Average => {
                let (n, sum) = numbers().fold((0u64, 0.0), |(n, s), x| (n + 1, s + x));
                number((n > 0).then(|| sum / n as f64))
            }
            Reduce::Min => number(numbers().reduce(f64::min)),
            Reduce::Max => number(numbers().reduce(f64::max)),
            Reduce::MostFrequent => {
                let mut seen: BTreeMap<String, (u64, usize)> = BTreeMap::new();
                for (i, v) in values.iter().enumerate() {
                    let entry = seen.entry(v.to_string()).or_default();
                    entry.0 += 1;
                    entry.1 = i;
                }
                seen.values()
                    .max_by_key(|(n, last)| (*n, *last))
                    .map_or(Value::Null, |&(_, i)| values[i].clone())
            }
            Reduce::First => values.first().map_or(Value::Null, |v| (*v).clone()),
            Reduce::Last => values.last().map_or(Value::Null, |v| (*v).clone()),
            Reduce::UniqueList | Reduce::UniqueCount => {
                let unique: BTreeSet<String> = values.iter().map(|v| v.to_string()).collect();
                if self.kind == Reduce::UniqueCount {
                    return Value::from(unique.len() as u64);
                }
                let mut list: Vec<Value> = Vec::new();
                for text in unique {
                    list.push(serde_json::from_str(&text).expect("written by to_string"));
                }
                Value::Array(list)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const T0: i64 = 1_764_547_200_000; // 2025-12-01T00:00:00Z

    fn event(id: &str, minutes: i64, kind: Kind, name: &str, props: Value) -> Event {
        Event {
            message_id: id.into(),
            at_ms: T0 + minutes * 60_000,
            kind,
            name: Some(name.into()),
            properties: serde_json::from_value(props).unwrap(),
            context: Context::default(),
        }
    }

    fn history() -> Vec<Event> {
        vec![
            event("a", 0, Kind::Page, "Home", json!({})),
            event("b", 2, Kind::Page, "Shoes", json!({})),
            event("c", 5, Kind::Track, "Product Clicked", json!({"sku": "s1"})),
            event(
                "d",
                9,
                Kind::Track,
                "Order Completed",
                json!({"revenue": 30.5, "sku": "s1"}),
            ),
            // A new session two hours later.
            event("e", 130, Kind::Page, "Home", json!({})),
            event(
                "f",
                131,
                Kind::Track,
                "Order Completed",
                json!({"revenue": 10, "sku": "s2"}),
            ),
            // Forty days earlier.
            event(
                "g",
                -40 * 24 * 60,
                Kind::Track,
                "Order Completed",
                json!({"revenue": 99, "sku": "s1"}),
            ),
        ]
    }

    #[test]
    fn folding_is_idempotent_and_commutative() {
        let mut forward = Profile::default();
        for e in history() {
            assert!(forward.fold(e));
        }
        for e in history() {
            assert!(!forward.fold(e), "a redelivered item changes nothing");
        }
        let mut backward = Profile::default();
        for e in history().into_iter().rev() {
            backward.fold(e);
        }
        assert_eq!(forward, backward);
        let stored = serde_json::to_string(&forward).unwrap();
        assert_eq!(serde_json::from_str::<Profile>(&stored).unwrap(), forward);
        let now = T0 + 200 * 60_000;
        let v = Vocabulary::default();
        assert_eq!(forward.features(now, &v), backward.features(now, &v));
    }

    #[test]
    fn windows_count_sessions_views_purchases_and_revenue() {
        let mut p = Profile::default();
        history().into_iter().for_each(|e| {
            p.fold(e);
        });
        let f = p.features(T0 + 200 * 60_000, &Vocabulary::default());
        let day = &f.windows[0];
        assert_eq!(
            (day.days, day.events, day.sessions, day.views),
            (1, 6, 2, 3)
        );
        assert_eq!((day.clicks, day.purchases), (1, 2));
        assert!((day.revenue - 40.5).abs() < 1e-12);
        assert!((day.views_per_session - 1.5).abs() < 1e-12);
        // Home → Shoes 2 min, Shoes → click 3 min, Home → order 1 min.
        assert!(
            (day.seconds_per_view - 120.0).abs() < 1e-9,
            "{}",
            day.seconds_per_view
        );
        let quarter = &f.windows[3];
        assert_eq!((quarter.purchases, quarter.sessions), (3, 3));
        assert!((f.recency_days.unwrap() - 69.0 / 1440.0).abs() < 1e-9);
        assert!(f.engagement > 0.0 && f.engagement < 1.0);
    }

    #[test]
    fn computed_traits_of_every_kind() {
        let mut p = Profile::default();
        history().into_iter().for_each(|e| {
            p.fold(e);
        });
        let now = T0 + 200 * 60_000;
        let eval = |def: Value| ComputedTrait::parse(&def).unwrap().evaluate(&p, now);
        let orders = |kind: &str, property: &str, days: u32| json!({"name": "t", "kind": kind, "property": property, "event": "Order Completed", "window_days": days});
        assert_eq!(
            eval(
                json!({"name": "n", "kind": "count", "event": "Order Completed", "window_days": 30})
            ),
            json!(2)
        );
        assert_eq!(
            eval(json!({"name": "n", "kind": "count", "window_days": 90})),
            json!(7)
        );
        assert_eq!(eval(orders("sum", "revenue", 90)), json!(139.5));
        assert_eq!(eval(orders("average", "revenue", 30)), json!(20.25));
        assert_eq!(eval(orders("min", "revenue", 90)), json!(10.0));
        assert_eq!(eval(orders("max", "revenue", 90)), json!(99.0));
        assert_eq!(eval(orders("most_frequent", "sku", 90)), json!("s1"));
        assert_eq!(eval(orders("first", "sku", 90)), json!("s1"));
        assert_eq!(eval(orders("last", "sku", 90)), json!("s2"));
        assert_eq!(eval(orders("unique_list", "sku", 90)), json!(["s1", "s2"]));
        assert_eq!(eval(orders("unique_count", "sku", 30)), json!(2));
        assert_eq!(eval(orders("average", "missing", 30)), Value::Null);
    }

    #[test]
    fn bad_trait_definitions_name_their_fault() {
        let err = |def: Value| ComputedTrait::parse(&def).unwrap_err().to_string();
        assert!(
            err(json!({"name": "x", "kind": "count", "window_days": 0})).contains("window_days")
        );
        assert!(err(json!({"name": "x y", "kind": "count", "window_days": 3})).contains("name"));
        assert!(err(json!({"name": "x", "kind": "sum", "window_days": 3})).contains("property"));
        assert!(
            err(json!({"name": "x", "kind": "median", "property": "p", "window_days": 3}))
                .contains("median")
        );
        assert!(
            err(json!({"name": "x", "kind": "count", "window_days": 3, "extra": 1}))
                .contains("extra")
        );
    }

    #[test]
    fn merging_and_forgetting() {
        let (mut a, mut b) = (Profile::default(), Profile::default());
        let all = history();
        for e in &all[..4] {
            a.fold(e.clone());
        }
        for e in &all[2..] {
            b.fold(e.clone());
        }
        assert_eq!(a.merge(b), 3);
        assert_eq!(a.len(), 7);
        assert_eq!(a.forget_before(T0 - 24 * 3_600_000), 1);
        assert_eq!(a.len(), 6);
    }

    #[test]
    fn context_features_first_and_last_touch_device_and_hour() {
        let mut p = Profile::default();
        let mut e1 = event("1", 0, Kind::Page, "Home", json!({}));
        e1.context = Context {
            device_type: Some("mobile".into()),
            utm_source: Some("newsletter".into()),
            utm_campaign: Some("winter-sale".into()),
            utc_offset_minutes: Some(60),
            country: Some("DE".into()),
            ..Context::default()
        };
        let mut e2 = event("2", 600, Kind::Page, "Shoes", json!({}));
        e2.context = Context {
            device_type: Some("desktop".into()),
            referrer: Some("search.example".into()),
            utc_offset_minutes: Some(60),
            ..Context::default()
        };
        let mut e3 = event("3", 610, Kind::Page, "Cart", json!({}));
        e3.context.device_type = Some("mobile".into());
        for e in [e3, e1, e2] {
            p.fold(e);
        }
        let f = p.features(T0 + 700 * 60_000, &Vocabulary::default());
        assert_eq!(f.first_touch.campaign.as_deref(), Some("winter-sale"));
        assert_eq!(f.last_touch.referrer.as_deref(), Some("search.example"));
        assert_eq!(f.device_type.as_deref(), Some("mobile"));
        assert_eq!(f.country.as_deref(), Some("DE"));
        // 00:00Z and 10:00Z at UTC+1: 01h and 11h, one each; the earlier hour wins a tie.
        assert_eq!(f.active_hour, Some(1));
    }

    #[test]
    fn interests_decay_with_their_half_life() {
        let day = 24 * 60;
        let mut p = Profile::default();
        p.fold(event(
            "a",
            0,
            Kind::Page,
            "Boots",
            json!({"tags": ["Shoes", "winter"]}),
        ));
        p.fold(event(
            "b",
            30 * day,
            Kind::Page,
            "Sandals",
            json!({"tags": "shoes"}),
        ));
        p.fold(event(
            "c",
            30 * day,
            Kind::Page,
            "Home",
            json!({"tags": [1, ""]}),
        ));
        let f = p.features(T0 + 30 * day * 60_000, &Vocabulary::default());
        // 30 days is one half-life: 0.5 for the old event, 1 for the new one.
        assert!(
            (f.interests["shoes"] - 1.5).abs() < 1e-12,
            "{:?}",
            f.interests
        );
        assert!((f.interests["winter"] - 0.5).abs() < 1e-12);
        assert_eq!(f.interests.len(), 2, "no number or empty tag");
        let fast = Vocabulary {
            interest_half_life_days: 15.0,
            ..Vocabulary::default()
        };
        let f = p.features(T0 + 30 * day * 60_000, &fast);
        assert!((f.interests["winter"] - 0.25).abs() < 1e-12);
        assert_eq!(
            crate::rules::feature(&f, "interest.winter"),
            Some(json!(0.25))
        );
        assert_eq!(crate::rules::feature(&f, "interest.golf"), Some(json!(0.0)));
        assert!(!f.sparse, "three events in 90 days");
        let later = p.features(T0 + 200 * day * 60_000, &Vocabulary::default());
        assert!(later.sparse, "none in the last 90 days");
        assert_eq!(crate::rules::feature(&later, "sparse"), Some(json!(true)));
    }
}
