//! The fail-open proxy: forwards a visitor's request to the origin untouched
//! (method, headers, streamed body, manual redirects) and returns the
//! origin's response as it came; then schedules counting.
//!
//! Invariants: the response is the origin's, or a `502` with a short plain
//! text reason when the origin cannot be reached; counting is scheduled only
//! after the response is known and cannot change or delay it. The visitor's
//! IP address is copied only to be hashed in memory (see `visitors`).

use super::flush;
use crate::classify::{Classifier, RequestFacts, ResponseFacts};
use std::rc::Rc;
use worker::wasm_bindgen::JsCast;
use worker::{js_sys, web_sys, Context, Env, Response, Result};

/// What counting needs from the request, copied before the request (and its
/// body stream) is handed to the origin.
struct CapturedRequest {
    method: String,
    target: String,
    host: String,
    referer: Option<String>,
    user_agent: Option<String>,
    /// `CF-Connecting-IP`: hashed for unique visitors, never stored.
    ip: Option<String>,
}

impl CapturedRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            method: &self.method,
            target: self.target.as_bytes(),
            host: &self.host,
            referer: self.referer.as_deref().map(str::as_bytes),
            user_agent: self.user_agent.as_deref().map(str::as_bytes),
        }
    }
}

pub async fn forward(
    req: worker::Request,
    env: &Env,
    ctx: &Context,
    classifier: Option<Rc<Classifier>>,
) -> Result<Response> {
    let started = js_sys::Date::now();
    let inner = req.inner();
    let url = match worker::Url::parse(&inner.url()) {
        Ok(u) => u,
        Err(_) => return bad_gateway("bpm-edge: the request URL could not be read"),
    };
    let origin = super::env_string(env, "ORIGIN_URL");
    let target_url = match origin_url(&url, origin.as_deref()) {
        Ok(u) => u,
        Err(msg) => return bad_gateway(msg),
    };
    if origin.is_none() {
        // Deployed on a route: if this worker ever throws, the runtime sends
        // the request straight to the origin instead of failing it.
        ctx.pass_through_on_exception();
    }
    let counting =
        classifier.filter(|_| super::env_string(env, "BPM_COUNTING").as_deref() != Some("off"));
    let captured = counting.as_ref().map(|_| capture(inner, &url));

    let upstream = match forward_request(inner, &target_url) {
        Ok(r) => r,
        Err(_) => return bad_gateway("bpm-edge: the request could not be forwarded"),
    };
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let response =
        match worker::wasm_bindgen_futures::JsFuture::from(global.fetch_with_request(&upstream))
            .await
            .and_then(|v| v.dyn_into::<web_sys::Response>())
        {
            Ok(r) => r,
            Err(_) => return bad_gateway("bpm-edge: the origin could not be reached"),
        };
    let latency_ms = js_sys::Date::now() - started;

    if let (Some(classifier), Some(captured)) = (counting, captured) {
        let status = response.status();
        let location = response.headers().get("location").ok().flatten();
        let resp_facts = ResponseFacts {
            status,
            location: location.as_deref(),
            latency_ms,
        };
        let mut hits = Vec::new();
        classifier.classify(&captured.facts(), &resp_facts, &mut hits);
        if hits.is_empty() {
            return Ok(Response::from(response));
        }
        let at_secs = (js_sys::Date::now() / 1000.0).floor() as i64;
        let visitor = captured.ip.map(|ip| flush::Visitor {
            ip,
            user_agent: captured.user_agent.unwrap_or_default(),
        });
        ctx.wait_until(flush::record(
            env.clone(),
            classifier,
            at_secs,
            hits,
            visitor,
        ));
    }
    Ok(Response::from(response))
}

fn capture(inner: &web_sys::Request, url: &worker::Url) -> CapturedRequest {
    let headers = inner.headers();
    let header = |name: &str| headers.get(name).ok().flatten();
    let mut target = url.path().to_string();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    };
    CapturedRequest {
        method: inner.method(),
        target,
        host,
        referer: header("referer"),
        user_agent: header("user-agent"),
        ip: header("cf-connecting-ip").filter(|ip| !ip.trim().is_empty()),
    }
}

/// Where to send the request: `ORIGIN_URL`'s scheme, host and port with the
/// request's path and query, or the request's own URL when it is unset.
fn origin_url(
    request: &worker::Url,
    origin: Option<&str>,
) -> std::result::Result<String, &'static str> {
    let Some(origin) = origin else {
        return Ok(request.to_string());
    };
    let base =
        worker::Url::parse(origin.trim()).map_err(|_| "bpm-edge: ORIGIN_URL is not a valid URL")?;
    if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
        return Err("bpm-edge: ORIGIN_URL must be an http(s) URL with a host");
    }
    let mut out = base;
    out.set_path(request.path());
    out.set_query(request.query());
    Ok(out.to_string())
}

/// `new Request(url, original)` with `redirect: "manual"`: same method,
/// headers and body stream; a redirect from the origin goes back to the
/// visitor as it is.
fn forward_request(
    original: &web_sys::Request,
    url: &str,
) -> std::result::Result<web_sys::Request, worker::wasm_bindgen::JsValue> {
    let moved = web_sys::Request::new_with_str_and_init(url, original.unchecked_ref())?;
    let init = web_sys::RequestInit::new();
    init.set_redirect(web_sys::RequestRedirect::Manual);
    web_sys::Request::new_with_request_and_init(&moved, &init)
}

fn bad_gateway(reason: &str) -> Result<Response> {
    let mut resp = Response::error(format!("{reason}\n"), 502)?;
    resp.headers_mut()
        .set("content-type", "text/plain; charset=utf-8")?;
    Ok(resp)
}
