//! The isolate's copy of the Cloudflare Access team's signing keys, imported
//! into WebCrypto, and the one call that verifies an assertion with them.
//!
//! Parsing, key choice, claims and the refetch schedule are the core's
//! (`bpm_edge::auth::access`); this file only fetches the certs document, imports
//! keys and runs RSASSA-PKCS1-v1_5/SHA-256 in the runtime's WebCrypto, so no
//! RSA code is compiled into the wasm. Invariant: a fetch failure never
//! widens what is accepted; it only keeps keys the team published within
//! the last `KEYS_STALE_SECS`.

use bpm_edge::auth::access::{
    keys_still_usable, parse_assertion, parse_certs, should_fetch_keys, AccessError,
    AccessIdentity, AccessPolicy, SigningKey, MAX_CERTS_LEN,
};
use futures_util::future::{select, Either};
use std::cell::RefCell;
use std::time::Duration;
use worker::js_sys::{Array, Promise, Uint8Array, JSON};
use worker::wasm_bindgen::prelude::*;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{AbortController, Fetch, Headers, Method, Request, RequestInit};

/// How long the certs fetch may take before the keys count as unavailable.
const FETCH_TIMEOUT_MS: u64 = 5_000;
/// How often a request waiting for another request's fetch looks again.
const WAIT_POLL_MS: u64 = 25;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(catch, js_namespace = ["crypto", "subtle"], js_name = importKey)]
    fn subtle_import_key(
        format: &str,
        key: &JsValue,
        algorithm: &JsValue,
        extractable: bool,
        usages: &Array,
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(catch, js_namespace = ["crypto", "subtle"], js_name = verify)]
    fn subtle_verify(
        algorithm: &str,
        key: &JsValue,
        signature: &Uint8Array,
        data: &Uint8Array,
    ) -> Result<Promise, JsValue>;
}

/// Keys of one issuer as last fetched, each with its imported `CryptoKey`.
struct KeyCache {
    issuer: String,
    /// When a fetch last succeeded (`keys` is from then).
    fetched_at: Option<i64>,
    /// When a fetch was last started, successful or not.
    tried_at: Option<i64>,
    keys: Vec<(SigningKey, JsValue)>,
    /// A request is fetching the certs right now.
    fetching: bool,
}

impl KeyCache {
    fn empty(policy: &AccessPolicy) -> Self {
        KeyCache {
            issuer: policy.issuer().to_owned(),
            fetched_at: None,
            tried_at: None,
            keys: Vec::new(),
            fetching: false,
        }
    }

    fn find(&self, kid: &str) -> Option<JsValue> {
        self.keys
            .iter()
            .find(|(k, _)| k.kid == kid)
            .map(|(_, key)| key.clone())
    }
}

thread_local! {
    static KEYS: RefCell<Option<KeyCache>> = const { RefCell::new(None) };
}

/// Verifies an assertion: shape, key, signature, then claims at `now`.
pub async fn verify(
    policy: &AccessPolicy,
    jwt: &str,
    now: i64,
) -> Result<AccessIdentity, AccessError> {
    let assertion = parse_assertion(jwt)?;
    let key = key_for(policy, &assertion.kid, now).await?;
    let signature = Uint8Array::from(assertion.signature.as_slice());
    let data = Uint8Array::from(assertion.signing_input.as_bytes());
    let verified = match subtle_verify("RSASSA-PKCS1-v1_5", &key, &signature, &data) {
        Ok(p) => JsFuture::from(p).await.ok().and_then(|v| v.as_bool()),
        Err(_) => None,
    };
    if verified != Some(true) {
        return Err(AccessError::BadSignature);
    }
    assertion.identity(policy, now)
}

/// The imported key for `kid`, fetching the team's keys when they are
/// missing, old, or lack `kid` (see `should_fetch_keys`). Requests that
/// arrive while another one fetches wait for its result instead of fetching
/// too.
async fn key_for(policy: &AccessPolicy, kid: &str, now: i64) -> Result<JsValue, AccessError> {
    let mut waited_ms = 0;
    let (fetched_at, known) = loop {
        let seen = KEYS.with(|cell| {
            let mut cell = cell.borrow_mut();
            let cache = cell.get_or_insert_with(|| KeyCache::empty(policy));
            if cache.issuer != policy.issuer() {
                *cache = KeyCache::empty(policy);
            }
            if cache.fetching {
                return None;
            }
            let known = cache.find(kid);
            let fetch = should_fetch_keys(cache.fetched_at, cache.tried_at, known.is_some(), now);
            if fetch {
                cache.tried_at = Some(now);
                cache.fetching = true;
            }
            Some((fetch, cache.fetched_at, known))
        });
        match seen {
            Some((true, fetched_at, known)) => break (fetched_at, known),
            Some((false, fetched_at, known)) => {
                return known.ok_or_else(|| match fetched_at {
                    Some(_) => AccessError::UnknownKey(kid.to_owned()),
                    None => AccessError::KeysUnavailable(
                        "the last fetch of the certs failed; retrying shortly".into(),
                    ),
                });
            }
            None if waited_ms < FETCH_TIMEOUT_MS + 1_000 => {
                worker::Delay::from(Duration::from_millis(WAIT_POLL_MS)).await;
                waited_ms += WAIT_POLL_MS;
            }
            None => {
                return Err(AccessError::KeysUnavailable(
                    "another request's fetch of the certs did not finish".into(),
                ))
            }
        }
    };
    let fetching = FetchInProgress;
    let fetched = fetch_keys(policy).await;
    drop(fetching);
    match fetched {
        Ok(keys) => {
            let found = keys
                .iter()
                .find(|(k, _)| k.kid == kid)
                .map(|(_, key)| key.clone());
            KEYS.with(|cell| {
                if let Some(c) = cell.borrow_mut().as_mut() {
                    c.fetched_at = Some(now);
                    c.keys = keys;
                }
            });
            found.ok_or_else(|| AccessError::UnknownKey(kid.to_owned()))
        }
        Err(e) => {
            worker::console_error!("bpm-edge: {e}");
            match (fetched_at, known) {
                (Some(t), Some(key)) if keys_still_usable(t, now) => Ok(key),
                _ => Err(e),
            }
        }
    }
}

/// Marks the cache's fetch as finished when dropped, also when the request
/// that started it is cancelled mid-fetch.
struct FetchInProgress;

impl Drop for FetchInProgress {
    fn drop(&mut self) {
        KEYS.with(|cell| {
            if let Ok(mut cell) = cell.try_borrow_mut() {
                if let Some(c) = cell.as_mut() {
                    c.fetching = false;
                }
            }
        });
    }
}

/// Fetches the certs document and imports every usable key.
async fn fetch_keys(policy: &AccessPolicy) -> Result<Vec<(SigningKey, JsValue)>, AccessError> {
    let unavailable = |why: String| AccessError::KeysUnavailable(why);
    let url = policy.certs_url();
    let headers = Headers::new();
    let _ = headers.set("accept", "application/json");
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let req = Request::new_with_init(&url, &init)
        .map_err(|e| unavailable(format!("bad certs URL {url}: {e}")))?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(req);
    let send = Box::pin(fetch.send_with_signal(&signal));
    let timer = Box::pin(worker::Delay::from(Duration::from_millis(FETCH_TIMEOUT_MS)));
    let mut resp = match select(send, timer).await {
        Either::Left((Ok(resp), _)) => resp,
        Either::Left((Err(e), _)) => return Err(unavailable(format!("{url}: {e}"))),
        Either::Right(_) => {
            controller.abort();
            return Err(unavailable(format!("{url}: no answer within 5 s")));
        }
    };
    if resp.status_code() != 200 {
        return Err(unavailable(format!(
            "{url} answered {}",
            resp.status_code()
        )));
    }
    let body = resp
        .text()
        .await
        .map_err(|e| unavailable(format!("{url}: {e}")))?;
    if body.len() > MAX_CERTS_LEN {
        return Err(unavailable(format!(
            "{url}: larger than {MAX_CERTS_LEN} bytes"
        )));
    }
    let mut imported = Vec::new();
    for key in parse_certs(&body)? {
        match import(&key).await {
            Some(crypto_key) => imported.push((key, crypto_key)),
            None => worker::console_error!(
                "bpm-edge: Access key {:?} from {url} could not be imported",
                key.kid
            ),
        }
    }
    if imported.is_empty() {
        return Err(unavailable(format!("{url}: no key could be imported")));
    }
    Ok(imported)
}

/// Imports one key as an RS256 verification key.
async fn import(key: &SigningKey) -> Option<JsValue> {
    let jwk = serde_json::json!({
        "kty": "RSA", "n": key.n, "e": key.e, "alg": "RS256", "ext": true,
    });
    let algorithm = serde_json::json!({ "name": "RSASSA-PKCS1-v1_5", "hash": "SHA-256" });
    let jwk = JSON::parse(&jwk.to_string()).ok()?;
    let algorithm = JSON::parse(&algorithm.to_string()).ok()?;
    let usages = Array::of1(&JsValue::from_str("verify"));
    let promise = subtle_import_key("jwk", &jwk, &algorithm, false, &usages).ok()?;
    JsFuture::from(promise).await.ok()
}
