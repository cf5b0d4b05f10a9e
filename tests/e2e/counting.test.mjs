// counting.test.mjs — end to end: requests through bpm-edge are forwarded
// unchanged and counted exactly (login views, logins, referral dimensions,
// bots, the login-success ratio). One wrangler for the whole file.
//
// Invariant relied on: this file's worker starts with an empty --persist-to
// directory, and each test compares against totals it read itself (deltas),
// so test order only matters where a comment says so.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  waitFor,
  runConcurrent,
  metricTotal,
  seriesPath,
  windowSince,
  sumCount,
  sumSeries,
  BROWSER_UA,
  GOOGLEBOT_UA,
} from './harness.mjs';
import { withOriginAndWorker } from './fixture.mjs';

// Counts are durable within ~1–3 s; after a count is reached we wait this
// long and check it did not move past the expected value.
const SETTLE_MS = 3_000;
const COUNT_TIMEOUT_MS = 30_000;

let origin;
let worker;
let since;

withOriginAndWorker('counting', {}, (started) => ({ origin, worker, since } = started));

const total = async (metric) => (await metricTotal(worker, metric, since)).total;

async function expectTotal(metric, expected) {
  await waitFor(async () => (await total(metric)) >= expected, {
    timeoutMs: COUNT_TIMEOUT_MS,
    what: `${metric} >= ${expected}`,
  }).catch(async (e) => {
    e.message += ` (API shows ${await total(metric).catch(() => '?')}; wrangler reloads during the run: ${worker.reloads()})`;
    throw e;
  });
  await sleep(SETTLE_MS);
  assert.equal(await total(metric), expected, `${metric} total after settling`);
}

async function bySeries(metric, by, step = 'hour') {
  const r = await worker.api(seriesPath({ metric, by, ...windowSince(since, step) }));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.by, by);
  assert.ok(Array.isArray(r.body.series), 'series is an array');
  return r.body;
}
const seriesValue = (body, value) => body.series.find((s) => s.value === value);

test('proxy transparency: /echo receives method, raw path, custom header and body bytes unchanged', async () => {
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
    const body = randomBytes(100_000);
    const sha = createHash('sha256').update(body).digest('hex');
    const path = `/echo/items/a%20b?x=1&y=%C3%A9&method=${method}`;
    const res = await worker.fetch(path, {
      method,
      body,
      headers: { 'content-type': 'application/octet-stream', 'x-bpm-test': `hello ${method}` },
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /application\/json/);
    const echo = await res.json();
    assert.equal(echo.method, method);
    assert.equal(echo.path, path);
    assert.equal(echo.headers['x-bpm-test'], `hello ${method}`);
    assert.equal(echo.headers['user-agent'], BROWSER_UA);
    assert.equal(echo.bodyLength, body.length);
    assert.equal(echo.bodySha256, sha);
  }
  const res = await worker.fetch('/echo/get?q=%2F%3F&empty=', { headers: { 'x-bpm-test': 'get' } });
  const echo = await res.json();
  assert.deepEqual([echo.method, echo.path, echo.headers['x-bpm-test'], echo.bodyLength], ['GET', '/echo/get?q=%2F%3F&empty=', 'get', 0]);
});

test('assets: GET /_bpm/ is the dashboard (with its vendored chart library), GET / is the origin page', async () => {
  const before = origin.stats().total;
  const homeBefore = origin.stats().byPath['/'] ?? 0;
  const dash = await worker.fetch('/_bpm/');
  assert.equal(dash.status, 200);
  assert.match(dash.headers.get('content-type') ?? '', /text\/html/);
  const dashHtml = await dash.text();
  assert.match(dashHtml, /<html/i);
  assert.doesNotMatch(dashHtml, /bpm-edge-demo-origin/, '/_bpm/ must not come from the origin');
  assert.match(dashHtml, /Mission Control/);
  const uplot = await worker.fetch('/_bpm/vendor/uPlot.iife.min.js');
  assert.equal(uplot.status, 200, 'the chart library is served from the worker, not a CDN');
  assert.match(await uplot.text(), /uPlot/);
  assert.equal(origin.stats().total, before, 'the origin never sees /_bpm/ requests');

  const direct = await (await fetch(`${origin.url}/`)).text();
  const home = await worker.fetch('/');
  assert.equal(home.status, 200);
  assert.equal(await home.text(), direct, 'GET / through bpm-edge is byte-for-byte the origin page');
  assert.equal(origin.stats().byPath['/'], homeBefore + 2, 'the origin saw the direct and the proxied GET /');
});

test('(a) 1,000 GET /login from 20 concurrent clients count exactly 1000 login_views', async () => {
  const before = await total('login_views');
  origin.reset();
  const statuses = await runConcurrent(1000, 20, async () => {
    const res = await worker.fetch('/login');
    await res.arrayBuffer();
    return res.status;
  });
  assert.deepEqual(statuses.filter((s) => s !== 200), [], 'every visitor got the login page');
  assert.equal(origin.stats().byPath['/login'], 1000, 'the origin saw 1000 GET /login');
  await expectTotal('login_views', before + 1000);

  // The status dimension partitions the same requests.
  const byStatus = await bySeries('login_views', 'status');
  assert.equal(sumSeries(byStatus), before + 1000);
});

// Order: runs after (a), which provides the login_views denominator.
test('login_success ratio = dashboard_views / login_views × 100 per point (null below 20 views)', async () => {
  const dashBefore = await total('dashboard_views');
  await runConcurrent(25, 5, async () => {
    const res = await worker.fetch('/dashboard');
    await res.arrayBuffer();
    assert.equal(res.status, 200);
  });
  await expectTotal('dashboard_views', dashBefore + 25);

  const r = await worker.api(seriesPath({ metric: 'login_success', ...windowSince(since, 'hour') }));
  assert.equal(r.status, 200, r.text);
  const points = r.body.points;
  assert.ok(points.length >= 1);
  assert.equal(points.reduce((a, p) => a + p.numerator, 0), await total('dashboard_views'));
  assert.equal(points.reduce((a, p) => a + p.denominator, 0), await total('login_views'));
  for (const p of points) {
    if (p.denominator >= 20) {
      // The API may round the ratio (4 decimals seen); 1e-3 tolerates that, not a wrong ratio.
      assert.ok(Math.abs(p.value - (p.numerator / p.denominator) * 100) < 1e-3, `ratio at ${p.t}: ${JSON.stringify(p)}`);
    } else {
      assert.equal(p.value, null, `too few login views at ${p.t}: ${JSON.stringify(p)}`);
    }
  }
});

test('(c) POST /login counts `logins` only when the origin answers 302 to /dashboard', async () => {
  const form = (password) => ({
    method: 'POST',
    body: `user=alice&password=${password}`,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  const before = await total('logins');

  const ok = await worker.fetch('/login', form('demo'));
  assert.equal(ok.status, 302);
  assert.equal(ok.headers.get('location'), '/dashboard');
  assert.match(ok.headers.get('set-cookie') ?? '', /demo_session=1/);
  await expectTotal('logins', before + 1);

  // Wrong password: the origin sends the visitor back to the form.
  const wrong = await worker.fetch('/login', form('nope'));
  assert.equal(wrong.status, 302);
  assert.equal(wrong.headers.get('location'), '/login?error=1');

  // Origin answers 200 (e.g. a form re-rendered with an error).
  origin.setMode({ path: '/login', method: 'POST', status: 200, location: null, body: 'try again\n' });
  const r200 = await worker.fetch('/login', form('demo'));
  assert.equal(r200.status, 200);
  assert.equal(r200.headers.get('location'), null);
  assert.equal(await r200.text(), 'try again\n');

  // Origin redirects somewhere else.
  origin.setMode({ path: '/login', method: 'POST', status: 302, location: '/elsewhere' });
  const other = await worker.fetch('/login', form('demo'));
  assert.equal(other.status, 302);
  assert.equal(other.headers.get('location'), '/elsewhere');
  origin.setMode({});

  // A final counted login proves the three non-logins above were processed
  // (they were answered first) and not counted.
  const last = await worker.fetch('/login', form('demo'));
  assert.equal(last.status, 302);
  await expectTotal('logins', before + 2);
});

test('(d) a referral visit is attributed to utm_source, utm_medium, utm_campaign, source and landing', async () => {
  const res = await worker.fetch('/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=spring', {
    headers: { referer: 'https://www.google.com/search?q=x' },
  });
  assert.equal(res.status, 200);
  assert.match(await res.text(), /<h1>Pricing<\/h1>/);

  const utmSource = await waitFor(async () => {
    const b = await bySeries('marketing_views', 'utm_source');
    return seriesValue(b, 'newsletter') && b;
  }, { timeoutMs: COUNT_TIMEOUT_MS, what: 'utm_source=newsletter series' });
  assert.equal(seriesValue(utmSource, 'newsletter').total, 1);
  const expectations = { source: 'google', utm_medium: 'email', utm_campaign: 'spring', landing: '/pricing' };
  for (const [by, value] of Object.entries(expectations)) {
    const b = await bySeries('marketing_views', by);
    const s = seriesValue(b, value);
    assert.ok(s, `by=${by} has a series "${value}": ${JSON.stringify(b.series.map((x) => x.value))}`);
    assert.equal(s.total, 1, `by=${by} value ${value}`);
    assert.equal(s.points.reduce((a, p) => a + p.count, 0), s.total, `by=${by}: points sum to total`);
  }
  // Series are sorted by total, descending.
  const bySource = await bySeries('marketing_views', 'source');
  const totals = bySource.series.map((s) => s.total);
  assert.deepEqual(totals, [...totals].sort((a, b) => b - a));
});

test('UTM values are lower-cased and trimmed; bing and webmail referrers are named', async () => {
  const before = seriesValue(await bySeries('marketing_views', 'utm_source'), 'newsletter')?.total ?? 0;
  const res = await worker.fetch('/blog/launch?utm_source=%20NewsLetter%20&utm_medium=EMAIL', {
    headers: { referer: 'https://www.bing.com/search?q=demo' },
  });
  assert.equal(res.status, 200);
  const res2 = await worker.fetch('/', { headers: { referer: 'https://mail.google.com/mail/u/0/' } });
  assert.equal(res2.status, 200);

  await waitFor(async () => (seriesValue(await bySeries('marketing_views', 'utm_source'), 'newsletter')?.total ?? 0) >= before + 1, {
    timeoutMs: COUNT_TIMEOUT_MS,
    what: 'normalised newsletter counted',
  });
  const src = await waitFor(async () => {
    const b = await bySeries('marketing_views', 'source');
    return seriesValue(b, 'email') && b;
  }, { timeoutMs: COUNT_TIMEOUT_MS, what: 'source=email series' });
  assert.equal(seriesValue(src, 'bing')?.total, 1);
  assert.equal(seriesValue(src, 'email')?.total, 1);
  const sources = await bySeries('marketing_views', 'utm_source');
  assert.equal(seriesValue(sources, 'newsletter').total, before + 1);
  assert.equal(sources.series.some((s) => /[A-Z]|^\s|\s$/.test(s.value)), false, 'no raw-cased or padded UTM value');
});

test('(e) a Googlebot view of / is counted in `bots`, not in marketing_views', async () => {
  // Wait until everything sent earlier is durable so the baseline is final.
  await sleep(SETTLE_MS);
  const base = await metricTotal(worker, 'marketing_views', since);

  const res = await worker.fetch('/', { headers: { 'user-agent': GOOGLEBOT_UA } });
  assert.equal(res.status, 200);
  await res.arrayBuffer();

  const after = await waitFor(async () => {
    const m = await metricTotal(worker, 'marketing_views', since);
    return m.bots >= base.bots + 1 && m;
  }, { timeoutMs: COUNT_TIMEOUT_MS, what: 'bots +1' });
  assert.equal(after.bots, base.bots + 1);
  await sleep(SETTLE_MS);
  const settled = await metricTotal(worker, 'marketing_views', since);
  assert.equal(settled.total, base.total, 'a crawler is not a marketing view');
  assert.equal(settled.bots, base.bots + 1);
  assert.equal(sumCount(settled.body), settled.total);
});
