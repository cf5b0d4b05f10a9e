// sites.test.mjs — end to end: several sites from one deployment
// (tests/e2e/sites.toml, built into build/sites/). Two hosts in front of
// one origin are each counted into their own site (their own shards,
// metrics and alert object); a host of no site is forwarded and not
// counted; one cron tick judges every site's rules; a token scoped to one
// site gets 404 for the other on every endpoint (and never reads its
// name), 403 for a change it may not make; a scoped token logs in to the
// dashboard; and the shop's firing alert reaches its receiver, signed,
// from the shop's alert object's outbox (its alarm names its site by the
// object's own name).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Webhook } from 'standardwebhooks';
import { startWebhookSink, receiverVars, OPS_SECRET } from './webhook-sink.mjs';
import {
  startOrigin,
  startWorker,
  api,
  hostRequest,
  waitFor,
  seriesPath,
  windowSince,
  sumCount,
  cronTick,
  minuteCsv,
  TEST_TOKEN,
} from './harness.mjs';

const SHOP_READER = 'shop-reader-0123456789';
const BLOG_WRITER = 'blog-writer-0123456789';
const TOKENS = {
  'shop-marketing': { token: SHOP_READER, sites: ['shop'], role: 'read' },
  'blog-team': { token: BLOG_WRITER, sites: ['blog'], role: 'write' },
};

let origin;
let sink;
let worker;
const since = new Date();

before(async () => {
  origin = await startOrigin({ port: 0 });
  sink = await startWebhookSink({ verifiers: { '/ops': new Webhook(OPS_SECRET) } });
  worker = await startWorker({
    originUrl: origin.url,
    label: 'sites',
    buildDir: 'build/sites',
    vars: { BPM_API_TOKENS: JSON.stringify(TOKENS), ...receiverVars(sink.url) },
  });
});

after(async () => {
  await worker?.stop();
  await sink?.close();
  await origin?.close();
});

/** A visitor request for `path` on `host` (its port is the worker's). */
const visit = (host, path, opts) => hostRequest(`${worker.url}${path}`, `${host}:${worker.port}`, opts);
const login = (host) =>
  visit(host, '/login', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'user=demo&password=demo',
  });

/** An API call with `token` (default: the admin token). */
const call = (path, { token = TEST_TOKEN, method = 'GET', body } = {}) =>
  api(`${worker.url}/_bpm/api/${path}`, {
    token,
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
  });

const total = async (site, metric) => {
  const r = await worker.api(seriesPath({ metric, site, ...windowSince(since, 'minute') }));
  if (r.status !== 200) throw new Error(`series ${site}/${metric}: ${r.status} ${r.text}`);
  return sumCount(r.body);
};

test('each host is counted in its own site, a host of no site in none', async () => {
  const before = origin.stats().total;
  const answers = [];
  for (let i = 0; i < 3; i++) answers.push(await login('shop.test'));
  answers.push(await visit('shop.test', '/'));
  answers.push(await visit('SHOP.test', '/pricing'));
  // The `*.shop.test` suffix: the German shop is the shop.
  answers.push(await visit('de.shop.test', '/'));
  answers.push(await visit('shop.test', '/billing/subscribe', { method: 'POST', body: '{}' }));
  for (let i = 0; i < 4; i++) answers.push(await visit('blog.test', `/blog/post-${i}`));
  // The blog does not take logins: forwarded, counted nowhere.
  for (let i = 0; i < 2; i++) answers.push(await login('blog.test'));
  // Hosts of no site: forwarded, counted nowhere.
  for (let i = 0; i < 5; i++) answers.push(await visit('other.test', '/'));
  answers.push(await visit('shop.test.evil.example', '/'));
  for (let i = 0; i < 2; i++) answers.push(await worker.fetch('/'));
  assert.deepEqual(
    answers.map((a) => a.status),
    [302, 302, 302, 200, 200, 200, 200, 200, 200, 200, 200, 302, 302, 200, 200, 200, 200, 200, 200, 200, 200],
  );
  assert.equal(origin.stats().total - before, answers.length, 'every request reached the origin');

  await waitFor(
    async () =>
      (await total('shop', 'logins')) === 3 &&
      (await total('shop', 'page_views')) === 3 &&
      (await total('shop', 'subscriptions')) === 1 &&
      (await total('blog', 'page_views')) === 4,
    { timeoutMs: 20_000, what: 'each site counted its own requests' },
  );
  // A moment more: nothing else arrives (the other hosts' 8 views and the
  // blog's 2 logins were counted nowhere).
  await new Promise((r) => setTimeout(r, 2_500));
  assert.equal(await total('shop', 'page_views'), 3);
  assert.equal(await total('blog', 'page_views'), 4);
  const blogLogins = await worker.api(seriesPath({ metric: 'logins', site: 'blog', ...windowSince(since) }));
  assert.equal(blogLogins.status, 400, 'the blog has no logins metric');

  // Each site's own shards: the blog's stats count the blog's 4 requests.
  const shopStats = await call('stats?site=shop');
  const blogStats = await call('stats?site=blog');
  assert.equal(shopStats.body.totals.requests, 7, shopStats.text);
  assert.equal(blogStats.body.totals.requests, 4, blogStats.text);
  assert.ok(blogStats.body.shards.every((s) => s.shard.startsWith('blog:')), blogStats.text);

  // Without `?site=`, the API speaks of the site of its host.
  const blogMetrics = await hostRequest(`${worker.url}/_bpm/api/metrics`, `blog.test:${worker.port}`, {
    headers: { authorization: `Bearer ${TEST_TOKEN}` },
  });
  assert.equal(blogMetrics.status, 200, blogMetrics.text);
  assert.deepEqual(blogMetrics.body.metrics.map((m) => m.name), ['page_views']);
  const shopMetrics = await call('metrics?site=shop');
  assert.deepEqual(shopMetrics.body.metrics.map((m) => m.name), ['logins', 'page_views', 'subscriptions']);
});

test("one cron tick judges every site's rules in the site's own alert object", async () => {
  await cronTick(worker, Math.floor(Date.now() / 1000));
  const rules = async (site) => {
    const r = await call(`overview?range=24h&site=${site}`);
    assert.equal(r.status, 200, r.text);
    return r.body.metrics.flatMap((m) => (m.alerts ?? []).map((a) => [a.rule, a.evaluated]));
  };
  await waitFor(async () => (await rules('shop')).every(([, e]) => e) && (await rules('blog')).every(([, e]) => e), {
    timeoutMs: 20_000,
    what: 'both sites judged',
  });
  assert.deepEqual(await rules('shop'), [['logins_drop', true]]);
  assert.deepEqual(await rules('blog'), [['page_views_drop', true]]);
});

test('a token for one site sees nothing of the other, on every endpoint', async () => {
  const sites = await call('sites', { token: SHOP_READER });
  assert.equal(sites.status, 200, sites.text);
  assert.deepEqual(sites.body.sites.map((s) => [s.name, s.role]), [['shop', 'read']]);
  assert.equal(sites.body.current, 'shop');
  assert.ok(!sites.text.includes('blog'), sites.text);
  const admin = await call('sites');
  assert.deepEqual(admin.body.sites.map((s) => [s.name, s.role, s.timezone]), [
    ['shop', 'write', 'Europe/Berlin'],
    ['blog', 'write', 'America/New_York'],
  ]);

  const endpoints = [
    ['GET', 'metrics'],
    ['GET', 'series?metric=page_views&range=24h'],
    ['GET', 'uniques?metric=page_views&range=24h'],
    ['GET', 'stats'],
    ['GET', 'referrals?metric=page_views&range=24h'],
    ['GET', 'overview?range=24h'],
    ['GET', 'alerts'],
    ['GET', 'alerts/history'],
    ['GET', 'silences'],
    ['GET', 'annotations'],
    ['GET', 'digest'],
    ['POST', 'simulate', { rule: 'page_views_drop', days: 1 }],
    ['POST', 'silences', { rule: '*', duration: '1h', reason: 'x', author: 'x' }],
    ['DELETE', 'silences/sil_0123456789abcdef'],
    ['POST', 'annotations', { id: 'deploy-x', kind: 'deploy', text: 'x' }],
    ['DELETE', 'annotations/deploy-x'],
    ['POST', 'receivers/ops/enable'],
    ['POST', 'backfill'],
  ];
  for (const [method, path, body] of endpoints) {
    const sep = path.includes('?') ? '&' : '?';
    const asked = await call(`${path}${sep}site=blog`, { token: SHOP_READER, method, body });
    assert.equal(asked.status, 404, `${method} ${path} for the blog: ${asked.status} ${asked.text}`);
    assert.deepEqual(asked.body, { error: 'no such site' });
    // The blog's own host, without `?site=`: the same.
    const onHost = await hostRequest(`${worker.url}/_bpm/api/${path}`, `blog.test:${worker.port}`, {
      method,
      headers: { authorization: `Bearer ${SHOP_READER}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    assert.equal(onHost.status, 404, `${method} ${path} on blog.test: ${onHost.status} ${onHost.text}`);
    // The blog's writer, the other way round.
    const writer = await call(`${path}${sep}site=shop`, { token: BLOG_WRITER, method, body });
    assert.equal(writer.status, 404, `${method} ${path} for the shop: ${writer.status} ${writer.text}`);
  }
  // On its own site the reader reads, and may not change.
  assert.equal((await call('overview?range=24h&site=shop', { token: SHOP_READER })).status, 200);
  const mute = await call('silences?site=shop', {
    token: SHOP_READER,
    method: 'POST',
    body: { rule: '*', duration: '1h', reason: 'x', author: 'x' },
  });
  assert.equal(mute.status, 403, mute.text);
  // The blog's writer changes the blog, and only the blog.
  const note = await call('annotations?site=blog', {
    token: BLOG_WRITER,
    method: 'POST',
    body: { id: 'deploy-blog-1', kind: 'deploy', text: 'new theme' },
  });
  assert.equal(note.status, 201, note.text);
  assert.deepEqual((await call('annotations?site=blog')).body.annotations.map((a) => a.id), ['deploy-blog-1']);
  assert.deepEqual((await call('annotations?site=shop')).body.annotations, []);
});

test('a scoped token logs in to the dashboard and keeps its scope', async () => {
  const url = `${worker.url}/_bpm/api/session`;
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: SHOP_READER }),
  });
  assert.equal(res.status, 204, await res.text());
  const cookie = res.headers.get('set-cookie').split(';')[0];
  assert.match(cookie, /^bpm_session=s1\./);
  const withCookie = (path, opts = {}) =>
    api(`${worker.url}/_bpm/api/${path}`, { token: null, ...opts, headers: { cookie, ...(opts.headers ?? {}) } });
  const session = await withCookie('session');
  assert.equal(session.status, 200, session.text);
  assert.equal(session.body.via, 'session');
  assert.equal(session.body.name, 'shop-marketing');
  assert.deepEqual((await withCookie('sites')).body.sites.map((s) => s.name), ['shop']);
  assert.equal((await withCookie('overview?range=24h&site=shop')).status, 200);
  assert.equal((await withCookie('overview?range=24h&site=blog')).status, 404);
  const mute = await withCookie('silences?site=shop', {
    method: 'POST',
    headers: { 'x-bpm-csrf': '1', 'content-type': 'application/json' },
    body: JSON.stringify({ rule: '*', duration: '1h', reason: 'x', author: 'x' }),
  });
  assert.equal(mute.status, 403, mute.text);
  const wrong = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: 'not-a-token-0123456789' }),
  });
  assert.equal(wrong.status, 401);
});

test("the shop's firing alert reaches its receiver, signed, from the shop's own alert object", async () => {
  // Four weeks of the shop's logins, 10 a minute, stopping 20 minutes
  // before T0 (the next 5-minute boundary, after the tick of the test
  // above): the ticks from T0 on judge the drop, then (after the group
  // wait) queue the notice, which the alert object's alarm delivers.
  const MIN = 60;
  const T0 = Math.floor(Date.now() / 1000 / 300) * 300 + 300;
  const history = minuteCsv({ logins: 10 }, ['logins'], T0 - 28 * 86_400, T0 - 20 * MIN);
  const res = await fetch(`${worker.url}/_bpm/api/backfill?site=shop`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'text/csv' },
    body: history,
    signal: AbortSignal.timeout(120_000),
  });
  assert.equal(res.status, 200, await res.text());
  const delivered = () => sink.got.find((m) => m.path === '/ops');
  for (let k = 0; k < 8 && !delivered(); k++) {
    await cronTick(worker, T0 + k * 300 + MIN);
    await waitFor(delivered, { timeoutMs: 3_000, what: 'the firing webhook' }).catch(() => {});
  }
  const message = await waitFor(delivered, { timeoutMs: 20_000, what: 'the firing webhook' });
  assert.equal(message.verified, true, 'signed with the receiver secret (standardwebhooks)');
  const body = message.payload;
  assert.equal(body.site, 'shop');
  assert.equal(body.rule, 'logins_drop');
  assert.equal(body.status, 'firing');
  const rule = (await call('alerts?site=shop')).body.alerts.find((a) => a.rule === 'logins_drop');
  assert.equal(rule.state, 'firing');
  // The blog has no rule on logins and sent nothing.
  assert.ok(sink.got.every((m) => m.payload?.site === 'shop'), JSON.stringify(sink.got.map((m) => m.payload)));
});
