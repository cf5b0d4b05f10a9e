//! `DurableSql`: a Durable Object's SQLite storage (`ctx.storage.sql`) as
//! the core's [`Sql`], for the three Durable Objects' stores (counter shard,
//! alerts, salts).
//!
//! Invariant: a transaction is `ctx.storage.transactionSync` (Durable Object
//! SQL refuses `SAVEPOINT`), so a body that fails rolls back everything it
//! wrote.

use bpm_edge::sql::{Sql, SqlOutput, SqlValue, StoreError};
use worker::wasm_bindgen::closure::ScopedClosure;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::{js_sys, SqlStorage, SqlStorageValue, Storage};

/// A Durable Object's SQLite storage as the stores' [`Sql`].
pub(super) struct DurableSql {
    sql: SqlStorage,
    storage: Storage,
}

impl DurableSql {
    pub(super) fn new(storage: Storage) -> Self {
        DurableSql {
            sql: storage.sql(),
            storage,
        }
    }
}

impl Sql for DurableSql {
    /// `ctx.storage.transactionSync(f)`: Durable Object SQL refuses
    /// `SAVEPOINT`; a callback that throws rolls everything back.
    fn transaction<T>(
        &self,
        doing: &'static str,
        f: impl FnOnce() -> std::result::Result<T, StoreError>,
    ) -> std::result::Result<T, StoreError> {
        let fail = |cause: String| StoreError { doing, cause };
        let raw: &JsValue = self.storage.as_raw().unchecked_ref();
        let run = js_sys::Reflect::get(raw, &JsValue::from_str("transactionSync"))
            .ok()
            .and_then(|v| v.dyn_into::<js_sys::Function>().ok())
            .ok_or_else(|| fail("transactionSync is not available".into()))?;
        let mut f = Some(f);
        let mut outcome: Option<std::result::Result<T, StoreError>> = None;
        let mut body = || -> std::result::Result<(), JsValue> {
            let Some(f) = f.take() else {
                return Err(JsValue::from_str("transaction body ran twice"));
            };
            let result = f();
            let failed = result.is_err();
            outcome = Some(result);
            if failed {
                Err(JsValue::from_str("rolled back"))
            } else {
                Ok(())
            }
        };
        let callback =
            ScopedClosure::<dyn FnMut() -> std::result::Result<(), JsValue>>::borrow_mut(&mut body);
        let thrown = run.call1(raw, callback.as_ref());
        drop(callback);
        match (outcome, thrown) {
            (Some(Ok(v)), Ok(_)) => Ok(v),
            (Some(Err(e)), _) => Err(e),
            (_, Err(e)) => Err(fail(format!("transaction failed: {e:?}"))),
            (None, Ok(_)) => Err(fail("transaction body did not run".into())),
        }
    }

    fn exec(&self, sql: &str, binds: Vec<SqlValue>) -> std::result::Result<SqlOutput, String> {
        let mut values = Vec::with_capacity(binds.len());
        for b in binds {
            values.push(match b {
                SqlValue::Null => SqlStorageValue::Null,
                SqlValue::Int(i) => SqlStorageValue::try_from_i64(i).map_err(|e| e.to_string())?,
                SqlValue::Text(s) => SqlStorageValue::String(s),
                SqlValue::Blob(b) => SqlStorageValue::Blob(b),
            });
        }
        let cursor = self.sql.exec(sql, values).map_err(|e| e.to_string())?;
        let mut rows = Vec::new();
        for row in cursor.raw() {
            let row = row.map_err(|e| e.to_string())?;
            rows.push(
                row.into_iter()
                    .map(|v| match v {
                        SqlStorageValue::Integer(i) => SqlValue::Int(i),
                        SqlStorageValue::Float(f) if f.fract() == 0.0 => SqlValue::Int(f as i64),
                        SqlStorageValue::String(s) => SqlValue::Text(s),
                        SqlStorageValue::Blob(b) => SqlValue::Blob(b),
                        _ => SqlValue::Null,
                    })
                    .collect(),
            );
        }
        Ok(SqlOutput {
            rows,
            rows_written: cursor.rows_written() as u64,
        })
    }
}
