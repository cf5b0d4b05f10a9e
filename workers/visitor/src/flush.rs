//! Runs this isolate's [`FlushQueue`] against its counter shard: records
//! each counted request, and runs the drivers the queue hands out inside
//! the `wait_until` of the request that got one.
//!
//! Only the first request of a generation (and one that fills it) waits
//! for anything: it sleeps until the window closes, then sends the batch
//! and retries on failure, all under its own timers. The other requests
//! record their hits synchronously and get no `wait_until` at all: no
//! timer, no polling, no promise. A driver
//! never waits on another request's promise (the runtime cancels a request
//! whose only pending work would be completed from another request's
//! context); when two generations overlap a slow send, the later driver
//! looks again with its own short timer.
//!
//! A request with a visitor (IP address and user agent) is hashed with its
//! day's salt before its hits are recorded; the hash goes into the tally's
//! visitor sketches, and the IP and user agent are dropped. Getting the
//! salt may wait for the salt object once per isolate and day; it happens
//! here, inside `wait_until`, never on the visitor's path.
//!
//! Invariant: no `RefCell` borrow is held across an `.await`.

use bpm_edge::count::classify::{Classifier, Hit};
use bpm_edge::count::flush_queue::{Driver, FlushPolicy, FlushQueue, Step, SEND_TIMEOUT_MS};
use bpm_edge::count::tally::Flush;
use bpm_edge::count::visitors::{salt_day, visitor_hash, Salt};
use bpm_edge_shell::{salt as daily_salt, shards};
use futures_util::future::{select, Either};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;
use worker::{js_sys, Delay, Env};

/// The var that overrides `[storage] flush_interval_ms` (tests, local runs).
const WINDOW_VAR: &str = "BPM_FLUSH_INTERVAL_MS";

struct Isolate {
    queue: FlushQueue,
    /// The shard this isolate writes to, e.g. `demo:2`.
    shard: String,
}

thread_local! {
    static ISOLATE: RefCell<Option<Isolate>> = const { RefCell::new(None) };
}

/// Who made a request, for unique visitors: held in memory only until it
/// is hashed.
pub struct Visitor {
    pub ip: String,
    pub user_agent: String,
}

fn now_ms() -> u64 {
    js_sys::Date::now().max(0.0) as u64
}

/// Records one request's hits. Returns the work this request must do
/// inside its `wait_until`, if any: run the driver it got, or first fetch
/// the day's visitor salt (once per isolate and day). Most requests get
/// `None` and cost nothing more.
pub fn record(
    env: &Env,
    classifier: &Rc<Classifier>,
    at_secs: i64,
    hits: Vec<Hit>,
    visitor: Option<Visitor>,
) -> Option<Pin<Box<dyn Future<Output = ()>>>> {
    let config = classifier.config();
    let visitor = visitor.filter(|_| hits.iter().any(|h| h.counted));
    let day = salt_day(&config.time, at_secs);
    let ready = match &visitor {
        None => Some(None),
        Some(v) => daily_salt::cached(day).map(|salt| Some(visitor_hash_of(&salt, config, v))),
    };
    if let Some(visitor_hash) = ready {
        let driver = record_hits(env, classifier, at_secs, &hits, visitor_hash)?;
        let env = env.clone();
        return Some(Box::pin(async move { drive(&env, driver).await }));
    }
    let env = env.clone();
    let classifier = Rc::clone(classifier);
    Some(Box::pin(async move {
        let config = classifier.config();
        let mut visitor_hash = None;
        if let Some(v) = &visitor {
            if let Some(salt) = daily_salt::salt_for(&env, config, day).await {
                visitor_hash = Some(visitor_hash_of(&salt, config, v));
            }
        }
        if let Some(driver) = record_hits(&env, &classifier, at_secs, &hits, visitor_hash) {
            drive(&env, driver).await;
        }
    }))
}

fn visitor_hash_of(salt: &Salt, config: &bpm_edge::config::Config, v: &Visitor) -> u64 {
    visitor_hash(salt, &config.site.name, &v.ip, &v.user_agent)
}

/// Adds the hits to this isolate's queue; the driver this request must run,
/// if it got one.
fn record_hits(
    env: &Env,
    classifier: &Classifier,
    at_secs: i64,
    hits: &[Hit],
    visitor_hash: Option<u64>,
) -> Option<Driver> {
    ISOLATE.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let isolate = slot.get_or_insert_with(|| new_isolate(env, classifier));
        isolate.queue.record(now_ms(), at_secs, hits, visitor_hash)
    })
}

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
        queue: FlushQueue::new(
            policy,
            format!("{:016x}", bpm_edge_shell::random_u64()),
            names,
        ),
        shard: shards::shard_name(&config.site.name, shard),
    }
}

/// Runs `driver` until the queue says it is done or out of time.
async fn drive(env: &Env, driver: Driver) {
    loop {
        let step = ISOLATE.with(|cell| {
            let mut slot = cell.try_borrow_mut().ok()?;
            let isolate = slot.as_mut()?;
            Some((isolate.queue.step(&driver, now_ms()), isolate.shard.clone()))
        });
        let Some((step, shard)) = step else {
            return;
        };
        match step {
            Step::Done => return,
            Step::OutOfTime => {
                report_out_of_time(&shard);
                return;
            }
            Step::Sleep(until) => {
                Delay::from(Duration::from_millis(until.saturating_sub(now_ms()))).await;
            }
            Step::Send(flush) => deliver(env, shard, flush).await,
        }
    }
}

#[inline(never)]
#[cold]
fn report_out_of_time(shard: &str) {
    worker::console_error!(
        "bpm-edge: a batch for {shard} is still not acknowledged; it stays in this isolate and is resent by the next request"
    );
}

/// Sends `flush` once and tells the queue how it went. Behind a pointer
/// the caller cannot see through: the first send comes a window after an
/// isolate's first request, and a WebAssembly function is compiled when
/// first called, so this keeps the send's code out of what that first
/// request compiles.
#[inline(never)]
fn deliver(env: &Env, shard: String, flush: Flush) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let result = send(env, &shard, &flush).await;
        let now = now_ms();
        ISOLATE.with(|cell| {
            if let Some(isolate) = cell
                .try_borrow_mut()
                .ok()
                .as_deref_mut()
                .and_then(Option::as_mut)
            {
                match &result {
                    Ok(()) => isolate.queue.acknowledged(&flush.id),
                    Err(_) => isolate.queue.failed(&flush.id, now),
                }
            }
        });
        if let Err(e) = result {
            worker::console_error!(
                "bpm-edge: flush of batch {} ({} requests) to {shard} failed, will retry: {e}",
                flush.id,
                flush.requests
            );
        }
    })
}

/// One attempt to deliver `flush`, bounded by [`SEND_TIMEOUT_MS`].
async fn send(env: &Env, shard: &str, flush: &Flush) -> Result<(), String> {
    let body = serde_json::to_string(flush).map_err(|e| e.to_string())?;
    let call = Box::pin(shards::call(env, shard, "/flush", Some(body)));
    let timeout = Box::pin(Delay::from(Duration::from_millis(SEND_TIMEOUT_MS)));
    match select(call, timeout).await {
        Either::Left((Ok(resp), _)) if (200..300).contains(&resp.status_code()) => Ok(()),
        Either::Left((Ok(resp), _)) => Err(format!("shard answered {}", resp.status_code())),
        Either::Left((Err(e), _)) => Err(e.to_string()),
        Either::Right(_) => Err(format!("no answer within {SEND_TIMEOUT_MS} ms")),
    }
}
