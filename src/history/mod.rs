//! Offline and imported history: `accesslog` reads web server logs,
//! `replay` counts them as the worker would, `backfill` imports counts,
//! `backtest` replays the detector over a series exactly as the worker
//! judges it, and `synthetic` makes seeded series for tests and benchmarks
//! (native only).

pub mod accesslog;
pub mod backfill;
pub mod backtest;
pub mod replay;
#[cfg(not(target_arch = "wasm32"))]
pub mod synthetic;
