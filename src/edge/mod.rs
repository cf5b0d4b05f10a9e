//! The Workers shell: entry point, proxy, flushing, API and the counter
//! Durable Object. Everything here translates between the runtime and the
//! pure core; decisions live in the core.
//!
//! Invariant: nothing on the visitor's path may panic or turn a counting
//! problem into a failed response. Counting runs after the origin's response
//! is known, inside `wait_until`, and reports its failures to the log only.

mod api;
mod counter_shard;
mod flush;
mod proxy;
mod shards;

pub use counter_shard::CounterShard;

use crate::classify::Classifier;
use std::cell::OnceCell;
use std::rc::Rc;
use worker::{event, Context, Env, Request, Response, Result};

/// The configuration compiled by `build.rs` from `bpm.toml`.
const CONFIG_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/bpm-config.json"));
/// `sha256:` of the configuration file.
pub const CONFIG_HASH: &str = env!("BPM_CONFIG_HASH");
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Reserved prefix used if the compiled config could not be read.
const FALLBACK_PREFIX: &str = "/_bpm";

thread_local! {
    static CLASSIFIER: OnceCell<Option<Rc<Classifier>>> = const { OnceCell::new() };
}

/// The classifier of this isolate, built once. `None` only if the compiled
/// config is unreadable, which disables counting but never forwarding.
pub(crate) fn classifier() -> Option<Rc<Classifier>> {
    CLASSIFIER.with(|cell| {
        cell.get_or_init(|| match crate::config::Config::from_json(CONFIG_JSON) {
            Ok(cfg) => Some(Rc::new(Classifier::new(cfg))),
            Err(e) => {
                worker::console_error!(
                    "bpm-edge: compiled config unreadable, counting disabled: {e}"
                );
                None
            }
        })
        .clone()
    })
}

/// A string var or secret, `None` when unset or empty.
pub(crate) fn env_string(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.to_string())
        .or_else(|_| env.secret(name).map(|v| v.to_string()))
        .ok()
        .filter(|s| !s.trim().is_empty())
}

#[event(fetch)]
pub async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let classifier = classifier();
    let prefix = classifier
        .as_ref()
        .map_or(FALLBACK_PREFIX, |c| c.config().site.prefix.as_str())
        .to_string();
    let path = req.path();
    let own = path == prefix
        || path
            .strip_prefix(prefix.as_str())
            .is_some_and(|rest| rest.starts_with('/'));
    if own {
        return api::handle(req, &env, classifier, &prefix).await;
    }
    proxy::forward(req, &env, &ctx, classifier).await
}
