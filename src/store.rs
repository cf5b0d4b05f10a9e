//! The storage model of a counter shard: its SQLite schema and statements,
//! the hourly cardinality admission, and the plans for rollups, retention
//! and reads. Pure: the Durable Object executes these plans.
//!
//! One table `counts(res, t, metric, dim, val, n)` holds minute (`res` 0),
//! hour (1) and day (2) buckets. Watermarks say how far rollups have gone:
//! every hour before `hour_wm` has hour rows built from its minute rows, and
//! every day before `day_wm` (≤ `hour_wm`) has day rows built from hour rows.
//! A minute row that arrives for an hour already rolled up is also added to
//! the hour (and day) row in the same write, so rollups never miss late data.
//! Reads combine the coarsest rows below each watermark with finer rows
//! above it, so a range is never counted twice or skipped.
//!
//! Table `visitor_sketches(metric, hour, sketch)` holds one visitor sketch
//! per metric and UTC hour, merged (register-wise maximum) with every flush
//! that carries one. Sketches are never rolled up: any range is the merge of
//! its hours. They are kept as long as hour rows.

use crate::tally::{Dim, Resolution, Row, DAY_SECS, OTHER};
use std::collections::{HashMap, HashSet};

pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS counts (
        res INTEGER NOT NULL, t INTEGER NOT NULL, metric TEXT NOT NULL,
        dim TEXT NOT NULL, val TEXT NOT NULL, n INTEGER NOT NULL,
        PRIMARY KEY (res, metric, t, dim, val)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS applied_batches (
        id TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS visitor_sketches (
        metric TEXT NOT NULL, hour INTEGER NOT NULL, sketch BLOB NOT NULL,
        PRIMARY KEY (metric, hour)) WITHOUT ROWID",
];

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
    Resolution::Hour.floor(now - i64::from(hour_retention_days) * DAY_SECS)
}

/// Rows per multi-row upsert: 6 bound values each, under the 100-parameter
/// limit of Durable Object SQL.
pub const UPSERT_CHUNK: usize = 16;

/// `INSERT … VALUES (?,?,?,?,?,?) × rows … ON CONFLICT add`.
pub fn upsert_sql(rows: usize) -> String {
    let mut s = String::from("INSERT INTO counts (res, t, metric, dim, val, n) VALUES ");
    for i in 0..rows {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str("(?, ?, ?, ?, ?, ?)");
    }
    s.push_str(" ON CONFLICT (res, metric, t, dim, val) DO UPDATE SET n = n + excluded.n");
    s
}

/// Hour rows from the minute rows of `[?1, ?2)`.
pub const ROLLUP_HOURS_SQL: &str = "INSERT INTO counts (res, t, metric, dim, val, n)
    SELECT 1, t - (t % 3600), metric, dim, val, SUM(n) FROM counts
    WHERE res = 0 AND t >= ?1 AND t < ?2 GROUP BY t - (t % 3600), metric, dim, val
    ON CONFLICT (res, metric, t, dim, val) DO UPDATE SET n = n + excluded.n";

/// Hour rows of `[?1, ?2)` summed per UTC day, to be folded to top-K.
pub const DAY_SOURCE_SQL: &str = "SELECT t - (t % 86400) AS t, metric, dim, val, SUM(n) AS n
    FROM counts WHERE res = 1 AND t >= ?1 AND t < ?2
    GROUP BY t - (t % 86400), metric, dim, val";

/// Keys of the `meta` table.
pub const HOUR_WM: &str = "hour_wm";
pub const DAY_WM: &str = "day_wm";
pub const STAT_FLUSHES: &str = "flushes";
pub const STAT_REQUESTS: &str = "requests";
pub const STAT_ROWS_WRITTEN: &str = "rows_written";
pub const STAT_DUPLICATES: &str = "duplicate_batches";

/// Seconds after an hour ends before it is rolled up (late flushes are
/// handled anyway; this only avoids rolling up a still-busy hour).
pub const ROLLUP_GRACE_SECS: i64 = 120;
/// How long applied batch ids are remembered for de-duplication.
pub const BATCH_ID_TTL_SECS: i64 = 86_400;
/// Most days rolled up by one alarm run (a backlog continues next run).
pub const MAX_DAYS_PER_RUN: i64 = 31;

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

/// The SELECT for one read part, with `metrics` and `dims` placeholders.
/// Bindings: source res, from, to, then the metrics, then the dims.
pub fn read_sql(step: Resolution, metrics: usize, dims: usize) -> String {
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
            .min(start + MAX_DAYS_PER_RUN * DAY_SECS);
        (start < end).then_some((start, end))
    });
    let new_day_wm = days.map_or(day_start.unwrap_or(0), |(_, b)| b);
    let cutoff = |days: u32| now - i64::from(days) * DAY_SECS;
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

    /// Forgets hours before `hour` (they no longer receive writes).
    pub fn forget_before(&mut self, hour: i64) {
        self.seen.retain(|(h, _, _), _| *h >= hour);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = crate::tally::HOUR_SECS;
    const D: i64 = DAY_SECS;
    const DAY0: i64 = 20_000 * D;

    #[test]
    fn upsert_sql_has_six_parameters_per_row() {
        let s = upsert_sql(UPSERT_CHUNK);
        assert_eq!(s.matches('?').count(), 6 * UPSERT_CHUNK);
        const { assert!(6 * UPSERT_CHUNK <= 100) };
        assert!(s.ends_with("n = n + excluded.n"));
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
    fn read_sql_buckets_by_step() {
        let s = read_sql(Resolution::Hour, 2, 3);
        assert!(s.contains("t - (t % 3600)"));
        assert_eq!(s.matches('?').count(), 3 + 2 + 3);
        assert!(read_sql(Resolution::Minute, 1, 1).starts_with("SELECT t AS t"));
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
