//! Train and test sets from interactions: a random share of the pairs (over all, or per
//! user), each user's last interaction, everything after a time, k folds, and users
//! held out entirely (cold start). Seeded: the same seed gives the same split.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{parameter, Result};
use crate::matrix::Csr;

/// One interaction: user and item indexes, a value, and when (any unit, e.g. ms).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    /// The user's index.
    pub user: u32,
    /// The item's index.
    pub item: u32,
    /// The interaction's value (a confidence weight, a rating, a count).
    pub value: f32,
    /// When it happened.
    pub time: i64,
}

/// A train and a test set over the same users and items.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// What models learn from.
    pub train: Vec<Interaction>,
    /// What they are judged on.
    pub test: Vec<Interaction>,
}

impl Split {
    /// Both sets as `users × items` matrices (repeated pairs summed).
    pub fn matrices(&self, users: usize, items: usize) -> Result<(Csr, Csr)> {
        Ok((
            to_matrix(&self.train, users, items)?,
            to_matrix(&self.test, users, items)?,
        ))
    }
}

/// Interactions as a `users × items` matrix of values (repeated pairs summed).
pub fn to_matrix(interactions: &[Interaction], users: usize, items: usize) -> Result<Csr> {
    let t: Vec<(u32, u32, f32)> = interactions
        .iter()
        .map(|i| (i.user, i.item, i.value))
        .collect();
    Csr::from_triplets(users, items, &t)
}

fn check_fraction(test_fraction: f64) -> Result<()> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(parameter(
            "test_fraction",
            "must be strictly between 0 and 1",
        ));
    }
    Ok(())
}

/// Every repeated `(user, item)` pair merged into one (values summed, the latest time),
/// so a pair cannot be in both sets; sorted by user, then item.
pub fn distinct_pairs(interactions: &[Interaction]) -> Vec<Interaction> {
    let mut all = interactions.to_vec();
    all.sort_by_key(|i| (i.user, i.item));
    let mut out: Vec<Interaction> = Vec::with_capacity(all.len());
    for i in all {
        match out.last_mut() {
            Some(last) if last.user == i.user && last.item == i.item => {
                last.value += i.value;
                last.time = last.time.max(i.time);
            }
            _ => out.push(i),
        }
    }
    out
}

/// A seeded random `test_fraction` of the distinct `(user, item)` pairs for testing,
/// drawn over all pairs (so a user's share varies, as in `implicit`'s
/// `train_test_split`).
pub fn random(interactions: &[Interaction], test_fraction: f64, seed: u64) -> Result<Split> {
    check_fraction(test_fraction)?;
    let mut pairs = distinct_pairs(interactions);
    pairs.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let cut = (pairs.len() as f64 * test_fraction).round() as usize;
    let test = pairs.split_off(pairs.len() - cut);
    Ok(Split { train: pairs, test })
}

/// A seeded random `test_fraction` of each user's distinct items for testing (rounded
/// down, so users with few items keep them all for training).
pub fn per_user(interactions: &[Interaction], test_fraction: f64, seed: u64) -> Result<Split> {
    check_fraction(test_fraction)?;
    let pairs = distinct_pairs(interactions);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for user in pairs.chunk_by(|a, b| a.user == b.user) {
        let mut user = user.to_vec();
        user.shuffle(&mut rng);
        let cut = (user.len() as f64 * test_fraction).floor() as usize;
        test.extend(user.drain(..cut));
        train.extend(user);
    }
    Ok(Split { train, test })
}

/// Each user's latest distinct item (ties by the higher item index) for testing; users
/// with a single item keep it for training.
pub fn leave_last_out(interactions: &[Interaction]) -> Split {
    let pairs = distinct_pairs(interactions);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for user in pairs.chunk_by(|a, b| a.user == b.user) {
        let last = (0..user.len())
            .max_by_key(|&k| (user[k].time, user[k].item))
            .expect("a chunk is never empty");
        for (k, i) in user.iter().enumerate() {
            if k == last && user.len() > 1 {
                test.push(*i);
            } else {
                train.push(*i);
            }
        }
    }
    Split { train, test }
}

/// Everything before `cutoff` to train on, everything at or after it to test on: how a
/// model trained on the past does on the future. Pairs are merged first, taking their
/// latest time.
pub fn by_time(interactions: &[Interaction], cutoff: i64) -> Split {
    let (train, test) = distinct_pairs(interactions)
        .into_iter()
        .partition(|i| i.time < cutoff);
    Split { train, test }
}

/// `k` folds of the distinct pairs (seeded): fold `f` tests on one `k`-th and trains on
/// the rest. Used to choose hyperparameters without touching a final test set.
pub fn k_fold(interactions: &[Interaction], k: usize, seed: u64) -> Result<Vec<Split>> {
    if k < 2 {
        return Err(parameter("k", "must be at least 2"));
    }
    let mut pairs = distinct_pairs(interactions);
    pairs.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    Ok((0..k)
        .map(|f| {
            let (mut train, mut test) = (Vec::new(), Vec::new());
            for (n, i) in pairs.iter().enumerate() {
                if n % k == f {
                    test.push(*i)
                } else {
                    train.push(*i)
                }
            }
            Split { train, test }
        })
        .collect())
}

/// Cold start: a seeded `user_fraction` of users held out entirely. Their items are
/// split again by `test_fraction` into what they showed (`shown`, given to a model as
/// a history at serving time, never trained on) and what is to be found (`test`).
pub fn cold_start(
    interactions: &[Interaction],
    user_fraction: f64,
    test_fraction: f64,
    seed: u64,
) -> Result<ColdStart> {
    check_fraction(user_fraction)?;
    check_fraction(test_fraction)?;
    let pairs = distinct_pairs(interactions);
    let mut users: Vec<u32> = pairs.iter().map(|i| i.user).collect();
    users.dedup();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    users.shuffle(&mut rng);
    let cut = (users.len() as f64 * user_fraction).round() as usize;
    let mut cold: Vec<u32> = users[..cut].to_vec();
    cold.sort_unstable();
    let (held, train): (Vec<Interaction>, Vec<Interaction>) = pairs
        .into_iter()
        .partition(|i| cold.binary_search(&i.user).is_ok());
    let split = per_user(&held, test_fraction, seed ^ 0x9e37_79b9)?;
    Ok(ColdStart {
        train,
        shown: split.train,
        test: split.test,
    })
}

/// A cold-start split ([`cold_start`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ColdStart {
    /// The other users' interactions: what models learn from.
    pub train: Vec<Interaction>,
    /// The held-out users' visible history.
    pub shown: Vec<Interaction>,
    /// The held-out users' items to find.
    pub test: Vec<Interaction>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Vec<Interaction> {
        let mut v = Vec::new();
        for user in 0..50u32 {
            for item in 0..10u32 {
                v.push(Interaction {
                    user,
                    item,
                    value: 1.0,
                    time: (user * 10 + item) as i64,
                });
            }
        }
        v.push(Interaction {
            user: 0,
            item: 0,
            value: 1.0,
            time: 999,
        });
        v
    }

    #[test]
    fn splits_partition_the_distinct_pairs() {
        let d = data();
        let s = random(&d, 0.2, 1).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (400, 100));
        assert_eq!(random(&d, 0.2, 1).unwrap(), s, "same seed, same split");
        assert_ne!(random(&d, 0.2, 2).unwrap(), s);
        let mut all: Vec<(u32, u32)> = s
            .train
            .iter()
            .chain(&s.test)
            .map(|i| (i.user, i.item))
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 500, "no pair in both sets or lost");
        let p = per_user(&d, 0.2, 1).unwrap();
        assert!(p
            .test
            .chunk_by(|a, b| a.user == b.user)
            .all(|c| c.len() == 2));
        let l = leave_last_out(&d);
        assert_eq!(l.test.len(), 50);
        assert_eq!(
            (l.test[0].user, l.test[0].item),
            (0, 0),
            "the repeat at 999 is user 0's latest"
        );
        assert!(l.test[1..].iter().all(|i| i.item == 9));
        let t = by_time(&d, 250);
        assert!(t.train.iter().all(|i| i.time < 250) && t.test.iter().all(|i| i.time >= 250));
        let folds = k_fold(&d, 5, 3).unwrap();
        assert!(folds.iter().all(|f| f.test.len() == 100));
        let c = cold_start(&d, 0.1, 0.5, 4).unwrap();
        let cold: std::collections::BTreeSet<u32> = c.test.iter().map(|i| i.user).collect();
        assert_eq!(cold.len(), 5);
        assert!(c.train.iter().all(|i| !cold.contains(&i.user)));
        assert!(random(&d, 1.0, 0).is_err() && k_fold(&d, 1, 0).is_err());
    }
}
