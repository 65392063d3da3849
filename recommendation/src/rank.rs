//! From scores to a ranking: the best `k` items, with filters.

use std::cmp::Ordering;

/// What a ranking must leave out, besides items scored `-inf`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Exclude<'a> {
    /// Items the user already has (sorted ascending): left out when given.
    pub consumed: &'a [u32],
    /// Items that must not be shown (sorted ascending): unpublished, out of stock,
    /// or ruled out by the request.
    pub banned: &'a [u32],
    /// When given, only these items may be ranked (sorted ascending).
    pub allowed: Option<&'a [u32]>,
}

impl Exclude<'_> {
    fn keeps(&self, item: u32) -> bool {
        self.consumed.binary_search(&item).is_err()
            && self.banned.binary_search(&item).is_err()
            && self.allowed.is_none_or(|a| a.binary_search(&item).is_ok())
    }
}

/// Orders by score, higher first, ties by lower item index (so rankings are stable).
fn better(a: &(u32, f32), b: &(u32, f32)) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// The `k` best items of `scores` (one per item index) with their scores, best first,
/// leaving out what `exclude` names and any score that is not finite. Runs in time
/// linear in the catalogue (a selection, then a sort of `k`).
pub fn top_k(scores: &[f32], k: usize, exclude: Exclude<'_>) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut kept: Vec<(u32, f32)> = Vec::with_capacity(k * 2);
    let mut floor = f32::NEG_INFINITY;
    for (i, &s) in scores.iter().enumerate() {
        // Keep a buffer of candidates; when full, cut it to the best k and raise the bar.
        if !s.is_finite() || s < floor {
            continue;
        }
        kept.push((i as u32, s));
        if kept.len() >= k * 4 + 64 {
            prune(&mut kept, k, &exclude);
            if kept.len() == k {
                floor = kept[k - 1].1;
            }
        }
    }
    prune(&mut kept, k, &exclude);
    kept
}

fn prune(kept: &mut Vec<(u32, f32)>, k: usize, exclude: &Exclude<'_>) {
    kept.retain(|(i, _)| exclude.keeps(*i));
    if kept.len() > k {
        kept.select_nth_unstable_by(k - 1, better);
        kept.truncate(k);
    }
    kept.sort_unstable_by(better);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_first_without_excluded_items() {
        let scores = [0.1, 0.9, f32::NEG_INFINITY, 0.5, 0.9, f32::NAN, 0.7];
        assert_eq!(
            top_k(&scores, 3, Exclude::default()),
            vec![(1, 0.9), (4, 0.9), (6, 0.7)]
        );
        let ex = Exclude {
            consumed: &[1],
            banned: &[6],
            allowed: None,
        };
        assert_eq!(top_k(&scores, 3, ex), vec![(4, 0.9), (3, 0.5), (0, 0.1)]);
        let only = [0, 3];
        let ex = Exclude {
            allowed: Some(&only),
            ..Default::default()
        };
        assert_eq!(top_k(&scores, 5, ex), vec![(3, 0.5), (0, 0.1)]);
    }

    #[test]
    fn large_catalogue_matches_a_full_sort() {
        let scores: Vec<f32> = (0..10_000u32)
            .map(|i| ((i * 7919) % 10_007) as f32)
            .collect();
        let mut all: Vec<(u32, f32)> = scores
            .iter()
            .enumerate()
            .map(|(i, &s)| (i as u32, s))
            .collect();
        all.sort_by(better);
        let consumed: Vec<u32> = all[..5].iter().map(|p| p.0).collect::<Vec<_>>();
        let mut sorted = consumed.clone();
        sorted.sort();
        let got = top_k(
            &scores,
            20,
            Exclude {
                consumed: &sorted,
                ..Default::default()
            },
        );
        assert_eq!(got, all[5..25].to_vec());
    }
}
