//! The digest's numbers for one period, from what the alert object keeps:
//! each BPM's value this period, the period before, and its baseline (the
//! median of the same period 1–[`BASELINE_WEEKS`] weeks earlier), grouped
//! by RARR stage in the config's order; the alert episodes that overlap
//! the period; the largest referral sources and campaigns and those that
//! moved most; and the annotations in it.
//!
//! A period reaching before the first stored bucket is unknown (`None`),
//! not zero: a new deployment's first digest compares nothing rather than
//! reporting a fall from 0. The stored series are kept 43 days, enough for
//! a weekly period, the one before, and four weeks of baseline behind it.

use crate::alert::alert_book::HistoryEntry;
use crate::alert::annotation::Annotation;
use crate::alert::detector::median;
use crate::alert::tick_series::BucketCache;
use crate::alert::value_series::OVERFLOW;
use crate::config::sitetime::SiteTime;
use crate::config::{Config, MetricKind, Stage};
use crate::count::referral::NONE;
use crate::count::tally::Row;
use crate::digest::schedule::DigestPeriod;
use crate::history::rule_backtest::{episodes, Episode};
use crate::time::Resolution;
use serde::Serialize;
use std::collections::BTreeMap;

/// Weeks the baseline looks back.
pub const BASELINE_WEEKS: i64 = 4;

/// One BPM over the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricLine {
    pub metric: String,
    pub stage: &'static str,
    /// Its count, or a ratio's value; `None` before the stored history.
    pub value: Option<f64>,
    pub previous: Option<f64>,
    /// The median of the same period 1–4 weeks earlier (at least 2 known).
    pub baseline: Option<f64>,
    /// `value / previous − 1`.
    pub vs_previous: Option<f64>,
    /// `value / baseline − 1`.
    pub vs_baseline: Option<f64>,
    /// Unique visitors of a counted BPM over the period and the one before
    /// (estimates, within about 2 %; see `sketch::STANDARD_ERROR`): `None`
    /// for a ratio, or when the visitor sketches cannot be read.
    pub visitors: Option<u64>,
    pub visitors_previous: Option<u64>,
}

/// One referral value (a source or a campaign) this period and the one
/// before.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mover {
    /// `source` or `utm_campaign`.
    pub dimension: String,
    pub value: String,
    pub now: u64,
    pub before: u64,
}

/// Sources and campaigns shown: the largest this many, and this many that
/// moved most.
pub const TOP_REFERRALS: usize = 5;
pub const TOP_MOVERS: usize = 3;

/// The referral dimensions the digest reports.
pub const REFERRAL_DIMENSIONS: [&str; 2] = ["source", "utm_campaign"];

/// The referral rows of the referral-stage metrics, this period and the
/// one before (any step: they are summed per value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReferralRows {
    pub now: Vec<Row>,
    pub before: Vec<Row>,
}

/// The referral part of a scorecard.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Referrals {
    /// The largest sources this period.
    pub sources: Vec<Mover>,
    /// The largest campaigns this period.
    pub campaigns: Vec<Mover>,
    /// The sources and campaigns whose count changed most, either way.
    pub moved: Vec<Mover>,
}

impl Referrals {
    fn of(rows: &ReferralRows) -> Referrals {
        let mut all: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
        let mut add = |rows: &[Row], now: bool| {
            for r in rows
                .iter()
                .filter(|r| REFERRAL_DIMENSIONS.contains(&r.dim()))
            {
                let key = (r.dim().to_string(), r.value().to_string());
                let slot = all.entry(key).or_insert((0, 0));
                let n = if now { &mut slot.0 } else { &mut slot.1 };
                *n = n.saturating_add(r.n());
            }
        };
        add(&rows.now, true);
        add(&rows.before, false);
        let movers: Vec<Mover> = all
            .into_iter()
            // Not values: the overflow, and "no campaign".
            .filter(|((_, v), _)| !v.is_empty() && v != OVERFLOW && v != NONE)
            .map(|((dimension, value), (now, before))| Mover {
                dimension,
                value,
                now,
                before,
            })
            .collect();
        let top = |dim: &str| {
            let mut list: Vec<Mover> = movers
                .iter()
                .filter(|m| m.dimension == dim && m.now > 0)
                .cloned()
                .collect();
            list.sort_by(|a, b| b.now.cmp(&a.now).then(a.value.cmp(&b.value)));
            list.truncate(TOP_REFERRALS);
            list
        };
        let mut moved = movers.clone();
        moved.retain(|m| m.now != m.before);
        moved.sort_by(|a, b| {
            b.now
                .abs_diff(b.before)
                .cmp(&a.now.abs_diff(a.before))
                .then(a.value.cmp(&b.value))
        });
        moved.truncate(TOP_MOVERS);
        Referrals {
            sources: top("source"),
            campaigns: top("utm_campaign"),
            moved,
        }
    }
}

/// A site's scorecard for one period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scorecard {
    pub site: String,
    pub period: DigestPeriod,
    pub previous: DigestPeriod,
    /// Every BPM, stage by stage (RARR, then other), config order within.
    pub metrics: Vec<MetricLine>,
    /// Alert episodes that overlap the period, in time order.
    pub alerts: Vec<Episode>,
    pub referrals: Referrals,
    /// Annotations dated in the period, oldest first.
    pub annotations: Vec<Annotation>,
}

impl Scorecard {
    /// Sets the unique visitors of `metric` this period and the one before,
    /// as the sketches counted them. No visitor in a period that counted
    /// requests means no sketch (backfilled history, or requests without a
    /// client address): unknown, not zero.
    pub fn set_visitors(&mut self, metric: &str, now: Option<u64>, before: Option<u64>) {
        let known = |visitors: Option<u64>, value: Option<f64>| {
            visitors.filter(|&v| v > 0 || value == Some(0.0))
        };
        if let Some(line) = self.metrics.iter_mut().find(|m| m.metric == metric) {
            line.visitors = known(now, line.value);
            line.visitors_previous = known(before, line.previous);
        }
    }
}

/// The whole UTC hours visitor sketches are read over for `period` (they
/// are kept per UTC hour): its bounds floored to the hour, which changes
/// nothing for a zone whose offset is whole hours.
pub fn visitor_hours(period: &DigestPeriod) -> (i64, i64) {
    (
        Resolution::Hour.floor(period.from),
        Resolution::Hour.floor(period.to),
    )
}

/// `a / b − 1`, when both are known and `b` is not 0.
fn change(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b - 1.0),
        _ => None,
    }
}

/// The sum of `metric`'s buckets in `[from, to)`, `None` if the stored
/// history starts after `from`.
fn total(
    buckets: &BucketCache,
    first: Option<i64>,
    metric: &str,
    (from, to): (i64, i64),
) -> Option<f64> {
    if first.is_none_or(|f| f > from) {
        return None;
    }
    let m = metric.to_string();
    Some(
        buckets
            .range((m.clone(), from)..(m, to))
            .map(|(_, n)| *n as f64)
            .sum(),
    )
}

/// A metric's value over `range`: its count, or a ratio's value.
fn value(
    config: &Config,
    buckets: &BucketCache,
    first: Option<i64>,
    metric: &str,
    range: (i64, i64),
) -> Option<f64> {
    match config.metric(metric).map(|m| &m.kind) {
        Some(MetricKind::Ratio(r)) => {
            let num = total(buckets, first, &r.numerator, range)?;
            let den = total(buckets, first, &r.denominator, range)?;
            (den > 0.0 && den >= r.min_denominator as f64).then(|| num / den * r.scale)
        }
        _ => total(buckets, first, metric, range),
    }
}

/// The scorecard of `period` from the stored 5-minute `buckets`, the
/// alert `history` (state changes in time order), the referral rows and
/// `annotations`.
pub fn build(
    config: &Config,
    zone: &SiteTime,
    period: DigestPeriod,
    buckets: &BucketCache,
    history: &[HistoryEntry],
    referrals: &ReferralRows,
    annotations: &[Annotation],
) -> Scorecard {
    let previous = period.previous(zone);
    let first = buckets.keys().map(|(_, t)| *t).min();
    let mut metrics = Vec::new();
    for stage in Stage::ALL {
        for m in config.metrics.iter().filter(|m| m.stage == stage) {
            let at = |r: (i64, i64)| value(config, buckets, first, &m.name, r);
            let now = at((period.from, period.to));
            let before = at((previous.from, previous.to));
            let weeks: Vec<f64> = (1..=BASELINE_WEEKS)
                .filter_map(|k| {
                    at((
                        zone.days_before(period.from, 7 * k),
                        zone.days_before(period.to, 7 * k),
                    ))
                })
                .collect();
            let baseline = if weeks.len() >= 2 {
                median(&weeks)
            } else {
                None
            };
            metrics.push(MetricLine {
                metric: m.name.clone(),
                stage: stage.as_str(),
                value: now,
                previous: before,
                baseline,
                vs_previous: change(now, before),
                vs_baseline: change(now, baseline),
                visitors: None,
                visitors_previous: None,
            });
        }
    }
    let alerts = episodes(history)
        .into_iter()
        .filter(|e| e.fired < period.to && e.resolved.is_none_or(|r| r > period.from))
        .collect();
    let mut in_period: Vec<Annotation> = annotations
        .iter()
        .filter(|a| (period.from..period.to).contains(&a.at))
        .cloned()
        .collect();
    in_period.sort_by_key(|a| a.at);
    Scorecard {
        site: config.site.name.clone(),
        period,
        previous,
        metrics,
        alerts,
        referrals: Referrals::of(referrals),
        annotations: in_period,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::annotation::AnnotationKind;
    use crate::alert::lifecycle::State;
    use crate::config::digest::DigestSettings;
    use crate::config::parse_toml;
    use crate::config::sitetime::lookup;
    use crate::digest::schedule::latest;
    use crate::time::{parse_rfc3339, BUCKET_SECS};

    fn config() -> Config {
        parse_toml(include_str!("../../bpm.toml"), "bpm.toml").unwrap()
    }

    fn t(s: &str) -> i64 {
        parse_rfc3339(s).unwrap()
    }

    /// Every 5-minute bucket of `[from, to)`: `n(t)` for each metric.
    fn fill(
        cache: &mut BucketCache,
        metrics: &[&str],
        (from, to): (i64, i64),
        n: impl Fn(i64) -> i64,
    ) {
        let mut at = from;
        while at < to {
            for m in metrics {
                cache.insert((m.to_string(), at), n(at));
            }
            at += BUCKET_SECS;
        }
    }

    fn entry(at: i64, rule: &str, to: State) -> HistoryEntry {
        HistoryEntry {
            at,
            rule: rule.into(),
            value: None,
            metric: "logins".into(),
            from: None,
            to: Some(to),
            notice: None,
            incident: None,
            window: None,
            silence: None,
        }
    }

    #[test]
    fn a_week_against_the_week_before_and_its_four_week_baseline_across_dst() {
        let berlin = lookup("Europe/Berlin").unwrap();
        // The digest of Monday 2026-03-30: the week of the spring change.
        let period = latest(
            &DigestSettings::default(),
            &berlin,
            t("2026-03-30T12:00:00Z"),
        );
        let mut cache = BucketCache::new();
        let history_from = period.from - 6 * 7 * 86_400;
        // Two logins a bucket until the period, one during it; views flat.
        fill(
            &mut cache,
            &["logins", "login_views"],
            (history_from, period.to),
            |at| {
                if at >= period.from {
                    1
                } else {
                    2
                }
            },
        );
        fill(
            &mut cache,
            &["dashboard_views"],
            (history_from, period.to),
            |_| 1,
        );
        let history = vec![
            entry(period.from + 3600, "logins_drop", State::Pending),
            entry(period.from + 7200, "logins_drop", State::Firing),
            entry(period.from + 10_800, "logins_drop", State::Resolved),
            entry(period.from - 86_400, "site_down", State::Firing),
            entry(period.from - 80_000, "site_down", State::Resolved),
        ];
        let deploy = Annotation {
            id: "d1".into(),
            kind: AnnotationKind::Deploy,
            at: period.from + 60,
            text: "release".into(),
            link: None,
            version: Some("2f9c1e0".into()),
        };
        let row = |dim: &str, value: &str, n| {
            Row(
                period.from,
                "marketing_views".into(),
                dim.into(),
                value.into(),
                n,
            )
        };
        let referrals = ReferralRows {
            now: vec![
                row("source", "google", 50),
                row("source", "newsletter", 5),
                row("utm_campaign", "winter-sale", 30),
                row("utm_campaign", "(none)", 500),
                row("source", "other", 999),
                row("landing", "/", 80),
            ],
            before: vec![row("source", "google", 20), row("source", "hackernews", 40)],
        };
        let card = build(
            &config(),
            &berlin,
            period,
            &cache,
            &history,
            &referrals,
            std::slice::from_ref(&deploy),
        );
        let line = |m: &str| card.metrics.iter().find(|l| l.metric == m).unwrap().clone();
        // 167 hours of 12 buckets: one a bucket this week, two the week before (168 h).
        let logins = line("logins");
        assert_eq!(logins.value, Some(167.0 * 12.0));
        assert_eq!(logins.previous, Some(168.0 * 24.0));
        assert_eq!(logins.baseline, Some(168.0 * 24.0));
        let drop = logins.vs_previous.unwrap();
        assert!((drop - (167.0 / 336.0 - 1.0)).abs() < 1e-12, "{drop}");
        // The ratio metric: dashboard views per login view, in percent.
        let success = line("login_success");
        assert_eq!(success.value, Some(100.0));
        assert_eq!(success.previous, Some(50.0));
        // A metric never counted: zero, against a zero past.
        let subs = line("subscriptions");
        assert_eq!((subs.value, subs.vs_previous), (Some(0.0), None));
        // Stages in RARR order: retention first.
        assert_eq!(card.metrics[0].stage, "retention");
        assert_eq!(card.alerts.len(), 1, "{:?}", card.alerts);
        assert_eq!(card.alerts[0].rule, "logins_drop");
        assert_eq!(card.annotations, vec![deploy]);
        // Referrals: `other` (the overflow), "(none)" and other dimensions
        // left out.
        let values = |l: &[Mover]| l.iter().map(|m| m.value.clone()).collect::<Vec<_>>();
        assert_eq!(values(&card.referrals.sources), ["google", "newsletter"]);
        assert_eq!(values(&card.referrals.campaigns), ["winter-sale"]);
        assert_eq!(
            values(&card.referrals.moved),
            ["hackernews", "google", "winter-sale"]
        );
        assert_eq!(
            (card.referrals.moved[0].now, card.referrals.moved[0].before),
            (0, 40)
        );
    }

    #[test]
    fn visitors_are_set_per_bpm_and_no_sketch_is_unknown_not_zero() {
        let mut card = Scorecard {
            site: "shop".into(),
            period: DigestPeriod {
                from: 0,
                to: 7 * 86_400,
                send_at: 7 * 86_400 + 9 * 3600,
            },
            previous: DigestPeriod {
                from: -7 * 86_400,
                to: 0,
                send_at: 9 * 3600,
            },
            metrics: ["logins", "signups", "quiet"]
                .iter()
                .map(|name| MetricLine {
                    metric: name.to_string(),
                    stage: "retention",
                    value: Some(if *name == "quiet" { 0.0 } else { 120.0 }),
                    previous: Some(100.0),
                    baseline: None,
                    vs_previous: None,
                    vs_baseline: None,
                    visitors: None,
                    visitors_previous: None,
                })
                .collect(),
            alerts: Vec::new(),
            referrals: Referrals::default(),
            annotations: Vec::new(),
        };
        card.set_visitors("logins", Some(80), Some(0));
        card.set_visitors("signups", None, Some(70));
        card.set_visitors("quiet", Some(0), Some(3));
        card.set_visitors("nope", Some(5), Some(5));
        let seen: Vec<_> = card
            .metrics
            .iter()
            .map(|m| (m.metric.as_str(), m.visitors, m.visitors_previous))
            .collect();
        assert_eq!(
            seen,
            [
                // 100 logins the week before and no visitor: no sketches then.
                ("logins", Some(80), None),
                ("signups", None, Some(70)),
                // Nothing counted and nobody: a true zero.
                ("quiet", Some(0), Some(3)),
            ]
        );
        // Sketches are per UTC hour: a :30 zone's midnight reads from the hour.
        let half = DigestPeriod {
            from: 1800,
            to: 86_400 + 1800,
            send_at: 0,
        };
        assert_eq!(visitor_hours(&half), (0, 86_400));
    }

    #[test]
    fn a_period_before_the_stored_history_is_unknown_not_zero() {
        let utc = SiteTime::utc();
        let period = latest(&DigestSettings::default(), &utc, t("2026-11-30T10:00:00Z"));
        let mut cache = BucketCache::new();
        // Counting began in the middle of the period.
        fill(
            &mut cache,
            &["logins"],
            (period.from + 3 * 86_400, period.to),
            |_| 5,
        );
        let card = build(
            &config(),
            &utc,
            period,
            &cache,
            &[],
            &ReferralRows::default(),
            &[],
        );
        let logins = card.metrics.iter().find(|l| l.metric == "logins").unwrap();
        assert_eq!(logins.value, None);
        assert_eq!((logins.previous, logins.baseline), (None, None));
        assert_eq!(logins.vs_baseline, None);
    }
}
