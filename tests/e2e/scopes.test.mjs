// scopes.test.mjs — end to end: scoped API tokens (BPM_API_TOKENS). A
// read-only token reads every view and may simulate, but cannot create a
// silence, annotate, backfill or delete (403); a read-write token can; an
// unknown token is refused (401); the admin token (BPM_API_TOKEN) keeps
// working as before.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startOrigin, startWorker, api } from './harness.mjs';

const VIEWER = 'viewer-token-0123456789';
const WRITER = 'writer-token-0123456789';
const TOKENS = {
  marketing: { token: VIEWER, sites: ['demo'], role: 'read' },
  ci: { token: WRITER, sites: ['*'], role: 'write' },
};

let origin;
let worker;

before(async () => {
  origin = await startOrigin({ port: 0 });
  worker = await startWorker({
    originUrl: origin.url,
    label: 'scopes',
    vars: { BPM_API_TOKENS: JSON.stringify(TOKENS) },
  });
});

after(async () => {
  await worker?.stop();
  await origin?.close();
});

const call = (token, path, method = 'GET', body) =>
  api(`${worker.url}/_bpm/api/${path}`, {
    token,
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
  });

test('a read-only token reads and simulates but changes nothing', async () => {
  for (const path of ['metrics', 'overview', 'alerts', 'silences', 'annotations', 'alerts/history']) {
    const res = await call(VIEWER, path);
    assert.equal(res.status, 200, `GET ${path}: ${res.text}`);
  }
  const sim = await call(VIEWER, 'simulate', 'POST', { rule: 'logins_drop', days: 1 });
  assert.equal(sim.status, 200, sim.text);
  const session = await call(VIEWER, 'session');
  assert.equal(session.body.via, 'scoped token');
  assert.equal(session.body.name, 'marketing');

  const changes = [
    ['silences', 'POST', { rule: '*', duration: '1h', reason: 'test', author: 'viewer' }],
    ['annotations', 'POST', { id: 'deploy-viewer', kind: 'deploy', text: 'x' }],
    ['backfill', 'POST', undefined],
    ['silences/sil_0123456789abcdef', 'DELETE', undefined],
    ['annotations/deploy-viewer', 'DELETE', undefined],
    ['receivers/ops/enable', 'POST', undefined],
  ];
  for (const [path, method, body] of changes) {
    const res = await call(VIEWER, path, method, body);
    assert.equal(res.status, 403, `${method} ${path}: ${res.status} ${res.text}`);
    assert.match(res.body.error, /"marketing" may read, not change/);
  }
  const { silences } = (await call(VIEWER, 'silences')).body;
  assert.equal(silences.length, 0, 'the refused silence was not created');
});

test('a read-write token changes, an unknown token is refused, the admin token still works', async () => {
  const created = await call(WRITER, 'annotations', 'POST', { id: 'deploy-ci-1', kind: 'deploy', text: 'release' });
  assert.equal(created.status, 201, created.text);
  const unknown = await call('not-a-token-0123456789', 'overview');
  assert.equal(unknown.status, 401);
  const admin = await call(undefined, 'annotations');
  assert.equal(admin.status, 200);
  assert.deepEqual(admin.body.annotations.map((a) => a.id), ['deploy-ci-1']);
});
