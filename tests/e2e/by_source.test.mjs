// by_source.test.mjs — end to end: a `by = "source"` rule watches each top
// referral source of marketing_views on its own series. Two weeks of views
// by source are backfilled (google, bing, direct); for the last hour google
// is dark while bing takes over its traffic, so the total is flat. The
// shipped config's `referral_source_dark` rule fires for google only, its
// signed webhooks name the source (scope, labels, summary), and the total's
// own rule stays quiet.
//
// Time: as in alerts.test.mjs, evaluations run at the cron event's
// scheduled time around T0 (the current 5-minute bucket); delivery runs on
// real time.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Webhook } from 'standardwebhooks';
import { startOrigin, startWorker, waitFor, postBackfill, cronTick, alertsOf } from './harness.mjs';
import { startWebhookSink, receiverVars, OPS_SECRET, AM_SECRET } from './webhook-sink.mjs';

const MIN = 60;
const BUCKET = 300;
const T0 = Math.floor(Date.now() / 1000 / BUCKET) * BUCKET;
const DARK_FROM = T0 - 60 * MIN;
const END = T0 + 3 * 3600;
const RULE = 'referral_source_dark';

let origin;
let worker;
let sink;

/** Views per minute by source at `t`: google stops, bing doubles its share. */
function perSource(t) {
  const dark = t >= DARK_FROM;
  return { google: dark ? 0 : 40, bing: dark ? 60 : 20, direct: 20 };
}

/** Minute lines of marketing_views over [from, to): the total and its split by source. */
function marketingCsv(from, to) {
  const lines = ['timestamp,metric,count'];
  for (let t = from; t < to; t += MIN) {
    const ts = new Date(t * 1000).toISOString().replace('.000Z', 'Z');
    const split = perSource(t);
    const total = Object.values(split).reduce((a, b) => a + b, 0);
    lines.push(`${ts},marketing_views,${total}`);
    for (const [source, n] of Object.entries(split)) {
      if (n > 0) lines.push(`${ts},marketing_views,${n},source,${source}`);
    }
  }
  return lines.join('\n') + '\n';
}

before(async () => {
  origin = await startOrigin({ port: 0 });
  sink = await startWebhookSink({ verifiers: { '/ops': new Webhook(OPS_SECRET), '/am': new Webhook(AM_SECRET) } });
  worker = await startWorker({
    originUrl: origin.url,
    label: 'by-source',
    vars: receiverVars(sink.url, { slack: true }),
  });
});

after(async () => {
  await worker?.stop();
  await sink?.close();
  await origin?.close();
});

test('one referral source goes dark while the total is flat: the by-source rule fires for that source only', async () => {
  for (let from = T0 - 14 * 86400; from < END; from += 86400) {
    const answer = await postBackfill(worker, marketingCsv(from, Math.min(from + 86400, END)));
    assert.equal(answer.batches_applied, answer.batches);
  }
  for (const t of [T0 + 60, T0 + 360, T0 + 420]) await cronTick(worker, t);

  const alerts = (await alertsOf(worker)).alerts;
  const byValue = Object.fromEntries(alerts.filter((a) => a.rule === RULE).map((a) => [a.value, a]));
  assert.deepEqual(Object.keys(byValue).sort(), ['bing', 'direct', 'google'], JSON.stringify(alerts));
  assert.equal(byValue.google.state, 'firing', JSON.stringify(byValue.google));
  assert.equal(byValue.google.by, 'source');
  for (const other of ['bing', 'direct']) assert.equal(byValue[other].state, 'ok', JSON.stringify(byValue[other]));
  assert.notEqual(byValue.google.fingerprint, byValue.bing.fingerprint);
  const total = alerts.find((a) => a.rule === 'marketing_views_drop');
  assert.ok(!['firing', 'pending'].includes(total.state), `the total is flat: ${JSON.stringify(total)}`);

  // The signed JSON webhook names the source.
  const ops = await waitFor(() => sink.delivered('/ops').find((g) => g.payload?.rule === RULE), {
    timeoutMs: 60_000,
    intervalMs: 500,
    what: 'the by-source firing webhook',
  });
  assert.ok(ops.verified);
  assert.equal(ops.payload.status, 'firing');
  assert.deepEqual(ops.payload.scope, { dimension: 'source', value: 'google' });
  assert.equal(ops.payload.labels.source, 'google');
  assert.equal(ops.payload.labels.team, 'marketing');
  assert.equal(ops.payload.observed, 0);
  assert.equal(ops.payload.fingerprint, byValue.google.fingerprint);
  // The total did not drop (bing took google's views), so there is no
  // loss for the explanation to place: the scope is the "where".
  assert.equal(ops.payload.explanation, null);
  const firing = sink.delivered('/ops').filter((g) => g.payload?.status === 'firing');
  assert.deepEqual(firing.map((g) => `${g.payload.rule}:${g.payload.scope?.value}`), [`${RULE}:google`]);

  // Alertmanager tells the instances apart by label; Slack says it in words.
  const am = await waitFor(() => sink.delivered('/am').find((g) => g.payload?.alerts?.some((a) => a.labels.alertname === RULE)), {
    timeoutMs: 30_000,
    what: 'the Alertmanager message',
  });
  assert.ok(am.verified);
  const amAlert = am.payload.alerts.find((a) => a.labels.alertname === RULE);
  assert.equal(amAlert.labels.source, 'google');
  assert.match(amAlert.annotations.summary, /^marketing_views \(source google\) dropped 100%/);
  const slack = await waitFor(() => sink.delivered('/slack').find((g) => JSON.stringify(g.payload).includes(RULE)), {
    timeoutMs: 30_000,
    what: 'the Slack message',
  });
  assert.match(JSON.stringify(slack.payload), /marketing_views \(source google\)/);

  // The history says which value changed state.
  const history = await worker.api(`/_bpm/api/alerts/history?rule=${RULE}`);
  assert.equal(history.status, 200, history.text);
  const fired = history.body.history.find((h) => h.to === 'firing');
  assert.equal(fired.value, 'google', JSON.stringify(history.body.history));
});
