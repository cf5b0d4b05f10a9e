//! `CounterShard`, the Durable Object that holds one shard of a site's
//! counts: it hands live flushes (appended), imports (backfill), range
//! reads and its alarm to the pure [`CounterStore`] over the object's
//! SQLite storage.
//!
//! Invariant: every store call issues its SQL without an `.await` in
//! between, and every multi-statement write runs inside `transactionSync`
//! ([`DurableSql`]'s [`bpm_edge::sql::Sql::transaction`]): a batch is either fully counted
//! together with its id, or not at all.

use crate::durable_sql::DurableSql;
use bpm_edge::count::tally::{Batch, Flush};
use bpm_edge::report::series::ShardQuery;
use bpm_edge::report::uniques::{ShardSketches, SketchQuery};
use bpm_edge::windows::counter_store::{CounterStore, StoreLimits};
use bpm_edge_shell::now_secs;
use bpm_edge_shell::shards::Fault;
use serde_json::json;
use std::cell::Cell;
use worker::{
    durable_object, js_sys, DurableObject, Env, Method, Request, Response, Result, State,
};

/// Time between maintenance runs (rollups, retention).
const MAINTENANCE_INTERVAL_MS: f64 = 10.0 * 60.0 * 1000.0;

#[durable_object]
pub struct CounterShard {
    state: State,
    env: Env,
    store: std::result::Result<CounterStore<DurableSql>, String>,
    alarm_known: Cell<bool>,
    /// When this object first saw a flush (ms), for `BPM_FAULT=storage-for-Ns`.
    first_flush_ms: Cell<Option<f64>>,
}

impl DurableObject for CounterShard {
    fn new(state: State, env: Env) -> Self {
        let limits = bpm_edge_shell::site_of_object(&state).map_or(
            StoreLimits {
                max_values: 50,
                retention_days: (8, 400, 0),
            },
            |c| {
                let s = &c.config().storage;
                StoreLimits {
                    max_values: s.max_dimension_values as usize,
                    retention_days: (
                        s.minute_retention_days,
                        s.hour_retention_days,
                        s.day_retention_days,
                    ),
                }
            },
        );
        let store =
            CounterStore::open(DurableSql::new(state.storage()), limits).map_err(|e| e.to_string());
        if let Err(e) = &store {
            worker::console_error!("bpm-edge: counter shard storage unusable: {e}");
        }
        CounterShard {
            state,
            env,
            store,
            alarm_known: Cell::new(false),
            first_flush_ms: Cell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let store = match &self.store {
            Ok(s) => s,
            Err(e) => return Response::error(format!("storage unusable: {e}"), 500),
        };
        let route = (req.method(), req.path());
        let result = match (route.0, route.1.as_str()) {
            (Method::Post, "/flush") => {
                if self.fault_now() {
                    return Response::error("injected storage fault", 500);
                }
                let flush: Flush = req.json().await?;
                let applied = store.apply_flush(flush, now_secs());
                if applied.is_ok() {
                    self.ensure_alarm().await;
                }
                applied.map(|a| json!(a))
            }
            (Method::Post, "/import") => {
                if self.fault_now() {
                    return Response::error("injected storage fault", 500);
                }
                let batch: Batch = req.json().await?;
                let applied = store.apply(batch);
                if applied.is_ok() {
                    self.ensure_alarm().await;
                }
                applied.map(|a| json!(a))
            }
            (Method::Post, "/query") => {
                let query: ShardQuery = req.json().await?;
                store.read(&query).map(|rows| json!({ "rows": rows }))
            }
            (Method::Post, "/sketches") => {
                let query: SketchQuery = req.json().await?;
                store
                    .read_sketches(&query)
                    .map(|sketches| json!(ShardSketches { sketches }))
            }
            (Method::Get, "/stats") => store.fold().and_then(|_| store.stats()).map(|s| {
                let mut v = json!(s);
                if let Some(obj) = v.as_object_mut() {
                    obj.insert(
                        "database_bytes".into(),
                        json!(self.state.storage().sql().database_size()),
                    );
                }
                v
            }),
            _ => return Response::error("not found", 404),
        };
        match result {
            Ok(body) => Response::from_json(&body),
            Err(e) => {
                worker::console_error!("bpm-edge: counter shard: {e}");
                Response::error(e.to_string(), 500)
            }
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let Ok(store) = &self.store else {
            return Response::ok("");
        };
        if let Err(e) = store.maintain(now_secs()) {
            worker::console_error!("bpm-edge: counter shard maintenance failed: {e}");
        }
        if store.has_minutes().unwrap_or(true) {
            self.set_alarm().await;
        } else {
            self.alarm_known.set(false);
        }
        Response::ok("")
    }
}

impl CounterShard {
    /// Whether an injected fault refuses writes now (tests only).
    fn fault_now(&self) -> bool {
        let now = js_sys::Date::now();
        let first = *self.first_flush_ms.get().get_or_insert(now);
        self.first_flush_ms.set(Some(first));
        match Fault::from_env(&self.env) {
            Some(Fault::Storage) => true,
            Some(Fault::StorageFor(secs)) => now - first < secs * 1000.0,
            _ => false,
        }
    }

    async fn ensure_alarm(&self) {
        if self.alarm_known.get() {
            return;
        }
        match self.state.storage().get_alarm().await {
            Ok(Some(_)) => self.alarm_known.set(true),
            Ok(None) => self.set_alarm().await,
            Err(e) => worker::console_error!("bpm-edge: reading the shard alarm failed: {e}"),
        }
    }

    async fn set_alarm(&self) {
        // An integer alarm time is an offset from now in workers-rs.
        match self
            .state
            .storage()
            .set_alarm(MAINTENANCE_INTERVAL_MS as i64)
            .await
        {
            Ok(()) => self.alarm_known.set(true),
            Err(e) => worker::console_error!("bpm-edge: setting the shard alarm failed: {e}"),
        }
    }
}
