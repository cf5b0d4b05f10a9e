//! `DailySalt`, the Durable Object that keeps a site's daily visitor salts
//! (one object per site, named after it). The isolate's side, fetching a
//! day's salt at most once per isolate and day, is the visitor worker's
//! `pending` (with `count::visitors::SaltCache`); the answer's format is
//! `count::visitors::SaltAnswer`.
//!
//! The object hands the [`SaltStore`] its own clock's site-local day and a
//! fresh random salt (WebCrypto through `getrandom`) for days it has none
//! of. Invariant: only a day number goes to the object and only a salt
//! comes back; IP addresses and user agents never leave the isolate.

use crate::durable_sql::DurableSql;
use bpm_edge::config::sitetime::SiteTime;
use bpm_edge::count::visitors::{salt_day, Salt, SaltAnswer, SALT_LEN};
use bpm_edge::windows::salt_store::{SaltStore, SaltStoreError};
use bpm_edge_shell::now_secs;
use worker::{
    durable_object, js_sys, DurableObject, Env, Method, Request, Response, Result, State,
};

#[durable_object]
pub struct DailySalt {
    store: std::result::Result<SaltStore<DurableSql>, String>,
    /// The site's clock (its time zone names the day); UTC if the site
    /// this object is named after is not in the config.
    time: SiteTime,
}

impl DurableObject for DailySalt {
    fn new(state: State, _env: Env) -> Self {
        let store = SaltStore::open(DurableSql::new(state.storage())).map_err(|e| e.to_string());
        if let Err(e) = &store {
            worker::console_error!("bpm-edge: salt storage unusable: {e}");
        }
        let time = bpm_edge_shell::site_of_object(&state)
            .map(|c| c.config().time.clone())
            .unwrap_or_default();
        DailySalt { store, time }
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
        let today = salt_day(&self.time, now_secs());
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
