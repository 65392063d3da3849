use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::{ProtocolError, Purpose, Timestamp, MAX_EVENT_BYTES, MAX_MESSAGE_ID_CHARS};

/// The id that makes an event idempotent: a non-empty string of at most 100 characters.
/// Assent's SDKs use UUIDv7; other Segment-compatible libraries send what they like.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct MessageId(String);

impl MessageId {
    /// Accepts any non-empty string of at most 100 characters.
    pub fn parse(s: impl Into<String>) -> Result<MessageId, ProtocolError> {
        let s = s.into();
        let chars = s.chars().count();
        if chars == 0 || chars > MAX_MESSAGE_ID_CHARS {
            return Err(ProtocolError::InvalidMessageId);
        }
        Ok(MessageId(s))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        MessageId::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The Segment event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// An action the user took (`event` names it).
    Track,
    /// A screen the user saw in an app (`name` names it).
    Screen,
    /// A page the user saw on a website (`name` names it).
    Page,
    /// Who the user is (`userId`, `traits`).
    Identify,
    /// Links `previousId` to `userId`.
    Alias,
    /// Associates the user with a group (`groupId`, `traits`).
    Group,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Track => "track",
            EventType::Screen => "screen",
            EventType::Page => "page",
            EventType::Identify => "identify",
            EventType::Alias => "alias",
            EventType::Group => "group",
        }
    }
}

/// `context.library`: which library produced the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LibraryInfo {
    /// Library name, such as `assent-core`.
    pub name: String,
    /// Library version.
    pub version: String,
}

/// The event's `context`. The fields Assent's SDKs fill are typed; anything else a
/// Segment-compatible library sends is kept in `extra`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Context {
    /// Producing library.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub library: Option<LibraryInfo>,
    /// `{"name", "version"}` of the operating system.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<Value>,
    /// `{"name", "version", "build"}` of the app.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<Value>,
    /// `{"type"}` of the device (`ios`, `android`, `desktop`, `server`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<Value>,
    /// BCP 47 locale, such as `fr-FR`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// IANA time zone, such as `Europe/Paris`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// `{"width", "height", "density"}` of the screen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub screen: Option<Value>,
    /// Any other context fields, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One Segment Tracking API event plus Assent's `purpose`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Idempotency key, fixed when the event is created.
    pub message_id: MessageId,
    /// Event type.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Name of a `track` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Name of a `screen` or `page`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Pseudonymous install or browser id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
    /// Known user id (pseudonymized by Assent's SDKs when a pepper is configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Previous id of an `alias`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_id: Option<String>,
    /// Group of a `group` call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// Event properties (`track`, `screen`, `page`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Map<String, Value>>,
    /// User or group traits (`identify`, `group`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traits: Option<Map<String, Value>>,
    /// Where the event came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
    /// When the event happened, by the device's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    /// Assent extension: what the event is for. Absent means `analytics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<Purpose>,
    /// Other Segment fields (`integrations`, `originalTimestamp`, `channel`...), kept as
    /// sent so that nothing a Segment library sends is silently lost.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Event {
    /// Parses one event from JSON and checks the rules of its type.
    pub fn from_json(json: &str) -> Result<Event, ProtocolError> {
        if json.len() > MAX_EVENT_BYTES {
            return Err(ProtocolError::EventTooLarge);
        }
        let event: Event = serde_json::from_str(json).map_err(|e| ProtocolError::from_json(&e))?;
        event.check()?;
        Ok(event)
    }

    /// Parses one event from an already decoded JSON value and checks it.
    pub fn from_value(value: Value) -> Result<Event, ProtocolError> {
        let size = serde_json::to_vec(&value)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_EVENT_BYTES {
            return Err(ProtocolError::EventTooLarge);
        }
        let event: Event =
            serde_json::from_value(value).map_err(|e| ProtocolError::from_json(&e))?;
        event.check()?;
        Ok(event)
    }

    /// The purpose the event counts under: `analytics` when it names none.
    pub fn effective_purpose(&self) -> Purpose {
        self.purpose.unwrap_or_default()
    }

    /// The rules of the Segment spec for each type.
    fn check(&self) -> Result<(), ProtocolError> {
        fn present(v: &Option<String>) -> bool {
            v.as_deref().is_some_and(|s| !s.is_empty())
        }
        no_control("messageId", self.message_id.as_str())?;
        for (field, v) in [
            ("event", &self.event),
            ("name", &self.name),
            ("anonymousId", &self.anonymous_id),
            ("userId", &self.user_id),
            ("previousId", &self.previous_id),
            ("groupId", &self.group_id),
        ] {
            if let Some(v) = v {
                no_control(field, v)?;
            }
        }
        check_rules(
            self.kind,
            Present {
                anonymous_id: present(&self.anonymous_id),
                user_id: present(&self.user_id),
                event: present(&self.event),
                previous_id: present(&self.previous_id),
                group_id: present(&self.group_id),
            },
        )
    }
}

/// Refuses an identifier or name with a control character in it.
pub(crate) fn no_control(field: &'static str, value: &str) -> Result<(), ProtocolError> {
    if value.chars().any(char::is_control) {
        return Err(ProtocolError::ControlCharacter(field));
    }
    Ok(())
}

/// Which of the fields the type rules look at are there and not empty.
pub(crate) struct Present {
    pub anonymous_id: bool,
    pub user_id: bool,
    pub event: bool,
    pub previous_id: bool,
    pub group_id: bool,
}

/// The rules of the Segment spec for each type (for [`Event`] and the collector's view).
pub(crate) fn check_rules(kind: EventType, p: Present) -> Result<(), ProtocolError> {
    if !p.anonymous_id && !p.user_id {
        return Err(ProtocolError::MissingField("anonymousId or userId"));
    }
    match kind {
        EventType::Track if !p.event => Err(ProtocolError::MissingField("event")),
        EventType::Alias if !p.previous_id => Err(ProtocolError::MissingField("previousId")),
        EventType::Alias if !p.user_id => Err(ProtocolError::MissingField("userId")),
        EventType::Group if !p.group_id => Err(ProtocolError::MissingField("groupId")),
        _ => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

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

    /// Events no reader of protocol v1 accepts: `Event` here, `EventView` in its own tests.
    pub(crate) const INVALID_EVENTS: &[&str] = &[
        r#"{"type":"track","event":"x","anonymousId":"a"}"#,
        r#"{"messageId":"m","event":"x","anonymousId":"a"}"#,
        r#"{"messageId":"m","messageId":"n","type":"track","event":"x","anonymousId":"a"}"#,
        r#"{"messageId":"m","type":"track","event":"x","anonymousId":"a","context":{"locale":"x","locale":"y"}}"#,
        r#"{"messageId":"m","type":"track","event":7,"anonymousId":"a"}"#,
        r#"{"messageId":"m","type":"track","event":"x","anonymousId":"a","context":[]}"#,
        r#"{"messageId":"m","type":"track","event":"x","anonymousId":"a","properties":[1]}"#,
        r#"{"messageId":"m","type":"track","event":"x","anonymousId":"a","context":{"library":{"name":"x"}}}"#,
        r#"{"messageId":"m","type":"track","event":"x","anonymousId":"a","purpose":"secret-sauce"}"#,
        r#"{"messageId":"","type":"track","event":"x","anonymousId":"a"}"#,
        r#"{"messageId":"m","type":"track","anonymousId":"a"}"#,
        r#"{"messageId":"m","type":"group","userId":"u"}"#,
        r#"["m","track"]"#,
        r#"{"messageId":"m\u0000","type":"track","event":"x","anonymousId":"a"}"#,
        r#"{"messageId":"m","type":"track","event":"x\u0000y","anonymousId":"a"}"#,
        r#"{"messageId":"m","type":"page","name":"\u001b[2J","anonymousId":"a"}"#,
        r#"{"messageId":"m","type":"track","event":"x","anonymousId":"a\u0000"}"#,
    ];

    #[test]
    fn control_characters_in_ids_and_names_are_named_errors() {
        let e = Event::from_json(
            r#"{"messageId":"m","type":"track","event":"x\u0000","anonymousId":"a"}"#,
        );
        assert_eq!(e, Err(ProtocolError::ControlCharacter("event")));
        // Elsewhere (properties) they are data, kept as sent.
        assert!(Event::from_json(
            r#"{"messageId":"m","type":"track","event":"x","anonymousId":"a","properties":{"p":"\u0000"}}"#
        )
        .is_ok());
    }

    #[test]
    fn missing_repeated_and_mistyped_fields_are_errors() {
        for bad in INVALID_EVENTS {
            assert!(Event::from_json(bad).is_err(), "{bad}");
        }
        // An unknown field repeated: the last one is kept (as serde_json's own maps do).
        let e = Event::from_json(
            r#"{"messageId":"m","type":"track","event":"x","anonymousId":"a","channel":"web","channel":"app"}"#,
        )
        .unwrap();
        assert_eq!(e.extra["channel"], "app");
    }

    #[test]
    fn message_id_bounds() {
        assert!(MessageId::parse("").is_err());
        assert!(MessageId::parse("a".repeat(100)).is_ok());
        assert!(MessageId::parse("é".repeat(100)).is_ok());
        assert!(MessageId::parse("a".repeat(101)).is_err());
    }

    #[test]
    fn track_needs_a_name_and_an_identity() {
        let ok = r#"{"messageId":"m1","type":"track","event":"Bought","anonymousId":"a"}"#;
        assert_eq!(
            Event::from_json(ok).unwrap().effective_purpose(),
            Purpose::Analytics
        );
        let no_name = r#"{"messageId":"m1","type":"track","anonymousId":"a"}"#;
        assert_eq!(
            Event::from_json(no_name),
            Err(ProtocolError::MissingField("event"))
        );
        let no_id = r#"{"messageId":"m1","type":"track","event":"x"}"#;
        assert_eq!(
            Event::from_json(no_id),
            Err(ProtocolError::MissingField("anonymousId or userId"))
        );
    }

    #[test]
    fn unknown_purpose_and_type_are_shape_errors_without_the_value() {
        let bad = r#"{"messageId":"m1","type":"track","event":"x","anonymousId":"a","purpose":"secret-sauce"}"#;
        let err = Event::from_json(bad).unwrap_err();
        assert!(!err.to_string().contains("secret-sauce"), "{err}");
        let bad_type = r#"{"messageId":"m1","type":"teleport","anonymousId":"a"}"#;
        assert!(matches!(
            Event::from_json(bad_type),
            Err(ProtocolError::Shape(_))
        ));
    }

    #[test]
    fn oversized_events_are_refused() {
        let big = format!(
            r#"{{"messageId":"m1","type":"track","event":"x","anonymousId":"a","properties":{{"p":"{}"}}}}"#,
            "x".repeat(MAX_EVENT_BYTES)
        );
        assert_eq!(Event::from_json(&big), Err(ProtocolError::EventTooLarge));
    }

    #[test]
    fn unknown_context_fields_are_kept() {
        let json = r#"{"messageId":"m1","type":"page","anonymousId":"a","context":{"ip":"0.0.0.0","consent":{"categoryPreferences":{"analytics":true}}}}"#;
        let e = Event::from_json(json).unwrap();
        let ctx = e.context.unwrap();
        assert!(ctx.extra.contains_key("consent"));
    }
}
