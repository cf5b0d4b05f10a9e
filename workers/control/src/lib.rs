//! bpm-edge's control worker: the API and dashboard under the reserved
//! prefix (reached only through the visitor worker's service binding), the
//! counter, salt and alert Durable Objects, and the cron. Everything here
//! translates between the runtime and the pure core; decisions live in the
//! core.
//!
//! Invariant: the visitor's path never waits on this worker. The visitor
//! worker writes counts to the `CounterShard` objects defined here (in
//! `wait_until`, after the visitor has its response) and forwards only
//! requests under the reserved prefix.

#![cfg(target_arch = "wasm32")]

mod access_keys;
mod api;
mod counter_shard;
mod daily_salt;
mod durable_sql;
mod site_alerts;

pub use counter_shard::CounterShard;
pub use daily_salt::DailySalt;
pub use site_alerts::SiteAlerts;

use worker::{
    event, Context, Env, Method, Request, Response, Result, ScheduleContext, ScheduledEvent,
};

/// Requests under the reserved prefix, as the visitor worker forwarded
/// them (or any request, should this worker ever be given a route of its
/// own: the API answers `404` outside the prefix).
#[event(fetch)]
pub async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let served = bpm_edge_shell::served();
    let prefix = bpm_edge_shell::prefix(served.as_ref()).to_string();
    api::handle(req, &env, served, &prefix).await
}

/// The cron trigger: one tick of every site's alert object at once
/// (evaluation when a bucket completed, notifications, digest, outbox).
/// The scheduled time is "now", so `wrangler dev`'s scheduled-event
/// endpoint can drive evaluations at any time. One site's failing tick is
/// logged and holds back no other's.
#[event(scheduled)]
pub async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let Some(served) = bpm_edge_shell::served() else {
        return;
    };
    let now = (event.schedule() / 1000.0).floor() as i64;
    let body = format!("{{\"now\":{now}}}");
    let ticks = served.deployment().sites.iter().map(|config| {
        let (env, body) = (&env, body.clone());
        async move {
            let site = &config.site.name;
            match site_alerts::call(env, config, Method::Post, "/tick", Some(body)).await {
                Ok(resp) if resp.status_code() == 200 => {}
                Ok(mut resp) => {
                    let text = resp.text().await.unwrap_or_default();
                    worker::console_error!(
                        "bpm-edge: alert tick of {site} answered {}: {text}",
                        resp.status_code()
                    );
                }
                Err(e) => worker::console_error!("bpm-edge: alert tick of {site} failed: {e}"),
            }
        }
    });
    futures_util::future::join_all(ticks).await;
}
