use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ProtocolError;

/// What an event or a piece of data is used for. Consent is given per purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Purpose {
    /// Strictly necessary for the service the user asked for; never needs consent.
    Necessary,
    /// Measurement and product analytics. The purpose of an event that names none.
    #[default]
    Analytics,
    /// Personalising content and recommendations.
    Personalization,
    /// Advertising, including measurement for advertisers. Denied by a GPC signal.
    Advertising,
}

impl Purpose {
    /// Every purpose, in a fixed order.
    pub const ALL: [Purpose; 4] = [
        Purpose::Necessary,
        Purpose::Analytics,
        Purpose::Personalization,
        Purpose::Advertising,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Necessary => "necessary",
            Purpose::Analytics => "analytics",
            Purpose::Personalization => "personalization",
            Purpose::Advertising => "advertising",
        }
    }

    /// A small stable number, used by on-disk formats.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The inverse of [`Purpose::code`].
    pub fn from_code(code: u8) -> Option<Purpose> {
        Purpose::ALL.get(usize::from(code)).copied()
    }
}

impl FromStr for Purpose {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Purpose::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or(ProtocolError::UnknownPurpose)
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Purpose {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Purpose {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
