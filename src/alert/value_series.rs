//! The series a `by` rule judges: one 5-minute count series per watched
//! value of a referral dimension (`source = google`), built from the
//! counter shards' hour and minute rows of that dimension.
//!
//! Which values: the `top` largest over the baseline's weeks, never the
//! overflow value `other` (a catch-all, not a value), never one below
//! [`MIN_SHARE`] of the dimension's total (it was never significant), and
//! always those whose alert is still open, so a source that went dark is
//! judged until its alert resolves even after it falls out of the top.
//!
//! Invariants: buckets before the exact part come from hour rows spread
//! evenly over the hour's twelve 5-minute buckets (each hour's total is
//! exact, its shape inside the hour is flat, for the current windows and
//! their baselines alike); buckets from `exact_from` on are sums of minute
//! rows, and [`ValueSeries::replace_minutes`] replaces (never adds to) the
//! buckets it covers, so re-reading a range is idempotent.

use crate::alert::detector::CountSeries;
use crate::count::tally::Row;
use crate::time::BUCKET_SECS;
use std::collections::BTreeMap;

/// The overflow value of a dimension whose distinct values ran over the
/// per-hour cap: not a value of its own, never watched.
pub const OVERFLOW: &str = "other";
/// A value below this share of its dimension's total is never watched.
pub const MIN_SHARE: f64 = 0.01;
const HOUR: i64 = 3600;

/// The `top` largest values of `dim` in `rows` (ties by name), at least
/// [`MIN_SHARE`] of the total each, plus every value of `keep` (open
/// alerts), each once; sorted by name.
pub fn top_values(rows: &[Row], dim: &str, top: usize, keep: &[String]) -> Vec<String> {
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.dim() == dim) {
        let slot = totals.entry(r.value()).or_insert(0);
        *slot = slot.saturating_add(r.n());
    }
    let total: u64 = totals.values().fold(0u64, |a, n| a.saturating_add(*n));
    let mut ranked: Vec<(&str, u64)> = totals
        .into_iter()
        .filter(|(v, n)| !v.is_empty() && *v != OVERFLOW && (*n as f64) >= MIN_SHARE * total as f64)
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut out: Vec<String> = ranked
        .into_iter()
        .take(top)
        .map(|(v, _)| v.to_string())
        .chain(keep.iter().cloned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The 5-minute counts of each watched value of one dimension.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValueSeries {
    dim: String,
    /// value → bucket start → count.
    buckets: BTreeMap<String, BTreeMap<i64, f64>>,
}

impl ValueSeries {
    /// Empty series for `values` of `dim`.
    pub fn new(dim: &str, values: &[String]) -> Self {
        ValueSeries {
            dim: dim.to_string(),
            buckets: values
                .iter()
                .map(|v| (v.clone(), BTreeMap::new()))
                .collect(),
        }
    }

    pub fn values(&self) -> impl Iterator<Item = &String> {
        self.buckets.keys()
    }

    /// Spreads hour rows of the watched values over their hour's buckets.
    /// Rows of other dimensions or values are ignored.
    pub fn add_hours(&mut self, rows: &[Row]) {
        let per_hour = (HOUR / BUCKET_SECS) as f64;
        for r in rows.iter().filter(|r| r.dim() == self.dim) {
            let Some(series) = self.buckets.get_mut(r.value()) else {
                continue;
            };
            let hour = r.t().div_euclid(HOUR) * HOUR;
            let share = r.n() as f64 / per_hour;
            for b in (hour..hour + HOUR).step_by(BUCKET_SECS as usize) {
                *series.entry(b).or_insert(0.0) += share;
            }
        }
    }

    /// Replaces the buckets of `[from, to)` (`from` rounded down to a
    /// bucket start, `to` exclusive and rounded down too: a bucket still in
    /// progress is left out) by the sums of the minute rows in that range.
    /// The rows must cover the whole range.
    pub fn replace_minutes(&mut self, rows: &[Row], from: i64, to: i64) {
        let from = from.div_euclid(BUCKET_SECS) * BUCKET_SECS;
        let to = to.div_euclid(BUCKET_SECS) * BUCKET_SECS;
        if to <= from {
            return;
        }
        for series in self.buckets.values_mut() {
            let stale: Vec<i64> = series.range(from..to).map(|(t, _)| *t).collect();
            for t in stale {
                series.remove(&t);
            }
        }
        for r in rows
            .iter()
            .filter(|r| r.dim() == self.dim && (from..to).contains(&r.t()))
        {
            if let Some(series) = self.buckets.get_mut(r.value()) {
                let b = r.t().div_euclid(BUCKET_SECS) * BUCKET_SECS;
                *series.entry(b).or_insert(0.0) += r.n() as f64;
            }
        }
    }

    /// Forgets buckets before `t`.
    pub fn prune(&mut self, t: i64) {
        for series in self.buckets.values_mut() {
            *series = series.split_off(&t);
        }
    }

    /// Each value's contiguous series over `[from, to)` (bucket starts;
    /// missing buckets are 0).
    pub fn series(&self, from: i64, to: i64) -> BTreeMap<String, CountSeries> {
        let from = from.div_euclid(BUCKET_SECS) * BUCKET_SECS;
        self.buckets
            .iter()
            .map(|(value, counts)| {
                let points = counts.range(from..to).map(|(t, n)| (*t, *n));
                (
                    value.clone(),
                    CountSeries::from_sparse(from, to, BUCKET_SECS, points),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t: i64, value: &str, n: u64) -> Row {
        Row(t, "m".into(), "source".into(), value.into(), n)
    }

    #[test]
    fn top_values_skip_overflow_and_insignificant_and_keep_open_ones() {
        let rows = vec![
            row(0, "google", 500),
            row(0, "bing", 200),
            row(3600, "google", 500),
            row(0, "other", 5000),
            row(0, "tiny", 10),
            row(0, "news", 300),
            Row(0, "m".into(), "landing".into(), "/".into(), 9999),
        ];
        assert_eq!(
            top_values(&rows, "source", 2, &[]),
            vec!["google".to_string(), "news".to_string()]
        );
        // 10 of 6510 is below 1%: never watched on its own, but an open
        // alert keeps it.
        assert_eq!(top_values(&rows, "source", 9, &[]).len(), 3);
        assert_eq!(
            top_values(&rows, "source", 1, &["bing".to_string()]),
            vec!["bing".to_string(), "google".to_string()]
        );
    }

    #[test]
    fn hours_are_spread_and_minutes_replace_exactly() {
        let values = vec!["google".to_string()];
        let mut s = ValueSeries::new("source", &values);
        s.add_hours(&[row(0, "google", 120), row(0, "bing", 60)]);
        let spread = s.series(0, HOUR);
        let g = &spread["google"];
        assert_eq!(g.sum(0, HOUR), Some(120.0));
        assert_eq!(g.sum(0, 300), Some(10.0));
        // Minute rows replace the buckets they cover, whatever was there.
        let minutes = [row(60, "google", 7), row(360, "google", 1)];
        s.replace_minutes(&minutes, 0, 600);
        s.replace_minutes(&minutes, 0, 600);
        let exact = s.series(0, HOUR);
        assert_eq!(exact["google"].sum(0, 300), Some(7.0));
        assert_eq!(exact["google"].sum(300, 600), Some(1.0));
        assert_eq!(exact["google"].sum(600, HOUR), Some(100.0));
        // A bucket in progress is left alone.
        s.replace_minutes(&[row(660, "google", 50)], 600, 700);
        assert_eq!(s.series(0, HOUR)["google"].sum(600, 900), Some(10.0));
        s.prune(HOUR);
        assert_eq!(s.series(0, HOUR)["google"].sum(0, HOUR), Some(0.0));
    }
}
