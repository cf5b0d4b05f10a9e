//! The write path, pure: what one request counts as and how counts leave
//! the isolate. `target` decides whether a request is bpm-edge's own or a
//! visitor's and where it is forwarded; `classify` turns request facts into
//! hits (using `agent` for browser, client or bot, with the crawler list's
//! index that `agent_list` builds at compile time and `agent_table` holds;
//! `referral` for source and campaign, `latency` for the latency class,
//! `visitors` for the unique-visitor hash); `tally`
//! folds hits into minute rows and batches; `flush_queue` decides when an
//! isolate sends them; `pending` is what one request's `wait_until` does
//! (get the day's salt, record, drive the batch); `fleet` models what that costs across many isolates
//! (native only).

pub mod agent;
pub mod agent_list;
mod agent_table;
pub mod classify;
#[cfg(not(target_arch = "wasm32"))]
pub mod fleet;
pub mod flush_queue;
pub mod latency;
pub mod pending;
pub mod referral;
pub mod tally;
pub mod target;
pub mod visitors;
