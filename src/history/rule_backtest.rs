//! Backtesting the configured rules: runs the alert object's own tick over
//! per-minute metric counts (a replayed access log), minute by minute, and
//! reports every state change and notification decision the rules would
//! have made, with a summary of their episodes.
//!
//! Each simulated tick is the worker's: the instants
//! [`evaluation_instants`] gives, the series an instant judges (the
//! 5-minute buckets before it, [`bucket_series`], built once per bucket,
//! and its last minutes, [`add_minutes`], as `instant_series` does),
//! [`AlertBook::evaluate`] and [`AlertBook::notify`] with the given
//! silences, in force from their creation. The `by` rules' value series are
//! built and re-read as the object's tick does ([`refresh_values`]), from
//! the replay's per-value rows ([`SplitRows`]). Only the past is visible
//! at each instant, as live.
//!
//! Unlike live, a replay keeps every value of a dimension (the counter
//! shards fold those beyond `max_dimension_values` an hour into `other`,
//! which a `by` rule never watches).

use crate::alert::alert_book::SeriesSet;
use crate::alert::alert_book::{counted_metrics, AlertBook, HistoryEntry};
use crate::alert::lifecycle::State;
use crate::alert::silence::Silence;
use crate::alert::tick_series::{
    add_values, bucket_series, bucket_start, split_rules, value_refresh, BucketCache, BuildReads,
    MinuteCounts, ValueRefresh, Watches,
};
use crate::alert::ticks::{add_minutes, evaluation_instants, COMPLETE_AFTER_SECS};
use crate::config::rules::{AlertRule, Split};
use crate::config::Config;
use crate::count::tally::Row;
use crate::history::replay::Replay;
use crate::time::{Resolution, MINUTE};
use serde::Serialize;
use std::collections::BTreeMap;

/// What the rules did over the counts.
#[derive(Debug, Clone, Default)]
pub struct RuleBacktest {
    /// State changes and notification decisions, in time order.
    pub history: Vec<HistoryEntry>,
    /// Rules left out: those other than the one asked for.
    pub not_judged: Vec<String>,
    /// The minutes judged, `[from, to)`.
    pub from: i64,
    pub to: i64,
}

/// One firing episode of a rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Episode {
    pub rule: String,
    /// A `by` rule's value (`google`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub metric: String,
    /// When it started firing.
    pub fired: i64,
    /// When it stopped firing (`None`: still firing at the end).
    pub resolved: Option<i64>,
    /// The lowest observed/expected ratio of the windows that explained
    /// its changes while it was pending or firing.
    pub lowest_ratio: Option<f64>,
}

impl RuleBacktest {
    /// Every rule's firing episodes, in time order.
    pub fn episodes(&self) -> Vec<Episode> {
        episodes(&self.history)
    }
}

/// The firing episodes in `history` (state changes in time order), in
/// time order.
pub fn episodes(history: &[HistoryEntry]) -> Vec<Episode> {
    // Keyed by rule instance: (rule, value).
    let mut open: BTreeMap<(String, Option<String>), Episode> = BTreeMap::new();
    let mut pending_low: BTreeMap<(String, Option<String>), f64> = BTreeMap::new();
    let mut done = Vec::new();
    for h in history.iter().filter(|h| h.to.is_some()) {
        let ratio = h.window.as_ref().and_then(|w| w.ratio);
        let key = (h.rule.clone(), h.value.clone());
        let lower = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match h.to {
            Some(State::Pending) => {
                if let Some(r) = ratio {
                    let slot = pending_low.entry(key).or_insert(r);
                    *slot = slot.min(r);
                }
            }
            Some(State::Firing) => {
                let low = lower(pending_low.remove(&key), ratio);
                match open.get_mut(&key) {
                    Some(ep) => ep.lowest_ratio = lower(ep.lowest_ratio, low),
                    None => {
                        open.insert(
                            key,
                            Episode {
                                rule: h.rule.clone(),
                                value: h.value.clone(),
                                metric: h.metric.clone(),
                                fired: h.at,
                                resolved: None,
                                lowest_ratio: low,
                            },
                        );
                    }
                }
            }
            _ => {
                pending_low.remove(&key);
                if let Some(mut ep) = open.remove(&key) {
                    ep.resolved = Some(h.at);
                    done.push(ep);
                }
            }
        }
    }
    done.extend(open.into_values());
    done.sort_by(|a, b| (a.fired, &a.rule, &a.value).cmp(&(b.fired, &b.rule, &b.value)));
    done
}

/// When the simulated ticks run: every `every` seconds (a minute, as the
/// cron; or a 5-minute bucket when there are no minute counts, as over the
/// alert object's stored series) from `from`, until `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticks {
    pub from: i64,
    pub to: i64,
    pub every: i64,
}

/// Where a backtest reads the `by` rules' per-value rows: `metric`'s rows
/// of dimension `dim` in `[from, to)` summed to `step` (a replayed log, as
/// the counter shards answer the alert object).
pub trait SplitRows {
    fn rows(&self, metric: &str, dim: &str, step: Resolution, range: (i64, i64)) -> Vec<Row>;
}

impl SplitRows for Replay {
    fn rows(&self, metric: &str, dim: &str, step: Resolution, range: (i64, i64)) -> Vec<Row> {
        Replay::rows(self, metric, dim, step, range)
    }
}

/// Builds or re-reads the `by` rules' value series at the last complete
/// minute `minute`, as the alert object's tick does ([`value_refresh`],
/// [`BuildReads`]): from `rows`, keeping the values `book` has open.
fn refresh_values(
    watches: &mut Option<Watches>,
    rules: &[(&AlertRule, Split)],
    rows: &dyn SplitRows,
    book: &AlertBook,
    minute: i64,
    minute_retention_days: u32,
) {
    let read = |rule: &AlertRule, split: Split, step, range| {
        rows.rows(&rule.metric, split.dimension.as_str(), step, range)
    };
    match value_refresh(watches.as_ref(), minute, minute_retention_days) {
        ValueRefresh::Reread { from } => {
            let fresh = rules
                .iter()
                .map(|&(r, s)| {
                    (
                        r.name.clone(),
                        read(r, s, Resolution::Minute, (from, minute)),
                    )
                })
                .collect();
            if let Some(w) = watches.as_mut() {
                w.reread(fresh, from, minute);
            }
        }
        ValueRefresh::Build { day } => {
            let series = rules
                .iter()
                .map(|&(r, s)| {
                    let reads = BuildReads::new(r, minute);
                    let hours = read(r, s, Resolution::Hour, reads.hours);
                    let minutes = read(r, s, Resolution::Minute, reads.minutes);
                    let open = book.open_values(&r.name);
                    (
                        r.name.clone(),
                        reads.value_series(s, &hours, &minutes, &open),
                    )
                })
                .collect();
            *watches = Some(Watches {
                built_day: day,
                refreshed_to: minute,
                series,
            });
        }
    }
}

/// Runs the ticks of `config`'s rules over the 5-minute buckets `cache`
/// and the minutes `minutes` of `metrics`, and the `by` rules over
/// `splits` (without it they judge nothing), with `silences` in force
/// from their creation: the history lines of every state change and
/// notification decision.
pub fn judge(
    config: &Config,
    metrics: &[String],
    cache: &BucketCache,
    minutes: &MinuteCounts,
    splits: Option<&dyn SplitRows>,
    ticks: Ticks,
    silences: &[Silence],
) -> Vec<HistoryEntry> {
    let mut book = AlertBook::new(config, Vec::new(), ticks.from);
    let mut history = Vec::new();
    let mut last_at = None;
    let mut series = SeriesSet::default();
    let mut built = None;
    let split = split_rules(config);
    let mut watches = None;
    let every = ticks.every.max(MINUTE);
    let mut tick = ticks.from.div_euclid(every) * every;
    while tick < ticks.to {
        // The tick that finds the period ending at `tick + every` complete.
        let now = tick + every + COMPLETE_AFTER_SECS;
        for t in evaluation_instants(last_at, now) {
            let bucket = bucket_start(t);
            if built != Some(bucket) {
                series = bucket_series(cache, metrics, bucket);
                built = Some(bucket);
            }
            add_minutes(&mut series, minutes, t);
            if let Some(rows) = splits.filter(|_| !split.is_empty()) {
                let retention = config.storage.minute_retention_days;
                refresh_values(&mut watches, &split, rows, &book, t, retention);
            }
            add_values(&mut series, watches.as_ref(), t);
            history.extend(book.evaluate(config, &series, t, &config.time));
            last_at = Some(t);
        }
        let in_force: Vec<Silence> = silences
            .iter()
            .filter(|s| s.created_at <= now)
            .cloned()
            .collect();
        let (_notices, notes) = book.notify(config, &in_force, now);
        history.extend(notes);
        tick += every;
    }
    history
}

/// Runs the rules of `config` (only `rule`, if given) over the replayed
/// log `replay`, ticking every minute from the first counted minute until
/// the tick that finds the last one complete (or over `[from, to)`, if
/// given), with `silences` in force from their creation.
pub fn run(
    config: &Config,
    replay: &Replay,
    rule: Option<&str>,
    range: (Option<i64>, Option<i64>),
    silences: &[Silence],
) -> RuleBacktest {
    let counts = &replay.counts;
    let mut config = config.clone();
    let mut not_judged = Vec::new();
    config.alerts.retain(|r| {
        let keep = rule.is_none_or(|name| r.name == name);
        if !keep {
            not_judged.push(r.name.clone());
        }
        keep
    });
    let metrics = counted_metrics(&config);
    let mut cache = BucketCache::new();
    let mut minutes = MinuteCounts::new();
    for ((t, metric), n) in counts {
        let n = i64::try_from(*n).unwrap_or(i64::MAX);
        let slot = cache.entry((metric.clone(), bucket_start(*t))).or_insert(0);
        *slot = slot.saturating_add(n);
        minutes.entry(metric.clone()).or_default().insert(*t, n);
    }
    // Keyed by time first: the first and last keys hold the first and
    // last counted minutes.
    let first = counts.keys().next().map_or(0, |(t, _)| *t);
    let last = counts.keys().next_back().map_or(0, |(t, _)| *t);
    let from = range.0.unwrap_or(first).div_euclid(MINUTE) * MINUTE;
    let to = range.1.unwrap_or(last + MINUTE);
    let ticks = Ticks {
        from,
        to,
        every: MINUTE,
    };
    let history = judge(
        &config,
        &metrics,
        &cache,
        &minutes,
        Some(replay),
        ticks,
        silences,
    );
    RuleBacktest {
        history,
        not_judged,
        from,
        to,
    }
}
