//! When the alert object judges and on which data, shared by the worker's
//! `SiteAlerts` and `bpm-edge backtest` so both evaluate at the same
//! instants on the same buckets.
//!
//! Invariants: only complete buckets are judged (a minute is complete
//! [`COMPLETE_AFTER_SECS`] after its end); each instant is evaluated at most
//! once and in time order; an end of a 5-minute bucket gets a full
//! evaluation (regular and fast windows), any later complete minute a
//! fast-only one; regular windows are judged on 5-minute buckets, fast
//! windows on minute buckets.

use crate::alert::alert_book::SeriesSet;
use crate::alert::detector::CountSeries;
use crate::time::BUCKET_SECS;
use crate::time::MINUTE;
use std::collections::BTreeMap;

/// A bucket is judged once it ended this long ago: an isolate sends its
/// counts at most `flush_queue::MAX_WINDOW_MS` (20 s) after they happened,
/// with `SEND_BUDGET_MS` (8 s) for retries.
pub const COMPLETE_AFTER_SECS: i64 = 45;
/// Each tick re-reads this much recent history from the counter shards, so
/// counts that arrive late still reach the detector.
pub const REFRESH_SECS: i64 = 2 * 3600;
/// Minute counts kept in memory for the fast path: more than its longest
/// window.
pub const FAST_MINUTES_SECS: i64 = 20 * MINUTE;

/// End of the last 5-minute bucket complete at `now`.
pub fn last_complete_bucket(now: i64) -> i64 {
    (now - COMPLETE_AFTER_SECS).div_euclid(BUCKET_SECS) * BUCKET_SECS
}

/// End of the last minute complete at `now`.
pub fn last_complete_minute(now: i64) -> i64 {
    (now - COMPLETE_AFTER_SECS).div_euclid(MINUTE) * MINUTE
}

/// The instants a tick at `now` evaluates, in order, after `last_at` (the
/// last instant evaluated): the end of the last complete 5-minute bucket if
/// new (a full evaluation), then the last complete minute if later still (a
/// fast-only one).
pub fn evaluation_instants(last_at: Option<i64>, now: i64) -> Vec<i64> {
    let bucket = last_complete_bucket(now);
    let minute = last_complete_minute(now);
    let mut out = Vec::with_capacity(2);
    if last_at.is_none_or(|l| bucket > l) {
        out.push(bucket);
    }
    if minute > bucket && last_at.is_none_or(|l| minute > l) {
        out.push(minute);
    }
    out
}

/// The minute range `[from, to)` a tick re-reads from the counter shards:
/// from [`REFRESH_SECS`] before what was refreshed last (everything still
/// kept at minute resolution, less a day, on the first tick), up to the
/// last complete minute `minute`. `from` is a 5-minute bucket start.
pub fn refresh_range(
    refreshed_to: Option<i64>,
    minute: i64,
    minute_retention_days: u32,
) -> (i64, i64) {
    let bucket = minute.div_euclid(BUCKET_SECS) * BUCKET_SECS;
    let oldest = bucket - i64::from(minute_retention_days) * 86_400 + 86_400;
    let from = match refreshed_to {
        Some(r) => r.min(bucket) - REFRESH_SECS,
        None => oldest,
    }
    .max(oldest)
    .div_euclid(BUCKET_SECS)
        * BUCKET_SECS;
    (from, minute)
}

/// Minute rows read from the shards, bucketed as the detector needs them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bucketed {
    /// Complete 5-minute buckets per metric: `t → n`.
    pub buckets: BTreeMap<String, BTreeMap<i64, i64>>,
    /// The complete minutes of the last [`FAST_MINUTES_SECS`]: `t → n`.
    pub minutes: BTreeMap<String, BTreeMap<i64, i64>>,
}

/// Buckets minute rows `(metric, minute, n)` of `metrics` into the complete
/// 5-minute buckets before `minute` (the last complete minute) and the
/// complete minutes of the last [`FAST_MINUTES_SECS`] before it. Rows of
/// other metrics or of incomplete minutes are left out.
pub fn bucket_rows<'a>(
    rows: impl IntoIterator<Item = (&'a str, i64, i64)>,
    metrics: &[String],
    minute: i64,
) -> Bucketed {
    let complete_bucket = minute.div_euclid(BUCKET_SECS) * BUCKET_SECS;
    let mut out = Bucketed {
        buckets: metrics
            .iter()
            .map(|m| (m.clone(), BTreeMap::new()))
            .collect(),
        minutes: metrics
            .iter()
            .map(|m| (m.clone(), BTreeMap::new()))
            .collect(),
    };
    for (metric, t, n) in rows {
        if t >= minute {
            continue;
        }
        if t < complete_bucket {
            if let Some(m) = out.buckets.get_mut(metric) {
                let b = t.div_euclid(BUCKET_SECS) * BUCKET_SECS;
                let slot = m.entry(b).or_insert(0);
                *slot = slot.saturating_add(n);
            }
        }
        if t >= minute - FAST_MINUTES_SECS {
            if let Some(m) = out.minutes.get_mut(metric) {
                let slot = m.entry(t.div_euclid(MINUTE) * MINUTE).or_insert(0);
                *slot = slot.saturating_add(n);
            }
        }
    }
    out
}

/// Adds the minute series of `[to − FAST_MINUTES_SECS, to)` to `set`, one
/// per metric (missing minutes are zeros).
pub fn add_minutes(set: &mut SeriesSet, minutes: &BTreeMap<String, BTreeMap<i64, i64>>, to: i64) {
    let from = to - FAST_MINUTES_SECS;
    for (metric, counts) in minutes {
        let v: Vec<f64> = (0..FAST_MINUTES_SECS / MINUTE)
            .map(|i| counts.get(&(from + i * MINUTE)).copied().unwrap_or(0) as f64)
            .collect();
        set.minutes
            .insert(metric.clone(), CountSeries::from_counts(from, MINUTE, &v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_judges_the_new_bucket_then_the_last_complete_minute() {
        // 10:07:00: the last complete minute ends 10:06 (10:06 + 45 s ≤ now),
        // the last complete bucket 10:05.
        let now = 36_000 + 7 * 60;
        assert_eq!(last_complete_minute(now), 36_000 + 6 * 60);
        assert_eq!(last_complete_bucket(now), 36_000 + 5 * 60);
        assert_eq!(
            evaluation_instants(Some(36_000), now),
            vec![36_000 + 300, 36_000 + 360]
        );
        // The bucket was judged at the previous tick: only the minute.
        assert_eq!(
            evaluation_instants(Some(36_000 + 300), now),
            vec![36_000 + 360]
        );
        // Nothing new: nothing.
        assert!(evaluation_instants(Some(36_000 + 360), now).is_empty());
        // 10:06:00: the last complete minute ends 10:05, a bucket end: one
        // full evaluation.
        assert_eq!(
            evaluation_instants(Some(36_000 + 240), 36_000 + 360),
            vec![36_000 + 300]
        );
        // 45 s is the margin: at 10:05:44 the minute to 10:05 is not complete.
        assert_eq!(last_complete_minute(36_000 + 344), 36_000 + 240);
        // A stored `last_at` from before minute ticks (a bucket end) works.
        assert_eq!(
            evaluation_instants(Some(35_700), 36_000 + 60 + 45),
            vec![36_000, 36_060]
        );
    }

    #[test]
    fn refresh_reads_two_hours_back_from_the_last_refresh_up_to_the_last_minute() {
        let minute = 100 * 86_400 + 36_000 + 120;
        assert_eq!(
            refresh_range(Some(100 * 86_400 + 36_000), minute, 8),
            (100 * 86_400 + 36_000 - REFRESH_SECS, minute)
        );
        // First tick: everything kept at minute resolution but a day.
        assert_eq!(
            refresh_range(None, minute, 8),
            (100 * 86_400 + 36_000 - 7 * 86_400, minute)
        );
        // A long pause: never before what the shards keep.
        assert_eq!(
            refresh_range(Some(0), minute, 8).0,
            100 * 86_400 + 36_000 - 7 * 86_400
        );
    }

    #[test]
    fn rows_go_to_complete_buckets_and_recent_minutes() {
        let metrics = vec!["logins".to_string()];
        let t0 = 36_000;
        let rows = vec![
            ("logins", t0 - 60, 2),
            ("logins", t0, 3),
            ("logins", t0 + 240, 4),
            ("logins", t0 + 300, 5), // in the bucket not complete yet
            ("logins", t0 + 360, 9), // not complete: left out
            ("signups", t0, 7),
        ];
        let b = bucket_rows(rows, &metrics, t0 + 360);
        let buckets = &b.buckets["logins"];
        assert_eq!(buckets.get(&(t0 - 300)), Some(&2));
        assert_eq!(buckets.get(&t0), Some(&7));
        assert_eq!(buckets.get(&(t0 + 300)), None);
        let minutes = &b.minutes["logins"];
        assert_eq!(minutes.get(&(t0 + 300)), Some(&5));
        assert_eq!(minutes.get(&(t0 + 360)), None);
        assert!(!b.buckets.contains_key("signups"));
        let mut set = SeriesSet::default();
        add_minutes(&mut set, &b.minutes, t0 + 360);
        let m = &set.minutes["logins"];
        assert_eq!(m.step(), 60);
        assert_eq!(m.end(), t0 + 360);
        assert_eq!(m.sum(t0 + 240, t0 + 360), Some(9.0));
    }
}
