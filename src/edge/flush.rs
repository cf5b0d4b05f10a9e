//! Batches this isolate's counts and flushes them to its counter shard.
//!
//! Every counted request adds its hits to the isolate's open [`Tally`]
//! (one "generation") and then waits, inside its own `wait_until`, until the
//! flush that carries that generation has been acknowledged by the shard, so
//! the runtime keeps the isolate alive until the counts are durable. A flush
//! happens `flush_interval_ms` after the first request of a generation, or at
//! once when it reaches `flush_max_events` requests: storage sees one write
//! batch per interval, not one per request.
//!
//! Waiting requests poll shared state with their own timers instead of
//! being woken by the flushing request: the Workers runtime cancels a
//! request whose only pending work would be completed from another
//! request's context.
//!
//! A request with a visitor (IP address and user agent) is hashed with its
//! day's salt before its hits are recorded; the hash goes into the tally's
//! visitor sketches, and the IP and user agent are dropped. Getting the
//! salt may wait for the salt object once per isolate and day; it happens
//! here, inside `wait_until`, never on the visitor's path.
//!
//! Invariants: a batch id is unique per isolate and generation, and a retried
//! batch keeps its id, so the shard applies it at most once (sketches
//! included). No `RefCell` borrow is held across an `.await`.

use super::{daily_salt, shards};
use crate::classify::{Classifier, Hit};
use crate::tally::{Flush, Tally};
use crate::visitors::{salt_day, visitor_hash};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;
use worker::{js_sys, Delay, Env};

/// Attempts per batch before its counts are given up (and logged).
const ATTEMPTS: u32 = 4;
/// How often a waiting request checks whether its generation is durable.
const POLL_MS: u64 = 100;
/// A waiting request gives up after this long (under `wait_until`'s limit).
const MAX_WAIT_MS: u64 = 25_000;

struct Queue {
    tally: Tally,
    /// The generation now accumulating.
    open: u64,
    /// Generations taken for flushing and not yet acknowledged.
    in_flight: BTreeSet<u64>,
    timer_armed: bool,
    isolate: String,
    shard: u32,
}

impl Queue {
    fn is_durable(&self, generation: u64) -> bool {
        generation < self.open && !self.in_flight.contains(&generation)
    }
}

thread_local! {
    static QUEUE: RefCell<Option<Queue>> = const { RefCell::new(None) };
}

enum Next {
    FlushNow,
    FlushAfterInterval,
    Wait,
}

/// Who made a request, for unique visitors: held in memory only until it
/// is hashed.
pub struct Visitor {
    pub ip: String,
    pub user_agent: String,
}

/// Records one request's hits; the returned future completes when they are
/// durable (or given up). Hand it to `ctx.wait_until`.
pub async fn record(
    env: Env,
    classifier: Rc<Classifier>,
    at_secs: i64,
    hits: Vec<Hit>,
    visitor: Option<Visitor>,
) {
    let config = classifier.config();
    let settings = &config.storage;
    let mut hash = None;
    if let Some(visitor) = visitor.filter(|_| hits.iter().any(|h| !h.bot)) {
        let day = salt_day(&config.time, at_secs);
        if let Some(salt) = daily_salt::salt_for(&env, config, day).await {
            hash = Some(visitor_hash(
                &salt,
                &config.site.name,
                &visitor.ip,
                &visitor.user_agent,
            ));
        }
    }
    let step = QUEUE.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let queue = slot.get_or_insert_with(|| new_queue(&classifier));
        queue.tally.record(at_secs, &hits);
        if let Some(hash) = hash {
            queue.tally.record_visitor(at_secs, &hits, hash);
        }
        let next = if queue.tally.requests() >= u64::from(settings.flush_max_events) {
            Next::FlushNow
        } else if !queue.timer_armed {
            queue.timer_armed = true;
            Next::FlushAfterInterval
        } else {
            Next::Wait
        };
        Some((queue.open, next))
    });
    let Some((generation, next)) = step else {
        return;
    };
    match next {
        Next::FlushNow => flush(&env, &classifier).await,
        Next::FlushAfterInterval => {
            Delay::from(Duration::from_millis(u64::from(settings.flush_interval_ms))).await;
            flush(&env, &classifier).await;
        }
        Next::Wait => {}
    }
    let mut waited = 0;
    while waited < MAX_WAIT_MS && !is_durable(generation) {
        Delay::from(Duration::from_millis(POLL_MS)).await;
        waited += POLL_MS;
    }
}

fn is_durable(generation: u64) -> bool {
    QUEUE.with(|cell| {
        cell.try_borrow()
            .ok()
            .and_then(|q| q.as_ref().map(|q| q.is_durable(generation)))
            .unwrap_or(true)
    })
}

fn new_queue(classifier: &Classifier) -> Queue {
    let storage = &classifier.config().storage;
    let random = || (js_sys::Math::random() * 4_294_967_296.0) as u64;
    let shards = storage.shards.max(1);
    Queue {
        tally: Tally::new(storage.max_dimension_values as usize),
        open: 0,
        in_flight: BTreeSet::new(),
        timer_armed: false,
        isolate: format!("{:08x}{:08x}", random(), random()),
        shard: ((js_sys::Math::random() * f64::from(shards)) as u32).min(shards - 1),
    }
}

async fn flush(env: &Env, classifier: &Classifier) {
    let config = classifier.config();
    let names: Vec<String> = config.metrics.iter().map(|m| m.name.clone()).collect();
    let taken = QUEUE.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let queue = slot.as_mut()?;
        queue.timer_armed = false;
        let generation = queue.open;
        queue.open += 1;
        if queue.tally.is_empty() {
            return None;
        }
        queue.in_flight.insert(generation);
        let flush = queue
            .tally
            .drain_flush(format!("{}-{generation}", queue.isolate), &names);
        Some((generation, queue.shard, flush))
    });
    let Some((generation, shard, flush)) = taken else {
        return;
    };
    let name = shards::shard_name(&config.site.name, shard);
    if let Err(e) = send(env, &name, &flush).await {
        worker::console_error!(
            "bpm-edge: flush of batch {} ({} requests) to {name} failed, counts lost: {e}",
            flush.id,
            flush.requests
        );
    }
    QUEUE.with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut() {
            if let Some(queue) = slot.as_mut() {
                queue.in_flight.remove(&generation);
            }
        }
    });
}

async fn send(env: &Env, shard: &str, flush: &Flush) -> Result<(), String> {
    let body = serde_json::to_string(flush).map_err(|e| e.to_string())?;
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            Delay::from(Duration::from_millis(100 * 3u64.pow(attempt - 1))).await;
        }
        match shards::call(env, shard, "/flush", Some(body.clone())).await {
            Ok(resp) if (200..300).contains(&resp.status_code()) => return Ok(()),
            Ok(resp) => last = format!("shard answered {}", resp.status_code()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}
