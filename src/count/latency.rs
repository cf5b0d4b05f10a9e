//! Log-scale latency histogram: which bucket a latency falls in, and how
//! percentiles are read back from bucket counts.
//!
//! Bucket 0 holds everything under 1 ms; bucket `i ≥ 1` holds
//! `[2^((i-1)/4), 2^(i/4))` ms, so each bucket is ~19% wide and a percentile
//! read from the histogram (the bucket's geometric middle) is within ~9.5% of
//! the true value. The last bucket, [`MAX_BUCKET`], also takes everything
//! slower (over ~19 minutes). Buckets are stored as the dimension `lat` with
//! the bucket number as value.

use crate::decimal::round_to;

/// Highest bucket number.
pub const MAX_BUCKET: u8 = 80;

/// The bucket of a latency in milliseconds. Negative, NaN and infinite
/// inputs are clamped rather than trusted.
pub fn bucket(ms: f64) -> u8 {
    if ms.is_nan() || ms < 1.0 {
        return 0;
    }
    let i = (ms.log2() * 4.0).floor() + 1.0;
    if i >= f64::from(MAX_BUCKET) {
        MAX_BUCKET
    } else {
        // In 1..MAX_BUCKET here, so the cast is exact.
        i as u8
    }
}

/// A representative latency for a bucket: the geometric middle.
pub fn representative_ms(bucket: u8) -> f64 {
    if bucket == 0 {
        return 0.5;
    }
    let lo = f64::from(bucket - 1) / 4.0;
    2f64.powf(lo + 0.125)
}

/// Reads the `q` quantile (0..=1) from `(bucket, count)` pairs.
/// `None` when the histogram is empty.
pub fn quantile(counts: &[(u8, u64)], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().map(|(_, n)| *n).sum();
    if total == 0 {
        return None;
    }
    let mut sorted: Vec<(u8, u64)> = counts.to_vec();
    sorted.sort_unstable_by_key(|(b, _)| *b);
    // Rank of the quantile, 1-based: the smallest r with r ≥ q·total.
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut seen = 0u64;
    for (b, n) in &sorted {
        seen += n;
        if seen >= rank {
            return Some(round_to(representative_ms(*b), 2));
        }
    }
    sorted
        .last()
        .map(|(b, _)| round_to(representative_ms(*b), 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_edges() {
        assert_eq!(bucket(-5.0), 0);
        assert_eq!(bucket(f64::NAN), 0);
        assert_eq!(bucket(0.99), 0);
        assert_eq!(bucket(1.0), 1);
        assert_eq!(bucket(1.18), 1);
        assert_eq!(bucket(1.19), 2);
        assert_eq!(bucket(2.0), 5);
        assert_eq!(bucket(1000.0), 40);
        assert_eq!(bucket(f64::INFINITY), MAX_BUCKET);
        assert_eq!(bucket(1e12), MAX_BUCKET);
    }

    #[test]
    fn representative_is_inside_its_bucket() {
        for b in 1..MAX_BUCKET {
            let r = representative_ms(b);
            assert_eq!(bucket(r), b, "bucket {b} representative {r}");
        }
    }

    #[test]
    fn quantiles_are_within_ten_percent() {
        // 100 requests: 1..=100 ms.
        let mut hist = std::collections::BTreeMap::new();
        for ms in 1..=100 {
            *hist.entry(bucket(f64::from(ms))).or_insert(0u64) += 1;
        }
        let counts: Vec<(u8, u64)> = hist.into_iter().collect();
        for (q, truth) in [(0.5, 50.0), (0.95, 95.0), (0.99, 99.0)] {
            let got = quantile(&counts, q).unwrap();
            assert!((got - truth).abs() / truth < 0.1, "q{q}: {got} vs {truth}");
        }
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[(3, 0)], 0.5), None);
    }
}
