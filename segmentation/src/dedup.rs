//! Duplicate records: fuzzy matching of normalized fields (names, email, phone, address,
//! dates), with blocking so it is not quadratic.
//!
//! Candidate pairs are the records that share a block key in any of several passes (the
//! first letters of a surname, a postcode, a date of birth…): a duplicate with a typo in
//! one key is still found by another. Each candidate is scored as the weighted mean of
//! its fields' similarities (Jaro–Winkler, normalized Levenshtein, or equality, from the
//! maintained `strsim` crate), over the fields both records have; pairs at or above the
//! threshold are proposed. Proposals are only that: merging goes through the identity
//! graph when someone confirms them.
use std::collections::{HashMap, HashSet};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How two values of a field are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// Jaro–Winkler similarity (names, places).
    JaroWinkler,
    /// 1 − Levenshtein distance / longer length (numbers with typos, addresses).
    Levenshtein,
    /// 1 when equal, else 0.
    Exact,
}

/// How a field is normalized before blocking and comparing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// Lowercase, trimmed, inner whitespace collapsed.
    #[default]
    Text,
    /// An email address: lowercase and trimmed; Gmail's dots and `+tags` dropped.
    Email,
    /// Digits only (a leading `+` kept).
    Phone,
}

/// One field of the records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// Its name.
    pub name: String,
    /// How it is compared.
    pub compare: Compare,
    /// Its weight in the score.
    pub weight: f64,
    /// How it is normalized.
    #[serde(default)]
    pub normalize: Normalize,
}

/// A blocking pass: records whose field `field` starts with the same `prefix` characters
/// (all of it when None) are compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Index of the field in [`Matcher::fields`].
    pub field: usize,
    /// Leading characters of the key; None for the whole value.
    pub prefix: Option<usize>,
}

/// What to match: fields, blocking passes, threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matcher {
    /// The records' fields, in order.
    pub fields: Vec<Field>,
    /// Blocking passes; their candidate pairs are joined.
    pub blocks: Vec<Block>,
    /// Pairs scoring this or more are proposed (0 to 1).
    pub threshold: f64,
    /// Blocks larger than this are skipped (a key shared by too many records says
    /// little, and would make the pass quadratic).
    pub max_block: usize,
}

/// A proposed duplicate pair: record indices (`a < b`) and the score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// The first record.
    pub a: usize,
    /// The second.
    pub b: usize,
    /// The weighted mean similarity.
    pub score: f64,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Found {
    /// Candidate pairs compared (out of n(n−1)/2).
    pub candidates: usize,
    /// Blocks skipped for size.
    pub skipped_blocks: usize,
    /// Pairs at or above the threshold, best first.
    pub pairs: Vec<Pair>,
}

/// A value normalized as `how` says.
pub fn normalize(value: &str, how: Normalize) -> String {
    match how {
        Normalize::Text => value
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase(),
        Normalize::Email => {
            let lower = value.trim().to_lowercase();
            match lower.split_once('@') {
                Some((local, domain)) => {
                    let local = local.split('+').next().unwrap_or_default();
                    let local = if matches!(domain, "gmail.com" | "googlemail.com") {
                        local.replace('.', "")
                    } else {
                        local.to_owned()
                    };
                    format!("{local}@{domain}")
                }
                None => lower,
            }
        }
        Normalize::Phone => {
            let t = value.trim();
            let digits: String = t.chars().filter(char::is_ascii_digit).collect();
            if t.starts_with('+') {
                format!("+{digits}")
            } else {
                digits
            }
        }
    }
}

impl Matcher {
    /// Checks the matcher against records of `width` fields.
    fn check(&self, width: usize) -> Result<()> {
        let bad = |name, reason: String| Err(Error::Parameter { name, reason });
        if self.fields.len() != width {
            return bad(
                "fields",
                format!("{} fields for records of {width}", self.fields.len()),
            );
        }
        if self
            .fields
            .iter()
            .any(|f| !(f.weight.is_finite() && f.weight >= 0.0))
            || self.fields.iter().all(|f| f.weight == 0.0)
        {
            return bad("fields", "weights of 0 or more, not all 0".into());
        }
        if self.blocks.is_empty() || self.blocks.iter().any(|b| b.field >= width) {
            return bad("blocks", "at least one, each on a field".into());
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return bad("threshold", "from 0 to 1".into());
        }
        if self.max_block < 2 {
            return bad("max_block", "at least 2".into());
        }
        Ok(())
    }

    /// The similarity of two normalized records (None when they share no field).
    pub fn score(&self, a: &[String], b: &[String]) -> Option<f64> {
        let (mut sum, mut weights) = (0.0, 0.0);
        for ((f, x), y) in self.fields.iter().zip(a).zip(b) {
            if x.is_empty() || y.is_empty() || f.weight == 0.0 {
                continue;
            }
            let s = match f.compare {
                Compare::JaroWinkler => strsim::jaro_winkler(x, y),
                Compare::Levenshtein => strsim::normalized_levenshtein(x, y),
                Compare::Exact => f64::from(u8::from(x == y)),
            };
            sum += f.weight * s;
            weights += f.weight;
        }
        (weights > 0.0).then(|| sum / weights)
    }

    /// Finds the likely duplicates among `records` (each a value per field; an empty
    /// value is missing).
    pub fn find(&self, records: &[Vec<String>]) -> Result<Found> {
        let width = records.first().map_or(self.fields.len(), Vec::len);
        self.check(width)?;
        if let Some(i) = records.iter().position(|r| r.len() != width) {
            return Err(Error::Shape(format!(
                "record {i} has {} fields, not {width}",
                records[i].len()
            )));
        }
        let normalized: Vec<Vec<String>> = records
            .par_iter()
            .map(|r| {
                r.iter()
                    .zip(&self.fields)
                    .map(|(v, f)| normalize(v, f.normalize))
                    .collect()
            })
            .collect();
        let mut candidates: HashSet<(u32, u32)> = HashSet::new();
        let mut skipped_blocks = 0;
        for block in &self.blocks {
            let mut groups: HashMap<&str, Vec<u32>> = HashMap::new();
            for (i, r) in normalized.iter().enumerate() {
                let v = r[block.field].as_str();
                if v.is_empty() {
                    continue;
                }
                let key = match block.prefix {
                    Some(n) => v.char_indices().nth(n).map_or(v, |(at, _)| &v[..at]),
                    None => v,
                };
                groups.entry(key).or_default().push(i as u32);
            }
            for members in groups.values() {
                if members.len() > self.max_block {
                    skipped_blocks += 1;
                    continue;
                }
                for (x, &i) in members.iter().enumerate() {
                    for &j in &members[x + 1..] {
                        candidates.insert((i.min(j), i.max(j)));
                    }
                }
            }
        }
        let candidates: Vec<(u32, u32)> = candidates.into_iter().collect();
        let mut pairs: Vec<Pair> = candidates
            .par_iter()
            .filter_map(|&(a, b)| {
                let (a, b) = (a as usize, b as usize);
                let score = self.score(&normalized[a], &normalized[b])?;
                (score >= self.threshold).then_some(Pair { a, b, score })
            })
            .collect();
        pairs.sort_by(|x, y| {
            y.score
                .total_cmp(&x.score)
                .then(x.a.cmp(&y.a))
                .then(x.b.cmp(&y.b))
        });
        Ok(Found {
            candidates: candidates.len(),
            skipped_blocks,
            pairs,
        })
    }
}

/// Precision and recall of proposed pairs against the true ones (`a < b` in both).
pub fn precision_recall(proposed: &[Pair], truth: &HashSet<(usize, usize)>) -> (f64, f64) {
    let hits = proposed
        .iter()
        .filter(|p| truth.contains(&(p.a, p.b)))
        .count() as f64;
    let precision = if proposed.is_empty() {
        1.0
    } else {
        hits / proposed.len() as f64
    };
    let recall = if truth.is_empty() {
        1.0
    } else {
        hits / truth.len() as f64
    };
    (precision, recall)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(threshold: f64) -> Matcher {
        let field = |name: &str, compare, normalize| Field {
            name: name.into(),
            compare,
            weight: 1.0,
            normalize,
        };
        Matcher {
            fields: vec![
                field("name", Compare::JaroWinkler, Normalize::Text),
                field("email", Compare::Exact, Normalize::Email),
                field("phone", Compare::Levenshtein, Normalize::Phone),
            ],
            blocks: vec![
                Block {
                    field: 0,
                    prefix: Some(2),
                },
                Block {
                    field: 1,
                    prefix: None,
                },
            ],
            threshold,
            max_block: 100,
        }
    }

    #[test]
    fn normalized_fuzzy_matches_are_found_through_any_block() {
        let records: Vec<Vec<String>> = [
            ["Ana  Lima", "Ana.Lima+shop@Gmail.com", "+351 912 345 678"],
            ["ana lima", "analima@gmail.com", "+351912345678"],
            // A typo in the name's first letters: found through the email's block.
            ["Nna Lima", "analima@gmail.com", ""],
            ["Bruno Costa", "bruno@example.org", "912 000 111"],
        ]
        .iter()
        .map(|r| r.iter().map(|s| s.to_string()).collect())
        .collect();
        let found = matcher(0.9).find(&records).unwrap();
        let pairs: Vec<(usize, usize)> = found.pairs.iter().map(|p| (p.a, p.b)).collect();
        assert_eq!(pairs, [(0, 1), (0, 2), (1, 2)], "{found:?}");
        assert_eq!(found.pairs[0].score, 1.0);
        assert!(
            found.candidates < 6,
            "blocking compares fewer than all pairs"
        );
        let truth: HashSet<(usize, usize)> = [(0, 1), (0, 2), (1, 2)].into();
        assert_eq!(precision_recall(&found.pairs, &truth), (1.0, 1.0));
        let (p, r) = precision_recall(&found.pairs[..1], &[(0, 1), (2, 3)].into());
        assert_eq!((p, r), (1.0, 0.5));
    }

    #[test]
    fn bad_matchers_and_records_are_refused() {
        let ok = vec!["a".to_string(), "b".into(), "c".into()];
        assert!(matcher(1.5).find(std::slice::from_ref(&ok)).is_err());
        assert!(matcher(0.9).find(&[ok.clone(), vec!["x".into()]]).is_err());
        let mut m = matcher(0.9);
        m.blocks[0].field = 7;
        assert!(m.find(&[ok]).is_err());
        assert_eq!(
            normalize(" +1 (555) 010-99 ", Normalize::Phone),
            "+155501099"
        );
    }
}

/// Febrl's synthetic person records (`rec_id, given_name, surname, street_number,
/// address_1, address_2, suburb, postcode, state, date_of_birth, soc_sec_id`), whose
/// true duplicates are named by their ids (`rec-N-org`, `rec-N-dup-k`): the data the
/// matcher is measured on.
pub mod febrl {
    use super::{Block, Compare, Field, Matcher, Normalize};

    /// The records' ids and their ten fields; the header is skipped, fields are
    /// separated by a comma and a space, a blank field is missing.
    pub fn parse(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
        let mut ids = Vec::new();
        let mut records = Vec::new();
        for line in text.lines().skip(1) {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let mut fields = line.split(',').map(|f| f.trim().to_owned());
            ids.push(fields.next().unwrap_or_default());
            records.push(fields.collect());
        }
        (ids, records)
    }

    /// The true pairs (`a < b`): records whose ids share their number.
    pub fn true_pairs(ids: &[String]) -> Vec<(usize, usize)> {
        let mut by_number: std::collections::HashMap<&str, Vec<usize>> = Default::default();
        for (i, id) in ids.iter().enumerate() {
            let number = id.split('-').nth(1).unwrap_or_default();
            by_number.entry(number).or_default().push(i);
        }
        let mut pairs = Vec::new();
        for members in by_number.values() {
            for (x, &a) in members.iter().enumerate() {
                for &b in &members[x + 1..] {
                    pairs.push((a.min(b), a.max(b)));
                }
            }
        }
        pairs.sort_unstable();
        pairs
    }

    /// The matcher used on Febrl: names and places by Jaro–Winkler, numbers and dates by
    /// Levenshtein, postcode and state exactly; blocks on the first three letters of
    /// each name, the postcode, the date of birth and the social security number.
    pub fn matcher() -> Matcher {
        let field = |name: &str, compare, weight| Field {
            name: name.into(),
            compare,
            weight,
            normalize: Normalize::Text,
        };
        let block = |field, prefix| Block { field, prefix };
        Matcher {
            fields: vec![
                field("given_name", Compare::JaroWinkler, 1.0),
                field("surname", Compare::JaroWinkler, 1.0),
                field("street_number", Compare::Exact, 0.5),
                field("address_1", Compare::Levenshtein, 1.0),
                field("address_2", Compare::JaroWinkler, 0.5),
                field("suburb", Compare::JaroWinkler, 1.0),
                field("postcode", Compare::Exact, 1.0),
                field("state", Compare::Exact, 0.5),
                field("date_of_birth", Compare::Levenshtein, 1.0),
                field("soc_sec_id", Compare::Levenshtein, 1.0),
            ],
            blocks: vec![
                block(0, Some(3)),
                block(1, Some(3)),
                block(6, None),
                block(8, None),
                block(9, None),
            ],
            threshold: 0.65,
            max_block: 500,
        }
    }
}
