// exact.test.mjs — end to end: counts stay exact at edge prices and through
// faults. Sparse traffic with the shipped 20 s flush window (what deployed
// isolates see) costs at most one row written per request; 1,000 concurrent
// requests are all counted; a shard refusing writes for 10 s loses nothing
// (batches stay in the isolate and are resent under their ids); an origin
// answering 600 or 999 never turns into a 500 or loses the isolate's counts.
// Each scenario starts (and stops) its own wrangler.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { startOrigin, waitFor, runConcurrent, metricTotal, BROWSER_UA } from './harness.mjs';
import { withWorker as withWorkerOf } from './fixture.mjs';

let origin;

/** A worker in front of this file's origin (unless `opts` names another). */
const withWorker = (opts, fn) => withWorkerOf({ originUrl: origin.url, ...opts }, fn);

before(async () => {
  origin = await startOrigin({ port: 0 });
});
after(async () => {
  await origin?.close();
});

/** Waits until `metric` reaches `expected`, then checks it stays there. */
async function expectExactly(worker, metric, since, expected, timeoutMs = 60_000) {
  const total = async () => (await metricTotal(worker, metric, since)).total;
  await waitFor(async () => (await total()) >= expected, { timeoutMs, what: `${metric} >= ${expected}` }).catch(
    async (e) => {
      e.message += ` (API shows ${await total().catch(() => '?')})`;
      throw e;
    },
  );
  await sleep(2_000);
  assert.equal(await total(), expected, `${metric}: every request counted exactly once`);
}

const LOGIN_FORM = {
  method: 'POST',
  body: 'user=bob&password=demo',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
};

test('sparse traffic with the shipped 20 s window: exact, and at most one row written per request', async () => {
  // One request every 1.5 s for a minute, like a deployed isolate sees.
  await withWorker({ label: 'sparse', vars: { BPM_FLUSH_INTERVAL_MS: '' } }, async (worker) => {
    const since = new Date();
    const sent = { marketing_views: 0, login_views: 0, logins: 0 };
    for (let i = 0; i < 40; i++) {
      const kind = i % 4;
      if (kind === 0) {
        await worker.fetch('/', { headers: { referer: 'https://www.google.com/search?q=x' } });
        sent.marketing_views++;
      } else if (kind === 1) {
        await worker.fetch(`/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=c${i % 3}`);
        sent.marketing_views++;
      } else if (kind === 2) {
        await worker.fetch('/login');
        sent.login_views++;
      } else {
        const res = await worker.fetch('/login', LOGIN_FORM);
        assert.equal(res.status, 302);
        sent.logins++;
      }
      await sleep(1_500);
    }
    for (const [metric, n] of Object.entries(sent)) await expectExactly(worker, metric, since, n);
    const stats = await worker.api('/_bpm/api/stats');
    assert.equal(stats.status, 200, stats.text);
    const t = stats.body.totals;
    console.log(`sparse: ${JSON.stringify(t)}`);
    assert.equal(t.requests, 40, 'every request reached a shard once');
    assert.equal(t.pending_flushes, 0);
    assert.ok(t.rows_written_per_request <= 1, `rows written per request ${t.rows_written_per_request}`);
    assert.ok(t.do_requests_per_request <= 0.25, `DO requests per request ${t.do_requests_per_request}`);
  });
});

test('1,000 concurrent requests are counted exactly', async () => {
  await withWorker({ label: 'burst' }, async (worker) => {
    const since = new Date();
    const statuses = await runConcurrent(1_000, 50, async (i) => {
      const res = await worker.fetch(`/pricing?utm_source=s${i % 7}`, {
        headers: { referer: 'https://news.example.org/' },
      });
      await res.arrayBuffer();
      return res.status;
    });
    assert.ok(statuses.every((s) => s === 200));
    await expectExactly(worker, 'marketing_views', since, 1_000);
  });
});

test('a shard refusing writes for 10 s: every request of those 10 s is counted once', async () => {
  await withWorker({ label: 'outage', vars: { BPM_FAULT: 'storage-for-10s' } }, async (worker) => {
    const since = new Date();
    const started = Date.now();
    let sent = 0;
    // Requests through the outage and a little after it.
    while (Date.now() - started < 14_000) {
      const res = await worker.fetch('/login', { headers: { 'user-agent': BROWSER_UA } });
      assert.equal(res.status, 200, 'the visitor never notices');
      await res.arrayBuffer();
      sent++;
      await sleep(250);
    }
    assert.ok(sent >= 30, `${sent} requests`);
    await expectExactly(worker, 'login_views', since, sent, 90_000);
    const stats = await worker.api('/_bpm/api/stats');
    assert.equal(stats.body.totals.requests, sent);
  });
});

/** An origin that answers /status/NNN with that status (any 100–999). */
function oddOrigin() {
  const server = http.createServer((req, res) => {
    const m = /^\/status\/(\d{3})$/.exec(req.url ?? '');
    const body = m ? `status ${m[1]}\n` : '<html>login</html>\n';
    res.writeHead(m ? Number(m[1]) : 200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({ url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) });
    });
  });
}

test('regression: an origin answering 600 or 999 gets that status or a 502, never a 500, and no count is lost', async () => {
  const odd = await oddOrigin();
  try {
    await withWorker({ label: 'odd-status', originUrl: odd.url }, async (worker) => {
      const since = new Date();
      for (let i = 0; i < 20; i++) assert.equal((await worker.fetch('/login')).status, 200);
      for (const code of [600, 999]) {
        const res = await worker.fetch(`/status/${code}`);
        const body = await res.text();
        assert.ok(res.status === code || res.status === 502, `/status/${code} answered ${res.status}: ${body}`);
        if (res.status === 502) assert.match(body, /status/i, 'the 502 says why');
      }
      for (let i = 0; i < 20; i++) assert.equal((await worker.fetch('/login')).status, 200);
      await expectExactly(worker, 'login_views', since, 40);
    });
  } finally {
    await odd.close();
  }
});
