//! Mission Control's data: every BPM's recent counts against its seasonal
//! baseline band, its current 1-hour window against the baseline, and the
//! state of the alert rules on it — built from the alert object's 5-minute
//! series and rule records in one pass, so the dashboard needs one call.
//!
//! Invariants: a point is one step of the range (`[t, t + step)`); a point
//! that reaches past the last complete 5-minute bucket is `partial` and is
//! compared with the same partial span of earlier weeks, never with whole
//! steps; a baseline exists only where the detector's would (≥ 2 earlier
//! weeks, else ≥ 3 earlier days); the band is the lowest and highest of the
//! values the baseline is the median of.

use crate::alert::alert_book::RuleRecord;
use crate::alert::detector::{median, seasonal_values, BaselineSource, CountSeries};
use crate::alert::silence::Silence;
use crate::config::{Config, MetricKind, Stage};
use crate::decimal::round_to;
use crate::report::query::{query_params, QueryError};
use crate::time::duration_label;
use crate::time::format_time;
use crate::time::WallClock;
use crate::time::BUCKET_SECS;
use serde::Serialize;
use std::collections::BTreeMap;

/// The length of the "current window" shown next to each BPM.
pub const WINDOW_SECS: i64 = 3600;
/// Weeks of history a band looks back over.
pub const BAND_WEEKS: u32 = 4;
/// History the overview needs before its range: the band's weeks plus one.
pub const LOOKBACK_SECS: i64 = (BAND_WEEKS as i64 + 1) * 7 * 86_400;

/// The span shown: 24 hours in 15-minute steps, or 7 days in hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverviewRange {
    Day,
    Week,
}

impl OverviewRange {
    pub fn secs(self) -> i64 {
        match self {
            OverviewRange::Day => 86_400,
            OverviewRange::Week => 7 * 86_400,
        }
    }

    pub fn step_secs(self) -> i64 {
        match self {
            OverviewRange::Day => 900,
            OverviewRange::Week => 3600,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            OverviewRange::Day => "24h",
            OverviewRange::Week => "7d",
        }
    }
}

/// `?range=24h|7d&metric=NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverviewQuery {
    pub range: OverviewRange,
    pub metric: Option<String>,
}

impl OverviewQuery {
    /// Where the series it is built from start at `now`: its range and the
    /// band's [`LOOKBACK_SECS`] before that.
    pub fn series_from(&self, now: i64) -> i64 {
        now - self.range.secs() - LOOKBACK_SECS
    }

    pub fn parse(query: &str, config: &Config) -> Result<Self, QueryError> {
        let mut out = OverviewQuery {
            range: OverviewRange::Day,
            metric: None,
        };
        let params = query_params(query.trim_start_matches('?'));
        if let Some(r) = params.get("range") {
            out.range = match r.as_str() {
                "24h" | "1d" => OverviewRange::Day,
                "7d" | "1w" => OverviewRange::Week,
                other => return Err(QueryError::UnknownRange(other.into())),
            };
        }
        if let Some(m) = params.get("metric") {
            if config.metric(m).is_none() {
                return Err(QueryError::NoMetricNamed(m.clone()));
            }
            out.metric = Some(m.clone());
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SiteInfo {
    pub name: String,
    pub timezone: String,
    pub url: String,
}

/// One step of a BPM's sparkline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BandPoint {
    pub t: String,
    /// The count (a ratio's value); `None` past the data or, for a ratio,
    /// when the denominator is 0.
    pub value: Option<f64>,
    pub expected: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub partial: bool,
}

/// The last complete hour against its baseline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CurrentWindow {
    pub label: String,
    pub from: String,
    pub to: String,
    pub observed: Option<f64>,
    pub expected: Option<f64>,
    /// `observed / expected`.
    pub ratio: Option<f64>,
    /// `"4 weeks"`, `"5 days"`, or `None` without enough history.
    pub source: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ActiveSilence {
    pub id: String,
    pub until: String,
    pub reason: String,
    pub author: String,
}

/// One alert rule on a BPM.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleStatus {
    pub rule: String,
    /// For a `by` rule: its dimension, and the value of its most urgent
    /// instance (the one this status describes), e.g. the source that went
    /// dark.
    pub by: Option<&'static str>,
    pub value: Option<String>,
    pub severity: &'static str,
    /// `learning`, `ok`, `pending`, `firing` or `resolved`.
    pub state: &'static str,
    /// Whether a tick has judged the rule yet (a rule no tick has judged
    /// is shown `learning`).
    pub evaluated: bool,
    pub silenced: bool,
    pub since: Option<String>,
    pub fired_at: Option<String>,
    pub explanation: String,
    /// Where the firing drop happened, as its notification said (see
    /// `explain`); `None` outside a notified episode.
    pub drop_explanation: Option<crate::alert::explain::Explanation>,
    pub silences: Vec<ActiveSilence>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricOverview {
    pub name: String,
    pub stage: &'static str,
    pub description: String,
    pub owner: String,
    pub runbook: String,
    pub kind: &'static str,
    /// The most urgent state of its rules (`firing` > `pending` > `resolved`
    /// > `learning` > `ok`), or `none` without a rule.
    pub state: &'static str,
    /// Every rule in that most urgent state is silenced.
    pub silenced: bool,
    pub window: CurrentWindow,
    pub points: Vec<BandPoint>,
    pub alerts: Vec<RuleStatus>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Overview {
    pub site: SiteInfo,
    pub now: String,
    /// End of the last complete 5-minute bucket in the data.
    pub data_to: String,
    pub range: &'static str,
    pub from: String,
    pub to: String,
    pub step_secs: i64,
    pub stages: Vec<&'static str>,
    pub metrics: Vec<MetricOverview>,
}

/// Where a BPM's values come from.
enum Source<'a> {
    Count(&'a CountSeries),
    Ratio {
        num: &'a CountSeries,
        den: &'a CountSeries,
        scale: f64,
    },
}

impl Source<'_> {
    /// The value over `[a, b)`: a sum, or `num/den × scale` (`None` when
    /// the denominator is 0 or the span is outside the data).
    fn value(&self, a: i64, b: i64) -> Option<f64> {
        match self {
            Source::Count(s) => s.sum(a, b),
            Source::Ratio { num, den, scale } => {
                let d = den.sum(a, b)?;
                let n = num.sum(a, b)?;
                (d > 0.0).then(|| n / d * scale)
            }
        }
    }
}

fn source_label(s: BaselineSource) -> String {
    match s {
        BaselineSource::Weeks(n) => format!("{n} weeks"),
        BaselineSource::Days(n) => format!("{n} days"),
    }
}

/// Median, lowest and highest of the same span in earlier weeks (or days).
fn band(
    source: &Source<'_>,
    a: i64,
    b: i64,
    clock: &dyn WallClock,
) -> Option<(f64, f64, f64, BaselineSource)> {
    let len = b - a;
    let (values, from) = seasonal_values(|end| source.value(end - len, end), b, BAND_WEEKS, clock)?;
    let m = median(&values)?;
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((m, lo, hi, from))
}

fn rank(state: &str) -> u8 {
    match state {
        "firing" => 4,
        "pending" => 3,
        "resolved" => 2,
        "learning" => 1,
        _ => 0,
    }
}

/// A sentence on the rule's latest evaluation, for people.
pub fn explain(record: Option<&RuleRecord>) -> String {
    let Some(eval) = record.and_then(|r| r.last.as_ref()) else {
        return "not evaluated yet".into();
    };
    if eval.learning {
        return "learning: not enough history for a baseline yet".into();
    }
    let Some(w) = eval.headline() else {
        return "no window could be judged".into();
    };
    let label = duration_label(w.window);
    let (Some(expected), Some(ratio)) = (w.expected, w.ratio) else {
        return format!("{label} window: {} observed, no baseline", w.observed);
    };
    let change = (ratio - 1.0) * 100.0;
    let mut s = format!(
        "{label} window: {} observed vs {} expected ({}{:.0}%)",
        round_to(w.observed, 1),
        round_to(expected, 1),
        if change < 0.0 { "−" } else { "+" },
        change.abs()
    );
    if let Some(z) = w.z {
        s.push_str(&format!(", z = {z:.1}"));
    }
    if w.holds {
        s.push_str(": a drop (large, unlikely, enough volume)");
    } else if !w.enough_volume {
        s.push_str(": too little volume to judge");
    } else {
        s.push_str(": within the expected range");
    }
    s
}

/// Builds the overview at `now` from the 5-minute `series` (complete up to
/// their end) of the counted metrics, the rule records and the silences.
pub fn build(
    config: &Config,
    series: &BTreeMap<String, CountSeries>,
    records: &[RuleRecord],
    silences: &[Silence],
    query: &OverviewQuery,
    now: i64,
) -> Overview {
    let step = query.range.step_secs();
    let to = now.div_euclid(step) * step + step;
    let from = to - query.range.secs();
    let empty = CountSeries::new(from, BUCKET_SECS);
    let get = |name: &str| series.get(name).unwrap_or(&empty);
    let data_to = series
        .values()
        .map(CountSeries::end)
        .max()
        .unwrap_or(from)
        .div_euclid(BUCKET_SECS)
        * BUCKET_SECS;
    let clock = &config.time;
    let mut metrics = Vec::new();
    for stage in Stage::ALL {
        for m in config.metrics.iter().filter(|m| m.stage == stage) {
            if query.metric.as_ref().is_some_and(|q| q != &m.name) {
                continue;
            }
            let source = match &m.kind {
                MetricKind::Counted { .. } => Source::Count(get(&m.name)),
                MetricKind::Ratio(r) => Source::Ratio {
                    num: get(&r.numerator),
                    den: get(&r.denominator),
                    scale: r.scale,
                },
            };
            let places = if matches!(m.kind, MetricKind::Ratio(_)) {
                2
            } else {
                1
            };
            let points = (0..(to - from) / step)
                .map(|i| {
                    let t = from + i * step;
                    let end = (t + step).min(data_to);
                    let value = (end > t).then(|| source.value(t, end)).flatten();
                    let b = (end > t).then(|| band(&source, t, end, clock)).flatten();
                    BandPoint {
                        t: format_time(t),
                        value: value.map(|v| round_to(v, places)),
                        expected: b.map(|b| round_to(b.0, places)),
                        low: b.map(|b| round_to(b.1, places)),
                        high: b.map(|b| round_to(b.2, places)),
                        partial: t + step > data_to,
                    }
                })
                .collect();
            let (wa, wb) = (data_to - WINDOW_SECS, data_to);
            let observed = source.value(wa, wb);
            let wband = band(&source, wa, wb, clock);
            let window = CurrentWindow {
                label: duration_label(WINDOW_SECS),
                from: format_time(wa),
                to: format_time(wb),
                observed: observed.map(|v| round_to(v, places)),
                expected: wband.map(|b| round_to(b.0, places)),
                ratio: match (observed, wband) {
                    (Some(o), Some(b)) if b.0 > 0.0 => Some(round_to(o / b.0, 4)),
                    _ => None,
                },
                source: wband.map(|b| source_label(b.3)),
            };
            let alerts: Vec<RuleStatus> = config
                .alerts
                .iter()
                .filter(|r| r.metric == m.name)
                .map(|rule| {
                    // A `by` rule shows its most urgent instance.
                    let rec = records
                        .iter()
                        .filter(|r| r.rule == rule.name)
                        .max_by_key(|r| rank(r.alert.state.as_str()));
                    let covering: Vec<ActiveSilence> = silences
                        .iter()
                        .filter(|s| s.covers(&rule.name, now))
                        .map(|s| ActiveSilence {
                            id: s.id.clone(),
                            until: format_time(s.until),
                            reason: s.reason.clone(),
                            author: s.author.clone(),
                        })
                        .collect();
                    RuleStatus {
                        rule: rule.name.clone(),
                        by: rule.by.map(|b| b.dimension.as_str()),
                        value: rec.and_then(|r| r.value.clone()),
                        severity: rule.severity.as_str(),
                        state: rec.map_or("learning", |r| r.alert.state.as_str()),
                        evaluated: rec.is_some(),
                        silenced: !covering.is_empty(),
                        since: rec.map(|r| format_time(r.alert.since)),
                        fired_at: rec.and_then(|r| r.alert.fired_at).map(format_time),
                        explanation: explain(rec),
                        drop_explanation: rec.and_then(|r| r.explanation.clone()),
                        silences: covering,
                    }
                })
                .collect();
            let state = alerts
                .iter()
                .map(|a| a.state)
                .max_by_key(|s| rank(s))
                .unwrap_or("none");
            let silenced = !alerts.is_empty()
                && alerts
                    .iter()
                    .filter(|a| a.state == state)
                    .all(|a| a.silenced);
            metrics.push(MetricOverview {
                name: m.name.clone(),
                stage: m.stage.as_str(),
                description: m.description.clone(),
                owner: m.owner.clone(),
                runbook: m.runbook.clone(),
                kind: m.kind_name(),
                state,
                silenced,
                window,
                points,
                alerts,
            });
        }
    }
    Overview {
        site: SiteInfo {
            name: config.site.name.clone(),
            timezone: config.time.zone.clone(),
            url: config.site.url.clone(),
        },
        now: format_time(now),
        data_to: format_time(data_to),
        range: query.range.label(),
        from: format_time(from),
        to: format_time(to),
        step_secs: step,
        stages: Stage::ALL
            .iter()
            .filter(|s| config.metrics.iter().any(|m| m.stage == **s))
            .map(|s| s.as_str())
            .collect(),
        metrics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::alert_book::fingerprint;
    use crate::alert::lifecycle::{AlertState, State};

    const WEEK: i64 = 7 * 86_400;
    /// A Monday 00:00 UTC in winter (Berlin is UTC+1 all through the data).
    const MON: i64 = 1_767_571_200; // 2026-01-05T00:00:00Z

    fn config() -> Config {
        crate::config::parse_toml(include_str!("../../bpm.toml"), "bpm.toml").unwrap()
    }

    /// Five weeks before `MON + 1 day` at `rate` per 5-minute bucket for
    /// every counted metric of the config, `dashboard_views` at half of
    /// `login_views`; the last `tail` buckets of `logins` replaced.
    fn series(cfg: &Config, rate: f64, logins_tail: &[f64]) -> BTreeMap<String, CountSeries> {
        let start = MON + 86_400 - 5 * WEEK;
        let n = (5 * WEEK / BUCKET_SECS) as usize;
        let mut out = BTreeMap::new();
        for m in &cfg.metrics {
            if matches!(m.kind, MetricKind::Ratio(_)) {
                continue;
            }
            let r = if m.name == "dashboard_views" {
                rate / 2.0
            } else {
                rate
            };
            let mut v = vec![r; n];
            if m.name == "logins" {
                let k = v.len() - logins_tail.len();
                v[k..].copy_from_slice(logins_tail);
            }
            out.insert(
                m.name.clone(),
                CountSeries::from_counts(start, BUCKET_SECS, &v),
            );
        }
        out
    }

    fn day() -> OverviewQuery {
        OverviewQuery {
            range: OverviewRange::Day,
            metric: None,
        }
    }

    #[test]
    fn every_bpm_has_a_day_of_points_with_a_band_and_a_current_window() {
        let cfg = config();
        let now = MON + 86_400 + 30; // data complete up to MON + 1 day
        let o = build(&cfg, &series(&cfg, 10.0, &[]), &[], &[], &day(), now);
        assert_eq!(o.metrics.len(), cfg.metrics.len());
        assert_eq!(o.step_secs, 900);
        assert_eq!(o.site.timezone, "Europe/Berlin");
        // Grouped by stage, in the order of the stages list.
        let order: Vec<usize> = o
            .metrics
            .iter()
            .map(|m| o.stages.iter().position(|s| *s == m.stage).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
        let logins = o.metrics.iter().find(|m| m.name == "logins").unwrap();
        assert_eq!(logins.points.len(), 96);
        let full = &logins.points[0];
        assert_eq!(full.value, Some(30.0));
        assert_eq!(
            (full.expected, full.low, full.high),
            (Some(30.0), Some(30.0), Some(30.0))
        );
        assert!(!full.partial);
        assert_eq!(logins.window.observed, Some(120.0));
        assert_eq!(logins.window.expected, Some(120.0));
        assert_eq!(logins.window.ratio, Some(1.0));
        assert_eq!(logins.window.source.as_deref(), Some("4 weeks"));
        assert_eq!(
            logins.state, "learning",
            "a rule without a record is learning"
        );
        let ratio = o
            .metrics
            .iter()
            .find(|m| m.name == "login_success")
            .unwrap();
        assert_eq!(ratio.kind, "ratio");
        assert_eq!(ratio.points[0].value, Some(50.0));
        assert_eq!(ratio.window.ratio, Some(1.0));
        let no_rule = o.metrics.iter().find(|m| m.name == "login_views").unwrap();
        assert_eq!(no_rule.state, "none");
        assert!(no_rule.alerts.is_empty());
    }

    #[test]
    fn a_step_past_the_data_is_partial_and_compared_like_for_like() {
        let cfg = config();
        // 10 minutes into a 15-minute step: two complete buckets of it.
        let now = MON + 86_400 + 10 * 60 + 31;
        let mut s = series(&cfg, 10.0, &[]);
        let start = MON + 86_400 - 5 * WEEK;
        let mut v = vec![10.0; (5 * WEEK / BUCKET_SECS) as usize + 2];
        let k = v.len();
        v[k - 2..].copy_from_slice(&[4.0, 4.0]);
        s.insert(
            "logins".into(),
            CountSeries::from_counts(start, BUCKET_SECS, &v),
        );
        let o = build(&cfg, &s, &[], &[], &day(), now);
        let logins = o.metrics.iter().find(|m| m.name == "logins").unwrap();
        let last = logins.points.last().unwrap();
        assert!(last.partial);
        assert_eq!(last.value, Some(8.0));
        assert_eq!(last.expected, Some(20.0), "two buckets of earlier weeks");
        assert_eq!(o.data_to, format_time(MON + 86_400 + 600));
        // Other metrics end earlier: their last step has no value at all.
        let signups = o.metrics.iter().find(|m| m.name == "signups").unwrap();
        assert_eq!(signups.points.last().unwrap().value, None);
    }

    #[test]
    fn without_history_there_is_no_baseline() {
        let cfg = config();
        let start = MON;
        let mut s = BTreeMap::new();
        s.insert(
            "logins".to_string(),
            CountSeries::from_counts(start, BUCKET_SECS, &[5.0; 288]),
        );
        let o = build(&cfg, &s, &[], &[], &day(), MON + 86_400 + 30);
        let logins = o.metrics.iter().find(|m| m.name == "logins").unwrap();
        assert_eq!(logins.window.observed, Some(60.0));
        assert_eq!(logins.window.expected, None);
        assert_eq!(logins.window.ratio, None);
        assert!(logins.points.iter().all(|p| p.expected.is_none()));
    }

    #[test]
    fn a_firing_silenced_rule_shows_why_and_by_whom() {
        let cfg = config();
        let now = MON + 86_400 + 30;
        let s = series(&cfg, 10.0, &[0.0; 12]);
        let eval = {
            let rule = cfg.alert("logins_drop").unwrap();
            let mut det = crate::alert::detector::DropDetector::new(
                crate::alert::alert_book::detector_params(rule),
            );
            det.evaluate(s.get("logins").unwrap(), MON + 86_400, &cfg.time)
        };
        assert!(eval.drop);
        let mut alert = AlertState::new(MON);
        alert.state = State::Firing;
        alert.since = MON + 86_400 - 1800;
        alert.fired_at = Some(alert.since);
        let record = RuleRecord {
            rule: "logins_drop".into(),
            value: None,
            fingerprint: fingerprint("demo", "logins_drop", "logins"),
            alert,
            sequence: 1,
            firing_sent: true,
            held_since: None,
            suppression_noted: false,
            last_sent_at: None,
            last: Some(eval),
            explanation: Some(crate::alert::explain::Explanation {
                text: "source google \u{2212}92% (\u{2212}1,840), all other sources normal".into(),
                findings: Vec::new(),
            }),
        };
        let silence = Silence {
            id: "sil_1".into(),
            rule: "logins_drop".into(),
            until: now + 3600,
            reason: "known deploy".into(),
            author: "on-call".into(),
            created_at: now - 60,
        };
        let o = build(&cfg, &s, &[record], &[silence], &day(), now);
        let logins = o.metrics.iter().find(|m| m.name == "logins").unwrap();
        assert_eq!(logins.state, "firing");
        assert!(logins.silenced);
        let a = &logins.alerts[0];
        assert_eq!(
            a.fired_at.as_deref(),
            Some(format_time(MON + 86_400 - 1800).as_str())
        );
        assert!(a.explanation.contains("0 observed vs"), "{}", a.explanation);
        assert!(a.explanation.contains("−100%"), "{}", a.explanation);
        assert!(a.explanation.contains("a drop"), "{}", a.explanation);
        assert_eq!(
            a.drop_explanation.as_ref().map(|x| x.text.as_str()),
            Some("source google \u{2212}92% (\u{2212}1,840), all other sources normal")
        );
        assert_eq!(a.silences[0].author, "on-call");
        assert_eq!(logins.window.ratio, Some(0.0));
    }

    #[test]
    fn the_week_range_and_a_single_metric() {
        let cfg = config();
        let q = OverviewQuery::parse("range=7d&metric=signups", &cfg).unwrap();
        let o = build(
            &cfg,
            &series(&cfg, 10.0, &[]),
            &[],
            &[],
            &q,
            MON + 86_400 + 30,
        );
        assert_eq!(o.metrics.len(), 1);
        assert_eq!(o.metrics[0].points.len(), 168);
        assert_eq!(o.metrics[0].points[0].value, Some(120.0));
        assert_eq!(
            OverviewQuery::parse("range=2d", &cfg),
            Err(QueryError::UnknownRange("2d".into()))
        );
        assert!(OverviewQuery::parse("metric=nope", &cfg).is_err());
        assert_eq!(OverviewQuery::parse("", &cfg).unwrap(), day());
    }
}
