// kinds.test.mjs — end to end: who sent a request decides whether a metric
// counts it. A login from an Android app (okhttp) answered 302 to
// /dashboard is a login; the same from Googlebot is not, and shows up in the
// metric's kind breakdown instead. One wrangler for the whole file.
//
// Invariant relied on: the worker starts with an empty --persist-to
// directory and each test compares against totals it read itself (deltas).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor, seriesPath, windowSince, sumCount, GOOGLEBOT_UA } from './harness.mjs';
import { withOriginAndWorker } from './fixture.mjs';

const SETTLE_MS = 3_000;
const COUNT_TIMEOUT_MS = 30_000;
const OKHTTP_UA = 'okhttp/4.12.0';

let worker;
let since;

withOriginAndWorker('kinds', {}, (started) => ({ worker, since } = started));

/** `count`, and hits by kind, of `metric` since the worker started. */
async function kinds(metric) {
  const r = await worker.api(seriesPath({ metric, ...windowSince(since, 'minute') }));
  assert.equal(r.status, 200, r.text);
  const sum = (kind) => r.body.points.reduce((a, p) => a + p.kinds[kind], 0);
  return { counts: r.body.count, total: sumCount(r.body), browser: sum('browser'), client: sum('client'), bot: sum('bot'), bots: r.body.points.reduce((a, p) => a + p.bots, 0) };
}

const login = (ua) => worker.fetch('/login', {
  method: 'POST',
  body: 'user=alice&password=demo',
  headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': ua },
});

test('a login from okhttp is a login; the same from Googlebot is shown apart as a bot', async () => {
  const before = await kinds('logins');
  assert.deepEqual(before.counts, ['browser', 'client']);

  const app = await login(OKHTTP_UA);
  assert.equal(app.status, 302);
  assert.match(app.headers.get('location'), /\/dashboard/);
  const crawler = await login(GOOGLEBOT_UA);
  assert.equal(crawler.status, 302);
  assert.match(crawler.headers.get('location'), /\/dashboard/);

  const after = await waitFor(async () => {
    const k = await kinds('logins');
    return k.total >= before.total + 1 && k.bot >= before.bot + 1 && k;
  }, { timeoutMs: COUNT_TIMEOUT_MS, what: 'the okhttp login counted and the Googlebot one tallied' });
  await sleep(SETTLE_MS);
  const settled = await kinds('logins');
  assert.deepEqual(settled, after, 'nothing more arrived after settling');
  assert.equal(settled.total, before.total + 1, 'only the app login is a login');
  assert.equal(settled.client, before.client + 1, 'the app login is a client hit');
  assert.equal(settled.browser, before.browser);
  assert.equal(settled.bot, before.bot + 1, 'the crawler is in the breakdown');
  assert.equal(settled.bots, before.bots + 1, '`bots` keeps meaning bot hits not counted');
  // Every hit is in the breakdown: counted kinds add up to the count.
  assert.equal(settled.browser + settled.client, settled.total);
});

test('a referral metric counts browsers only: an app view is a client hit, not a marketing view', async () => {
  const before = await kinds('marketing_views');
  assert.deepEqual(before.counts, ['browser']);
  for (const ua of [OKHTTP_UA, 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36']) {
    const res = await worker.fetch('/pricing', { headers: { 'user-agent': ua } });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  }
  const after = await waitFor(async () => {
    const k = await kinds('marketing_views');
    return k.total >= before.total + 1 && k.client >= before.client + 1 && k;
  }, { timeoutMs: COUNT_TIMEOUT_MS, what: 'browser view counted, app view tallied' });
  assert.equal(after.total, before.total + 1);
  assert.equal(after.browser, before.browser + 1);
  assert.equal(after.client, before.client + 1);
  // by=kind splits the counted hits.
  const r = await worker.api(seriesPath({ metric: 'logins', by: 'kind', ...windowSince(since, 'hour') }));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.series.find((s) => s.value === 'client')?.total, 1);
  // /api/metrics says what each metric counts.
  const m = await worker.api('/_bpm/api/metrics');
  assert.deepEqual(m.body.metrics.find((x) => x.name === 'marketing_views').count, ['browser']);
  assert.deepEqual(m.body.metrics.find((x) => x.name === 'logins').count, ['browser', 'client']);
});
