//! Feature flags: named values (boolean, string, number, JSON) served by targeting
//! rules and percentage splits, evaluated as OpenFeature defines the result — the
//! value, the variant, a reason, and on any error the caller's default.
//!
//! A flag is JSON such as
//! `{"kind": "boolean", "variants": {"on": true, "off": false}, "default_variant": "off",
//!   "rules": [{"when": {"segment": "beta"}, "serve": {"variant": "on"}},
//!             {"serve": {"split": {"on": 0.1, "off": 0.9}}}]}`:
//! the first rule whose condition holds serves; none → the default variant.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::assign::{Split, SplitParams};
use crate::error::{invalid, Result};
use crate::hash::bucket;
use crate::targeting::{Condition, Context};

/// The type of a flag's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    /// `true` / `false`.
    Boolean,
    /// A string.
    String,
    /// A number.
    Number,
    /// An object or an array.
    Json,
}

impl FlagKind {
    fn holds(self, v: &Value) -> bool {
        match self {
            FlagKind::Boolean => v.is_boolean(),
            FlagKind::String => v.is_string(),
            FlagKind::Number => v.is_number(),
            FlagKind::Json => v.is_object() || v.is_array(),
        }
    }
}

/// A flag as defined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagDefinition {
    /// The type of its values.
    pub kind: FlagKind,
    /// Off: every evaluation gets the caller's default (reason `DISABLED`).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Variant names and their values.
    pub variants: BTreeMap<String, Value>,
    /// Served when no rule matches.
    pub default_variant: String,
    /// In order; the first that matches serves.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

fn yes() -> bool {
    true
}

/// A targeting rule: when its condition holds, what it serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The condition (none: everyone).
    #[serde(default = "everyone")]
    pub when: Condition,
    /// What it serves.
    pub serve: Serve,
}

fn everyone() -> Condition {
    Condition::All(Vec::new())
}

/// What a rule serves: one variant, or a split of variants by weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Serve {
    /// This variant.
    Variant(String),
    /// Variants by weight (summing to 1), by a hash of the subject and the flag's key.
    Split(BTreeMap<String, f64>),
}

/// Why an evaluation gave what it gave (OpenFeature's resolution reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// The flag has no rules: its one value.
    Static,
    /// No rule matched: the default variant.
    Default,
    /// A rule's condition matched.
    TargetingMatch,
    /// A rule's split chose the variant.
    Split,
    /// The flag is off: the caller's default.
    Disabled,
    /// Something went wrong: the caller's default.
    Error,
}

/// What went wrong (OpenFeature's error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The caller's default is not of the flag's type.
    TypeMismatch,
    /// A split needs a subject and there is none.
    TargetingKeyMissing,
    /// No flag of that name (the caller reports it; evaluation never does).
    FlagNotFound,
}

/// The result of evaluating a flag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation<'a> {
    /// The value served.
    pub value: &'a Value,
    /// Its variant's name (none when the caller's default was served).
    pub variant: Option<&'a str>,
    /// Why.
    pub reason: Reason,
    /// What went wrong, with reason `ERROR`.
    pub error: Option<ErrorCode>,
}

impl<'a> Evaluation<'a> {
    /// The caller's default, for `reason` (and `error`).
    pub fn fallback(default: &'a Value, reason: Reason, error: Option<ErrorCode>) -> Self {
        Evaluation {
            value: default,
            variant: None,
            reason,
            error,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Served {
    Variant(usize),
    Split(Split, Vec<usize>),
}

/// A flag that passed [`FlagDefinition::check`], ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    key: String,
    kind: FlagKind,
    enabled: bool,
    variants: Vec<(String, Value)>,
    default: usize,
    rules: Vec<(Condition, Served)>,
}

/// The most rules a flag may have.
pub const MAX_RULES: usize = 50;

impl FlagDefinition {
    /// Checks the definition of flag `key`: at least one variant, each of the flag's
    /// kind, the default and every served variant among them, conditions and splits
    /// valid. The fault names its place (`rules[2].serve.split`).
    pub fn check(&self, key: &str) -> Result<Flag> {
        if key.is_empty() {
            return Err(invalid("flag", "needs a key"));
        }
        if self.variants.is_empty() {
            return Err(invalid("variants", "a flag needs at least one variant"));
        }
        if let Some((name, _)) = self.variants.iter().find(|(_, v)| !self.kind.holds(v)) {
            return Err(invalid(
                "variants",
                format!("variant {name:?} is not a {:?} value", self.kind),
            ));
        }
        let variants: Vec<(String, Value)> = self
            .variants
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let index = |name: &str, at: &str| {
            variants
                .iter()
                .position(|(n, _)| n == name)
                .ok_or_else(|| invalid("variants", format!("{at}: no variant {name:?}")))
        };
        let default = index(&self.default_variant, "default_variant")?;
        if self.rules.len() > MAX_RULES {
            return Err(invalid("rules", format!("at most {MAX_RULES}")));
        }
        let mut rules = Vec::with_capacity(self.rules.len());
        for (i, r) in self.rules.iter().enumerate() {
            r.when.check().map_err(|e| match e {
                crate::Error::Invalid { reason, .. } => {
                    invalid("condition", format!("rules[{i}].when: {reason}"))
                }
                other => other,
            })?;
            let served = match &r.serve {
                Serve::Variant(v) => Served::Variant(index(v, &format!("rules[{i}].serve"))?),
                Serve::Split(weights) => {
                    let at = format!("rules[{i}].serve.split");
                    let mut idx = Vec::with_capacity(weights.len());
                    for name in weights.keys() {
                        idx.push(index(name, &at)?);
                    }
                    let split = SplitParams {
                        weights: weights.values().copied().collect(),
                        coverage: 1.0,
                    }
                    .check()
                    .map_err(|e| invalid("weights", format!("{at}: {e}")))?;
                    Served::Split(split, idx)
                }
            };
            rules.push((r.when.clone(), served));
        }
        Ok(Flag {
            key: key.to_owned(),
            kind: self.kind,
            enabled: self.enabled,
            variants,
            default,
            rules,
        })
    }
}

impl Flag {
    /// The flag's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The type of its values.
    pub fn kind(&self) -> FlagKind {
        self.kind
    }

    /// Its variants' names.
    pub fn variant_names(&self) -> impl Iterator<Item = &str> {
        self.variants.iter().map(|(n, _)| n.as_str())
    }

    /// The value of variant `name`.
    pub fn value_of(&self, name: &str) -> Option<&Value> {
        self.variants
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Evaluates the flag for `ctx`; `caller_default` is served, with the reason, when
    /// the flag is off or anything goes wrong.
    pub fn evaluate<'a>(&'a self, ctx: &Context<'_>, caller_default: &'a Value) -> Evaluation<'a> {
        if !self.kind.holds(caller_default) {
            return Evaluation::fallback(
                caller_default,
                Reason::Error,
                Some(ErrorCode::TypeMismatch),
            );
        }
        if !self.enabled {
            return Evaluation::fallback(caller_default, Reason::Disabled, None);
        }
        if self.rules.is_empty() {
            return self.serve(self.default, Reason::Static);
        }
        for (when, served) in &self.rules {
            if !when.matches(ctx, &self.key) {
                continue;
            }
            return match served {
                Served::Variant(v) => self.serve(*v, Reason::TargetingMatch),
                Served::Split(split, idx) => {
                    if ctx.subject.is_empty() {
                        return Evaluation::fallback(
                            caller_default,
                            Reason::Error,
                            Some(ErrorCode::TargetingKeyMissing),
                        );
                    }
                    match split.variant(bucket(&self.key, ctx.subject)) {
                        Some(i) => self.serve(idx[i], Reason::Split),
                        None => self.serve(self.default, Reason::Default),
                    }
                }
            };
        }
        self.serve(self.default, Reason::Default)
    }

    fn serve(&self, v: usize, reason: Reason) -> Evaluation<'_> {
        let (name, value) = &self.variants[v];
        Evaluation {
            value,
            variant: Some(name),
            reason,
            error: None,
        }
    }
}
