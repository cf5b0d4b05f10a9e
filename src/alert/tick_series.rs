//! The series the alert object keeps between ticks, and which of them an
//! evaluation instant judges: the 5-minute buckets it mirrors in memory
//! ([`BucketCache`], merged by [`merge_buckets`] after each refresh and
//! [`add_imported`] after a backfill), the
//! [`SeriesSet`] of one instant ([`instant_series`]), and the `by` rules'
//! per-value series ([`Watches`]): when they are built anew and when only
//! re-read ([`value_refresh`]), and over which ranges the counter shards
//! are read for a build ([`BuildReads`]).
//!
//! Invariants: only complete 5-minute buckets are cached (the one in
//! progress is re-read on the next tick) and a zero count is never cached;
//! a `by` rule's values join an instant's series only at a bucket end and
//! only when they were read up to that instant (on a stale read, missing
//! minutes would look like a source that went dark), starting where the
//! metrics' series start (time before any data is unknown); the watched
//! values are rebuilt on each new UTC day, so they follow the traffic.

use crate::alert::alert_book::SeriesSet;
use crate::alert::alert_store::{series_set, SERIES_RETENTION_SECS};
use crate::alert::ticks::{add_minutes, last_complete_bucket, refresh_range};
use crate::alert::value_series::{top_values, ValueSeries};
use crate::config::rules::{AlertRule, Split};
use crate::config::Config;
use crate::count::tally::Row;
use crate::time::{BUCKET_SECS, DAY, HOUR};
use std::collections::BTreeMap;

/// The stored 5-minute series mirrored in memory: `(metric, t) → n`.
pub type BucketCache = BTreeMap<(String, i64), i64>;
/// The last complete minutes per metric: `t → n`.
pub type MinuteCounts = BTreeMap<String, BTreeMap<i64, i64>>;

/// The start of the 5-minute bucket holding `t`.
pub fn bucket_start(t: i64) -> i64 {
    t.div_euclid(BUCKET_SECS) * BUCKET_SECS
}

/// End of the complete 5-minute buckets when `minute` is the last complete
/// minute: what a refresh stores up to.
pub fn complete_buckets_to(minute: i64) -> i64 {
    bucket_start(minute)
}

/// Whether the series must be refreshed before Mission Control is built
/// at `now`: no refresh reached the last complete bucket (a deployment
/// whose cron has not run yet, or `wrangler dev` without scheduled ticks).
pub fn refresh_due(refreshed_to: Option<i64>, now: i64) -> bool {
    refreshed_to.is_none_or(|r| r < last_complete_bucket(now))
}

/// Replaces `metric`'s cached buckets in `[from, to)` with the non-zero
/// `counts` there (a refresh's re-read buckets).
pub fn merge_buckets(
    cache: &mut BucketCache,
    metric: &str,
    counts: &BTreeMap<i64, i64>,
    from: i64,
    to: i64,
) {
    let stale: Vec<(String, i64)> = cache
        .range((metric.to_string(), from)..(metric.to_string(), to))
        .map(|(k, _)| k.clone())
        .collect();
    for k in stale {
        cache.remove(&k);
    }
    for (t, n) in counts.range(from..to).filter(|(_, n)| **n > 0) {
        cache.insert((metric.to_string(), *t), *n);
    }
}

/// Adds a backfill's imported counts `(metric, bucket, n)` (what
/// [`crate::alert::alert_store::AlertStore::import`] added) to the cache,
/// as the import added them to the stored series.
pub fn add_imported(cache: &mut BucketCache, added: &[(String, i64, i64)]) {
    for (metric, t, n) in added {
        let slot = cache.entry((metric.clone(), *t)).or_insert(0);
        *slot = slot.saturating_add(*n);
    }
}

/// What instant `t` judges: the cached 5-minute series of `metrics` up to
/// its bucket (as far back as they are kept), the minutes of the fast path
/// up to `t` and, at a bucket end, the `by` rules' value series if
/// `watches` were read up to `t`.
pub fn instant_series(
    cache: &BucketCache,
    minutes: &MinuteCounts,
    watches: Option<&Watches>,
    metrics: &[String],
    t: i64,
) -> SeriesSet {
    let bucket = bucket_start(t);
    let mut series = bucket_series(cache, metrics, bucket);
    add_minutes(&mut series, minutes, t);
    add_values(&mut series, watches, t);
    series
}

/// Sets the `by` rules' value series `set` judges at instant `t`: at a
/// bucket end, those of `watches` if they were read up to `t`, from where
/// the metrics' series start; none at any other instant.
pub fn add_values(set: &mut SeriesSet, watches: Option<&Watches>, t: i64) {
    set.by.clear();
    let bucket = bucket_start(t);
    if t != bucket {
        return;
    }
    if let Some(w) = watches.filter(|w| w.refreshed_to >= t) {
        let start = set
            .series
            .values()
            .map(|s| s.start())
            .min()
            .unwrap_or(bucket);
        for (rule, values) in &w.series {
            set.by.insert(rule.clone(), values.series(start, bucket));
        }
    }
}

/// The 5-minute series every instant of the bucket that ends at `bucket`
/// judges (as far back as they are kept), without the minutes
/// ([`add_minutes`] adds those of an instant) or the `by` rules' values.
pub fn bucket_series(cache: &BucketCache, metrics: &[String], bucket: i64) -> SeriesSet {
    series_set(cache, metrics, bucket - SERIES_RETENTION_SECS, bucket)
}

/// The `by` rules and their splits, in config order.
pub fn split_rules(config: &Config) -> Vec<(&AlertRule, Split)> {
    config
        .alerts
        .iter()
        .filter_map(|r| r.by.map(|split| (r, split)))
        .collect()
}

/// The per-value series of every `by` rule, and how far they are read.
#[derive(Debug, Clone, PartialEq)]
pub struct Watches {
    /// The UTC day number (Unix day) they were built on.
    pub built_day: i64,
    /// The last complete minute read.
    pub refreshed_to: i64,
    /// Rule name → its values' series.
    pub series: BTreeMap<String, ValueSeries>,
}

/// What a tick does to the `by` rules' series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueRefresh {
    /// Build them anew on UTC day `day` (none yet, or built on another
    /// day): read every rule's reach of hour rows and its recent minutes
    /// ([`BuildReads`]).
    Build { day: i64 },
    /// Re-read the minutes of `[from, minute)` of every rule
    /// ([`Watches::reread`]).
    Reread { from: i64 },
}

/// What the tick whose last complete minute is `minute` does to `watches`.
pub fn value_refresh(
    watches: Option<&Watches>,
    minute: i64,
    minute_retention_days: u32,
) -> ValueRefresh {
    let day = minute.div_euclid(DAY);
    match watches {
        Some(w) if w.built_day == day => {
            let (from, _) = refresh_range(Some(w.refreshed_to), minute, minute_retention_days);
            ValueRefresh::Reread { from }
        }
        _ => ValueRefresh::Build { day },
    }
}

impl Watches {
    /// Replaces the buckets of `[from, minute)` of each rule in `read`
    /// with its re-read minute rows, forgets buckets past retention, and
    /// marks them read up to `minute`. Rules not watched are ignored.
    pub fn reread(&mut self, read: Vec<(String, Vec<Row>)>, from: i64, minute: i64) {
        for (rule, rows) in read {
            if let Some(vs) = self.series.get_mut(&rule) {
                vs.replace_minutes(&rows, from, minute);
                vs.prune(minute - SERIES_RETENTION_SECS);
            }
        }
        self.refreshed_to = minute;
    }
}

/// The shard reads that build one `by` rule's value series at the last
/// complete minute `minute`: hour rows over its baseline's weeks, its
/// longest window and a day (within retention) before the exact part, and
/// minute rows for the exact part, from the start of the hour before the
/// current one (one to two hours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildReads {
    /// `[from, to)` of the hour rows.
    pub hours: (i64, i64),
    /// `[from, to)` of the minute rows.
    pub minutes: (i64, i64),
}

impl BuildReads {
    pub fn new(rule: &AlertRule, minute: i64) -> Self {
        let exact_from = minute.div_euclid(HOUR) * HOUR - HOUR;
        let longest = rule.windows.iter().copied().max().unwrap_or(HOUR);
        let reach = (i64::from(rule.weeks) * 7 * DAY + longest + DAY).min(SERIES_RETENTION_SECS);
        BuildReads {
            hours: (exact_from - reach, exact_from),
            minutes: (exact_from, minute),
        }
    }

    /// The value series of `split` from the rows read: its top values in
    /// `hours` plus those with an `open` alert, spread from the hours,
    /// exact from the minutes.
    pub fn value_series(
        &self,
        split: Split,
        hours: &[Row],
        minutes: &[Row],
        open: &[String],
    ) -> ValueSeries {
        let dim = split.dimension.as_str();
        let values = top_values(hours, dim, split.top as usize, open);
        let mut vs = ValueSeries::new(dim, &values);
        vs.add_hours(hours);
        vs.replace_minutes(minutes, self.minutes.0, self.minutes.1);
        vs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ReferralDimension;
    use crate::time::MINUTE;

    /// 2026-01-05T00:00:00Z, a bucket end and a day start.
    const T0: i64 = 1_767_571_200;

    fn config() -> Config {
        crate::config::parse_toml(include_str!("../../bpm.toml"), "bpm.toml").unwrap()
    }

    fn source_split(top: u32) -> Split {
        Split {
            dimension: ReferralDimension::Source,
            top,
        }
    }

    fn row(t: i64, value: &str, n: u64) -> Row {
        Row(t, "m".into(), "source".into(), value.into(), n)
    }

    fn watches(refreshed_to: i64) -> Watches {
        let mut vs = ValueSeries::new("source", &["google".to_string()]);
        vs.replace_minutes(&[row(T0 - 600, "google", 4)], T0 - 3600, T0);
        Watches {
            built_day: T0.div_euclid(DAY),
            refreshed_to,
            series: BTreeMap::from([("by_source".to_string(), vs)]),
        }
    }

    fn cache() -> BucketCache {
        (1..=24)
            .map(|i| (("m".to_string(), T0 - i * BUCKET_SECS), 10))
            .collect()
    }

    #[test]
    fn a_refresh_merges_complete_buckets_and_never_caches_zeros() {
        let mut c: BucketCache = BTreeMap::from([
            (("m".to_string(), 0), 1),
            (("m".to_string(), 300), 2),
            (("m".to_string(), 600), 3),
            (("x".to_string(), 300), 9),
        ]);
        let counts = BTreeMap::from([(300, 0), (600, 7), (900, 8)]);
        merge_buckets(&mut c, "m", &counts, 300, 900);
        let expected: BucketCache = BTreeMap::from([
            (("m".to_string(), 0), 1),
            (("m".to_string(), 600), 7),
            (("x".to_string(), 300), 9),
        ]);
        assert_eq!(c, expected);
        assert_eq!(complete_buckets_to(T0 + 4 * MINUTE), T0);
        assert_eq!(complete_buckets_to(T0 + 5 * MINUTE), T0 + BUCKET_SECS);
    }

    #[test]
    fn mission_control_refreshes_until_a_refresh_reached_the_last_bucket() {
        let now = T0 + 2 * MINUTE; // the last complete bucket ends at T0
        assert!(refresh_due(None, now));
        assert!(refresh_due(Some(T0 - BUCKET_SECS), now));
        assert!(!refresh_due(Some(T0), now));
        assert!(refresh_due(Some(T0), T0 + BUCKET_SECS + MINUTE));
    }

    #[test]
    fn a_backfill_adds_its_buckets_to_the_cache() {
        let mut c: BucketCache = BTreeMap::from([(("m".to_string(), 300), 2)]);
        add_imported(&mut c, &[("m".into(), 300, 5), ("m".into(), 600, 1)]);
        let expected: BucketCache =
            BTreeMap::from([(("m".to_string(), 300), 7), (("m".to_string(), 600), 1)]);
        assert_eq!(c, expected);
    }

    #[test]
    fn a_bucket_end_read_up_to_it_judges_the_by_rules_from_the_metrics_start() {
        let metrics = ["m".to_string()];
        let minutes: MinuteCounts =
            BTreeMap::from([("m".to_string(), BTreeMap::from([(T0 - MINUTE, 2)]))]);
        let set = instant_series(&cache(), &minutes, Some(&watches(T0)), &metrics, T0);
        let m = &set.series["m"];
        assert_eq!((m.start(), m.end()), (T0 - 24 * BUCKET_SECS, T0));
        let google = &set.by["by_source"]["google"];
        assert_eq!((google.start(), google.end()), (m.start(), T0));
        assert_eq!(set.minutes["m"].sum(T0 - MINUTE, T0), Some(2.0));
    }

    #[test]
    fn a_minute_or_a_stale_read_judges_no_by_rule() {
        let metrics = ["m".to_string()];
        let minute = T0 + MINUTE;
        let w = watches(minute);
        let set = instant_series(&cache(), &BTreeMap::new(), Some(&w), &metrics, minute);
        assert!(set.by.is_empty());
        assert_eq!(set.series["m"].end(), T0);
        let stale = watches(T0 - MINUTE);
        let set = instant_series(&cache(), &BTreeMap::new(), Some(&stale), &metrics, T0);
        assert!(set.by.is_empty());
        let none = instant_series(&cache(), &BTreeMap::new(), None, &metrics, T0);
        assert!(none.by.is_empty());
    }

    #[test]
    fn the_values_are_built_daily_and_reread_in_between() {
        let w = watches(T0);
        let minute = T0 + 10 * MINUTE;
        assert_eq!(
            value_refresh(None, minute, 8),
            ValueRefresh::Build {
                day: T0.div_euclid(DAY)
            }
        );
        assert_eq!(
            value_refresh(Some(&w), minute, 8),
            ValueRefresh::Reread {
                from: refresh_range(Some(T0), minute, 8).0
            }
        );
        let tomorrow = T0 + DAY + MINUTE;
        assert_eq!(
            value_refresh(Some(&w), tomorrow, 8),
            ValueRefresh::Build {
                day: T0.div_euclid(DAY) + 1
            }
        );
    }

    #[test]
    fn a_reread_replaces_minutes_and_moves_the_read_mark() {
        let mut w = watches(T0);
        let rows = vec![row(T0 - 600, "google", 9), row(T0 - 300, "google", 1)];
        w.reread(
            vec![("by_source".into(), rows), ("unknown".into(), vec![])],
            T0 - 900,
            T0 + MINUTE,
        );
        assert_eq!(w.refreshed_to, T0 + MINUTE);
        assert_eq!(w.series.len(), 1);
        let s = &w.series["by_source"].series(T0 - 900, T0)["google"];
        let bucket = |t: i64| s.sum(t, t + BUCKET_SECS);
        assert_eq!(
            [bucket(T0 - 900), bucket(T0 - 600), bucket(T0 - 300)],
            [Some(0.0), Some(9.0), Some(1.0)]
        );
    }

    #[test]
    fn a_build_reads_the_baseline_in_hours_and_the_last_hour_or_two_in_minutes() {
        let cfg = config();
        let (rule, split) = split_rules(&cfg)[0];
        let minute = T0 + 30 * MINUTE;
        let reads = BuildReads::new(rule, minute);
        let exact_from = T0 - HOUR;
        assert_eq!(reads.minutes, (exact_from, minute));
        let longest = rule.windows.iter().copied().max().unwrap();
        let reach = i64::from(rule.weeks) * 7 * DAY + longest + DAY;
        assert_eq!(
            reads.hours,
            (exact_from - reach.min(SERIES_RETENTION_SECS), exact_from)
        );
        assert_eq!(split.dimension, ReferralDimension::Source);
        // A long baseline is capped at what the series keep.
        let long = AlertRule {
            weeks: 52,
            ..rule.clone()
        };
        let capped = BuildReads::new(&long, minute);
        assert_eq!(capped.hours.0, exact_from - SERIES_RETENTION_SECS);
    }

    #[test]
    fn a_build_watches_the_top_values_and_the_open_ones() {
        let reads = BuildReads {
            hours: (T0 - 2 * HOUR, T0 - HOUR),
            minutes: (T0 - HOUR, T0),
        };
        let hours = vec![
            row(T0 - 2 * HOUR, "google", 1200),
            row(T0 - 2 * HOUR, "bing", 600),
            row(T0 - 2 * HOUR, "news", 120),
        ];
        let minutes = vec![row(T0 - 5 * MINUTE, "google", 3)];
        let vs = reads.value_series(source_split(1), &hours, &minutes, &["news".to_string()]);
        let values: Vec<&String> = vs.values().collect();
        assert_eq!(values, ["google", "news"]);
        let google = &vs.series(T0 - 2 * HOUR, T0)["google"];
        // 1200 over the hour's twelve buckets, then the exact minutes.
        let bucket = |t: i64| google.sum(t, t + BUCKET_SECS);
        assert_eq!(bucket(T0 - 2 * HOUR), Some(100.0));
        assert_eq!(bucket(T0 - HOUR), Some(0.0));
        assert_eq!(bucket(T0 - BUCKET_SECS), Some(3.0));
    }
}
