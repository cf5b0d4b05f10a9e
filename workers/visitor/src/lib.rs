//! bpm-edge's visitor worker: the only code on the site's route. It
//! forwards every visitor request to the origin untouched (`proxy`),
//! classifies it with the compiled config of the site its `Host` names
//! (a host of no site is forwarded, not counted), and batches the counts to
//! the counter shards (`pending`), whose Durable Object class lives in the
//! control worker. Requests under the reserved prefix go, unread, to the
//! control worker through the `BPM_CONTROL` service binding (`entry.mjs`).
//!
//! Invariant: nothing on the visitor's path may panic, wait for the control
//! worker, or turn a counting problem into a failed response. Counting runs
//! after the origin's response is known, inside `wait_until`, and reports
//! its failures to the log only.

#![cfg(target_arch = "wasm32")]

mod pending;
mod proxy;

use worker::wasm_bindgen::prelude::*;

/// Run by `entry.mjs` when the module is evaluated (the isolate's start-up,
/// outside any request) with the worker's `env`: reads the compiled config
/// (building every site's classifier) and the vars, so that a visitor's
/// first request does not.
#[wasm_bindgen(js_name = warmUp)]
pub fn warm_up(env: worker::Env) {
    let _ = bpm_edge_shell::served();
    proxy::read_settings(&env);
}
