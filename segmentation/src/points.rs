//! Points: rows of features, stored contiguously row after row.
use crate::error::{Error, Result};

/// A borrowed set of `len()` points of `dim()` features each, row-major. Every value is
/// finite: [`Points::new`] checks it once, so estimators need not.
#[derive(Debug, Clone, Copy)]
pub struct Points<'a> {
    data: &'a [f64],
    dim: usize,
}

impl<'a> Points<'a> {
    /// Points from `data`, `dim` values per point.
    pub fn new(data: &'a [f64], dim: usize) -> Result<Points<'a>> {
        if dim == 0 {
            return Err(Error::Data("a point needs at least one feature".into()));
        }
        if !data.len().is_multiple_of(dim) {
            return Err(Error::Data(format!(
                "{} values do not make rows of {dim}",
                data.len()
            )));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::Data(format!(
                "value {} of point {} is not a finite number",
                i % dim,
                i / dim
            )));
        }
        Ok(Points { data, dim })
    }

    /// Features per point.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Point `i`.
    pub fn row(&self, i: usize) -> &'a [f64] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// All values, row after row.
    pub fn as_slice(&self) -> &'a [f64] {
        self.data
    }

    /// Points `start..end` (as a `Points` of their own).
    pub fn slice(&self, start: usize, end: usize) -> Points<'a> {
        Points {
            data: &self.data[start * self.dim..end * self.dim],
            dim: self.dim,
        }
    }
}

/// Squared Euclidean distance. Summed in four interleaved parts: one running sum is a
/// chain of dependent additions, four let the processor overlap them.
#[inline]
pub fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = a4
        .remainder()
        .iter()
        .zip(b4.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in a4.zip(b4) {
        for l in 0..4 {
            let d = x[l] - y[l];
            acc[l] += d * d;
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_checked_once() {
        assert!(Points::new(&[1.0, 2.0, 3.0], 2).is_err());
        assert!(Points::new(&[1.0, f64::NAN], 2).is_err());
        assert!(Points::new(&[1.0], 0).is_err());
        let p = Points::new(&[1.0, 2.0, 3.0, 4.0], 2).unwrap();
        assert_eq!((p.len(), p.dim()), (2, 2));
        assert_eq!(p.row(1), &[3.0, 4.0]);
    }
}
