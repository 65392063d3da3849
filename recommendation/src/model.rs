//! A model named by its kind and parameters ([`ModelSpec`]), fitted into one of the
//! crate's models ([`Model`]), which serializes with its parameters so a stored model
//! scores alone; and grids of specs for hyperparameter search, parsed from text such as
//! `als:factors=64,128;regularization=0.1,1` (every combination of the values listed).
//! A hybrid spec blends other kinds with weights ([`HybridParams`]).

use serde::{Deserialize, Serialize};

use crate::als::{Als, AlsParams};
use crate::content::{Content, ContentParams};
use crate::ease::{Ease, EaseParams};
use crate::error::{parameter, Error, Result};
use crate::hybrid::Blend;
use crate::knn::{ItemKnn, ItemKnnParams, Weighting};
use crate::matrix::Csr;
use crate::popularity::Popularity;
use crate::{History, Scorer};

/// What to fit: a collaborative model and its parameters, or popularity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSpec {
    /// Item-based nearest neighbours.
    ItemKnn(ItemKnnParams),
    /// Alternating least squares.
    Als(AlsParams),
    /// EASE.
    Ease(EaseParams),
    /// Content-based: TF-IDF vectors of item tags (needs item features).
    Content(ContentParams),
    /// The number of users per item.
    Popularity,
    /// A weighted blend of models of the other kinds.
    Hybrid(HybridParams),
}

/// The parts of a hybrid: each part's scores are scaled to `[0, 1]` by its best score
/// for the user, then summed with the weights ([`Blend`]), so models on different
/// scales (a collaborative one and a content one) count as much as asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HybridParams {
    /// Two to [`MAX_HYBRID_PARTS`] models, none of them a hybrid.
    pub parts: Vec<HybridPart>,
}

/// One model of a hybrid and its weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HybridPart {
    /// The model.
    pub model: ModelSpec,
    /// Its weight, finite and > 0.
    pub weight: f32,
}

/// The most parts a hybrid may have.
pub const MAX_HYBRID_PARTS: usize = 4;

impl ModelSpec {
    /// The kind's name: `item_knn`, `als`, `ease`, `content`, `popularity` or `hybrid`.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelSpec::ItemKnn(_) => "item_knn",
            ModelSpec::Als(_) => "als",
            ModelSpec::Ease(_) => "ease",
            ModelSpec::Content(_) => "content",
            ModelSpec::Popularity => "popularity",
            ModelSpec::Hybrid(_) => "hybrid",
        }
    }

    /// This spec and, for a hybrid, each of its parts' specs.
    pub fn kinds(&self) -> Vec<&ModelSpec> {
        match self {
            ModelSpec::Hybrid(h) => h.parts.iter().map(|p| &p.model).collect(),
            other => vec![other],
        }
    }

    /// Checks the parameters.
    pub fn check(&self) -> Result<()> {
        match self {
            ModelSpec::ItemKnn(p) => p.check().map(|_| ()),
            ModelSpec::Als(p) => p.check().map(|_| ()),
            ModelSpec::Ease(p) => p.check().map(|_| ()),
            ModelSpec::Content(p) => p.check().map(|_| ()),
            ModelSpec::Popularity => Ok(()),
            ModelSpec::Hybrid(h) => {
                if !(2..=MAX_HYBRID_PARTS).contains(&h.parts.len()) {
                    return Err(parameter(
                        "parts",
                        format!("a hybrid blends 2 to {MAX_HYBRID_PARTS} models"),
                    ));
                }
                for (n, part) in h.parts.iter().enumerate() {
                    if matches!(part.model, ModelSpec::Hybrid(_)) {
                        return Err(parameter(
                            "parts",
                            format!("part {n} is a hybrid; blend its parts instead"),
                        ));
                    }
                    if !(part.weight.is_finite() && part.weight > 0.0) {
                        return Err(parameter(
                            "weight",
                            format!("part {n}: must be a finite number > 0"),
                        ));
                    }
                    part.model.check().map_err(|e| match e {
                        Error::Parameter { name, reason } => Error::Parameter {
                            name,
                            reason: format!("part {n}: {reason}"),
                        },
                        other => other,
                    })?;
                }
                Ok(())
            }
        }
    }

    /// Fits the model to a users-by-items matrix, calling `progress(done, total)` as it
    /// goes (ALS: per alternation; the others once at the end).
    pub fn fit(&self, user_items: &Csr, progress: impl FnMut(usize, usize)) -> Result<Model> {
        self.fit_with(user_items, None, progress)
    }

    /// As [`ModelSpec::fit`], with an items-by-terms matrix of tag counts for a
    /// content-based spec (its rows the same items as `user_items`' columns).
    pub fn fit_with(
        &self,
        user_items: &Csr,
        item_terms: Option<&Csr>,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Model> {
        self.fit_dyn(user_items, item_terms, &mut progress)
    }

    /// [`ModelSpec::fit_with`] without a type per closure (a hybrid fits its parts with it).
    fn fit_dyn(
        &self,
        user_items: &Csr,
        item_terms: Option<&Csr>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Model> {
        let model = match self {
            ModelSpec::ItemKnn(p) => Model::ItemKnn(p.check()?.fit(user_items)),
            ModelSpec::Als(p) => {
                let total = p.iterations;
                Model::Als(p.check()?.fit_with(user_items, |d| progress(d, total))?)
            }
            ModelSpec::Ease(p) => Model::Ease(p.check()?.fit(user_items)?),
            ModelSpec::Content(p) => {
                let terms = item_terms.ok_or_else(|| {
                    Error::Data("a content-based model needs the items' tags".into())
                })?;
                if terms.rows() != user_items.cols() {
                    return Err(Error::Shape(format!(
                        "{} items with tags, {} with interactions",
                        terms.rows(),
                        user_items.cols()
                    )));
                }
                Model::Content(p.check()?.fit(terms)?)
            }
            ModelSpec::Popularity => Model::Popularity(Popularity::fit(user_items)),
            ModelSpec::Hybrid(h) => {
                self.check()?;
                let mut parts = Vec::with_capacity(h.parts.len());
                for part in &h.parts {
                    let m = part.model.fit_dyn(user_items, item_terms, &mut |_, _| {})?;
                    parts.push((m, part.weight));
                }
                Model::Hybrid(Hybrid { parts })
            }
        };
        progress(1, 1);
        Ok(model)
    }
}

/// A fitted model of any kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Model {
    /// Item-based nearest neighbours.
    ItemKnn(ItemKnn),
    /// Alternating least squares.
    Als(Als),
    /// EASE.
    Ease(Ease),
    /// Popularity.
    Popularity(Popularity),
    /// Content-based.
    Content(Content),
    /// A weighted blend.
    Hybrid(Hybrid),
}

/// Fitted models and their weights, scored as a [`Blend`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hybrid {
    /// The parts, in the order of the spec.
    pub parts: Vec<(Model, f32)>,
}

impl Hybrid {
    fn blend(&self) -> Blend<'_> {
        Blend::new(self.parts.iter().map(|(m, w)| (m.scorer(), *w)).collect())
    }
}

impl Scorer for Hybrid {
    fn items(&self) -> usize {
        self.blend().items()
    }

    fn score(&self, history: History<'_>, out: &mut [f32]) {
        self.blend().score(history, out)
    }

    fn score_known(&self, user: usize, history: History<'_>, out: &mut [f32]) {
        self.blend().score_known(user, history, out)
    }
}

impl Model {
    /// The model as a scorer.
    pub fn scorer(&self) -> &dyn Scorer {
        match self {
            Model::ItemKnn(m) => m,
            Model::Als(m) => m,
            Model::Ease(m) => m,
            Model::Popularity(m) => m,
            Model::Content(m) => m,
            Model::Hybrid(m) => m,
        }
    }

    /// The model with what only scoring the training users needs dropped (ALS's user
    /// factors: users are folded in from their history instead), for storage.
    pub fn without_users(self) -> Model {
        match self {
            Model::Als(m) => Model::Als(m.without_users()),
            Model::Hybrid(h) => Model::Hybrid(Hybrid {
                parts: h
                    .parts
                    .into_iter()
                    .map(|(m, w)| (m.without_users(), w))
                    .collect(),
            }),
            other => other,
        }
    }

    /// The items most similar to `item`: by the neighbours kept (item-kNN), EASE's
    /// weights, the cosine of factors (ALS) or of tag vectors (content); popularity has
    /// no notion of similar and gives none.
    pub fn similar(&self, item: u32, k: usize) -> Result<Vec<(u32, f32)>> {
        match self {
            Model::ItemKnn(m) => m.similar(item, k),
            Model::Content(m) => m.similar(item, k),
            Model::Popularity(_) => Ok(Vec::new()),
            // Each part's own list (a few times k deep), scaled by its best and weighed.
            Model::Hybrid(h) => {
                let mut sum: std::collections::HashMap<u32, f32> = Default::default();
                for (m, w) in &h.parts {
                    let list = m.similar(item, k.saturating_mul(4))?;
                    let top = list.first().map_or(0.0, |b| b.1.abs());
                    if top > 0.0 {
                        for (j, s) in list {
                            *sum.entry(j).or_default() += w * s / top;
                        }
                    }
                }
                let mut all: Vec<(u32, f32)> = sum.into_iter().collect();
                all.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                all.truncate(k);
                Ok(all)
            }
            Model::Ease(m) => Self::best_but(m.items(), item, k, |out| {
                m.score(History::new(&[item], &[1.0]), out)
            }),
            Model::Als(m) => Self::best_but(m.items(), item, k, |out| {
                let q = m.item_factors(item as usize);
                let qn = crate::simd::dot(q, q).sqrt().max(f32::MIN_POSITIVE);
                for (j, o) in out.iter_mut().enumerate() {
                    let y = m.item_factors(j);
                    let yn = crate::simd::dot(y, y).sqrt().max(f32::MIN_POSITIVE);
                    *o = crate::simd::dot(q, y) / (qn * yn);
                }
            }),
        }
    }

    /// The best `k` of `items` scores that `score` writes, leaving out `item` itself
    /// (refused when beyond the catalogue).
    fn best_but(
        items: usize,
        item: u32,
        k: usize,
        score: impl FnOnce(&mut [f32]),
    ) -> Result<Vec<(u32, f32)>> {
        if item as usize >= items {
            return Err(Error::Shape(format!("item {item} is not in the model")));
        }
        let mut out = vec![0f32; items];
        score(&mut out);
        let me = [item];
        Ok(crate::rank::top_k(
            &out,
            k,
            crate::Exclude {
                consumed: &me,
                ..Default::default()
            },
        ))
    }
}

/// Every combination of the values given for one kind's parameters, e.g.
/// `als:factors=64,128;regularization=0.1,1;alpha=4`, `item_knn:neighbours=50,100;
/// weighting=bm25,cosine`, `ease:lambda=250,500`, `popularity`. Parameters not named
/// keep their defaults; each spec is checked.
pub fn parse_grid(text: &str) -> Result<Vec<ModelSpec>> {
    let (kind, rest) = text.split_once(':').unwrap_or((text, ""));
    let mut specs = vec![match kind.trim() {
        "item_knn" | "knn" => ModelSpec::ItemKnn(ItemKnnParams::default()),
        "als" => ModelSpec::Als(AlsParams::default()),
        "ease" => ModelSpec::Ease(EaseParams::default()),
        "content" => ModelSpec::Content(ContentParams::default()),
        "popularity" => ModelSpec::Popularity,
        "hybrid" => {
            return Err(parameter(
                "grid",
                "a hybrid is given whole, as JSON, not as a grid",
            ))
        }
        other => {
            return Err(parameter(
                "grid",
                format!("unknown model kind {other:?} (item_knn, als, ease, content, popularity)"),
            ))
        }
    }];
    for part in rest.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, values) = part
            .split_once('=')
            .ok_or_else(|| parameter("grid", format!("{part:?} is not NAME=V1,V2")))?;
        let mut next = Vec::new();
        for spec in &specs {
            for value in values.split(',').map(str::trim) {
                next.push(set(spec.clone(), name.trim(), value)?);
            }
        }
        specs = next;
    }
    for s in &specs {
        s.check()?;
    }
    Ok(specs)
}

fn set(mut spec: ModelSpec, name: &str, value: &str) -> Result<ModelSpec> {
    let bad = || parameter("grid", format!("{name}={value:?}: not a valid value"));
    let num = || value.parse::<f64>().map_err(|_| bad());
    let int = || value.parse::<usize>().map_err(|_| bad());
    match (&mut spec, name) {
        (ModelSpec::ItemKnn(p), "neighbours") => p.neighbours = int()?,
        (ModelSpec::ItemKnn(p), "shrink") => p.shrink = num()? as f32,
        (ModelSpec::ItemKnn(p), "weighting") => {
            p.weighting = match value {
                "none" => Weighting::None,
                "cosine" => Weighting::Cosine,
                "tfidf" => Weighting::TfIdf,
                "bm25" => Weighting::Bm25 { k1: 100.0, b: 0.8 },
                _ => return Err(bad()),
            }
        }
        (ModelSpec::ItemKnn(p), "k1" | "b") => match &mut p.weighting {
            Weighting::Bm25 { k1, b } => {
                *(if name == "k1" { k1 } else { b }) = num()? as f32;
            }
            _ => {
                return Err(parameter(
                    "grid",
                    format!("{name} needs weighting=bm25 first"),
                ))
            }
        },
        (ModelSpec::Als(p), "factors") => p.factors = int()?,
        (ModelSpec::Als(p), "regularization") => p.regularization = num()? as f32,
        (ModelSpec::Als(p), "alpha") => p.alpha = num()? as f32,
        (ModelSpec::Als(p), "iterations") => p.iterations = int()?,
        (ModelSpec::Als(p), "cg_steps") => p.cg_steps = int()?,
        (ModelSpec::Als(p), "seed") => p.seed = value.parse().map_err(|_| bad())?,
        (ModelSpec::Ease(p), "lambda") => p.lambda = num()?,
        (ModelSpec::Ease(p), "keep") => p.keep = int()?,
        (ModelSpec::Content(p), "item_terms") => p.item_terms = int()?,
        (ModelSpec::Content(p), "profile_terms") => p.profile_terms = int()?,
        (s, _) => {
            return Err(parameter(
                "grid",
                format!("{} has no parameter {name:?}", s.kind()),
            ))
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_are_every_combination_and_errors_name_the_fault() {
        let g = parse_grid("als:factors=8,16;regularization=0.1,1,10").unwrap();
        assert_eq!(g.len(), 6);
        assert!(matches!(g[5], ModelSpec::Als(p) if p.factors == 16 && p.regularization == 10.0));
        let k = parse_grid("item_knn:weighting=bm25;k1=50;neighbours=20").unwrap();
        assert!(
            matches!(k[0], ModelSpec::ItemKnn(p) if p.weighting == Weighting::Bm25 { k1: 50.0, b: 0.8 })
        );
        assert_eq!(
            parse_grid("popularity").unwrap(),
            vec![ModelSpec::Popularity]
        );
        let e = parse_grid("als:factor=8").unwrap_err().to_string();
        assert!(e.contains("als has no parameter \"factor\""), "{e}");
        assert!(parse_grid("svd")
            .unwrap_err()
            .to_string()
            .contains("unknown model kind"));
        assert!(parse_grid("ease:lambda=-1")
            .unwrap_err()
            .to_string()
            .contains("lambda"));
        assert!(parse_grid("item_knn:weighting=cosine;k1=3")
            .unwrap_err()
            .to_string()
            .contains("weighting=bm25"));
    }

    #[test]
    fn a_hybrid_is_the_blend_of_its_parts_and_is_checked() {
        let x = Csr::from_triplets(
            4,
            4,
            &[
                (0, 0, 1.0),
                (0, 1, 1.0),
                (1, 1, 1.0),
                (1, 2, 1.0),
                (2, 2, 1.0),
                (3, 3, 1.0),
            ],
        )
        .unwrap();
        let parse = |v: serde_json::Value| serde_json::from_value::<ModelSpec>(v).unwrap();
        let spec = parse(serde_json::json!({"kind": "hybrid", "parts": [
            {"model": {"kind": "item_knn"}, "weight": 1.0},
            {"model": {"kind": "popularity"}, "weight": 0.25}]}));
        let m = spec.fit(&x, |_, _| {}).unwrap();
        let knn = ModelSpec::ItemKnn(ItemKnnParams::default())
            .fit(&x, |_, _| {})
            .unwrap();
        let pop = Popularity::fit(&x);
        let h = History::of(&x, 0);
        let (mut got, mut want) = (vec![0f32; 4], vec![0f32; 4]);
        m.scorer().score(h, &mut got);
        Blend::new(vec![(knn.scorer(), 1.0), (&pop, 0.25)]).score(h, &mut want);
        assert_eq!(got, want);
        assert!(!m.similar(1, 2).unwrap().is_empty());
        let back: Model = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);

        let fault = |v: serde_json::Value| parse(v).check().unwrap_err().to_string();
        let knn = serde_json::json!({"kind": "item_knn"});
        assert!(fault(serde_json::json!({"kind": "hybrid", "parts": [
            {"model": knn, "weight": 1.0}]}))
        .contains("2 to 4"));
        assert!(fault(serde_json::json!({"kind": "hybrid", "parts": [
            {"model": knn, "weight": 1.0}, {"model": knn, "weight": -1.0}]}))
        .contains("part 1: must be a finite number > 0"));
        assert!(fault(serde_json::json!({"kind": "hybrid", "parts": [
            {"model": knn, "weight": 1.0},
            {"model": {"kind": "ease", "lambda": -2.0}, "weight": 1.0}]}))
        .contains("part 1: "));
        let nested = serde_json::json!({"kind": "hybrid", "parts": [
            {"model": knn, "weight": 1.0}, {"model": knn, "weight": 1.0}]});
        assert!(fault(serde_json::json!({"kind": "hybrid", "parts": [
            {"model": knn, "weight": 1.0}, {"model": nested, "weight": 1.0}]}))
        .contains("is a hybrid"));
        assert!(parse_grid("hybrid")
            .unwrap_err()
            .to_string()
            .contains("JSON"));
    }

    #[test]
    fn a_model_round_trips_through_json() {
        let x = Csr::from_triplets(3, 3, &[(0, 0, 1.0), (0, 1, 1.0), (1, 1, 1.0), (2, 2, 1.0)])
            .unwrap();
        for spec in [
            ModelSpec::ItemKnn(ItemKnnParams::default()),
            ModelSpec::Als(AlsParams {
                factors: 2,
                ..Default::default()
            }),
            ModelSpec::Ease(EaseParams::default()),
            ModelSpec::Popularity,
        ] {
            let m = spec.fit(&x, |_, _| {}).unwrap();
            let back: Model = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
            assert_eq!(back, m, "{}", spec.kind());
        }
    }
}
