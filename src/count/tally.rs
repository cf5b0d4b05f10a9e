//! The in-memory tally of hits waiting to be flushed, and what a flush
//! carries to a shard: [`Row`]s in a [`Batch`] under a [`Flush`] id.
//!
//! A [`Tally`] sums hits per (minute, metric, dimension, value), in the UTC
//! buckets of [`Resolution`], so that a flush carries one row per distinct
//! key rather than one per request.
//!
//! Invariants: the number of distinct values per (metric, referral
//! dimension) in one tally is at most the configured K; further values are
//! counted as [`OTHER`], so a flood of random referrers or UTM values cannot
//! grow a batch without bound. Every hit adds exactly 1 to exactly one
//! `count` row (hits the metric counts) or one `bot`, `client` or `browser`
//! row (hits of that agent kind it does not count), so summing those rows
//! gives the number of hits; a counted hit also adds 1 to its `kind` row
//! (value `browser`, `client` or `bot`). Counted hits with a visitor hash
//! also go into that (hour, metric)'s [`VisitorSketch`] (at most one sketch
//! per metric and hour in a tally).
//!
//! Stored `bot` rows written before agent kinds existed read the same:
//! bot hits, which no metric counted then.

use crate::config::ReferralDimension;
use crate::count::agent::AgentKind;
use crate::count::classify::Hit;
use crate::time::Resolution;
use crate::windows::sketch::VisitorSketch;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The value that stands for every value past the cardinality cap.
pub const OTHER: &str = "other";

/// A stored dimension. Its `as_str` is the `dim` column in storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dim {
    /// Hits the metric counts (value "").
    Count,
    /// Bot hits the metric does not count (value "").
    Bot,
    /// Client (app, HTTP library) hits the metric does not count (value "").
    Client,
    /// Browser hits the metric does not count (value "").
    Browser,
    /// Counted hits by agent kind (value "browser", "client" or "bot").
    Kind,
    /// Status class of counted hits ("2xx").
    Status,
    /// Latency bucket of counted hits (see `latency`).
    Latency,
    Referral(ReferralDimension),
}

impl Dim {
    pub fn as_str(self) -> &'static str {
        match self {
            Dim::Count => "count",
            Dim::Bot => "bot",
            Dim::Client => "client",
            Dim::Browser => "browser",
            Dim::Kind => "kind",
            Dim::Status => "status",
            Dim::Latency => "lat",
            Dim::Referral(d) => d.as_str(),
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "count" => Some(Dim::Count),
            "bot" => Some(Dim::Bot),
            "client" => Some(Dim::Client),
            "browser" => Some(Dim::Browser),
            "kind" => Some(Dim::Kind),
            "status" => Some(Dim::Status),
            "lat" => Some(Dim::Latency),
            other => ReferralDimension::parse(other).map(Dim::Referral),
        }
    }

    /// The row of hits of `kind` a metric does not count.
    pub fn not_counted(kind: AgentKind) -> Self {
        match kind {
            AgentKind::Browser => Dim::Browser,
            AgentKind::Client => Dim::Client,
            AgentKind::Bot => Dim::Bot,
        }
    }

    /// Dimensions whose values come from visitors and so are capped.
    pub fn is_capped(self) -> bool {
        matches!(self, Dim::Referral(_))
    }
}

/// One stored count: `n` hits in the bucket starting at `t`.
/// Serialised as a JSON array `[t, metric, dim, value, n]` to keep batches small.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row(pub i64, pub String, pub String, pub String, pub u64);

impl Row {
    /// Sorts rows by (time, metric, dimension, value): the order batches and
    /// folded results are produced in.
    pub fn sort(rows: &mut [Row]) {
        rows.sort_unstable_by(|a, b| (a.0, &a.1, &a.2, &a.3).cmp(&(b.0, &b.1, &b.2, &b.3)));
    }

    pub fn t(&self) -> i64 {
        self.0
    }
    pub fn metric(&self) -> &str {
        &self.1
    }
    pub fn dim(&self) -> &str {
        &self.2
    }
    pub fn value(&self) -> &str {
        &self.3
    }
    pub fn n(&self) -> u64 {
        self.4
    }
}

/// What an isolate sends to a counter shard in one flush. `id` makes the
/// flush idempotent: a shard applies a batch id at most once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub id: String,
    /// Requests (not hits) the batch accounts for; for statistics only.
    pub requests: u64,
    pub rows: Vec<Row>,
}

/// The visitors of one metric in the hour starting at `t`, serialised as
/// `[t, metric, base64 sketch]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SketchRow(pub i64, pub String, pub VisitorSketch);

/// What a flush carries: a [`Batch`]'s fields, and the visitor sketches of
/// the same requests (covered by the batch's id). A batch without sketches
/// (an older isolate, a backfill) reads as a flush with none. (The fields
/// are repeated rather than `#[serde(flatten)]`ed: flatten costs ~10 KB of
/// wasm.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flush {
    pub id: String,
    pub requests: u64,
    pub rows: Vec<Row>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sketches: Vec<SketchRow>,
}

impl Flush {
    /// The counted hits the batch carries (its `count` rows).
    pub fn counted(&self) -> u64 {
        self.rows
            .iter()
            .filter(|r| r.dim() == "count")
            .map(Row::n)
            .sum()
    }
}

impl From<Batch> for Flush {
    fn from(batch: Batch) -> Self {
        let Batch { id, requests, rows } = batch;
        Flush {
            id,
            requests,
            rows,
            sketches: Vec::new(),
        }
    }
}

type Key = (i64, usize, Dim, String);

/// Hits accumulated in memory between two flushes.
#[derive(Debug, Default)]
pub struct Tally {
    counts: HashMap<Key, u64>,
    /// Visitor sketches per (hour, metric).
    sketches: HashMap<(i64, usize), VisitorSketch>,
    distinct: HashMap<(usize, Dim), usize>,
    cap: usize,
    requests: u64,
}

impl Tally {
    /// `cap` is K, the distinct values kept per metric and referral dimension.
    /// The maps start with room for a quiet generation (a few requests of a
    /// few metrics), so a fresh isolate's first request neither grows them
    /// nor compiles the code that does (WebAssembly is compiled on first
    /// call); draining keeps their room for the next generation.
    pub fn new(cap: usize) -> Self {
        Tally {
            counts: HashMap::with_capacity(64),
            sketches: HashMap::with_capacity(8),
            distinct: HashMap::with_capacity(16),
            cap: cap.max(1),
            requests: 0,
        }
    }

    /// Requests recorded since the last drain.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.sketches.is_empty()
    }

    /// Records the hits of one request, answered at `at_secs` (Unix seconds).
    pub fn record(&mut self, at_secs: i64, hits: &[Hit]) {
        self.requests += 1;
        let minute = Resolution::Minute.floor(at_secs);
        for hit in hits {
            if !hit.counted {
                self.add(
                    minute,
                    hit.metric,
                    Dim::not_counted(hit.kind),
                    String::new(),
                );
                continue;
            }
            self.add(minute, hit.metric, Dim::Count, String::new());
            self.add(minute, hit.metric, Dim::Kind, hit.kind.as_str().to_string());
            self.add(
                minute,
                hit.metric,
                Dim::Status,
                status_value(hit.status_class),
            );
            self.add(
                minute,
                hit.metric,
                Dim::Latency,
                itoa::Buffer::new().format(hit.latency_bucket).to_string(),
            );
            for (d, v) in &hit.dimensions {
                self.add(minute, hit.metric, Dim::Referral(*d), v.clone());
            }
        }
    }

    /// Adds the visitor `hash` to the sketch of every metric the request hit
    /// and counted, in the hour it was answered (`at_secs`).
    pub fn record_visitor(&mut self, at_secs: i64, hits: &[Hit], hash: u64) {
        let hour = Resolution::Hour.floor(at_secs);
        for hit in hits.iter().filter(|h| h.counted) {
            self.sketches
                .entry((hour, hit.metric))
                .or_default()
                .insert_hash(hash);
        }
    }

    fn add(&mut self, minute: i64, metric: usize, dim: Dim, value: String) {
        let mut key = (minute, metric, dim, value);
        if dim.is_capped() && !self.counts.contains_key(&key) {
            let seen = self.distinct.entry((metric, dim)).or_insert(0);
            if *seen >= self.cap {
                key.3 = OTHER.to_string();
            } else if key.3 != OTHER {
                *seen += 1;
            }
        }
        *self.counts.entry(key).or_insert(0) += 1;
    }

    /// Empties the tally into a batch; `names` maps metric indices to names.
    pub fn drain(&mut self, id: String, names: &[String]) -> Batch {
        let requests = std::mem::take(&mut self.requests);
        self.distinct.clear();
        let mut rows: Vec<Row> = self
            .counts
            .drain()
            .filter_map(|((t, metric, dim, value), n)| {
                let name = names.get(metric)?;
                Some(Row(t, name.clone(), dim.as_str().to_string(), value, n))
            })
            .collect();
        Row::sort(&mut rows);
        Batch { id, requests, rows }
    }

    /// Empties the tally into a flush: the batch and its visitor sketches,
    /// sorted by (hour, metric).
    pub fn drain_flush(&mut self, id: String, names: &[String]) -> Flush {
        let Batch { id, requests, rows } = self.drain(id, names);
        let mut sketches: Vec<SketchRow> = self
            .sketches
            .drain()
            .filter_map(|((hour, metric), sketch)| {
                Some(SketchRow(hour, names.get(metric)?.clone(), sketch))
            })
            .collect();
        sketches.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Flush {
            id,
            requests,
            rows,
            sketches,
        }
    }
}

/// "2xx" for class 2; "other" for a status outside 100..=599.
pub fn status_value(class: u8) -> String {
    const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
    let value = usize::from(class)
        .checked_sub(1)
        .and_then(|i| CLASSES.get(i))
        .unwrap_or(&OTHER);
    value.to_string()
}

/// Keeps the `k` largest values per (t, metric, dim) of the capped
/// dimensions and folds the rest into [`OTHER`]. Uncapped rows pass through.
/// Ties are broken by value so the result does not depend on input order.
pub fn fold_top_k(rows: Vec<Row>, k: usize) -> Vec<Row> {
    let mut groups: HashMap<(i64, String, String), Vec<Row>> = HashMap::new();
    let mut out = Vec::new();
    for row in rows {
        if Dim::parse(row.dim()).is_some_and(Dim::is_capped) {
            groups
                .entry((row.0, row.1.clone(), row.2.clone()))
                .or_default()
                .push(row);
        } else {
            out.push(row);
        }
    }
    for ((t, metric, dim), mut group) in groups {
        let mut other: u64 = group
            .iter()
            .filter(|r| r.value() == OTHER)
            .map(Row::n)
            .sum();
        group.retain(|r| r.value() != OTHER);
        group.sort_unstable_by(|a, b| b.4.cmp(&a.4).then_with(|| a.3.cmp(&b.3)));
        for (i, row) in group.into_iter().enumerate() {
            if i < k {
                out.push(row);
            } else {
                other += row.n();
            }
        }
        if other > 0 {
            out.push(Row(t, metric, dim, OTHER.to_string(), other));
        }
    }
    Row::sort(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A counted browser hit, or a bot hit the metric does not count.
    fn hit(metric: usize, bot: bool, dims: &[(ReferralDimension, &str)]) -> Hit {
        Hit {
            metric,
            kind: if bot {
                AgentKind::Bot
            } else {
                AgentKind::Browser
            },
            counted: !bot,
            status_class: 2,
            latency_bucket: 7,
            dimensions: dims.iter().map(|(d, v)| (*d, v.to_string())).collect(),
        }
    }

    fn names() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn hits_are_summed_per_minute_and_key() {
        let mut t = Tally::new(50);
        t.record(120, &[hit(0, false, &[])]);
        t.record(179, &[hit(0, false, &[])]);
        t.record(180, &[hit(0, false, &[]), hit(1, true, &[])]);
        assert_eq!(t.requests(), 3);
        let b = t.drain("id".into(), &names());
        assert_eq!(b.requests, 3);
        assert!(t.is_empty());
        let count = |m: &str, dim: &str, minute: i64| -> u64 {
            b.rows
                .iter()
                .filter(|r| r.metric() == m && r.dim() == dim && r.t() == minute)
                .map(Row::n)
                .sum()
        };
        assert_eq!(count("a", "count", 120), 2);
        assert_eq!(count("a", "count", 180), 1);
        assert_eq!(count("a", "status", 120), 2);
        assert_eq!(count("a", "lat", 120), 2);
        assert_eq!(count("b", "bot", 180), 1);
        assert_eq!(count("b", "count", 180), 0);
    }

    #[test]
    fn kinds_are_tallied_counted_or_not() {
        let mut t = Tally::new(50);
        let with = |kind, counted| Hit {
            kind,
            counted,
            ..hit(0, false, &[])
        };
        t.record(60, &[with(AgentKind::Browser, true)]);
        t.record(60, &[with(AgentKind::Client, true)]);
        t.record(60, &[with(AgentKind::Client, false)]);
        t.record(60, &[with(AgentKind::Browser, false)]);
        t.record(
            60,
            &[with(AgentKind::Bot, false), with(AgentKind::Bot, true)],
        );
        let b = t.drain("id".into(), &names());
        let got: Vec<(&str, &str, u64)> =
            b.rows.iter().map(|r| (r.dim(), r.value(), r.n())).collect();
        assert_eq!(
            got,
            vec![
                ("bot", "", 1),
                ("browser", "", 1),
                ("client", "", 1),
                ("count", "", 3),
                ("kind", "bot", 1),
                ("kind", "browser", 1),
                ("kind", "client", 1),
                ("lat", "7", 3),
                ("status", "2xx", 3),
            ]
        );
        // Every hit is in exactly one count, bot, client or browser row.
        let hits: u64 = b
            .rows
            .iter()
            .filter(|r| matches!(r.dim(), "count" | "bot" | "client" | "browser"))
            .map(Row::n)
            .sum();
        assert_eq!(hits, 6);
        for d in ["bot", "client", "browser", "kind"] {
            assert_eq!(Dim::parse(d).map(Dim::as_str), Some(d));
        }
    }

    #[test]
    fn cardinality_is_capped_per_metric_and_dimension() {
        let mut t = Tally::new(3);
        for i in 0..10_000 {
            let v = format!("v{i}");
            t.record(60, &[hit(0, false, &[(ReferralDimension::UtmSource, &v)])]);
        }
        // A value already admitted keeps its own row.
        t.record(
            60,
            &[hit(0, false, &[(ReferralDimension::UtmSource, "v1")])],
        );
        let b = t.drain("id".into(), &names());
        let utm: Vec<&Row> = b.rows.iter().filter(|r| r.dim() == "utm_source").collect();
        assert_eq!(utm.len(), 4);
        assert_eq!(utm.iter().map(|r| r.n()).sum::<u64>(), 10_001);
        let other = utm.iter().find(|r| r.value() == OTHER).unwrap();
        assert_eq!(other.n(), 9_997);
        assert_eq!(utm.iter().find(|r| r.value() == "v1").unwrap().n(), 2);
    }

    #[test]
    fn batch_serialises_rows_as_arrays() {
        let mut t = Tally::new(3);
        t.record(61, &[hit(1, true, &[])]);
        let json = serde_json::to_string(&t.drain("x1".into(), &names())).unwrap();
        assert_eq!(
            json,
            r#"{"id":"x1","requests":1,"rows":[[60,"b","bot","",1]]}"#
        );
    }

    #[test]
    fn fold_top_k_keeps_the_largest_and_sums_the_rest() {
        let row = |v: &str, n| Row(0, "m".into(), "source".into(), v.into(), n);
        let rows = vec![
            row("a", 5),
            row("b", 9),
            row("c", 1),
            row("other", 2),
            row("d", 5),
            Row(0, "m".into(), "count".into(), String::new(), 22),
        ];
        let out = fold_top_k(rows, 2);
        let got: Vec<(&str, &str, u64)> = out.iter().map(|r| (r.dim(), r.value(), r.n())).collect();
        assert_eq!(
            got,
            vec![
                ("count", "", 22),
                ("source", "a", 5),
                ("source", "b", 9),
                ("source", "other", 8)
            ]
        );
    }

    #[test]
    fn visitors_are_sketched_per_hour_and_metric_without_bots() {
        let mut t = Tally::new(3);
        let both = [hit(0, false, &[]), hit(1, true, &[])];
        for (i, at) in [(1u64, 3_600), (2, 3_700), (1, 7_199), (3, 7_200)] {
            t.record(at, &both);
            t.record_visitor(at, &both, i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        let flush = t.drain_flush("f1".into(), &names());
        assert!(t.is_empty());
        let got: Vec<(i64, &str, u64)> = flush
            .sketches
            .iter()
            .map(|SketchRow(h, m, s)| (*h, m.as_str(), s.count()))
            .collect();
        // Metric "b" only had bot hits: no sketch.
        assert_eq!(got, vec![(3_600, "a", 2), (7_200, "a", 1)]);
        // On the wire: the batch's fields plus the sketches; read back whole.
        let json = serde_json::to_string(&flush).unwrap();
        assert!(
            json.starts_with(r#"{"id":"f1","requests":4,"rows":["#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Flush>(&json).unwrap(), flush);
        // A plain batch reads as a flush without sketches.
        let plain = r#"{"id":"x","requests":0,"rows":[]}"#;
        let read: Flush = serde_json::from_str(plain).unwrap();
        assert!(read.sketches.is_empty());
        assert_eq!(serde_json::to_string(&read).unwrap(), plain);
    }

    #[test]
    fn status_values() {
        assert_eq!(status_value(1), "1xx");
        assert_eq!(status_value(2), "2xx");
        assert_eq!(status_value(5), "5xx");
        assert_eq!(status_value(0), OTHER);
        assert_eq!(status_value(9), OTHER);
    }
}
