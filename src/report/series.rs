//! The time-series API: parsing `/api/series` parameters, and turning the
//! rows read from every shard into the points a user sees.
//!
//! Invariants: a response has exactly one point per step in `[from, to)`
//! (missing buckets are zeros, never gaps); rows from several shards for the
//! same bucket are summed; a `by=` split returns at most K series plus
//! `other`, whose counts still sum to the metric's count.

use crate::config::{Config, MetricKind, ReferralDimension};
use crate::count::agent::AgentKind;
use crate::count::latency;
use crate::count::tally::{fold_top_k, Dim, Row, OTHER};
use crate::decimal::round_to;
use crate::report::query::{metric_named, query_params, time_range, QueryError};
use crate::time::format_time;
use crate::time::Resolution;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Most points one series request may ask for (a week of minutes).
pub const MAX_POINTS: i64 = 10_080;

/// A validated `/api/series` request.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesQuery {
    pub metric: String,
    pub step: Resolution,
    /// Unix seconds, aligned down to the step (inclusive).
    pub from: i64,
    /// Unix seconds, aligned up to the step (exclusive).
    pub to: i64,
    pub by: Option<Dim>,
}

/// What a shard is asked for: rows of these metrics and dimensions in
/// `[from, to)`, summed per bucket of `step`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardQuery {
    pub step: Resolution,
    pub from: i64,
    pub to: i64,
    pub metrics: Vec<String>,
    pub dims: Vec<String>,
}

impl SeriesQuery {
    /// Parses the raw query string of a series request.
    pub fn parse(query: &str, config: &Config) -> Result<Self, QueryError> {
        let params = query_params(query);
        let get = |k: &'static str| params.get(k).map(String::as_str);
        let metric_name = get("metric").ok_or(QueryError::Missing("metric"))?;
        let metric = metric_named(config, metric_name)?;
        let step_raw = get("step").ok_or(QueryError::Missing("step"))?;
        let step =
            Resolution::parse(step_raw).ok_or_else(|| QueryError::UnknownStep(step_raw.into()))?;
        let (from, to) = time_range(get("from"), get("to"))?;
        let from = step.floor(from);
        let to = ceil(step, to);
        let points = (to - from) / step.seconds();
        if points > MAX_POINTS {
            return Err(QueryError::TooManyPoints(points));
        }
        let by = match get("by") {
            None | Some("") => None,
            Some(raw) => {
                let dim = match raw {
                    "status" => Dim::Status,
                    "kind" => Dim::Kind,
                    other => ReferralDimension::parse(other)
                        .map(Dim::Referral)
                        .ok_or_else(|| QueryError::UnknownDimension(other.into()))?,
                };
                let kept = match (&metric.kind, dim) {
                    (MetricKind::Ratio(_), _) => false,
                    (MetricKind::Counted { .. }, Dim::Status | Dim::Kind) => true,
                    (MetricKind::Counted { dimensions, .. }, Dim::Referral(d)) => {
                        dimensions.contains(&d)
                    }
                    _ => false,
                };
                if !kept {
                    return Err(QueryError::DimensionNotKept {
                        metric: metric.name.clone(),
                        dim: raw.into(),
                    });
                }
                Some(dim)
            }
        };
        Ok(SeriesQuery {
            metric: metric.name.clone(),
            step,
            from,
            to,
            by,
        })
    }

    /// The rows to read from every shard to answer this query.
    pub fn shard_query(&self, config: &Config) -> ShardQuery {
        let (metrics, dims): (Vec<String>, Vec<Dim>) = match config.metric(&self.metric) {
            Some(m) => match (&m.kind, self.by) {
                (MetricKind::Ratio(_), _) => (m.counted_inputs(), vec![Dim::Count]),
                (MetricKind::Counted { .. }, Some(by)) => (vec![m.name.clone()], vec![by]),
                (MetricKind::Counted { .. }, None) => (
                    vec![m.name.clone()],
                    vec![
                        Dim::Count,
                        Dim::Kind,
                        Dim::Browser,
                        Dim::Client,
                        Dim::Bot,
                        Dim::Latency,
                    ],
                ),
            },
            None => (Vec::new(), Vec::new()),
        };
        ShardQuery {
            step: self.step,
            from: self.from,
            to: self.to,
            metrics,
            dims: dims.iter().map(|d| d.as_str().to_string()).collect(),
        }
    }

    fn bucket_times(&self) -> impl Iterator<Item = i64> + '_ {
        let step = self.step.seconds();
        (0..(self.to - self.from) / step).map(move |i| self.from + i * step)
    }
}

pub(crate) fn ceil(step: Resolution, t: i64) -> i64 {
    let floored = step.floor(t);
    if floored == t {
        t
    } else {
        floored + step.seconds()
    }
}

/// A point of a counted metric. `count` is what the metric counts; `bots`
/// the bot hits it does not count; `kinds` every hit by agent kind, counted
/// or not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountPoint {
    pub t: String,
    pub count: u64,
    pub bots: u64,
    pub kinds: KindCounts,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Hits of a metric by agent kind, counted or not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindCounts {
    pub browser: u64,
    pub client: u64,
    pub bot: u64,
}

impl KindCounts {
    /// From one bucket's rows of a metric: counted hits by their `kind`
    /// row, plus the `browser`, `client` and `bot` rows of hits not counted.
    /// Counted hits without a `kind` row were stored before agent kinds
    /// existed, when the only hits counted were those the old bot test let
    /// through as browsers: they are browsers here.
    fn of(count: u64, kind: &HashMap<&str, u64>, not_counted: [u64; 3]) -> Self {
        let get = |k: AgentKind| kind.get(k.as_str()).copied().unwrap_or(0);
        let attributed = get(AgentKind::Browser) + get(AgentKind::Client) + get(AgentKind::Bot);
        let [browser, client, bot] = not_counted;
        KindCounts {
            browser: get(AgentKind::Browser) + count.saturating_sub(attributed) + browser,
            client: get(AgentKind::Client) + client,
            bot: get(AgentKind::Bot) + bot,
        }
    }
}

/// A point of a ratio metric; `value` is null below `min_denominator`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RatioPoint {
    pub t: String,
    pub value: Option<f64>,
    pub numerator: u64,
    pub denominator: u64,
}

/// A point of one series of a `by=` split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitPoint {
    pub t: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitSeries {
    pub value: String,
    pub total: u64,
    pub points: Vec<SplitPoint>,
}

/// The JSON body of a series response.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SeriesResponse {
    Counts {
        metric: String,
        kind: &'static str,
        step: &'static str,
        from: String,
        to: String,
        /// The agent kinds the metric counts.
        count: Vec<&'static str>,
        points: Vec<CountPoint>,
    },
    Ratio {
        metric: String,
        kind: &'static str,
        step: &'static str,
        from: String,
        to: String,
        scale: f64,
        min_denominator: u64,
        points: Vec<RatioPoint>,
    },
    Split {
        metric: String,
        kind: &'static str,
        step: &'static str,
        from: String,
        to: String,
        by: &'static str,
        series: Vec<SplitSeries>,
    },
}

/// Builds the response from the rows of every shard (in any order).
pub fn build_response(query: &SeriesQuery, config: &Config, rows: Vec<Row>) -> SeriesResponse {
    let metric = config.metric(&query.metric);
    let head = (
        query.metric.clone(),
        query.step.as_str(),
        format_time(query.from),
        format_time(query.to),
    );
    match (metric.map(|m| &m.kind), query.by) {
        (Some(MetricKind::Ratio(r)), _) => {
            let num = sum_by_time(&rows, &r.numerator, Dim::Count);
            let den = sum_by_time(&rows, &r.denominator, Dim::Count);
            let points = query
                .bucket_times()
                .map(|t| {
                    let n = num.get(&t).copied().unwrap_or(0);
                    let d = den.get(&t).copied().unwrap_or(0);
                    let value = (d > 0 && d >= r.min_denominator)
                        .then(|| round_to(n as f64 / d as f64 * r.scale, 4));
                    RatioPoint {
                        t: format_time(t),
                        value,
                        numerator: n,
                        denominator: d,
                    }
                })
                .collect();
            SeriesResponse::Ratio {
                metric: head.0,
                kind: "ratio",
                step: head.1,
                from: head.2,
                to: head.3,
                scale: r.scale,
                min_denominator: r.min_denominator,
                points,
            }
        }
        (_, Some(by)) => {
            let k = config.storage.max_dimension_values as usize;
            let series = split_series(query, &rows, by, k);
            SeriesResponse::Split {
                metric: head.0,
                kind: "metric",
                step: head.1,
                from: head.2,
                to: head.3,
                by: by.as_str(),
                series,
            }
        }
        _ => {
            let counts = sum_by_time(&rows, &query.metric, Dim::Count);
            let bots = sum_by_time(&rows, &query.metric, Dim::Bot);
            let browsers = sum_by_time(&rows, &query.metric, Dim::Browser);
            let clients = sum_by_time(&rows, &query.metric, Dim::Client);
            let mut kind: HashMap<i64, HashMap<&str, u64>> = HashMap::new();
            for r in rows
                .iter()
                .filter(|r| r.metric() == query.metric && r.dim() == Dim::Kind.as_str())
            {
                *kind.entry(r.t()).or_default().entry(r.value()).or_insert(0) += r.n();
            }
            let no_kinds = HashMap::new();
            let mut lat: HashMap<i64, BTreeMap<u8, u64>> = HashMap::new();
            for r in rows
                .iter()
                .filter(|r| r.metric() == query.metric && r.dim() == Dim::Latency.as_str())
            {
                if let Ok(b) = r.value().parse::<u8>() {
                    *lat.entry(r.t()).or_default().entry(b).or_insert(0) += r.n();
                }
            }
            let points = query
                .bucket_times()
                .map(|t| {
                    let hist: Vec<(u8, u64)> = lat
                        .get(&t)
                        .map(|h| h.iter().map(|(b, n)| (*b, *n)).collect())
                        .unwrap_or_default();
                    let at = |m: &HashMap<i64, u64>| m.get(&t).copied().unwrap_or(0);
                    let count = at(&counts);
                    let kinds = KindCounts::of(
                        count,
                        kind.get(&t).unwrap_or(&no_kinds),
                        [at(&browsers), at(&clients), at(&bots)],
                    );
                    CountPoint {
                        t: format_time(t),
                        count,
                        bots: at(&bots),
                        kinds,
                        p50_ms: latency::quantile(&hist, 0.50),
                        p95_ms: latency::quantile(&hist, 0.95),
                        p99_ms: latency::quantile(&hist, 0.99),
                    }
                })
                .collect();
            let count = match metric.map(|m| &m.kind) {
                Some(MetricKind::Counted { count, .. }) => {
                    count.iter().map(|k| k.as_str()).collect()
                }
                _ => Vec::new(),
            };
            SeriesResponse::Counts {
                metric: head.0,
                kind: "metric",
                step: head.1,
                from: head.2,
                to: head.3,
                count,
                points,
            }
        }
    }
}

fn sum_by_time(rows: &[Row], metric: &str, dim: Dim) -> HashMap<i64, u64> {
    let mut out = HashMap::new();
    for r in rows
        .iter()
        .filter(|r| r.metric() == metric && r.dim() == dim.as_str())
    {
        *out.entry(r.t()).or_insert(0) += r.n();
    }
    out
}

/// One series per value, the top `k` by total over the whole range; every
/// other value is summed into `other`.
fn split_series(query: &SeriesQuery, rows: &[Row], by: Dim, k: usize) -> Vec<SplitSeries> {
    let mut per_value: HashMap<String, HashMap<i64, u64>> = HashMap::new();
    for r in rows
        .iter()
        .filter(|r| r.metric() == query.metric && r.dim() == by.as_str())
    {
        *per_value
            .entry(r.value().to_string())
            .or_default()
            .entry(r.t())
            .or_insert(0) += r.n();
    }
    let totals: Vec<Row> = per_value
        .iter()
        .map(|(v, pts)| {
            Row(
                0,
                query.metric.clone(),
                by.as_str().to_string(),
                v.clone(),
                pts.values().sum(),
            )
        })
        .collect();
    let kept: Vec<String> = if by.is_capped() {
        fold_top_k(totals, k)
            .into_iter()
            .map(|r| r.3)
            .filter(|v| v != OTHER)
            .collect()
    } else {
        totals.into_iter().map(|r| r.3).collect()
    };
    let mut other: HashMap<i64, u64> = HashMap::new();
    let mut series: Vec<(String, HashMap<i64, u64>)> = Vec::new();
    for (value, pts) in per_value {
        if kept.contains(&value) {
            series.push((value, pts));
        } else {
            for (t, n) in pts {
                *other.entry(t).or_insert(0) += n;
            }
        }
    }
    if !other.is_empty() {
        series.push((OTHER.to_string(), other));
    }
    let mut out: Vec<SplitSeries> = series
        .into_iter()
        .map(|(value, pts)| SplitSeries {
            total: pts.values().sum(),
            points: query
                .bucket_times()
                .map(|t| SplitPoint {
                    t: format_time(t),
                    count: pts.get(&t).copied().unwrap_or(0),
                })
                .collect(),
            value,
        })
        .collect();
    out.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.value.cmp(&b.value)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_toml;

    fn cfg() -> Config {
        parse_toml(include_str!("../../bpm.toml"), "bpm.toml").unwrap()
    }

    fn parse(q: &str) -> Result<SeriesQuery, QueryError> {
        SeriesQuery::parse(q, &cfg())
    }

    const T0: i64 = 1_795_000_000 / 3600 * 3600; // an hour boundary in 2026

    #[test]
    fn parses_and_aligns_the_range() {
        let q = parse("metric=login_views&step=minute&from=2026-11-24T07:00:30Z&to=2026-11-24T07:02:10%2B00:00").unwrap();
        assert_eq!(format_time(q.from), "2026-11-24T07:00:00Z");
        assert_eq!(format_time(q.to), "2026-11-24T07:03:00Z");
        assert_eq!(q.by, None);
        let q = parse(
            "metric=login_views&step=hour&from=2026-11-24T09:00:00%2B02:00&to=2026-11-24T08:00:00Z",
        )
        .unwrap();
        assert_eq!(format_time(q.from), "2026-11-24T07:00:00Z");
        assert_eq!(q.to - q.from, 3600);
    }

    #[test]
    fn rejects_bad_parameters() {
        let base = "step=minute&from=2026-11-24T07:00:00Z&to=2026-11-24T08:00:00Z";
        assert_eq!(parse(base), Err(QueryError::Missing("metric")));
        assert!(matches!(
            parse(&format!("metric=nope&{base}")),
            Err(QueryError::UnknownMetric(_))
        ));
        assert!(matches!(
            parse("metric=logins&step=minute&from=yesterday&to=2026-11-24T08:00:00Z"),
            Err(QueryError::BadTime { param: "from", .. })
        ));
        assert!(matches!(
            parse("metric=logins&step=week&from=2026-11-24T07:00:00Z&to=2026-11-24T08:00:00Z"),
            Err(QueryError::UnknownStep(_))
        ));
        assert_eq!(
            parse("metric=logins&step=minute&from=2026-11-24T08:00:00Z&to=2026-11-24T07:00:00Z"),
            Err(QueryError::EmptyRange)
        );
        assert_eq!(
            parse("metric=logins&step=minute&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z"),
            Err(QueryError::TooManyPoints(44_640))
        );
        assert!(matches!(
            parse(&format!("metric=marketing_views&{base}&by=browser")),
            Err(QueryError::UnknownDimension(_))
        ));
        assert!(matches!(
            parse(&format!("metric=logins&{base}&by=utm_source")),
            Err(QueryError::DimensionNotKept { .. })
        ));
        assert!(matches!(
            parse(&format!("metric=login_success&{base}&by=status")),
            Err(QueryError::DimensionNotKept { .. })
        ));
        assert!(parse(&format!("metric=logins&{base}&by=status")).is_ok());
        assert!(parse(&format!("metric=logins&{base}&by=kind")).is_ok());
        for e in [
            QueryError::Missing("x"),
            QueryError::EmptyRange,
            QueryError::TooManyPoints(9),
        ] {
            assert!(!e.to_string().is_empty());
        }
    }

    fn q(metric: &str, by: Option<Dim>, points: i64) -> SeriesQuery {
        SeriesQuery {
            metric: metric.into(),
            step: Resolution::Minute,
            from: T0,
            to: T0 + 60 * points,
            by,
        }
    }

    fn row(t: i64, m: &str, dim: &str, v: &str, n: u64) -> Row {
        Row(t, m.into(), dim.into(), v.into(), n)
    }

    #[test]
    fn counts_are_zero_filled_and_summed_across_shards() {
        let rows = vec![
            row(T0, "login_views", "count", "", 3),
            row(T0, "login_views", "count", "", 4), // another shard
            row(T0 + 120, "login_views", "bot", "", 2),
            row(T0, "login_views", "lat", "20", 7),
            row(T0, "logins", "count", "", 100), // another metric
        ];
        let SeriesResponse::Counts { points, .. } =
            build_response(&q("login_views", None, 3), &cfg(), rows)
        else {
            panic!()
        };
        assert_eq!(points.len(), 3);
        assert_eq!((points[0].count, points[0].bots), (7, 0));
        assert_eq!((points[1].count, points[1].bots), (0, 0));
        assert_eq!((points[2].count, points[2].bots), (0, 2));
        assert_eq!(
            points[0].p50_ms,
            Some(round_to(latency::representative_ms(20), 2))
        );
        assert_eq!(points[1].p99_ms, None);
        assert_eq!(points[2].t, format_time(T0 + 120));
        // Rows stored before agent kinds: counted hits read as browsers.
        assert_eq!(
            points[0].kinds,
            KindCounts {
                browser: 7,
                client: 0,
                bot: 0
            }
        );
        assert_eq!(points[2].kinds.bot, 2);
    }

    #[test]
    fn kinds_add_counted_and_not_counted_hits() {
        let rows = vec![
            row(T0, "logins", "count", "", 5),
            row(T0, "logins", "kind", "browser", 3),
            row(T0, "logins", "kind", "client", 2),
            row(T0, "logins", "bot", "", 4),
            row(T0, "marketing_views", "count", "", 6),
            row(T0, "marketing_views", "kind", "browser", 6),
            row(T0, "marketing_views", "client", "", 1),
            row(T0, "marketing_views", "bot", "", 9),
        ];
        let get = |m: &str| {
            let SeriesResponse::Counts { points, count, .. } =
                build_response(&q(m, None, 1), &cfg(), rows.clone())
            else {
                panic!()
            };
            (count, points[0].count, points[0].bots, points[0].kinds)
        };
        let kinds = |browser, client, bot| KindCounts {
            browser,
            client,
            bot,
        };
        assert_eq!(
            get("logins"),
            (vec!["browser", "client"], 5, 4, kinds(3, 2, 4))
        );
        assert_eq!(
            get("marketing_views"),
            (vec!["browser"], 6, 9, kinds(6, 1, 9))
        );
        let json =
            serde_json::to_value(build_response(&q("logins", None, 1), &cfg(), rows)).unwrap();
        assert_eq!(json["count"], serde_json::json!(["browser", "client"]));
        assert_eq!(
            json["points"][0]["kinds"],
            serde_json::json!({"browser": 3, "client": 2, "bot": 4})
        );
    }

    #[test]
    fn ratio_needs_its_minimum_denominator() {
        let rows = vec![
            row(T0, "dashboard_views", "count", "", 15),
            row(T0, "login_views", "count", "", 20),
            row(T0 + 60, "dashboard_views", "count", "", 5),
            row(T0 + 60, "login_views", "count", "", 19),
        ];
        let SeriesResponse::Ratio { points, .. } =
            build_response(&q("login_success", None, 3), &cfg(), rows)
        else {
            panic!()
        };
        assert_eq!(points[0].value, Some(75.0));
        assert_eq!(
            (points[1].value, points[1].numerator, points[1].denominator),
            (None, 5, 19)
        );
        assert_eq!(points[2].value, None);
        let json = serde_json::to_value(&points[0]).unwrap();
        assert_eq!(json["value"], 75.0);
    }

    #[test]
    fn split_keeps_top_k_and_sums_to_the_count() {
        let mut config = cfg();
        config.storage.max_dimension_values = 2;
        let rows = vec![
            row(T0, "marketing_views", "utm_source", "a", 5),
            row(T0, "marketing_views", "utm_source", "b", 3),
            row(T0 + 60, "marketing_views", "utm_source", "b", 3),
            row(T0, "marketing_views", "utm_source", "c", 1),
            row(T0, "marketing_views", "utm_source", "other", 2),
        ];
        let query = q(
            "marketing_views",
            Some(Dim::Referral(ReferralDimension::UtmSource)),
            2,
        );
        let SeriesResponse::Split { series, by, .. } = build_response(&query, &config, rows) else {
            panic!()
        };
        assert_eq!(by, "utm_source");
        let got: Vec<(&str, u64)> = series.iter().map(|s| (s.value.as_str(), s.total)).collect();
        assert_eq!(got, vec![("b", 6), ("a", 5), ("other", 3)]);
        assert_eq!(series[0].points.len(), 2);
        assert_eq!(series[0].points[1].count, 3);
    }

    #[test]
    fn shard_query_reads_only_what_is_needed() {
        let config = cfg();
        let sq = parse(
            "metric=login_success&step=hour&from=2026-11-24T07:00:00Z&to=2026-11-24T08:00:00Z",
        )
        .unwrap()
        .shard_query(&config);
        assert_eq!(sq.metrics, vec!["dashboard_views", "login_views"]);
        assert_eq!(sq.dims, vec!["count"]);
        let sq = parse("metric=marketing_views&step=day&from=2026-11-24T07:00:00Z&to=2026-11-25T08:00:00Z&by=source")
            .unwrap()
            .shard_query(&config);
        assert_eq!(sq.dims, vec!["source"]);
        assert_eq!(sq.to - sq.from, 2 * 86_400);
    }
}
