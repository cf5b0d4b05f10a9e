//! A counter shard's operations over any SQLite connection: applying a
//! flushed batch (and its visitor sketches) exactly once, answering range
//! reads, rolling up and expiring buckets, and reporting statistics.
//!
//! The Durable Object runs this over its `ctx.storage.sql`; the native tests
//! run it over an in-memory SQLite, so the real statements are exercised
//! without the Workers runtime. Every method issues its statements without
//! yielding, so on a Durable Object each call commits atomically.

use crate::series::ShardQuery;
use crate::sketch::VisitorSketch;
use crate::store::{self, HourlyAdmission, ReadPart};
use crate::tally::{fold_top_k, Batch, Flush, Resolution, Row, SketchRow};
use crate::uniques::SketchQuery;
use serde::Serialize;
use std::cell::RefCell;
use std::fmt;

/// A value bound to, or read from, a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl SqlValue {
    fn int(&self) -> Option<i64> {
        match self {
            SqlValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            SqlValue::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn blob(&self) -> Option<&[u8]> {
        match self {
            SqlValue::Blob(b) => Some(b),
            _ => None,
        }
    }
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Int(v)
    }
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_string())
    }
}

/// What one statement returned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SqlOutput {
    pub rows: Vec<Vec<SqlValue>>,
    pub rows_written: u64,
}

/// A SQLite connection: the Durable Object's storage, or a native one.
pub trait Sql {
    fn exec(&self, sql: &str, binds: Vec<SqlValue>) -> Result<SqlOutput, String>;

    /// [`exec`](Self::exec), a failure naming what was being done.
    fn run(
        &self,
        doing: &'static str,
        sql: &str,
        binds: Vec<SqlValue>,
    ) -> Result<SqlOutput, StoreError> {
        self.exec(sql, binds)
            .map_err(|cause| StoreError { doing, cause })
    }

    /// The rows [`run`](Self::run) returns.
    fn rows(
        &self,
        doing: &'static str,
        sql: &str,
        binds: Vec<SqlValue>,
    ) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        self.run(doing, sql, binds).map(|out| out.rows)
    }

    /// Runs each statement of a schema (`CREATE … IF NOT EXISTS`: idempotent).
    fn create(&self, doing: &'static str, schema: &[&str]) -> Result<(), StoreError> {
        for stmt in schema {
            self.run(doing, stmt, Vec::new())?;
        }
        Ok(())
    }
}

/// A failed storage operation, with what was being done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    pub doing: &'static str,
    pub cause: String,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.doing, self.cause)
    }
}

impl std::error::Error for StoreError {}

/// Statistics of one shard, as `/api/stats` shows them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ShardStats {
    pub flushes: i64,
    pub requests: i64,
    pub rows_written: i64,
    pub duplicate_batches: i64,
    pub hour_watermark: i64,
    pub day_watermark: i64,
}

/// The result of applying a batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Applied {
    /// False when the batch id had been applied before (a retry).
    pub applied: bool,
    pub rows_written: u64,
}

/// Settings the store needs from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// K distinct values per metric, dimension and hour.
    pub max_values: usize,
    /// Retention in days: minutes, hours, days (0 = forever).
    pub retention_days: (u32, u32, u32),
}

pub struct CounterStore<S: Sql> {
    sql: S,
    limits: StoreLimits,
    admission: RefCell<HourlyAdmission>,
}

impl<S: Sql> CounterStore<S> {
    /// Wraps a connection and creates the schema if needed.
    pub fn open(sql: S, limits: StoreLimits) -> Result<Self, StoreError> {
        sql.create("creating the schema", store::SCHEMA)?;
        Ok(CounterStore {
            sql,
            limits,
            admission: RefCell::new(HourlyAdmission::default()),
        })
    }

    /// Adds a batch to the minute buckets (and to hour/day buckets already
    /// rolled up), once per batch id.
    pub fn apply(&self, batch: Batch, now: i64) -> Result<Applied, StoreError> {
        self.apply_flush(Flush::from(batch), now)
    }

    /// [`apply`](Self::apply), and merges the flush's visitor sketches into
    /// the stored ones, in the same atomic write and once per batch id.
    pub fn apply_flush(&self, flush: Flush, now: i64) -> Result<Applied, StoreError> {
        let Flush {
            id,
            requests,
            rows,
            sketches,
        } = flush;
        let batch = Batch { id, requests, rows };
        let seen = self.sql.run(
            "checking the batch id",
            "SELECT 1 FROM applied_batches WHERE id = ?",
            vec![batch.id.as_str().into()],
        )?;
        if !seen.rows.is_empty() {
            self.bump(&[(store::STAT_DUPLICATES, 1)])?;
            return Ok(Applied {
                applied: false,
                rows_written: 0,
            });
        }
        let (hour_wm, day_wm) = self.watermarks()?;
        let rows = self.admit(batch.rows)?;
        let mut writes: Vec<(Resolution, Row)> = Vec::with_capacity(rows.len());
        for row in rows {
            for res in store::write_through(row.t(), hour_wm, day_wm) {
                let mut coarse = row.clone();
                coarse.0 = res.floor(row.t());
                writes.push((res, coarse));
            }
            writes.push((Resolution::Minute, row));
        }
        let mut written = self.upsert(&writes)?;
        written += self.merge_sketches(sketches)?;
        written += self
            .sql
            .run(
                "recording the batch id",
                "INSERT INTO applied_batches (id, at) VALUES (?, ?)",
                vec![batch.id.as_str().into(), now.into()],
            )?
            .rows_written;
        // The three statistics rows below are writes too.
        written += 3;
        self.bump(&[
            (store::STAT_FLUSHES, 1),
            (store::STAT_REQUESTS, batch.requests),
            (store::STAT_ROWS_WRITTEN, written),
        ])?;
        Ok(Applied {
            applied: true,
            rows_written: written,
        })
    }

    fn admit(&self, rows: Vec<Row>) -> Result<Vec<Row>, StoreError> {
        let mut admission = self.admission.try_borrow_mut().map_err(|_| StoreError {
            doing: "admitting dimension values",
            cause: "re-entered".into(),
        })?;
        let mut failure = None;
        let admitted = admission.admit(rows, self.limits.max_values, |hour, metric, dim| {
            match self.sql.run(
                "loading the hour's dimension values",
                "SELECT DISTINCT val FROM counts WHERE res = 0 AND metric = ? AND t >= ? AND t < ? AND dim = ?",
                vec![metric.into(), hour.into(), (hour + 3600).into(), dim.into()],
            ) {
                Ok(out) => out
                    .rows
                    .iter()
                    .filter_map(|r| r.first().and_then(SqlValue::text).map(str::to_string))
                    .collect(),
                Err(e) => {
                    failure = Some(e);
                    Vec::new()
                }
            }
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(admitted),
        }
    }

    /// Adds each row's count into its bucket; returns rows written.
    fn upsert(&self, writes: &[(Resolution, Row)]) -> Result<u64, StoreError> {
        let mut written = 0;
        for chunk in writes.chunks(store::UPSERT_CHUNK) {
            let mut binds = Vec::with_capacity(chunk.len() * 6);
            for (res, row) in chunk {
                binds.push(res.code().into());
                binds.push(row.t().into());
                binds.push(row.metric().into());
                binds.push(row.dim().into());
                binds.push(row.value().into());
                binds.push(SqlValue::Int(i64::try_from(row.n()).unwrap_or(i64::MAX)));
            }
            written += self
                .sql
                .run("writing counts", &store::upsert_sql(chunk.len()), binds)?
                .rows_written;
        }
        Ok(written)
    }

    /// Merges each sketch into the stored one of its (metric, hour). A
    /// stored sketch that cannot be read is replaced (it could never be
    /// merged again, and failing would lose the whole batch's counts).
    fn merge_sketches(&self, sketches: Vec<SketchRow>) -> Result<u64, StoreError> {
        let mut written = 0;
        for SketchRow(hour, metric, mut sketch) in sketches {
            let stored = self.sql.run(
                "reading a visitor sketch",
                store::SKETCH_GET_SQL,
                vec![metric.as_str().into(), hour.into()],
            )?;
            let previous = stored
                .rows
                .first()
                .and_then(|r| r.first())
                .and_then(SqlValue::blob)
                .and_then(|b| VisitorSketch::from_bytes(b).ok());
            if let Some(previous) = previous {
                sketch.merge(&previous);
            }
            written += self
                .sql
                .run(
                    "writing a visitor sketch",
                    store::SKETCH_PUT_SQL,
                    vec![
                        metric.as_str().into(),
                        hour.into(),
                        SqlValue::Blob(sketch.to_bytes()),
                    ],
                )?
                .rows_written;
        }
        Ok(written)
    }

    /// The visitor sketches of `q` (one shard's share): per hour, or merged
    /// into one at `q.from`. Unreadable stored sketches are skipped.
    pub fn read_sketches(&self, q: &SketchQuery) -> Result<Vec<(i64, VisitorSketch)>, StoreError> {
        let rows = self
            .sql
            .run(
                "reading visitor sketches",
                store::SKETCH_RANGE_SQL,
                vec![q.metric.as_str().into(), q.from.into(), q.to.into()],
            )?
            .rows;
        let hourly = rows.iter().filter_map(|r| {
            let hour = r.first()?.int()?;
            let sketch = VisitorSketch::from_bytes(r.get(1)?.blob()?).ok()?;
            Some((hour, sketch))
        });
        if q.hourly {
            return Ok(hourly.collect());
        }
        let mut merged = VisitorSketch::new();
        for (_, sketch) in hourly {
            merged.merge(&sketch);
        }
        Ok(if merged.is_empty() {
            Vec::new()
        } else {
            vec![(q.from, merged)]
        })
    }

    /// Rows of `q`, summed per bucket of its step (one shard's share).
    pub fn read(&self, q: &ShardQuery) -> Result<Vec<Row>, StoreError> {
        let (hour_wm, day_wm) = self.watermarks()?;
        let mut out = Vec::new();
        for ReadPart { source, from, to } in store::read_plan(q.step, q.from, q.to, hour_wm, day_wm)
        {
            let mut binds: Vec<SqlValue> = vec![source.code().into(), from.into(), to.into()];
            binds.extend(q.metrics.iter().map(|m| SqlValue::from(m.as_str())));
            binds.extend(q.dims.iter().map(|d| SqlValue::from(d.as_str())));
            let sql = store::read_sql(q.step, q.metrics.len(), q.dims.len());
            out.extend(
                self.sql
                    .run("reading counts", &sql, binds)?
                    .rows
                    .iter()
                    .map(Vec::as_slice)
                    .filter_map(to_row),
            );
        }
        Ok(out)
    }

    /// Rollups and retention at `now`.
    pub fn maintain(&self, now: i64) -> Result<(), StoreError> {
        let (hour_wm, day_wm) = self.watermarks()?;
        let oldest = self
            .sql
            .run(
                "finding the oldest minute",
                "SELECT MIN(t) FROM counts WHERE res = 0 AND t >= ?",
                vec![hour_wm.into()],
            )?
            .rows
            .first()
            .and_then(|r| r.first())
            .and_then(SqlValue::int);
        let plan =
            store::maintenance_plan(now, hour_wm, day_wm, oldest, self.limits.retention_days);
        if let Some((a, b)) = plan.hours {
            self.sql.run(
                "rolling up hours",
                store::ROLLUP_HOURS_SQL,
                vec![a.into(), b.into()],
            )?;
        }
        if let Some((a, b)) = plan.days {
            let rows: Vec<Row> = self
                .sql
                .run(
                    "reading hours for days",
                    store::DAY_SOURCE_SQL,
                    vec![a.into(), b.into()],
                )?
                .rows
                .iter()
                .map(Vec::as_slice)
                .filter_map(to_row)
                .collect();
            let writes: Vec<(Resolution, Row)> = fold_top_k(rows, self.limits.max_values)
                .into_iter()
                .map(|r| (Resolution::Day, r))
                .collect();
            self.upsert(&writes)?;
        }
        self.set_meta(store::HOUR_WM, plan.hour_wm)?;
        self.set_meta(store::DAY_WM, plan.day_wm)?;
        for (res, before) in plan.delete_before {
            if let Some(before) = before {
                self.sql.run(
                    "expiring counts",
                    "DELETE FROM counts WHERE res = ? AND t < ?",
                    vec![res.code().into(), before.into()],
                )?;
            }
        }
        self.sql.run(
            "expiring visitor sketches",
            "DELETE FROM visitor_sketches WHERE hour < ?",
            vec![store::sketch_delete_before(now, self.limits.retention_days.1).into()],
        )?;
        self.sql.run(
            "expiring batch ids",
            "DELETE FROM applied_batches WHERE at < ?",
            vec![(now - store::BATCH_ID_TTL_SECS).into()],
        )?;
        if let Ok(mut adm) = self.admission.try_borrow_mut() {
            adm.forget_before(Resolution::Hour.floor(now) - 3600);
        }
        Ok(())
    }

    /// Whether any minute rows remain (maintenance still has work ahead).
    pub fn has_minutes(&self) -> Result<bool, StoreError> {
        Ok(!self
            .sql
            .run(
                "checking for minutes",
                "SELECT 1 FROM counts WHERE res = 0 LIMIT 1",
                Vec::new(),
            )?
            .rows
            .is_empty())
    }

    pub fn stats(&self) -> Result<ShardStats, StoreError> {
        let rows = self
            .sql
            .run("reading statistics", "SELECT key, v FROM meta", Vec::new())?
            .rows;
        let get = |k: &str| {
            rows.iter()
                .find(|r| r.first().and_then(SqlValue::text) == Some(k))
                .and_then(|r| r.get(1).and_then(SqlValue::int))
                .unwrap_or(0)
        };
        Ok(ShardStats {
            flushes: get(store::STAT_FLUSHES),
            requests: get(store::STAT_REQUESTS),
            rows_written: get(store::STAT_ROWS_WRITTEN),
            duplicate_batches: get(store::STAT_DUPLICATES),
            hour_watermark: get(store::HOUR_WM),
            day_watermark: get(store::DAY_WM),
        })
    }

    fn watermarks(&self) -> Result<(i64, i64), StoreError> {
        let s = self.stats()?;
        Ok((s.hour_watermark, s.day_watermark))
    }

    fn bump(&self, stats: &[(&str, u64)]) -> Result<(), StoreError> {
        for (key, by) in stats {
            self.sql.run(
                "updating statistics",
                "INSERT INTO meta (key, v) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET v = v + excluded.v",
                vec![(*key).into(), SqlValue::Int(i64::try_from(*by).unwrap_or(i64::MAX))],
            )?;
        }
        Ok(())
    }

    fn set_meta(&self, key: &str, v: i64) -> Result<(), StoreError> {
        self.sql.run(
            "updating a watermark",
            "INSERT INTO meta (key, v) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET v = excluded.v",
            vec![key.into(), v.into()],
        )?;
        Ok(())
    }
}

/// `[t, metric, dim, val, n]` → a row; malformed rows are skipped.
fn to_row(r: &[SqlValue]) -> Option<Row> {
    Some(Row(
        r.first()?.int()?,
        r.get(1)?.text()?.to_string(),
        r.get(2)?.text()?.to_string(),
        r.get(3)?.text()?.to_string(),
        u64::try_from(r.get(4)?.int()?).ok()?,
    ))
}
