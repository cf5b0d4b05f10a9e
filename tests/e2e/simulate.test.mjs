// simulate.test.mjs — end to end: ten days of logins are backfilled into
// the alert object's stored history, stopping two hours ago, and
// POST /_bpm/api/simulate judges the configured rule (and an edited copy)
// over that history, answering the episode, the state changes with their
// explaining window, and the rule as TOML; bad requests get 400/404.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startOrigin, startWorker, postBackfill, minuteCsv, TEST_TOKEN } from './harness.mjs';

const BUCKET = 300;
const T0 = Math.floor(Date.now() / 1000 / BUCKET) * BUCKET;
const STOP = T0 - 2 * 3600;

let origin;
let worker;

const simulate = (body) =>
  fetch(`${worker.url}/_bpm/api/simulate`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(120_000),
  });

before(async () => {
  origin = await startOrigin({ port: 0 });
  worker = await startWorker({ originUrl: origin.url, label: 'simulate' });
  await postBackfill(worker, minuteCsv({ logins: 10 }, ['logins'], T0 - 10 * 86400, STOP));
});

after(async () => {
  await worker?.stop();
  await origin?.close();
});

test('a rule simulated over stored history with a stopped metric answers the episode', async () => {
  const started = Date.now();
  const res = await simulate({ rule: 'logins_drop' });
  const ms = Date.now() - started;
  assert.equal(res.status, 200, await res.clone().text());
  const sim = await res.json();
  console.log(`simulate over ${Math.round((sim.to - sim.from) / 86400)} days of stored history: ${ms} ms`);
  assert.equal(sim.rule, 'logins_drop');
  assert.equal(sim.metric, 'logins');
  assert.equal(sim.episodes.length, 1, JSON.stringify(sim.episodes));
  const [episode] = sim.episodes;
  assert.ok(episode.fired >= STOP && episode.fired < STOP + 3600, `fired at ${episode.fired}, stop at ${STOP}`);
  assert.equal(episode.resolved, null);
  assert.equal(episode.lowest_ratio, 0);
  const firing = sim.transitions.find((t) => t.to === 'firing');
  assert.ok(firing?.window?.large_drop, JSON.stringify(firing));
  assert.match(sim.toml, /^\[\[alert\]\]\nname = "logins_drop"\nmetric = "logins"\n/);
});

test('an edited rule is simulated with its fields, and its TOML carries them', async () => {
  const res = await simulate({ rule: 'logins_drop', delta: 0.6, for: 4, windows: ['30m', '1h'] });
  assert.equal(res.status, 200);
  const sim = await res.json();
  assert.equal(sim.episodes.length, 1);
  assert.match(sim.toml, /\nwindows = \["30m", "1h"\]\ndelta = 0.6\n/);
  assert.match(sim.toml, /\nfor = 4\n/);
  // Needing four evaluations in a row fires later than the default two.
  const first = await (await simulate({ rule: 'logins_drop' })).json();
  assert.ok(sim.episodes[0].fired > first.episodes[0].fired, `${sim.episodes[0].fired} vs ${first.episodes[0].fired}`);
});

test('a bad simulation request is refused with the reason', async () => {
  const unknown = await simulate({ rule: 'nope' });
  assert.equal(unknown.status, 404);
  assert.match((await unknown.json()).error, /no \[\[alert\]\] named "nope"/);
  const range = await simulate({ rule: 'logins_drop', delta: 2 });
  assert.equal(range.status, 400);
  assert.match((await range.json()).error, /`delta` must be between 0.01 and 1/);
  const byRule = await simulate({ rule: 'referral_source_dark' });
  assert.equal(byRule.status, 400);
  const field = await simulate({ rule: 'logins_drop', deltaa: 0.5 });
  assert.equal(field.status, 400);
  const anonymous = await fetch(`${worker.url}/_bpm/api/simulate`, { method: 'POST', body: '{"rule":"logins_drop"}' });
  assert.equal(anonymous.status, 401);
});
