//! The SQL interface every store runs on: a connection ([`Sql`]) that runs
//! one statement with bound values ([`SqlValue`]) and reports the rows it
//! returned and wrote ([`SqlOutput`]), transactions, idempotent schemas,
//! and the one error type of a failed storage operation ([`StoreError`]).
//!
//! The counter shards, the alert object and the salt object run their
//! stores over it: in the worker over a Durable Object's `ctx.storage.sql`
//! (`edge::counter_shard::DurableSql`), natively over SQLite in tests and
//! the fleet model. Invariant: a statement's failure always names what was
//! being done.

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
    pub fn int(&self) -> Option<i64> {
        match self {
            SqlValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn text(&self) -> Option<&str> {
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

    /// Runs `f` as one transaction: everything it wrote stays if it
    /// returns `Ok`, nothing if it returns `Err`. The default uses a
    /// SQLite savepoint; the Durable Object overrides it with
    /// `transactionSync` (which SQL savepoints are not allowed to replace).
    fn transaction<T>(
        &self,
        doing: &'static str,
        f: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.run(doing, "SAVEPOINT bpm_tx", Vec::new())?;
        match f() {
            Ok(v) => {
                self.run(doing, "RELEASE bpm_tx", Vec::new())?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.exec("ROLLBACK TO bpm_tx", Vec::new());
                let _ = self.exec("RELEASE bpm_tx", Vec::new());
                Err(e)
            }
        }
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
