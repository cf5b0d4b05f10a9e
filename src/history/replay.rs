//! Replaying access logs through the classifier: per-minute counts of every
//! counted metric, as the worker would have recorded them (only the agent
//! kinds each metric counts), to seed history or to see what a new rule
//! would have counted; and every metric's hits by agent kind.
//!
//! Access logs carry neither the `Location` header nor the latency: a rule
//! with a `location` condition cannot match a logged request, and the replay
//! says which metrics are affected (a Logpush job that logs the `Location`
//! response header lifts that). Malformed lines are counted, never fatal.

use crate::config::{MetricKind, ReferralDimension};
use crate::count::agent::AgentKind;
use crate::count::classify::{Classifier, Hit, RequestFacts, ResponseFacts};
use crate::count::tally::Row;
use crate::history::accesslog::LogLine;
use crate::history::logpush::LogpushRecord;
use crate::time::Resolution;
use chrono::DateTime;
use std::collections::BTreeMap;

/// Counts per (minute start, metric name), and what was skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replay {
    pub counts: BTreeMap<(i64, String), u64>,
    pub lines: u64,
    pub malformed: u64,
    /// Line numbers of the first few malformed lines, for the report.
    pub malformed_examples: Vec<u64>,
    /// Hits of a kind their metric does not count (left out of `counts`).
    pub not_counted: u64,
    /// Per (metric name, agent kind): hits (counted, not counted).
    pub kinds: BTreeMap<(String, AgentKind), (u64, u64)>,
    /// Per (minute start, metric, dimension, value): the counted hits of
    /// metrics a `by` rule splits, which it judges per value.
    pub values: BTreeMap<(i64, String, String, String), u64>,
}

/// Which access-log format is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// With `"referer" "user-agent"`; a missing user agent is a bot, as live.
    Combined,
    /// Without them: every request is taken for a browser's.
    Common,
    /// Cloudflare Logpush `http_requests` records, one JSON object a line
    /// (see `logpush`): with the host, bot signals, latency and, when the
    /// job logs it, the `Location` header.
    Logpush,
}

/// Stands in for the user agent the common format does not log.
const COMMON_FORMAT_AGENT: &[u8] = b"(not logged)";

/// How many malformed line numbers are kept for the report.
const EXAMPLES: usize = 5;

impl Replay {
    /// Classifies one log line (1-based `line_no` for the report).
    pub fn add_line(
        &mut self,
        classifier: &Classifier,
        format: LogFormat,
        host: &str,
        line_no: u64,
        line: &str,
        hits: &mut Vec<Hit>,
    ) {
        self.lines += 1;
        let read = read_request(format, host, line, |at, request, response| {
            self.add(classifier, at, request, response, hits);
        });
        if !read && !line.trim().is_empty() {
            self.malformed += 1;
            if self.malformed_examples.len() < EXAMPLES {
                self.malformed_examples.push(line_no);
            }
        }
    }

    /// Classifies every line of `lines`, numbered from 1.
    pub fn add_lines<'a>(
        &mut self,
        classifier: &Classifier,
        format: LogFormat,
        host: &str,
        lines: impl IntoIterator<Item = &'a str>,
    ) {
        let mut hits = Vec::new();
        for (i, line) in lines.into_iter().enumerate() {
            self.add_line(classifier, format, host, i as u64 + 1, line, &mut hits);
        }
    }

    /// Classifies one request answered at `at` (Unix seconds).
    pub fn add(
        &mut self,
        classifier: &Classifier,
        at: i64,
        request: &RequestFacts,
        response: &ResponseFacts,
        hits: &mut Vec<Hit>,
    ) {
        hits.clear();
        classifier.classify(request, response, hits);
        let minute = Resolution::Minute.floor(at);
        for hit in hits.iter() {
            let Some(m) = classifier.config().metrics.get(hit.metric) else {
                continue;
            };
            let by_kind = self.kinds.entry((m.name.clone(), hit.kind)).or_default();
            if !hit.counted {
                by_kind.1 += 1;
                self.not_counted += 1;
                continue;
            }
            by_kind.0 += 1;
            *self.counts.entry((minute, m.name.clone())).or_insert(0) += 1;
            let split = |d: &ReferralDimension| {
                classifier
                    .config()
                    .alerts
                    .iter()
                    .any(|r| r.metric == m.name && r.by.is_some_and(|s| s.dimension == *d))
            };
            for (dim, value) in hit.dimensions.iter().filter(|(d, _)| split(d)) {
                let key = (
                    minute,
                    m.name.clone(),
                    dim.as_str().to_string(),
                    value.clone(),
                );
                *self.values.entry(key).or_insert(0) += 1;
            }
        }
    }

    /// `metric`'s rows of `dim` in `[from, to)`, summed to `step`, as the
    /// counter shards answer them (without their per-hour cap on values).
    pub fn rows(
        &self,
        metric: &str,
        dim: &str,
        step: Resolution,
        (from, to): (i64, i64),
    ) -> Vec<Row> {
        // The first key of minute `t`.
        let at = |t| (t, String::new(), String::new(), String::new());
        let mut sums: BTreeMap<(i64, &str), u64> = BTreeMap::new();
        for ((t, m, d, v), n) in self.values.range(at(from)..at(to)) {
            if m == metric && d == dim {
                *sums.entry((step.floor(*t), v.as_str())).or_insert(0) += n;
            }
        }
        sums.into_iter()
            .map(|((t, v), n)| Row(t, metric.to_string(), dim.to_string(), v.to_string(), n))
            .collect()
    }

    /// `timestamp,metric,count` lines, sorted by time then metric.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("timestamp,metric,count\n");
        for ((t, metric), n) in &self.counts {
            out.push_str(&format!("{},{metric},{n}\n", crate::time::format_time(*t)));
        }
        out
    }
}

/// Reads one log line of `format` and hands its time (Unix seconds) and
/// facts to `f`; false (and `f` not called) when the line is malformed.
/// `host` stands in for a host the line does not log.
pub fn read_request(
    format: LogFormat,
    host: &str,
    line: &str,
    f: impl FnOnce(i64, &RequestFacts, &ResponseFacts),
) -> bool {
    match format {
        LogFormat::Logpush => LogpushRecord::parse(line)
            .and_then(|r| {
                let at = r.at_secs()?;
                f(at, &r.request_facts(host), &r.response_facts());
                Some(())
            })
            .is_some(),
        LogFormat::Combined | LogFormat::Common => LogLine::parse(line)
            .and_then(|l| {
                let at = log_time(l.time)?;
                let mut facts = l.request_facts(host);
                if format == LogFormat::Common {
                    facts.referer = None;
                    facts.user_agent = Some(COMMON_FORMAT_AGENT);
                }
                f(at, &facts, &l.response_facts());
                Some(())
            })
            .is_some(),
    }
}

/// Counted metrics whose rule needs a response header logs do not have.
pub fn unreplayable_metrics(classifier: &Classifier) -> Vec<String> {
    classifier
        .config()
        .metrics
        .iter()
        .filter(|m| matches!(&m.kind, MetricKind::Counted { rule, .. } if rule.location.is_some()))
        .map(|m| m.name.clone())
        .collect()
}

/// `17/May/2015:10:05:03 +0000` → Unix seconds.
pub fn log_time(s: &str) -> Option<i64> {
    DateTime::parse_from_str(s.trim(), "%d/%b/%Y:%H:%M:%S %z")
        .ok()
        .map(|d| d.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_toml;

    fn classifier() -> Classifier {
        // The shipped metrics without the catch-all `traffic`, which every
        // page view also counts towards.
        let mut cfg = parse_toml(include_str!("../../bpm.toml"), "bpm.toml").unwrap();
        cfg.metrics.retain(|m| m.name != "traffic");
        Classifier::new(cfg)
    }

    const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0";

    #[test]
    fn counts_per_minute_and_metric_without_bots() {
        let c = classifier();
        let mut r = Replay::default();
        let mut hits = Vec::new();
        let lines = [
            format!(r#"1.1.1.1 - - [17/May/2015:10:05:03 +0000] "GET /login HTTP/1.1" 200 5 "-" "{UA}""#),
            format!(r#"1.1.1.1 - - [17/May/2015:10:05:59 +0000] "GET /login HTTP/1.1" 200 5 "-" "{UA}""#),
            format!(r#"1.1.1.1 - - [17/May/2015:12:06:00 +0200] "GET /pricing?utm_source=x HTTP/1.1" 200 5 "https://www.google.com/" "{UA}""#),
            r#"1.1.1.1 - - [17/May/2015:10:06:00 +0000] "GET / HTTP/1.1" 200 5 "-" "Googlebot/2.1""#.to_string(),
            "garbage".to_string(),
            String::new(),
            r#"1.1.1.1 - - [not a time] "GET / HTTP/1.1" 200 5"#.to_string(),
        ];
        for (i, l) in lines.iter().enumerate() {
            r.add_line(
                &c,
                LogFormat::Combined,
                "www.example.com",
                i as u64 + 1,
                l,
                &mut hits,
            );
        }
        assert_eq!(r.lines, 7);
        assert_eq!(r.malformed, 2);
        assert_eq!(r.malformed_examples, vec![5, 7]);
        assert_eq!(r.not_counted, 1);
        assert_eq!(
            r.kinds
                .get(&("marketing_views".to_string(), AgentKind::Bot)),
            Some(&(0, 1))
        );
        assert_eq!(
            r.to_csv(),
            "timestamp,metric,count\n2015-05-17T10:05:00Z,login_views,2\n2015-05-17T10:06:00Z,marketing_views,1\n"
        );
    }

    #[test]
    fn common_format_has_no_bots() {
        let c = classifier();
        let mut r = Replay::default();
        let line = r#"1.1.1.1 - - [17/May/2015:10:05:03 +0000] "GET /login HTTP/1.1" 200 5"#;
        r.add_line(&c, LogFormat::Common, "h", 1, line, &mut Vec::new());
        assert_eq!(r.not_counted, 0);
        assert_eq!(r.counts.values().sum::<u64>(), 1);
        let mut live = Replay::default();
        live.add_line(&c, LogFormat::Combined, "h", 1, line, &mut Vec::new());
        assert_eq!(live.not_counted, 1);
    }

    #[test]
    fn location_rules_are_reported_as_unreplayable() {
        assert_eq!(unreplayable_metrics(&classifier()), vec!["logins"]);
    }

    #[test]
    fn log_times() {
        assert_eq!(log_time("17/May/2015:10:05:03 +0000"), Some(1_431_857_103));
        assert_eq!(log_time("17/May/2015:12:05:03 +0200"), Some(1_431_857_103));
        assert_eq!(log_time("17/Foo/2015:10:05:03 +0000"), None);
    }
}
