//! The storage model of a counter shard: its SQLite schema (version 2) and
//! statements, the compact bucket encoding, the flush log's slot ring, the
//! hourly cardinality admission, and the plans for rollups, retention and
//! reads. Pure: the Durable Object executes these plans.
//!
//! Billing shapes this layout: Cloudflare bills every row inserted, updated
//! or deleted. So a live flush is one row appended to `flush_log` (a ring of
//! slots reused once folded, so no row is ever deleted from it), and the
//! shard later *folds* the appended batches into `buckets`, which holds one
//! row per (resolution, metric, bucket start) with all of that bucket's
//! dimension counts encoded in it ([`BucketCounts`]): a fold writes one row
//! per metric and minute touched, however many flushes and values it holds.
//!
//! `buckets` holds minute (`res` 0), hour (1) and day (2) rows. Watermarks
//! say how far rollups have gone: every hour before `hour_wm` has hour rows
//! built from its minute rows, and every day before `day_wm` (≤ `hour_wm`)
//! has day rows built from hour rows. A minute count that arrives for an
//! hour already rolled up is also added to the hour (and day) row in the
//! same write, so rollups never miss late data. Reads combine the coarsest
//! rows below each watermark with finer rows above it, so a range is never
//! counted twice or skipped.
//!
//! `flush_log` rows with `seq` above the `folded` mark are not yet in
//! `buckets`; a fold moves all of them in one transaction together with the
//! new mark, so each appended batch is counted exactly once. Batch ids stay
//! in the ring (and in memory) until their slot is reused: a retried batch
//! whose id is still there is a duplicate.
//!
//! Table `visitor_sketches(metric, hour, sketch)` holds one visitor sketch
//! per metric and UTC hour, merged (register-wise maximum) at every fold
//! that carries one. Sketches are never rolled up: any range is the merge of
//! its hours. They are kept as long as hour rows.
//!
//! Version 1 of the schema (`counts`, one row per dimension value) is
//! migrated in place, a bounded slice per maintenance run
//! ([`MIGRATE_ROWS_PER_STEP`]);
//! until it is done, reads also read what is left of `counts`.

use crate::count::tally::{Dim, Row, OTHER};
use crate::time::Resolution;
use crate::time::DAY;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// The schema version this code writes.
pub const SCHEMA_VERSION: i64 = 2;

pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS buckets (
        res INTEGER NOT NULL, metric TEXT NOT NULL, t INTEGER NOT NULL,
        data TEXT NOT NULL, PRIMARY KEY (res, metric, t)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS flush_log (
        slot INTEGER PRIMARY KEY, seq INTEGER NOT NULL, id TEXT NOT NULL,
        at INTEGER NOT NULL, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS applied_batches (
        id TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS visitor_sketches (
        metric TEXT NOT NULL, hour INTEGER NOT NULL, sketch BLOB NOT NULL,
        PRIMARY KEY (metric, hour)) WITHOUT ROWID",
    // Every line an import has written: importing the same lines again
    // adds nothing, however the data is cut.
    "CREATE TABLE IF NOT EXISTS import_ledger (
        metric TEXT NOT NULL, t INTEGER NOT NULL, dim TEXT NOT NULL, val TEXT NOT NULL,
        n INTEGER NOT NULL, PRIMARY KEY (metric, t, dim, val, n)) WITHOUT ROWID",
    // One row (id 0): the fold mark and the statistics, updated together.
    "CREATE TABLE IF NOT EXISTS shard_state (
        id INTEGER PRIMARY KEY, folded INTEGER NOT NULL, flushes INTEGER NOT NULL,
        requests INTEGER NOT NULL, rows_written INTEGER NOT NULL,
        duplicates INTEGER NOT NULL)",
];

/// Whether the version-1 table is still there (migration pending).
pub const LEGACY_EXISTS_SQL: &str =
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'counts'";
/// Legacy rows to migrate, whole buckets first: `LIMIT ?1`.
pub const LEGACY_SLICE_SQL: &str = "SELECT res, metric, t, dim, val, n FROM counts
    ORDER BY res, metric, t LIMIT ?1";
/// Removes one migrated legacy bucket `(?1 res, ?2 metric, ?3 t)`.
pub const LEGACY_DELETE_SQL: &str = "DELETE FROM counts WHERE res = ?1 AND metric = ?2 AND t = ?3";
/// Legacy rows migrated per call: bounds the work of one request or alarm.
pub const MIGRATE_ROWS_PER_STEP: i64 = 20_000;

/// Bucket rows written per statement: 4 bound values each, under the
/// 100-parameter limit of Durable Object SQL.
pub const BUCKET_PUT_CHUNK: usize = 25;
/// Import-ledger rows written per statement (5 values each).
pub const LEDGER_PUT_CHUNK: usize = 20;

/// Writes `rows` bucket rows with their complete (already merged) data.
pub fn bucket_put_sql(rows: usize) -> String {
    format!(
        "INSERT INTO buckets (res, metric, t, data) VALUES {} \
         ON CONFLICT (res, metric, t) DO UPDATE SET data = excluded.data",
        vec!["(?, ?, ?, ?)"; rows.max(1)].join(", ")
    )
}

/// Records `rows` imported lines (metric, minute, dimension, value, n).
pub fn ledger_put_sql(rows: usize) -> String {
    format!(
        "INSERT INTO import_ledger (metric, t, dim, val, n) VALUES {} ON CONFLICT DO NOTHING",
        vec!["(?, ?, ?, ?, ?)"; rows.max(1)].join(", ")
    )
}

/// The rows of `(?1 res, ?2 metric)` in `[?3, ?4)`.
pub const BUCKET_SPAN_SQL: &str =
    "SELECT t, data FROM buckets WHERE res = ?1 AND metric = ?2 AND t >= ?3 AND t < ?4";

/// Bucket writes of one (resolution, metric) close enough together to be
/// read with one range query.
#[derive(Debug, Clone, PartialEq)]
pub struct CloseRun {
    pub res: Resolution,
    pub metric: String,
    pub from: i64,
    pub to: i64,
    pub buckets: Vec<(i64, BucketCounts)>,
}

/// Splits writes into [`CloseRun`]s: a gap of more than 8 buckets starts a
/// new run, so a late minute hours away is read on its own.
pub fn close_runs(writes: BucketWrites) -> Vec<CloseRun> {
    let mut runs: Vec<CloseRun> = Vec::new();
    for ((res, metric, t), counts) in writes {
        match runs.last_mut() {
            Some(run)
                if run.res == res && run.metric == metric && t - run.to <= 8 * res.seconds() =>
            {
                run.to = t;
                run.buckets.push((t, counts));
            }
            _ => runs.push(CloseRun {
                res,
                metric,
                from: t,
                to: t,
                buckets: vec![(t, counts)],
            }),
        }
    }
    runs
}
/// Rows of resolution `?1` in `[?2, ?3)`, all metrics.
pub const BUCKET_RANGE_SQL: &str =
    "SELECT metric, t, data FROM buckets WHERE res = ?1 AND t >= ?2 AND t < ?3";

/// Rows of resolution ?1 in `[?2, ?3)` of the `metrics` that follow.
pub fn bucket_read_sql(metrics: usize) -> String {
    format!(
        "SELECT metric, t, data FROM buckets WHERE res = ? AND t >= ? AND t < ? AND metric IN ({})",
        placeholders(metrics)
    )
}

/// Appends a flush into slot `?1` (a new slot, or a folded one reused).
pub const LOG_PUT_SQL: &str =
    "INSERT INTO flush_log (slot, seq, id, at, body) VALUES (?1, ?2, ?3, ?4, ?5)
    ON CONFLICT (slot) DO UPDATE SET seq = excluded.seq, id = excluded.id,
    at = excluded.at, body = excluded.body";
/// The ring, oldest first (loaded when the object starts).
pub const LOG_RING_SQL: &str = "SELECT slot, seq, id, at FROM flush_log ORDER BY seq";
/// Appended flushes not yet folded: `seq > ?1`.
pub const LOG_UNFOLDED_SQL: &str = "SELECT seq, body FROM flush_log WHERE seq > ?1 ORDER BY seq";

/// The stored sketch of `(?1 metric, ?2 hour)`.
pub const SKETCH_GET_SQL: &str =
    "SELECT sketch FROM visitor_sketches WHERE metric = ?1 AND hour = ?2";
/// Stores the merged sketch of `(?1 metric, ?2 hour)`.
pub const SKETCH_PUT_SQL: &str = "INSERT INTO visitor_sketches (metric, hour, sketch)
    VALUES (?1, ?2, ?3) ON CONFLICT (metric, hour) DO UPDATE SET sketch = excluded.sketch";
/// The sketches of metric `?1` for the hours in `[?2, ?3)`.
pub const SKETCH_RANGE_SQL: &str = "SELECT hour, sketch FROM visitor_sketches
    WHERE metric = ?1 AND hour >= ?2 AND hour < ?3 ORDER BY hour";

/// Sketches of hours before this are deleted: the hour-row retention.
pub fn sketch_delete_before(now: i64, hour_retention_days: u32) -> i64 {
    Resolution::Hour.floor(now - i64::from(hour_retention_days) * DAY)
}

/// Keys of the `meta` table.
pub const SCHEMA_KEY: &str = "schema_version";
pub const HOUR_WM: &str = "hour_wm";
pub const DAY_WM: &str = "day_wm";
/// The highest `flush_log.seq` folded into `buckets`.
pub const FOLDED: &str = "folded";
pub const STAT_FLUSHES: &str = "flushes";
pub const STAT_REQUESTS: &str = "requests";
pub const STAT_ROWS_WRITTEN: &str = "rows_written";
pub const STAT_DUPLICATES: &str = "duplicate_batches";

/// Seconds after an hour ends before it is rolled up (late flushes are
/// handled anyway; this only avoids rolling up a still-busy hour).
pub const ROLLUP_GRACE_SECS: i64 = 120;
/// How long version-1 import batch ids are kept (imports now use the
/// ledger, kept as long as hour rows).
pub const BATCH_ID_TTL_SECS: i64 = 86_400;
/// A flush-log slot is reused only once its batch id is this old, so a
/// retry within this time is recognised (unless the ring is full).
pub const LOG_ID_TTL_SECS: i64 = 3_600;
/// Most slots in the flush log; past this the oldest slot is reused even if
/// younger than [`LOG_ID_TTL_SECS`] (bounds storage under a flood).
pub const LOG_MAX_SLOTS: usize = 4_096;
/// Most days rolled up by one alarm run (a backlog continues next run).
pub const MAX_DAYS_PER_RUN: i64 = 31;

/// All dimension counts of one bucket of one metric: the `data` column.
/// Stored as JSON `[[dim, value, n], …]`, sorted, so equal contents are
/// equal text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketCounts(pub BTreeMap<(String, String), u64>);

impl BucketCounts {
    pub fn add(&mut self, dim: &str, value: &str, n: u64) {
        let slot = self
            .0
            .entry((dim.to_string(), value.to_string()))
            .or_insert(0);
        *slot = slot.saturating_add(n);
    }

    pub fn merge(&mut self, other: &BucketCounts) {
        for ((d, v), n) in &other.0 {
            self.add(d, v, *n);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Values of `dim` in this bucket.
    pub fn values_of<'a>(&'a self, dim: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .keys()
            .filter(move |(d, _)| d == dim)
            .map(|(_, v)| v.as_str())
    }

    /// The bucket as rows starting at `t`.
    pub fn rows(&self, t: i64, metric: &str) -> impl Iterator<Item = Row> + '_ {
        let metric = metric.to_string();
        self.0
            .iter()
            .map(move |((d, v), n)| Row(t, metric.clone(), d.clone(), v.clone(), *n))
    }

    pub fn encode(&self) -> String {
        let list: Vec<(&str, &str, u64)> = self
            .0
            .iter()
            .map(|((d, v), n)| (d.as_str(), v.as_str(), *n))
            .collect();
        serde_json::to_string(&list).unwrap_or_else(|_| "[]".to_string())
    }

    pub fn decode(text: &str) -> Result<Self, String> {
        let list: Vec<(String, String, u64)> =
            serde_json::from_str(text).map_err(|e| format!("unreadable bucket: {e}"))?;
        let mut out = BucketCounts::default();
        for (d, v, n) in list {
            out.add(&d, &v, n);
        }
        Ok(out)
    }
}

/// Rows grouped per (resolution, metric, bucket start), as a fold or an
/// import writes them.
pub type BucketWrites = BTreeMap<(Resolution, String, i64), BucketCounts>;

/// Groups admitted minute rows into bucket writes, adding each row also to
/// the hour and day buckets already rolled up (see [`write_through`]).
pub fn bucket_writes(rows: Vec<Row>, hour_wm: i64, day_wm: i64) -> BucketWrites {
    let mut out = BucketWrites::new();
    for Row(t, metric, dim, val, n) in rows {
        for res in write_through(t, hour_wm, day_wm) {
            out.entry((res, metric.clone(), res.floor(t)))
                .or_default()
                .add(&dim, &val, n);
        }
        out.entry((Resolution::Minute, metric, t))
            .or_default()
            .add(&dim, &val, n);
    }
    out
}

/// A slot of the flush log, as the ring remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSlot {
    pub slot: i64,
    pub seq: i64,
    pub id: String,
    pub at: i64,
}

/// Where the next appended flush goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotChoice {
    /// Reuse this slot (its batch is folded and old enough).
    Reuse(i64),
    /// The oldest slot must be reused but is not folded yet: fold first.
    FoldFirst,
    /// Add a new slot with this number.
    New(i64),
}

/// The flush log's slots in append order, and the batch ids they hold: the
/// in-memory mirror of `flush_log`, rebuilt from it when the object starts.
#[derive(Debug, Default)]
pub struct LogRing {
    slots: VecDeque<LogSlot>,
    ids: HashSet<String>,
    next_slot: i64,
    next_seq: i64,
}

impl LogRing {
    /// The ring as stored (any order).
    pub fn load(mut slots: Vec<LogSlot>) -> Self {
        slots.sort_by_key(|s| s.seq);
        let next_slot = slots.iter().map(|s| s.slot + 1).max().unwrap_or(0);
        let next_seq = slots.iter().map(|s| s.seq + 1).max().unwrap_or(1);
        LogRing {
            ids: slots.iter().map(|s| s.id.clone()).collect(),
            slots: slots.into(),
            next_slot,
            next_seq,
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The sequence number the next append gets.
    pub fn next_seq(&self) -> i64 {
        self.next_seq
    }

    /// Where to append at `now`, given the highest folded `seq`.
    pub fn choose(&self, now: i64, folded: i64) -> SlotChoice {
        match self.slots.front() {
            Some(oldest)
                if oldest.at <= now - LOG_ID_TTL_SECS || self.slots.len() >= LOG_MAX_SLOTS =>
            {
                if oldest.seq <= folded {
                    SlotChoice::Reuse(oldest.slot)
                } else {
                    SlotChoice::FoldFirst
                }
            }
            _ => SlotChoice::New(self.next_slot),
        }
    }

    /// Records an append that storage accepted into `slot`.
    pub fn appended(&mut self, slot: i64, id: String, at: i64) {
        if self.slots.front().is_some_and(|s| s.slot == slot) {
            if let Some(old) = self.slots.pop_front() {
                self.ids.remove(&old.id);
            }
        }
        self.next_slot = self.next_slot.max(slot + 1);
        self.ids.insert(id.clone());
        self.slots.push_back(LogSlot {
            slot,
            seq: self.next_seq,
            id,
            at,
        });
        self.next_seq += 1;
    }
}

/// Which coarser buckets a freshly written minute row must also update
/// because that period was already rolled up.
pub fn write_through(minute: i64, hour_wm: i64, day_wm: i64) -> Vec<Resolution> {
    let mut out = Vec::new();
    if Resolution::Hour.floor(minute) < hour_wm {
        out.push(Resolution::Hour);
    }
    if Resolution::Day.floor(minute) < day_wm {
        out.push(Resolution::Day);
    }
    out
}

/// One part of a read: rows of resolution `source` in `[from, to)`, summed
/// into buckets of the query's step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPart {
    pub source: Resolution,
    pub from: i64,
    pub to: i64,
}

/// Splits `[from, to)` at the watermarks: day rows below `day_wm`, hour rows
/// below `hour_wm`, minute rows above. Parts never overlap and never read a
/// resolution finer than needed. Empty parts are left out.
pub fn read_plan(step: Resolution, from: i64, to: i64, hour_wm: i64, day_wm: i64) -> Vec<ReadPart> {
    let mut parts = Vec::new();
    let mut push = |source, a: i64, b: i64| {
        if a < b {
            parts.push(ReadPart {
                source,
                from: a,
                to: b,
            });
        }
    };
    match step {
        Resolution::Minute => push(Resolution::Minute, from, to),
        Resolution::Hour => {
            push(Resolution::Hour, from, to.min(hour_wm));
            push(Resolution::Minute, from.max(hour_wm), to);
        }
        Resolution::Day => {
            push(Resolution::Day, from, to.min(day_wm));
            push(Resolution::Hour, from.max(day_wm), to.min(hour_wm));
            push(Resolution::Minute, from.max(hour_wm).max(day_wm), to);
        }
    }
    parts
}

/// The SELECT for one read part of the version-1 `counts` table (while it
/// is being migrated), with `metrics` and `dims` placeholders. Bindings:
/// source res, from, to, then the metrics, then the dims.
pub fn legacy_read_sql(step: Resolution, metrics: usize, dims: usize) -> String {
    let bucket = match step {
        Resolution::Minute => "t".to_string(),
        other => format!("t - (t % {})", other.seconds()),
    };
    format!(
        "SELECT {bucket} AS t, metric, dim, val, SUM(n) AS n FROM counts \
         WHERE res = ? AND t >= ? AND t < ? AND metric IN ({}) AND dim IN ({}) \
         GROUP BY {bucket}, metric, dim, val",
        placeholders(metrics),
        placeholders(dims)
    )
}

fn placeholders(n: usize) -> String {
    vec!["?"; n.max(1)].join(", ")
}

/// What the alarm should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenancePlan {
    /// Roll minute rows of `[a, b)` up into hours.
    pub hours: Option<(i64, i64)>,
    /// Roll hour rows of `[a, b)` up into days.
    pub days: Option<(i64, i64)>,
    /// Watermarks to store once the rollups are written.
    pub hour_wm: i64,
    pub day_wm: i64,
    /// Delete rows of each resolution older than this (never past a watermark).
    pub delete_before: [(Resolution, Option<i64>); 3],
}

/// Plans rollups and retention. `oldest_minute` is the oldest minute row at
/// or after `hour_wm` (where a fresh shard's rollups start), `retention` the
/// days kept per resolution (0 for days = forever). A watermark of 0 means
/// "not started".
pub fn maintenance_plan(
    now: i64,
    hour_wm: i64,
    day_wm: i64,
    oldest_minute: Option<i64>,
    retention_days: (u32, u32, u32),
) -> MaintenancePlan {
    let hour_end = Resolution::Hour.floor(now - ROLLUP_GRACE_SECS);
    let hours = oldest_minute
        .map(|t| Resolution::Hour.floor(t).max(hour_wm))
        .filter(|start| *start < hour_end)
        .map(|start| (start, hour_end));
    let new_hour_wm = hours.map_or(hour_wm, |(_, b)| b);
    // Day rollups start at the first day that has hour rows.
    let day_start = if day_wm == 0 {
        hours.map(|(a, _)| Resolution::Day.floor(a))
    } else {
        Some(day_wm)
    };
    let days = day_start.and_then(|start| {
        let end = Resolution::Day
            .floor(new_hour_wm)
            .min(start + MAX_DAYS_PER_RUN * DAY);
        (start < end).then_some((start, end))
    });
    let new_day_wm = days.map_or(day_start.unwrap_or(0), |(_, b)| b);
    let cutoff = |days: u32| now - i64::from(days) * DAY;
    let (min_days, hour_days, day_days) = retention_days;
    MaintenancePlan {
        hours,
        days,
        hour_wm: new_hour_wm,
        day_wm: new_day_wm,
        delete_before: [
            (Resolution::Minute, Some(cutoff(min_days).min(new_hour_wm))),
            (
                Resolution::Hour,
                Some(Resolution::Hour.floor(cutoff(hour_days)).min(new_day_wm)),
            ),
            (
                Resolution::Day,
                (day_days > 0).then(|| Resolution::Day.floor(cutoff(day_days))),
            ),
        ],
    }
}

/// Remembers, per (hour, metric, dimension), which values a shard has
/// admitted; past K values, new ones are stored as `other`. The memory is a
/// cache of what storage holds: on a miss the caller loads the hour's
/// distinct values from the minute rows.
#[derive(Debug, Default)]
pub struct HourlyAdmission {
    seen: HashMap<(i64, String, String), HashSet<String>>,
}

impl HourlyAdmission {
    /// Maps each capped row's value to itself or `other`, and merges rows
    /// that end up with the same key. `load(hour, metric, dim)` returns the
    /// values already stored for that hour.
    pub fn admit(
        &mut self,
        rows: Vec<Row>,
        k: usize,
        mut load: impl FnMut(i64, &str, &str) -> Vec<String>,
    ) -> Vec<Row> {
        let mut merged: HashMap<(i64, String, String, String), u64> = HashMap::new();
        for row in rows {
            let Row(t, metric, dim, mut val, n) = row;
            if Dim::parse(&dim).is_some_and(Dim::is_capped) && val != OTHER {
                let hour = Resolution::Hour.floor(t);
                let set = self
                    .seen
                    .entry((hour, metric.clone(), dim.clone()))
                    .or_insert_with(|| {
                        load(hour, &metric, &dim)
                            .into_iter()
                            .filter(|v| v != OTHER)
                            .collect()
                    });
                if !set.contains(&val) {
                    if set.len() >= k {
                        val = OTHER.to_string();
                    } else {
                        set.insert(val.clone());
                    }
                }
            }
            *merged.entry((t, metric, dim, val)).or_insert(0) += n;
        }
        let mut out: Vec<Row> = merged
            .into_iter()
            .map(|((t, m, d, v), n)| Row(t, m, d, v, n))
            .collect();
        Row::sort(&mut out);
        out
    }

    /// Forgets everything (after a rolled-back write).
    pub fn clear(&mut self) {
        self.seen.clear();
    }

    /// Forgets hours before `hour` (they no longer receive writes).
    pub fn forget_before(&mut self, hour: i64) {
        self.seen.retain(|(h, _, _), _| *h >= hour);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = crate::time::HOUR;
    const D: i64 = DAY;
    const DAY0: i64 = 20_000 * D;

    #[test]
    fn bucket_counts_round_trip_and_merge() {
        let mut b = BucketCounts::default();
        b.add("count", "", 3);
        b.add("source", "google", 2);
        b.add("source", "a\"b,\\c", 1);
        let text = b.encode();
        assert_eq!(BucketCounts::decode(&text).unwrap(), b);
        let mut c = BucketCounts::default();
        c.add("count", "", 4);
        c.merge(&b);
        assert_eq!(c.0[&("count".to_string(), String::new())], 7);
        assert_eq!(c.values_of("source").count(), 2);
        assert!(BucketCounts::decode("{").is_err());
        let rows: Vec<Row> = b.rows(60, "m").collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows.iter().map(Row::n).sum::<u64>(), 6);
    }

    #[test]
    fn close_runs_read_neighbours_together_and_far_buckets_apart() {
        let mut w = BucketWrites::new();
        let mut one = BucketCounts::default();
        one.add("count", "", 1);
        for t in [0, 60, 120, 600, 5_000] {
            w.insert((Resolution::Minute, "a".into(), DAY0 + t), one.clone());
        }
        w.insert((Resolution::Minute, "b".into(), DAY0), one.clone());
        w.insert((Resolution::Hour, "a".into(), DAY0), one.clone());
        let runs: Vec<(Resolution, &str, i64, i64, usize)> = close_runs(w)
            .iter()
            .map(|r| {
                (
                    r.res,
                    r.metric.as_str(),
                    r.from - DAY0,
                    r.to - DAY0,
                    r.buckets.len(),
                )
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|(res, m, a, b, n)| (res, if m == "a" { "a" } else { "b" }, a, b, n))
            .collect();
        assert_eq!(
            runs,
            vec![
                (Resolution::Minute, "a", 0, 600, 4),
                (Resolution::Minute, "a", 5_000, 5_000, 1),
                (Resolution::Minute, "b", 0, 0, 1),
                (Resolution::Hour, "a", 0, 0, 1),
            ]
        );
        assert_eq!(bucket_put_sql(BUCKET_PUT_CHUNK).matches('?').count(), 100);
        assert!(ledger_put_sql(LEDGER_PUT_CHUNK).matches('?').count() <= 100);
    }

    #[test]
    fn bucket_writes_group_rows_and_write_through_rolled_up_periods() {
        let row = |t: i64, n| Row(t, "m".into(), "count".into(), String::new(), n);
        let hour_wm = DAY0 + 5 * H;
        let w = bucket_writes(
            vec![
                row(DAY0 + 6 * H, 1),
                row(DAY0 + 6 * H, 2),
                row(DAY0 + 4 * H + 60, 5),
            ],
            hour_wm,
            DAY0,
        );
        let got: Vec<(Resolution, i64, u64)> = w
            .iter()
            .map(|((res, _, t), b)| (*res, *t, b.0.values().sum()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Resolution::Minute, DAY0 + 4 * H + 60, 5),
                (Resolution::Minute, DAY0 + 6 * H, 3),
                (Resolution::Hour, DAY0 + 4 * H, 5),
            ]
        );
    }

    #[test]
    fn the_log_ring_reuses_old_folded_slots_and_grows_otherwise() {
        let mut ring = LogRing::load(Vec::new());
        assert_eq!(ring.choose(1_000, 0), SlotChoice::New(0));
        ring.appended(0, "a".into(), 1_000);
        ring.appended(1, "b".into(), 1_010);
        assert!(ring.contains("a"));
        // Young ids are kept: a new slot.
        assert_eq!(ring.choose(1_020, 2), SlotChoice::New(2));
        // Old and folded: reuse, and the old id is forgotten.
        let later = 1_000 + LOG_ID_TTL_SECS;
        assert_eq!(ring.choose(later, 2), SlotChoice::Reuse(0));
        // Old but not folded: fold first.
        assert_eq!(ring.choose(later, 0), SlotChoice::FoldFirst);
        ring.appended(0, "c".into(), later);
        assert!(!ring.contains("a"));
        assert!(ring.contains("c"));
        assert_eq!(ring.len(), 2);
        assert_eq!(ring.next_seq(), 4);
        // Reloaded from storage, the ring is the same.
        let again = LogRing::load(vec![
            LogSlot {
                slot: 0,
                seq: 3,
                id: "c".into(),
                at: later,
            },
            LogSlot {
                slot: 1,
                seq: 2,
                id: "b".into(),
                at: 1_010,
            },
        ]);
        assert_eq!(again.choose(later, 3), SlotChoice::New(2));
        assert_eq!(
            again.choose(1_010 + LOG_ID_TTL_SECS, 3),
            SlotChoice::Reuse(1)
        );
        assert_eq!(again.next_seq(), 4);
    }

    #[test]
    fn a_full_ring_reuses_its_oldest_slot_even_when_young() {
        let mut ring = LogRing::load(Vec::new());
        for i in 0..LOG_MAX_SLOTS as i64 {
            ring.appended(i, format!("id{i}"), 100);
        }
        assert_eq!(ring.choose(101, 0), SlotChoice::FoldFirst);
        assert_eq!(ring.choose(101, i64::MAX), SlotChoice::Reuse(0));
    }

    #[test]
    fn write_through_only_below_watermarks() {
        assert!(write_through(DAY0 + 5 * H, DAY0 + 5 * H, DAY0).is_empty());
        assert_eq!(
            write_through(DAY0 + 4 * H + 60, DAY0 + 5 * H, DAY0),
            vec![Resolution::Hour]
        );
        assert_eq!(
            write_through(DAY0 - 60, DAY0 + 5 * H, DAY0),
            vec![Resolution::Hour, Resolution::Day]
        );
    }

    #[test]
    fn read_plan_splits_at_watermarks_without_overlap() {
        let hour_wm = DAY0 + 5 * H;
        let day_wm = DAY0;
        let plan = read_plan(Resolution::Day, DAY0 - 2 * D, DAY0 + D, hour_wm, day_wm);
        assert_eq!(
            plan,
            vec![
                ReadPart {
                    source: Resolution::Day,
                    from: DAY0 - 2 * D,
                    to: DAY0
                },
                ReadPart {
                    source: Resolution::Hour,
                    from: DAY0,
                    to: hour_wm
                },
                ReadPart {
                    source: Resolution::Minute,
                    from: hour_wm,
                    to: DAY0 + D
                },
            ]
        );
        let plan = read_plan(
            Resolution::Hour,
            DAY0 + 6 * H,
            DAY0 + 8 * H,
            hour_wm,
            day_wm,
        );
        assert_eq!(
            plan,
            vec![ReadPart {
                source: Resolution::Minute,
                from: DAY0 + 6 * H,
                to: DAY0 + 8 * H
            }]
        );
        let plan = read_plan(Resolution::Hour, DAY0, DAY0 + 2 * H, hour_wm, day_wm);
        assert_eq!(
            plan,
            vec![ReadPart {
                source: Resolution::Hour,
                from: DAY0,
                to: DAY0 + 2 * H
            }]
        );
        // A fresh shard (no watermarks) reads minutes only.
        let plan = read_plan(Resolution::Day, DAY0, DAY0 + D, 0, 0);
        assert_eq!(
            plan,
            vec![ReadPart {
                source: Resolution::Minute,
                from: DAY0,
                to: DAY0 + D
            }]
        );
    }

    #[test]
    fn legacy_read_sql_buckets_by_step() {
        let s = legacy_read_sql(Resolution::Hour, 2, 3);
        assert!(s.contains("t - (t % 3600)"));
        assert_eq!(s.matches('?').count(), 3 + 2 + 3);
        assert!(legacy_read_sql(Resolution::Minute, 1, 1).starts_with("SELECT t AS t"));
    }

    #[test]
    fn fresh_shard_rolls_up_from_its_oldest_minute() {
        let now = DAY0 + 2 * D + 3 * H + 600;
        let plan = maintenance_plan(now, 0, 0, Some(DAY0 + 7 * H + 60), (8, 400, 0));
        assert_eq!(plan.hours, Some((DAY0 + 7 * H, DAY0 + 2 * D + 3 * H)));
        assert_eq!(plan.days, Some((DAY0, DAY0 + 2 * D)));
        // Minute rows are kept for 8 days but never past the hour watermark.
        assert_eq!(
            plan.delete_before[0],
            (Resolution::Minute, Some(now - 8 * D))
        );
        assert_eq!(plan.delete_before[2], (Resolution::Day, None));
    }

    #[test]
    fn nothing_to_roll_up_inside_the_current_hour() {
        let now = DAY0 + 5 * H + 60; // within the grace period
        let plan = maintenance_plan(now, DAY0 + 4 * H, DAY0, Some(DAY0 + 4 * H), (8, 400, 0));
        assert_eq!(plan.hours, None);
        assert_eq!(plan.days, None);
        let plan = maintenance_plan(
            now + 120,
            DAY0 + 4 * H,
            DAY0,
            Some(DAY0 + 4 * H),
            (8, 400, 0),
        );
        assert_eq!(plan.hours, Some((DAY0 + 4 * H, DAY0 + 5 * H)));
    }

    #[test]
    fn retention_never_deletes_what_is_not_rolled_up() {
        let now = DAY0 + 30 * D;
        let plan = maintenance_plan(now, DAY0, DAY0, None, (8, 10, 20));
        // Hour watermark stuck at DAY0 (no minutes): minute deletion stops there.
        assert_eq!(plan.delete_before[0].1, Some(DAY0));
        assert_eq!(plan.delete_before[2].1, Some(now - 20 * D));
    }

    #[test]
    fn day_rollups_start_where_hour_rows_start_even_after_a_gap() {
        // First run: hours of day 0 only, no complete day yet.
        let plan = maintenance_plan(DAY0 + 20 * H, 0, 0, Some(DAY0 + 10 * H), (8, 400, 0));
        assert_eq!(plan.days, None);
        assert_eq!(plan.day_wm, DAY0);
        // Days later, traffic resumes: day 0 is still rolled up.
        let plan = maintenance_plan(
            DAY0 + 3 * D + 5 * H,
            plan.hour_wm,
            plan.day_wm,
            Some(DAY0 + 3 * D),
            (8, 400, 0),
        );
        assert_eq!(plan.days, Some((DAY0, DAY0 + 3 * D)));
        assert_eq!(plan.day_wm, DAY0 + 3 * D);
    }

    #[test]
    fn day_backlog_is_processed_in_slices() {
        let now = DAY0 + 100 * D;
        let plan = maintenance_plan(now, DAY0 + 99 * D, DAY0, None, (8, 400, 0));
        assert_eq!(plan.days, Some((DAY0, DAY0 + MAX_DAYS_PER_RUN * D)));
    }

    #[test]
    fn sketches_are_kept_as_long_as_hour_rows() {
        assert_eq!(
            sketch_delete_before(DAY0 + 5 * H + 7, 400),
            DAY0 - 400 * D + 5 * H
        );
    }

    #[test]
    fn hourly_admission_caps_distinct_values_per_hour() {
        let mut adm = HourlyAdmission::default();
        let row = |t: i64, v: &str| Row(t, "m".into(), "utm_source".into(), v.into(), 1);
        let mut loads = 0;
        let out = adm.admit(
            vec![
                row(DAY0, "a"),
                row(DAY0 + 60, "b"),
                row(DAY0 + 120, "c"),
                row(DAY0 + 180, "a"),
            ],
            2,
            |_, _, _| {
                loads += 1;
                vec![]
            },
        );
        let vals: Vec<(&str, u64)> = out.iter().map(|r| (r.value(), r.n())).collect();
        assert_eq!(vals, vec![("a", 1), ("b", 1), ("other", 1), ("a", 1)]);
        assert_eq!(loads, 1);
        // The next hour starts afresh; what storage already holds is loaded.
        let out = adm.admit(
            vec![row(DAY0 + H, "z"), row(DAY0 + H, "y")],
            2,
            |_, _, _| vec!["x".into(), "other".into()],
        );
        let vals: Vec<&str> = out.iter().map(|r| r.value()).collect();
        assert_eq!(vals, vec!["other", "z"]);
        // Uncapped dimensions pass through.
        let st = Row(DAY0, "m".into(), "status".into(), "2xx".into(), 4);
        assert_eq!(adm.admit(vec![st.clone()], 0, |_, _, _| vec![]), vec![st]);
        adm.forget_before(DAY0 + H);
        assert_eq!(adm.seen.len(), 1);
    }
}
