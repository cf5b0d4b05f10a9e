// digest_delivery.test.mjs — end to end: the weekly digest goes out once.
// With BPM_DIGEST_RECEIVERS=ops,marketing (overriding the shipped
// bpm.toml, which names none) and six weeks of logins backfilled, cron
// ticks are driven at the latest Monday 09:05 Europe/Berlin, twice at the
// same instant and once a minute later: the ops receiver on 127.0.0.1 gets
// exactly one digest, signed (verified with the official standardwebhooks
// library) under the period's id, with the week's exact login count, and
// the Slack receiver one Slack message; GET /api/digest?period=sent shows
// what was sent.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Webhook } from 'standardwebhooks';
import { startOrigin, startWorker, postBackfill, minuteCsv, cronTick, waitFor, api, wallClock } from './harness.mjs';
import { startWebhookSink, receiverVars, OPS_SECRET } from './webhook-sink.mjs';

const MIN = 60;
const NOW = Math.floor(Date.now() / 1000 / MIN) * MIN;

let origin;
let worker;
let sink;

/** Weekday and time of `t` in Berlin (the shipped bpm.toml's zone). */
const berlin = (t) => wallClock(t, 'Europe/Berlin');

/** The latest Monday 09:05 Berlin at or before now. */
function mondayMorning() {
  for (let t = NOW; t > NOW - 8 * 86400; t -= MIN) if (berlin(t) === 'Mon 09:05') return t;
  throw new Error('no Monday in the last 8 days');
}

before(async () => {
  origin = await startOrigin({ port: 0 });
  sink = await startWebhookSink({ verifiers: { '/ops': new Webhook(OPS_SECRET) } });
  worker = await startWorker({
    originUrl: origin.url,
    label: 'digest-delivery',
    vars: { ...receiverVars(sink.url, { slack: true }), BPM_DIGEST_RECEIVERS: 'ops,marketing' },
  });
  await postBackfill(worker, minuteCsv({ logins: 10 }, ['logins'], NOW - 6 * 7 * 86400, NOW));
});

after(async () => {
  await worker?.stop();
  await sink?.close();
  await origin?.close();
});

const digests = (path) => sink.got.filter((m) => m.path === path && (path !== '/ops' || m.payload?.type === 'bpm.digest'));

test('the digest due on Monday morning is delivered once, signed, even when the cron runs twice', async () => {
  const t = mondayMorning();
  await cronTick(worker, t);
  await cronTick(worker, t);
  await cronTick(worker, t + MIN);
  await waitFor(() => digests('/ops').length >= 1 && digests('/slack').length >= 1, {
    timeoutMs: 60_000,
    what: 'the digest at the ops and Slack receivers',
  });
  // Time for a duplicate to arrive, were one queued.
  await cronTick(worker, t + 2 * MIN);
  await sleep(3000);
  const ops = digests('/ops');
  assert.equal(ops.length, 1, JSON.stringify(ops.map((m) => m.id)));
  const [m] = ops;
  assert.equal(m.verified, true, 'signed with the receiver secret');
  const d = m.payload;
  const from = Date.parse(d.period.from) / 1000;
  const to = Date.parse(d.period.to) / 1000;
  assert.equal(m.id, `digest:demo:${from}`);
  assert.equal(d.id, m.id);
  assert.equal(berlin(to), 'Mon 00:00');
  assert.ok(t - to > 0 && t - to < 86400, 'the week that ended that Monday');
  const logins = d.metrics.find((x) => x.metric === 'logins');
  assert.equal(logins.value, ((to - from) / 60) * 10);
  assert.match(d.html, /<h2>BPM digest: demo, /);

  const slack = digests('/slack');
  assert.equal(slack.length, 1);
  assert.equal(slack[0].payload.blocks[0].type, 'header');

  const sent = await api(`${worker.url}/_bpm/api/digest?period=sent`);
  assert.equal(sent.status, 200, sent.text);
  assert.equal(sent.body.id, m.id);
});
