// failopen.test.mjs — end to end: whatever fails inside bpm-edge, visitors
// still get the origin's exact answer; without an origin they get a short
// plain-text 502. Each scenario starts (and stops) its own wrangler.
//
// BPM_FAULT is a test-only switch in the worker: `counter-binding` makes it
// look up a counter binding that does not exist, `storage` makes the Durable
// Object fail every write.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { startOrigin, freePort, runConcurrent } from './harness.mjs';
import { withWorker } from './fixture.mjs';

let origin;

before(async () => {
  origin = await startOrigin({ port: 0 });
});
after(async () => {
  await origin?.close();
});

const login = (password) => ({
  method: 'POST',
  body: `user=bob&password=${password}`,
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
});

// The visitor-visible answer: status, the headers that matter, body bytes.
async function answer(res) {
  return {
    status: res.status,
    location: res.headers.get('location'),
    contentType: res.headers.get('content-type'),
    body: Buffer.from(await res.arrayBuffer()).toString('base64'),
  };
}

async function assertSameAsOrigin(worker, path, init = {}) {
  const direct = await answer(await fetch(`${origin.url}${path}`, { redirect: 'manual', ...init }));
  const proxied = await answer(await worker.fetch(path, init));
  assert.deepEqual(proxied, direct, `${init.method ?? 'GET'} ${path} through bpm-edge equals the origin's answer`);
  return proxied;
}

async function assertFailsOpen(worker) {
  assert.equal((await assertSameAsOrigin(worker, '/')).status, 200);
  assert.equal((await assertSameAsOrigin(worker, '/pricing?utm_source=newsletter', { headers: { referer: 'https://www.google.com/' } })).status, 200);
  assert.equal((await assertSameAsOrigin(worker, '/no-such-page')).status, 404);

  const ok = await assertSameAsOrigin(worker, '/login', login('demo'));
  assert.deepEqual([ok.status, ok.location], [302, '/dashboard']);
  const okRes = await worker.fetch('/login', login('demo'));
  assert.match(okRes.headers.get('set-cookie') ?? '', /demo_session=1/);
  const wrong = await assertSameAsOrigin(worker, '/login', login('nope'));
  assert.deepEqual([wrong.status, wrong.location], [302, '/login?error=1']);
  assert.equal((await assertSameAsOrigin(worker, '/signup', login('x'))).status, 201);

  const body = randomBytes(64 * 1024);
  const res = await worker.fetch('/echo/fail-open', { method: 'POST', body, headers: { 'x-bpm-test': 'fail-open' } });
  assert.equal(res.status, 200);
  const echo = await res.json();
  assert.equal(echo.method, 'POST');
  assert.equal(echo.headers['x-bpm-test'], 'fail-open');
  assert.equal(echo.bodySha256, createHash('sha256').update(body).digest('hex'));

  // Many counted requests, across more than one flush interval.
  for (let round = 0; round < 2; round++) {
    const statuses = await runConcurrent(100, 10, async () => {
      const r = await worker.fetch('/login');
      await r.arrayBuffer();
      return r.status;
    });
    assert.deepEqual(statuses.filter((s) => s !== 200), [], `round ${round}: all GET /login answered 200`);
    await sleep(1_500);
  }
  assert.equal((await assertSameAsOrigin(worker, '/dashboard')).status, 200);
  assert.equal((await worker.api('/_bpm/api/health', { token: null })).status, 200, 'still healthy');
}

test('(f) fail-open when the counter binding is missing (BPM_FAULT=counter-binding)', async () => {
  await withWorker({ originUrl: origin.url, vars: { BPM_FAULT: 'counter-binding' }, label: 'fault-binding' }, assertFailsOpen);
});

test('(f) fail-open when every Durable Object write fails (BPM_FAULT=storage)', async () => {
  await withWorker({ originUrl: origin.url, vars: { BPM_FAULT: 'storage' }, label: 'fault-storage' }, assertFailsOpen);
});

test('(f) no origin listening → 502 with a short plain-text body; the API keeps working', async () => {
  const closedPort = await freePort(); // free a moment ago, nothing listens there
  await withWorker({ originUrl: `http://127.0.0.1:${closedPort}`, label: 'no-origin' }, async (worker) => {
    for (const [path, init] of [['/', {}], ['/login', login('demo')], ['/echo/x', { method: 'PUT', body: 'abc' }]]) {
      const res = await worker.fetch(path, init);
      const text = await res.text();
      assert.equal(res.status, 502, `${init.method ?? 'GET'} ${path}`);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
      assert.ok(text.length > 0 && text.length <= 512, `short body (${text.length} chars): ${text.slice(0, 80)}`);
      assert.equal(res.headers.get('location'), null);
    }
    assert.equal((await worker.api('/_bpm/api/health', { token: null })).status, 200);
    assert.equal((await worker.api('/_bpm/api/metrics')).status, 200);
  });
});
