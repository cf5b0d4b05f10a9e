//! The fail-open proxy: forwards a visitor's request to the origin untouched
//! (method, headers, streamed body, manual redirects) and returns the
//! origin's response as it came: the runtime's own response object, never
//! rebuilt, so its status, headers and body stream reach the visitor as they
//! are; then schedules counting.
//!
//! bpm-edge's own session cookie (scoped to the prefix, but a browser may
//! still send it) is taken out of what is forwarded.
//!
//! Invariants: the response is the origin's, or a `502` with a short plain
//! text reason when the origin cannot be reached or answers a status no
//! `Response` can carry (outside 200–599 and not a `101` upgrade, e.g. `999`:
//! every layer that re-wraps a response, `wrangler dev`'s included, throws
//! on it); counting is scheduled only after the response is known and cannot
//! change or delay it. Nothing taken from a request or response is
//! unwrapped. The visitor's IP address is copied only to be hashed in memory
//! (see `visitors`).
//!
//! The request's URL is read once and split, not parsed; `ORIGIN_URL` and
//! `BPM_COUNTING` are read once per isolate (vars only change with a new
//! deployment, which starts new isolates).

use super::flush;
use crate::auth::{without_session_cookie, SESSION_COOKIE};
use crate::classify::{Classifier, RequestFacts, ResponseFacts};
use std::cell::OnceCell;
use std::rc::Rc;
use worker::js_sys::{self, Promise};
use worker::wasm_bindgen::prelude::*;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{web_sys, Context, Env, Result};

#[wasm_bindgen]
extern "C" {
    /// The global `fetch(url, init)`; a synchronous throw becomes `Err`.
    #[wasm_bindgen(catch, js_name = fetch)]
    fn global_fetch(
        url: &str,
        init: &web_sys::RequestInit,
    ) -> std::result::Result<Promise, JsValue>;
}

/// The vars the visitor's path needs, read from the first request's `Env`.
struct Settings {
    /// `Ok(None)`: `ORIGIN_URL` unset, forward to the request's own URL.
    /// `Ok(Some(base))`: `scheme://host[:port]` of `ORIGIN_URL`, to which the
    /// request target is appended. `Err`: why `ORIGIN_URL` is unusable.
    origin: std::result::Result<Option<String>, &'static str>,
    /// `BPM_COUNTING` is not `off`.
    counting: bool,
}

impl Settings {
    fn read(env: &Env) -> Self {
        Settings {
            origin: super::env_string(env, "ORIGIN_URL")
                .map(|o| origin_base(&o))
                .transpose(),
            counting: super::env_string(env, "BPM_COUNTING").as_deref() != Some("off"),
        }
    }
}

thread_local! {
    static SETTINGS: OnceCell<Settings> = const { OnceCell::new() };
}

/// Forwards `req` (whose serialised URL is `url`) and returns the origin's
/// response object itself.
pub async fn forward(
    req: web_sys::Request,
    url: &str,
    env: &Env,
    ctx: &Context,
    classifier: Option<Rc<Classifier>>,
) -> Result<web_sys::Response> {
    let started = js_sys::Date::now();
    let Some((host, target)) = split_url(url) else {
        return bad_gateway("bpm-edge: the request URL could not be read");
    };
    let settings = SETTINGS.with(|cell| {
        let s = cell.get_or_init(|| Settings::read(env));
        s.origin
            .as_ref()
            .map(|base| (base.as_ref().map(|b| format!("{b}{target}")), s.counting))
            .map_err(|msg| *msg)
    });
    let (origin_url, counting) = match settings {
        Ok(s) => s,
        Err(msg) => return bad_gateway(msg),
    };
    if origin_url.is_none() {
        // Deployed on a route: if this worker ever throws, the runtime sends
        // the request straight to the origin instead of failing it.
        ctx.pass_through_on_exception();
    }
    let counting = classifier.filter(|_| counting);

    // One request, built by `fetch` itself from the URL and this init: same
    // method, headers and body stream; a redirect goes back as it is.
    let method = req.method();
    let headers = req.headers();
    let init = web_sys::RequestInit::new();
    if method != "GET" {
        init.set_method(&method);
    }
    init.set_headers(&forwarded_headers(&headers));
    if let Some(body) = req.body() {
        init.set_body(&body);
    }
    init.set_redirect(web_sys::RequestRedirect::Manual);
    let pending = match global_fetch(origin_url.as_deref().unwrap_or(url), &init) {
        Ok(p) => p,
        Err(_) => return bad_gateway("bpm-edge: the request could not be forwarded"),
    };
    let response = match JsFuture::from(pending)
        .await
        .and_then(|v| v.dyn_into::<web_sys::Response>())
    {
        Ok(r) => r,
        Err(_) => return bad_gateway("bpm-edge: the origin could not be reached"),
    };

    let status = response.status();
    let reply = if status == 101 || (200..=599).contains(&status) {
        // A second handle to the same object (not `Response.clone()`, which
        // would tee the body).
        Clone::clone(&response)
    } else {
        bad_gateway(&format!(
            "bpm-edge: the origin answered status {status}, which cannot be passed on"
        ))?
    };

    let Some(classifier) = counting else {
        return Ok(reply);
    };
    let now = js_sys::Date::now();
    let header = |name: &str| headers.get(name).ok().flatten();
    let referer = header("referer");
    let user_agent = header("user-agent");
    let location = response.headers().get("location").ok().flatten();
    let request_facts = RequestFacts {
        method: &method,
        target: target.as_bytes(),
        host,
        referer: referer.as_deref().map(str::as_bytes),
        user_agent: user_agent.as_deref().map(str::as_bytes),
    };
    // The origin's answer (also when the visitor got a 502 for its status).
    let response_facts = ResponseFacts {
        status,
        location: location.as_deref(),
        latency_ms: now - started,
    };
    let mut hits = Vec::new();
    classifier.classify(&request_facts, &response_facts, &mut hits);
    if hits.is_empty() {
        return Ok(reply);
    }
    let at_secs = (now / 1000.0).floor() as i64;
    // `CF-Connecting-IP`: hashed for unique visitors, never stored.
    let visitor = header("cf-connecting-ip")
        .filter(|ip| !ip.trim().is_empty())
        .map(|ip| flush::Visitor {
            ip,
            user_agent: user_agent.unwrap_or_default(),
        });
    if let Some(work) = flush::record(env, &classifier, at_secs, hits, visitor) {
        ctx.wait_until(work);
    }
    Ok(reply)
}

/// The headers to forward: the visitor's, less bpm-edge's own session
/// cookie (copied only when that cookie is there; the origin never sees it).
fn forwarded_headers(headers: &web_sys::Headers) -> web_sys::Headers {
    let Some(cookie) = headers
        .get("cookie")
        .ok()
        .flatten()
        .filter(|c| c.contains(SESSION_COOKIE))
    else {
        return headers.clone();
    };
    let Ok(copy) = web_sys::Headers::new_with_headers(headers) else {
        return headers.clone();
    };
    let _ = match without_session_cookie(&cookie) {
        Some(rest) => copy.set("cookie", &rest),
        None => copy.delete("cookie"),
    };
    copy
}

/// Splits a URL as the runtime serialises it (`http(s)://host[:port]/path?query`)
/// into its host (with a non-default port) and its request target (path and
/// `?query`), without parsing: a special scheme's serialisation always has an
/// authority and a path starting with `/`, omits the default port, and
/// percent-encodes `?` in the path and `#` before the fragment. `None` for
/// anything else.
pub(super) fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.get(url.find("://")? + 3..)?;
    let slash = rest.find('/')?;
    let (authority, target) = rest.split_at(slash);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let target = target.split_once('#').map_or(target, |(t, _)| t);
    Some((host, target))
}

/// `ORIGIN_URL`'s `scheme://host[:port]`, to which a request target is
/// appended (its own path and query are replaced by the request's).
fn origin_base(origin: &str) -> std::result::Result<String, &'static str> {
    let base =
        worker::Url::parse(origin.trim()).map_err(|_| "bpm-edge: ORIGIN_URL is not a valid URL")?;
    if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
        return Err("bpm-edge: ORIGIN_URL must be an http(s) URL with a host");
    }
    Ok(base[..worker::url::Position::BeforePath].to_string())
}

fn bad_gateway(reason: &str) -> Result<web_sys::Response> {
    let headers = web_sys::Headers::new()?;
    headers.set("content-type", "text/plain; charset=utf-8")?;
    let init = web_sys::ResponseInit::new();
    init.set_status(502);
    init.set_headers(&headers);
    Ok(web_sys::Response::new_with_opt_str_and_init(
        Some(&format!("{reason}\n")),
        &init,
    )?)
}
