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
//! silences. Only the past is visible at each instant, as live.
//!
//! Not judged: `by` rules, whose per-value series a replay does not keep
//! yet (they are listed in [`RuleBacktest::not_judged`]).

use crate::alert::alert_book::SeriesSet;
use crate::alert::alert_book::{counted_metrics, AlertBook, HistoryEntry};
use crate::alert::lifecycle::State;
use crate::alert::silence::Silence;
use crate::alert::tick_series::{bucket_series, bucket_start, BucketCache, MinuteCounts};
use crate::alert::ticks::{add_minutes, evaluation_instants, COMPLETE_AFTER_SECS};
use crate::config::Config;
use crate::time::MINUTE;
use serde::Serialize;
use std::collections::BTreeMap;

/// What the rules did over the counts.
#[derive(Debug, Clone, Default)]
pub struct RuleBacktest {
    /// State changes and notification decisions, in time order.
    pub history: Vec<HistoryEntry>,
    /// Rules left out: `by` rules, and rules other than the one asked for.
    pub not_judged: Vec<String>,
    /// The minutes judged, `[from, to)`.
    pub from: i64,
    pub to: i64,
}

/// One firing episode of a rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Episode {
    pub rule: String,
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
    let mut open: BTreeMap<String, Episode> = BTreeMap::new();
    let mut pending_low: BTreeMap<String, f64> = BTreeMap::new();
    let mut done = Vec::new();
    for h in history.iter().filter(|h| h.to.is_some()) {
        let ratio = h.window.as_ref().and_then(|w| w.ratio);
        let key = h.rule.clone();
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
    done.sort_by(|a, b| (a.fired, &a.rule).cmp(&(b.fired, &b.rule)));
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

/// Runs the ticks of `config`'s rules over the 5-minute buckets `cache`
/// and the minutes `minutes` of `metrics`, with `silences` in force: the
/// history lines of every state change and notification decision.
pub fn judge(
    config: &Config,
    metrics: &[String],
    cache: &BucketCache,
    minutes: &MinuteCounts,
    ticks: Ticks,
    silences: &[Silence],
) -> Vec<HistoryEntry> {
    let mut book = AlertBook::new(config, Vec::new(), ticks.from);
    let mut history = Vec::new();
    let mut last_at = None;
    let mut series = SeriesSet::default();
    let mut built = None;
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
            history.extend(book.evaluate(config, &series, t, &config.time));
            last_at = Some(t);
        }
        let (_notices, notes) = book.notify(config, silences, now);
        history.extend(notes);
        tick += every;
    }
    history
}

/// Runs the rules of `config` (only `rule`, if given) over `counts`
/// (`(minute start, metric) → n`), ticking every minute from the first
/// counted minute until the tick that finds the last one complete (or over
/// `[from, to)`, if given), with `silences` in force.
pub fn run(
    config: &Config,
    counts: &BTreeMap<(i64, String), u64>,
    rule: Option<&str>,
    range: (Option<i64>, Option<i64>),
    silences: &[Silence],
) -> RuleBacktest {
    let mut config = config.clone();
    let mut not_judged = Vec::new();
    config.alerts.retain(|r| {
        let keep = r.by.is_none() && rule.is_none_or(|name| r.name == name);
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
    let history = judge(&config, &metrics, &cache, &minutes, ticks, silences);
    RuleBacktest {
        history,
        not_judged,
        from,
        to,
    }
}
