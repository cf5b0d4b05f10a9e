//! Addressing counter shards: which Durable Object holds which counts, and
//! how a request to one is made.
//!
//! Shard `i` of site `s` is the object named `"{s}:{i}"`. Each isolate
//! writes to one shard chosen at random when it starts, so writes spread over
//! all shards; reads ask every shard and sum.

use bpm_edge::config::Config;
use bpm_edge::count::tally::Row;
use bpm_edge::report::series::ShardQuery;
use bpm_edge::report::uniques::{merge_hourly, ShardSketches, SketchQuery};
use bpm_edge::windows::sketch::VisitorSketch;
use futures_util::future::join_all;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::BTreeMap;
use worker::{Env, Method, Request, RequestInit, Response, Result};

/// The Durable Object binding in `wrangler.toml`.
pub const BINDING: &str = "BPM_COUNTER";
/// A binding that does not exist, used by the `counter-binding` fault.
const BROKEN_BINDING: &str = "BPM_COUNTER_MISSING";

/// Test-only fault injection, from the var `BPM_FAULT`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// The counter binding cannot be found.
    CounterBinding,
    /// Every write to a shard fails inside the Durable Object.
    Storage,
    /// Writes fail for this many seconds after a shard's first write
    /// (`storage-for-10s`), then succeed: a short outage.
    StorageFor(f64),
}

impl Fault {
    pub fn from_env(env: &Env) -> Option<Fault> {
        match crate::env_string(env, "BPM_FAULT").as_deref() {
            Some("counter-binding") => Some(Fault::CounterBinding),
            Some("storage") => Some(Fault::Storage),
            Some(other) => other
                .strip_prefix("storage-for-")
                .and_then(|s| s.strip_suffix('s'))
                .and_then(|s| s.parse::<f64>().ok())
                .map(Fault::StorageFor),
            None => None,
        }
    }
}

pub fn shard_name(site: &str, shard: u32) -> String {
    let mut name = String::from(site);
    name.push(':');
    name.push_str(itoa::Buffer::new().format(shard));
    name
}

/// The binding a shard is reached through: [`BINDING`], unless the
/// `counter-binding` fault asks for one that does not exist.
pub fn binding(env: &Env) -> &'static str {
    if Fault::from_env(env) == Some(Fault::CounterBinding) {
        BROKEN_BINDING
    } else {
        BINDING
    }
}

/// The URL of a request for `path` to a shard (the host is not read).
pub fn url(path: &str) -> String {
    let mut url = String::from("https://counter-shard");
    url.push_str(path);
    url
}

/// Sends one request to a shard; `body` is JSON for POST, `None` for GET.
pub async fn call(env: &Env, name: &str, path: &str, body: Option<String>) -> Result<Response> {
    let stub = env
        .durable_object(binding(env))?
        .id_from_name(name)?
        .get_stub()?;
    let mut init = RequestInit::new();
    match body {
        Some(b) => {
            init.with_method(Method::Post)
                .with_body(Some(worker::wasm_bindgen::JsValue::from_str(&b)));
        }
        None => {
            init.with_method(Method::Get);
        }
    }
    let req = Request::new_with_init(&url(path), &init)?;
    stub.fetch_with_request(req).await
}

/// Sends the same request to every shard of the site at once; each answer
/// is the shard's JSON body, or why there is none (named after the shard).
pub async fn ask_all<T: DeserializeOwned>(
    env: &Env,
    config: &Config,
    path: &str,
    body: Option<String>,
) -> Vec<(String, std::result::Result<T, String>)> {
    let calls = (0..config.storage.shards).map(|i| {
        let name = shard_name(&config.site.name, i);
        let body = body.clone();
        async move {
            let answer = async {
                let mut resp = call(env, &name, path, body)
                    .await
                    .map_err(|e| format!("{name}: {e}"))?;
                if resp.status_code() != 200 {
                    return Err(format!("{name} answered {}", resp.status_code()));
                }
                resp.json::<T>().await.map_err(|e| format!("{name}: {e}"))
            }
            .await;
            (name, answer)
        }
    });
    join_all(calls).await
}

/// Rows of `query` from every shard at once, concatenated; an error if any
/// shard failed (a partial sum would look like a drop).
pub async fn read_rows(
    env: &Env,
    config: &Config,
    query: &ShardQuery,
) -> std::result::Result<Vec<Row>, String> {
    #[derive(Deserialize)]
    struct ShardRows {
        rows: Vec<Row>,
    }
    let body = serde_json::to_string(query).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for (_, answer) in ask_all::<ShardRows>(env, config, "/query", Some(body)).await {
        rows.extend(answer?.rows);
    }
    Ok(rows)
}

/// The visitor sketches of `query` from every shard, merged per hour; an
/// error if any shard failed (a partial union would undercount).
pub async fn read_sketches(
    env: &Env,
    config: &Config,
    query: &SketchQuery,
) -> std::result::Result<BTreeMap<i64, VisitorSketch>, String> {
    let body = serde_json::to_string(query).map_err(|e| e.to_string())?;
    let mut parts = Vec::new();
    for (_, answer) in ask_all::<ShardSketches>(env, config, "/sketches", Some(body)).await {
        parts.extend(answer?.sketches);
    }
    Ok(merge_hourly(parts))
}

/// The unique visitors of `metric` over `[from, to)` (Unix seconds, whole
/// UTC hours): the union of every shard's hourly sketches, as one sketch
/// (`.count()` estimates; see `sketch::STANDARD_ERROR`).
pub async fn read_uniques(
    env: &Env,
    config: &Config,
    metric: &str,
    from: i64,
    to: i64,
) -> std::result::Result<VisitorSketch, String> {
    let query = SketchQuery {
        metric: metric.to_string(),
        from,
        to,
        hourly: false,
    };
    let mut total = VisitorSketch::new();
    for sketch in read_sketches(env, config, &query).await?.values() {
        total.merge(sketch);
    }
    Ok(total)
}
