//! bpm-edge: counts Business-value Proxy Metrics from the requests passing
//! through a Cloudflare Worker.
//!
//! This crate is the pure core, built and tested natively; it imports
//! nothing from the Workers runtime. The shell is three thin crates under
//! `workers/` that translate between the runtime and this core: `shell`
//! (glue both workers share), `visitor` (the request path) and `control`
//! (API, dashboard, Durable Objects, cron). The core never panics on input
//! from a request, the config or storage.

pub mod alert;
pub mod auth;
pub mod config;
pub mod count;
pub mod decimal;
pub mod digest;
pub mod history;
pub mod report;
pub mod sql;
pub mod time;
pub mod windows;

/// The configuration compiled by `build.rs` from `bpm.toml`: the sites it
/// serves (JSON read by [`config::sites::Deployment::from_json`]); both
/// workers embed it.
pub const CONFIG_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/bpm-config.json"));
/// `sha256:` of the configuration file, so `sha256sum bpm.toml` shows what
/// is deployed.
pub const CONFIG_HASH: &str = env!("BPM_CONFIG_HASH");
/// This build's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
