// explain.test.mjs — end to end: two weeks of marketing views split by
// referral source are backfilled (google two thirds, direct one third),
// google goes dark for the last hour while direct continues, evaluations
// are driven through the cron test endpoint, and the firing webhooks (JSON,
// Slack, Alertmanager) and the dashboard's data say where the drop happened:
// google, with every other source normal.
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
// Marketing views per minute by source; google stops an hour before T0.
const GOOGLE = 40;
const DIRECT = 20;
const DARK_FROM = T0 - 60 * MIN;

let origin;
let worker;
let sink;

/** Minute lines of marketing_views over [from, to): the total and its split by source. */
function marketingCsv(from, to) {
  const lines = ['timestamp,metric,count'];
  for (let t = from; t < to; t += MIN) {
    const ts = new Date(t * 1000).toISOString().replace('.000Z', 'Z');
    const google = t >= DARK_FROM && t < T0 + 3 * 3600 ? 0 : GOOGLE;
    lines.push(`${ts},marketing_views,${google + DIRECT}`);
    if (google > 0) lines.push(`${ts},marketing_views,${google},source,google`);
    lines.push(`${ts},marketing_views,${DIRECT},source,direct`);
  }
  return lines.join('\n') + '\n';
}

const tick = (t) => cronTick(worker, t);

before(async () => {
  origin = await startOrigin({ port: 0 });
  sink = await startWebhookSink({ verifiers: { '/ops': new Webhook(OPS_SECRET), '/am': new Webhook(AM_SECRET) } });
  worker = await startWorker({
    originUrl: origin.url,
    label: 'explain',
    vars: receiverVars(sink.url, { slack: true }),
  });
});

after(async () => {
  await worker?.stop();
  await sink?.close();
  await origin?.close();
});

test('one referral source goes dark: the firing alert names it, in every format and on the dashboard', async () => {
  // Two weeks of history, sent in day-sized pieces.
  for (let from = T0 - 14 * 86400; from < T0 + 3 * 3600; from += 86400) {
    const answer = await postBackfill(worker, marketingCsv(from, Math.min(from + 86400, T0 + 3 * 3600)));
    assert.equal(answer.batches_applied, answer.batches);
  }
  await tick(T0 + 60);
  await tick(T0 + 360);
  await tick(T0 + 420);
  const rules = (await alertsOf(worker)).alerts;
  const rule = rules.find((a) => a.rule === 'marketing_views_drop');
  assert.equal(rule.state, 'firing', JSON.stringify(rule));

  const ops = await waitFor(() => sink.delivered('/ops').find((g) => g.payload?.rule === 'marketing_views_drop'), {
    timeoutMs: 60_000,
    intervalMs: 500,
    what: 'the firing webhook',
  });
  assert.ok(ops.verified);
  const x = ops.payload.explanation;
  assert.ok(x, JSON.stringify(ops.payload));
  assert.match(x.text, /^source google −100% \(−[\d,]+\), all other sources normal$/, x.text);
  const google = x.findings.find((f) => f.value === 'google');
  assert.equal(google.kind, 'lost');
  assert.equal(google.dimension, 'source');
  assert.equal(google.observed, 0);
  assert.equal(google.expected, GOOGLE * ops.payload.window_seconds / 60);
  assert.ok(!x.findings.some((f) => f.value === 'direct'), 'the source that kept going is not blamed');

  const slack = await waitFor(() => sink.delivered('/slack').find((g) => JSON.stringify(g.payload).includes('marketing_views')), {
    timeoutMs: 30_000,
    what: 'the Slack message',
  });
  assert.match(JSON.stringify(slack.payload), /Where: source google −100%/);
  const am = await waitFor(() => sink.delivered('/am')[0], { timeoutMs: 30_000, what: 'the Alertmanager message' });
  assert.match(am.payload.alerts[0].annotations.explanation, /^source google −100%/);

  // The dashboard: the rule and Mission Control's card carry it.
  assert.match(rule.explanation.text, /^source google −100%/);
  const overview = await worker.api('/_bpm/api/overview');
  assert.equal(overview.status, 200, overview.text);
  const card = overview.body.metrics.find((m) => m.name === 'marketing_views');
  const shown = card.alerts.find((a) => a.rule === 'marketing_views_drop');
  assert.match(shown.drop_explanation.text, /^source google −100%/);
});
