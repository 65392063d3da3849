//! Invariants over random inputs: metrics stay in [0, 1] and a perfect ranking scores 1;
//! the fast top-k equals a full sort; a split loses no pair and repeats none.
use assent_recommendation::{
    metrics::at_k,
    rank::{top_k, Exclude},
    split::{self, Interaction},
};
use proptest::prelude::*;

proptest! {
    #[test]
    fn metrics_are_bounded_and_perfect_rankings_score_one(
        ranking in proptest::collection::vec(0u32..50, 0..20),
        relevant in proptest::collection::btree_set(0u32..50, 1..10),
        k in 1usize..15,
    ) {
        let relevant: Vec<u32> = relevant.into_iter().collect();
        let m = at_k(&ranking, &relevant, k);
        for v in [m.precision, m.recall, m.average_precision, m.ndcg] {
            prop_assert!((0.0..=1.0 + 1e-12).contains(&v), "{m:?}");
        }
        let perfect = at_k(&relevant, &relevant, k);
        prop_assert!((perfect.ndcg - 1.0).abs() < 1e-12 && (perfect.average_precision - 1.0).abs() < 1e-12);
    }

    #[test]
    fn top_k_equals_a_full_sort(
        scores in proptest::collection::vec(-100i32..100, 0..400),
        k in 0usize..40,
        consumed in proptest::collection::btree_set(0u32..400, 0..30),
    ) {
        let scores: Vec<f32> = scores.into_iter().map(|s| s as f32).collect();
        let consumed: Vec<u32> = consumed.into_iter().collect();
        let got = top_k(&scores, k, Exclude { consumed: &consumed, ..Default::default() });
        let mut all: Vec<(u32, f32)> = scores
            .iter()
            .enumerate()
            .map(|(i, &s)| (i as u32, s))
            .filter(|(i, _)| consumed.binary_search(i).is_err())
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        prop_assert_eq!(got, all);
    }

    #[test]
    fn a_random_split_partitions_the_distinct_pairs(
        pairs in proptest::collection::vec((0u32..20, 0u32..20), 1..200),
        seed in any::<u64>(),
    ) {
        let data: Vec<Interaction> = pairs
            .iter()
            .map(|&(user, item)| Interaction { user, item, value: 1.0, time: 0 })
            .collect();
        let s = split::random(&data, 0.2, seed).unwrap();
        let mut seen: Vec<(u32, u32)> = s.train.iter().chain(&s.test).map(|i| (i.user, i.item)).collect();
        let n = seen.len();
        seen.sort();
        seen.dedup();
        prop_assert_eq!(seen.len(), n, "a pair in both sets");
        let mut distinct = pairs.clone();
        distinct.sort();
        distinct.dedup();
        prop_assert_eq!(n, distinct.len());
    }
}
