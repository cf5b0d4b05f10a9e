// visitors.test.mjs — end to end: unique visitors without cookies. Requests
// from K distinct (CF-Connecting-IP, user agent) pairs count as K uniques
// (exactly, for small counts), bots are not visitors, the range total is a
// union of hours, and no raw IP or user agent reaches Durable Object storage.
// One wrangler for the whole file; tests run in order.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  waitFor,
  runConcurrent,
  metricTotal,
  addMs,
  iso,
  floorTo,
  artifactDir,
  STEP_MS,
  GOOGLEBOT_UA,
} from './harness.mjs';
import { withOriginAndWorker } from './fixture.mjs';

const K = 12; // distinct visitors
const REPEATS = 5; // requests per visitor
const BOTS = 8;
const COUNT_TIMEOUT_MS = 30_000;
const ip = (i) => `203.0.113.${10 + i}`;
const ua = (i) => `Mozilla/5.0 (bpm-visitor-test ${i}) Gecko/20100101 Firefox/133.0`;

let origin;
let worker;
let since;

// Keep the state directory: the last test reads it (the harness's stop()
// deletes a directory it made itself), so it is removed here, after stop.
withOriginAndWorker('visitors', () => ({ persistDir: artifactDir('persist-visitors') }), (started) => ({ origin, worker, since } = started));
after(() => {
  if (worker?.persistDir) fs.rmSync(worker.persistDir, { recursive: true, force: true });
});

function uniquesPath(metric, extra = '') {
  const from = iso(floorTo(since, 'hour'));
  const to = iso(addMs(floorTo(new Date(), 'hour'), STEP_MS.hour));
  return `/_bpm/api/uniques?metric=${metric}&from=${from}&to=${to}${extra}`;
}

test('K visitors making N requests are K uniques; bots are not visitors', async () => {
  const visits = Array.from({ length: K * REPEATS }, (_, n) => n % K);
  await runConcurrent(visits.length, 4, async (n) => {
    const i = visits[n];
    const res = await worker.fetch('/login', { headers: { 'cf-connecting-ip': ip(i), 'user-agent': ua(i) } });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });
  await runConcurrent(BOTS, 4, async (n) => {
    const res = await worker.fetch('/login', { headers: { 'cf-connecting-ip': `198.51.100.${n}`, 'user-agent': GOOGLEBOT_UA } });
    await res.arrayBuffer();
  });
  const expected = K * REPEATS;
  await waitFor(async () => (await metricTotal(worker, 'login_views', since)).total >= expected, {
    timeoutMs: COUNT_TIMEOUT_MS,
    what: `login_views >= ${expected}`,
  });
  // Counts and sketches travel in the same batch: once counted, sketched.
  const r = await worker.api(uniquesPath('login_views'));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.metric, 'login_views');
  assert.ok(r.body.error > 0.015 && r.body.error < 0.017, `error ${r.body.error}`);
  // Small counts are exact (the sketch is sparse at 2^25 registers); the
  // documented bound would allow ±3 × 1.6 %.
  assert.equal(r.body.uniques, K, r.text);
  const hours = r.body.points.map((p) => p.uniques);
  assert.ok(hours.length >= 1 && hours.length <= 2, r.text);
  // Each hour sees at most K; the range is a union, not a sum of hours.
  assert.ok(hours.every((h) => h <= K), r.text);
  assert.ok(hours.reduce((a, b) => a + b, 0) >= K, r.text);
  assert.match(r.body.points[0].t, /^\d{4}-\d{2}-\d{2}T\d{2}:00:00Z$/);

  // The total alone, merged by the shards, agrees.
  const total = await worker.api(uniquesPath('login_views', '&points=none'));
  assert.equal(total.status, 200, total.text);
  assert.equal(total.body.uniques, K);
  assert.deepEqual(total.body.points, []);

  // The same visitors on another metric are counted there too, once each.
  await runConcurrent(K, 4, async (i) => {
    const res = await worker.fetch('/dashboard', { headers: { 'cf-connecting-ip': ip(i), 'user-agent': ua(i) } });
    await res.arrayBuffer();
  });
  await waitFor(async () => (await worker.api(uniquesPath('dashboard_views'))).body?.uniques === K, {
    timeoutMs: COUNT_TIMEOUT_MS,
    what: `dashboard_views uniques = ${K}`,
  });
});

test('the IP address tells visitors apart: one user agent from 3 addresses is 3 visitors', async () => {
  await runConcurrent(9, 3, async (n) => {
    const res = await worker.fetch('/pricing', { headers: { 'cf-connecting-ip': `2001:db8::${n % 3}`, 'user-agent': ua(0) } });
    await res.arrayBuffer();
  });
  await waitFor(async () => (await worker.api(uniquesPath('marketing_views'))).body?.uniques >= 3, {
    timeoutMs: COUNT_TIMEOUT_MS,
    what: 'marketing_views uniques >= 3',
  });
  assert.equal((await worker.api(uniquesPath('marketing_views'))).body.uniques, 3);
});

test('uniques: bearer auth and parameter errors', async () => {
  assert.equal((await worker.api(uniquesPath('login_views'), { token: null })).status, 401);
  for (const [p, what] of [
    [uniquesPath('login_success'), 'a ratio metric'],
    [uniquesPath('nope'), 'an unknown metric'],
    ['/_bpm/api/uniques?metric=login_views&from=x&to=y', 'bad times'],
    [uniquesPath('login_views', '&points=minute'), 'bad points'],
    [`/_bpm/api/uniques?metric=login_views&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z`, 'over 31 days of points'],
  ]) {
    const r = await worker.api(p);
    assert.equal(r.status, 400, `${what}: ${r.text}`);
    assert.equal(typeof r.body?.error, 'string');
  }
});

test('no raw IP address or user agent is in Durable Object storage', async () => {
  // Flushed state is in the objects' SQLite files (and their WAL).
  const files = [];
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.sqlite(-wal|-shm)?$/.test(e.name)) files.push(p);
    }
  };
  walk(worker.persistDir);
  const doFiles = files.filter((f) => f.includes(`${path.sep}do${path.sep}`));
  assert.ok(doFiles.length >= 2, `counter and salt objects have storage: ${files.join(', ')}`);
  const needles = [];
  for (let i = 0; i < K; i++) needles.push(ip(i), ua(i));
  needles.push('203.0.113.', '2001:db8::', 'bpm-visitor-test', Buffer.from([203, 0, 113, 10]));
  for (const f of doFiles) {
    const bytes = fs.readFileSync(f);
    for (const n of needles) {
      assert.equal(bytes.indexOf(n), -1, `${path.relative(worker.persistDir, f)} contains ${n}`);
    }
  }
  // The sketches are there, though (the test is not vacuous).
  assert.ok(doFiles.some((f) => fs.readFileSync(f).includes('visitor_sketches')), 'a visitor_sketches table exists');
  assert.ok(doFiles.some((f) => fs.readFileSync(f).includes('salts')), 'a salts table exists');
});
