//! Located checking of raw `bpm.toml` values: [`Checker`] collects one
//! [`ConfigError`] per invalid field, with the line and column of its
//! value, while the tables' checks (`parse` in `config`, `config::metric`
//! and `config::rules`) walk the raw config; validation does not stop at
//! the first error.
//!
//! Invariant: a check that finds a value invalid notes an error and returns
//! the field's default (or nothing), so the walk goes on; the config is
//! valid only if no error was noted.

use crate::config::error::ConfigError;
use std::ops::Range;
use toml::{Spanned, Value};

/// Collects located errors while walking the raw config.
pub(crate) struct Checker<'a> {
    pub(crate) text: &'a str,
    pub(crate) errors: Vec<ConfigError>,
}

impl Checker<'_> {
    pub(crate) fn error(
        &mut self,
        span: Range<usize>,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) {
        let (line, column) = line_col(self.text, span.start);
        self.errors.push(ConfigError {
            line,
            column,
            field: field.into(),
            message: msg.into(),
        });
    }

    pub(crate) fn int_in(
        &mut self,
        v: &Option<Spanned<i64>>,
        field: &str,
        range: std::ops::RangeInclusive<i64>,
        default: u32,
    ) -> u32 {
        let Some(v) = v else { return default };
        let n = *v.get_ref();
        if !range.contains(&n) {
            self.error(
                v.span(),
                field,
                format!("{n} is out of range ({}..={})", range.start(), range.end()),
            );
            return default;
        }
        u32::try_from(n).unwrap_or(default)
    }

    /// A string, or a list of strings, as a list; an item that is not a
    /// string is an error.
    pub(crate) fn strings(&mut self, v: &Spanned<Value>, field: &str) -> Vec<String> {
        match v.get_ref() {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => self.error(
                            v.span(),
                            field,
                            format!("expected a string, found {}", other.type_str()),
                        ),
                    }
                }
                out
            }
            other => {
                self.error(
                    v.span(),
                    field,
                    format!(
                        "expected a string or a list of strings, found {}",
                        other.type_str()
                    ),
                );
                Vec::new()
            }
        }
    }
}

pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
