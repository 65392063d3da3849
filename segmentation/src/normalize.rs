//! Normalization of what events say, so that equal things compare equal: countries as
//! ISO 3166-1 alpha-2 codes (from alpha-3 codes, names and common aliases, through the
//! maintained `celes` tables), times as UTC, amounts in one configured currency.
use std::{collections::BTreeMap, str::FromStr};

use serde::{Deserialize, Serialize};
use time::{format_description::well_known::Rfc3339, Date, OffsetDateTime};

use crate::error::{Error, Result};

/// The ISO 3166-1 alpha-2 code (upper case) of a country given by its alpha-2 or
/// alpha-3 code, its name or a common alias, in any case; None when it names none.
pub fn country_code(input: &str) -> Option<String> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return None;
    }
    // celes matches names without spaces or punctuation ("UnitedKingdom").
    let squeezed: String = trimmed.chars().filter(|c| c.is_alphanumeric()).collect();
    celes::Country::from_str(trimmed)
        .or_else(|_| celes::Country::from_str(&squeezed))
        .ok()
        .map(|c| c.alpha2.to_uppercase())
}

/// A time in UTC, Unix milliseconds: an RFC 3339 date-time with any offset, or a date
/// (`YYYY-MM-DD`, taken as midnight UTC).
pub fn utc_millis(input: &str) -> Option<i64> {
    let t = input.trim();
    if let Ok(at) = OffsetDateTime::parse(t, &Rfc3339) {
        return Some((at.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(t, &format)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
}

/// Amounts converted into one currency at configured rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Currencies {
    /// The currency amounts are given in (ISO 4217, upper case).
    pub base: String,
    /// How much of `base` one unit of each other currency is.
    pub rates: BTreeMap<String, f64>,
}

impl Currencies {
    /// Parses `base` and rates written `USD=0.92,GBP=1.17` (one unit in `base`).
    pub fn parse(base: &str, rates: &str) -> Result<Currencies> {
        let code = |c: &str| {
            let c = c.trim().to_uppercase();
            if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) {
                Ok(c)
            } else {
                Err(Error::Data(format!(
                    "`{c}` is not an ISO 4217 currency code"
                )))
            }
        };
        let base = code(base)?;
        let mut parsed = BTreeMap::new();
        for pair in rates.split(',').filter(|p| !p.trim().is_empty()) {
            let (c, r) = pair
                .split_once('=')
                .ok_or_else(|| Error::Data(format!("`{pair}`: a rate is CODE=NUMBER")))?;
            let rate: f64 = r
                .trim()
                .parse()
                .ok()
                .filter(|r: &f64| r.is_finite() && *r > 0.0)
                .ok_or_else(|| Error::Data(format!("`{pair}`: a rate is a positive number")))?;
            parsed.insert(code(c)?, rate);
        }
        Ok(Currencies {
            base,
            rates: parsed,
        })
    }

    /// `amount` of `currency` in the base currency; None for a currency without a rate.
    pub fn convert(&self, amount: f64, currency: &str) -> Option<f64> {
        let c = currency.trim().to_uppercase();
        if c == self.base {
            return Some(amount);
        }
        self.rates.get(&c).map(|r| amount * r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_times_and_amounts_normalize() {
        for (input, want) in [
            ("PRT", Some("PT")),
            ("pt", Some("PT")),
            ("Portugal", Some("PT")),
            ("United Kingdom", Some("GB")),
            ("deu", Some("DE")),
            ("Atlantis", None),
            ("", None),
        ] {
            assert_eq!(country_code(input).as_deref(), want, "{input}");
        }
        assert_eq!(
            utc_millis("2026-12-01T10:00:00+02:00"),
            utc_millis("2026-12-01T08:00:00Z")
        );
        assert_eq!(utc_millis("1970-01-02"), Some(86_400_000));
        assert_eq!(utc_millis("yesterday"), None);
        let c = Currencies::parse("eur", "USD=0.5, gbp=1.25").unwrap();
        assert_eq!(c.convert(10.0, "usd"), Some(5.0));
        assert_eq!(c.convert(10.0, "GBP"), Some(12.5));
        assert_eq!(c.convert(10.0, "EUR"), Some(10.0));
        assert_eq!(c.convert(10.0, "JPY"), None);
        assert!(Currencies::parse("euro", "").is_err());
        assert!(Currencies::parse("EUR", "USD=-1").is_err());
        assert!(Currencies::parse("EUR", "USD").is_err());
    }
}
