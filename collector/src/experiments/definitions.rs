//! The definitions experiments are made of — block types, content slots, flags and
//! experiments — parsed and checked against each other, so that nothing stored can
//! fail when served.

use std::collections::BTreeMap;

use assent_experiments::{
    assign::{LayerShare, Split, SplitParams},
    blocks::{builtin, BlockType, BlockTypeDefinition},
    flags::{Flag, FlagDefinition},
    targeting::Condition,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// The flag that switches the collector's real-time segmentation (`crate::switches`):
/// it must be boolean.
pub const REALTIME_FLAG: &str = "segmentation-realtime";

/// What a definition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    BlockType,
    Slot,
    Flag,
    Experiment,
}

impl Kind {
    /// The kind a path or the command line names: `block-types`, `slots`, `flags`,
    /// `experiments`.
    pub fn from_plural(name: &str) -> Result<Kind> {
        Ok(match name {
            "block-types" => Kind::BlockType,
            "slots" => Kind::Slot,
            "flags" => Kind::Flag,
            "experiments" => Kind::Experiment,
            other => {
                return Err(Error::BadRequest(format!(
                    "{other:?}: block-types, slots, flags or experiments"
                )))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::BlockType => "block_type",
            Kind::Slot => "slot",
            Kind::Flag => "flag",
            Kind::Experiment => "experiment",
        }
    }
}

fn bad(what: &str, e: impl std::fmt::Display) -> Error {
    Error::BadRequest(format!("{what}: {e}"))
}

/// A content slot: where a block of one type is shown, its variants, which one
/// whom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlotDefinition {
    /// The block type of every variant.
    pub block_type: String,
    /// Variant names and their content.
    pub variants: BTreeMap<String, Value>,
    /// Served when no rule matches.
    pub default: String,
    /// Served to visitors without `personalization` consent or without a profile
    /// (the default when not given): never a personalized choice.
    #[serde(default)]
    pub fallback: Option<String>,
    /// In order; the first whose condition holds chooses the variant.
    #[serde(default)]
    pub rules: Vec<SlotRule>,
}

/// A targeting rule of a slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotRule {
    pub when: Condition,
    pub variant: String,
}

/// What an experiment measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metric {
    /// Its name in results.
    pub name: String,
    pub kind: MetricKind,
    /// The event counted.
    pub event: String,
    /// The property summed (revenue, dwell time).
    #[serde(default)]
    pub property: Option<String>,
}

/// How a metric counts its event per visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Whether the visitor did it at least once after exposure (a rate).
    Conversion,
    /// Click-through: whether the visitor clicked at least once (a rate).
    ClickThrough,
    /// The sum of the property per visitor (a mean per visitor).
    Revenue,
    /// The sum of the property (seconds) per visitor (a mean per visitor).
    DwellTime,
}

impl MetricKind {
    pub fn is_rate(self) -> bool {
        matches!(self, MetricKind::Conversion | MetricKind::ClickThrough)
    }
}

fn default_alpha() -> f64 {
    0.05
}
fn default_power() -> f64 {
    0.8
}
fn default_mde() -> f64 {
    0.1
}
fn default_tuning() -> f64 {
    5_000.0
}

/// An experiment over a slot's or a flag's variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExperimentDefinition {
    /// The slot whose variants are compared (or `flag`).
    #[serde(default)]
    pub slot: Option<String>,
    /// The flag whose variants are compared (or `slot`).
    #[serde(default)]
    pub flag: Option<String>,
    /// The recommender whose model versions are compared (variants: version numbers).
    #[serde(default)]
    pub recommender: Option<String>,
    /// The variants compared, the control first.
    pub variants: Vec<String>,
    pub weights: Vec<f64>,
    #[serde(default = "one")]
    pub coverage: f64,
    /// A share of a layer: experiments of one layer never share a visitor.
    #[serde(default)]
    pub layer: Option<LayerShare>,
    /// What assignment hashes with (the experiment's name when not given).
    #[serde(default)]
    pub seed: Option<String>,
    /// Running between these times (ISO 8601); no start: from now; no stop: until stopped.
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub stop: Option<String>,
    pub primary: Metric,
    #[serde(default)]
    pub guardrails: Vec<Metric>,
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    #[serde(default = "default_power")]
    pub power: f64,
    /// The smallest relative lift worth detecting on the primary metric (0.1 = 10 %):
    /// with the power, the fixed-horizon sample size.
    #[serde(default = "default_mde")]
    pub mde: f64,
    /// Always-valid p-values and intervals (look any day).
    #[serde(default)]
    pub sequential: bool,
    #[serde(default = "default_tuning")]
    pub sequential_tuning: f64,
    /// Decide on CUPED-adjusted comparisons when visitors have pre-exposure values.
    #[serde(default = "yes")]
    pub cuped: bool,
}

fn yes() -> bool {
    true
}

fn one() -> f64 {
    1.0
}

/// A checked experiment.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub name: String,
    pub def: ExperimentDefinition,
    pub split: Split,
    pub seed: String,
    pub start_ms: Option<i64>,
    pub stop_ms: Option<i64>,
}

impl Experiment {
    /// Past its stop time: it holds no share of a layer and no slot or flag any more.
    pub fn ended(&self, now_ms: i64) -> bool {
        self.stop_ms.is_some_and(|s| now_ms >= s)
    }

    pub fn running(&self, now_ms: i64) -> bool {
        self.start_ms.is_none_or(|s| now_ms >= s) && self.stop_ms.is_none_or(|s| now_ms < s)
    }

    pub fn metrics(&self) -> impl Iterator<Item = &Metric> {
        std::iter::once(&self.def.primary).chain(&self.def.guardrails)
    }
}

fn time(what: &str, t: &Option<String>) -> Result<Option<i64>> {
    t.as_deref()
        .map(|s| {
            assent_protocol::Timestamp::parse(s)
                .map(|t| t.unix_millis())
                .map_err(|_| bad(what, "not an ISO 8601 date-time with offset"))
        })
        .transpose()
}

/// Everything in force, checked together.
#[derive(Debug, Default)]
pub struct Catalogue {
    pub block_types: BTreeMap<String, BlockTypeDefinition>,
    /// The block type of each slot, compiled once when the catalogue is read (serving
    /// renders with it).
    pub compiled: BTreeMap<String, BlockType>,
    pub slots: BTreeMap<String, SlotDefinition>,
    pub flags: BTreeMap<String, Flag>,
    pub experiments: BTreeMap<String, Experiment>,
}

impl Catalogue {
    /// The block types: the built-in ones and those defined.
    pub fn block_type(&self, name: &str) -> Option<BlockTypeDefinition> {
        self.block_types.get(name).cloned().or_else(|| {
            builtin()
                .into_iter()
                .find(|(n, _)| *n == name)
                .map(|(_, d)| d)
        })
    }

    /// Checks `body` as a definition of `kind` named `name` against everything else in
    /// force; `segments` are the audiences that exist.
    pub fn check(
        &self,
        kind: Kind,
        name: &str,
        body: &Value,
        (segments, now_ms): (&[String], i64),
    ) -> Result<()> {
        let segment_known = |c: &Condition, at: &str| -> Result<()> {
            c.check().map_err(|e| bad(at, e))?;
            for s in c.segments() {
                if !segments.iter().any(|x| x == s) {
                    return Err(bad(at, format!("no audience {s:?} (define it first)")));
                }
            }
            Ok(())
        };
        match kind {
            Kind::BlockType => {
                if builtin().iter().any(|(n, _)| *n == name) {
                    return Err(bad("block type", format!("{name:?} is built in")));
                }
                let d: BlockTypeDefinition =
                    serde_json::from_value(body.clone()).map_err(|e| bad("block type", e))?;
                let t = d.check().map_err(|e| bad("block type", e))?;
                for (slot, s) in &self.slots {
                    if s.block_type == name {
                        for (v, content) in &s.variants {
                            t.check_content(content).map_err(|e| {
                                bad(
                                    "block type",
                                    format!("slot {slot:?} variant {v:?} would not fit: {e}"),
                                )
                            })?;
                        }
                    }
                }
                Ok(())
            }
            Kind::Slot => {
                let s: SlotDefinition =
                    serde_json::from_value(body.clone()).map_err(|e| bad("slot", e))?;
                let d = self
                    .block_type(&s.block_type)
                    .ok_or_else(|| bad("slot", format!("no block type {:?}", s.block_type)))?;
                let t: BlockType = d.check().map_err(|e| bad("slot", e))?;
                if s.variants.is_empty() {
                    return Err(bad("slot", "needs at least one variant"));
                }
                for (v, content) in &s.variants {
                    t.check_content(content)
                        .map_err(|e| bad("slot", format!("variant {v:?}: {e}")))?;
                }
                let known = |v: &str, at: &str| {
                    if s.variants.contains_key(v) {
                        Ok(())
                    } else {
                        Err(bad("slot", format!("{at}: no variant {v:?}")))
                    }
                };
                known(&s.default, "default")?;
                if let Some(f) = &s.fallback {
                    known(f, "fallback")?;
                }
                for (i, r) in s.rules.iter().enumerate() {
                    known(&r.variant, &format!("rules[{i}]"))?;
                    segment_known(&r.when, &format!("slot: rules[{i}].when"))?;
                }
                Ok(())
            }
            Kind::Flag => {
                let d: FlagDefinition =
                    serde_json::from_value(body.clone()).map_err(|e| bad("flag", e))?;
                if name == REALTIME_FLAG && d.kind != assent_experiments::flags::FlagKind::Boolean {
                    return Err(bad(
                        "flag",
                        format!("{REALTIME_FLAG} switches real-time segmentation: it is boolean"),
                    ));
                }
                d.check(name).map_err(|e| bad("flag", e))?;
                for (i, r) in d.rules.iter().enumerate() {
                    segment_known(&r.when, &format!("flag: rules[{i}].when"))?;
                }
                Ok(())
            }
            Kind::Experiment => {
                let e = self.experiment(name, body)?;
                if let Some(l) = &e.def.layer {
                    let others: Vec<(&String, &LayerShare)> = self
                        .experiments
                        .iter()
                        .filter(|(n, x)| *n != name && !x.ended(now_ms))
                        .filter_map(|(n, x)| x.def.layer.as_ref().map(|l| (n, l)))
                        .filter(|(_, x)| x.layer == l.layer)
                        .collect();
                    for (other, share) in others {
                        if l.start < share.end && share.start < l.end {
                            return Err(bad(
                                "experiment",
                                format!(
                                    "its share of layer {:?} overlaps experiment {other:?}'s",
                                    l.layer
                                ),
                            ));
                        }
                    }
                }
                let same_target = self.experiments.iter().find(|(n, x)| {
                    *n != name
                        && !x.ended(now_ms)
                        && x.def.slot == e.def.slot
                        && x.def.flag == e.def.flag
                        && x.def.recommender == e.def.recommender
                });
                if let Some((other, _)) = same_target {
                    return Err(bad(
                        "experiment",
                        format!(
                            "experiment {other:?} already runs on the same {}",
                            match (&e.def.slot, &e.def.flag) {
                                (Some(_), _) => "slot",
                                (_, Some(_)) => "flag",
                                _ => "recommender",
                            }
                        ),
                    ));
                }
                Ok(())
            }
        }
    }

    /// Parses and checks an experiment against the slots and flags in force.
    pub fn experiment(&self, name: &str, body: &Value) -> Result<Experiment> {
        let def: ExperimentDefinition =
            serde_json::from_value(body.clone()).map_err(|e| bad("experiment", e))?;
        let variants: Vec<String> = match (&def.slot, &def.flag, &def.recommender) {
            (None, None, Some(_)) => {
                for v in &def.variants {
                    if !v.parse::<i64>().is_ok_and(|n| n >= 1) || v.starts_with(['0', '+']) {
                        return Err(bad(
                            "experiment",
                            format!("{v:?} is not a model version (1, 2, …)"),
                        ));
                    }
                }
                def.variants.clone()
            }
            (Some(s), None, None) => self
                .slots
                .get(s)
                .ok_or_else(|| bad("experiment", format!("no slot {s:?}")))?
                .variants
                .keys()
                .cloned()
                .collect(),
            (None, Some(f), None) => self
                .flags
                .get(f)
                .ok_or_else(|| bad("experiment", format!("no flag {f:?}")))?
                .variant_names()
                .map(str::to_owned)
                .collect(),
            _ => {
                return Err(bad(
                    "experiment",
                    "name exactly one of slot, flag and recommender",
                ))
            }
        };
        if def.variants.len() != def.weights.len() {
            return Err(bad("experiment", "one weight per variant"));
        }
        for v in &def.variants {
            if !variants.contains(v) {
                return Err(bad("experiment", format!("no variant {v:?} to compare")));
            }
        }
        let split = SplitParams {
            weights: def.weights.clone(),
            coverage: def.coverage,
        }
        .check()
        .map_err(|e| bad("experiment", e))?;
        if let Some(l) = &def.layer {
            l.check().map_err(|e| bad("experiment", e))?;
        }
        for m in std::iter::once(&def.primary).chain(&def.guardrails) {
            if m.event.trim().is_empty() || m.name.trim().is_empty() {
                return Err(bad("experiment", "a metric needs a name and an event"));
            }
            if !m.kind.is_rate() && m.property.as_deref().is_none_or(|p| p.trim().is_empty()) {
                return Err(bad(
                    "experiment",
                    format!("metric {:?} sums a property: name it", m.name),
                ));
            }
        }
        let in_range = |x: f64, hi: f64| x > 0.0 && x < hi;
        if !(in_range(def.alpha, 0.5) && in_range(def.power, 1.0)) {
            return Err(bad(
                "experiment",
                "alpha must be in (0, 0.5), power in (0, 1)",
            ));
        }
        if !(def.mde.is_finite()
            && def.mde != 0.0
            && in_range(def.sequential_tuning, f64::INFINITY))
        {
            return Err(bad(
                "experiment",
                "mde must be a number other than 0, sequentialTuning > 0",
            ));
        }
        let (start_ms, stop_ms) = (time("start", &def.start)?, time("stop", &def.stop)?);
        if let (Some(a), Some(b)) = (start_ms, stop_ms) {
            if b <= a {
                return Err(bad("experiment", "stop must come after start"));
            }
        }
        Ok(Experiment {
            name: name.to_owned(),
            seed: def.seed.clone().unwrap_or_else(|| name.to_owned()),
            def,
            split,
            start_ms,
            stop_ms,
        })
    }
}

/// The paths at which two JSON documents differ (`/variants/bold/title`), at most 50.
pub fn changes(before: Option<&Value>, after: Option<&Value>) -> Vec<String> {
    fn walk(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<String>) {
        if out.len() >= 50 || a == b {
            return;
        }
        match (a, b) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    walk(
                        &format!("{path}/{}", k.replace('~', "~0").replace('/', "~1")),
                        x.get(k),
                        y.get(k),
                        out,
                    );
                }
            }
            _ => out.push(if path.is_empty() {
                "/".into()
            } else {
                path.to_owned()
            }),
        }
    }
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    out
}
