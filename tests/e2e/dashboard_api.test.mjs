// dashboard_api.test.mjs — end to end: the endpoints the dashboard reads,
// under `wrangler dev` with a real origin. Covers the login session (cookie
// attributes, tampering, the anti-forgery header on changes, logout), auth
// failures on every dashboard endpoint, Mission Control's overview after a
// backfill of five weeks (every BPM, points, baseline band, current window),
// and the referral report: live visits with known referrers and campaigns,
// a backfilled comparison week, and the CSV carrying the JSON's numbers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor, TEST_TOKEN, BROWSER_UA, postBackfill } from './harness.mjs';
import { withOriginAndWorker } from './fixture.mjs';

const MIN = 60;
const BUCKET = 300;
const RATES = { logins: 10, traffic: 100, login_views: 12, dashboard_views: 10, signups: 3, marketing_views: 30, subscriptions: 1 };
const NOW = Math.floor(Date.now() / 1000);
const T0 = Math.floor(NOW / BUCKET) * BUCKET;
const isoAt = (t) => new Date(t * 1000).toISOString().replace('.000Z', 'Z');

let origin;
let worker;

withOriginAndWorker('dashboard-api', {}, (started) => ({ origin, worker } = started));

const backfill = (text) => postBackfill(worker, text);

function session(method, { cookie, body, headers = {} } = {}) {
  return fetch(`${worker.url}/_bpm/api/session`, {
    method,
    headers: { ...(cookie ? { cookie } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

test('every dashboard endpoint refuses requests without a token or session', async () => {
  for (const path of ['overview', 'referrals?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z', 'alerts', 'silences', 'metrics']) {
    const r = await worker.api(`/_bpm/api/${path}`, { token: null });
    assert.equal(r.status, 401, `${path}: ${r.text}`);
    assert.match(r.body.error, /Authorization/);
    const wrong = await worker.api(`/_bpm/api/${path}`, { token: 'not-the-token-0123456789' });
    assert.equal(wrong.status, 401, path);
  }
  const forged = await worker.api('/_bpm/api/overview', { token: null, headers: { cookie: 'bpm_session=v1.99999999999.AAAA' } });
  assert.equal(forged.status, 401);
  assert.match(forged.body.error, /session/);
});

test('a login sets an HttpOnly session cookie that authorises reads, and changes only with the anti-forgery header', async () => {
  const wrong = await session('POST', { body: { token: 'wrong-token-0123456789' } });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.headers.get('set-cookie'), null);
  const bad = await session('POST', { body: 'not an object' });
  assert.equal(bad.status, 400);

  const ok = await session('POST', { body: { token: TEST_TOKEN } });
  assert.equal(ok.status, 204);
  const setCookie = ok.headers.get('set-cookie');
  assert.match(setCookie, /^bpm_session=v1\.\d+\.[A-Za-z0-9_-]+;/);
  assert.match(setCookie, /HttpOnly/);
  assert.match(setCookie, /SameSite=Strict/);
  assert.match(setCookie, /Path=\/_bpm/);
  assert.match(setCookie, /Max-Age=43200/);
  assert.doesNotMatch(setCookie, /Secure/, 'plain http on 127.0.0.1');
  const cookie = setCookie.split(';')[0];

  const check = await session('GET', { cookie });
  assert.equal(check.status, 200);
  assert.equal((await check.json()).authenticated, true);
  const read = await worker.api('/_bpm/api/overview', { token: null, headers: { cookie } });
  assert.equal(read.status, 200, read.text);

  const silence = { rule: 'signups_drop', duration: '1h', reason: 'session test', author: 'e2e' };
  const post = (headers) =>
    fetch(`${worker.url}/_bpm/api/silences`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/json', ...headers },
      body: JSON.stringify(silence),
    });
  const noHeader = await post({});
  assert.equal(noHeader.status, 401);
  assert.match((await noHeader.json()).error, /X-BPM-CSRF/);
  const withHeader = await post({ 'x-bpm-csrf': '1' });
  assert.equal(withHeader.status, 201);
  const created = await withHeader.json();
  const list = await worker.api('/_bpm/api/silences');
  assert.ok(list.body.silences.some((s) => s.id === created.id && s.author === 'e2e'));
  const del = await fetch(`${worker.url}/_bpm/api/silences/${created.id}`, { method: 'DELETE', headers: { cookie, 'x-bpm-csrf': '1' } });
  assert.equal(del.status, 200);

  const tampered = cookie.replace(/v1\.(\d+)\./, (_, e) => `v1.${Number(e) + 3600}.`);
  assert.equal((await worker.api('/_bpm/api/overview', { token: null, headers: { cookie: tampered } })).status, 401);

  const out = await session('DELETE', { cookie });
  assert.equal(out.status, 204);
  assert.match(out.headers.get('set-cookie'), /Max-Age=0/);
});

test('the overview shows every BPM with its day, baseline band and current window in one call', async () => {
  const lines = ['timestamp,metric,count'];
  // Past the test's end, so the last complete hour is always all history.
  for (let t = T0 - 35 * 86400; t < T0 + 10 * MIN; t += MIN) {
    for (const [m, n] of Object.entries(RATES)) lines.push(`${isoAt(t)},${m},${n}`);
  }
  // 5 weeks × 7 metrics ≈ 350,000 lines: two requests.
  const half = Math.ceil(lines.length / 2);
  await backfill(lines.slice(0, half).join('\n') + '\n');
  await backfill(lines.slice(half).join('\n') + '\n');

  const metrics = (await worker.api('/_bpm/api/metrics')).body.metrics.map((m) => m.name);
  const started = performance.now();
  const r = await worker.api('/_bpm/api/overview');
  const ms = performance.now() - started;
  assert.equal(r.status, 200, r.text);
  const o = r.body;
  assert.equal(o.site.timezone, 'Europe/Berlin');
  assert.equal(o.step_secs, 900);
  assert.deepEqual(o.metrics.map((m) => m.name).sort(), [...metrics].sort());
  for (const m of o.metrics) {
    assert.ok(o.stages.includes(m.stage), m.name);
    assert.equal(m.points.length, 96, m.name);
    assert.ok(['none', 'learning', 'ok', 'pending', 'firing', 'resolved'].includes(m.state), `${m.name}: ${m.state}`);
  }
  const logins = o.metrics.find((m) => m.name === 'logins');
  // The last complete hour: 10 a minute, against the same hour of 4 weeks.
  assert.equal(logins.window.observed, 600);
  assert.equal(logins.window.expected, 600);
  assert.equal(logins.window.ratio, 1);
  assert.equal(logins.window.source, '4 weeks');
  const full = logins.points.find((p) => !p.partial && p.value !== null);
  assert.deepEqual([full.value, full.expected, full.low, full.high], [150, 150, 150, 150]);
  assert.deepEqual(logins.alerts.map((a) => a.rule), ['logins_drop']);
  const ratio = o.metrics.find((m) => m.name === 'login_success');
  assert.equal(ratio.window.observed, Math.round((10 / 12) * 100 * 100) / 100);
  const week = await worker.api('/_bpm/api/overview?range=7d&metric=signups');
  assert.equal(week.status, 200, week.text);
  assert.equal(week.body.metrics.length, 1);
  assert.equal(week.body.metrics[0].points.length, 168);
  assert.equal((await worker.api('/_bpm/api/overview?range=3d')).status, 400);
  console.log(`# overview: ${o.metrics.length} BPMs, ${JSON.stringify(o).length} bytes, ${ms.toFixed(0)} ms`);
});

test('the referral report counts live visits by source and campaign, compares with the same weekday, and exports the same numbers as CSV', async () => {
  // Five visitors (IP + user agent): three from google, one from the
  // newsletter, one from twitter.
  const visits = [
    ...[1, 2, 3, 1, 2, 3].map((n) => ({ path: '/', referer: 'https://www.google.com/search?q=shop', ip: `192.0.2.${n}` })),
    ...Array(3).fill({ path: '/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=spring_launch', ip: '192.0.2.4' }),
    ...Array(2).fill({ path: '/blog/launch', referer: 'https://t.co/xyz', ip: '192.0.2.5' }),
  ];
  const started = Math.floor(Date.now() / 1000 / MIN) * MIN;
  for (const v of visits) {
    const res = await worker.fetch(v.path, { headers: { 'user-agent': BROWSER_UA, 'cf-connecting-ip': v.ip, ...(v.referer ? { referer: v.referer } : {}) } });
    assert.ok(res.status < 400, `${v.path}: ${res.status}`);
    await res.arrayBuffer();
  }
  // The range: the hour of these visits. One week earlier, the same hour
  // gets backfilled views: 4 from google, 1 direct.
  const from = Math.floor(started / 3600) * 3600;
  const to = from + 3600;
  const weekAgo = from - 7 * 86400 + 10 * MIN;
  await backfill(
    [`${isoAt(weekAgo)},marketing_views,5`, `${isoAt(weekAgo)},marketing_views,4,source,google`, `${isoAt(weekAgo)},marketing_views,1,source,direct`].join('\n') + '\n',
  );
  // A week earlier than the range is 7 days back for anything up to 7 days
  // long; 4w is 28 days back, where the overview backfill put 30 a minute.
  const path = `/_bpm/api/referrals?from=${isoAt(from)}&to=${isoAt(to)}`;
  const report = await waitFor(
    async () => {
      const r = await worker.api(path);
      assert.equal(r.status, 200, r.text);
      // The overview backfill has no splits, so the splits are the live visits.
      const live = r.body.tables.utm_campaign.find((x) => x.value === 'spring_launch');
      return live?.count === 3 && r.body.tables.source.find((x) => x.value === 'twitter')?.count === 2 && r.body.uniques?.count === 5 ? r.body : null;
    },
    { timeoutMs: 30_000, intervalMs: 500, what: 'the live visits to be counted' },
  );
  assert.equal(report.metric, 'marketing_views');
  // Backfilled history has counts but no visitor sketches.
  assert.deepEqual(report.uniques, { count: 5, previous: 0, error: 0.01625 });
  assert.equal(report.step, 'minute');
  assert.equal(report.compare.mode, 'previous');
  assert.equal(report.compare.from, isoAt(from - 7 * 86400));
  const source = Object.fromEntries(report.tables.source.map((x) => [x.value, x]));
  // The hour also holds backfilled counts without splits, so the live
  // sources are checked by value, not by share.
  assert.equal(source.google.count, 6);
  assert.equal(source.google.previous, 4);
  assert.equal(source.google.change, 0.5);
  assert.equal(source.twitter.count, 2);
  assert.equal(source.direct.count, 3, 'campaign links without a referrer are direct');
  assert.equal(source.direct.previous, 1);
  const medium = Object.fromEntries(report.tables.utm_medium.map((x) => [x.value, x.count]));
  assert.equal(medium.email, 3);
  assert.equal(medium['(none)'], 8);
  const landing = Object.fromEntries(report.tables.landing.map((x) => [x.value, x.count]));
  assert.equal(landing['/'], 6);
  assert.equal(landing['/pricing'], 3);
  assert.equal(report.points.length, 60);
  assert.equal(report.points.reduce((a, p) => a + p.count, 0), report.total.count);
  assert.equal(report.points.reduce((a, p) => a + p.previous, 0), report.total.previous);
  assert.ok(report.total.count >= 11);
  assert.equal(report.total.previous, 30 * 60 + 5);

  // CSV: the same numbers, row for row.
  const csvRes = await fetch(`${worker.url}${path}&format=csv`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
  assert.equal(csvRes.status, 200);
  assert.match(csvRes.headers.get('content-type'), /^text\/csv/);
  assert.match(csvRes.headers.get('content-disposition'), /^attachment; filename="referrals-marketing_views-.*\.csv"$/);
  const rows = (await csvRes.text()).trim().split('\n').map((l) => l.split(','));
  assert.deepEqual(rows[0], ['table', 'value', 'count', 'share', 'previous', 'change']);
  assert.deepEqual(rows[1].slice(0, 3), ['total', 'marketing_views', String(report.total.count)]);
  const fromJson = [];
  for (const [table, list] of Object.entries(report.tables)) {
    for (const x of list) fromJson.push([table, x.value, String(x.count), String(x.share), String(x.previous ?? ''), String(x.change ?? '')]);
  }
  assert.deepEqual(rows.slice(2), fromJson);

  // Another comparison and a bad parameter.
  const four = await worker.api(`${path}&compare=4w`);
  assert.equal(four.body.compare.from, isoAt(from - 28 * 86400));
  assert.equal(four.body.total.previous, 30 * 60);
  const none = await worker.api(`${path}&compare=none`);
  assert.equal(none.body.compare, null);
  assert.equal(none.body.total.previous, null);
  const bad = await worker.api(`/_bpm/api/referrals?from=${isoAt(from)}&to=${isoAt(to)}&metric=logins`);
  assert.equal(bad.status, 400);
  assert.match(bad.body.error, /no referral dimensions/);
});
