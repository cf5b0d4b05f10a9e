//! Runtime glue both bpm-edge workers share: the sites this build serves
//! (the compiled [`Deployment`], each site's classifier built once per
//! isolate when it first reads the config), the clock, vars, and the client of the counter shards (whose
//! class lives in the control worker; the visitor reaches it by a
//! `script_name` binding).
//!
//! Invariant: nothing here decides anything a test could not check
//! natively: it reads the runtime and hands values to the core.

#![cfg(target_arch = "wasm32")]

pub mod shards;

use bpm_edge::config::sites::{index_for_host, Deployment};
use bpm_edge::count::classify::Classifier;
use std::cell::OnceCell;
use std::rc::Rc;
use worker::Env;

/// Reserved prefix used if the compiled config could not be read.
const FALLBACK_PREFIX: &str = "/_bpm";

thread_local! {
    static SERVED: OnceCell<Option<Rc<Served>>> = const { OnceCell::new() };
}

/// The sites of this build, each with its classifier (built once per
/// isolate, from the config it owns: the configs are moved, never copied,
/// so the visitor carries no code to clone them).
pub struct Served {
    /// One per site, in the deployment's order.
    classifiers: Vec<Rc<Classifier>>,
    /// [`Deployment::by_host`].
    by_host: bool,
    /// The [`Deployment`] again, for the API (copied once, when first
    /// asked for).
    deployment: OnceCell<Deployment>,
}

impl Served {
    fn new(deployment: Deployment) -> Self {
        Served {
            by_host: deployment.by_host,
            classifiers: deployment
                .sites
                .into_iter()
                .map(|c| Rc::new(Classifier::new(c)))
                .collect(),
            deployment: OnceCell::new(),
        }
    }

    /// The sites as the config declares them (the API's site choice).
    pub fn deployment(&self) -> &Deployment {
        self.deployment.get_or_init(|| Deployment {
            sites: self
                .classifiers
                .iter()
                .map(|c| c.config().clone())
                .collect(),
            by_host: self.by_host,
        })
    }

    /// The site a visitor request for `host` is counted in, and its index:
    /// `None` for a host of no site (forwarded, not counted).
    pub fn for_host(&self, host: &str) -> Option<(usize, Rc<Classifier>)> {
        let configs = self.classifiers.iter().map(|c| c.config());
        let index = index_for_host(configs, self.by_host, host)?;
        Some((index, self.classifiers.get(index)?.clone()))
    }

    /// The site named `name`; with one site, that site whatever the name
    /// (an object of a one-site deployment made before names were passed
    /// on keeps working).
    pub fn named(&self, name: Option<&str>) -> Option<Rc<Classifier>> {
        if !self.by_host {
            return self.classifiers.first().cloned();
        }
        let name = name?;
        self.classifiers
            .iter()
            .find(|c| c.config().site.name == name)
            .cloned()
    }

    /// The reserved prefix (every site's).
    pub fn prefix(&self) -> &str {
        self.classifiers
            .first()
            .map_or(FALLBACK_PREFIX, |c| c.config().site.prefix.as_str())
    }
}

/// The sites of this isolate. `None` only if the compiled config is
/// unreadable, which disables counting but never forwarding.
pub fn served() -> Option<Rc<Served>> {
    SERVED.with(|cell| cell.get_or_init(read_served).clone())
}

/// Reads the compiled config. Kept out of line: a fresh isolate compiles
/// a WebAssembly function when it is first called, and the callers of
/// [`served`] run on every request while this runs once.
#[inline(never)]
#[cold]
fn read_served() -> Option<Rc<Served>> {
    match Deployment::from_json(bpm_edge::CONFIG_JSON) {
        Ok(d) if !d.sites.is_empty() => Some(Rc::new(Served::new(d))),
        Ok(_) => {
            worker::console_error!("bpm-edge: compiled config has no site, counting disabled");
            None
        }
        Err(e) => {
            worker::console_error!("bpm-edge: compiled config unreadable, counting disabled: {e}");
            None
        }
    }
}

/// The reserved prefix of the compiled config (every site's).
pub fn prefix(served: Option<&Rc<Served>>) -> &str {
    served.map_or(FALLBACK_PREFIX, |s| s.prefix())
}

/// The classifier of the site a Durable Object serves: the site its name
/// (`idFromName`) names, `{site}` or `{site}:{shard}`.
pub fn site_of_object(state: &worker::State) -> Option<Rc<Classifier>> {
    let name = state.id().name();
    let site = name
        .as_deref()
        .map(|n| n.rsplit_once(':').map_or(n, |(site, _)| site));
    served()?.named(site)
}

/// 64 random bits, for ids (`Math.random`, two 32-bit halves).
pub fn random_u64() -> u64 {
    let half = || (worker::js_sys::Math::random() * 4_294_967_296.0) as u64;
    half() << 32 | half()
}

/// The current time in Unix seconds.
pub fn now_secs() -> i64 {
    (worker::js_sys::Date::now() / 1000.0).floor() as i64
}

/// A string var or secret, `None` when unset or empty. Both are plain
/// string properties of the module worker's `env`; a JSON var (an object)
/// or a binding is not a string.
pub fn env_string(env: &Env, name: &str) -> Option<String> {
    let env: &worker::wasm_bindgen::JsValue = env.as_ref();
    worker::js_sys::Reflect::get(env, &name.into())
        .ok()?
        .as_string()
        .filter(|s| !s.trim().is_empty())
}
