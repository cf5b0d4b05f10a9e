//! Reading a read-path request's query string: its parameters
//! ([`query_params`]), the metric it names, its time range, and every way
//! a query is refused ([`QueryError`], one enum for `/api/series`,
//! `/api/uniques`, `/api/referrals` and `/api/overview`).
//!
//! Invariants: a refused query is answered `400` with the error's message,
//! which names the parameter at fault and quotes what it got (a value from
//! the request is cut to 64 characters); parsing reads at most 32 pairs,
//! so a hostile query string cannot make it expensive.

use crate::config::{Config, Metric};
use crate::report::series::MAX_POINTS;
use crate::report::uniques::MAX_TOTAL_HOURS;
use std::collections::HashMap;
use std::fmt;

/// A bad request to a read-path endpoint, answered with `400` and this
/// message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    Missing(&'static str),
    UnknownMetric(String),
    /// Mission Control's `metric` filter names no metric (its own wording).
    NoMetricNamed(String),
    BadTime {
        param: &'static str,
        value: String,
    },
    UnknownStep(String),
    UnknownDimension(String),
    DimensionNotKept {
        metric: String,
        dim: String,
    },
    EmptyRange,
    TooManyPoints(i64),
    /// Ratio metrics have no visitors of their own.
    NotCounted(String),
    TooManyHours {
        hours: i64,
        max: i64,
    },
    UnknownPoints(String),
    UnknownCompare(String),
    UnknownFormat(String),
    NotAReferralMetric(String),
    /// A referral report covers at most 400 days.
    RangeTooLong,
    UnknownRange(String),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Missing(p) => write!(f, "missing query parameter `{p}`"),
            QueryError::UnknownMetric(m) => write!(f, "unknown metric {m:?} (see /api/metrics)"),
            QueryError::NoMetricNamed(m) => write!(f, "no metric named {m:?}"),
            QueryError::BadTime { param, value } => write!(
                f,
                "`{param}` must be an RFC 3339 time like 2026-01-31T09:00:00Z, got {value:?}"
            ),
            QueryError::UnknownStep(s) => {
                write!(f, "`step` must be minute, hour or day, got {s:?}")
            }
            QueryError::UnknownDimension(d) => write!(
                f,
                "`by` must be one of status, kind, source, utm_source, utm_medium, utm_campaign, landing; got {d:?}"
            ),
            QueryError::DimensionNotKept { metric, dim } => {
                write!(f, "metric {metric:?} does not keep the dimension {dim:?}")
            }
            QueryError::EmptyRange => write!(f, "`to` must be later than `from`"),
            QueryError::TooManyPoints(n) => write!(
                f,
                "the range has {n} points at this step; at most {MAX_POINTS} per request (use a larger step)"
            ),
            QueryError::NotCounted(m) => write!(
                f,
                "metric {m:?} is a ratio; unique visitors are kept for counted metrics"
            ),
            QueryError::TooManyHours { hours, max } => write!(
                f,
                "the range has {hours} hours; at most {max} per request \
                 (with points=none, at most {MAX_TOTAL_HOURS})"
            ),
            QueryError::UnknownPoints(p) => {
                write!(f, "`points` must be hour or none, got {p:?}")
            }
            QueryError::UnknownCompare(c) => {
                write!(f, "`compare` must be previous, 4w or none, got {c:?}")
            }
            QueryError::UnknownFormat(c) => {
                write!(f, "`format` must be json or csv, got {c:?}")
            }
            QueryError::NotAReferralMetric(m) => {
                write!(f, "metric {m:?} keeps no referral dimensions")
            }
            QueryError::RangeTooLong => write!(f, "the range is at most 400 days"),
            QueryError::UnknownRange(r) => {
                write!(f, "range must be 24h or 7d, not {r:?}")
            }
        }
    }
}

impl std::error::Error for QueryError {}

/// A query string's parameters: the first value of each name, at most 32
/// pairs read (a hostile query string cannot make parsing expensive).
pub fn query_params(query: &str) -> HashMap<String, String> {
    let mut params: HashMap<String, String> = HashMap::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()).take(32) {
        params
            .entry(k.into_owned())
            .or_insert_with(|| v.into_owned());
    }
    params
}

/// The configured metric named by a query's `metric` parameter.
pub fn metric_named<'c>(config: &'c Config, name: &str) -> Result<&'c Metric, QueryError> {
    config
        .metric(name)
        .ok_or_else(|| QueryError::UnknownMetric(name.to_string()))
}

/// The RFC 3339 time of parameter `param`.
pub fn parse_time(param: &'static str, raw: &str) -> Result<i64, QueryError> {
    crate::time::parse_rfc3339(raw).ok_or_else(|| QueryError::BadTime {
        param,
        value: raw.chars().take(64).collect(),
    })
}

/// The range `[from, to)` of the required parameters `from` and `to`
/// (their values, `None` when absent): both RFC 3339 times, `to` later.
pub fn time_range(from: Option<&str>, to: Option<&str>) -> Result<(i64, i64), QueryError> {
    let from = parse_time("from", from.ok_or(QueryError::Missing("from"))?)?;
    let to = parse_time("to", to.ok_or(QueryError::Missing("to"))?)?;
    if to <= from {
        return Err(QueryError::EmptyRange);
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_value_counts_and_at_most_32_pairs_are_read() {
        let p = query_params("a=1&a=2&b=x%20y");
        assert_eq!((p["a"].as_str(), p["b"].as_str()), ("1", "x y"));
        let long: Vec<String> = (0..40).map(|i| format!("k{i}=v")).collect();
        assert_eq!(query_params(&long.join("&")).len(), 32);
    }

    #[test]
    fn a_range_needs_both_ends_in_order() {
        let t = |s: &str| crate::time::parse_rfc3339(s).unwrap();
        let (a, b) = ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");
        assert_eq!(time_range(Some(a), Some(b)), Ok((t(a), t(b))));
        assert_eq!(time_range(None, Some(b)), Err(QueryError::Missing("from")));
        assert_eq!(time_range(Some(a), None), Err(QueryError::Missing("to")));
        assert_eq!(time_range(Some(b), Some(a)), Err(QueryError::EmptyRange));
        assert_eq!(time_range(Some(a), Some(a)), Err(QueryError::EmptyRange));
        let long = "x".repeat(100);
        assert_eq!(
            time_range(Some(a), Some(&long)),
            Err(QueryError::BadTime {
                param: "to",
                value: "x".repeat(64)
            })
        );
    }

    #[test]
    fn every_message_names_its_parameter_as_the_api_answers_it() {
        let cases = [
            (QueryError::Missing("metric"), "missing query parameter `metric`"),
            (
                QueryError::UnknownMetric("x".into()),
                "unknown metric \"x\" (see /api/metrics)",
            ),
            (QueryError::NoMetricNamed("x".into()), "no metric named \"x\""),
            (
                QueryError::BadTime {
                    param: "from",
                    value: "soon".into(),
                },
                "`from` must be an RFC 3339 time like 2026-01-31T09:00:00Z, got \"soon\"",
            ),
            (QueryError::UnknownStep("week".into()), "`step` must be minute, hour or day, got \"week\""),
            (
                QueryError::UnknownDimension("os".into()),
                "`by` must be one of status, kind, source, utm_source, utm_medium, utm_campaign, landing; got \"os\"",
            ),
            (
                QueryError::DimensionNotKept {
                    metric: "logins".into(),
                    dim: "utm_source".into(),
                },
                "metric \"logins\" does not keep the dimension \"utm_source\"",
            ),
            (QueryError::EmptyRange, "`to` must be later than `from`"),
            (
                QueryError::TooManyPoints(44_640),
                "the range has 44640 points at this step; at most 10080 per request (use a larger step)",
            ),
            (
                QueryError::NotCounted("rate".into()),
                "metric \"rate\" is a ratio; unique visitors are kept for counted metrics",
            ),
            (
                QueryError::TooManyHours { hours: 745, max: 744 },
                "the range has 745 hours; at most 744 per request (with points=none, at most 87840)",
            ),
            (QueryError::UnknownPoints("day".into()), "`points` must be hour or none, got \"day\""),
            (
                QueryError::UnknownCompare("1y".into()),
                "`compare` must be previous, 4w or none, got \"1y\"",
            ),
            (QueryError::UnknownFormat("xml".into()), "`format` must be json or csv, got \"xml\""),
            (
                QueryError::NotAReferralMetric("logins".into()),
                "metric \"logins\" keeps no referral dimensions",
            ),
            (QueryError::RangeTooLong, "the range is at most 400 days"),
            (QueryError::UnknownRange("2d".into()), "range must be 24h or 7d, not \"2d\""),
        ];
        for (e, message) in cases {
            assert_eq!(e.to_string(), message);
        }
    }
}
