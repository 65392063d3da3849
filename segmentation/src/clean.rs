//! Cleaning before training: outlying profiles (robust z-scores or interquartile fences
//! on each feature) and bot-like ones (inhuman event rates) are flagged so they stay out
//! of a model's training data.
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    points::Points,
    profile::Profile,
};

/// How a value is judged an outlier among its feature's values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fences {
    /// The modified z-score of Iglewicz and Hoaglin, 0.6745 (x − median) / MAD, above
    /// `threshold` in absolute value (3.5 is theirs). A feature whose MAD is 0 (most
    /// values equal, common for counts) uses the mean absolute deviation from the median
    /// instead, scaled by 1.2533 to estimate the same σ; when that is 0 too, every value
    /// equals the median and none is an outlier.
    RobustZ {
        /// In absolute value.
        threshold: f64,
    },
    /// Outside [Q1 − k·IQR, Q3 + k·IQR] (Tukey's fences; k = 1.5), quartiles linearly
    /// interpolated as NumPy's default.
    Iqr {
        /// The fences' width in interquartile ranges.
        k: f64,
    },
}

/// Tukey's "far out" fences (k = 3): behaviour is skewed and often has several modes, so
/// narrower fences would leave out whole groups of heavy users, the ones segmentation is
/// most often for.
impl Default for Fences {
    fn default() -> Self {
        Fences::Iqr { k: 3.0 }
    }
}

impl Fences {
    /// Checks the parameter.
    pub fn check(self) -> Result<Fences> {
        let (name, v) = match self {
            Fences::RobustZ { threshold } => ("threshold", threshold),
            Fences::Iqr { k } => ("k", k),
        };
        if v.is_finite() && v > 0.0 {
            Ok(self)
        } else {
            Err(Error::Parameter {
                name,
                reason: "a positive number".into(),
            })
        }
    }
}

/// The `q` quantile (0 to 1) of sorted values, linearly interpolated.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let at = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64)
}

/// Which points have a feature outside `fences` (true = outlier).
pub fn outliers(points: Points<'_>, fences: Fences) -> Result<Vec<bool>> {
    let fences = fences.check()?;
    let mut flagged = vec![false; points.len()];
    if points.is_empty() {
        return Ok(flagged);
    }
    let mut column = Vec::with_capacity(points.len());
    for j in 0..points.dim() {
        column.clear();
        column.extend((0..points.len()).map(|i| points.row(i)[j]));
        let mut sorted = column.clone();
        sorted.sort_by(f64::total_cmp);
        let outside: Box<dyn Fn(f64) -> bool> = match fences {
            Fences::RobustZ { threshold } => {
                let median = quantile(&sorted, 0.5);
                let mut deviations: Vec<f64> = column.iter().map(|x| (x - median).abs()).collect();
                deviations.sort_by(f64::total_cmp);
                let mad = quantile(&deviations, 0.5);
                let scale = if mad > 0.0 {
                    mad / 0.6745
                } else {
                    1.253_314 * deviations.iter().sum::<f64>() / deviations.len() as f64
                };
                if scale == 0.0 {
                    continue;
                }
                Box::new(move |x| ((x - median) / scale).abs() > threshold)
            }
            Fences::Iqr { k } => {
                let (q1, q3) = (quantile(&sorted, 0.25), quantile(&sorted, 0.75));
                let (lo, hi) = (q1 - k * (q3 - q1), q3 + k * (q3 - q1));
                Box::new(move |x| x < lo || x > hi)
            }
        };
        for (f, x) in flagged.iter_mut().zip(&column) {
            *f |= outside(*x);
        }
    }
    Ok(flagged)
}

/// Whether a profile looks like a bot: more than `max_per_minute` events within some 60
/// seconds (people do not read sixty pages a minute).
pub fn bot_like(profile: &Profile, max_per_minute: usize) -> bool {
    let times: Vec<i64> = profile
        .events_between(i64::MIN, i64::MAX)
        .map(|e| e.at_ms)
        .collect();
    // Events are in time order: a window of max + 1 events spanning under a minute.
    times
        .windows(max_per_minute + 1)
        .any(|w| w[max_per_minute] - w[0] < 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Context, Event, Kind};

    fn flags(values: &[f64], fences: Fences) -> Vec<bool> {
        outliers(Points::new(values, 1).unwrap(), fences).unwrap()
    }

    #[test]
    fn fences_flag_what_numpy_and_the_textbook_say() {
        // Q1 = 2, Q3 = 4 (NumPy's linear quantiles): fences [-1, 7].
        let v = [1.0, 2.0, 3.0, 4.0, 100.0];
        assert_eq!(
            flags(&v, Fences::Iqr { k: 1.5 }),
            [false, false, false, false, true]
        );
        // Median 3, MAD 1: z(100) = 0.6745 · 97 ≫ 3.5, z(1) = 1.35.
        let z = Fences::RobustZ { threshold: 3.5 };
        assert_eq!(flags(&v, z), [false, false, false, false, true]);
        // Mostly zeros (MAD 0): the mean absolute deviation decides.
        let counts = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 40.0];
        let f = flags(&counts, z);
        assert!(f[9] && !f[7], "{f:?}");
        // All equal: nothing is an outlier.
        assert!(flags(&[2.0; 6], z).iter().all(|f| !f));
        assert!(flags(&[2.0; 6], Fences::default()).iter().all(|f| !f));
        // Two features: a point is out when either is.
        let two = [2.0, 10.0, 2.0, 11.0, 3.0, 12.0, 2.0, 500.0, 2.5, 11.5];
        let f = outliers(Points::new(&two, 2).unwrap(), Fences::Iqr { k: 1.5 }).unwrap();
        assert_eq!(f, [false, false, false, true, false]);
        assert!(Fences::Iqr { k: 0.0 }.check().is_err());
        assert!(Fences::RobustZ {
            threshold: f64::NAN
        }
        .check()
        .is_err());
    }

    #[test]
    fn inhuman_rates_are_bot_like() {
        let profile = |gap_ms: i64, n: usize| {
            let mut p = Profile::default();
            for i in 0..n {
                p.fold(Event {
                    message_id: format!("m{i}"),
                    at_ms: 1_000_000 + i as i64 * gap_ms,
                    kind: Kind::Page,
                    name: None,
                    properties: Default::default(),
                    context: Context::default(),
                });
            }
            p
        };
        // 200 pages, one every 100 ms: 600 a minute.
        assert!(bot_like(&profile(100, 200), 120));
        // 200 pages, one every 2 s: 30 a minute.
        assert!(!bot_like(&profile(2_000, 200), 120));
        assert!(!bot_like(&profile(1, 5), 120), "too few to tell");
    }
}
