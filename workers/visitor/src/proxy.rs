//! The fail-open proxy: forwards a visitor's request to the origin untouched
//! (method, headers, streamed body, manual redirects) and returns the
//! origin's response as it came: the runtime's own response object, never
//! rebuilt, so its status, headers and body stream reach the visitor as they
//! are. Once the origin has answered, `count` classifies the request and
//! records its hits (`pending` holds what that leaves to do).
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
//! `BPM_COUNTING` are read once per isolate, at its start-up (vars only
//! change with a new deployment, which starts new isolates).

use crate::pending::{self, CountWork};
use bpm_edge::auth::{without_session_cookie, SESSION_COOKIE};
use bpm_edge::count::agent::CfSignals;
use bpm_edge::count::classify::{Classifier, RequestFacts, ResponseFacts};
use bpm_edge::count::pending::{CountedRequest, Visitor};
use bpm_edge::count::target::{is_own_path, origin_base, split_url};
use bpm_edge::count::visitors::salt_day;
use std::cell::OnceCell;
use std::rc::Rc;
use worker::js_sys::{self, Promise};
use worker::wasm_bindgen::prelude::*;
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
            origin: bpm_edge_shell::env_string(env, "ORIGIN_URL")
                .map(|o| origin_base(&o))
                .transpose(),
            counting: bpm_edge_shell::env_string(env, "BPM_COUNTING").as_deref() != Some("off"),
        }
    }
}

thread_local! {
    static SETTINGS: OnceCell<Settings> = const { OnceCell::new() };
}

/// Reads the vars once, from the isolate's `env` at start-up (`warmUp`),
/// or else from the first request's.
pub fn read_settings(env: &Env) {
    SETTINGS.with(|cell| {
        cell.get_or_init(|| Settings::read(env));
    });
}

/// One visitor request on its way to the origin. The entry
/// (`entry.mjs`) drives it with plain promise callbacks, so no Rust future
/// (and none of wasm-bindgen's executor, which the CPU benchmark's profile
/// put at about a third of the request's CPU) runs per request:
/// `startVisit` → [`Visit::forward`] → [`Visit::count`] then
/// [`Visit::answer`], or [`Visit::unreachable`]. Each call is synchronous;
/// `answer` and `unreachable` consume the visit.
#[wasm_bindgen]
pub struct Visit {
    req: web_sys::Request,
    /// The request URL as the runtime serialised it.
    url: String,
    env: Env,
    ctx: Context,
    /// The site the request is counted in (its index in the deployment)
    /// and its classifier; `None`: not counted.
    classifier: Option<(usize, Rc<Classifier>)>,
    /// When the request was forwarded (ms), for latency.
    started: f64,
}

/// The visit for `req`, or `undefined` when the request is for bpm-edge
/// itself (the reserved prefix), which the entry hands to the control
/// worker.
#[wasm_bindgen(js_name = startVisit)]
pub fn start_visit(
    req: web_sys::Request,
    env: Env,
    ctx: worker::worker_sys::Context,
) -> Option<Visit> {
    let served = bpm_edge_shell::served();
    let url = req.url();
    if is_own_path(&url, bpm_edge_shell::prefix(served.as_ref())) {
        return None;
    }
    // A host of no configured site is forwarded and not counted.
    let site = served.and_then(|s| s.for_host(split_url(&url)?.0));
    Some(Visit::new(req, url, env, Context::new(ctx), site))
}

#[wasm_bindgen]
impl Visit {
    /// Sends the request to the origin: a promise of the origin's response,
    /// which rejects when the origin cannot be reached. A request that
    /// cannot be forwarded at all resolves to a `502` and is not counted.
    pub fn forward(&mut self) -> Promise {
        match self.send() {
            Ok(pending) => pending,
            Err(reason) => {
                self.classifier = None;
                match bad_gateway(reason) {
                    Ok(resp) => Promise::resolve(&JsValue::from(resp)),
                    Err(e) => Promise::reject(&e.into()),
                }
            }
        }
    }

    /// Classifies the request with the origin's `response` (its real
    /// status, also when the visitor gets a `502` for it) and records its
    /// hits: the work the request's `wait_until` must run, if any. Counts
    /// once; `undefined` when counting is off or nothing is counted.
    pub fn count(&mut self, response: &web_sys::Response) -> Option<CountWork> {
        let (site, classifier) = self.classifier.take()?;
        self.record(site, &classifier, response)
    }

    /// What the visitor gets for the origin's `response`: the response
    /// itself, or a `502` when its status cannot be passed on.
    pub fn answer(self, response: web_sys::Response) -> Result<web_sys::Response> {
        let status = response.status();
        if status == 101 || (200..=599).contains(&status) {
            return Ok(response);
        }
        bad_gateway(&format!(
            "bpm-edge: the origin answered status {status}, which cannot be passed on"
        ))
    }

    /// The `502` for an origin that could not be reached; nothing is counted.
    pub fn unreachable(self) -> Result<web_sys::Response> {
        bad_gateway("bpm-edge: the origin could not be reached")
    }
}

impl Visit {
    /// A visit for a request that is not under the reserved prefix.
    fn new(
        req: web_sys::Request,
        url: String,
        env: Env,
        ctx: Context,
        classifier: Option<(usize, Rc<Classifier>)>,
    ) -> Self {
        Visit {
            req,
            url,
            env,
            ctx,
            classifier,
            started: 0.0,
        }
    }

    /// Starts the one forwarded request: same method, headers (less the
    /// session cookie) and body stream; a redirect goes back as it is.
    fn send(&mut self) -> std::result::Result<Promise, &'static str> {
        let Some((_, target)) = split_url(&self.url) else {
            return Err("bpm-edge: the request URL could not be read");
        };
        let (origin_url, counting) = SETTINGS.with(|cell| {
            let s = cell.get_or_init(|| Settings::read(&self.env));
            s.origin
                .as_ref()
                .map(|base| (base.as_ref().map(|b| [b, target].concat()), s.counting))
                .map_err(|msg| *msg)
        })?;
        if origin_url.is_none() {
            // Deployed on a route: if this worker ever throws, the runtime
            // sends the request straight to the origin instead of failing it.
            self.ctx.pass_through_on_exception();
        }
        if !counting {
            self.classifier = None;
        }
        let method = self.req.method();
        let init = web_sys::RequestInit::new();
        if method != "GET" {
            init.set_method(&method);
        }
        init.set_headers(&forwarded_headers(&self.req.headers()));
        if let Some(body) = self.req.body() {
            init.set_body(&body);
        }
        init.set_redirect(web_sys::RequestRedirect::Manual);
        self.started = js_sys::Date::now();
        global_fetch(origin_url.as_deref().unwrap_or(&self.url), &init)
            .map_err(|_| "bpm-edge: the request could not be forwarded")
    }

    /// Out of line, so that a request that counts nothing (counting off)
    /// does not compile it: a WebAssembly function is compiled when first
    /// called.
    #[inline(never)]
    fn record(
        &self,
        site: usize,
        classifier: &Classifier,
        response: &web_sys::Response,
    ) -> Option<CountWork> {
        let (host, target) = split_url(&self.url)?;
        let now = js_sys::Date::now();
        let headers = self.req.headers();
        let header = |name: &str| headers.get(name).ok().flatten();
        let method = self.req.method();
        let referer = header("referer");
        let user_agent = header("user-agent");
        let location = response.headers().get("location").ok().flatten();
        let mut request_facts = RequestFacts {
            method: &method,
            target: target.as_bytes(),
            host,
            referer: referer.as_deref().map(str::as_bytes),
            user_agent: user_agent.as_deref().map(str::as_bytes),
            cf: CfSignals::default(),
        };
        // The origin's answer (also when the visitor got a 502 for its status).
        let response_facts = ResponseFacts {
            status: response.status(),
            location: location.as_deref(),
            latency_ms: now - self.started,
        };
        let mut hits = Vec::new();
        classifier.classify(&request_facts, &response_facts, &mut hits);
        if hits.is_empty() {
            return None;
        }
        // Cloudflare's bot signals are read only for a request that hits a
        // metric, and can only change its hits when they say "automated".
        request_facts.cf = cf_signals(&self.req);
        if request_facts.cf.says_automated() {
            hits.clear();
            classifier.classify(&request_facts, &response_facts, &mut hits);
        }
        let at_secs = (now / 1000.0).floor() as i64;
        // `CF-Connecting-IP`: hashed for unique visitors, never stored.
        let visitor = header("cf-connecting-ip")
            .filter(|ip| !ip.trim().is_empty())
            .map(|ip| Visitor {
                ip,
                user_agent: user_agent.unwrap_or_default(),
            });
        let request = CountedRequest {
            at_secs,
            salt_day: salt_day(&classifier.config().time, at_secs),
            hits,
            visitor,
        };
        pending::record(&self.env, site, classifier, request)
    }
}

/// `request.cf.botManagement.{score, verifiedBot}` and
/// `request.cf.verifiedBotCategory`, where present (Bot Management or
/// verified-bot zones); anything missing or of another type is no signal.
fn cf_signals(req: &web_sys::Request) -> CfSignals {
    let get = |obj: &JsValue, key: &str| {
        if obj.is_object() {
            js_sys::Reflect::get(obj, &JsValue::from_str(key)).ok()
        } else {
            None
        }
    };
    let Some(cf) = get(req.as_ref(), "cf") else {
        return CfSignals::default();
    };
    let bm = get(&cf, "botManagement");
    let score = bm
        .as_ref()
        .and_then(|bm| get(bm, "score"))
        .and_then(|s| s.as_f64())
        .filter(|s| (1.0..=99.0).contains(s))
        .map(|s| s as u8);
    let verified = bm
        .as_ref()
        .and_then(|bm| get(bm, "verifiedBot"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
        || get(&cf, "verifiedBotCategory")
            .and_then(|c| c.as_string())
            .is_some_and(|c| !c.trim().is_empty());
    CfSignals {
        score,
        verified_bot: verified,
    }
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
