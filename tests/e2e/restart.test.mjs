// restart.test.mjs — end to end: counts that became durable survive a
// wrangler restart on the same --persist-to directory, and counting goes on
// from there (nothing lost, nothing counted twice).

import fs from 'node:fs';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  startOrigin, startWorker, artifactDir, waitFor, runConcurrent, metricTotal, seriesPath, windowSince,
} from './harness.mjs';

let origin;
const workers = [];
const persistDir = artifactDir('persist-restart');

before(async () => {
  origin = await startOrigin({ port: 0 });
});
after(async () => {
  for (const w of workers) await w.stop();
  await origin?.close();
  if (process.env.BPM_E2E_KEEP_STATE !== '1') fs.rmSync(persistDir, { recursive: true, force: true });
});

async function send(worker, n, path, init = {}) {
  const statuses = await runConcurrent(n, 5, async () => {
    const res = await worker.fetch(path, init);
    await res.arrayBuffer();
    return res.status;
  });
  return statuses;
}

const signup = { method: 'POST', body: 'email=a%40example.org', headers: { 'content-type': 'application/x-www-form-urlencoded' } };

async function newsletterTotal(worker, since) {
  const r = await worker.api(seriesPath({ metric: 'marketing_views', by: 'utm_source', ...windowSince(since, 'hour') }));
  assert.equal(r.status, 200, r.text);
  return r.body.series.find((s) => s.value === 'newsletter')?.total ?? 0;
}

test('(b) counts survive a restart with the same --persist-to directory', async () => {
  const since = new Date();

  const first = await startWorker({ originUrl: origin.url, persistDir, label: 'restart-1' });
  workers.push(first);
  assert.deepEqual(new Set(await send(first, 30, '/signup', signup)), new Set([201]));
  assert.deepEqual(new Set(await send(first, 3, '/?utm_source=newsletter')), new Set([200]));
  await waitFor(async () => (await metricTotal(first, 'signups', since)).total >= 30 && (await newsletterTotal(first, since)) >= 3, {
    timeoutMs: 30_000,
    what: 'signups 30 and newsletter 3 durable',
  });
  await sleep(2_000);
  assert.equal((await metricTotal(first, 'signups', since)).total, 30);
  assert.equal(await newsletterTotal(first, since), 3);

  const exit = await first.stop();
  assert.ok(exit, 'first wrangler exited');

  const second = await startWorker({ originUrl: origin.url, persistDir, label: 'restart-2' });
  workers.push(second);
  assert.notEqual(second.port, first.port);
  assert.equal((await metricTotal(second, 'signups', since)).total, 30, 'signups after restart');
  assert.equal(await newsletterTotal(second, since), 3, 'utm_source=newsletter after restart');

  // Counting continues on top of the restored totals.
  assert.deepEqual(new Set(await send(second, 5, '/signup', signup)), new Set([201]));
  await waitFor(async () => (await metricTotal(second, 'signups', since)).total >= 35, { timeoutMs: 30_000, what: 'signups 35' });
  await sleep(2_000);
  assert.equal((await metricTotal(second, 'signups', since)).total, 35);
});
