//! The unique-visitors API: parsing `/api/uniques` parameters, what a
//! counter shard is asked for, and merging the shards' hourly sketches into
//! the answer.
//!
//! Invariants: a response has one point per UTC hour in `[from, to)`
//! (hours without visitors are 0); the range's `uniques` is the estimate
//! of the union of all its hourly sketches from every shard, never a sum of
//! hours, so a visitor seen in several hours of one day counts once.

use crate::config::{Config, MetricKind};
use crate::report::query::{metric_named, query_params, time_range, QueryError};
use crate::time::format_time;
use crate::time::Resolution;
use crate::time::HOUR;
use crate::windows::sketch::{VisitorSketch, STANDARD_ERROR};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most hourly points one request may ask for (31 days).
pub const MAX_HOURS: i64 = 31 * 24;
/// Longest range for the total alone (`points=none`): the longest hour
/// retention the config allows.
pub const MAX_TOTAL_HOURS: i64 = 3_660 * 24;

/// A validated `/api/uniques` request; `from` and `to` are aligned to
/// whole UTC hours (`from` down, `to` up; `to` exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniquesQuery {
    pub metric: String,
    pub from: i64,
    pub to: i64,
    /// Hourly points (`points=hour`, the default), or the total alone
    /// (`points=none`), which allows ranges up to [`MAX_TOTAL_HOURS`].
    pub hourly: bool,
}

/// What a shard is asked for: the sketches of `metric` for the hours in
/// `[from, to)`, one per hour when `hourly`, else merged into one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SketchQuery {
    pub metric: String,
    pub from: i64,
    pub to: i64,
    pub hourly: bool,
}

/// A shard's answer: `(hour, sketch)`, hours without visitors left out
/// (merged: one entry at the query's `from`, if any).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSketches {
    pub sketches: Vec<(i64, VisitorSketch)>,
}

impl UniquesQuery {
    /// Parses the raw query string of a uniques request.
    pub fn parse(query: &str, config: &Config) -> Result<Self, QueryError> {
        let params = query_params(query);
        let get = |k: &'static str| params.get(k).map(String::as_str);
        let name = get("metric").ok_or(QueryError::Missing("metric"))?;
        let metric = metric_named(config, name)?;
        if matches!(metric.kind, MetricKind::Ratio(_)) {
            return Err(QueryError::NotCounted(metric.name.clone()));
        }
        let (from, to) = time_range(get("from"), get("to"))?;
        let hourly = match get("points") {
            None | Some("" | "hour") => true,
            Some("none") => false,
            Some(other) => return Err(QueryError::UnknownPoints(other.into())),
        };
        let from = Resolution::Hour.floor(from);
        let to = Resolution::Hour.floor(to.saturating_add(HOUR - 1));
        let hours = (to - from) / HOUR;
        let max = if hourly { MAX_HOURS } else { MAX_TOTAL_HOURS };
        if hours > max {
            return Err(QueryError::TooManyHours { hours, max });
        }
        Ok(UniquesQuery {
            metric: metric.name.clone(),
            from,
            to,
            hourly,
        })
    }

    /// The sketches to read from every shard: hourly, or merged by each.
    pub fn shard_query(&self) -> SketchQuery {
        SketchQuery {
            metric: self.metric.clone(),
            from: self.from,
            to: self.to,
            hourly: self.hourly,
        }
    }
}

/// One hour's unique visitors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UniquesPoint {
    pub t: String,
    pub uniques: u64,
}

/// The `/api/uniques` answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UniquesResponse {
    pub metric: String,
    pub from: String,
    pub to: String,
    /// Distinct visitors over the whole range (the union of its hours).
    pub uniques: u64,
    /// Relative standard error of every estimate here.
    pub error: f64,
    /// One per hour; empty with `points=none`.
    pub points: Vec<UniquesPoint>,
}

/// Merges `(hour, sketch)` pairs from any number of shards into one sketch
/// per hour.
pub fn merge_hourly(
    parts: impl IntoIterator<Item = (i64, VisitorSketch)>,
) -> BTreeMap<i64, VisitorSketch> {
    let mut hours: BTreeMap<i64, VisitorSketch> = BTreeMap::new();
    for (hour, sketch) in parts {
        hours.entry(hour).or_default().merge(&sketch);
    }
    hours
}

/// The answer to `query` from every shard's sketches (hourly, or each
/// shard's merged one for `points=none`).
pub fn build_response(
    query: &UniquesQuery,
    parts: impl IntoIterator<Item = (i64, VisitorSketch)>,
) -> UniquesResponse {
    let hours = merge_hourly(parts);
    let mut total = VisitorSketch::new();
    for sketch in hours.values() {
        total.merge(sketch);
    }
    let hours_in_range = if query.hourly {
        (query.to - query.from) / HOUR
    } else {
        0
    };
    let points = (0..hours_in_range)
        .map(|i| query.from + i * HOUR)
        .map(|t| UniquesPoint {
            t: format_time(t),
            uniques: hours.get(&t).map_or(0, VisitorSketch::count),
        })
        .collect();
    UniquesResponse {
        metric: query.metric.clone(),
        from: format_time(query.from),
        to: format_time(query.to),
        uniques: total.count(),
        error: STANDARD_ERROR,
        points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_toml;

    fn config() -> Config {
        parse_toml(
            r#"
[[metric]]
name = "views"
stage = "referral"
description = "d"
match = { path = "/" }

[[metric]]
name = "signups"
stage = "activation"
description = "d"
match = { path = "/signup" }

[[metric]]
name = "rate"
stage = "activation"
description = "d"
numerator = "signups"
denominator = "views"
"#,
            "test.toml",
        )
        .unwrap()
    }

    fn parse(q: &str) -> Result<UniquesQuery, QueryError> {
        UniquesQuery::parse(q, &config())
    }

    #[test]
    fn parses_and_aligns_to_hours() {
        let q = parse("metric=views&from=2026-01-01T10:30:00Z&to=2026-01-01T12:00:01Z").unwrap();
        assert_eq!(format_time(q.from), "2026-01-01T10:00:00Z");
        assert_eq!(format_time(q.to), "2026-01-01T13:00:00Z");
        assert!(q.shard_query().hourly);
        assert!(matches!(
            parse("from=2026-01-01T10:00:00Z&to=2026-01-01T12:00:00Z"),
            Err(QueryError::Missing("metric"))
        ));
        assert!(matches!(
            parse("metric=nope&from=2026-01-01T10:00:00Z&to=2026-01-01T12:00:00Z"),
            Err(QueryError::UnknownMetric(_))
        ));
        assert_eq!(
            parse("metric=rate&from=2026-01-01T10:00:00Z&to=2026-01-01T12:00:00Z"),
            Err(QueryError::NotCounted("rate".into()))
        );
        assert!(matches!(
            parse("metric=views&from=yesterday&to=2026-01-01T12:00:00Z"),
            Err(QueryError::BadTime { .. })
        ));
        assert!(matches!(
            parse("metric=views&from=2026-01-01T12:00:00Z&to=2026-01-01T12:00:00Z"),
            Err(QueryError::EmptyRange)
        ));
        assert_eq!(
            parse("metric=views&from=2026-01-01T00:00:00Z&to=2026-02-01T01:00:00Z"),
            Err(QueryError::TooManyHours {
                hours: 745,
                max: MAX_HOURS
            })
        );
        assert!(parse("metric=views&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z").is_ok());
        // The total alone may span a year and more.
        let year =
            parse("metric=views&from=2025-01-01T00:00:00Z&to=2026-02-01T00:00:00Z&points=none")
                .unwrap();
        assert!(!year.shard_query().hourly);
        assert_eq!(
            parse("metric=views&from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00Z&points=day"),
            Err(QueryError::UnknownPoints("day".into()))
        );
    }

    #[test]
    fn the_range_total_is_a_union_not_a_sum() {
        let q = parse("metric=views&from=2026-01-01T10:00:00Z&to=2026-01-01T13:00:00Z").unwrap();
        let sketch = |ids: std::ops::Range<u64>| {
            let mut s = VisitorSketch::new();
            for i in ids {
                s.insert_hash(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x1234_5678);
            }
            s
        };
        let h10 = q.from;
        // Two shards saw visitors 0..30 and 20..50 at 10:00; shard one saw
        // 0..10 again at 12:00. Nothing at 11:00.
        let r = build_response(
            &q,
            vec![
                (h10, sketch(0..30)),
                (h10, sketch(20..50)),
                (h10 + 2 * HOUR, sketch(0..10)),
            ],
        );
        let points: Vec<u64> = r.points.iter().map(|p| p.uniques).collect();
        assert_eq!(points, vec![50, 0, 10]);
        assert_eq!(r.uniques, 50);
        assert_eq!(r.points[1].t, "2026-01-01T11:00:00Z");
        assert_eq!(r.error, STANDARD_ERROR);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["from"], "2026-01-01T10:00:00Z");
        assert_eq!(json["to"], "2026-01-01T13:00:00Z");
        // points=none: shards send one merged sketch each, at `from`.
        let total = UniquesQuery {
            hourly: false,
            ..q.clone()
        };
        let r = build_response(&total, vec![(h10, sketch(0..30)), (h10, sketch(25..40))]);
        assert_eq!(r.uniques, 40);
        assert!(r.points.is_empty());
    }
}
