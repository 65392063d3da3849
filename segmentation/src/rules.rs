//! Audiences: declarative rules over a profile's features, computed traits and events.
//!
//! A rule is JSON:
//!
//! ```json
//! {"all": [
//!   {"performed": {"event": "Order Completed", "at_least": 6, "within_days": 30}},
//!   {"not": {"feature": "device_type", "op": "=", "value": "tv"}},
//!   {"any": [{"trait": "favourite_brand", "op": "in", "value": ["acme", "globex"]},
//!            {"exists": "newsletter_topic"}]}
//! ]}
//! ```
//!
//! `all` / `any` / `not`; `performed` (an event at least / at most so many times within
//! some days, or between two dates, optionally only where a property compares so);
//! `feature` (a behavioural or context feature by name, [`feature_names`], or
//! `interest.TAG`, the decayed weight of a content tag); `trait` (a
//! computed trait's value); `exists` (a trait has a non-null value). [`Rule::parse`]
//! refuses a rule with the JSON path of its first fault and stores nothing.
use std::collections::BTreeMap;

use serde_json::Value;

use crate::{
    error::{Error, Result},
    profile::{Features, Profile, DAY_MS, WINDOWS},
};

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Equal (numbers by value, anything else as JSON).
    Eq,
    /// Not equal.
    Ne,
    /// Greater than (numbers, or strings in order).
    Gt,
    /// Greater than or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
    /// A string contains the value, or a list holds it.
    Contains,
    /// The value is one of a list.
    In,
}

impl Op {
    fn parse(text: &str) -> Option<Op> {
        Some(match text {
            "=" | "==" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            "<=" => Op::Le,
            "contains" => Op::Contains,
            "in" => Op::In,
            _ => return None,
        })
    }

    /// Whether `left op right` holds; a null or missing left never does (but `!=`).
    pub fn holds(self, left: &Value, right: &Value) -> bool {
        use std::cmp::Ordering;
        let order = || -> Option<Ordering> {
            match (left, right) {
                (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
                (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
                _ => None,
            }
        };
        let equal = || match (left.as_f64(), right.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => left == right,
        };
        match self {
            Op::Eq => !left.is_null() && equal(),
            Op::Ne => !equal(),
            Op::Gt => order() == Some(Ordering::Greater),
            Op::Ge => matches!(order(), Some(Ordering::Greater | Ordering::Equal)),
            Op::Lt => order() == Some(Ordering::Less),
            Op::Le => matches!(order(), Some(Ordering::Less | Ordering::Equal)),
            Op::Contains => match (left, right) {
                (Value::String(a), Value::String(b)) => a.contains(b.as_str()),
                (Value::Array(items), v) => items.iter().any(|i| Op::Eq.holds(i, v)),
                _ => false,
            },
            Op::In => right
                .as_array()
                .is_some_and(|items| items.iter().any(|i| Op::Eq.holds(left, i))),
        }
    }
}

/// When a `performed` rule looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// The last so many days before `now`.
    WithinDays(u32),
    /// From and to (inclusive), Unix milliseconds.
    Between(i64, i64),
}

/// An audience rule, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// Every rule holds.
    All(Vec<Rule>),
    /// At least one holds.
    Any(Vec<Rule>),
    /// The rule does not hold.
    Not(Box<Rule>),
    /// The subject performed `event` between `at_least` and `at_most` times in `span`,
    /// counting only events whose `property` compares so, when given.
    Performed {
        /// The event's name.
        event: String,
        /// Fewest times (1 unless given).
        at_least: u64,
        /// Most times, when given.
        at_most: Option<u64>,
        /// When.
        span: Span,
        /// Only events whose property compares so.
        filter: Option<(String, Op, Value)>,
    },
    /// A feature compares so.
    Feature(String, Op, Value),
    /// A computed trait compares so.
    Trait(String, Op, Value),
    /// A computed trait has a value.
    Exists(String),
}

/// What a rule is evaluated against: the profile, its features and computed traits at
/// `now_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The events.
    pub profile: &'a Profile,
    /// The features at `now_ms`.
    pub features: &'a Features,
    /// The computed traits' values at `now_ms`.
    pub traits: &'a BTreeMap<String, Value>,
    /// When.
    pub now_ms: i64,
}

/// Deepest nesting of `all` / `any` / `not`.
const MAX_DEPTH: usize = 32;

fn fault(path: &str, what: impl std::fmt::Display) -> Error {
    Error::Data(format!("rule {path}: {what}"))
}

impl Rule {
    /// Parses a rule, or names the JSON path of its first fault.
    pub fn parse(rule: &Value) -> Result<Rule> {
        parse_at(rule, "$", 0)
    }

    /// The computed traits the rule reads, by name, each once.
    pub fn traits(&self) -> Vec<&str> {
        let mut names = Vec::new();
        let mut stack = vec![self];
        while let Some(rule) = stack.pop() {
            match rule {
                Rule::All(rules) | Rule::Any(rules) => stack.extend(rules),
                Rule::Not(rule) => stack.push(rule),
                Rule::Trait(name, _, _) | Rule::Exists(name) => names.push(name.as_str()),
                Rule::Performed { .. } | Rule::Feature(..) => {}
            }
        }
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Whether the subject matches.
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        match self {
            Rule::All(rules) => rules.iter().all(|r| r.matches(s)),
            Rule::Any(rules) => rules.iter().any(|r| r.matches(s)),
            Rule::Not(rule) => !rule.matches(s),
            Rule::Performed {
                event,
                at_least,
                at_most,
                span,
                filter,
            } => {
                let (from, to) = match *span {
                    Span::WithinDays(days) => (s.now_ms - i64::from(days) * DAY_MS, s.now_ms),
                    Span::Between(from, to) => (from, to.min(s.now_ms)),
                };
                let n = s
                    .profile
                    .events_between(from, to.saturating_add(1))
                    .filter(|e| e.name.as_deref() == Some(event.as_str()))
                    .filter(|e| {
                        filter.as_ref().is_none_or(|(p, op, v)| {
                            op.holds(e.properties.get(p).unwrap_or(&Value::Null), v)
                        })
                    })
                    .count() as u64;
                n >= *at_least && at_most.is_none_or(|most| n <= most)
            }
            Rule::Feature(name, op, value) => {
                op.holds(&feature(s.features, name).unwrap_or(Value::Null), value)
            }
            Rule::Trait(name, op, value) => {
                op.holds(s.traits.get(name).unwrap_or(&Value::Null), value)
            }
            Rule::Exists(name) => s.traits.get(name).is_some_and(|v| !v.is_null()),
        }
    }
}

fn parse_at(rule: &Value, path: &str, depth: usize) -> Result<Rule> {
    if depth > MAX_DEPTH {
        return Err(fault(path, format!("nested deeper than {MAX_DEPTH}")));
    }
    let Some(obj) = rule.as_object() else {
        return Err(fault(path, "a rule is an object with one key"));
    };
    if let Some(comparison) = parse_comparison(obj, path) {
        return comparison;
    }
    if obj.len() != 1 {
        return Err(fault(
            path,
            "a rule has exactly one key: all, any, not, performed, feature, trait or exists",
        ));
    }
    let (key, body) = obj.iter().next().expect("one key");
    let here = format!("{path}.{key}");
    match key.as_str() {
        "all" | "any" => {
            let Some(items) = body.as_array().filter(|a| !a.is_empty()) else {
                return Err(fault(&here, "a non-empty list of rules"));
            };
            let rules = items
                .iter()
                .enumerate()
                .map(|(i, r)| parse_at(r, &format!("{here}[{i}]"), depth + 1))
                .collect::<Result<Vec<_>>>()?;
            Ok(if key == "all" {
                Rule::All(rules)
            } else {
                Rule::Any(rules)
            })
        }
        "not" => Ok(Rule::Not(Box::new(parse_at(body, &here, depth + 1)?))),
        "performed" => parse_performed(body, &here),
        "exists" => match body.as_str() {
            Some(name) if !name.is_empty() => Ok(Rule::Exists(name.to_owned())),
            _ => Err(fault(&here, "the name of a computed trait")),
        },
        other => Err(fault(&here, format!("unknown rule `{other}`"))),
    }
}

/// `feature` and `trait` rules carry three keys; they are told apart here, before the
/// one-key rules.
fn parse_comparison(obj: &serde_json::Map<String, Value>, path: &str) -> Option<Result<Rule>> {
    let key = ["feature", "trait"]
        .into_iter()
        .find(|k| obj.contains_key(*k))?;
    Some((|| {
        if let Some(extra) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "op" | "value") && *k != key)
        {
            return Err(fault(&format!("{path}.{extra}"), "unknown key"));
        }
        let name = obj[key]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| fault(&format!("{path}.{key}"), "a name"))?;
        let op = obj
            .get("op")
            .and_then(Value::as_str)
            .and_then(Op::parse)
            .ok_or_else(|| fault(&format!("{path}.op"), "one of = != > >= < <= contains in"))?;
        let value = obj
            .get("value")
            .cloned()
            .ok_or_else(|| fault(&format!("{path}.value"), "missing"))?;
        if op == Op::In && !value.is_array() {
            return Err(fault(&format!("{path}.value"), "`in` takes a list"));
        }
        if key == "feature" {
            let interest = name
                .strip_prefix("interest.")
                .is_some_and(|t| !t.is_empty());
            if !interest && !feature_names().iter().any(|f| f == name) {
                return Err(fault(
                    &format!("{path}.feature"),
                    format!("unknown feature `{name}`"),
                ));
            }
            Ok(Rule::Feature(name.to_owned(), op, value))
        } else {
            Ok(Rule::Trait(name.to_owned(), op, value))
        }
    })())
}

fn parse_performed(body: &Value, path: &str) -> Result<Rule> {
    let Some(obj) = body.as_object() else {
        return Err(fault(path, "an object: event, and within_days or between"));
    };
    for k in obj.keys() {
        if !matches!(
            k.as_str(),
            "event" | "at_least" | "at_most" | "within_days" | "between" | "where"
        ) {
            return Err(fault(&format!("{path}.{k}"), "unknown key"));
        }
    }
    let event = obj
        .get("event")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| fault(&format!("{path}.event"), "the event's name"))?
        .to_owned();
    let count = |k: &str| -> Result<Option<u64>> {
        obj.get(k)
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| fault(&format!("{path}.{k}"), "a whole number, 0 or more"))
            })
            .transpose()
    };
    let at_least = count("at_least")?.unwrap_or(1);
    let at_most = count("at_most")?;
    if at_most.is_some_and(|m| m < at_least) {
        return Err(fault(&format!("{path}.at_most"), "less than at_least"));
    }
    let span = match (obj.get("within_days"), obj.get("between")) {
        (Some(d), None) => match d.as_u64() {
            Some(days @ 1..=3650) => Span::WithinDays(days as u32),
            _ => return Err(fault(&format!("{path}.within_days"), "from 1 to 3650")),
        },
        (None, Some(b)) => {
            let dates = b.as_array().filter(|a| a.len() == 2);
            let parse = |i: usize| {
                dates
                    .and_then(|d| d[i].as_str())
                    .and_then(parse_utc)
                    .ok_or_else(|| {
                        fault(
                            &format!("{path}.between[{i}]"),
                            "a date (YYYY-MM-DD, UTC) or an RFC 3339 date-time",
                        )
                    })
            };
            // A date alone ends at the end of that day.
            let end_of_day = dates
                .and_then(|d| d[1].as_str())
                .is_some_and(|s| s.len() == 10);
            let (from, to) = (
                parse(0)?,
                parse(1)? + if end_of_day { DAY_MS - 1 } else { 0 },
            );
            if to < from {
                return Err(fault(&format!("{path}.between"), "ends before it starts"));
            }
            Span::Between(from, to)
        }
        _ => return Err(fault(path, "exactly one of within_days and between")),
    };
    let filter = match obj.get("where") {
        None => None,
        Some(w) => {
            let here = format!("{path}.where");
            let w = w
                .as_object()
                .ok_or_else(|| fault(&here, "{\"property\": P, \"op\": OP, \"value\": V}"))?;
            let property = w
                .get("property")
                .and_then(Value::as_str)
                .ok_or_else(|| fault(&format!("{here}.property"), "a property name"))?;
            let op = w
                .get("op")
                .and_then(Value::as_str)
                .and_then(Op::parse)
                .ok_or_else(|| fault(&format!("{here}.op"), "one of = != > >= < <= contains in"))?;
            let value = w
                .get("value")
                .cloned()
                .ok_or_else(|| fault(&format!("{here}.value"), "missing"))?;
            Some((property.to_owned(), op, value))
        }
    };
    Ok(Rule::Performed {
        event,
        at_least,
        at_most,
        span,
        filter,
    })
}

/// `YYYY-MM-DD` (midnight UTC) or an RFC 3339 date-time, as Unix milliseconds.
fn parse_utc(text: &str) -> Option<i64> {
    use time::{format_description::well_known::Rfc3339, macros::format_description};
    let at = if text.len() == 10 {
        time::Date::parse(text, format_description!("[year]-[month]-[day]"))
            .ok()?
            .midnight()
            .assume_utc()
    } else {
        time::OffsetDateTime::parse(text, &Rfc3339).ok()?
    };
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The names `feature` rules accept: `events_7d`, `purchases_30d`… (each windowed count
/// for 1, 7, 30 and 90 days), `recency_days`, `engagement`, `device_type`, `country`,
/// `locale`, `active_hour`, `first_touch.source` (`medium`, `campaign`, `referrer`) and
/// `last_touch.…`.
pub fn feature_names() -> Vec<String> {
    let mut names = Vec::new();
    for base in WINDOWED {
        for days in WINDOWS {
            names.push(format!("{base}_{days}d"));
        }
    }
    for name in [
        "recency_days",
        "engagement",
        "device_type",
        "country",
        "locale",
        "active_hour",
        "sparse",
    ] {
        names.push(name.to_owned());
    }
    for touch in ["first_touch", "last_touch"] {
        for part in ["source", "medium", "campaign", "referrer"] {
            names.push(format!("{touch}.{part}"));
        }
    }
    names
}

const WINDOWED: [&str; 9] = [
    "events",
    "sessions",
    "views",
    "clicks",
    "conversions",
    "purchases",
    "revenue",
    "views_per_session",
    "seconds_per_view",
];

/// A feature's value by name (see [`feature_names`]).
pub fn feature(f: &Features, name: &str) -> Option<Value> {
    let text = |v: &Option<String>| v.as_ref().map_or(Value::Null, |s| Value::from(s.as_str()));
    if let Some((base, window)) = name.rsplit_once('_') {
        if let Some(days) = window.strip_suffix('d').and_then(|d| d.parse::<u32>().ok()) {
            let w = f.windows.iter().find(|w| w.days == days)?;
            return Some(match base {
                "events" => w.events.into(),
                "sessions" => w.sessions.into(),
                "views" => w.views.into(),
                "clicks" => w.clicks.into(),
                "conversions" => w.conversions.into(),
                "purchases" => w.purchases.into(),
                "revenue" => w.revenue.into(),
                "views_per_session" => w.views_per_session.into(),
                "seconds_per_view" => w.seconds_per_view.into(),
                _ => return None,
            });
        }
    }
    Some(match name {
        "recency_days" => f.recency_days.map_or(Value::Null, Value::from),
        "engagement" => f.engagement.into(),
        "device_type" => text(&f.device_type),
        "country" => text(&f.country),
        "locale" => text(&f.locale),
        "active_hour" => f.active_hour.map_or(Value::Null, Value::from),
        "sparse" => f.sparse.into(),
        _ => {
            let (touch, part) = name.split_once('.')?;
            if touch == "interest" {
                // A tag never seen weighs 0.
                return Some(f.interests.get(part).copied().unwrap_or(0.0).into());
            }
            let t = match touch {
                "first_touch" => &f.first_touch,
                "last_touch" => &f.last_touch,
                _ => return None,
            };
            match part {
                "source" => text(&t.source),
                "medium" => text(&t.medium),
                "campaign" => text(&t.campaign),
                "referrer" => text(&t.referrer),
                _ => return None,
            }
        }
    })
}

/// The seed's case-study audiences, as rules: frequent buyers (more than 5 purchases in
/// the last 30 days), browsers (more than a minute per product page over 30 days, and no
/// purchase), deal seekers (arrived from a promotional campaign).
pub fn examples() -> Vec<(&'static str, Value)> {
    vec![
        (
            "frequent_buyers",
            serde_json::json!({"performed": {"event": "Order Completed", "at_least": 6, "within_days": 30}}),
        ),
        (
            "browsers",
            serde_json::json!({"all": [
                {"feature": "seconds_per_view_30d", "op": ">", "value": 60},
                {"performed": {"event": "Product Viewed", "at_least": 3, "within_days": 30}},
                {"not": {"performed": {"event": "Order Completed", "within_days": 30}}}
            ]}),
        ),
        (
            "deal_seekers",
            serde_json::json!({"any": [
                {"feature": "first_touch.medium", "op": "in", "value": ["promo", "coupon", "affiliate"]},
                {"feature": "last_touch.campaign", "op": "contains", "value": "sale"}
            ]}),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::profile::{Context, Event, Kind, Vocabulary};

    const T0: i64 = 1_764_547_200_000; // 2025-12-01T00:00:00Z
    const HOUR: i64 = 3_600_000;

    fn event(id: &str, at: i64, kind: Kind, name: &str, props: Value) -> Event {
        Event {
            message_id: id.into(),
            at_ms: at,
            kind,
            name: Some(name.into()),
            properties: serde_json::from_value(props).unwrap(),
            context: Context::default(),
        }
    }

    fn matches(
        rule: &Value,
        profile: &Profile,
        traits: &BTreeMap<String, Value>,
        now: i64,
    ) -> bool {
        let features = profile.features(now, &Vocabulary::default());
        let subject = Subject {
            profile,
            features: &features,
            traits,
            now_ms: now,
        };
        Rule::parse(rule).unwrap().matches(&subject)
    }

    #[test]
    fn the_case_study_audiences_pick_their_people() {
        let examples: BTreeMap<_, _> = examples().into_iter().collect();
        let now = T0 + 100 * 24 * HOUR;
        let none = BTreeMap::new();
        // A buyer: six orders in the last 30 days.
        let mut buyer = Profile::default();
        for i in 0..6 {
            buyer.fold(event(
                &format!("o{i}"),
                now - (i + 1) * 24 * HOUR,
                Kind::Track,
                "Order Completed",
                json!({}),
            ));
        }
        // A browser: long product pages, no order.
        let mut browser = Profile::default();
        for i in 0..4 {
            let at = now - 2 * 24 * HOUR + i * 5 * 60_000;
            browser.fold(event(
                &format!("v{i}"),
                at,
                Kind::Page,
                "Product",
                json!({}),
            ));
            browser.fold(event(
                &format!("p{i}"),
                at + 90_000,
                Kind::Track,
                "Product Viewed",
                json!({}),
            ));
        }
        // A deal seeker: arrived from a promotion.
        let mut seeker = Profile::default();
        let mut first = event("s", now - HOUR, Kind::Page, "Home", json!({}));
        first.context.utm_medium = Some("promo".into());
        seeker.fold(first);
        let who = |p: &Profile| -> Vec<&str> {
            examples
                .iter()
                .filter(|(_, rule)| matches(rule, p, &none, now))
                .map(|(name, _)| *name)
                .collect()
        };
        assert_eq!(who(&buyer), ["frequent_buyers"]);
        assert_eq!(who(&browser), ["browsers"]);
        assert_eq!(who(&seeker), ["deal_seekers"]);
        // Five orders are not "more than five".
        let mut five = Profile::default();
        for i in 0..5 {
            five.fold(event(
                &format!("o{i}"),
                now - HOUR * (i + 1),
                Kind::Track,
                "Order Completed",
                json!({}),
            ));
        }
        assert!(who(&five).is_empty());
    }

    #[test]
    fn comparisons_traits_dates_and_filters() {
        let now = T0 + 10 * 24 * HOUR;
        let mut p = Profile::default();
        p.fold(event(
            "a",
            T0 + 2 * 24 * HOUR,
            Kind::Track,
            "Order Completed",
            json!({"revenue": 120, "coupon": "WINTER"}),
        ));
        p.fold(event(
            "b",
            T0 + 5 * 24 * HOUR,
            Kind::Track,
            "Order Completed",
            json!({"revenue": 15}),
        ));
        let traits: BTreeMap<String, Value> = [
            ("brand".to_string(), json!("acme")),
            ("topics".to_string(), json!(["shoes", "hats"])),
            ("gone".to_string(), Value::Null),
        ]
        .into();
        let m = |rule: Value| matches(&rule, &p, &traits, now);
        assert!(m(
            json!({"performed": {"event": "Order Completed", "between": ["2025-12-03", "2025-12-03"]}})
        ));
        assert!(!m(
            json!({"performed": {"event": "Order Completed", "between": ["2025-12-04", "2025-12-05T23:59:59Z"], "at_least": 2}})
        ));
        assert!(m(
            json!({"performed": {"event": "Order Completed", "within_days": 30, "where": {"property": "revenue", "op": ">=", "value": 100}}})
        ));
        assert!(m(
            json!({"performed": {"event": "Order Completed", "within_days": 30, "at_most": 2}})
        ));
        assert!(!m(
            json!({"performed": {"event": "Order Completed", "within_days": 30, "at_most": 1}})
        ));
        assert!(m(
            json!({"trait": "brand", "op": "in", "value": ["acme", "globex"]})
        ));
        assert!(m(
            json!({"trait": "topics", "op": "contains", "value": "hats"})
        ));
        assert!(
            m(json!({"exists": "brand"}))
                && !m(json!({"exists": "gone"}))
                && !m(json!({"exists": "nope"}))
        );
        assert!(m(
            json!({"feature": "revenue_30d", "op": "=", "value": 135})
        ));
        assert!(m(json!({"feature": "recency_days", "op": "<", "value": 6})));
        assert!(
            !m(json!({"trait": "nope", "op": "=", "value": null})),
            "null never equals"
        );
        assert!(m(
            json!({"not": {"any": [{"exists": "nope"}, {"trait": "brand", "op": "!=", "value": "acme"}]}})
        ));
        let nested = Rule::parse(&json!({"all": [{"exists": "b"}, {"not": {"any": [
            {"trait": "a", "op": "=", "value": 1}, {"exists": "b"},
            {"feature": "recency_days", "op": "<", "value": 6}]}}]}))
        .unwrap();
        assert_eq!(nested.traits(), ["a", "b"]);
    }

    #[test]
    fn a_bad_rule_names_the_path_of_its_fault() {
        let err = |rule: Value| Rule::parse(&rule).unwrap_err().to_string();
        assert!(
            err(json!({"all": [{"exists": "a"}, {"performed": {"event": "E"}}]}))
                .contains("$.all[1].performed: exactly one of within_days and between")
        );
        assert!(err(json!({"any": []})).contains("$.any: a non-empty list"));
        assert!(
            err(json!({"not": {"feature": "purchase_30d", "op": ">", "value": 1}}))
                .contains("$.not.feature: unknown feature `purchase_30d`")
        );
        assert!(err(json!({"trait": "t", "op": "~", "value": 1})).contains("$.op"));
        assert!(err(json!({"trait": "t", "op": "in", "value": 1})).contains("`in` takes a list"));
        assert!(err(json!({"performed": {"event": "E", "within_days": 0}}))
            .contains("$.performed.within_days"));
        assert!(
            err(json!({"performed": {"event": "E", "between": ["2025-13-01", "2025-12-02"]}}))
                .contains("$.performed.between[0]")
        );
        assert!(err(
            json!({"performed": {"event": "E", "within_days": 3, "at_least": 3, "at_most": 2}})
        )
        .contains("at_most"));
        assert!(err(json!({"sometimes": true})).contains("unknown rule `sometimes`"));
        assert!(err(json!({"exists": "a", "not": {"exists": "b"}})).contains("exactly one key"));
        let mut deep = json!({"exists": "x"});
        for _ in 0..40 {
            deep = json!({"not": deep});
        }
        assert!(err(deep).contains("nested deeper"));
    }

    #[test]
    fn dates_are_read_as_utc() {
        assert_eq!(parse_utc("1970-01-01"), Some(0));
        assert_eq!(parse_utc("2025-12-01"), Some(T0));
        assert_eq!(parse_utc("2025-12-01T01:00:00Z"), Some(T0 + HOUR));
        assert_eq!(parse_utc("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(parse_utc("2025-12-01T02:00:00+01:00"), Some(T0 + HOUR));
        for bad in [
            "2025-12-1",
            "2025-12-01T01:00:00",
            "x",
            "2025-00-10",
            "2025-02-30",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }
}
