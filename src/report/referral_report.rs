//! The referral dashboard's report: a referral metric's views over a range
//! next to a comparison period, and its sources, campaigns and landing pages
//! with counts, shares and changes — as JSON, or as the same numbers in CSV.
//!
//! Invariants: the comparison period has the same length and starts the same
//! local weekday and time (it is shifted back by whole weeks on the site's
//! wall clock); point `i` of the comparison is the step `i` of that period;
//! a table's shares are of the metric's total in the range, so the rows of a
//! dimension sum to 1 (every counted hit has a value for every dimension it
//! keeps); the CSV carries exactly the numbers of the JSON.

use crate::config::{Config, MetricKind, ReferralDimension};
use crate::count::tally::{Dim, Row, OTHER};
use crate::decimal::round_to;
use crate::report::query::{metric_named, query_params, time_range, QueryError};
use crate::report::series::{ceil, ShardQuery};
use crate::time::format_time;
use crate::time::Resolution;
use crate::time::WallClock;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Longest range a report covers (hour rows are kept 13 months).
pub const MAX_RANGE_SECS: i64 = 400 * 86_400;
/// Rows per table; the rest are folded into `other`.
pub const MAX_TABLE_ROWS: usize = 50;

const WEEK_DAYS: i64 = 7;

/// What the report is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// The period just before, aligned by weekday: shifted back by the
    /// range rounded up to whole weeks.
    Previous,
    /// The same period four weeks earlier.
    #[serde(rename = "4w")]
    FourWeeks,
    None,
}

impl Compare {
    /// How many days back the comparison period starts.
    pub fn days_back(self, range_secs: i64) -> Option<i64> {
        match self {
            Compare::Previous => {
                let week = WEEK_DAYS * 86_400;
                Some(((range_secs + week - 1) / week).max(1) * WEEK_DAYS)
            }
            Compare::FourWeeks => Some(4 * WEEK_DAYS),
            Compare::None => None,
        }
    }
}

/// A validated `/api/referrals` request.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportQuery {
    pub metric: String,
    pub dims: Vec<ReferralDimension>,
    pub step: Resolution,
    pub from: i64,
    pub to: i64,
    pub compare: Compare,
    /// Start of the comparison period (same length as the range).
    pub compare_from: Option<i64>,
    pub csv: bool,
}

/// The step a range is shown in: minutes up to 2 hours, hours up to 8
/// days, days beyond.
pub fn step_for(range_secs: i64) -> Resolution {
    if range_secs <= 2 * 3600 {
        Resolution::Minute
    } else if range_secs <= 8 * 86_400 {
        Resolution::Hour
    } else {
        Resolution::Day
    }
}

/// The first counted metric that keeps a referral dimension.
pub fn default_metric(config: &Config) -> Option<&str> {
    config.metrics.iter().find_map(|m| match &m.kind {
        MetricKind::Counted { dimensions, .. } if !dimensions.is_empty() => Some(m.name.as_str()),
        _ => None,
    })
}

impl ReportQuery {
    pub fn parse(query: &str, config: &Config, clock: &dyn WallClock) -> Result<Self, QueryError> {
        let params = query_params(query.trim_start_matches('?'));
        let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let name = match get("metric") {
            Some(m) => m,
            None => default_metric(config).ok_or(QueryError::Missing("metric"))?,
        };
        let metric = metric_named(config, name)?;
        let dims = match &metric.kind {
            MetricKind::Counted { dimensions, .. } if !dimensions.is_empty() => {
                ReferralDimension::ALL
                    .into_iter()
                    .filter(|d| dimensions.contains(d))
                    .collect()
            }
            _ => return Err(QueryError::NotAReferralMetric(name.to_string())),
        };
        let (from, to) = time_range(get("from"), get("to"))?;
        if to - from > MAX_RANGE_SECS {
            return Err(QueryError::RangeTooLong);
        }
        let step = step_for(to - from);
        let (from, to) = (step.floor(from), ceil(step, to));
        let compare = match get("compare").unwrap_or("previous") {
            "previous" => Compare::Previous,
            "4w" => Compare::FourWeeks,
            "none" => Compare::None,
            other => return Err(QueryError::UnknownCompare(other.into())),
        };
        let csv = match get("format").unwrap_or("json") {
            "json" => false,
            "csv" => true,
            other => return Err(QueryError::UnknownFormat(other.into())),
        };
        let compare_from = compare
            .days_back(to - from)
            .map(|days| step.floor(clock.days_before(from, days)));
        Ok(ReportQuery {
            metric: metric.name.clone(),
            dims,
            step,
            from,
            to,
            compare,
            compare_from,
            csv,
        })
    }

    fn shard_query(&self, from: i64) -> ShardQuery {
        let mut dims = vec![Dim::Count.as_str().to_string()];
        dims.extend(self.dims.iter().map(|d| d.as_str().to_string()));
        ShardQuery {
            step: self.step,
            from,
            to: from + (self.to - self.from),
            metrics: vec![self.metric.clone()],
            dims,
        }
    }

    /// What to read from the shards: the range, then the comparison.
    pub fn shard_queries(&self) -> (ShardQuery, Option<ShardQuery>) {
        (
            self.shard_query(self.from),
            self.compare_from.map(|f| self.shard_query(f)),
        )
    }

    /// The `[from, to)` ranges whose unique visitors the report shows:
    /// its own, then its comparison's (as long, ending where it starts
    /// being compared from).
    pub fn uniques_ranges(&self) -> ((i64, i64), Option<(i64, i64)>) {
        let len = self.to - self.from;
        (
            (self.from, self.to),
            self.compare_from.map(|f| (f, f + len)),
        )
    }
}

impl Uniques {
    /// The report's unique visitors from the sketches' estimates.
    pub fn from_estimates(count: f64, previous: Option<f64>) -> Self {
        Uniques {
            count: count.round() as u64,
            previous: previous.map(|p| p.round() as u64),
            error: crate::windows::sketch::STANDARD_ERROR,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Period {
    pub mode: Compare,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Total {
    pub count: u64,
    pub previous: Option<u64>,
    /// `count / previous − 1`; `None` without a comparison or when it was 0.
    pub change: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Uniques {
    pub count: u64,
    pub previous: Option<u64>,
    /// Relative standard error of the estimates.
    pub error: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReportPoint {
    pub t: String,
    pub count: u64,
    pub previous: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TableRow {
    pub value: String,
    pub count: u64,
    /// Of the range's total; 0 when the total is 0.
    pub share: f64,
    pub previous: Option<u64>,
    pub change: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReferralReport {
    pub metric: String,
    pub from: String,
    pub to: String,
    pub step: &'static str,
    pub compare: Option<Period>,
    pub total: Total,
    pub uniques: Option<Uniques>,
    pub points: Vec<ReportPoint>,
    pub tables: BTreeMap<&'static str, Vec<TableRow>>,
}

fn change(now: u64, before: Option<u64>) -> Option<f64> {
    match before {
        Some(b) if b > 0 => Some(round_to(now as f64 / b as f64 - 1.0, 4)),
        _ => None,
    }
}

/// Per-step counts and per-(dimension, value) totals of one period.
struct Sums {
    steps: Vec<u64>,
    values: HashMap<(String, String), u64>,
}

fn sum_rows(rows: &[Row], from: i64, step: i64, len: usize) -> Sums {
    let mut steps = vec![0u64; len];
    let mut values: HashMap<(String, String), u64> = HashMap::new();
    for r in rows {
        if r.dim() == Dim::Count.as_str() {
            let i = usize::try_from((r.t() - from).div_euclid(step)).ok();
            if let Some(slot) = i.and_then(|i| steps.get_mut(i)) {
                *slot = slot.saturating_add(r.n());
            }
        } else {
            let e = values
                .entry((r.dim().to_string(), r.value().to_string()))
                .or_insert(0);
            *e = e.saturating_add(r.n());
        }
    }
    Sums { steps, values }
}

/// Table order: count, then previous count, descending; then by value.
fn largest_first(a: &(&str, u64, u64), b: &(&str, u64, u64)) -> std::cmp::Ordering {
    b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(b.0))
}

/// Builds the report from the rows of the range and of the comparison.
pub fn build(
    q: &ReportQuery,
    rows: &[Row],
    previous: Option<&[Row]>,
    uniques: Option<Uniques>,
) -> ReferralReport {
    let step = q.step.seconds();
    let len = usize::try_from((q.to - q.from) / step).unwrap_or(0);
    let now = sum_rows(rows, q.from, step, len);
    let before = q
        .compare_from
        .zip(previous)
        .map(|(f, rows)| sum_rows(rows, f, step, len));
    let total: u64 = now.steps.iter().sum();
    let total_before: Option<u64> = before.as_ref().map(|b| b.steps.iter().sum());
    let points = now
        .steps
        .iter()
        .enumerate()
        .map(|(i, c)| ReportPoint {
            t: format_time(q.from + i as i64 * step),
            count: *c,
            previous: before.as_ref().and_then(|b| b.steps.get(i).copied()),
        })
        .collect();
    let mut tables = BTreeMap::new();
    for d in &q.dims {
        let dim = d.as_str();
        let mut values: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for ((k, v), n) in &now.values {
            if k == dim {
                values.entry(v.as_str()).or_default().0 += n;
            }
        }
        if let Some(b) = &before {
            for ((k, v), n) in &b.values {
                if k == dim {
                    values.entry(v.as_str()).or_default().1 += n;
                }
            }
        }
        let mut list: Vec<(&str, u64, u64)> =
            values.into_iter().map(|(v, (n, p))| (v, n, p)).collect();
        list.sort_by(largest_first);
        if list.len() > MAX_TABLE_ROWS {
            let rest: Vec<(&str, u64, u64)> = list.split_off(MAX_TABLE_ROWS - 1);
            let (n, p) = rest
                .iter()
                .fold((0, 0), |acc, r| (acc.0 + r.1, acc.1 + r.2));
            match list.iter_mut().find(|r| r.0 == OTHER) {
                Some(o) => {
                    o.1 += n;
                    o.2 += p;
                }
                None => list.push((OTHER, n, p)),
            }
            list.sort_by(largest_first);
        }
        let rows = list
            .into_iter()
            .map(|(value, count, prev)| {
                let previous = before.as_ref().map(|_| prev);
                TableRow {
                    value: value.to_string(),
                    count,
                    share: if total > 0 {
                        round_to(count as f64 / total as f64, 4)
                    } else {
                        0.0
                    },
                    previous,
                    change: change(count, previous),
                }
            })
            .collect();
        tables.insert(dim, rows);
    }
    ReferralReport {
        metric: q.metric.clone(),
        from: format_time(q.from),
        to: format_time(q.to),
        step: q.step.as_str(),
        compare: q.compare_from.map(|f| Period {
            mode: q.compare,
            from: format_time(f),
            to: format_time(f + (q.to - q.from)),
        }),
        total: Total {
            count: total,
            previous: total_before,
            change: change(total, total_before),
        },
        uniques,
        points,
        tables,
    }
}

fn csv_field(s: &str) -> String {
    // Formula-looking cells are prefixed so a spreadsheet shows them as text.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The report's tables as CSV: `table,value,count,share,previous,change`,
/// the total first.
pub fn to_csv(r: &ReferralReport) -> String {
    let mut out = String::from("table,value,count,share,previous,change\n");
    out.push_str(&format!(
        "total,{},{},1,{},{}\n",
        csv_field(&r.metric),
        r.total.count,
        opt(r.total.previous),
        opt(r.total.change)
    ));
    for (table, rows) in &r.tables {
        for row in rows {
            out.push_str(&format!(
                "{table},{},{},{},{},{}\n",
                csv_field(&row.value),
                row.count,
                row.share,
                opt(row.previous),
                opt(row.change)
            ));
        }
    }
    out
}

/// `referrals-{metric}-{from}-{to}.csv`, with only filename-safe characters.
pub fn csv_filename(r: &ReferralReport) -> String {
    let name = format!("referrals-{}-{}-{}.csv", r.metric, r.from, r.to);
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Utc;

    fn config() -> Config {
        crate::config::parse_toml(include_str!("../../bpm.toml"), "bpm.toml").unwrap()
    }

    fn row(t: i64, dim: &str, value: &str, n: u64) -> Row {
        Row(t, "marketing_views".into(), dim.into(), value.into(), n)
    }

    /// 2026-01-05 (a Monday) 00:00 UTC.
    const MON: i64 = 1_767_571_200;

    fn query(q: &str) -> ReportQuery {
        ReportQuery::parse(q, &config(), &Utc).unwrap()
    }

    #[test]
    fn the_comparison_starts_on_the_same_weekday() {
        let day = query("from=2026-01-05T00:00:00Z&to=2026-01-06T00:00:00Z");
        assert_eq!(day.metric, "marketing_views");
        assert_eq!(day.step, Resolution::Hour);
        assert_eq!(day.compare_from, Some(MON - 7 * 86_400));
        let month = query("from=2026-01-05T00:00:00Z&to=2026-02-04T00:00:00Z&compare=previous");
        assert_eq!(month.step, Resolution::Day);
        assert_eq!(
            month.compare_from,
            Some(MON - 35 * 86_400),
            "30 days → 5 weeks back"
        );
        let four = query("from=2026-01-05T00:00:00Z&to=2026-01-05T01:00:00Z&compare=4w");
        assert_eq!(four.step, Resolution::Minute);
        assert_eq!(four.compare_from, Some(MON - 28 * 86_400));
        let none = query("from=2026-01-05T00:00:00Z&to=2026-01-06T00:00:00Z&compare=none");
        assert_eq!(none.compare_from, None);
        // In Berlin, a week back across the DST change is 167 or 169 hours.
        let cfg = config();
        let summer = ReportQuery::parse(
            "from=2026-04-01T10:00:00Z&to=2026-04-01T11:00:00Z&compare=previous",
            &cfg,
            &cfg.time,
        )
        .unwrap();
        assert_eq!(
            summer.from - summer.compare_from.unwrap(),
            7 * 86_400 - 3600
        );
    }

    #[test]
    fn uniques_cover_the_range_and_a_comparison_as_long() {
        let day = query("from=2026-01-05T00:00:00Z&to=2026-01-06T00:00:00Z");
        assert_eq!(
            day.uniques_ranges(),
            (
                (MON, MON + 86_400),
                Some((MON - 7 * 86_400, MON - 6 * 86_400))
            )
        );
        let none = query("from=2026-01-05T00:00:00Z&to=2026-01-06T00:00:00Z&compare=none");
        assert_eq!(none.uniques_ranges(), ((MON, MON + 86_400), None));
        let u = Uniques::from_estimates(41.6, Some(-0.2));
        assert_eq!((u.count, u.previous), (42, Some(0)));
    }

    #[test]
    fn bad_parameters_are_named() {
        let cfg = config();
        let err = |q: &str| ReportQuery::parse(q, &cfg, &Utc).unwrap_err().to_string();
        assert!(err("from=2026-01-05T00:00:00Z").contains("`to`"));
        assert!(
            err("metric=logins&from=2026-01-05T00:00:00Z&to=2026-01-06T00:00:00Z")
                .contains("no referral dimensions")
        );
        assert!(
            err("from=2026-01-05T00:00:00Z&to=2026-01-06T00:00:00Z&compare=1y").contains("compare")
        );
        assert!(
            err("from=2026-01-05T00:00:00Z&to=2026-01-06T00:00:00Z&format=xml").contains("format")
        );
        assert!(err("from=2020-01-05T00:00:00Z&to=2026-01-06T00:00:00Z").contains("400 days"));
        assert!(err("from=2026-01-06T00:00:00Z&to=2026-01-05T00:00:00Z").contains("later"));
    }

    #[test]
    fn tables_have_counts_shares_and_changes() {
        let q = query("from=2026-01-05T00:00:00Z&to=2026-01-05T02:00:00Z");
        assert_eq!(q.step, Resolution::Minute);
        let now = vec![
            row(MON, "count", "", 6),
            row(MON + 60, "count", "", 4),
            row(MON, "source", "google", 6),
            row(MON + 60, "source", "direct", 4),
            row(MON, "utm_campaign", "spring", 2),
            row(MON, "utm_campaign", "(none)", 8),
            // Outside the range: ignored for points.
            row(MON + 7200, "count", "", 99),
        ];
        let before_start = q.compare_from.unwrap();
        let before = vec![
            row(before_start, "count", "", 5),
            row(before_start, "source", "google", 3),
            row(before_start, "source", "bing", 2),
        ];
        let r = build(&q, &now, Some(&before), None);
        assert_eq!(r.points.len(), 120);
        assert_eq!(r.points[0].count, 6);
        assert_eq!(r.points[0].previous, Some(5));
        assert_eq!(r.points[1].previous, Some(0));
        assert_eq!(r.total.count, 10);
        assert_eq!(r.total.previous, Some(5));
        assert_eq!(r.total.change, Some(1.0));
        let source = &r.tables["source"];
        let values: Vec<(&str, u64, f64, Option<u64>)> = source
            .iter()
            .map(|r| (r.value.as_str(), r.count, r.share, r.previous))
            .collect();
        assert_eq!(
            values,
            vec![
                ("google", 6, 0.6, Some(3)),
                ("direct", 4, 0.4, Some(0)),
                ("bing", 0, 0.0, Some(2)),
            ]
        );
        assert_eq!(source[0].change, Some(1.0));
        assert_eq!(source[1].change, None, "no change against 0");
        assert_eq!(source[2].change, Some(-1.0));
        let shares: f64 = r.tables["utm_campaign"].iter().map(|r| r.share).sum();
        assert!((shares - 1.0).abs() < 1e-9);
        assert!(r.tables.contains_key("landing"));
        let csv = to_csv(&r);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "table,value,count,share,previous,change");
        assert_eq!(lines[1], "total,marketing_views,10,1,5,1");
        assert!(lines.contains(&"source,google,6,0.6,3,1"), "{csv}");
        assert!(lines.contains(&"source,direct,4,0.4,0,"), "{csv}");
        assert!(lines.contains(&"utm_campaign,(none),8,0.8,0,"), "{csv}");
        assert_eq!(
            csv_filename(&r),
            "referrals-marketing_views-2026-01-05T00-00-00Z-2026-01-05T02-00-00Z.csv"
        );
    }

    #[test]
    fn without_a_comparison_there_are_no_previous_numbers() {
        let q = query("from=2026-01-05T00:00:00Z&to=2026-01-06T00:00:00Z&compare=none");
        let r = build(
            &q,
            &[row(MON, "count", "", 3), row(MON, "source", "x", 3)],
            None,
            None,
        );
        assert_eq!(r.compare, None);
        assert_eq!(r.total.previous, None);
        assert_eq!(r.points[0].previous, None);
        assert_eq!(r.tables["source"][0].previous, None);
        assert_eq!(
            to_csv(&r).lines().nth(1),
            Some("total,marketing_views,3,1,,")
        );
    }

    #[test]
    fn long_tables_fold_into_other_and_hostile_values_stay_text() {
        let q = query("from=2026-01-05T00:00:00Z&to=2026-01-06T00:00:00Z&compare=none");
        let mut rows = vec![row(MON, "count", "", 1000)];
        for i in 0..80 {
            rows.push(row(MON, "utm_source", &format!("s{i:02}"), 10));
        }
        rows.push(row(MON, "utm_source", "other", 5));
        rows.push(row(MON, "utm_source", "=cmd|' /C calc'!A0,\"x\"", 195));
        let r = build(&q, &rows, None, None);
        let t = &r.tables["utm_source"];
        assert_eq!(t.len(), MAX_TABLE_ROWS);
        assert_eq!(t.iter().map(|r| r.count).sum::<u64>(), 1000);
        let other = t.iter().find(|r| r.value == "other").unwrap();
        assert_eq!(other.count, 5 + 10 * (81 - MAX_TABLE_ROWS as u64 + 1));
        let csv = to_csv(&r);
        assert!(csv.contains("\"'=cmd|' /C calc'!A0,\"\"x\"\"\""), "{csv}");
    }
}
