//! Helpers of the config tests: a minimal valid file, and the located
//! errors of an invalid one.

use crate::config::{parse_toml, ConfigError};

/// One counted metric, `login_views`, and nothing else.
pub const MINIMAL: &str = r#"
[[metric]]
name = "login_views"
stage = "retention"
description = "Views of the login page"
match = { method = "GET", path = "/login" }
"#;

/// Every error of `text`, which must be invalid.
pub fn errors(text: &str) -> Vec<ConfigError> {
    parse_toml(text, "bpm.toml").unwrap_err().errors
}

/// The one error of `text`.
pub fn one_error(text: &str) -> ConfigError {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:?}");
    errs.into_iter().next().unwrap()
}
