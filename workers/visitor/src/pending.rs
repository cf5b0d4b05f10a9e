//! The isolate's side of `count::pending`: this isolate's [`FlushQueue`]
//! (writing to one counter shard, chosen at random when the isolate
//! starts) and [`SaltCache`], one of each per site it counted for, and
//! [`CountWork`], the handle through which `entry.mjs` runs one request's
//! pending count inside its `wait_until`.
//!
//! The entry asks [`CountWork::next`], performs the answer (a timer, or the
//! one Durable Object call the work describes: the day's salt, or a batch
//! for the shard) and reports the outcome with [`CountWork::answered`]. The
//! promises are the entry's own, so no Rust future and none of
//! wasm-bindgen's executor runs: a fresh isolate's first request compiles
//! every WebAssembly function it calls, and the executor, its closures and
//! the `worker` crate's wrappers were about 40% of that request's CPU on
//! workerd (scripts/bench-cpu.mjs).
//!
//! Only a request that must fetch the salt, or that opens (or fills) a
//! generation, gets a [`CountWork`]; the others record their hits
//! synchronously and get no `wait_until` at all.
//!
//! Invariants: no `RefCell` borrow is held across a call into JavaScript;
//! only a day number goes to the salt object and only a salt comes back
//! (IP addresses and user agents never leave the isolate).

use bpm_edge::count::classify::Classifier;
use bpm_edge::count::flush_queue::{FlushPolicy, FlushQueue, SEND_TIMEOUT_MS};
use bpm_edge::count::pending::{Action, CountedRequest, PendingCount};
use bpm_edge::count::tally::Flush;
use bpm_edge::count::visitors::{read_salt_answer, SaltAnswer, SaltCache};
use bpm_edge_shell::shards;
use std::cell::RefCell;
use worker::wasm_bindgen::prelude::*;
use worker::{js_sys, Env};

/// The var that overrides `[storage] flush_interval_ms` (tests, local runs).
const WINDOW_VAR: &str = "BPM_FLUSH_INTERVAL_MS";
/// The daily salt object's binding (its class is in the control worker).
const SALT_BINDING: &str = "BPM_SALT";

/// [`CountWork::next`]'s answers other than a sleep (a number of
/// milliseconds, `>= 0`); `entry.mjs` names the same values.
const DONE: f64 = -1.0;
const CALL: f64 = -2.0;

struct Isolate {
    queue: FlushQueue,
    salts: SaltCache,
    /// The shard this isolate writes to, e.g. `demo:2`.
    shard: String,
}

thread_local! {
    /// Per site of the deployment (by its index), once it counted here:
    /// each site has its own queue, shard and salts, so one site's volume
    /// or failing shard never holds back another's counts.
    static ISOLATE: RefCell<Vec<Option<Isolate>>> = const { RefCell::new(Vec::new()) };
}

fn now_ms() -> u64 {
    js_sys::Date::now().max(0.0) as u64
}

/// Records one counted request. The work its `wait_until` must run, if
/// any; most requests get `None` and cost nothing more.
/// `site` is the classifier's index in the deployment.
pub fn record(
    env: &Env,
    site: usize,
    classifier: &Classifier,
    request: CountedRequest,
) -> Option<CountWork> {
    let name = &classifier.config().site.name;
    let pending = ISOLATE.with(|cell| {
        let mut sites = cell.try_borrow_mut().ok()?;
        if sites.len() <= site {
            sites.resize_with(site + 1, || None);
        }
        let isolate = sites
            .get_mut(site)?
            .get_or_insert_with(|| new_isolate(env, classifier));
        PendingCount::start(request, name, &isolate.salts, &mut isolate.queue, now_ms())
    })?;
    Some(CountWork {
        pending,
        env: env.clone(),
        index: site,
        site: name.clone(),
        call: None,
    })
}

/// This isolate's queue and shard; once per isolate, so out of line (see
/// [`CountWork::batch_call`]).
#[inline(never)]
#[cold]
fn new_isolate(env: &Env, classifier: &Classifier) -> Isolate {
    let config = classifier.config();
    let storage = &config.storage;
    let shards = storage.shards.max(1);
    let shard = ((js_sys::Math::random() * f64::from(shards)) as u32).min(shards - 1);
    let mut policy = FlushPolicy::of(storage);
    if let Some(window_ms) =
        bpm_edge_shell::env_string(env, WINDOW_VAR).and_then(|v| v.trim().parse::<u64>().ok())
    {
        policy.window_ms = window_ms;
    }
    let names = config.metrics.iter().map(|m| m.name.clone()).collect();
    Isolate {
        queue: FlushQueue::new(policy, isolate_id(), names),
        salts: SaltCache::default(),
        shard: shards::shard_name(&config.site.name, shard),
    }
}

/// 16 random hex digits, making this isolate's batch ids unique.
fn isolate_id() -> String {
    let bits = bpm_edge_shell::random_u64();
    (0..16)
        .rev()
        .map(|i| char::from_digit(((bits >> (4 * i)) & 0xf) as u32, 16).unwrap_or('0'))
        .collect()
}

/// The one Durable Object call a [`CALL`] asks for.
struct Call {
    binding: &'static str,
    /// The object's name (`idFromName`).
    object: String,
    url: String,
    /// A POST with this body; `None`: a GET.
    body: Option<String>,
    purpose: Purpose,
}

/// What a call is for, to read its answer.
enum Purpose {
    Salt { day: i64 },
    Batch { id: String, requests: u64 },
}

/// One request's pending count, run by `entry.mjs` (see the module docs).
#[wasm_bindgen]
pub struct CountWork {
    pending: PendingCount,
    env: Env,
    /// The site's index in the deployment, and its name.
    index: usize,
    site: String,
    call: Option<Call>,
}

#[wasm_bindgen]
impl CountWork {
    /// What to do next, at the entry's `Date.now()`: sleep that many
    /// milliseconds (`>= 0`), make the call ([`CALL`]), or stop ([`DONE`]).
    pub fn next(&mut self, now_ms: f64) -> f64 {
        let now = now_ms.max(0.0) as u64;
        self.call = None;
        loop {
            let step = self.with_isolate(|pending, isolate| {
                let action = pending.next(now, &mut isolate.salts, &mut isolate.queue);
                (action, isolate.shard.clone())
            });
            let Some((action, shard)) = step else {
                return DONE;
            };
            match action {
                Action::Sleep(ms) => return ms as f64,
                Action::FetchSalt(day) => {
                    let mut url = String::from("https://daily-salt/salt?day=");
                    url.push_str(itoa::Buffer::new().format(day));
                    self.call = Some(Call {
                        binding: SALT_BINDING,
                        object: self.site.clone(),
                        url,
                        body: None,
                        purpose: Purpose::Salt { day },
                    });
                    return CALL;
                }
                Action::Send(flush) => match self.batch_call(flush, shard) {
                    Ok(call) => {
                        self.call = Some(call);
                        return CALL;
                    }
                    Err(id) => {
                        report_unsent(&id);
                        self.with_isolate(|pending, isolate| {
                            pending.sent(now, false, &mut isolate.queue);
                        });
                    }
                },
                Action::OutOfTime => {
                    report_out_of_time(&shard);
                    return DONE;
                }
                Action::Done => return DONE,
            }
        }
    }

    /// The binding of the call to make.
    #[wasm_bindgen(getter)]
    pub fn binding(&self) -> String {
        self.call.as_ref().map_or("", |c| c.binding).to_string()
    }

    /// The name of the object to call (`idFromName`).
    #[wasm_bindgen(getter)]
    pub fn object(&self) -> String {
        self.call
            .as_ref()
            .map(|c| c.object.clone())
            .unwrap_or_default()
    }

    #[wasm_bindgen(getter)]
    pub fn url(&self) -> String {
        self.call
            .as_ref()
            .map(|c| c.url.clone())
            .unwrap_or_default()
    }

    /// The body of a POST; `undefined` for a GET.
    #[wasm_bindgen(getter)]
    pub fn body(&self) -> Option<String> {
        self.call.as_ref().and_then(|c| c.body.clone())
    }

    /// How long the entry waits for the call's answer (status and body).
    #[wasm_bindgen(getter, js_name = timeoutMs)]
    pub fn timeout_ms(&self) -> f64 {
        SEND_TIMEOUT_MS as f64
    }

    /// The call's outcome at `now_ms`: the answer's `status` and `body`, or
    /// status `0` with why there was no answer.
    pub fn answered(&mut self, now_ms: f64, status: u16, body: String) {
        let now = now_ms.max(0.0) as u64;
        let Some(call) = self.call.take() else {
            return;
        };
        match call.purpose {
            Purpose::Salt { day } => {
                let salt = match read_salt_answer(day, status, &body, decode_salt_answer) {
                    Ok(salt) => Some(salt),
                    Err(e) => {
                        report_no_salt(day, &e.to_string());
                        None
                    }
                };
                self.with_isolate(|pending, isolate| {
                    pending.salt_answered(now, salt, &mut isolate.salts);
                });
            }
            Purpose::Batch { id, requests } => {
                self.batch_answered(now, status, body, &id, requests, &call.object);
            }
        }
    }
}

impl CountWork {
    /// The call that sends `flush` to `shard`, or the batch's id if it
    /// cannot be encoded. Out of line: the first send comes a window after
    /// the request that opened the generation, and a fresh isolate's first
    /// request compiles every WebAssembly function it calls.
    #[inline(never)]
    fn batch_call(&self, flush: Flush, shard: String) -> Result<Call, String> {
        let Ok(body) = serde_json::to_string(&flush) else {
            return Err(flush.id);
        };
        Ok(Call {
            binding: shards::binding(&self.env),
            object: shard,
            url: shards::url("/flush"),
            body: Some(body),
            purpose: Purpose::Batch {
                id: flush.id,
                requests: flush.requests,
            },
        })
    }

    /// The shard's answer to a batch. Out of line, like
    /// [`CountWork::batch_call`].
    #[inline(never)]
    fn batch_answered(
        &mut self,
        now: u64,
        status: u16,
        body: String,
        id: &str,
        requests: u64,
        shard: &str,
    ) {
        let acknowledged = (200..300).contains(&status);
        if !acknowledged {
            let why = if status == 0 {
                body
            } else {
                format!("shard answered {status}")
            };
            report_send_failed(id, requests, shard, &why);
        }
        self.with_isolate(|pending, isolate| {
            pending.sent(now, acknowledged, &mut isolate.queue);
        });
    }

    /// Runs `f` on this work and the isolate's state; `None` when there is
    /// none yet or it is borrowed already (which the single-threaded
    /// isolate never does).
    fn with_isolate<R>(
        &mut self,
        f: impl FnOnce(&mut PendingCount, &mut Isolate) -> R,
    ) -> Option<R> {
        ISOLATE.with(|cell| {
            let mut sites = cell.try_borrow_mut().ok()?;
            let isolate = sites.get_mut(self.index)?.as_mut()?;
            Some(f(&mut self.pending, isolate))
        })
    }
}

/// Decodes the salt object's answer with the runtime's `JSON.parse`: a
/// fresh isolate's first request fetches the salt, and this keeps serde's
/// decoder out of the WebAssembly that request compiles.
fn decode_salt_answer(body: &str) -> Result<SaltAnswer, String> {
    let value = js_sys::JSON::parse(body).map_err(|_| String::from("not JSON"))?;
    let field = |key: &str| js_sys::Reflect::get(&value, &JsValue::from_str(key)).ok();
    let day = field("day")
        .and_then(|d| d.as_f64())
        .filter(|d| d.fract() == 0.0 && d.abs() < 1e15)
        .ok_or_else(|| String::from("no integer `day`"))?;
    let salt = field("salt")
        .and_then(|s| s.as_string())
        .ok_or_else(|| String::from("no string `salt`"))?;
    Ok(SaltAnswer {
        day: day as i64,
        salt,
    })
}

#[inline(never)]
#[cold]
fn report_out_of_time(shard: &str) {
    worker::console_error!(
        "bpm-edge: a batch for {shard} is still not acknowledged; it stays in this isolate and is resent by the next request"
    );
}

#[inline(never)]
#[cold]
fn report_send_failed(id: &str, requests: u64, shard: &str, why: &str) {
    worker::console_error!(
        "bpm-edge: flush of batch {id} ({requests} requests) to {shard} failed, will retry: {why}"
    );
}

#[inline(never)]
#[cold]
fn report_unsent(id: &str) {
    worker::console_error!("bpm-edge: batch {id} could not be encoded, will retry");
}

#[inline(never)]
#[cold]
fn report_no_salt(day: i64, why: &str) {
    worker::console_error!("bpm-edge: no visitor salt for day {day}: {why}");
}
