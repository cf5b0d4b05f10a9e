//! bpm-edge: counts Business-value Proxy Metrics from the requests passing
//! through a Cloudflare Worker.
//!
//! The crate is a pure core (everything not under `edge`), built and tested
//! natively, and a thin shell (`edge`, wasm32 only) that translates between
//! the Workers runtime and that core. The core never panics on input from a
//! request, the config or storage.

pub mod access;
pub mod accesslog;
pub mod agent;
pub mod alert_book;
pub mod alert_store;
pub mod auth;
pub mod backfill;
pub mod backtest;
pub mod classify;
pub mod config;
pub mod counter_store;
pub mod detector;
pub mod event;
pub mod explain;
#[cfg(not(target_arch = "wasm32"))]
pub mod fleet;
pub mod flush_queue;
pub mod latency;
pub mod lifecycle;
pub mod outbox;
pub mod overview;
pub mod pattern;
pub mod payload;
pub mod referral;
pub mod referral_report;
pub mod replay;
pub mod rules;
pub mod salt_store;
pub mod series;
pub mod signing;
pub mod sitetime;
pub mod sketch;
pub mod store;
#[cfg(not(target_arch = "wasm32"))]
pub mod synthetic;
pub mod tally;
pub mod ticks;
pub mod uniques;
pub mod value_series;
pub mod visitors;

#[cfg(target_arch = "wasm32")]
pub mod edge;
