//! Targeting conditions: who a variant or a flag's rule is for. A condition is JSON
//! such as `{"all": [{"country": ["FR", "BE"]}, {"device": ["mobile"]},
//! {"app_version": {"gte": "2.3.0"}}, {"rollout": 25}]}` and is evaluated against a
//! [`Context`] the caller builds (segments, parsed user agent, country, local time,
//! app version), so the same rules run on the server and, later, on a device.

use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};
use crate::hash::rollout_bucket;

/// What a condition is evaluated against.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The pseudonymous subject (rollouts hash it).
    pub subject: &'a str,
    /// The names of the audiences the subject is in.
    pub segments: &'a [String],
    /// Device type: `mobile`, `tablet`, `desktop`, `tv`, `bot`…
    pub device: Option<&'a str>,
    /// Operating system, e.g. `iOS`, `Android`, `Windows`, `Mac OSX`.
    pub os: Option<&'a str>,
    /// Browser, e.g. `Chrome`, `Safari`, `Firefox`.
    pub browser: Option<&'a str>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<&'a str>,
    /// The app's version.
    pub app_version: Option<&'a semver::Version>,
    /// Now, Unix milliseconds.
    pub now_ms: i64,
    /// The client's offset from UTC in minutes (its local time), when known.
    pub utc_offset_minutes: Option<i32>,
}

impl Context<'_> {
    /// The local hour (0-23) and weekday (0 = Monday) when the offset is known.
    pub fn local_time(&self) -> Option<(u8, u8)> {
        let offset = self.utc_offset_minutes? as i64;
        let minutes = self.now_ms.div_euclid(60_000) + offset;
        let hour = minutes.div_euclid(60).rem_euclid(24) as u8;
        // 1970-01-01 was a Thursday (3 when Monday is 0).
        let weekday = (minutes.div_euclid(1_440) + 3).rem_euclid(7) as u8;
        Some((hour, weekday))
    }
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// A semantic-version comparison of the app's version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum VersionCmp {
    /// Equal.
    Eq(semver::Version),
    /// Greater than or equal.
    Gte(semver::Version),
    /// Greater than.
    Gt(semver::Version),
    /// Less than or equal.
    Lte(semver::Version),
    /// Less than.
    Lt(semver::Version),
}

/// A condition on the context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// Every one holds (an empty list always does).
    All(Vec<Condition>),
    /// At least one holds.
    Any(Vec<Condition>),
    /// The condition does not hold.
    Not(Box<Condition>),
    /// In the audience of this name.
    Segment(String),
    /// Device type is one of these (case-insensitive).
    Device(Vec<String>),
    /// Operating system is one of these (case-insensitive).
    Os(Vec<String>),
    /// Browser is one of these (case-insensitive).
    Browser(Vec<String>),
    /// Country is one of these (ISO 3166-1 alpha-2).
    Country(Vec<String>),
    /// Local hour in `[from, to)` (wrapping past midnight when `from > to`).
    LocalHour {
        /// 0-23.
        from: u8,
        /// 0-24.
        to: u8,
    },
    /// Local day is one of these.
    Weekday(Vec<Weekday>),
    /// The app's version compares so.
    AppVersion(VersionCmp),
    /// This percentage of subjects (0-100), by a hash of the subject and the rule's
    /// seed (the flag's or experiment's key), so the same subjects stay in as it grows.
    Rollout(f64),
}

/// How deep conditions may nest.
pub const MAX_DEPTH: usize = 8;

impl Condition {
    /// Checks every part, naming the first fault with its path (e.g. `all[1].country`).
    pub fn check(&self) -> Result<()> {
        self.check_at("", 0)
    }

    fn check_at(&self, path: &str, depth: usize) -> Result<()> {
        let here = |name: &str| {
            if path.is_empty() {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            }
        };
        let fault = |name: &str, why: &str| invalid("condition", format!("{}: {why}", here(name)));
        if depth > MAX_DEPTH {
            return Err(fault("", &format!("nested deeper than {MAX_DEPTH}")));
        }
        let list = |name: &str, l: &[String]| {
            if l.is_empty() || l.iter().any(|s| s.trim().is_empty()) {
                Err(fault(name, "needs a non-empty list of non-empty names"))
            } else {
                Ok(())
            }
        };
        match self {
            Condition::All(cs) | Condition::Any(cs) => {
                let name = if matches!(self, Condition::All(_)) {
                    "all"
                } else {
                    "any"
                };
                for (i, c) in cs.iter().enumerate() {
                    c.check_at(&here(&format!("{name}[{i}]")), depth + 1)?;
                }
                Ok(())
            }
            Condition::Not(c) => c.check_at(&here("not"), depth + 1),
            Condition::Segment(s) => {
                if s.trim().is_empty() {
                    Err(fault("segment", "needs an audience name"))
                } else {
                    Ok(())
                }
            }
            Condition::Device(l) => list("device", l),
            Condition::Os(l) => list("os", l),
            Condition::Browser(l) => list("browser", l),
            Condition::Country(l) => {
                list("country", l)?;
                if l.iter()
                    .any(|c| c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()))
                {
                    return Err(fault(
                        "country",
                        "codes are ISO 3166-1 alpha-2, upper case (FR, DE)",
                    ));
                }
                Ok(())
            }
            Condition::LocalHour { from, to } => {
                if *from > 23 || *to > 24 || from == to {
                    Err(fault(
                        "local_hour",
                        "needs 0 ≤ from ≤ 23, 0 ≤ to ≤ 24, from ≠ to",
                    ))
                } else {
                    Ok(())
                }
            }
            Condition::Weekday(days) => {
                if days.is_empty() {
                    Err(fault("weekday", "needs at least one day"))
                } else {
                    Ok(())
                }
            }
            Condition::AppVersion(_) => Ok(()),
            Condition::Rollout(p) => {
                if p.is_finite() && (0.0..=100.0).contains(p) {
                    Ok(())
                } else {
                    Err(fault("rollout", "a percentage from 0 to 100"))
                }
            }
        }
    }

    /// The audiences the condition names (to check they exist).
    pub fn segments(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.walk(&mut |c| {
            if let Condition::Segment(s) = c {
                out.push(s.as_str());
            }
        });
        out
    }

    fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Condition)) {
        f(self);
        match self {
            Condition::All(cs) | Condition::Any(cs) => cs.iter().for_each(|c| c.walk(f)),
            Condition::Not(c) => c.walk(f),
            _ => {}
        }
    }

    /// Whether the condition holds for `ctx`; `seed` is what rollouts hash with.
    /// Anything the context does not know (no country, no local time) does not match.
    pub fn matches(&self, ctx: &Context<'_>, seed: &str) -> bool {
        let one_of = |l: &[String], v: Option<&str>| {
            v.is_some_and(|v| l.iter().any(|x| x.eq_ignore_ascii_case(v)))
        };
        match self {
            Condition::All(cs) => cs.iter().all(|c| c.matches(ctx, seed)),
            Condition::Any(cs) => cs.iter().any(|c| c.matches(ctx, seed)),
            Condition::Not(c) => !c.matches(ctx, seed),
            Condition::Segment(s) => ctx.segments.iter().any(|x| x == s),
            Condition::Device(l) => one_of(l, ctx.device),
            Condition::Os(l) => one_of(l, ctx.os),
            Condition::Browser(l) => one_of(l, ctx.browser),
            Condition::Country(l) => one_of(l, ctx.country),
            Condition::LocalHour { from, to } => ctx.local_time().is_some_and(|(h, _)| {
                if from < to {
                    h >= *from && h < *to
                } else {
                    h >= *from || h < *to
                }
            }),
            Condition::Weekday(days) => ctx
                .local_time()
                .is_some_and(|(_, d)| days.iter().any(|x| *x as u8 == d)),
            Condition::AppVersion(cmp) => ctx.app_version.is_some_and(|v| match cmp {
                VersionCmp::Eq(w) => v == w,
                VersionCmp::Gte(w) => v >= w,
                VersionCmp::Gt(w) => v > w,
                VersionCmp::Lte(w) => v <= w,
                VersionCmp::Lt(w) => v < w,
            }),
            Condition::Rollout(p) => {
                !ctx.subject.is_empty() && rollout_bucket(seed, ctx.subject) * 100.0 < *p
            }
        }
    }
}
