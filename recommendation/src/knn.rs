//! Item-based nearest neighbours: an item's score for a user is the sum, over the items
//! the user has, of the value times the two items' similarity; each item keeps only its
//! `neighbours` most similar items (Sarwar et al. 2001; Deshpande & Karypis 2004).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{parameter, Error, Result};
use crate::matrix::Csr;
use crate::weight;
use crate::{History, Scorer};

/// How item vectors (their users' values) are weighted before dot products are taken.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Weighting {
    /// Plain dot products of the values (co-occurrence counts for 0/1 data).
    None,
    /// Cosine: item vectors scaled to unit length.
    Cosine,
    /// TF-IDF: users with fewer items count more ([`weight::tfidf`]).
    TfIdf,
    /// BM25 with its saturation `k1` and length normalization `b` ([`weight::bm25`]).
    Bm25 {
        /// Term-frequency saturation (100 is common for implicit data).
        k1: f32,
        /// Length normalization in `[0, 1]`.
        b: f32,
    },
}

/// Parameters of [`ItemKnn`], checked by [`ItemKnnParams::check`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ItemKnnParams {
    /// Neighbours kept per item (at least 1).
    pub neighbours: usize,
    /// The weighting of item vectors.
    pub weighting: Weighting,
    /// Shrinkage: each similarity is multiplied by `n / (n + shrink)`, `n` the number of
    /// users the two items share, so pairs seen together rarely count less. 0 = off.
    pub shrink: f32,
}

impl Default for ItemKnnParams {
    fn default() -> Self {
        ItemKnnParams {
            neighbours: 100,
            weighting: Weighting::Bm25 { k1: 100.0, b: 0.8 },
            shrink: 0.0,
        }
    }
}

/// Parameters that passed [`ItemKnnParams::check`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidItemKnnParams(ItemKnnParams);

impl ItemKnnParams {
    /// Checks each parameter's range.
    pub fn check(self) -> Result<ValidItemKnnParams> {
        if self.neighbours == 0 {
            return Err(parameter("neighbours", "must be at least 1"));
        }
        if !(self.shrink.is_finite() && self.shrink >= 0.0) {
            return Err(parameter("shrink", "must be a finite number ≥ 0"));
        }
        if let Weighting::Bm25 { k1, b } = self.weighting {
            if !(k1.is_finite() && k1 > 0.0) {
                return Err(parameter("k1", "must be a finite number > 0"));
            }
            if !(0.0..=1.0).contains(&b) {
                return Err(parameter("b", "must be in [0, 1]"));
            }
        }
        Ok(ValidItemKnnParams(self))
    }
}

impl ValidItemKnnParams {
    /// Learns the item-item similarities of a users-by-items matrix. Items are done in
    /// parallel, each with a dense accumulator over the catalogue.
    pub fn fit(&self, user_items: &Csr) -> ItemKnn {
        let p = self.0;
        let items = user_items.transpose();
        let weighted = match p.weighting {
            Weighting::None => items,
            Weighting::Cosine => weight::unit_rows(&items),
            Weighting::TfIdf => weight::tfidf(&items),
            Weighting::Bm25 { k1, b } => weight::bm25(&items, k1, b),
        };
        let by_user = weighted.transpose();
        let n = weighted.rows();
        let rows: Vec<Vec<(u32, f32)>> = (0..n)
            .into_par_iter()
            .map_init(
                || (vec![0f32; n], vec![0u32; n], Vec::<u32>::new()),
                |(acc, shared, touched), i| {
                    let (users, wi) = weighted.row(i);
                    for (&u, &w) in users.iter().zip(wi) {
                        let (js, wj) = by_user.row(u as usize);
                        for (&j, &v) in js.iter().zip(wj) {
                            if shared[j as usize] == 0 {
                                touched.push(j);
                            }
                            shared[j as usize] += 1;
                            acc[j as usize] += w * v;
                        }
                    }
                    let mut row: Vec<(u32, f32)> = Vec::with_capacity(touched.len());
                    for &j in touched.iter() {
                        let (s, c) = (acc[j as usize], shared[j as usize]);
                        acc[j as usize] = 0.0;
                        shared[j as usize] = 0;
                        if j as usize == i || s <= 0.0 {
                            continue;
                        }
                        let s = if p.shrink > 0.0 {
                            s * c as f32 / (c as f32 + p.shrink)
                        } else {
                            s
                        };
                        row.push((j, s));
                    }
                    touched.clear();
                    if row.len() > p.neighbours {
                        row.select_nth_unstable_by(p.neighbours - 1, |a, b| {
                            b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
                        });
                        row.truncate(p.neighbours);
                    }
                    row.sort_unstable_by_key(|e| e.0);
                    row
                },
            )
            .collect();
        let mut indptr = Vec::with_capacity(n + 1);
        indptr.push(0);
        let (mut indices, mut data) = (Vec::new(), Vec::new());
        for row in rows {
            for (j, s) in row {
                indices.push(j);
                data.push(s);
            }
            indptr.push(indices.len());
        }
        let similarity =
            Csr::from_parts(n, n, indptr, indices, data).expect("rows built sorted and in range");
        ItemKnn {
            params: p,
            similarity,
        }
    }
}

/// A fitted item-kNN model: each item's nearest items and their similarities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemKnn {
    params: ItemKnnParams,
    similarity: Csr,
}

impl ItemKnn {
    /// The parameters it was fitted with.
    pub fn params(&self) -> ItemKnnParams {
        self.params
    }

    /// The item-by-item similarities kept (row: an item; its neighbours and weights).
    pub fn similarity(&self) -> &Csr {
        &self.similarity
    }

    /// The `k` items most similar to `item`, best first.
    pub fn similar(&self, item: u32, k: usize) -> Result<Vec<(u32, f32)>> {
        if item as usize >= self.similarity.rows() {
            return Err(Error::Shape(format!("item {item} is not in the model")));
        }
        let (js, ss) = self.similarity.row(item as usize);
        let mut row: Vec<(u32, f32)> = js.iter().copied().zip(ss.iter().copied()).collect();
        row.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        row.truncate(k);
        Ok(row)
    }
}

impl Scorer for ItemKnn {
    fn items(&self) -> usize {
        self.similarity.rows()
    }

    /// Scores straight from the history given (any user, seen in training or not):
    /// items beyond the model's catalogue in the history are ignored.
    fn score(&self, history: History<'_>, out: &mut [f32]) {
        out.fill(0.0);
        for (&i, &v) in history.items.iter().zip(history.values) {
            let (js, ss) = self.similarity.row(i as usize);
            for (&j, &s) in js.iter().zip(ss) {
                if let Some(o) = out.get_mut(j as usize) {
                    *o += v * s;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Csr {
        // Users 0-2 have items 0 and 1; user 3 has items 1 and 2; user 4 item 3 only.
        let t = [
            (0, 0, 1.0),
            (0, 1, 1.0),
            (1, 0, 1.0),
            (1, 1, 1.0),
            (2, 0, 1.0),
            (2, 1, 1.0),
            (3, 1, 1.0),
            (3, 2, 1.0),
            (4, 3, 1.0),
        ];
        Csr::from_triplets(5, 4, &t).unwrap()
    }

    #[test]
    fn cooccurrence_and_cosine_by_hand() {
        let x = fixture();
        let plain = ItemKnnParams {
            neighbours: 10,
            weighting: Weighting::None,
            shrink: 0.0,
        };
        let m = plain.check().unwrap().fit(&x);
        assert_eq!(m.similarity().get(0, 1), 3.0);
        assert_eq!(m.similarity().get(1, 2), 1.0);
        assert_eq!(
            m.similarity().get(0, 0),
            0.0,
            "an item is not its own neighbour"
        );
        assert_eq!(m.similarity().row_len(3), 0);
        let cos = ItemKnnParams {
            weighting: Weighting::Cosine,
            ..plain
        };
        let m = cos.check().unwrap().fit(&x);
        // cos(0, 1) = 3 / (sqrt 3 · sqrt 4); cos(1, 2) = 1 / (2 · 1).
        assert!((m.similarity().get(0, 1) - 3.0 / (3f32.sqrt() * 2.0)).abs() < 1e-6);
        assert!((m.similarity().get(1, 2) - 0.5).abs() < 1e-6);
        let mut out = vec![0.0; 4];
        m.score(History::new(&[2], &[2.0]), &mut out);
        assert_eq!(out, vec![0.0, 1.0, 0.0, 0.0]);
        assert_eq!(m.similar(1, 1).unwrap()[0].0, 0);
        let shrunk = ItemKnnParams {
            shrink: 1.0,
            ..plain
        };
        let m = shrunk.check().unwrap().fit(&x);
        assert_eq!(m.similarity().get(0, 1), 3.0 * 3.0 / 4.0);
    }

    #[test]
    fn neighbours_are_capped_and_parameters_checked() {
        let x = fixture();
        let one = ItemKnnParams {
            neighbours: 1,
            weighting: Weighting::None,
            shrink: 0.0,
        };
        let m = one.check().unwrap().fit(&x);
        assert_eq!(m.similarity().row(1).0, &[0]);
        assert!(ItemKnnParams {
            neighbours: 0,
            ..one
        }
        .check()
        .is_err());
        let bad = ItemKnnParams {
            weighting: Weighting::Bm25 { k1: 1.0, b: 2.0 },
            ..one
        };
        assert_eq!(
            bad.check().unwrap_err().to_string(),
            "invalid parameter b: must be in [0, 1]"
        );
        assert!(m.similar(9, 1).is_err());
    }
}
