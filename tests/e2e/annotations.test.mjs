// annotations.test.mjs — end to end: a deploy annotation posted with curl,
// exactly as the README shows for a CI pipeline, is listed by the API;
// posting it again (a retried CI step) changes nothing, the same id with
// other content is a conflict, a bad one is refused with the reason,
// listing filters by range and kind, and DELETE removes it. Without a
// token nothing is read or written.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startOrigin, startWorker, TEST_TOKEN } from './harness.mjs';

let origin;
let worker;

/** The README's curl command: POST /_bpm/api/annotations with a JSON body. */
function curlPost(body) {
  const r = spawnSync('curl', [
    '-sS', '-w', '\n%{http_code}',
    '-H', `Authorization: Bearer ${TEST_TOKEN}`,
    '-H', 'content-type: application/json',
    '--data', JSON.stringify(body),
    `${worker.url}/_bpm/api/annotations`,
  ], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  const status = Number(lines.pop());
  return { status, body: JSON.parse(lines.join('\n')) };
}

const list = async (query = '') => {
  const r = await worker.api(`/_bpm/api/annotations${query}`);
  assert.equal(r.status, 200, r.text);
  return r.body.annotations;
};

const DEPLOY = {
  id: 'deploy-2f9c1e0-production',
  kind: 'deploy',
  text: 'Release 2026.12.1',
  version: '2f9c1e0',
  link: 'https://ci.example/runs/4711',
};

before(async () => {
  origin = await startOrigin({ port: 0 });
  worker = await startWorker({ originUrl: origin.url, label: 'annotations' });
});

after(async () => {
  await worker?.stop();
  await origin?.close();
});

test('a deploy posted with curl is listed, once, however often CI posts it', async () => {
  const before = Math.floor(Date.now() / 1000);
  const first = curlPost(DEPLOY);
  assert.equal(first.status, 201, JSON.stringify(first.body));
  assert.equal(first.body.id, DEPLOY.id);
  assert.equal(first.body.kind, 'deploy');
  assert.ok(first.body.at >= before - 1 && first.body.at <= before + 60, `at ${first.body.at}`);
  const again = curlPost(DEPLOY);
  assert.equal(again.status, 200);
  assert.deepEqual(again.body, first.body);
  const listed = await list();
  assert.deepEqual(listed, [first.body]);
  assert.equal(listed[0].version, '2f9c1e0');
  assert.match(listed[0].time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
});

test('other content under a taken id is a conflict, and bad annotations say why', async () => {
  const conflict = curlPost({ ...DEPLOY, text: 'something else' });
  assert.equal(conflict.status, 409);
  assert.match(conflict.body.error, /another annotation has the id/);
  const badKind = curlPost({ id: 'x', kind: 'release', text: 't' });
  assert.equal(badKind.status, 400);
  assert.match(badKind.body.error, /`kind` "release" must be deploy, incident, campaign or note/);
  const badLink = curlPost({ id: 'x', kind: 'note', text: 't', link: 'javascript:alert(1)' });
  assert.equal(badLink.status, 400);
  const unknownField = curlPost({ id: 'x', kind: 'note', text: 't', colour: 'red' });
  assert.equal(unknownField.status, 400);
  const anonymous = await fetch(`${worker.url}/_bpm/api/annotations`, { method: 'POST', body: JSON.stringify(DEPLOY) });
  assert.equal(anonymous.status, 401);
  const anonymousRead = await fetch(`${worker.url}/_bpm/api/annotations`);
  assert.equal(anonymousRead.status, 401);
});

// A campaign that started four days ago at 08:00 UTC, and that day's range.
const DAY = 86400;
const dayStart = Math.floor(Date.now() / 1000 / DAY) * DAY - 4 * DAY;
const iso = (t) => new Date(t * 1000).toISOString().replace('.000Z', 'Z');

test('listing filters by range and kind, and DELETE removes one', async () => {
  const campaign = curlPost({ id: 'black-friday', kind: 'campaign', text: 'Black Friday', time: iso(dayStart + 8 * 3600) });
  assert.equal(campaign.status, 201, JSON.stringify(campaign.body));
  const campaigns = await list(`?kind=campaign&from=${iso(dayStart)}&to=${iso(dayStart + DAY)}`);
  assert.deepEqual(campaigns.map((a) => a.id), ['black-friday']);
  assert.deepEqual((await list('?kind=deploy')).map((a) => a.id), [DEPLOY.id]);
  const bad = await worker.api('/_bpm/api/annotations?kind=launch');
  assert.equal(bad.status, 400);
  const del = await fetch(`${worker.url}/_bpm/api/annotations/black-friday`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${TEST_TOKEN}` },
  });
  assert.equal(del.status, 200);
  const gone = await fetch(`${worker.url}/_bpm/api/annotations/black-friday`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${TEST_TOKEN}` },
  });
  assert.equal(gone.status, 404);
  assert.deepEqual((await list(`?kind=campaign&from=${iso(dayStart)}`)).map((a) => a.id), []);
});
