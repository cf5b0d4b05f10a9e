//! bpm-edge: counts Business-value Proxy Metrics from the requests passing
//! through a Cloudflare Worker.
//!
//! The crate is a pure core (everything not under `edge`), built and tested
//! natively, and a thin shell (`edge`, wasm32 only) that translates between
//! the Workers runtime and that core. The core never panics on input from a
//! request, the config or storage.

pub mod alert;
pub mod auth;
pub mod config;
pub mod count;
pub mod decimal;
pub mod history;
pub mod report;
pub mod sql;
pub mod time;
pub mod windows;

#[cfg(target_arch = "wasm32")]
pub mod edge;
