// hardening.test.mjs — end to end: findings of a hostile review, each
// fixed and kept fixed. Bodies are refused before they are read; tokens that
// cannot be used say why; the session cookie stays under bpm-edge's prefix
// and never reaches the origin; every answer under the prefix carries the
// dashboard's security headers.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startOrigin, startWorker, TEST_TOKEN } from './harness.mjs';

const DEMO_TOKEN = 'dev-token-change-me-0123456789';

let origin;
let worker;

before(async () => {
  origin = await startOrigin({ port: 0 });
  worker = await startWorker({ originUrl: origin.url, label: 'hardening' });
});
after(async () => {
  await worker?.stop();
  await origin?.close();
});

/**
 * POSTs `total` bytes in 64 KiB chunks, with a Content-Length or chunked,
 * and resolves with the status as soon as the answer arrives, and how many
 * bytes had been written by then.
 */
function bigPost(url, total, { declared }) {
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json' };
    if (declared) headers['content-length'] = String(total);
    const req = http.request(url, { method: 'POST', headers });
    let written = 0;
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      const sentBeforeAnswer = written;
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        resolve({ status: res.statusCode, written: sentBeforeAnswer, body });
        req.destroy();
      });
    });
    // The server may close the connection as soon as it has answered,
    // while the upload is still being written: it stopped reading early.
    req.on('error', (e) => {
      if (answered) return;
      if (e.code === 'EPIPE' || e.code === 'ECONNRESET') resolve({ status: 'closed early', written, body: '' });
      else reject(e);
    });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const pump = () => {
      while (!answered && written < total) {
        written += chunk.length;
        if (!req.write(chunk)) return req.once('drain', pump);
      }
      if (!answered) req.end();
    };
    pump();
  });
}

// The worker refuses a declared size at once and stops reading a chunked
// body past 4 KiB; `wrangler dev`'s local proxy may still take the upload
// in, so this checks the answer, not how much crossed the socket. Under
// load the proxy may also report the worker's early close of a streamed
// upload as its own `500 Network connection lost`: the same early close.
test('regression: a 60 MB login body is refused without being read (declared and chunked)', async () => {
  const url = `${worker.url}/_bpm/api/session`;
  for (const declared of [true, false]) {
    const big = await bigPost(url, (declared ? 60 : 8) * 1024 * 1024, { declared });
    const closedEarly =
      big.status === 'closed early' || (big.status === 500 && /Network connection lost/.test(big.body));
    assert.ok(big.status === 413 || closedEarly, `declared ${declared}: ${big.status} ${big.body}`);
    if (big.status === 413) assert.match(big.body, /at most 4 KiB/);
  }
  // Just over the limit, both ways: the answer and its reason.
  const over = 'x'.repeat(5 * 1024);
  const small = await fetch(url, { method: 'POST', body: over });
  assert.equal(small.status, 413);
  assert.match((await small.json()).error, /at most 4 KiB/);
  const stream = new ReadableStream({
    start(c) {
      c.enqueue(new TextEncoder().encode(over));
      c.close();
    },
  });
  const chunked = await fetch(url, { method: 'POST', body: stream, duplex: 'half' });
  assert.equal(chunked.status, 413);
  // A normal login still works afterwards.
  const ok = await fetch(url, { method: 'POST', body: JSON.stringify({ token: TEST_TOKEN }) });
  assert.equal(ok.status, 204);
});

test('regression: the session cookie is scoped to the prefix and never forwarded to the origin', async () => {
  const login = await fetch(`${worker.url}/_bpm/api/session`, {
    method: 'POST',
    body: JSON.stringify({ token: TEST_TOKEN }),
  });
  const setCookie = login.headers.get('set-cookie') ?? '';
  assert.match(setCookie, /; Path=\/_bpm;/);
  const session = setCookie.split(';')[0];
  const res = await worker.fetch('/echo/cookies', { headers: { cookie: `theme=dark; ${session}; lang=de` } });
  const echo = await res.json();
  assert.equal(echo.headers.cookie, 'theme=dark; lang=de', 'the origin sees the site\'s cookies only');
  const only = await (await worker.fetch('/echo/cookies', { headers: { cookie: session } })).json();
  assert.equal(only.headers.cookie, undefined);
});

test('regression: answers under the prefix carry the security headers', async () => {
  for (const path of ['/_bpm/', '/_bpm/api/health', '/_bpm/api/metrics', '/_bpm/no-such-file.js']) {
    const res = await fetch(`${worker.url}${path}`);
    await res.arrayBuffer();
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'self'/, `${path}: ${csp}`);
    assert.match(csp, /frame-ancestors 'none'/, path);
    assert.equal(res.headers.get('x-frame-options'), 'DENY', path);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', path);
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer', path);
  }
  // The site's own pages are the origin's business: untouched.
  const page = await worker.fetch('/');
  await page.arrayBuffer();
  assert.equal(page.headers.get('content-security-policy'), null);
});

test('regression: a short token says it is too short; the demo token works on loopback only', async () => {
  const short = await startWorker({ originUrl: origin.url, label: 'short-token', token: 'only-11char' });
  try {
    const r = await short.api('/_bpm/api/metrics', { token: 'only-11char' });
    assert.equal(r.status, 401);
    assert.match(r.body.error, /shorter than 16 characters/);
  } finally {
    await short.stop();
  }
  const demo = await startWorker({ originUrl: origin.url, label: 'demo-token', token: DEMO_TOKEN });
  try {
    const local = await demo.api('/_bpm/api/metrics', { token: DEMO_TOKEN });
    assert.equal(local.status, 200, local.text);
    // The same token to a public host name (the Host header names it).
    const remote = await new Promise((resolve, reject) => {
      const req = http.request(`${demo.url}/_bpm/api/metrics`, {
        headers: { host: 'www.example.com', authorization: `Bearer ${DEMO_TOKEN}` },
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode, body }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(remote.status, 401, remote.body);
    assert.match(remote.body, /public demo token/);
  } finally {
    await demo.stop();
  }
});
