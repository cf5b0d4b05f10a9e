//! The Workers shell: entry point, proxy, flushing, API and the counter
//! Durable Object. Everything here translates between the runtime and the
//! pure core; decisions live in the core.
//!
//! Invariant: nothing on the visitor's path may panic or turn a counting
//! problem into a failed response. Counting runs after the origin's response
//! is known, inside `wait_until`, and reports its failures to the log only.

mod access_keys;
mod api;
mod counter_shard;
mod daily_salt;
mod durable_sql;
mod flush;
mod proxy;
mod shards;
mod site_alerts;

pub use counter_shard::CounterShard;
pub use daily_salt::DailySalt;
pub use site_alerts::SiteAlerts;

use crate::count::classify::Classifier;
use std::cell::OnceCell;
use std::rc::Rc;
use worker::{
    event, web_sys, Context, Env, Method, Request, Result, ScheduleContext, ScheduledEvent,
};

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

/// The current time in Unix seconds.
pub(crate) fn now_secs() -> i64 {
    (worker::js_sys::Date::now() / 1000.0).floor() as i64
}

/// A string var or secret, `None` when unset or empty.
pub(crate) fn env_string(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.to_string())
        .or_else(|_| env.secret(name).map(|v| v.to_string()))
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// The entry point. It takes and returns the runtime's own request and
/// response objects: a visitor's request is forwarded as it is and the
/// origin's response returned as it is (see `proxy`), without converting
/// either; only the API under the reserved prefix uses workers-rs types.
#[event(fetch)]
pub async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> Result<web_sys::Response> {
    let classifier = classifier();
    let url = req.url();
    let prefix = classifier
        .as_ref()
        .map_or(FALLBACK_PREFIX, |c| c.config().site.prefix.as_str());
    if is_own_path(&url, prefix) {
        let prefix = prefix.to_string();
        let resp = api::handle(Request::from(req), &env, classifier, &prefix).await?;
        return Ok(resp.into());
    }
    proxy::forward(proxy::Visit::new(req, url, env, ctx, classifier)).await
}

/// Whether the path of `url` is `prefix` or under `prefix/`.
fn is_own_path(url: &str, prefix: &str) -> bool {
    let Some((_, target)) = proxy::split_url(url) else {
        return false;
    };
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The cron trigger: one tick of the site's alert object (evaluation when a
/// bucket completed, notifications, outbox). The scheduled time is "now",
/// so `wrangler dev --test-scheduled` can drive evaluations at any time.
#[event(scheduled)]
pub async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let Some(classifier) = classifier() else {
        return;
    };
    let now = (event.schedule() / 1000.0).floor() as i64;
    let body = format!("{{\"now\":{now}}}");
    match site_alerts::call(&env, classifier.config(), Method::Post, "/tick", Some(body)).await {
        Ok(resp) if resp.status_code() == 200 => {}
        Ok(mut resp) => {
            let text = resp.text().await.unwrap_or_default();
            worker::console_error!(
                "bpm-edge: alert tick answered {}: {text}",
                resp.status_code()
            );
        }
        Err(e) => worker::console_error!("bpm-edge: alert tick failed: {e}"),
    }
}
