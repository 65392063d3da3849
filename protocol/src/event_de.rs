//! Deserializers for [`Event`] and [`Context`], written out instead of derived: both keep
//! the fields they do not know in `extra`, and serde's `flatten` does that by first copying
//! the whole object into an intermediate tree and then reading every field out of it,
//! which made parsing an event the largest single cost of the collector's ingest.
//! Behaviour is the derive's: the same names, `null` as absent, a repeated known field is
//! an error, an unknown field is kept as sent (the last one wins if repeated).
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::event::{Context, Event};

/// Stores a field's value, refusing a second one.
fn put<T, E: de::Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(name));
    }
    *slot = Some(value);
    Ok(())
}

/// A key of an object: one of the known names (without allocating), or another one.
enum Key<F> {
    Known(F),
    Other(String),
}

struct KeySeed<F>(fn(&str) -> Option<F>);

impl<'de, F> DeserializeSeed<'de> for KeySeed<F> {
    type Value = Key<F>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key<F>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<F> Visitor<'_> for KeySeed<F> {
    type Value = Key<F>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<F>, E> {
        Ok(match (self.0)(s) {
            Some(field) => Key::Known(field),
            None => Key::Other(s.to_owned()),
        })
    }
}

#[derive(Clone, Copy)]
enum EventField {
    MessageId,
    Type,
    Event,
    Name,
    AnonymousId,
    UserId,
    PreviousId,
    GroupId,
    Properties,
    Traits,
    Context,
    Timestamp,
    Purpose,
}

fn event_field(name: &str) -> Option<EventField> {
    use EventField::*;
    Some(match name {
        "messageId" => MessageId,
        "type" => Type,
        "event" => Event,
        "name" => Name,
        "anonymousId" => AnonymousId,
        "userId" => UserId,
        "previousId" => PreviousId,
        "groupId" => GroupId,
        "properties" => Properties,
        "traits" => Traits,
        "context" => Context,
        "timestamp" => Timestamp,
        "purpose" => Purpose,
        _ => return None,
    })
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Event, D::Error> {
        d.deserialize_map(EventVisitor)
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
        let (mut message_id, mut kind, mut event, mut name) = (None, None, None, None);
        let (mut anonymous_id, mut user_id, mut previous_id, mut group_id) =
            (None, None, None, None);
        let (mut properties, mut traits, mut context, mut timestamp, mut purpose) =
            (None, None, None, None, None);
        let mut extra = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed(event_field))? {
            use EventField as F;
            match key {
                Key::Known(F::MessageId) => put(&mut message_id, map.next_value()?, "messageId")?,
                Key::Known(F::Type) => put(&mut kind, map.next_value()?, "type")?,
                Key::Known(F::Event) => put(&mut event, map.next_value()?, "event")?,
                Key::Known(F::Name) => put(&mut name, map.next_value()?, "name")?,
                Key::Known(F::AnonymousId) => {
                    put(&mut anonymous_id, map.next_value()?, "anonymousId")?
                }
                Key::Known(F::UserId) => put(&mut user_id, map.next_value()?, "userId")?,
                Key::Known(F::PreviousId) => {
                    put(&mut previous_id, map.next_value()?, "previousId")?
                }
                Key::Known(F::GroupId) => put(&mut group_id, map.next_value()?, "groupId")?,
                Key::Known(F::Properties) => put(&mut properties, map.next_value()?, "properties")?,
                Key::Known(F::Traits) => put(&mut traits, map.next_value()?, "traits")?,
                Key::Known(F::Context) => put(&mut context, map.next_value()?, "context")?,
                Key::Known(F::Timestamp) => put(&mut timestamp, map.next_value()?, "timestamp")?,
                Key::Known(F::Purpose) => put(&mut purpose, map.next_value()?, "purpose")?,
                Key::Other(key) => {
                    extra.insert(key, map.next_value::<Value>()?);
                }
            }
        }
        Ok(Event {
            message_id: message_id.ok_or_else(|| de::Error::missing_field("messageId"))?,
            kind: kind.ok_or_else(|| de::Error::missing_field("type"))?,
            event: event.flatten(),
            name: name.flatten(),
            anonymous_id: anonymous_id.flatten(),
            user_id: user_id.flatten(),
            previous_id: previous_id.flatten(),
            group_id: group_id.flatten(),
            properties: properties.flatten(),
            traits: traits.flatten(),
            context: context.flatten(),
            timestamp: timestamp.flatten(),
            purpose: purpose.flatten(),
            extra,
        })
    }
}

#[derive(Clone, Copy)]
enum ContextField {
    Library,
    Os,
    App,
    Device,
    Locale,
    Timezone,
    Screen,
}

fn context_field(name: &str) -> Option<ContextField> {
    use ContextField::*;
    Some(match name {
        "library" => Library,
        "os" => Os,
        "app" => App,
        "device" => Device,
        "locale" => Locale,
        "timezone" => Timezone,
        "screen" => Screen,
        _ => return None,
    })
}

impl<'de> Deserialize<'de> for Context {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Context, D::Error> {
        d.deserialize_map(ContextVisitor)
    }
}

struct ContextVisitor;

impl<'de> Visitor<'de> for ContextVisitor {
    type Value = Context;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a context object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Context, A::Error> {
        let (mut library, mut os, mut app, mut device) = (None, None, None, None);
        let (mut locale, mut timezone, mut screen) = (None, None, None);
        let mut extra = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed(context_field))? {
            use ContextField as F;
            match key {
                Key::Known(F::Library) => put(&mut library, map.next_value()?, "library")?,
                Key::Known(F::Os) => put(&mut os, map.next_value()?, "os")?,
                Key::Known(F::App) => put(&mut app, map.next_value()?, "app")?,
                Key::Known(F::Device) => put(&mut device, map.next_value()?, "device")?,
                Key::Known(F::Locale) => put(&mut locale, map.next_value()?, "locale")?,
                Key::Known(F::Timezone) => put(&mut timezone, map.next_value()?, "timezone")?,
                Key::Known(F::Screen) => put(&mut screen, map.next_value()?, "screen")?,
                Key::Other(key) => {
                    extra.insert(key, map.next_value::<Value>()?);
                }
            }
        }
        Ok(Context {
            library: library.flatten(),
            os: os.flatten(),
            app: app.flatten(),
            device: device.flatten(),
            locale: locale.flatten(),
            timezone: timezone.flatten(),
            screen: screen.flatten(),
            extra,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventType, Purpose};

    #[test]
    fn known_fields_are_typed_and_the_rest_is_kept_as_sent() {
        let json = r#"{"messageId":"m1","type":"track","event":"Bought","anonymousId":"a",
            "userId":null,"purpose":"advertising","properties":{"price":19.99},
            "context":{"library":{"name":"x","version":"1"},"ip":"203.0.113.7","locale":"fr-FR",
                       "consent":{"categoryPreferences":{"Ads":true}}},
            "integrations":{"All":false},"originalTimestamp":"2026-01-01T00:00:00Z",
            "timestamp":"2026-01-01T00:00:01Z"}"#;
        let e = Event::from_json(json).unwrap();
        assert_eq!(e.message_id.as_str(), "m1");
        assert_eq!(e.kind, EventType::Track);
        assert_eq!(e.user_id, None);
        assert_eq!(e.purpose, Some(Purpose::Advertising));
        assert_eq!(e.properties.as_ref().unwrap()["price"], 19.99);
        let ctx = e.context.as_ref().unwrap();
        assert_eq!(ctx.locale.as_deref(), Some("fr-FR"));
        assert_eq!(ctx.library.as_ref().unwrap().name, "x");
        assert_eq!(ctx.extra["ip"], "203.0.113.7");
        assert!(ctx.extra.contains_key("consent"));
        assert_eq!(e.extra["integrations"]["All"], false);
        assert_eq!(e.extra["originalTimestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(e.extra.len(), 2);
        // What is serialized again reads back the same.
        let again = Event::from_json(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(again, e);
    }

    #[test]
    fn missing_repeated_and_mistyped_fields_are_errors() {
        for bad in [
            r#"{"type":"track","event":"x","anonymousId":"a"}"#,
            r#"{"messageId":"m","event":"x","anonymousId":"a"}"#,
            r#"{"messageId":"m","messageId":"n","type":"track","event":"x","anonymousId":"a"}"#,
            r#"{"messageId":"m","type":"track","event":"x","anonymousId":"a","context":{"locale":"x","locale":"y"}}"#,
            r#"{"messageId":"m","type":"track","event":7,"anonymousId":"a"}"#,
            r#"{"messageId":"m","type":"track","event":"x","anonymousId":"a","context":[]}"#,
            r#"["m","track"]"#,
        ] {
            assert!(Event::from_json(bad).is_err(), "{bad}");
        }
        // An unknown field repeated: the last one is kept (as serde_json's own maps do).
        let e = Event::from_json(
            r#"{"messageId":"m","type":"track","event":"x","anonymousId":"a","channel":"web","channel":"app"}"#,
        )
        .unwrap();
        assert_eq!(e.extra["channel"], "app");
    }
}
