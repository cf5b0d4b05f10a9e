//! What an invalid `bpm.toml` reports: one [`ConfigError`] per invalid
//! field, located by line and column, gathered per file in
//! [`ConfigErrors`], shown one `file:line:col: field: message` line each
//! (the build fails with these lines).

use std::fmt;

/// One invalid field, located in the source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub column: usize,
    /// Dotted path of the field, e.g. `metric[2].match.status`.
    pub field: String,
    pub message: String,
}

/// Every error found in one file (validation does not stop at the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file, e.line, e.column, e.field, e.message
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
