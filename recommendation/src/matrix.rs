//! Sparse interaction matrices: compressed rows (CSR) of `f32` values.
//!
//! Rows are users and columns items in [`Csr`] as built from interactions; its
//! [`Csr::transpose`] gives items by users. Column indexes within a row are sorted and
//! unique (duplicates are summed when built), so rows can be merged and searched.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A sparse matrix in compressed sparse row form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Csr {
    rows: usize,
    cols: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    data: Vec<f32>,
}

impl Csr {
    /// Builds a `rows × cols` matrix from `(row, col, value)` triplets in any order;
    /// values of a repeated cell are summed. Refuses an index out of range or a value
    /// that is not finite, naming the triplet.
    pub fn from_triplets(rows: usize, cols: usize, triplets: &[(u32, u32, f32)]) -> Result<Csr> {
        if cols > u32::MAX as usize {
            return Err(Error::Shape(format!(
                "{cols} columns do not fit 32-bit indexes"
            )));
        }
        let mut counts = vec![0usize; rows + 1];
        for (n, &(r, c, v)) in triplets.iter().enumerate() {
            if r as usize >= rows || c as usize >= cols {
                return Err(Error::Shape(format!(
                    "triplet {n}: ({r}, {c}) is outside a {rows} × {cols} matrix"
                )));
            }
            if !v.is_finite() {
                return Err(Error::Data(format!("triplet {n}: value {v} is not finite")));
            }
            counts[r as usize + 1] += 1;
        }
        for r in 0..rows {
            counts[r + 1] += counts[r];
        }
        let mut next = counts.clone();
        let mut indices = vec![0u32; triplets.len()];
        let mut data = vec![0f32; triplets.len()];
        for &(r, c, v) in triplets {
            let at = &mut next[r as usize];
            indices[*at] = c;
            data[*at] = v;
            *at += 1;
        }
        // Sort each row by column and sum repeats, compacting in place.
        let mut indptr = vec![0usize; rows + 1];
        let mut write = 0;
        let mut pairs: Vec<(u32, f32)> = Vec::new();
        for r in 0..rows {
            pairs.clear();
            pairs.extend((counts[r]..counts[r + 1]).map(|k| (indices[k], data[k])));
            pairs.sort_unstable_by_key(|p| p.0);
            for &(c, v) in &pairs {
                if write > indptr[r] && indices[write - 1] == c {
                    data[write - 1] += v;
                } else {
                    indices[write] = c;
                    data[write] = v;
                    write += 1;
                }
            }
            indptr[r + 1] = write;
        }
        indices.truncate(write);
        data.truncate(write);
        Ok(Csr {
            rows,
            cols,
            indptr,
            indices,
            data,
        })
    }

    /// Builds a matrix from its parts, checking that they describe one: `indptr` of
    /// `rows + 1` non-decreasing offsets ending at the number of entries, columns in
    /// range and strictly increasing within each row, values finite.
    pub fn from_parts(
        rows: usize,
        cols: usize,
        indptr: Vec<usize>,
        indices: Vec<u32>,
        data: Vec<f32>,
    ) -> Result<Csr> {
        if indptr.len() != rows + 1 || indptr[0] != 0 || indptr[rows] != indices.len() {
            return Err(Error::Shape(
                "indptr does not match the rows and entries".into(),
            ));
        }
        if indices.len() != data.len() {
            return Err(Error::Shape("indices and data differ in length".into()));
        }
        for r in 0..rows {
            if indptr[r] > indptr[r + 1] {
                return Err(Error::Shape(format!("indptr decreases at row {r}")));
            }
            let row = &indices[indptr[r]..indptr[r + 1]];
            if row.windows(2).any(|w| w[0] >= w[1]) || row.iter().any(|&c| c as usize >= cols) {
                return Err(Error::Shape(format!(
                    "row {r}: columns unsorted or out of range"
                )));
            }
        }
        if let Some(v) = data.iter().find(|v| !v.is_finite()) {
            return Err(Error::Data(format!("value {v} is not finite")));
        }
        Ok(Csr {
            rows,
            cols,
            indptr,
            indices,
            data,
        })
    }

    /// An empty `rows × cols` matrix.
    pub fn zeros(rows: usize, cols: usize) -> Csr {
        Csr {
            rows,
            cols,
            indptr: vec![0; rows + 1],
            indices: Vec::new(),
            data: Vec::new(),
        }
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The number of stored entries.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Row `r`'s column indexes (sorted) and values; empty beyond the last row.
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        if r >= self.rows {
            return (&[], &[]);
        }
        let span = self.indptr[r]..self.indptr[r + 1];
        (&self.indices[span.clone()], &self.data[span])
    }

    /// The number of entries in row `r`.
    pub fn row_len(&self, r: usize) -> usize {
        if r >= self.rows {
            0
        } else {
            self.indptr[r + 1] - self.indptr[r]
        }
    }

    /// The row offsets (`rows + 1` of them).
    pub fn indptr(&self) -> &[usize] {
        &self.indptr
    }

    /// Every entry's column, row after row.
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// Every entry's value, row after row.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The value at `(r, c)`, zero when not stored.
    pub fn get(&self, r: usize, c: u32) -> f32 {
        let (cols, vals) = self.row(r);
        cols.binary_search(&c).map(|k| vals[k]).unwrap_or(0.0)
    }

    /// The transpose (columns become rows), in time linear in the entries.
    pub fn transpose(&self) -> Csr {
        let mut counts = vec![0usize; self.cols + 1];
        for &c in &self.indices {
            counts[c as usize + 1] += 1;
        }
        for c in 0..self.cols {
            counts[c + 1] += counts[c];
        }
        let mut next = counts.clone();
        let mut indices = vec![0u32; self.nnz()];
        let mut data = vec![0f32; self.nnz()];
        for r in 0..self.rows {
            let (cols, vals) = self.row(r);
            for (&c, &v) in cols.iter().zip(vals) {
                let at = &mut next[c as usize];
                indices[*at] = r as u32;
                data[*at] = v;
                *at += 1;
            }
        }
        Csr {
            rows: self.cols,
            cols: self.rows,
            indptr: counts,
            indices,
            data,
        }
    }

    /// The same pattern with every value replaced by `f(row, col, value)`.
    pub fn map(&self, mut f: impl FnMut(usize, u32, f32) -> f32) -> Csr {
        let mut out = self.clone();
        for r in 0..self.rows {
            for k in self.indptr[r]..self.indptr[r + 1] {
                out.data[k] = f(r, self.indices[k], self.data[k]);
            }
        }
        out
    }

    /// The number of entries in each column.
    pub fn column_counts(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.cols];
        for &c in &self.indices {
            counts[c as usize] += 1;
        }
        counts
    }

    /// A copy with at least `rows` rows and `cols` columns (new ones empty), so a model
    /// can score users or items that arrived after it was trained.
    pub fn grown(&self, rows: usize, cols: usize) -> Csr {
        let mut out = self.clone();
        out.cols = out.cols.max(cols);
        while out.rows < rows {
            out.indptr.push(out.indices.len());
            out.rows += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triplets_are_sorted_and_repeats_summed() {
        let m = Csr::from_triplets(3, 4, &[(2, 1, 1.0), (0, 3, 2.0), (0, 1, 1.0), (0, 3, 0.5)])
            .unwrap();
        assert_eq!(m.row(0), (&[1u32, 3][..], &[1.0f32, 2.5][..]));
        assert_eq!(m.row(1).0.len(), 0);
        assert_eq!(m.row(2), (&[1u32][..], &[1.0f32][..]));
        assert_eq!(m.nnz(), 3);
        let t = m.transpose();
        assert_eq!(t.rows(), 4);
        assert_eq!(t.row(1), (&[0u32, 2][..], &[1.0f32, 1.0][..]));
        assert_eq!(t.row(3), (&[0u32][..], &[2.5f32][..]));
        assert_eq!(t.transpose(), m);
        assert_eq!(m.get(0, 3), 2.5);
        assert_eq!(m.get(1, 3), 0.0);
    }

    #[test]
    fn bad_triplets_are_refused_by_position() {
        let e = Csr::from_triplets(2, 2, &[(0, 0, 1.0), (0, 2, 1.0)]).unwrap_err();
        assert!(e.to_string().contains("triplet 1"), "{e}");
        let e = Csr::from_triplets(2, 2, &[(1, 1, f32::NAN)]).unwrap_err();
        assert!(e.to_string().contains("not finite"), "{e}");
        assert!(Csr::from_parts(1, 2, vec![0, 2], vec![1, 0], vec![1.0, 1.0]).is_err());
    }
}
