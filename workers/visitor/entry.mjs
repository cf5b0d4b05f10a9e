// The visitor worker's module entry: a plain `{ fetch, scheduled }` object.
// A visitor's request goes through the Rust `Visit` (`src/proxy.rs`) with
// plain promise callbacks: `startVisit` decides, `forward` starts the origin
// request, `count` records the counts, `answer` / `unreachable` say what
// the visitor gets. The counting work a request leaves for its `waitUntil`
// (the Rust `CountWork`, `src/pending.rs`: fetch the day's salt, send a
// batch, with retries) is run by `runCount`: Rust says what to do next, this
// file does it (a timer, one Durable Object call) and reports back. A
// request `startVisit` declines (the reserved prefix) is handed as it is to
// the control worker through the `BPM_CONTROL` service binding. Copied next to worker-build's output (`build/visitor/index.js`)
// by scripts/build-worker.sh; `workers/visitor/wrangler.toml`'s `main`.
// When the module is evaluated (the isolate's start-up) it calls `warmUp`
// with the worker's `env` (importable at the top level), which reads the
// compiled config and the vars, so that the first visitor's request does
// not pay for them.
//
// Why it exists: worker-build 0.8's own default export is a
// `WorkerEntrypoint` class behind two layers of `Proxy` (one constructed per
// request, one per method access, plus an extra `async` wrapper), and an
// async Rust handler runs wasm-bindgen's future executor (a microtask and a
// pair of closures per awaited promise). scripts/bench-cpu.mjs measured
// these at about 30–100 µs of CPU per request on workerd each: more than
// everything else bpm-edge does. A module object and promise callbacks cost
// nothing per request, and running the counting work's promises here keeps
// the executor out of a fresh isolate's first request, which compiles
// every WebAssembly function it calls.
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
import { env as startupEnv } from 'cloudflare:workers';
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
// config and the vars before the first visitor arrives. A failure here only
// leaves that work to the first request.
try {
  if (startupEnv !== undefined) warmUp(startupEnv);
} catch (e) {
  noteTrap(e);
  console.error('bpm-edge: warming up the visitor worker failed', e);
}

// The counting work of `visit` for the origin's `response`, if any. A
// failure to count never fails the visitor's request.
function countOf(visit, response) {
  try {
    return visit.count(response);
  } catch (e) {
    noteTrap(e);
    console.error('bpm-edge: counting a request failed', e);
    return undefined;
  }
}

// `CountWork.next`'s answers besides a sleep of that many ms (src/pending.rs).
const DONE = -1;
const CALL = -2;

// Runs a request's counting work to its end, inside the request's waitUntil.
async function runCount(work, env) {
  try {
    for (;;) {
      const next = work.next(Date.now());
      if (next === DONE) return;
      if (next === CALL) {
        const [status, body] = await callObject(env, work);
        work.answered(Date.now(), status, body);
      } else {
        await new Promise((resolve) => setTimeout(resolve, next));
      }
    }
  } catch (e) {
    noteTrap(e);
    console.error('bpm-edge: counting work failed', e);
  } finally {
    work.free();
  }
}

// The one Durable Object call `work` describes: [status, body], or
// [0, why] when it threw or did not answer within `work.timeoutMs`.
async function callObject(env, work) {
  let timer;
  try {
    const binding = work.binding;
    const namespace = env[binding];
    if (namespace === undefined) return [0, `the binding ${binding} does not exist`];
    const stub = namespace.get(namespace.idFromName(work.object));
    const body = work.body;
    const init = body === undefined ? undefined : { method: 'POST', body };
    const answer = stub.fetch(work.url, init).then(async (r) => [r.status, await r.text()]);
    const ms = work.timeoutMs;
    const late = new Promise((resolve) => {
      timer = setTimeout(() => resolve([0, `no answer within ${ms} ms`]), ms);
    });
    return await Promise.race([answer, late]);
  } catch (e) {
    return [0, String(e?.message ?? e)];
  } finally {
    clearTimeout(timer);
  }
}

export default {
  fetch(request, env, ctx) {
    recoverIfCrashed(env, ctx);
    try {
      const visit = startVisit(request, env, ctx);
      if (visit === undefined) return env.BPM_CONTROL.fetch(request);
      return visit.forward().then(
        (response) => {
          const work = countOf(visit, response);
          const reply = visit.answer(response);
          if (work !== undefined) ctx.waitUntil(runCount(work, env));
          return reply;
        },
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
