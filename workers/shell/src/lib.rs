//! Runtime glue both bpm-edge workers share: the isolate's classifier built
//! once from the compiled config, the clock, vars, and the client of the
//! counter shards (whose class lives in the control worker; the visitor
//! reaches it by a `script_name` binding).
//!
//! Invariant: nothing here decides anything a test could not check
//! natively: it reads the runtime and hands values to the core.

#![cfg(target_arch = "wasm32")]

pub mod shards;

use bpm_edge::count::classify::Classifier;
use std::cell::OnceCell;
use std::rc::Rc;
use worker::Env;

/// Reserved prefix used if the compiled config could not be read.
const FALLBACK_PREFIX: &str = "/_bpm";

thread_local! {
    static CLASSIFIER: OnceCell<Option<Rc<Classifier>>> = const { OnceCell::new() };
}

/// The classifier of this isolate, built once. `None` only if the compiled
/// config is unreadable, which disables counting but never forwarding.
pub fn classifier() -> Option<Rc<Classifier>> {
    CLASSIFIER.with(|cell| cell.get_or_init(read_classifier).clone())
}

/// Reads the compiled config. Kept out of line: a fresh isolate compiles
/// a WebAssembly function when it is first called, and the callers of
/// [`classifier`] run on every request while this runs once.
#[inline(never)]
#[cold]
fn read_classifier() -> Option<Rc<Classifier>> {
    match bpm_edge::config::Config::from_json(bpm_edge::CONFIG_JSON) {
        Ok(cfg) => Some(Rc::new(Classifier::new(cfg))),
        Err(e) => {
            worker::console_error!("bpm-edge: compiled config unreadable, counting disabled: {e}");
            None
        }
    }
}

/// The reserved prefix of the compiled config.
pub fn prefix(classifier: Option<&Rc<Classifier>>) -> &str {
    classifier.map_or(FALLBACK_PREFIX, |c| c.config().site.prefix.as_str())
}

/// 64 random bits, for ids (`Math.random`, two 32-bit halves).
pub fn random_u64() -> u64 {
    let half = || (worker::js_sys::Math::random() * 4_294_967_296.0) as u64;
    half() << 32 | half()
}

/// The current time in Unix seconds.
pub fn now_secs() -> i64 {
    (worker::js_sys::Date::now() / 1000.0).floor() as i64
}

/// A string var or secret, `None` when unset or empty. Both are plain
/// string properties of the module worker's `env`; a JSON var (an object)
/// or a binding is not a string.
pub fn env_string(env: &Env, name: &str) -> Option<String> {
    let env: &worker::wasm_bindgen::JsValue = env.as_ref();
    worker::js_sys::Reflect::get(env, &name.into())
        .ok()?
        .as_string()
        .filter(|s| !s.trim().is_empty())
}
