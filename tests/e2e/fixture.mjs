// fixture.mjs — the hooks most e2e files share: a demo origin and a worker
// in front of it, started before the file's tests and stopped after them.
//
// Invariant: whatever `before` started, `after` stops (the worker first, so
// it never forwards to a closed origin), also when `before` failed halfway.

import { before, after } from 'node:test';
import { startOrigin, startWorker } from './harness.mjs';

/** Starts a worker with `opts`, runs `fn(worker)`, and stops it whatever happens. */
export async function withWorker(opts, fn) {
  const worker = await startWorker(opts);
  try {
    await fn(worker);
  } finally {
    await worker.stop();
  }
}

/**
 * Registers the hooks for a worker labelled `label`. `options` (an object,
 * or a function returning one when `before` runs) go to startWorker.
 * `ready({ origin, worker, since })` is called once both run, `since` being
 * when `before` began (the start of the counting window of the file).
 */
export function withOriginAndWorker(label, options, ready) {
  let origin;
  let worker;
  before(async () => {
    const since = new Date();
    origin = await startOrigin({ port: 0 });
    const extra = typeof options === 'function' ? options() : options;
    worker = await startWorker({ originUrl: origin.url, label, ...extra });
    ready({ origin, worker, since });
  });
  after(async () => {
    await worker?.stop();
    await origin?.close();
  });
}
