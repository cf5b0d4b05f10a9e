//! Offline and imported history: `accesslog` reads web server logs and
//! `logpush` Cloudflare's Logpush records,
//! `replay` counts them as the worker would, `backfill` imports counts,
//! `backtest` replays the detector over a series exactly as the worker
//! judges it, `rule_backtest` runs the configured rules' ticks over
//! replayed counts, `simulate` one rule, edited, over the alert object's
//! stored series, `discover` finds the request signatures that tell an
//! incident apart (native only), and `synthetic` makes seeded series for
//! tests and benchmarks (native only).

pub mod accesslog;
pub mod backfill;
pub mod backtest;
#[cfg(not(target_arch = "wasm32"))]
pub mod discover;
pub mod logpush;
pub mod replay;
pub mod rule_backtest;
pub mod simulate;
#[cfg(not(target_arch = "wasm32"))]
pub mod synthetic;
