//! A counter shard's operations over any SQLite connection: applying a
//! flushed batch (and its visitor sketches) exactly once, answering range
//! reads, rolling up and expiring buckets, and reporting statistics.
//!
//! The Durable Object runs this over its `ctx.storage.sql`; the native tests
//! and the fleet cost model run it over SQLite, so the real statements are
//! exercised without the Workers runtime. Every multi-statement write (a
//! fold, an import, a migration slice, maintenance) runs in one
//! [`Sql::transaction`]: all of it or nothing, so a statement failing
//! halfway never leaves counts that a retry would add again.

use crate::count::tally::{fold_top_k, Batch, Flush, Row, SketchRow};
use crate::report::series::ShardQuery;
use crate::report::uniques::SketchQuery;
use crate::sql::{Sql, SqlValue, StoreError};
use crate::time::Resolution;
use crate::windows::schema::{
    self, BucketCounts, BucketWrites, HourlyAdmission, LogRing, LogSlot, ReadPart, SlotChoice,
};
use crate::windows::sketch::VisitorSketch;
use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Statistics of one shard, as `/api/stats` shows them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ShardStats {
    /// Batches counted: live flushes folded, and imports.
    pub flushes: i64,
    /// Visitor requests those batches carried.
    pub requests: i64,
    /// Every row inserted, updated or deleted by this shard (what
    /// Cloudflare bills), folds, imports and maintenance included.
    pub rows_written: i64,
    /// Batches refused as already applied (retries).
    pub duplicate_batches: i64,
    /// Flushes appended and not yet folded (their rows are counted above
    /// once folded).
    pub pending_flushes: i64,
    pub hour_watermark: i64,
    pub day_watermark: i64,
    pub schema_version: i64,
    /// Whether version-1 rows are still being migrated.
    pub migrating: bool,
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

/// An imported line: (metric, minute, dimension, value, count).
type LedgerKey = (String, i64, String, String, u64);

/// The `shard_state` row: the fold mark and the statistics, one row so
/// that a fold updates them with one write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ShardState {
    folded: i64,
    flushes: i64,
    requests: i64,
    rows_written: i64,
    duplicates: i64,
}

pub struct CounterStore<S: Sql> {
    sql: S,
    limits: StoreLimits,
    admission: RefCell<HourlyAdmission>,
    ring: RefCell<LogRing>,
    /// The stored `shard_state` row.
    state: Cell<ShardState>,
    /// Duplicates seen since the state was last saved.
    unsaved_duplicates: Cell<i64>,
    /// The version-1 `counts` table is still there.
    legacy: Cell<bool>,
}

impl<S: Sql> CounterStore<S> {
    /// Wraps a connection, creates or upgrades the schema, and loads the
    /// flush log's ring and the shard state.
    pub fn open(sql: S, limits: StoreLimits) -> Result<Self, StoreError> {
        sql.create("creating the schema", schema::SCHEMA)?;
        let legacy = !sql
            .rows(
                "looking for version-1 rows",
                schema::LEGACY_EXISTS_SQL,
                Vec::new(),
            )?
            .is_empty();
        let slots = sql
            .rows("loading the flush log", schema::LOG_RING_SQL, Vec::new())?
            .iter()
            .filter_map(|r| {
                Some(LogSlot {
                    slot: r.first()?.int()?,
                    seq: r.get(1)?.int()?,
                    id: r.get(2)?.text()?.to_string(),
                    at: r.get(3)?.int()?,
                })
            })
            .collect();
        let store = CounterStore {
            sql,
            limits,
            admission: RefCell::new(HourlyAdmission::default()),
            ring: RefCell::new(LogRing::load(slots)),
            state: Cell::new(ShardState::default()),
            unsaved_duplicates: Cell::new(0),
            legacy: Cell::new(legacy),
        };
        store.init_state()?;
        Ok(store)
    }

    /// Creates the state row on first open (carrying over version-1
    /// statistics) and loads it.
    fn init_state(&self) -> Result<(), StoreError> {
        let read = || -> Result<Option<ShardState>, StoreError> {
            Ok(self
                .sql
                .rows(
                    "reading the shard state",
                    "SELECT folded, flushes, requests, rows_written, duplicates FROM shard_state WHERE id = 0",
                    Vec::new(),
                )?
                .first()
                .map(|r| {
                    let v = |i: usize| r.get(i).and_then(SqlValue::int).unwrap_or(0);
                    ShardState {
                        folded: v(0),
                        flushes: v(1),
                        requests: v(2),
                        rows_written: v(3),
                        duplicates: v(4),
                    }
                }))
        };
        if let Some(state) = read()? {
            self.state.set(state);
            return Ok(());
        }
        let meta = |k: &str| self.meta(k);
        let seeded = ShardState {
            folded: 0,
            flushes: meta(schema::STAT_FLUSHES)?,
            requests: meta(schema::STAT_REQUESTS)?,
            rows_written: meta(schema::STAT_ROWS_WRITTEN)?,
            duplicates: meta(schema::STAT_DUPLICATES)?,
        };
        self.sql.transaction("creating the shard state", || {
            self.save_state(seeded)?;
            self.set_meta(schema::SCHEMA_KEY, schema::SCHEMA_VERSION)
        })?;
        self.state.set(seeded);
        Ok(())
    }

    fn save_state(&self, s: ShardState) -> Result<(), StoreError> {
        self.sql.run(
            "saving the shard state",
            "INSERT INTO shard_state (id, folded, flushes, requests, rows_written, duplicates)
             VALUES (0, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET folded = excluded.folded,
             flushes = excluded.flushes, requests = excluded.requests,
             rows_written = excluded.rows_written, duplicates = excluded.duplicates",
            vec![
                s.folded.into(),
                s.flushes.into(),
                s.requests.into(),
                s.rows_written.into(),
                s.duplicates.into(),
            ],
        )?;
        Ok(())
    }

    /// Runs `f` in one transaction together with saving the shard state it
    /// returns (if changed). On success the in-memory state follows; on
    /// failure nothing was written, and the admission cache, which may hold
    /// values of the rolled-back write, is dropped.
    fn in_transaction<T>(
        &self,
        doing: &'static str,
        f: impl FnOnce(ShardState) -> Result<(ShardState, T), StoreError>,
    ) -> Result<T, StoreError> {
        let before = self.state.get();
        let result = self.sql.transaction(doing, || {
            let (after, value) = f(before)?;
            if after != before {
                self.save_state(after)?;
            }
            Ok((after, value))
        });
        match result {
            Ok((after, value)) => {
                self.state.set(after);
                Ok(value)
            }
            Err(e) => {
                self.admission.borrow_mut().clear();
                Err(e)
            }
        }
    }

    /// Flushes appended and not yet folded.
    fn pending_flushes(&self) -> i64 {
        (self.ring.borrow().next_seq() - 1 - self.state.get().folded).max(0)
    }

    /// Appends a live flush to the log, once per batch id: one row written.
    /// Its counts reach the buckets at the next fold (before any read).
    pub fn apply_flush(&self, flush: Flush, now: i64) -> Result<Applied, StoreError> {
        if self.ring.borrow().contains(&flush.id) {
            self.unsaved_duplicates
                .set(self.unsaved_duplicates.get() + 1);
            return Ok(Applied {
                applied: false,
                rows_written: 0,
            });
        }
        let body = serde_json::to_string(&flush).map_err(|e| StoreError {
            doing: "encoding a flush",
            cause: e.to_string(),
        })?;
        let mut choice = self.ring.borrow().choose(now, self.state.get().folded);
        if choice == SlotChoice::FoldFirst {
            self.fold()?;
            choice = self.ring.borrow().choose(now, self.state.get().folded);
        }
        let slot = match choice {
            SlotChoice::Reuse(slot) | SlotChoice::New(slot) => slot,
            SlotChoice::FoldFirst => {
                return Err(StoreError {
                    doing: "appending a flush",
                    cause: "the flush log's oldest slot could not be folded".into(),
                })
            }
        };
        let seq = self.ring.borrow().next_seq();
        let out = self.sql.run(
            "appending a flush",
            schema::LOG_PUT_SQL,
            vec![
                slot.into(),
                seq.into(),
                flush.id.as_str().into(),
                now.into(),
                body.as_str().into(),
            ],
        )?;
        self.ring.borrow_mut().appended(slot, flush.id, now);
        Ok(Applied {
            applied: true,
            rows_written: out.rows_written,
        })
    }

    /// Moves every appended flush into the buckets and sketches, in one
    /// transaction with the new fold mark and statistics. Returns the rows
    /// written (0 when nothing was pending).
    pub fn fold(&self) -> Result<u64, StoreError> {
        let entries = self.sql.rows(
            "reading appended flushes",
            schema::LOG_UNFOLDED_SQL,
            vec![self.state.get().folded.into()],
        )?;
        let Some(last) = entries
            .last()
            .and_then(|r| r.first())
            .and_then(SqlValue::int)
        else {
            return Ok(0);
        };
        let mut rows = Vec::new();
        let mut sketches = Vec::new();
        let mut requests = 0u64;
        for body in entries
            .iter()
            .filter_map(|r| r.get(1).and_then(SqlValue::text))
        {
            // Bodies are written by `apply_flush` from a parsed flush, so
            // they always read back; one that does not is skipped rather
            // than blocking every later fold.
            if let Ok(flush) = serde_json::from_str::<Flush>(body) {
                requests = requests.saturating_add(flush.requests);
                rows.extend(flush.rows);
                sketches.extend(flush.sketches);
            }
        }
        let appended = entries.len() as i64;
        let written = self.in_transaction("folding flushes", |before| {
            let written = self.write_rows(rows)? + self.merge_sketches(sketches)?;
            let after = ShardState {
                folded: last,
                flushes: before.flushes + appended,
                requests: before.requests + i64::try_from(requests).unwrap_or(i64::MAX),
                // The appends, the fold's writes and this state row.
                rows_written: before.rows_written + appended + written as i64 + 1,
                duplicates: before.duplicates + self.unsaved_duplicates.get(),
            };
            Ok((after, written + 1))
        })?;
        self.unsaved_duplicates.set(0);
        Ok(written)
    }

    /// Imports a batch (backfill) straight into the buckets: all of it, or
    /// nothing, in one transaction. Each line (metric, minute, dimension,
    /// value, count) is imported once for as long as hour rows are kept:
    /// lines already in the import ledger are skipped, so importing the
    /// same data again, cut into other batches or not, changes nothing,
    /// while a line with another count for the same minute adds to it.
    pub fn apply(&self, batch: Batch) -> Result<Applied, StoreError> {
        let Batch { requests, rows, .. } = batch;
        // One ledger key per imported line: (metric, minute, dim, value, n).
        // The same line twice in one batch is one line.
        let mut groups: BTreeMap<LedgerKey, Row> = BTreeMap::new();
        for row in rows {
            let key = (row.1.clone(), row.0, row.2.clone(), row.3.clone(), row.4);
            groups.entry(key).or_insert(row);
        }
        let written = self.in_transaction("importing a batch", |before| {
            let mut fresh = Vec::new();
            let mut keys: Vec<LedgerKey> = Vec::new();
            let mut known: HashSet<LedgerKey> = HashSet::new();
            let mut spans: BTreeMap<String, (i64, i64)> = BTreeMap::new();
            for (metric, t, ..) in groups.keys() {
                let span = spans.entry(metric.clone()).or_insert((*t, *t));
                span.0 = span.0.min(*t);
                span.1 = span.1.max(*t);
            }
            for (metric, (from, to)) in &spans {
                for r in self.sql.rows(
                    "checking the import ledger",
                    "SELECT t, dim, val, n FROM import_ledger WHERE metric = ? AND t >= ? AND t <= ?",
                    vec![metric.as_str().into(), (*from).into(), (*to).into()],
                )? {
                    if let (Some(t), Some(dim), Some(val), Some(n)) = (
                        r.first().and_then(SqlValue::int),
                        r.get(1).and_then(SqlValue::text),
                        r.get(2).and_then(SqlValue::text),
                        r.get(3).and_then(SqlValue::int),
                    ) {
                        let n = u64::try_from(n).unwrap_or(0);
                        known.insert((metric.clone(), t, dim.to_string(), val.to_string(), n));
                    }
                }
            }
            for (key, row) in groups {
                if !known.contains(&key) {
                    fresh.push(row);
                    keys.push(key);
                }
            }
            if keys.is_empty() {
                return Ok((before, None));
            }
            let mut written = self.write_rows(fresh)?;
            for chunk in keys.chunks(schema::LEDGER_PUT_CHUNK) {
                let mut binds = Vec::with_capacity(chunk.len() * 5);
                for (metric, t, dim, val, n) in chunk {
                    binds.push(metric.as_str().into());
                    binds.push((*t).into());
                    binds.push(dim.as_str().into());
                    binds.push(val.as_str().into());
                    binds.push(SqlValue::Int(i64::try_from(*n).unwrap_or(i64::MAX)));
                }
                written += self
                    .sql
                    .run(
                        "recording imported minutes",
                        &schema::ledger_put_sql(chunk.len()),
                        binds,
                    )?
                    .rows_written;
            }
            // The lines, their ledger rows and the state row.
            written += 1;
            let after = ShardState {
                flushes: before.flushes + 1,
                requests: before.requests + i64::try_from(requests).unwrap_or(i64::MAX),
                rows_written: before.rows_written + written as i64,
                ..before
            };
            Ok((after, Some(written)))
        })?;
        match written {
            Some(written) => Ok(Applied {
                applied: true,
                rows_written: written,
            }),
            None => {
                self.unsaved_duplicates
                    .set(self.unsaved_duplicates.get() + 1);
                Ok(Applied {
                    applied: false,
                    rows_written: 0,
                })
            }
        }
    }

    /// Admits minute rows and adds them to their buckets (and to hour and
    /// day buckets already rolled up); returns rows written.
    fn write_rows(&self, rows: Vec<Row>) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let (hour_wm, day_wm) = self.watermarks()?;
        let rows = self.admit(rows)?;
        self.put_buckets(schema::bucket_writes(rows, hour_wm, day_wm))
    }

    /// Adds each bucket's counts to the stored row; returns rows written.
    /// A stored row that cannot be read is replaced (it could never be
    /// merged again, and failing would block every later fold).
    fn put_buckets(&self, writes: BucketWrites) -> Result<u64, StoreError> {
        let mut written = 0;
        let mut out: Vec<(Resolution, String, i64, String)> = Vec::with_capacity(writes.len());
        // Rows of one (resolution, metric) that lie close together are read
        // with one range query (imports write thousands of neighbours).
        for run in schema::close_runs(writes) {
            let (res, metric) = (run.res, run.metric.as_str());
            let stored: HashMap<i64, BucketCounts> = self
                .sql
                .rows(
                    "reading buckets",
                    schema::BUCKET_SPAN_SQL,
                    vec![
                        res.code().into(),
                        metric.into(),
                        run.from.into(),
                        (run.to + 1).into(),
                    ],
                )?
                .iter()
                .filter_map(|r| {
                    let t = r.first()?.int()?;
                    Some((t, BucketCounts::decode(r.get(1)?.text()?).ok()?))
                })
                .collect();
            for (t, mut counts) in run.buckets {
                if let Some(old) = stored.get(&t) {
                    counts.merge(old);
                }
                out.push((res, run.metric.clone(), t, counts.encode()));
            }
        }
        for chunk in out.chunks(schema::BUCKET_PUT_CHUNK) {
            let mut binds = Vec::with_capacity(chunk.len() * 4);
            for (res, metric, t, data) in chunk {
                binds.push(res.code().into());
                binds.push(metric.as_str().into());
                binds.push((*t).into());
                binds.push(data.as_str().into());
            }
            written += self
                .sql
                .run(
                    "writing a bucket",
                    &schema::bucket_put_sql(chunk.len()),
                    binds,
                )?
                .rows_written;
        }
        Ok(written)
    }

    fn admit(&self, rows: Vec<Row>) -> Result<Vec<Row>, StoreError> {
        let mut admission = self.admission.try_borrow_mut().map_err(|_| StoreError {
            doing: "admitting dimension values",
            cause: "re-entered".into(),
        })?;
        let mut failure = None;
        let admitted = admission.admit(
            rows,
            self.limits.max_values,
            |hour, metric, dim| match self.sql.rows(
                "loading the hour's dimension values",
                schema::BUCKET_SPAN_SQL,
                vec![
                    Resolution::Minute.code().into(),
                    metric.into(),
                    hour.into(),
                    (hour + 3600).into(),
                ],
            ) {
                Ok(rows) => {
                    let mut values = BTreeSet::new();
                    for text in rows
                        .iter()
                        .filter_map(|r| r.get(1).and_then(SqlValue::text))
                    {
                        if let Ok(b) = BucketCounts::decode(text) {
                            values.extend(b.values_of(dim).map(str::to_string));
                        }
                    }
                    values.into_iter().collect()
                }
                Err(e) => {
                    failure = Some(e);
                    Vec::new()
                }
            },
        );
        match failure {
            Some(e) => Err(e),
            None => Ok(admitted),
        }
    }

    /// Merges each sketch into the stored one of its (metric, hour). A
    /// stored sketch that cannot be read is replaced (it could never be
    /// merged again, and failing would lose the whole batch's counts).
    fn merge_sketches(&self, sketches: Vec<SketchRow>) -> Result<u64, StoreError> {
        let mut merged: BTreeMap<(String, i64), VisitorSketch> = BTreeMap::new();
        for SketchRow(hour, metric, sketch) in sketches {
            match merged.entry((metric, hour)) {
                std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&sketch),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(sketch);
                }
            }
        }
        let mut written = 0;
        for ((metric, hour), mut sketch) in merged {
            let stored = self.sql.run(
                "reading a visitor sketch",
                schema::SKETCH_GET_SQL,
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
                    schema::SKETCH_PUT_SQL,
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
        self.fold()?;
        let rows = self
            .sql
            .run(
                "reading visitor sketches",
                schema::SKETCH_RANGE_SQL,
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

    /// Rows of `q`, summed per bucket of its step (one shard's share),
    /// after folding what was appended.
    pub fn read(&self, q: &ShardQuery) -> Result<Vec<Row>, StoreError> {
        self.fold()?;
        let (hour_wm, day_wm) = self.watermarks()?;
        let dims: HashSet<&str> = q.dims.iter().map(String::as_str).collect();
        let mut sums: HashMap<(i64, String, String, String), u64> = HashMap::new();
        let mut add = |row: Row| {
            let Row(t, metric, dim, val, n) = row;
            let slot = sums.entry((q.step.floor(t), metric, dim, val)).or_insert(0);
            *slot = slot.saturating_add(n);
        };
        let parts = schema::read_plan(q.step, q.from, q.to, hour_wm, day_wm);
        let bucket_sql = schema::bucket_read_sql(q.metrics.len());
        for ReadPart { source, from, to } in &parts {
            let mut binds: Vec<SqlValue> = vec![source.code().into(), (*from).into(), (*to).into()];
            binds.extend(q.metrics.iter().map(|m| SqlValue::from(m.as_str())));
            for r in self.sql.rows("reading buckets", &bucket_sql, binds)? {
                let (Some(metric), Some(t), Some(data)) = (
                    r.first().and_then(SqlValue::text),
                    r.get(1).and_then(SqlValue::int),
                    r.get(2).and_then(SqlValue::text),
                ) else {
                    continue;
                };
                let Ok(counts) = BucketCounts::decode(data) else {
                    continue;
                };
                for row in counts.rows(t, metric) {
                    if dims.contains(row.dim()) {
                        add(row);
                    }
                }
            }
        }
        if self.legacy.get() {
            let sql = schema::legacy_read_sql(q.step, q.metrics.len(), q.dims.len());
            for ReadPart { source, from, to } in &parts {
                let mut binds: Vec<SqlValue> =
                    vec![source.code().into(), (*from).into(), (*to).into()];
                binds.extend(q.metrics.iter().map(|m| SqlValue::from(m.as_str())));
                binds.extend(q.dims.iter().map(|d| SqlValue::from(d.as_str())));
                for row in self
                    .sql
                    .rows("reading version-1 counts", &sql, binds)?
                    .iter()
                    .map(Vec::as_slice)
                    .filter_map(to_row)
                {
                    add(row);
                }
            }
        }
        let mut out: Vec<Row> = sums
            .into_iter()
            .map(|((t, m, d, v), n)| Row(t, m, d, v, n))
            .collect();
        Row::sort(&mut out);
        Ok(out)
    }

    /// Migrates a slice of about `limit` version-1 rows into buckets, whole
    /// buckets at a time, in one transaction with their removal from the
    /// old table (which is dropped once empty). Returns whether rows remain.
    pub fn migrate_slice(&self, limit: i64) -> Result<bool, StoreError> {
        if !self.legacy.get() {
            return Ok(false);
        }
        let rows: Vec<(i64, Row)> = self
            .sql
            .rows(
                "reading version-1 rows",
                schema::LEGACY_SLICE_SQL,
                vec![limit.into()],
            )?
            .iter()
            .filter_map(|r| {
                let res = r.first()?.int()?;
                let row = Row(
                    r.get(2)?.int()?,
                    r.get(1)?.text()?.to_string(),
                    r.get(3)?.text()?.to_string(),
                    r.get(4)?.text()?.to_string(),
                    u64::try_from(r.get(5)?.int()?).ok()?,
                );
                Some((res, row))
            })
            .collect();
        if rows.is_empty() {
            self.sql.run(
                "dropping the version-1 table",
                "DROP TABLE IF EXISTS counts",
                Vec::new(),
            )?;
            self.legacy.set(false);
            return Ok(false);
        }
        let full = rows.len() as i64 >= limit;
        let mut writes = BucketWrites::new();
        for (res, Row(t, metric, dim, val, n)) in rows {
            let res = match res {
                0 => Resolution::Minute,
                1 => Resolution::Hour,
                _ => Resolution::Day,
            };
            writes
                .entry((res, metric, t))
                .or_default()
                .add(&dim, &val, n);
        }
        // A full slice may end inside a bucket: leave that bucket for the
        // next step (unless it is the only one).
        if full && writes.len() > 1 {
            if let Some(last) = writes.keys().next_back().cloned() {
                writes.remove(&last);
            }
        }
        let keys: Vec<(Resolution, String, i64)> = writes.keys().cloned().collect();
        self.in_transaction("migrating version-1 rows", |before| {
            let mut written = self.put_buckets(writes)?;
            for (res, metric, t) in &keys {
                written += self
                    .sql
                    .run(
                        "removing migrated version-1 rows",
                        schema::LEGACY_DELETE_SQL,
                        vec![res.code().into(), metric.as_str().into(), (*t).into()],
                    )?
                    .rows_written;
            }
            let after = ShardState {
                rows_written: before.rows_written + written as i64 + 1,
                ..before
            };
            Ok((after, ()))
        })?;
        Ok(true)
    }

    /// Folds, migrates a slice of version-1 rows if any, then rolls up and
    /// expires buckets at `now`. Rollups wait until the migration is done.
    pub fn maintain(&self, now: i64) -> Result<(), StoreError> {
        self.fold()?;
        if self.migrate_slice(schema::MIGRATE_ROWS_PER_STEP)? {
            return Ok(());
        }
        let (hour_wm, day_wm) = self.watermarks()?;
        let oldest = self
            .sql
            .rows(
                "finding the oldest minute",
                "SELECT MIN(t) FROM buckets WHERE res = 0 AND t >= ?",
                vec![hour_wm.into()],
            )?
            .first()
            .and_then(|r| r.first())
            .and_then(SqlValue::int);
        let plan =
            schema::maintenance_plan(now, hour_wm, day_wm, oldest, self.limits.retention_days);
        // Sketches and the import ledger are kept as long as hour rows.
        let hours_kept_from = schema::sketch_delete_before(now, self.limits.retention_days.1);
        let expiries = [
            (
                "expiring visitor sketches",
                "DELETE FROM visitor_sketches WHERE hour < ?",
                hours_kept_from,
            ),
            (
                "expiring batch ids",
                "DELETE FROM applied_batches WHERE at < ?",
                now - schema::BATCH_ID_TTL_SECS,
            ),
            (
                "expiring the import ledger",
                "DELETE FROM import_ledger WHERE t < ?",
                hours_kept_from,
            ),
        ];
        self.in_transaction("maintaining buckets", |before| {
            let mut written = 0;
            if let Some((a, b)) = plan.hours {
                let mut hour = a;
                while hour < b {
                    let writes =
                        self.rolled_up(Resolution::Minute, hour, Resolution::Hour, None)?;
                    written += self.put_buckets(writes)?;
                    hour += Resolution::Hour.seconds();
                }
            }
            if let Some((a, b)) = plan.days {
                let mut day = a;
                while day < b {
                    let k = Some(self.limits.max_values);
                    let writes = self.rolled_up(Resolution::Hour, day, Resolution::Day, k)?;
                    written += self.put_buckets(writes)?;
                    day += Resolution::Day.seconds();
                }
            }
            if plan.hour_wm != hour_wm {
                self.set_meta(schema::HOUR_WM, plan.hour_wm)?;
                written += 1;
            }
            if plan.day_wm != day_wm {
                self.set_meta(schema::DAY_WM, plan.day_wm)?;
                written += 1;
            }
            for (res, before) in plan.delete_before {
                if let Some(before) = before {
                    written += self
                        .sql
                        .run(
                            "expiring buckets",
                            "DELETE FROM buckets WHERE res = ? AND t < ?",
                            vec![res.code().into(), before.into()],
                        )?
                        .rows_written;
                }
            }
            for (doing, sql, cutoff) in expiries {
                written += self.sql.run(doing, sql, vec![cutoff.into()])?.rows_written;
            }
            // Counting the state row too, when there is anything to count.
            let after = ShardState {
                rows_written: before.rows_written + written as i64 + i64::from(written > 0),
                ..before
            };
            Ok((after, ()))
        })?;
        if let Ok(mut adm) = self.admission.try_borrow_mut() {
            adm.forget_before(Resolution::Hour.floor(now) - 3600);
        }
        Ok(())
    }

    /// The buckets of resolution `source` in the period of `into` starting
    /// at `start`, summed per metric into one bucket of `into`; with `k`,
    /// each capped dimension keeps its top `k` values and sums the rest.
    fn rolled_up(
        &self,
        source: Resolution,
        start: i64,
        into: Resolution,
        k: Option<usize>,
    ) -> Result<BucketWrites, StoreError> {
        let mut writes = BucketWrites::new();
        for r in self.sql.rows(
            "reading buckets to roll up",
            schema::BUCKET_RANGE_SQL,
            vec![
                source.code().into(),
                start.into(),
                (start + into.seconds()).into(),
            ],
        )? {
            let (Some(metric), Some(data)) = (
                r.first().and_then(SqlValue::text),
                r.get(2).and_then(SqlValue::text),
            ) else {
                continue;
            };
            if let Ok(counts) = BucketCounts::decode(data) {
                writes
                    .entry((into, metric.to_string(), start))
                    .or_default()
                    .merge(&counts);
            }
        }
        if let Some(k) = k {
            for ((_, metric, t), counts) in writes.iter_mut() {
                let rows: Vec<Row> = counts.rows(*t, metric).collect();
                let mut folded = BucketCounts::default();
                for row in fold_top_k(rows, k) {
                    folded.add(row.dim(), row.value(), row.n());
                }
                *counts = folded;
            }
        }
        Ok(writes)
    }

    /// Whether any minute rows remain (maintenance still has work ahead).
    pub fn has_minutes(&self) -> Result<bool, StoreError> {
        Ok(self.pending_flushes() > 0
            || self.legacy.get()
            || !self
                .sql
                .rows(
                    "checking for minutes",
                    "SELECT 1 FROM buckets WHERE res = 0 LIMIT 1",
                    Vec::new(),
                )?
                .is_empty())
    }

    pub fn stats(&self) -> Result<ShardStats, StoreError> {
        let state = self.state.get();
        let (hour_wm, day_wm) = self.watermarks()?;
        Ok(ShardStats {
            flushes: state.flushes,
            requests: state.requests,
            rows_written: state.rows_written,
            duplicate_batches: state.duplicates + self.unsaved_duplicates.get(),
            pending_flushes: self.pending_flushes(),
            hour_watermark: hour_wm,
            day_watermark: day_wm,
            schema_version: self.meta(schema::SCHEMA_KEY)?,
            migrating: self.legacy.get(),
        })
    }

    fn watermarks(&self) -> Result<(i64, i64), StoreError> {
        Ok((self.meta(schema::HOUR_WM)?, self.meta(schema::DAY_WM)?))
    }

    /// A `meta` value, 0 when unset.
    fn meta(&self, key: &str) -> Result<i64, StoreError> {
        Ok(self
            .sql
            .rows(
                "reading shard metadata",
                "SELECT v FROM meta WHERE key = ?",
                vec![key.into()],
            )?
            .first()
            .and_then(|r| r.first())
            .and_then(SqlValue::int)
            .unwrap_or(0))
    }

    fn set_meta(&self, key: &str, v: i64) -> Result<(), StoreError> {
        self.sql.run(
            "updating shard metadata",
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
