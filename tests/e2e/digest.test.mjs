// digest.test.mjs — end to end: six weeks of logins are backfilled at 10
// a minute, and the marketing views of the last week split by source
// (google, newsletter); GET /_bpm/api/digest previews the weekly digest
// the shipped bpm.toml would send (Monday 09:00 Europe/Berlin): the week
// before the latest Monday, local midnight to local midnight, with each
// BPM's exact count, the week before and the baseline, the top sources,
// and the Slack body within Slack's limits.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startOrigin, startWorker, postBackfill, minuteCsv, api, wallClock } from './harness.mjs';

const MIN = 60;
const NOW = Math.floor(Date.now() / 1000 / MIN) * MIN;
const FROM = NOW - 6 * 7 * 86400;

let origin;
let worker;

/** Weekday and time of `t` in Berlin (the shipped bpm.toml's zone). */
const berlin = (t) => wallClock(t, 'Europe/Berlin');

/** Hourly source splits of marketing_views over the last 10 days. */
function splitsCsv() {
  const lines = ['timestamp,metric,count,dim,value'];
  const start = Math.floor((NOW - 10 * 86400) / 3600) * 3600;
  for (let t = start; t < NOW - 3600; t += 3600) {
    const ts = new Date(t * 1000).toISOString().replace('.000Z', 'Z');
    lines.push(`${ts},marketing_views,5,source,google`);
    lines.push(`${ts},marketing_views,2,source,newsletter`);
  }
  return lines.join('\n') + '\n';
}

before(async () => {
  origin = await startOrigin({ port: 0 });
  worker = await startWorker({ originUrl: origin.url, label: 'digest' });
  await postBackfill(worker, minuteCsv({ logins: 10 }, ['logins'], FROM, NOW));
  await postBackfill(worker, splitsCsv());
});

after(async () => {
  await worker?.stop();
  await origin?.close();
});

test('the weekly digest preview has the local week, exact counts, baseline and top sources', async () => {
  const res = await api(`${worker.url}/_bpm/api/digest`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const d = res.body;
  assert.equal(d.type, 'bpm.digest');
  assert.equal(d.site, 'demo');
  const from = Date.parse(d.period.from) / 1000;
  const to = Date.parse(d.period.to) / 1000;
  // Monday 00:00 to Monday 00:00, Berlin time: 7 local days.
  assert.equal(berlin(from), 'Mon 00:00');
  assert.equal(berlin(to), 'Mon 00:00');
  assert.ok([167, 168, 169].includes((to - from) / 3600), `${d.period.from} .. ${d.period.to}`);
  assert.ok(to <= NOW && NOW - to < 8 * 86400, `the latest week, not ${d.period.to}`);
  assert.equal(d.id, `digest:demo:${from}`);
  assert.equal(d.previous.to, d.period.from);

  const logins = d.metrics.find((m) => m.metric === 'logins');
  assert.equal(logins.stage, 'retention');
  assert.equal(logins.value, ((to - from) / 60) * 10);
  const prevFrom = Date.parse(d.previous.from) / 1000;
  assert.equal(logins.previous, ((from - prevFrom) / 60) * 10);
  assert.ok(Math.abs(logins.baseline - 10080 * 10) <= 60 * 10, `baseline ${logins.baseline}`);
  // Every configured BPM is there, by stage.
  const names = (await api(`${worker.url}/_bpm/api/metrics`)).body.metrics.map((m) => m.name);
  assert.deepEqual(d.metrics.map((m) => m.metric).sort(), [...names].sort());

  const hours = (to - from) / 3600;
  const sources = Object.fromEntries(d.referrals.sources.map((s) => [s.value, s.now]));
  assert.deepEqual(sources, { google: 5 * hours, newsletter: 2 * hours });
  assert.match(d.html, /<h2>BPM digest: demo, Mon \d\d \w{3} \d{4} – Sun \d\d \w{3} \d{4}<\/h2>/);
  assert.match(d.html, /<li>Top sources: google \d+ \(/);
});

test('the Slack preview stays within Slack limits; bad queries and no token are refused', async () => {
  const res = await api(`${worker.url}/_bpm/api/digest?format=slack&period=previous`);
  assert.equal(res.status, 200);
  const blocks = res.body.blocks;
  assert.ok(blocks.length >= 4 && blocks.length <= 50, `${blocks.length} blocks`);
  assert.equal(blocks[0].type, 'header');
  assert.match(blocks[0].text.text, /^BPM digest: demo, /);
  for (const b of blocks) assert.ok((b.text?.text ?? '').length <= 3000);
  assert.ok(JSON.stringify(blocks).includes('*logins*'));

  // Nothing was sent (no receivers): `null`.
  const sent = await api(`${worker.url}/_bpm/api/digest?period=sent`);
  assert.equal(sent.status, 200);
  assert.equal(sent.body, null);
  const bad = await api(`${worker.url}/_bpm/api/digest?format=pdf`);
  assert.equal(bad.status, 400);
  assert.match(bad.body.error, /`format` is json or slack/);
  const anonymous = await fetch(`${worker.url}/_bpm/api/digest`);
  assert.equal(anonymous.status, 401);
  await anonymous.arrayBuffer();
});
