// The Worker's module entry: a plain `{ fetch, scheduled }` object.
// A visitor's request goes through the Rust `Visit` (`proxy.rs`) with plain
// promise callbacks: `startVisit` decides, `forward` starts the origin
// request, `answer` / `unreachable` say what the visitor gets and record
// the counts. Requests under the reserved prefix and the cron go to the Rust
// handlers (`#[event(fetch)]`, `#[event(scheduled)]` in `mod.rs`). The
// Durable Object classes are re-exported as worker-build wrapped them.
// Copied next to worker-build's output (`build/index.js`) by
// scripts/build-worker.sh; `wrangler.toml`'s `main`.
//
// Why it exists: worker-build 0.8's own default export is a
// `WorkerEntrypoint` class behind two layers of `Proxy` (one constructed per
// request, one per method access, plus an extra `async` wrapper), and an
// async Rust handler runs wasm-bindgen's future executor (a microtask and a
// pair of closures per awaited promise). scripts/bench-cpu.mjs measured
// these at about 30–100 µs of CPU per request on workerd each: more than
// everything else bpm-edge does. A module object and promise callbacks cost
// nothing per request.
//
// Invariants:
// - Every decision stays in Rust; this file only sequences the calls.
// - The Rust handlers are worker-build's own (`Entrypoint.prototype.fetch`
//   calls the wasm export with `this.env`, `this.ctx`), so the Rust side
//   sees exactly what it would under worker-build's entry.
// - Panic recovery is kept: after a trap the runtime marks
//   `__worker_init_state.criticalError`, and the next request constructs
//   worker-build's entry class once, whose construct hook resets the wasm
//   instance before any Rust code runs again. Durable Objects keep
//   worker-build's wrapper unchanged.
import Entrypoint from './index.js';

export { CounterShard, DailySalt, SiteAlerts } from './index.js';

const { fetch: rustFetch, scheduled: rustScheduled, startVisit } = Entrypoint.prototype;

function recoverIfCrashed(env, ctx) {
  const state = globalThis.__worker_init_state;
  if (!state || !state.criticalError) return;
  try {
    Reflect.construct(Entrypoint, [ctx, env]);
  } catch (e) {
    console.error('bpm-edge: resetting the wasm instance failed', e);
  }
}

function markIfCrashed(e) {
  if (e instanceof WebAssembly.RuntimeError) {
    const state = globalThis.__worker_init_state;
    if (state) state.criticalError = true;
  }
  throw e;
}

export default {
  fetch(request, env, ctx) {
    recoverIfCrashed(env, ctx);
    try {
      const visit = startVisit(request, env, ctx);
      if (visit === undefined) return rustFetch.call({ env, ctx }, request);
      return visit.forward().then(
        (response) => visit.answer(response),
        () => visit.unreachable(),
      );
    } catch (e) {
      return markIfCrashed(e);
    }
  },
  scheduled(event, env, ctx) {
    recoverIfCrashed(env, ctx);
    try {
      return rustScheduled.call({ env, ctx }, event);
    } catch (e) {
      return markIfCrashed(e);
    }
  },
};
