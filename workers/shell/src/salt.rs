//! The isolate's side of the daily visitor salts: a day's salt is asked of
//! the site's `DailySalt` object (control worker) at most once per isolate
//! and day, off the visitor's path; concurrent requests wait for that one
//! answer. Invariant: only a day number goes to the object and only a salt
//! comes back; IP addresses and user agents never leave the isolate.

use bpm_edge::config::Config;
use bpm_edge::count::visitors::{Salt, SaltCache, SaltStep};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::time::Duration;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::worker_sys::DurableObjectNamespace;
use worker::{js_sys, web_sys, Env};

/// The Durable Object binding in both workers' `wrangler.toml`.
pub const BINDING: &str = "BPM_SALT";
/// How often a request waiting for another request's fetch looks again.
const POLL_MS: u64 = 50;
/// A request gives up waiting after this long and counts no visitor.
const MAX_WAIT_MS: u64 = 5_000;

/// What the salt object answers for `GET /salt?day=N`.
#[derive(Serialize, Deserialize)]
pub struct SaltAnswer {
    pub day: i64,
    /// Hex; the salt is a secret between the object and the isolates.
    pub salt: String,
}

thread_local! {
    static SALTS: RefCell<SaltCache> = RefCell::new(SaltCache::default());
}

/// The salt of site-local `day` if this isolate has it already.
pub fn cached(day: i64) -> Option<Salt> {
    SALTS.with(|c| c.try_borrow().ok().and_then(|c| c.ready(day)))
}

/// The salt of site-local `day` for this isolate: from its cache, else
/// asked of the salt object once (concurrent requests wait for that one
/// answer). `None` when it cannot be had; the request is then counted
/// without a visitor.
pub async fn salt_for(env: &Env, config: &Config, day: i64) -> Option<Salt> {
    let mut waited = 0;
    loop {
        let now = js_sys::Date::now();
        let step = SALTS.with(|c| c.try_borrow_mut().ok().map(|mut c| c.step(day, now)))?;
        match step {
            SaltStep::Ready(salt) => return Some(salt),
            SaltStep::GiveUp => return None,
            SaltStep::Fetch => {
                let fetched = fetch(env, config, day).await;
                let now = js_sys::Date::now();
                SALTS.with(|c| {
                    if let Ok(mut c) = c.try_borrow_mut() {
                        match &fetched {
                            Ok(salt) => c.fetched(day, salt.clone()),
                            Err(_) => c.failed(day, now),
                        }
                    }
                });
                return match fetched {
                    Ok(salt) => Some(salt),
                    Err(e) => {
                        report_no_salt(day, &e);
                        None
                    }
                };
            }
            SaltStep::Wait if waited < MAX_WAIT_MS => {
                worker::Delay::from(Duration::from_millis(POLL_MS)).await;
                waited += POLL_MS;
            }
            SaltStep::Wait => return None,
        }
    }
}

/// Asks the salt object for `day`'s salt. It runs in a fresh isolate's
/// first request, which compiles every WebAssembly function it calls, so it
/// talks to the runtime's own objects directly: the stub's `fetch` by URL
/// (a GET) and the response's native `text()`, instead of the `worker`
/// crate's request and body-stream wrappers.
async fn fetch(env: &Env, config: &Config, day: i64) -> std::result::Result<Salt, String> {
    let namespace = env.durable_object(BINDING).map_err(|e| e.to_string())?;
    let namespace: &DurableObjectNamespace = namespace.as_ref().unchecked_ref();
    let id = namespace
        .id_from_name(&config.site.name)
        .map_err(js_error)?;
    let stub = namespace.get(&id).map_err(js_error)?;
    let pending = stub
        .fetch_with_str(&format!("https://daily-salt/salt?day={day}"))
        .map_err(js_error)?;
    let resp: web_sys::Response = JsFuture::from(pending)
        .await
        .map_err(js_error)?
        .unchecked_into();
    let body = JsFuture::from(resp.text().map_err(js_error)?)
        .await
        .map_err(js_error)?
        .as_string()
        .unwrap_or_default();
    if resp.status() != 200 {
        return Err(format!("salt object answered {}: {body}", resp.status()));
    }
    let answer: SaltAnswer = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    if answer.day != day {
        return Err(format!("asked for day {day}, got {}", answer.day));
    }
    Salt::from_hex(&answer.salt).ok_or_else(|| "the salt object sent a malformed salt".into())
}

#[inline(never)]
#[cold]
fn report_no_salt(day: i64, e: &str) {
    worker::console_error!("bpm-edge: no visitor salt for day {day}: {e}");
}

/// What a rejected runtime call said.
fn js_error(e: JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "the runtime refused the call".into())
}
