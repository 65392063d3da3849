use std::{collections::BTreeMap, fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{ProtocolError, Purpose, Timestamp};

/// Purpose → granted. A purpose that is absent was not granted.
pub type PurposeMap = BTreeMap<Purpose, bool>;

/// How a consent choice was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMethod {
    /// The user accepted every purpose.
    AcceptAll,
    /// The user rejected every optional purpose.
    RejectAll,
    /// The user chose purpose by purpose.
    Custom,
    /// A Global Privacy Control signal denied advertising.
    Gpc,
    /// The user withdrew consent given earlier.
    Withdraw,
    /// The policy changed: optional purposes stop until the user answers again.
    PolicyChange,
}

impl ConsentMethod {
    /// Every method, in a fixed order.
    pub const ALL: [ConsentMethod; 6] = [
        ConsentMethod::AcceptAll,
        ConsentMethod::RejectAll,
        ConsentMethod::Custom,
        ConsentMethod::Gpc,
        ConsentMethod::Withdraw,
        ConsentMethod::PolicyChange,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentMethod::AcceptAll => "accept_all",
            ConsentMethod::RejectAll => "reject_all",
            ConsentMethod::Custom => "custom",
            ConsentMethod::Gpc => "gpc",
            ConsentMethod::Withdraw => "withdraw",
            ConsentMethod::PolicyChange => "policy_change",
        }
    }
}

impl FromStr for ConsentMethod {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConsentMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or(ProtocolError::UnknownMethod)
    }
}

impl fmt::Display for ConsentMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What produced a consent record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentSource {
    /// An app, through an Assent SDK.
    Sdk,
    /// A website, through the Assent banner.
    Banner,
    /// A server-side call, or a Segment consent stamp seen by the collector.
    Api,
}

impl FromStr for ConsentSource {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sdk" => Ok(ConsentSource::Sdk),
            "banner" => Ok(ConsentSource::Banner),
            "api" => Ok(ConsentSource::Api),
            _ => Err(ProtocolError::UnknownSource),
        }
    }
}

/// The screen a choice was made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// The banner's first layer (Accept all, Reject all, Customize).
    First,
    /// The purpose-by-purpose preferences screen.
    Second,
    /// A program call (`showPreferences` aside), such as `assent.setConsent`.
    Api,
    /// A browser signal such as Global Privacy Control, or a policy change, with no click.
    Signal,
}

/// How a choice was made: the screen and the control used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interaction {
    /// The screen.
    pub layer: Layer,
    /// The control, such as `accept_all`, `reject_all`, `save` or `withdraw`.
    pub control: String,
}

/// Proof of one consent choice: who, what, under which policy, how and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentRecord {
    /// Unique id of this record (UUIDv7 from Assent's SDKs).
    pub consent_id: String,
    /// The subject: the `anonymousId` the events carry.
    pub subject_id: String,
    /// The user id, when one is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The state after this choice, for every purpose.
    pub purposes: PurposeMap,
    /// The version of the privacy policy the user answered.
    pub policy_version: String,
    /// How the choice was made.
    pub method: ConsentMethod,
    /// What produced the record.
    pub source: ConsentSource,
    /// When the choice was made, by the device's clock.
    pub timestamp: Timestamp,
    /// Whether a Global Privacy Control signal was present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpc: Option<bool>,
    /// Locale the choice was presented in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// IAB TCF v2 TC string, for banners speaking TCF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcf: Option<String>,
    /// Version of the banner or SDK that showed the notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_version: Option<String>,
    /// SHA-256 (hex) of the exact texts and configuration shown, so what the person saw
    /// can be proven later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice_hash: Option<String>,
    /// Which screen and which control the choice was made with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction: Option<Interaction>,
    /// The state before this choice; absent for a subject's first record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PurposeMap>,
}

impl ConsentRecord {
    /// Parses and checks one consent record.
    pub fn from_json(json: &str) -> Result<ConsentRecord, ProtocolError> {
        let record: ConsentRecord =
            serde_json::from_str(json).map_err(|e| ProtocolError::from_json(&e))?;
        record.check()?;
        Ok(record)
    }

    /// Parses and checks one consent record from a decoded JSON value.
    pub fn from_value(value: serde_json::Value) -> Result<ConsentRecord, ProtocolError> {
        let record: ConsentRecord =
            serde_json::from_value(value).map_err(|e| ProtocolError::from_json(&e))?;
        record.check()?;
        Ok(record)
    }

    /// Whether `purpose` is granted by this record. `necessary` always is.
    pub fn grants(&self, purpose: Purpose) -> bool {
        purpose == Purpose::Necessary || self.purposes.get(&purpose).copied().unwrap_or(false)
    }

    fn check(&self) -> Result<(), ProtocolError> {
        if self.consent_id.is_empty() || self.consent_id.chars().count() > 100 {
            return Err(ProtocolError::MissingField("consentId"));
        }
        if self.subject_id.is_empty() {
            return Err(ProtocolError::MissingField("subjectId"));
        }
        if self.policy_version.is_empty() {
            return Err(ProtocolError::MissingField("policyVersion"));
        }
        crate::event::no_control("consentId", &self.consent_id)?;
        crate::event::no_control("subjectId", &self.subject_id)?;
        crate::event::no_control("policyVersion", &self.policy_version)?;
        for (field, v) in [
            ("userId", &self.user_id),
            ("locale", &self.locale),
            ("uiVersion", &self.ui_version),
            ("tcf", &self.tcf),
        ] {
            if let Some(v) = v {
                crate::event::no_control(field, v)?;
            }
        }
        if let Some(h) = &self.notice_hash {
            if h.len() != 64
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(ProtocolError::Shape(
                    "noticeHash must be 64 lowercase hex digits (SHA-256)".into(),
                ));
            }
        }
        if self
            .ui_version
            .as_ref()
            .is_some_and(|v| v.is_empty() || v.len() > 64)
        {
            return Err(ProtocolError::Shape(
                "uiVersion must be 1 to 64 bytes".into(),
            ));
        }
        if let Some(i) = &self.interaction {
            let c = &i.control;
            if c.is_empty()
                || c.len() > 40
                || !c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            {
                return Err(ProtocolError::Shape(
                    "interaction.control must be 1 to 40 of a-z and _".into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_a_record_are_refused() {
        for (field, value) in [
            ("consentId", r"c\u0000"),
            ("policyVersion", r"1\u0000"),
            ("subjectId", r"s\u0007"),
        ] {
            let mut json: serde_json::Value = serde_json::from_str(
                r#"{"consentId":"c","subjectId":"s","purposes":{"analytics":true},"policyVersion":"1","method":"custom","source":"sdk","timestamp":"2026-01-01T00:00:00Z"}"#,
            )
            .unwrap();
            json[field] = serde_json::from_str(&format!("\"{value}\"")).unwrap();
            assert_eq!(
                ConsentRecord::from_value(json),
                Err(ProtocolError::ControlCharacter(field))
            );
        }
    }

    #[test]
    fn method_names_round_trip() {
        for m in ConsentMethod::ALL {
            assert_eq!(m.as_str().parse::<ConsentMethod>().unwrap(), m);
            assert_eq!(
                serde_json::to_string(&m).unwrap(),
                format!("\"{}\"", m.as_str())
            );
        }
        assert_eq!(
            "maybe".parse::<ConsentMethod>(),
            Err(ProtocolError::UnknownMethod)
        );
    }

    #[test]
    fn necessary_is_always_granted() {
        let r = ConsentRecord::from_json(
            r#"{"consentId":"c","subjectId":"s","purposes":{"analytics":true},"policyVersion":"1","method":"custom","source":"sdk","timestamp":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert!(r.grants(Purpose::Necessary));
        assert!(r.grants(Purpose::Analytics));
        assert!(!r.grants(Purpose::Advertising));
    }

    #[test]
    fn unknown_purposes_in_a_record_are_refused() {
        let r = ConsentRecord::from_json(
            r#"{"consentId":"c","subjectId":"s","purposes":{"mind_reading":true},"policyVersion":"1","method":"custom","source":"sdk","timestamp":"2026-01-01T00:00:00Z"}"#,
        );
        assert!(matches!(r, Err(ProtocolError::Shape(_))));
    }
}
