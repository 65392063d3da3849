//! Content-based recommendation: items as TF-IDF vectors of their tags and attributes,
//! a user as the decayed sum of the vectors of what they interacted with, items ranked
//! by cosine similarity to that interest vector (how an article feed recommends by
//! interests); and "similar items" by the same cosine between two items.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{parameter, Error, Result};
use crate::matrix::Csr;
use crate::{History, Scorer};

/// Parameters of [`Content`], checked by [`ContentParams::check`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContentParams {
    /// Terms kept per item, its strongest by TF-IDF (at least 1): weak, noisy tags cost
    /// time and blur the vectors.
    pub item_terms: usize,
    /// Terms kept in a user's interest vector (at least 1).
    pub profile_terms: usize,
}

impl Default for ContentParams {
    fn default() -> Self {
        ContentParams {
            item_terms: 30,
            profile_terms: 60,
        }
    }
}

/// Parameters that passed [`ContentParams::check`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidContentParams(ContentParams);

impl ContentParams {
    /// Checks each parameter's range.
    pub fn check(self) -> Result<ValidContentParams> {
        if self.item_terms == 0 {
            return Err(parameter("item_terms", "must be at least 1"));
        }
        if self.profile_terms == 0 {
            return Err(parameter("profile_terms", "must be at least 1"));
        }
        Ok(ValidContentParams(self))
    }
}

impl ValidContentParams {
    /// Builds item vectors from an items-by-terms matrix of counts (how often each tag
    /// was applied, or 1 for an attribute): `tf = ln(1 + count)`, `idf = ln(items /
    /// items with the term)`, the strongest `item_terms` kept, each row of unit length.
    pub fn fit(&self, item_terms: &Csr) -> Result<Content> {
        if let Some(v) = item_terms.data().iter().find(|v| **v < 0.0) {
            return Err(Error::Data(format!("term count {v} is negative")));
        }
        let n = item_terms.rows() as f32;
        let df = item_terms.column_counts();
        let keep = self.0.item_terms;
        let rows: Vec<Vec<(u32, f32)>> = (0..item_terms.rows())
            .into_par_iter()
            .map(|i| {
                let (ts, cs) = item_terms.row(i);
                let mut row: Vec<(u32, f32)> = ts
                    .iter()
                    .zip(cs)
                    .map(|(&t, &c)| (t, c.ln_1p() * (n / df[t as usize] as f32).ln()))
                    .filter(|(_, w)| *w > 0.0)
                    .collect();
                strongest(&mut row, keep);
                let norm = row.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
                row.iter_mut().for_each(|(_, w)| *w /= norm);
                row
            })
            .collect();
        let mut t = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            t.extend(row.iter().map(|&(term, w)| (i as u32, term, w)));
        }
        let vectors = Csr::from_triplets(item_terms.rows(), item_terms.cols(), &t)?;
        Ok(Content {
            params: self.0,
            postings: vectors.transpose(),
            vectors,
        })
    }
}

/// Keeps the `k` heaviest entries, sorted by index.
fn strongest(row: &mut Vec<(u32, f32)>, k: usize) {
    if row.len() > k {
        row.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        row.truncate(k);
    }
    row.sort_unstable_by_key(|e| e.0);
}

/// Item vectors and, per term, the items that have it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Content {
    params: ContentParams,
    vectors: Csr,
    postings: Csr,
}

/// Each interaction's value times `0.5^((now − time) / half_life)`: a user's interests
/// fade unless renewed. Times, `now` and `half_life` in one unit; a time after `now`
/// counts as now.
pub fn decay(values: &[f32], times: &[i64], now: i64, half_life: f64) -> Vec<f32> {
    values
        .iter()
        .zip(times)
        .map(|(&v, &t)| v * 0.5f64.powf((now - t).max(0) as f64 / half_life) as f32)
        .collect()
}

impl Content {
    /// The parameters it was built with.
    pub fn params(&self) -> ContentParams {
        self.params
    }

    /// Item `i`'s unit vector over terms.
    pub fn vector(&self, i: usize) -> (&[u32], &[f32]) {
        self.vectors.row(i)
    }

    /// A user's interest vector: the history's values (decayed, see [`decay`]) times
    /// their items' vectors, summed, the strongest terms kept, of unit length.
    pub fn profile(&self, history: History<'_>) -> Vec<(u32, f32)> {
        let mut acc: std::collections::HashMap<u32, f32> = Default::default();
        for (&i, &v) in history.items.iter().zip(history.values) {
            let (ts, ws) = self.vectors.row(i as usize);
            for (&t, &w) in ts.iter().zip(ws) {
                *acc.entry(t).or_default() += v * w;
            }
        }
        let mut row: Vec<(u32, f32)> = acc.into_iter().filter(|(_, w)| *w > 0.0).collect();
        strongest(&mut row, self.params.profile_terms);
        let norm = row.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
        row.iter_mut().for_each(|(_, w)| *w /= norm);
        row
    }

    /// Cosine of every item with a unit vector over terms.
    fn cosine(&self, vector: &[(u32, f32)], out: &mut [f32]) {
        out.fill(0.0);
        for &(t, w) in vector {
            let (items, ws) = self.postings.row(t as usize);
            for (&i, &x) in items.iter().zip(ws) {
                if let Some(o) = out.get_mut(i as usize) {
                    *o += w * x;
                }
            }
        }
    }

    /// The `k` items closest to `item` by cosine of their vectors, best first.
    pub fn similar(&self, item: u32, k: usize) -> Result<Vec<(u32, f32)>> {
        if item as usize >= self.vectors.rows() {
            return Err(Error::Shape(format!("item {item} is not in the model")));
        }
        let (ts, ws) = self.vectors.row(item as usize);
        let v: Vec<(u32, f32)> = ts.iter().copied().zip(ws.iter().copied()).collect();
        let mut out = vec![0f32; self.vectors.rows()];
        self.cosine(&v, &mut out);
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

impl Scorer for Content {
    fn items(&self) -> usize {
        self.vectors.rows()
    }

    /// Cosine of each item with the history's interest vector ([`Content::profile`]).
    fn score(&self, history: History<'_>, out: &mut [f32]) {
        let profile = self.profile(history);
        self.cosine(&profile, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags() -> Csr {
        // Items 0 and 1 are "fantasy" (term 0) books, item 2 "history" (term 1), item 3
        // both; term 2 ("to-read") is on every item, so its idf is 0.
        let t = [
            (0, 0, 10.0),
            (1, 0, 5.0),
            (2, 1, 8.0),
            (3, 0, 1.0),
            (3, 1, 1.0),
            (0, 2, 3.0),
            (1, 2, 3.0),
            (2, 2, 3.0),
            (3, 2, 3.0),
        ];
        Csr::from_triplets(4, 3, &t).unwrap()
    }

    #[test]
    fn tfidf_vectors_cosine_and_decay_by_hand() {
        let m = ContentParams::default()
            .check()
            .unwrap()
            .fit(&tags())
            .unwrap();
        assert_eq!(
            m.vector(0),
            (&[0u32][..], &[1.0f32][..]),
            "to-read carries no weight"
        );
        // Item 3: tf ln 2 on both terms; idf ln(4/3) for fantasy (3 items), ln 2 for
        // history (2 items); then unit length.
        let (ts, ws) = m.vector(3);
        assert_eq!(ts, &[0, 1]);
        let (a, b) = ((4f32 / 3.0).ln(), 2f32.ln());
        let norm = (a * a + b * b).sqrt();
        assert!((ws[0] - a / norm).abs() < 1e-6 && (ws[1] - b / norm).abs() < 1e-6);
        let sim = m.similar(0, 3).unwrap();
        assert_eq!(sim[0], (1, 1.0));
        assert_eq!(sim[1].0, 3);
        assert!((sim[1].1 - a / norm).abs() < 1e-6);
        // A reader of item 2 (history) long ago and item 0 (fantasy) now: fantasy leads.
        let values = decay(&[1.0, 1.0], &[100, 0], 100, 10.0);
        assert!((values[0] - 1.0).abs() < 1e-6 && values[1] < 0.001);
        let mut out = vec![0.0; 4];
        m.score(History::new(&[0, 2], &values), &mut out);
        assert!(out[1] > out[3] && out[3] > out[2] && out[1] > 0.99);
        assert!(ContentParams {
            item_terms: 0,
            ..Default::default()
        }
        .check()
        .is_err());
    }
}
