//! `CounterShard`, the Durable Object that stores one shard of a site's
//! counts in SQLite: applies flushed batches (idempotently, by batch id),
//! answers range reads, and runs rollups and retention from its alarm.
//!
//! Invariant: each batch is applied inside one synchronous block of SQL
//! calls (no `.await` in between), which the runtime commits atomically:
//! a batch is either fully counted together with its id, or not at all.

use super::shards::Fault;
use crate::series::ShardQuery;
use crate::store::{self, HourlyAdmission, ReadPart};
use crate::tally::{fold_top_k, Batch, Resolution, Row};
use serde::Deserialize;
use serde_json::json;
use std::cell::{Cell, RefCell};
use worker::{
    durable_object, DurableObject, Env, Method, Request, Response, Result, SqlStorage,
    SqlStorageValue, State,
};

/// Time between maintenance runs (rollups, retention).
const MAINTENANCE_INTERVAL_MS: f64 = 10.0 * 60.0 * 1000.0;

#[durable_object]
pub struct CounterShard {
    state: State,
    env: Env,
    sql: SqlStorage,
    admission: RefCell<HourlyAdmission>,
    alarm_known: Cell<bool>,
}

#[derive(Deserialize)]
struct DbRow {
    t: i64,
    metric: String,
    dim: String,
    val: String,
    n: i64,
}

#[derive(Deserialize)]
struct MetaRow {
    key: String,
    v: i64,
}

#[derive(Deserialize)]
struct ValRow {
    val: String,
}

#[derive(Deserialize)]
struct MinRow {
    t: Option<i64>,
}

impl DurableObject for CounterShard {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        for stmt in store::SCHEMA {
            if let Err(e) = sql.exec(stmt, None) {
                worker::console_error!("bpm-edge: counter shard schema: {e}");
            }
        }
        CounterShard {
            state,
            env,
            sql,
            admission: RefCell::new(HourlyAdmission::default()),
            alarm_known: Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let route = (req.method(), req.path());
        match (route.0, route.1.as_str()) {
            (Method::Post, "/flush") => {
                if Fault::from_env(&self.env) == Some(Fault::Storage) {
                    return Response::error("injected storage fault", 500);
                }
                let batch: Batch = req.json().await?;
                let outcome = self.apply(batch)?;
                self.ensure_alarm().await;
                Response::from_json(&outcome)
            }
            (Method::Post, "/query") => {
                let query: ShardQuery = req.json().await?;
                let rows = self.read(&query)?;
                Response::from_json(&json!({ "rows": rows }))
            }
            (Method::Get, "/stats") => Response::from_json(&self.stats()?),
            (Method::Post, "/maintain") => {
                self.maintain(now_secs())?;
                Response::from_json(&self.stats()?)
            }
            _ => Response::error("not found", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        if let Err(e) = self.maintain(now_secs()) {
            worker::console_error!("bpm-edge: counter shard maintenance failed: {e}");
        }
        let has_minutes = self
            .sql
            .exec("SELECT MIN(t) AS t FROM counts WHERE res = 0", None)
            .and_then(|c| c.one::<MinRow>())
            .map(|r| r.t.is_some())
            .unwrap_or(true);
        if has_minutes {
            self.set_alarm().await;
        } else {
            self.alarm_known.set(false);
        }
        Response::ok("")
    }
}

impl CounterShard {
    fn max_values(&self) -> usize {
        super::classifier().map_or(50, |c| c.config().storage.max_dimension_values as usize)
    }

    fn retention(&self) -> (u32, u32, u32) {
        super::classifier().map_or((8, 400, 0), |c| {
            let s = &c.config().storage;
            (
                s.minute_retention_days,
                s.hour_retention_days,
                s.day_retention_days,
            )
        })
    }

    /// Applies a batch once. Synchronous on purpose (see the module docs).
    fn apply(&self, batch: Batch) -> Result<serde_json::Value> {
        let seen = self
            .sql
            .exec(
                "SELECT id AS val FROM applied_batches WHERE id = ?",
                vec![SqlStorageValue::from(batch.id.as_str())],
            )?
            .to_array::<ValRow>()?;
        if !seen.is_empty() {
            self.bump(&[(store::STAT_DUPLICATES, 1)])?;
            return Ok(json!({ "applied": false, "duplicate": true }));
        }
        let (hour_wm, day_wm) = self.watermarks()?;
        let k = self.max_values();
        let sql = &self.sql;
        let mut load_error = None;
        let rows = {
            let mut admission = self
                .admission
                .try_borrow_mut()
                .map_err(|_| worker::Error::RustError("admission cache busy".into()))?;
            admission.admit(batch.rows, k, |hour, metric, dim| {
                let loaded = sql
                    .exec(
                        "SELECT DISTINCT val FROM counts WHERE res = 0 AND metric = ? AND t >= ? AND t < ? AND dim = ?",
                        vec![
                            metric.into(),
                            hour.into(),
                            (hour + 3600).into(),
                            dim.into(),
                        ],
                    )
                    .and_then(|c| c.to_array::<ValRow>());
                match loaded {
                    Ok(v) => v.into_iter().map(|r| r.val).collect(),
                    Err(e) => {
                        load_error = Some(e);
                        Vec::new()
                    }
                }
            })
        };
        if let Some(e) = load_error {
            return Err(e);
        }
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
        written += self
            .sql
            .exec(
                "INSERT INTO applied_batches (id, at) VALUES (?, ?)",
                vec![batch.id.as_str().into(), now_secs().into()],
            )?
            .rows_written() as u64;
        // The statistics row writes (3) are counted too.
        self.bump(&[
            (store::STAT_FLUSHES, 1),
            (store::STAT_REQUESTS, batch.requests),
            (store::STAT_ROWS_WRITTEN, written + 3),
        ])?;
        Ok(json!({ "applied": true, "rows_written": written + 3 }))
    }

    /// Adds each row's count into its bucket; returns rows written.
    fn upsert(&self, writes: &[(Resolution, Row)]) -> Result<u64> {
        let mut written = 0u64;
        for chunk in writes.chunks(store::UPSERT_CHUNK) {
            let mut binds: Vec<SqlStorageValue> = Vec::with_capacity(chunk.len() * 6);
            for (res, row) in chunk {
                binds.push(res.code().into());
                binds.push(row.t().into());
                binds.push(row.metric().into());
                binds.push(row.dim().into());
                binds.push(row.value().into());
                binds.push(SqlStorageValue::try_from_i64(
                    i64::try_from(row.n()).unwrap_or(i64::MAX),
                )?);
            }
            written += self
                .sql
                .exec(&store::upsert_sql(chunk.len()), binds)?
                .rows_written() as u64;
        }
        Ok(written)
    }

    fn read(&self, q: &ShardQuery) -> Result<Vec<Row>> {
        let (hour_wm, day_wm) = self.watermarks()?;
        let mut out = Vec::new();
        for ReadPart { source, from, to } in store::read_plan(q.step, q.from, q.to, hour_wm, day_wm)
        {
            let mut binds: Vec<SqlStorageValue> =
                vec![source.code().into(), from.into(), to.into()];
            binds.extend(q.metrics.iter().map(|m| SqlStorageValue::from(m.as_str())));
            binds.extend(q.dims.iter().map(|d| SqlStorageValue::from(d.as_str())));
            let sql = store::read_sql(q.step, q.metrics.len(), q.dims.len());
            for r in self.sql.exec(&sql, binds)?.to_array::<DbRow>()? {
                out.push(Row(
                    r.t,
                    r.metric,
                    r.dim,
                    r.val,
                    u64::try_from(r.n).unwrap_or(0),
                ));
            }
        }
        Ok(out)
    }

    fn watermarks(&self) -> Result<(i64, i64)> {
        let rows = self
            .sql
            .exec(
                "SELECT key, v FROM meta WHERE key IN (?, ?)",
                vec![store::HOUR_WM.into(), store::DAY_WM.into()],
            )?
            .to_array::<MetaRow>()?;
        let get = |k: &str| rows.iter().find(|r| r.key == k).map_or(0, |r| r.v);
        Ok((get(store::HOUR_WM), get(store::DAY_WM)))
    }

    fn bump(&self, stats: &[(&str, u64)]) -> Result<()> {
        for (key, by) in stats {
            self.sql.exec(
                "INSERT INTO meta (key, v) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET v = v + excluded.v",
                vec![(*key).into(), SqlStorageValue::try_from_i64(i64::try_from(*by).unwrap_or(0))?],
            )?;
        }
        Ok(())
    }

    fn set_meta(&self, key: &str, v: i64) -> Result<()> {
        self.sql.exec(
            "INSERT INTO meta (key, v) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET v = excluded.v",
            vec![key.into(), v.into()],
        )?;
        Ok(())
    }

    fn stats(&self) -> Result<serde_json::Value> {
        let rows = self
            .sql
            .exec("SELECT key, v FROM meta", None)?
            .to_array::<MetaRow>()?;
        let get = |k: &str| rows.iter().find(|r| r.key == k).map_or(0, |r| r.v);
        Ok(json!({
            "flushes": get(store::STAT_FLUSHES),
            "requests": get(store::STAT_REQUESTS),
            "rows_written": get(store::STAT_ROWS_WRITTEN),
            "duplicate_batches": get(store::STAT_DUPLICATES),
            "hour_watermark": get(store::HOUR_WM),
            "day_watermark": get(store::DAY_WM),
            "database_bytes": self.sql.database_size(),
        }))
    }

    /// Rollups and retention; synchronous, so it commits atomically.
    fn maintain(&self, now: i64) -> Result<()> {
        let (hour_wm, day_wm) = self.watermarks()?;
        let oldest = self
            .sql
            .exec(
                "SELECT MIN(t) AS t FROM counts WHERE res = 0 AND t >= ?",
                vec![hour_wm.into()],
            )?
            .one::<MinRow>()?
            .t;
        let plan = store::maintenance_plan(now, hour_wm, day_wm, oldest, self.retention());
        if let Some((a, b)) = plan.hours {
            self.sql
                .exec(store::ROLLUP_HOURS_SQL, vec![a.into(), b.into()])?;
        }
        if let Some((a, b)) = plan.days {
            let rows: Vec<Row> = self
                .sql
                .exec(store::DAY_SOURCE_SQL, vec![a.into(), b.into()])?
                .to_array::<DbRow>()?
                .into_iter()
                .map(|r| Row(r.t, r.metric, r.dim, r.val, u64::try_from(r.n).unwrap_or(0)))
                .collect();
            let writes: Vec<(Resolution, Row)> = fold_top_k(rows, self.max_values())
                .into_iter()
                .map(|r| (Resolution::Day, r))
                .collect();
            self.upsert(&writes)?;
        }
        self.set_meta(store::HOUR_WM, plan.hour_wm)?;
        self.set_meta(store::DAY_WM, plan.day_wm)?;
        for (res, before) in plan.delete_before {
            if let Some(before) = before {
                self.sql.exec(
                    "DELETE FROM counts WHERE res = ? AND t < ?",
                    vec![res.code().into(), before.into()],
                )?;
            }
        }
        self.sql.exec(
            "DELETE FROM applied_batches WHERE at < ?",
            vec![(now - store::BATCH_ID_TTL_SECS).into()],
        )?;
        if let Ok(mut adm) = self.admission.try_borrow_mut() {
            adm.forget_before(store::hour_of(now) - 3600);
        }
        Ok(())
    }

    async fn ensure_alarm(&self) {
        if self.alarm_known.get() {
            return;
        }
        let storage = self.state.storage();
        match storage.get_alarm().await {
            Ok(Some(_)) => self.alarm_known.set(true),
            Ok(None) => self.set_alarm().await,
            Err(e) => worker::console_error!("bpm-edge: reading the shard alarm failed: {e}"),
        }
    }

    async fn set_alarm(&self) {
        let at = worker::js_sys::Date::now() + MAINTENANCE_INTERVAL_MS;
        match self.state.storage().set_alarm(at as i64).await {
            Ok(()) => self.alarm_known.set(true),
            Err(e) => worker::console_error!("bpm-edge: setting the shard alarm failed: {e}"),
        }
    }
}

fn now_secs() -> i64 {
    (worker::js_sys::Date::now() / 1000.0).floor() as i64
}
