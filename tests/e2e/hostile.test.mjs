// hostile.test.mjs — end to end: hostile input (random UTM floods, huge
// paths, many query parameters, invalid bytes in headers) is forwarded to
// the origin, never breaks the worker, and cannot grow dimension storage
// beyond top-K + "other".
//
// Order matters: the UTM flood runs first on a fresh worker so the sum of
// all utm_source series must equal exactly the number of flood requests.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  waitFor,
  runConcurrent,
  metricTotal,
  seriesPath,
  iso,
  floorTo,
  addMs,
  STEP_MS,
  sumSeries,
  ROOT,
  SHIPPED_TOP_K,
  BROWSER_UA,
} from './harness.mjs';
import { withOriginAndWorker } from './fixture.mjs';

const FLOOD = 10_000;

// K from the shipped config (storage.max_dimension_values), per metric, dimension and hour.
function topK() {
  try {
    const m = fs.readFileSync(path.join(ROOT, 'bpm.toml'), 'utf8').match(/^\s*max_dimension_values\s*=\s*(\d+)/m);
    if (m) return Number(m[1]);
  } catch {
    /* fall through */
  }
  return SHIPPED_TOP_K;
}
const K = topK();

let origin;
let worker;
let since;

withOriginAndWorker('hostile', {}, (started) => ({ origin, worker, since } = started));

// [from, to) covering every hour touched since the file started.
function hourWindow() {
  const from = floorTo(since, 'hour');
  const to = addMs(floorTo(new Date(), 'hour'), STEP_MS.hour);
  return { from: iso(from), to: iso(to), step: 'hour', hours: Math.round((to - from) / STEP_MS.hour) };
}

async function by(dim) {
  const { hours, ...w } = hourWindow();
  const r = await worker.api(seriesPath({ metric: 'marketing_views', by: dim, ...w }));
  assert.equal(r.status, 200, r.text.slice(0, 300));
  // K values per hour bucket plus one "other": a window over h hours can hold at most h·K named values.
  assert.ok(r.body.series.length <= hours * K + 1, `by=${dim}: ${r.body.series.length} series > ${hours}·${K}+1`);
  return r.body;
}

// Sends raw bytes over a fresh connection and returns { status, head, body }.
function rawRequest(port, bytes) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    const sock = net.connect(port, '127.0.0.1', () => sock.end(bytes));
    sock.setTimeout(15_000, () => sock.destroy(new Error('raw request timed out')));
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', reject);
    sock.on('close', () => {
      const all = Buffer.concat(chunks);
      const sep = all.indexOf('\r\n\r\n');
      const head = all.subarray(0, sep === -1 ? all.length : sep).toString('latin1');
      const m = head.match(/^HTTP\/1\.[01] (\d{3})/);
      let body = sep === -1 ? Buffer.alloc(0) : all.subarray(sep + 4);
      if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) body = dechunk(body);
      resolve({ status: m ? Number(m[1]) : null, head, body });
    });
  });
}

// Decodes a chunked HTTP/1.1 body (ignores trailers).
function dechunk(buf) {
  const out = [];
  let i = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', i);
    if (eol === -1) break;
    const size = parseInt(buf.subarray(i, eol).toString('latin1'), 16);
    if (!(size > 0)) break;
    out.push(buf.subarray(eol + 2, eol + 2 + size));
    i = eol + 2 + size + 2;
  }
  return Buffer.concat(out);
}

test(`(g) ${FLOOD} distinct random utm_source values: all forwarded, top-${K} + "other", exact sum`, { timeout: 300_000 }, async () => {
  origin.reset();
  const statuses = await runConcurrent(FLOOD, 20, async (i) => {
    const value = `${randomBytes(6).toString('hex')}-${i}`;
    const res = await worker.fetch(`/?utm_source=${value}&utm_medium=cpc`);
    await res.arrayBuffer();
    return res.status;
  });
  assert.deepEqual(statuses.filter((s) => s !== 200), [], 'every flood request answered 200 by the origin');
  assert.equal(origin.stats().byPath['/'], FLOOD, 'the origin saw every flood request');

  const body = await waitFor(async () => {
    const b = await by('utm_source');
    return sumSeries(b) >= FLOOD && b;
  }, { timeoutMs: 90_000, intervalMs: 1_000, what: `sum of utm_source series reaches ${FLOOD}` }).catch(async (e) => {
    e.message += ` (sum now ${sumSeries(await by('utm_source'))}; wrangler reloads during the run: ${worker.reloads()})`;
    throw e;
  });
  await sleep(3_000);
  const settled = await by('utm_source');
  assert.equal(sumSeries(settled), FLOOD, 'sum of all utm_source series == requests sent');
  const other = settled.series.find((s) => s.value === 'other');
  assert.ok(other, `an "other" series exists: ${body.series.length} series`);
  assert.ok(other.total >= FLOOD - hourWindow().hours * K, `"other" holds the overflow (${other.total})`);
  assert.equal((await metricTotal(worker, 'marketing_views', since)).total, FLOOD);
  const medium = await by('utm_medium');
  assert.equal(medium.series.find((s) => s.value === 'cpc')?.total, FLOOD);
});

test('(g) an 8 KB path is forwarded unchanged', async () => {
  const long = 'a'.repeat(8 * 1024);
  const echoRes = await worker.fetch(`/echo/${long}`);
  assert.equal(echoRes.status, 200);
  assert.equal((await echoRes.json()).path, `/echo/${long}`);

  const blog = await worker.fetch(`/blog/${long}`);
  assert.equal(blog.status, 200);
  assert.match(await blog.text(), /<h1>Blog: a{80}<\/h1>/);
  assert.equal(origin.stats().byPath[`/blog/${long}`], 1);
});

test('(g) 1,000 query parameters are forwarded unchanged', async () => {
  const query = Array.from({ length: 1000 }, (_, i) => `p${i}=v${i}`).join('&');
  const echoRes = await worker.fetch(`/echo/params?${query}`);
  assert.equal(echoRes.status, 200);
  assert.equal((await echoRes.json()).path, `/echo/params?${query}`);
  const res = await worker.fetch(`/pricing?${query}&utm_source=many-params`);
  assert.equal(res.status, 200);
  assert.match(await res.text(), /<h1>Pricing<\/h1>/);
});

test('(g) invalid UTF-8 / binary bytes in Referer are forwarded and answered by the origin', async () => {
  const hostileReferers = [
    Buffer.from([0x68, 0x74, 0x74, 0x70, 0x73, 0x3a, 0x2f, 0x2f, 0xff, 0xfe, 0xc3, 0x28, 0x2e, 0x65, 0x78, 0x2f, 0x80, 0x81]),
    Buffer.concat([Buffer.from('https://www.google.com/'), Buffer.from([0xc0, 0xaf, 0xed, 0xa0, 0x80])]),
    Buffer.from([0xe2, 0x82, 0x28, 0xf0, 0x28, 0x8c, 0xbc, 0x09, 0x20, 0xfe]),
  ];
  for (const [i, ref] of hostileReferers.entries()) {
    for (const target of ['/', '/echo/referer']) {
      const before = origin.stats().total;
      const req = Buffer.concat([
        Buffer.from(`GET ${target}?case=${i} HTTP/1.1\r\nHost: 127.0.0.1:${worker.port}\r\nUser-Agent: ${BROWSER_UA}\r\nReferer: `),
        ref,
        Buffer.from('\r\nConnection: close\r\n\r\n'),
      ]);
      const res = await rawRequest(worker.port, req);
      assert.equal(res.status, 200, `case ${i} ${target}: ${res.head.split('\r\n')[0]}`);
      assert.equal(origin.stats().total, before + 1, `case ${i} ${target}: the origin answered`);
      if (target.startsWith('/echo')) {
        const echo = JSON.parse(res.body.toString('utf8'));
        // node:http decodes header bytes as latin1, so re-encoding gives the bytes on the wire.
        assert.deepEqual(Buffer.from(echo.headers.referer ?? '', 'latin1'), ref, `case ${i}: the Referer bytes reached the origin unchanged`);
      }
    }
  }
});

test('(g) other hostile referrers and UTM values are answered by the origin', async () => {
  const cases = [
    ['/?utm_source=%FF%FE%00%C3', {}],
    [`/?utm_source=${'x'.repeat(4000)}&utm_campaign=${'%E2%82'.repeat(200)}`, {}],
    ['/', { referer: 'not a url' }],
    ['/', { referer: 'https://' }],
    ['/', { referer: 'javascript:alert(1)' }],
    ['/', { referer: `https://${'sub.'.repeat(500)}example.org/` }],
    ['/', { referer: 'https://[::1]:99999/' }],
    ['/pricing', { referer: 'https://user:pass@evil.example.co.uk:8080/path?q=1#frag' }],
    ['/blog/%00%ff%2e%2e%2f..%2fetc%2fpasswd', {}],
    ['/?utm_source=a&utm_source=b&UTM_SOURCE=C', {}],
  ];
  for (const [p, headers] of cases) {
    const res = await worker.fetch(p, { headers });
    await res.arrayBuffer();
    assert.equal(res.status, 200, `${p.slice(0, 60)} ${JSON.stringify(headers).slice(0, 60)}`);
  }
});

test('(g) after all hostile input the worker is healthy and dimensions stay bounded', async () => {
  const health = await worker.api('/_bpm/api/health', { token: null });
  assert.equal(health.status, 200);
  await sleep(3_000); // let the last counts become durable
  const total = (await metricTotal(worker, 'marketing_views', since)).total;
  assert.ok(total > FLOOD, `marketing views after the hostile cases: ${total}`);
  for (const dim of ['source', 'landing', 'utm_source', 'utm_medium', 'utm_campaign', 'status']) {
    const b = await by(dim); // asserts the top-K bound
    for (const s of b.series) assert.equal(typeof s.value, 'string');
  }
  // Every marketing view has a source ("direct" without a referrer) and a landing page.
  assert.equal(sumSeries(await by('source')), total, 'by=source partitions all marketing views');
  assert.equal(sumSeries(await by('landing')), total, 'by=landing partitions all marketing views');
  // The landing dimension never stores an 8 KB value verbatim.
  const landing = await by('landing');
  assert.ok(landing.series.every((s) => s.value.length <= 2048), 'landing values are bounded in length');
});
