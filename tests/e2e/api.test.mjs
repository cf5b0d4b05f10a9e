// api.test.mjs — end to end: the /_bpm/api contract (auth, health, metrics,
// series shapes and parameter validation). One wrangler for the whole file;
// no traffic is counted here, so every series is all zeros.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  seriesPath,
  iso,
  isoHour,
  addMs,
  floorTo,
  STEP_MS,
  TEST_TOKEN,
} from './harness.mjs';
import { withOriginAndWorker } from './fixture.mjs';

const SHIPPED_METRICS = ['login_views', 'dashboard_views', 'logins', 'signups', 'subscriptions', 'marketing_views', 'traffic', 'login_success'];
const MAX_POINTS = 10_080;

let origin;
let worker;

withOriginAndWorker('api', {}, (started) => ({ origin, worker } = started));

// A fixed, fully past 10-minute window.
const to = floorTo(addMs(new Date(), -STEP_MS.hour), 'minute');
const from = addMs(to, -10 * STEP_MS.minute);
const goodSeries = { metric: 'login_views', from: iso(from), to: iso(to), step: 'minute' };

function assertJsonError(r, status) {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text}`);
  assert.match(r.headers.get('content-type') ?? '', /application\/json/);
  assert.equal(typeof r.body?.error, 'string', `JSON {"error": "..."}: ${r.text}`);
  assert.ok(r.body.error.length > 0);
}

test('health needs no token and reports name, version and config hash', async () => {
  const r = await worker.api('/_bpm/api/health', { token: null });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.name, 'bpm-edge');
  assert.match(r.body.version, /^\d+\.\d+\.\d+/);
  assert.match(r.body.config_hash, /^sha256:[0-9a-f]{64}$/);
  assert.equal(r.body.metrics, SHIPPED_METRICS.length);
  // The origin is never asked about /_bpm.
  assert.equal(origin.stats().total, 0);
});

for (const path of ['/_bpm/api/metrics', seriesPath(goodSeries), '/_bpm/api/stats']) {
  test(`(h) auth on ${path.split('?')[0]}: no token 401, wrong token 401, right token 200`, async () => {
    assertJsonError(await worker.api(path, { token: null }), 401);
    assertJsonError(await worker.api(path, { token: 'wrong-token-0123456789' }), 401);
    assertJsonError(await worker.api(path, { token: `${TEST_TOKEN}x` }), 401);
    assertJsonError(await worker.api(path, { token: null, headers: { authorization: TEST_TOKEN } }), 401);
    const ok = await worker.api(path);
    assert.equal(ok.status, 200, ok.text);
  });
}

test('metrics lists the shipped BPMs with their owner, runbook and kind', async () => {
  const r = await worker.api('/_bpm/api/metrics');
  assert.equal(r.status, 200);
  const byName = Object.fromEntries(r.body.metrics.map((m) => [m.name, m]));
  assert.deepEqual(Object.keys(byName).sort(), [...SHIPPED_METRICS].sort());
  for (const m of r.body.metrics) {
    for (const k of ['name', 'stage', 'description', 'owner', 'runbook', 'kind']) {
      assert.equal(typeof m[k], 'string', `${m.name}.${k}`);
    }
  }
  assert.equal(byName.login_success.kind, 'ratio');
  assert.equal(byName.logins.kind, 'metric');
  assert.equal(byName.marketing_views.stage, 'referral');
  assert.equal(byName.signups.stage, 'activation');
  assert.equal(byName.subscriptions.stage, 'revenue');
});

test('series: one zero point per minute, `to` exclusive', async () => {
  const r = await worker.api(seriesPath(goodSeries));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.metric, 'login_views');
  assert.equal(r.body.step, 'minute');
  assert.equal(r.body.from, iso(from));
  assert.equal(r.body.to, iso(to));
  assert.equal(r.body.points.length, 10);
  r.body.points.forEach((p, i) => {
    assert.equal(p.t, iso(addMs(from, i * STEP_MS.minute)));
    assert.equal(p.count, 0);
    assert.equal(p.bots, 0);
    for (const k of ['p50_ms', 'p95_ms', 'p99_ms']) assert.ok(k in p && (p[k] === null || typeof p[k] === 'number'), k);
  });
});

test('series: `from` is aligned down and `to` up to the step (UTC)', async () => {
  const base = floorTo(addMs(new Date(), -3 * STEP_MS.hour), 'hour');
  const r = await worker.api(seriesPath({
    metric: 'logins',
    from: iso(addMs(base, 17 * STEP_MS.minute + 45_000)),
    to: iso(addMs(base, 2 * STEP_MS.hour + 5 * STEP_MS.minute)),
    step: 'hour',
  }));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.from, isoHour(base));
  // `to` = base+2h05 is rounded up, so the hour that contains it is included.
  assert.equal(r.body.to, isoHour(addMs(base, 3 * STEP_MS.hour)));
  assert.deepEqual(r.body.points.map((p) => p.t), [0, 1, 2].map((h) => isoHour(addMs(base, h * STEP_MS.hour))));

  const day = await worker.api(seriesPath({
    metric: 'signups',
    from: iso(addMs(floorTo(new Date(), 'day'), -3 * STEP_MS.day + 5 * STEP_MS.hour)),
    to: iso(floorTo(new Date(), 'day')),
    step: 'day',
  }));
  assert.equal(day.status, 200, day.text);
  assert.equal(day.body.points.length, 3);
  assert.match(day.body.points[0].t, /T00:00:00Z$/);
});

test('series: a ratio metric has value/numerator/denominator points (null without volume)', async () => {
  const r = await worker.api(seriesPath({ ...goodSeries, metric: 'login_success' }));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.points.length, 10);
  for (const p of r.body.points) {
    assert.deepEqual({ value: p.value, numerator: p.numerator, denominator: p.denominator }, { value: null, numerator: 0, denominator: 0 });
    assert.equal(typeof p.t, 'string');
  }
});

test('series by a dimension: `by` echoed, no series without data', async () => {
  for (const by of ['status', 'source', 'utm_source', 'utm_medium', 'utm_campaign', 'landing']) {
    const r = await worker.api(seriesPath({ ...goodSeries, metric: 'marketing_views', by }));
    assert.equal(r.status, 200, `${by}: ${r.text}`);
    assert.equal(r.body.by, by);
    assert.deepEqual(r.body.series, []);
  }
});

test('series: exactly 10,080 points is allowed', async () => {
  const end = floorTo(new Date(), 'minute');
  const r = await worker.api(seriesPath({ metric: 'logins', from: iso(addMs(end, -MAX_POINTS * STEP_MS.minute)), to: iso(end), step: 'minute' }));
  assert.equal(r.status, 200, r.text.slice(0, 300));
  assert.equal(r.body.points.length, MAX_POINTS);
});

const badRequests = {
  'unknown metric': { ...goodSeries, metric: 'no_such_metric' },
  'missing metric': { ...goodSeries, metric: undefined },
  'missing from': { ...goodSeries, from: undefined },
  'missing to': { ...goodSeries, to: undefined },
  'from not RFC 3339': { ...goodSeries, from: 'yesterday' },
  'to not RFC 3339': { ...goodSeries, to: '2026-13-45T99:00:00Z' },
  'from as a bare date': { ...goodSeries, from: '2026-11-24' },
  'to before from': { ...goodSeries, from: iso(to), to: iso(from) },
  'unknown step': { ...goodSeries, step: 'week' },
  'unknown by': { ...goodSeries, metric: 'marketing_views', by: 'ip' },
  'a dimension the metric does not keep (logins by utm_source)': { ...goodSeries, metric: 'logins', by: 'utm_source' },
  'too many points (8 days of minutes)': {
    ...goodSeries,
    from: iso(addMs(to, -8 * STEP_MS.day)),
    to: iso(to),
  },
};
for (const [name, params] of Object.entries(badRequests)) {
  test(`(h) series with ${name} → 400 {"error": ...}`, async () => {
    assertJsonError(await worker.api(seriesPath(params)), 400);
  });
}

test('stats reports shard and total flush counters', async () => {
  const r = await worker.api('/_bpm/api/stats');
  assert.equal(r.status, 200, r.text);
  assert.ok(Array.isArray(r.body.shards));
  assert.equal(r.body.shards.length, 4, 'one entry per configured shard');
  for (const k of ['flushes', 'requests', 'rows_written', 'duplicate_batches']) assert.equal(typeof r.body.totals[k], 'number', k);
  for (const s of r.body.shards) assert.match(s.shard, /^demo:[0-3]$/);
});
