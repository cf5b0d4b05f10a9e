//! Seeded synthetic BPM series for the detector's tests and benchmarks:
//! minute counts with a weekly shape (weekday and daily curve), day-to-day
//! multiplicative noise, Poisson counts and an optional anomaly (a period
//! during which the rate is multiplied by a factor: 0 for an outage, 0.5
//! for a halving).
//!
//! Invariants: the same [`Synthetic`] always yields the same counts (the
//! generator is a splitmix64 stream seeded by `seed`); the mean rate over a
//! whole week without noise or anomaly is `per_hour`; counts are whole and
//! non-negative.

use crate::time::{DAY, MINUTE, WEEK};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct Synthetic {
    /// Mean events per hour over a week.
    pub per_hour: f64,
    /// Length in whole weeks (plus `extra` seconds).
    pub weeks: i64,
    /// Seconds after the last whole week.
    pub extra: i64,
    /// Standard deviation of the log of each day's factor (0.05: days vary
    /// by about 5%).
    pub day_noise: f64,
    /// `(from, to, factor)`: the rate is multiplied by `factor` in
    /// `[from, to)` (seconds from the start).
    pub anomaly: Option<(i64, i64, f64)>,
    pub seed: u64,
}

impl Synthetic {
    /// A clean series: `weeks` weeks at `per_hour`, 5% day-to-day noise.
    pub fn new(per_hour: f64, weeks: i64, seed: u64) -> Self {
        Synthetic {
            per_hour,
            weeks,
            extra: 0,
            day_noise: 0.05,
            anomaly: None,
            seed,
        }
    }

    /// Relative rate at `t` seconds from the start (a Monday 00:00): a
    /// daily curve low at night and high in the afternoon, weekends at 60%
    /// of weekdays; its mean over a week is 1.
    pub fn shape(t: i64) -> f64 {
        let day = t.rem_euclid(WEEK) / DAY;
        let hour = t.rem_euclid(DAY) as f64 / 3600.0;
        let weekday = if day >= 5 { 0.6 } else { 1.0 };
        // 0.15 at 03:00, 1.85 at 15:00: mean 1 over a day.
        let daily = 1.0 - 0.85 * ((hour - 3.0) / 24.0 * std::f64::consts::TAU).cos();
        weekday * daily / WEEKDAY_MEAN
    }

    /// Minute counts from the start.
    pub fn minutes(&self) -> Vec<f64> {
        let mut rng = Rng(self.seed);
        let n = usize::try_from((self.weeks * WEEK + self.extra) / MINUTE).unwrap_or(0);
        let days = n / 1440 + 1;
        let day_factor: Vec<f64> = (0..days)
            .map(|_| (self.day_noise * rng.normal()).exp())
            .collect();
        (0..n)
            .map(|i| {
                let t = i as i64 * MINUTE;
                let mut rate = self.per_hour / 60.0 * Self::shape(t);
                rate *= day_factor.get(i / 1440).copied().unwrap_or(1.0);
                if let Some((a, b, f)) = self.anomaly {
                    if t >= a && t < b {
                        rate *= f;
                    }
                }
                rng.poisson(rate)
            })
            .collect()
    }
}

/// Mean of the weekday factors (5 × 1.0 + 2 × 0.6) / 7.
const WEEKDAY_MEAN: f64 = 6.2 / 7.0;

/// Sums consecutive runs of `k` counts (a coarser grid); a partial run at
/// the end is left out.
pub fn coarsen(counts: &[f64], k: usize) -> Vec<f64> {
    counts
        .chunks(k.max(1))
        .filter(|c| c.len() == k.max(1))
        .map(|c| c.iter().sum())
        .collect()
}

/// splitmix64: small, seedable, good enough for synthetic data (also the
/// fleet cost model's traffic).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub(crate) fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Knuth's product method below λ = 30, else the normal approximation
    /// (rounded, never negative).
    fn poisson(&mut self, lambda: f64) -> f64 {
        if lambda <= 0.0 {
            return 0.0;
        }
        if lambda < 30.0 {
            let limit = (-lambda).exp();
            let mut k = 0.0;
            let mut p = self.uniform();
            while p > limit {
                k += 1.0;
                p *= self.uniform();
            }
            k
        } else {
            (lambda + lambda.sqrt() * self.normal()).round().max(0.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_series_and_the_mean_rate_holds() {
        let s = Synthetic {
            day_noise: 0.0,
            ..Synthetic::new(600.0, 2, 7)
        };
        let a = s.minutes();
        assert_eq!(a, s.minutes());
        assert_eq!(a.len(), 2 * 7 * 1440);
        let per_hour = a.iter().sum::<f64>() / (2.0 * 168.0);
        assert!((per_hour - 600.0).abs() < 6.0, "{per_hour}");
        assert!(a.iter().all(|c| *c >= 0.0 && c.fract() == 0.0));
    }

    #[test]
    fn the_anomaly_scales_the_rate() {
        let s = Synthetic {
            anomaly: Some((DAY + 12 * 3600, DAY + 14 * 3600, 0.0)),
            ..Synthetic::new(3000.0, 1, 1)
        };
        let m = s.minutes();
        let hour = |h: usize| m[h * 60..(h + 1) * 60].iter().sum::<f64>();
        assert_eq!(hour(24 + 12) + hour(24 + 13), 0.0);
        assert!(hour(24 + 14) > 1000.0);
        assert_eq!(coarsen(&[1.0, 2.0, 3.0, 4.0, 5.0], 2), vec![3.0, 7.0]);
    }
}
