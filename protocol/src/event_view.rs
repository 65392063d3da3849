//! [`EventView`]: an event read from its JSON text the way a collector needs it. The
//! fields it acts on are typed and checked by the same rules as [`Event`]; everything else
//! stays the JSON text that was sent, so the stored copy is written from it directly
//! instead of building a tree of every property and serializing it again.
use std::{borrow::Cow, fmt};

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{value::RawValue, Map, Value};

use crate::event::{check_rules, no_control, LibraryInfo, Present};
use crate::{EventType, MessageId, ProtocolError, Purpose, Timestamp, MAX_EVENT_BYTES};

/// An object's fields in the order sent, values as raw JSON text.
struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut fields = Vec::with_capacity(12);
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    fields.push((key.0, map.next_value()?));
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(V)
    }
}

/// A key, borrowed from the text unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Reads one field's value; a wrong one is named by its field, never quoted.
fn typed<'a, T: Deserialize<'a>>(raw: &'a RawValue, field: &str) -> Result<T, ProtocolError> {
    serde_json::from_str(raw.get()).map_err(|e| {
        let err = ProtocolError::from_json(&e);
        match err {
            ProtocolError::Shape(_) => ProtocolError::Shape(format!("wrong type for `{field}`")),
            other => other,
        }
    })
}

/// A string field that may be `null`, borrowed unless it had escapes.
fn text<'a>(raw: &'a RawValue, field: &str) -> Result<Option<Cow<'a, str>>, ProtocolError> {
    Ok(typed::<Option<Key<'a>>>(raw, field)?.map(|k| k.0))
}

fn is_object_or_null(raw: &RawValue) -> bool {
    let s = raw.get();
    s.starts_with('{') || s == "null"
}

/// An event as a collector handles it.
pub struct EventView<'a> {
    /// Idempotency key.
    pub message_id: MessageId,
    /// Event type.
    pub kind: EventType,
    /// Name of a `track` event.
    pub event: Option<Cow<'a, str>>,
    /// Name of a `screen` or `page`.
    pub name: Option<Cow<'a, str>>,
    /// Install or browser id, as sent.
    pub anonymous_id: Option<Cow<'a, str>>,
    /// User id, as sent.
    pub user_id: Option<Cow<'a, str>>,
    /// Previous id of an `alias`, as sent.
    pub previous_id: Option<Cow<'a, str>>,
    /// When the event happened, by the device's clock.
    pub timestamp: Option<Timestamp>,
    /// What the event is for, when it says.
    pub purpose: Option<Purpose>,
    /// `context.consent.categoryPreferences`, what Segment's consent tools stamp.
    pub category_preferences: Option<Map<String, Value>>,
    fields: Fields<'a>,
    /// `context`'s fields when it has an `ip` (which is then left out of the stored copy).
    context_with_ip: Option<Fields<'a>>,
}

impl<'a> EventView<'a> {
    /// Reads one event and checks it as [`Event::from_json`](crate::Event::from_json) does.
    pub fn parse(json: &'a str) -> Result<EventView<'a>, ProtocolError> {
        if json.len() > MAX_EVENT_BYTES {
            return Err(ProtocolError::EventTooLarge);
        }
        let fields: Fields<'a> =
            serde_json::from_str(json).map_err(|e| ProtocolError::from_json(&e))?;
        let mut seen: Vec<&str> = Vec::with_capacity(16);
        let (mut message_id, mut kind) = (None, None);
        let (mut event, mut name, mut anonymous_id, mut user_id) = (None, None, None, None);
        let (mut previous_id, mut group_id) = (None, None);
        let (mut timestamp, mut purpose) = (None, None);
        let mut category_preferences = None;
        let mut context_with_ip = None;
        for (key, raw) in &fields.0 {
            let key: &str = key;
            let known = [
                "messageId",
                "type",
                "event",
                "name",
                "anonymousId",
                "userId",
                "previousId",
                "groupId",
                "properties",
                "traits",
                "context",
                "timestamp",
                "purpose",
            ];
            if known.contains(&key) {
                if seen.contains(&key) {
                    return Err(ProtocolError::Shape(format!("duplicate field `{key}`")));
                }
                seen.push(key);
            }
            match key {
                "messageId" => message_id = Some(typed::<MessageId>(raw, key)?),
                "type" => kind = Some(typed::<EventType>(raw, key)?),
                "event" => event = text(raw, key)?,
                "name" => name = text(raw, key)?,
                "anonymousId" => anonymous_id = text(raw, key)?,
                "userId" => user_id = text(raw, key)?,
                "previousId" => previous_id = text(raw, key)?,
                "groupId" => group_id = text(raw, key)?,
                "timestamp" => timestamp = typed::<Option<Timestamp>>(raw, key)?,
                "purpose" => purpose = typed::<Option<Purpose>>(raw, key)?,
                "properties" | "traits" if !is_object_or_null(raw) => {
                    return Err(ProtocolError::Shape(format!("wrong type for `{key}`")))
                }
                "context" if raw.get() != "null" => {
                    let (prefs, with_ip) = read_context(raw)?;
                    category_preferences = prefs;
                    context_with_ip = with_ip;
                }
                _ => {}
            }
        }
        let message_id = message_id.ok_or(ProtocolError::MissingField("messageId"))?;
        let kind = kind.ok_or(ProtocolError::MissingField("type"))?;
        let present = |v: &Option<Cow<'_, str>>| v.as_deref().is_some_and(|s| !s.is_empty());
        no_control("messageId", message_id.as_str())?;
        for (field, v) in [
            ("event", &event),
            ("name", &name),
            ("anonymousId", &anonymous_id),
            ("userId", &user_id),
            ("previousId", &previous_id),
            ("groupId", &group_id),
        ] {
            if let Some(v) = v {
                no_control(field, v)?;
            }
        }
        check_rules(
            kind,
            Present {
                anonymous_id: present(&anonymous_id),
                user_id: present(&user_id),
                event: present(&event),
                previous_id: present(&previous_id),
                group_id: present(&group_id),
            },
        )?;
        Ok(EventView {
            message_id,
            kind,
            event,
            name,
            anonymous_id,
            user_id,
            previous_id,
            timestamp,
            purpose,
            category_preferences,
            fields,
            context_with_ip,
        })
    }

    /// Whose event it is, as sent: the `anonymousId`, or the `userId` when there is none.
    pub fn raw_subject(&self) -> &str {
        self.anonymous_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(self.user_id.as_deref())
            .unwrap_or_default()
    }

    /// The purpose the event counts under: `analytics` when it names none.
    pub fn effective_purpose(&self) -> Purpose {
        self.purpose.unwrap_or_default()
    }

    /// The event as it is stored: `anonymousId`, `userId` and `previousId` replaced by
    /// `stored(raw id)`, `writeKey` and `context.ip` left out, every other field as sent.
    pub fn stored_json(&self, mut stored: impl FnMut(&str) -> String) -> String {
        let mut out = String::with_capacity(MAX_EVENT_BYTES.min(512));
        out.push('{');
        let mut first = true;
        for (key, raw) in &self.fields.0 {
            let key: &str = key;
            if key == "writeKey" {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            push_json_string(&mut out, key);
            out.push(':');
            match key {
                "anonymousId" | "userId" | "previousId" => {
                    // Read once by `parse` (which refuses a repeated one).
                    let id = match key {
                        "anonymousId" => &self.anonymous_id,
                        "userId" => &self.user_id,
                        _ => &self.previous_id,
                    };
                    match id {
                        Some(id) => push_json_string(&mut out, &stored(id)),
                        None => out.push_str("null"),
                    }
                }
                "context" => match &self.context_with_ip {
                    Some(ctx) => {
                        out.push('{');
                        let mut first = true;
                        for (k, v) in ctx.0.iter().filter(|(k, _)| k != "ip") {
                            if !first {
                                out.push(',');
                            }
                            first = false;
                            push_json_string(&mut out, k);
                            out.push(':');
                            out.push_str(v.get());
                        }
                        out.push('}');
                    }
                    None => out.push_str(raw.get()),
                },
                _ => out.push_str(raw.get()),
            }
        }
        out.push('}');
        out
    }
}

/// Checks `context` as [`Context`](crate::Context) would be read; returns Segment's
/// consent stamp, and the fields when there is an `ip` to leave out.
#[allow(clippy::type_complexity)]
fn read_context(
    raw: &RawValue,
) -> Result<(Option<Map<String, Value>>, Option<Fields<'_>>), ProtocolError> {
    let fields: Fields<'_> = serde_json::from_str(raw.get())
        .map_err(|_| ProtocolError::Shape("wrong type for `context`".into()))?;
    let mut seen: Vec<&str> = Vec::new();
    let mut prefs = None;
    let mut has_ip = false;
    for (key, value) in &fields.0 {
        let key: &str = key;
        let known = [
            "library", "os", "app", "device", "locale", "timezone", "screen",
        ];
        if known.contains(&key) {
            if seen.contains(&key) {
                return Err(ProtocolError::Shape(format!(
                    "duplicate field `context.{key}`"
                )));
            }
            seen.push(key);
        }
        match key {
            "library" => {
                typed::<Option<LibraryInfo>>(value, "context.library")?;
            }
            "locale" | "timezone" => {
                typed::<Option<String>>(value, key)?;
            }
            "ip" => has_ip = true,
            "consent" => {
                if let Ok(Value::Object(mut consent)) = serde_json::from_str(value.get()) {
                    if let Some(Value::Object(p)) = consent.remove("categoryPreferences") {
                        prefs = Some(p);
                    }
                }
            }
            _ => {}
        }
    }
    Ok((prefs, has_ip.then_some(fields)))
}

/// Appends `s` as a JSON string. Most keys and ids need no escaping and are copied as
/// they are; the rest go through serde_json.
fn push_json_string(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).expect("strings serialize"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;

    const SAMPLES: &[&str] = &[
        r#"{"messageId":"m1","type":"track","event":"Bought","anonymousId":"a","userId":null,
            "purpose":"advertising","properties":{"price":19.99},"writeKey":"wk_secret",
            "context":{"library":{"name":"x","version":"1"},"ip":"203.0.113.7","locale":"fr-FR",
                       "consent":{"categoryPreferences":{"Ads":true}}},
            "integrations":{"All":false},"timestamp":"2026-01-01T00:00:01Z"}"#,
        r#"{"messageId":"m2","type":"alias","userId":"u","previousId":"p"}"#,
        r#"{"messageId":"m3","type":"identify","userId":"u\"q","traits":{"plan":"pro"},"context":{"locale":"de"}}"#,
    ];

    /// The view accepts and refuses exactly what `Event` does, and what it stores reads
    /// back as the `Event` with its ids replaced and the key and address left out.
    #[test]
    fn the_view_agrees_with_event() {
        for json in SAMPLES {
            let view = EventView::parse(json).unwrap();
            let mut event = Event::from_json(json).unwrap();
            assert_eq!(view.message_id, event.message_id);
            assert_eq!(view.kind, event.kind);
            assert_eq!(view.anonymous_id.as_deref(), event.anonymous_id.as_deref());
            assert_eq!(view.user_id.as_deref(), event.user_id.as_deref());
            assert_eq!(view.timestamp, event.timestamp);
            assert_eq!(view.effective_purpose(), event.effective_purpose());
            let stored: Event =
                serde_json::from_str(&view.stored_json(|raw| format!("k1.{}", raw.len()))).unwrap();
            let ps = |v: &Option<String>| v.as_ref().map(|r| format!("k1.{}", r.len()));
            event.anonymous_id = ps(&event.anonymous_id);
            event.user_id = ps(&event.user_id);
            event.previous_id = ps(&event.previous_id);
            event.extra.remove("writeKey");
            if let Some(ctx) = event.context.as_mut() {
                ctx.extra.remove("ip");
            }
            assert_eq!(stored, event, "{json}");
        }
        let view = EventView::parse(SAMPLES[0]).unwrap();
        let stored = view.stored_json(|_| "k1.x".into());
        assert!(!stored.contains("203.0.113.7") && !stored.contains("wk_secret"));
        assert_eq!(view.category_preferences.unwrap()["Ads"], true);
    }

    /// Keys are compared decoded: an escaped spelling of an id, the key or the address
    /// is treated as the plain one.
    #[test]
    fn escaped_keys_are_recognized() {
        let json = r#"{"messageId":"m","type":"track","event":"x","anonym\u006fusId":"raw-id",
            "write\u004bey":"wk_secret","context":{"\u0069p":"203.0.113.7","locale":"en"}}"#;
        let view = EventView::parse(json).unwrap();
        assert_eq!(view.anonymous_id.as_deref(), Some("raw-id"));
        let stored = view.stored_json(|_| "k1.pseudonym".into());
        for secret in ["raw-id", "wk_secret", "203.0.113.7"] {
            assert!(!stored.contains(secret), "{stored}");
        }
        let twice = r#"{"messageId":"m","type":"track","event":"x","anonymousId":"a","anonym\u006fusId":"b"}"#;
        assert!(EventView::parse(twice).is_err());
    }

    #[test]
    fn strings_are_written_as_json_that_reads_back_the_same() {
        for text in [
            "plain",
            "",
            "q\"uote",
            "back\\slash",
            "ctl\u{1}\n",
            "ünïcode ✓",
            "\u{7f}/",
        ] {
            let mut out = String::new();
            push_json_string(&mut out, text);
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), text, "{out}");
        }
    }

    #[test]
    fn the_view_refuses_what_event_refuses() {
        for bad in crate::event::tests::INVALID_EVENTS {
            let err = EventView::parse(bad)
                .err()
                .unwrap_or_else(|| panic!("view: {bad}"));
            assert!(!err.to_string().contains("secret-sauce"), "{err}");
        }
    }
}
