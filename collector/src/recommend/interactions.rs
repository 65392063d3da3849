//! What a profile's events say a subject did with items: each event that names an item
//! (`properties.item_id`, `product_id` or `content_id`; an order's `products`) counts
//! with its confidence weight, configured per event name
//! (`ASSENT_RECOMMENDATION_WEIGHTS`): views count less than clicks, clicks less than
//! adding to a cart, that less than buying.
use std::collections::BTreeMap;

use assent_segmentation::profile::{Event, Kind};
use serde_json::Value;

use crate::error::{Error, Result};

/// Confidence weight per event name; `page` and `screen` name pages and screens.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights(BTreeMap<String, f32>);

/// The default weights (kept with the other defaults in the configuration).
pub use crate::config::DEFAULT_RECOMMENDATION_WEIGHTS as DEFAULT_WEIGHTS;

impl Weights {
    /// Parses `NAME=WEIGHT,NAME=WEIGHT` (weights finite and > 0).
    pub fn parse(text: &str) -> Result<Weights> {
        let mut out = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || {
                Error::Config(format!(
                    "ASSENT_RECOMMENDATION_WEIGHTS: {part:?} is not NAME=WEIGHT with a weight > 0"
                ))
            };
            let (name, w) = part.rsplit_once('=').ok_or_else(bad)?;
            let w: f32 = w.trim().parse().map_err(|_| bad())?;
            if !(w.is_finite() && w > 0.0) {
                return Err(bad());
            }
            out.insert(name.trim().to_owned(), w);
        }
        Ok(Weights(out))
    }

    fn of(&self, event: &Event) -> Option<f32> {
        let name = match event.kind {
            Kind::Page => "page",
            Kind::Screen => "screen",
            Kind::Track => event.name.as_deref()?,
            _ => return None,
        };
        self.0.get(name).copied()
    }
}

fn item_of<'a>(get: impl Fn(&str) -> Option<&'a Value>) -> Option<String> {
    ["item_id", "product_id", "content_id"]
        .iter()
        .find_map(|k| match get(k)? {
            Value::String(s) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
}

/// The items of one event with its weight: the item it names, or each product of an
/// order.
pub fn of_event(event: &Event, weights: &Weights) -> Vec<(String, f32)> {
    let Some(w) = weights.of(event) else {
        return Vec::new();
    };
    let props = &event.properties;
    if let Some(Value::Array(products)) = props.get("products") {
        return products
            .iter()
            .filter_map(|p| item_of(|k| p.get(k)))
            .map(|i| (i, w))
            .collect();
    }
    item_of(|k| props.get(k))
        .map(|i| vec![(i, w)])
        .unwrap_or_default()
}

/// One subject's items: each with the sum of its weights and the last time.
pub fn history(events: &[Event], weights: &Weights) -> BTreeMap<String, (f32, i64)> {
    let mut out: BTreeMap<String, (f32, i64)> = BTreeMap::new();
    for e in events {
        for (item, w) in of_event(e, weights) {
            let entry = out.entry(item).or_insert((0.0, e.at_ms));
            entry.0 += w;
            entry.1 = entry.1.max(e.at_ms);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: Kind, name: Option<&str>, props: Value) -> Event {
        serde_json::from_value(serde_json::json!({
            "message_id": "m", "at_ms": 5, "kind": kind, "name": name, "properties": props,
        }))
        .unwrap()
    }

    #[test]
    fn items_and_weights_from_events() {
        let w = Weights::parse(DEFAULT_WEIGHTS).unwrap();
        let viewed = event(
            Kind::Track,
            Some("Product Viewed"),
            serde_json::json!({"product_id": "p1"}),
        );
        let order = event(
            Kind::Track,
            Some("Order Completed"),
            serde_json::json!({"products": [{"product_id": "p1"}, {"item_id": 7}]}),
        );
        let page = event(Kind::Page, None, serde_json::json!({"content_id": "a9"}));
        let other = event(
            Kind::Track,
            Some("Signed Up"),
            serde_json::json!({"item_id": "x"}),
        );
        let h = history(&[viewed, order, page, other], &w);
        assert_eq!(h["p1"], (9.0, 5));
        assert_eq!(h["7"], (8.0, 5));
        assert_eq!(h["a9"], (1.0, 5));
        assert!(!h.contains_key("x"));
        assert!(Weights::parse("view=0").is_err());
        assert!(Weights::parse("view").is_err());
    }
}
