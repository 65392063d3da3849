//! A blend of models: each one's scores scaled to `[0, 1]` by its best score for this
//! user, then summed with weights, so a collaborative model and a content model (whose
//! scores live on different scales) each count as much as asked.

use crate::{History, Scorer};

/// Models and their weights.
pub struct Blend<'m> {
    parts: Vec<(&'m dyn Scorer, f32)>,
    items: usize,
}

impl<'m> Blend<'m> {
    /// A blend of `(model, weight)` pairs; the catalogue is the largest of theirs.
    pub fn new(parts: Vec<(&'m dyn Scorer, f32)>) -> Blend<'m> {
        let items = parts.iter().map(|(m, _)| m.items()).max().unwrap_or(0);
        Blend { parts, items }
    }
}

impl Scorer for Blend<'_> {
    fn items(&self) -> usize {
        self.items
    }

    fn score(&self, history: History<'_>, out: &mut [f32]) {
        self.blend(out, |m, o| m.score(history, o));
    }

    fn score_known(&self, user: usize, history: History<'_>, out: &mut [f32]) {
        self.blend(out, |m, o| m.score_known(user, history, o));
    }
}

impl Blend<'_> {
    fn blend(&self, out: &mut [f32], mut score: impl FnMut(&dyn Scorer, &mut [f32])) {
        out.fill(0.0);
        let mut part = vec![0f32; self.items];
        for &(model, weight) in &self.parts {
            let n = model.items();
            score(model, &mut part[..n]);
            let top = part[..n]
                .iter()
                .filter(|v| v.is_finite())
                .fold(0f32, |a, &b| a.max(b.abs()));
            if top > 0.0 {
                let scale = weight / top;
                out.iter_mut()
                    .zip(&part[..n])
                    .for_each(|(o, &p)| *o += if p.is_finite() { p * scale } else { 0.0 });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::Csr;
    use crate::popularity::Popularity;

    #[test]
    fn scales_before_weighing() {
        let a = Popularity::fit(
            &Csr::from_triplets(4, 2, &[(0, 0, 1.0), (1, 0, 1.0), (2, 0, 1.0), (3, 1, 1.0)])
                .unwrap(),
        );
        let b = Popularity::fit(&Csr::from_triplets(1, 2, &[(0, 1, 1.0)]).unwrap());
        let blend = Blend::new(vec![(&a, 1.0), (&b, 0.5)]);
        let mut out = vec![0.0; 2];
        blend.score(History::default(), &mut out);
        assert!(
            (out[0] - 1.0).abs() < 1e-6 && (out[1] - (1.0 / 3.0 + 0.5)).abs() < 1e-6,
            "{out:?}"
        );
    }
}
