// alerts.test.mjs — end to end: four weeks of history are backfilled, logins
// stop, evaluations are driven through the cron test endpoint, and signed
// webhooks arrive at a real receiver on 127.0.0.1 that verifies them with
// the official `standardwebhooks` library. Covers firing (with retries after
// 500s under one webhook-id), resolved, the PagerDuty and Alertmanager
// formats, a silence (state changes, nothing sent) and backfill idempotency.
// A deploy annotated five minutes before logins stop is named in every
// format of the firing alert.
//
// Time: evaluations run at the cron event's scheduled time, which the test
// sets (`time=` on /cdn-cgi/handler/scheduled) around T0, the current
// 5-minute bucket. The history ends at T0 for logins' outage and extends
// past it for the other metrics, so each evaluation sees exactly the data a
// live site would have had at that instant. Webhook delivery runs on real
// time (the outbox alarm), as in production.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Webhook } from 'standardwebhooks';
import { startOrigin, startWorker, waitFor, TEST_TOKEN, postBackfill, minuteCsv, cronTick, alertsOf } from './harness.mjs';
import { startWebhookSink, amFingerprint, receiverVars, OPS_SECRET, AM_SECRET, ROUTING_KEY } from './webhook-sink.mjs';

const MIN = 60;
const BUCKET = 300;
// Per-minute rates of the backfilled history.
const RATES = { logins: 10, traffic: 100, login_views: 12, dashboard_views: 10, signups: 3, marketing_views: 30 };

let origin;
let worker;
let receiver;
const T0 = Math.floor(Date.now() / 1000 / BUCKET) * BUCKET;

/** The receiver: verifies /ops and /am, and can fail the next N requests to a path. */
async function startReceiver() {
  const failNext = new Map();
  const sink = await startWebhookSink({
    verifiers: { '/ops': new Webhook(OPS_SECRET), '/am': new Webhook(AM_SECRET) },
    answer: (path) => {
      const left = failNext.get(path) ?? 0;
      if (left === 0) return 200;
      failNext.set(path, left - 1);
      return 500;
    },
  });
  return { ...sink, failNext: (path, n) => failNext.set(path, n) };
}

const csv = (metrics, from, to) => minuteCsv(RATES, metrics, from, to);

const backfill = (text) => postBackfill(worker, text);

/** One cron tick at simulated time `t` (Unix seconds). */
const tick = (t) => cronTick(worker, t);

const alerts = () => alertsOf(worker);

const ruleState = async (rule) => (await alerts()).alerts.find((a) => a.rule === rule);

before(async () => {
  origin = await startOrigin({ port: 0 });
  receiver = await startReceiver();
  worker = await startWorker({
    originUrl: origin.url,
    label: 'alerts',
    vars: receiverVars(receiver.url, { pagerduty: true }),
  });
});

after(async () => {
  await worker?.stop();
  await receiver?.close();
  await origin?.close();
});

test('backfill imports four weeks of history once', async () => {
  const steady = ['traffic', 'login_views', 'dashboard_views', 'marketing_views'];
  const weeks = T0 - 28 * 86400;
  // Logins stop 15 minutes before T0 and come back 10 minutes after it;
  // signups stop 90 minutes after T0 (the silence test).
  const parts = [
    csv(steady, weeks, T0 + 3 * 3600),
    csv(['logins'], weeks, T0 - 15 * MIN),
    csv(['logins'], T0 + 10 * MIN, T0 + 3 * 3600),
    csv(['signups'], weeks, T0 + 90 * MIN),
  ];
  const first = [];
  for (const p of parts) first.push(await backfill(p));
  assert.ok(first.every((b) => b.baseline_applied && b.batches_applied === b.batches && !b.duplicate));
  // The same data again changes nothing.
  const again = await backfill(parts[1]);
  assert.equal(again.duplicate, true);
  assert.equal(again.batches_applied, 0);
  assert.equal(again.baseline_applied, false);
  // The counts are visible through the series API (the dashboard's view).
  const day = new Date((T0 - 86400) * 1000).toISOString().slice(0, 10);
  const r = await worker.api(`/_bpm/api/series?metric=logins&step=hour&from=${day}T00:00:00Z&to=${day}T01:00:00Z`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.points[0].count, 600);
  // A malformed CSV is refused whole, naming the line.
  const bad = await fetch(`${worker.url}/_bpm/api/backfill`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_TOKEN}` },
    body: 'timestamp,metric,count\n2026-01-01T00:00:00Z,nope,1\n',
  });
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).lines[0], /line 2: "nope" is not a counted metric/);
});

test('logins stop: a firing webhook arrives, signed, retried under one webhook-id after 500s', async () => {
  // Live: the origin's login now fails, so attempts are not logins.
  await fetch(`${origin.url}/__origin/mode`, { method: 'POST', body: JSON.stringify({ method: 'POST', path: '/login', status: 500 }) });
  const res = await worker.fetch('/login', { method: 'POST', body: 'user=a', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  assert.equal(res.status, 500);
  await res.arrayBuffer();

  // A deploy five minutes before logins stopped, posted as CI would.
  const deploy = await fetch(`${worker.url}/_bpm/api/annotations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ id: 'deploy-2f9c1e0', kind: 'deploy', text: 'Release 42', version: '2f9c1e0', time: new Date((T0 - 20 * MIN) * 1000).toISOString() }),
  });
  assert.equal(deploy.status, 201, await deploy.text());

  receiver.failNext('/ops', 2);
  await tick(T0 + 60); // judges the buckets ending at T0: pending
  assert.equal((await ruleState('logins_drop')).state, 'pending');
  await tick(T0 + 360); // T0+5m: firing, held for the 60 s group wait
  const firing = await ruleState('logins_drop');
  assert.equal(firing.state, 'firing');
  assert.ok(firing.evaluation.windows.some((w) => w.holds && w.z <= -5 && w.ratio <= 0.7));
  await tick(T0 + 420); // group wait over: queued
  // 0 s, then 5 s and 30 s later: the third attempt succeeds.
  const ops = await waitFor(() => receiver.delivered('/ops').find((g) => g.payload?.rule === 'logins_drop'), {
    timeoutMs: 90_000,
    intervalMs: 500,
    what: 'the firing webhook to be delivered',
  });
  const attempts = receiver.got.filter((g) => g.path === '/ops' && g.id === ops.id);
  assert.equal(attempts.length, 3, JSON.stringify(attempts.map((a) => [a.id, a.failed])));
  assert.deepEqual(attempts.map((a) => a.failed), [true, true, false]);
  assert.ok(attempts.every((a) => a.verified), 'every attempt carries a valid signature');
  assert.ok(attempts[2].at - attempts[0].at >= 30_000, 'retries follow the 5 s / 30 s schedule');
  const e = ops.payload;
  assert.equal(e.type, 'bpm.alert.firing');
  assert.equal(e.id, ops.id);
  assert.equal(e.status, 'firing');
  assert.equal(e.severity, 'critical');
  assert.equal(e.sequence, 1);
  assert.equal(e.metric.name, 'logins');
  assert.equal(e.metric.owner, 'identity-team');
  assert.match(e.metric.runbook, /^https:\/\//);
  assert.ok(e.observed < e.expected && e.drop_pct >= 30 && e.z <= -5, JSON.stringify(e));
  assert.ok(e.p_value < 1e-6);
  assert.equal(e.dashboard_url, 'http://127.0.0.1:8787/_bpm/#/metric/logins');
  const traffic = e.other_bpms.find((o) => o.metric === 'traffic');
  assert.ok(traffic && traffic.ratio >= 0.9, JSON.stringify(e.other_bpms));
  assert.ok(e.health && Array.isArray(e.health.status));
  // The drop began (its 15-minute window's start) 10 minutes after the deploy.
  assert.equal(e.after_deploy?.label, 'deploy 2f9c1e0', JSON.stringify(e.after_deploy));
  assert.equal(e.after_deploy.id, 'deploy-2f9c1e0');
  assert.equal(e.after_deploy.minutes, (Date.parse(e.started_at) / 1000 - e.window_seconds - (T0 - 20 * MIN)) / 60);
  // Only logins fired: nothing for the rules whose metrics kept going.
  assert.deepEqual([...new Set(receiver.delivered('/ops').map((g) => g.payload.rule))], ['logins_drop']);

  // The same alert in the other formats.
  const pd = await waitFor(() => receiver.delivered('/pd')[0], { timeoutMs: 30_000, what: 'the PagerDuty event' });
  assert.equal(pd.payload.routing_key, ROUTING_KEY);
  assert.equal(pd.payload.event_action, 'trigger');
  assert.equal(pd.payload.dedup_key, e.fingerprint);
  assert.equal(pd.payload.payload.severity, 'critical');
  assert.match(pd.payload.payload.summary, /began \d+ min after deploy 2f9c1e0/);
  const am = await waitFor(() => receiver.delivered('/am')[0], { timeoutMs: 30_000, what: 'the Alertmanager message' });
  assert.ok(am.verified);
  assert.equal(am.payload.version, '4');
  assert.equal(am.payload.status, 'firing');
  assert.equal(am.payload.alerts[0].labels.alertname, 'logins_drop');
  assert.equal(am.payload.alerts[0].endsAt, '0001-01-01T00:00:00Z');
  // Alertmanager's own fingerprint of the labels; bpm-edge's is an annotation.
  assert.equal(am.payload.alerts[0].fingerprint, amFingerprint(am.payload.alerts[0].labels));
  assert.equal(am.payload.alerts[0].annotations.bpm_fingerprint, e.fingerprint);
  assert.match(am.payload.alerts[0].annotations.after_deploy, /^began \d+ min after deploy 2f9c1e0$/);
});

test('logins return: resolved follows firing, in order, once', async () => {
  await fetch(`${origin.url}/__origin/mode`, { method: 'POST', body: '{}' });
  // Logins are back from T0+10m: the last hour is whole again at T0+75m.
  await tick(T0 + 75 * MIN + 30);
  assert.equal((await ruleState('logins_drop')).state, 'firing', 'one recovered evaluation is not enough');
  await tick(T0 + 80 * MIN + 30);
  assert.equal((await ruleState('logins_drop')).state, 'resolved');
  const resolved = await waitFor(
    () => receiver.delivered('/ops').find((g) => g.payload?.rule === 'logins_drop' && g.payload.status === 'resolved'),
    { timeoutMs: 30_000, what: 'the resolved webhook' },
  );
  assert.ok(resolved.verified);
  const firing = receiver.delivered('/ops').find((g) => g.payload?.rule === 'logins_drop' && g.payload.status === 'firing');
  assert.equal(resolved.payload.type, 'bpm.alert.resolved');
  assert.equal(resolved.payload.incident, firing.payload.incident);
  assert.equal(resolved.payload.sequence, 2);
  assert.notEqual(resolved.id, firing.id);
  assert.ok(resolved.payload.duration_seconds >= 70 * MIN, JSON.stringify(resolved.payload));
  assert.ok(resolved.payload.lowest_ratio <= 0.7);
  assert.ok(resolved.at > firing.at);
  const pd = await waitFor(() => receiver.delivered('/pd').find((g) => g.payload.event_action === 'resolve'), { timeoutMs: 30_000, what: 'the PagerDuty resolve' });
  assert.deepEqual(Object.keys(pd.payload).sort(), ['dedup_key', 'event_action', 'routing_key']);
  // Exactly one firing and one resolved were delivered for logins.
  const ids = new Set(receiver.delivered('/ops').filter((g) => g.payload.rule === 'logins_drop').map((g) => g.id));
  assert.equal(ids.size, 2);
  const history = await worker.api('/_bpm/api/alerts/history?rule=logins_drop&limit=50');
  assert.equal(history.status, 200);
  const transitions = history.body.history.filter((h) => h.to).map((h) => h.to).reverse();
  assert.deepEqual(transitions, ['pending', 'firing', 'resolved']);
});

test('a silenced alert changes state and is listed, but sends nothing', async () => {
  const created = await fetch(`${worker.url}/_bpm/api/silences`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ rule: 'signups_drop', duration: '1d', reason: 'signup form migration', author: 'e2e' }),
  });
  const silence = await created.json();
  assert.equal(created.status, 201, JSON.stringify(silence));
  assert.match(silence.id, /^sil_[0-9a-f]{16}$/);
  const listed = await worker.api('/_bpm/api/silences');
  assert.equal(listed.body.silences[0].author, 'e2e');
  const before = receiver.got.length;
  // Signups stopped at T0+90m.
  for (const m of [110, 115, 120, 125]) await tick(T0 + m * MIN + 30);
  const s = await ruleState('signups_drop');
  assert.equal(s.state, 'firing');
  assert.equal(s.silenced, true);
  assert.equal(s.silence, silence.id);
  await sleep(3000);
  assert.equal(receiver.got.length, before, 'nothing was sent for a silenced alert');
  const history = await worker.api('/_bpm/api/alerts/history?rule=signups_drop');
  assert.ok(history.body.history.some((h) => h.notice === `silenced by ${silence.id}`), history.text);
  // Deleting it: the next tick sends the still-firing alert.
  const del = await fetch(`${worker.url}/_bpm/api/silences/${silence.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${TEST_TOKEN}` } });
  assert.equal(del.status, 200);
  await tick(T0 + 126 * MIN + 30);
  // The history keeps the silence, whole, after it is gone from the list.
  const kept = await worker.api('/_bpm/api/alerts/history?rule=signups_drop&limit=100');
  const lines = kept.body.history.filter((h) => h.silence?.id === silence.id);
  assert.deepEqual(lines.map((h) => h.notice), ['silence deleted', 'silence created'], kept.text);
  assert.equal(lines[1].silence.reason, 'signup form migration');
  assert.equal(lines[1].silence.author, 'e2e');
  const sent = await waitFor(() => receiver.delivered('/ops').find((g) => g.payload.rule === 'signups_drop'), { timeoutMs: 30_000, what: 'the signups webhook after the silence' });
  assert.ok(sent.verified);
  // Silences need a rule that exists, an end in the future, a reason and an author.
  const bad = await fetch(`${worker.url}/_bpm/api/silences`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_TOKEN}` },
    body: JSON.stringify({ rule: 'nope', duration: '1h', reason: 'x', author: 'y' }),
  });
  assert.equal(bad.status, 400);
  const anon = await fetch(`${worker.url}/_bpm/api/silences`, { method: 'POST', body: '{}' });
  assert.equal(anon.status, 401);
});
