// The visitor worker's module entry: a plain `{ fetch, scheduled }` object.
// A visitor's request goes through the Rust `Visit` (`src/proxy.rs`) with
// plain promise callbacks: `startVisit` decides, `forward` starts the origin
// request, `answer` / `unreachable` say what the visitor gets and record
// the counts. A request `startVisit` declines (the reserved prefix) is
// handed as it is to the control worker through the `BPM_CONTROL` service
// binding. Copied next to worker-build's output (`build/visitor/index.js`)
// by scripts/build-worker.sh; `workers/visitor/wrangler.toml`'s `main`.
// When the module is evaluated (the isolate's start-up) it calls `warmUp`,
// which reads the compiled config, so that the first visitor's request
// does not pay for it.
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
// - The visitor worker has no cron. A scheduled event that reaches it
//   anyway (`wrangler dev` sends its scheduled-event endpoint to the first
//   configuration, this one) is passed to the control worker, whose cron it
//   is; that needs the `service_binding_extra_handlers` flag, which the dev
//   scripts set on the command line only.
// - Panic recovery is kept: after a trap the runtime marks
//   `__worker_init_state.criticalError`, and the next request constructs
//   worker-build's entry class once, whose construct hook resets the wasm
//   instance before any Rust code runs again.
import Entrypoint from './index.js';

const { startVisit, warmUp } = Entrypoint.prototype;

function recoverIfCrashed(env, ctx) {
  const state = globalThis.__worker_init_state;
  if (!state || !state.criticalError) return;
  try {
    Reflect.construct(Entrypoint, [ctx, env]);
  } catch (e) {
    console.error('bpm-edge: resetting the wasm instance failed', e);
  }
}

// A trap leaves the wasm instance unusable: mark it for a reset.
function noteTrap(e) {
  if (e instanceof WebAssembly.RuntimeError) {
    const state = globalThis.__worker_init_state;
    if (state) state.criticalError = true;
  }
}

function markIfCrashed(e) {
  noteTrap(e);
  throw e;
}

// At module evaluation, the isolate's start-up (not a request): read the
// config before the first visitor arrives. A failure here only leaves that
// work to the first request.
try {
  warmUp();
} catch (e) {
  noteTrap(e);
  console.error('bpm-edge: warming up the visitor worker failed', e);
}

export default {
  fetch(request, env, ctx) {
    recoverIfCrashed(env, ctx);
    try {
      const visit = startVisit(request, env, ctx);
      if (visit === undefined) return env.BPM_CONTROL.fetch(request);
      return visit.forward().then(
        (response) => visit.answer(response),
        () => visit.unreachable(),
      );
    } catch (e) {
      return markIfCrashed(e);
    }
  },
  scheduled(event, env) {
    if (typeof env.BPM_CONTROL?.scheduled !== 'function') {
      console.error('bpm-edge: the visitor worker has no cron; schedule the control worker');
      return undefined;
    }
    const forwarded = { scheduledTime: new Date(event.scheduledTime), cron: event.cron };
    return env.BPM_CONTROL.scheduled(forwarded).then((result) => {
      if (result.outcome !== 'ok') throw new Error(`bpm-edge: the control worker's cron ended with ${result.outcome}`);
    });
  },
};
