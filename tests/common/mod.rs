//! Shared by the native store tests: the stores' `Sql` trait over a real
//! in-memory SQLite (the same dialect as Durable Object storage).

use bpm_edge::sql::{Sql, SqlOutput, SqlValue};
use rusqlite::types::{Value, ValueRef};

pub struct Native(pub rusqlite::Connection);

impl Sql for Native {
    fn exec(&self, sql: &str, binds: Vec<SqlValue>) -> Result<SqlOutput, String> {
        let mut stmt = self.0.prepare_cached(sql).map_err(|e| e.to_string())?;
        let params: Vec<Value> = binds
            .into_iter()
            .map(|b| match b {
                SqlValue::Null => Value::Null,
                SqlValue::Int(i) => Value::Integer(i),
                SqlValue::Text(s) => Value::Text(s),
                SqlValue::Blob(b) => Value::Blob(b),
            })
            .collect();
        let columns = stmt.column_count();
        let before = self.0.total_changes();
        let mut rows = Vec::new();
        let mut query = stmt
            .query(rusqlite::params_from_iter(params))
            .map_err(|e| e.to_string())?;
        while let Some(row) = query.next().map_err(|e| e.to_string())? {
            let mut out = Vec::with_capacity(columns);
            for i in 0..columns {
                out.push(match row.get_ref(i).map_err(|e| e.to_string())? {
                    ValueRef::Integer(v) => SqlValue::Int(v),
                    ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
                    _ => SqlValue::Null,
                });
            }
            rows.push(out);
        }
        drop(query);
        Ok(SqlOutput {
            rows,
            rows_written: self.0.total_changes() - before,
        })
    }
}

impl Native {
    /// A fresh in-memory database.
    pub fn in_memory() -> Self {
        Native(rusqlite::Connection::open_in_memory().expect("in-memory SQLite"))
    }
}

// Not every test binary that includes this module injects faults.
/// A connection whose `n`-th statement containing `pattern` fails (once):
/// a storage fault in the middle of a multi-statement write.
#[allow(dead_code)]
pub struct Faulty {
    pub inner: Native,
    pub pattern: &'static str,
    pub countdown: std::cell::Cell<usize>,
}

#[allow(dead_code)]
impl Faulty {
    pub fn new(pattern: &'static str, n: usize) -> Self {
        Faulty {
            inner: Native::in_memory(),
            pattern,
            countdown: std::cell::Cell::new(n),
        }
    }
}

impl Sql for Faulty {
    fn exec(&self, sql: &str, binds: Vec<SqlValue>) -> Result<SqlOutput, String> {
        if sql.contains(self.pattern) {
            match self.countdown.get() {
                0 => {}
                1 => {
                    self.countdown.set(0);
                    return Err("injected fault".into());
                }
                n => self.countdown.set(n - 1),
            }
        }
        self.inner.exec(sql, binds)
    }
}
