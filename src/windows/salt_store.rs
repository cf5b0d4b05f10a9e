//! The salt object's storage over any SQLite connection: one random salt
//! per site-local day, created on first request, served while the day is
//! yesterday, today or tomorrow, and deleted once it is older than
//! yesterday.
//!
//! Invariant: a day's salt never changes once stored (every isolate hashes
//! the same visitor to the same value that day), and each call issues its
//! statements without yielding, so on a Durable Object it is atomic.

use crate::count::visitors::{check_salt_day, salt_delete_before, Salt, SaltError};
use crate::sql::{Sql, SqlValue, StoreError};
use std::fmt;

pub const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS salts (
        day INTEGER PRIMARY KEY, salt BLOB NOT NULL) WITHOUT ROWID"];

/// Why no salt was handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaltStoreError {
    Refused(SaltError),
    Storage(StoreError),
}

impl fmt::Display for SaltStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaltStoreError::Refused(e) => write!(f, "{e}"),
            SaltStoreError::Storage(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SaltStoreError {}

impl From<StoreError> for SaltStoreError {
    fn from(e: StoreError) -> Self {
        SaltStoreError::Storage(e)
    }
}

pub struct SaltStore<S: Sql> {
    sql: S,
}

impl<S: Sql> SaltStore<S> {
    /// Wraps a connection and creates the schema if needed.
    pub fn open(sql: S) -> Result<Self, StoreError> {
        sql.create("creating the salt schema", SCHEMA)?;
        Ok(SaltStore { sql })
    }

    /// The salt of `day` when it is `today` (both site-local day numbers),
    /// creating it from `fresh` if it does not exist yet. Deletes the salts
    /// of days before yesterday first.
    pub fn salt_for(
        &self,
        day: i64,
        today: i64,
        fresh: impl FnOnce() -> Salt,
    ) -> Result<Salt, SaltStoreError> {
        self.sql.rows(
            "deleting old salts",
            "DELETE FROM salts WHERE day < ?",
            vec![salt_delete_before(today).into()],
        )?;
        check_salt_day(day, today).map_err(SaltStoreError::Refused)?;
        let stored = self
            .sql
            .rows(
                "reading a salt",
                "SELECT salt FROM salts WHERE day = ?",
                vec![day.into()],
            )?
            .first()
            .and_then(|row| row.first())
            .and_then(SqlValue::blob)
            .and_then(Salt::from_slice);
        if let Some(salt) = stored {
            return Ok(salt);
        }
        // Absent (or unreadable, which would make the day unusable):
        // store a fresh one.
        let salt = fresh();
        self.sql.rows(
            "storing a salt",
            "INSERT INTO salts (day, salt) VALUES (?, ?) \
             ON CONFLICT (day) DO UPDATE SET salt = excluded.salt",
            vec![day.into(), SqlValue::Blob(salt.as_bytes().to_vec())],
        )?;
        Ok(salt)
    }

    /// The days that have a salt, oldest first (for tests and statistics).
    pub fn days(&self) -> Result<Vec<i64>, StoreError> {
        Ok(self
            .sql
            .rows(
                "listing salt days",
                "SELECT day FROM salts ORDER BY day",
                Vec::new(),
            )?
            .iter()
            .filter_map(|r| match r.first() {
                Some(SqlValue::Int(d)) => Some(*d),
                _ => None,
            })
            .collect())
    }
}
