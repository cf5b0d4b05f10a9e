//! `DailySalt`, the Durable Object that keeps a site's daily visitor salts
//! (one object per site, named after it), and the isolate's side: fetching
//! a day's salt at most once per isolate and day, off the visitor's path.
//!
//! The object hands the [`SaltStore`] its own clock's site-local day and a
//! fresh random salt (WebCrypto through `getrandom`) for days it has none
//! of. Invariant: only a day number goes to the object and only a salt
//! comes back; IP addresses and user agents never leave the isolate.

use super::durable_sql::DurableSql;
use super::now_secs;
use crate::config::Config;
use crate::count::visitors::{salt_day, Salt, SaltCache, SaltStep, SALT_LEN};
use crate::windows::salt_store::{SaltStore, SaltStoreError};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::time::Duration;
use worker::{
    durable_object, js_sys, DurableObject, Env, Method, Request, RequestInit, Response, Result,
    State,
};

/// The Durable Object binding in `wrangler.toml`.
pub const BINDING: &str = "BPM_SALT";
/// How often a request waiting for another request's fetch looks again.
const POLL_MS: u64 = 50;
/// A request gives up waiting after this long and counts no visitor.
const MAX_WAIT_MS: u64 = 5_000;

#[derive(Serialize, Deserialize)]
struct SaltAnswer {
    day: i64,
    /// Hex; the salt is a secret between this object and the isolates.
    salt: String,
}

#[durable_object]
pub struct DailySalt {
    store: std::result::Result<SaltStore<DurableSql>, String>,
}

impl DurableObject for DailySalt {
    fn new(state: State, _env: Env) -> Self {
        let store = SaltStore::open(DurableSql::new(state.storage())).map_err(|e| e.to_string());
        if let Err(e) = &store {
            worker::console_error!("bpm-edge: salt storage unusable: {e}");
        }
        DailySalt { store }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let store = match &self.store {
            Ok(s) => s,
            Err(e) => return Response::error(format!("storage unusable: {e}"), 500),
        };
        if req.method() != Method::Get || req.path() != "/salt" {
            return Response::error("not found", 404);
        }
        let day = req
            .url()?
            .query_pairs()
            .find(|(k, _)| k == "day")
            .and_then(|(_, v)| v.parse::<i64>().ok());
        let Some(day) = day else {
            return Response::error("`day` is required", 400);
        };
        let time = super::classifier().map(|c| c.config().time.clone());
        let today = salt_day(&time.unwrap_or_default(), now_secs());
        match store.salt_for(day, today, fresh_salt) {
            Ok(salt) => Response::from_json(&SaltAnswer {
                day,
                salt: salt.to_hex(),
            }),
            Err(SaltStoreError::Refused(e)) => Response::error(e.to_string(), 409),
            Err(e @ SaltStoreError::Storage(_)) => {
                worker::console_error!("bpm-edge: salt object: {e}");
                Response::error(e.to_string(), 500)
            }
        }
    }
}

/// 32 random bytes from WebCrypto. Should `crypto.getRandomValues` ever be
/// unavailable, `Math.random` fills in: weaker, but only as a salt.
fn fresh_salt() -> Salt {
    let mut bytes = [0u8; SALT_LEN];
    if getrandom::fill(&mut bytes).is_err() {
        worker::console_error!("bpm-edge: WebCrypto unavailable; salt from Math.random");
        for b in &mut bytes {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    Salt::new(bytes)
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
                        worker::console_error!("bpm-edge: no visitor salt for day {day}: {e}");
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

async fn fetch(env: &Env, config: &Config, day: i64) -> std::result::Result<Salt, String> {
    let namespace = env.durable_object(BINDING).map_err(|e| e.to_string())?;
    let stub = namespace
        .id_from_name(&config.site.name)
        .and_then(|id| id.get_stub())
        .map_err(|e| e.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get);
    let req = Request::new_with_init(&format!("https://daily-salt/salt?day={day}"), &init)
        .map_err(|e| e.to_string())?;
    let mut resp = stub
        .fetch_with_request(req)
        .await
        .map_err(|e| e.to_string())?;
    if resp.status_code() != 200 {
        let text = resp.text().await.unwrap_or_default();
        return Err(format!(
            "salt object answered {}: {text}",
            resp.status_code()
        ));
    }
    let answer: SaltAnswer = resp.json().await.map_err(|e| e.to_string())?;
    if answer.day != day {
        return Err(format!("asked for day {day}, got {}", answer.day));
    }
    Salt::from_hex(&answer.salt).ok_or_else(|| "the salt object sent a malformed salt".into())
}
