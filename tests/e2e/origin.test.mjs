// origin.test.mjs — the demo origin that the end-to-end tests and the bench
// rely on: its routes, overrides, stats and /echo. No wrangler needed.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { startOrigin } from './harness.mjs';

let origin;
before(async () => {
  origin = await startOrigin({ port: 0 });
});
after(async () => {
  await origin?.close();
});

const get = (p, init = {}) => fetch(`${origin.url}${p}`, { redirect: 'manual', ...init });
const login = (password) =>
  get('/login', { method: 'POST', body: `user=a&password=${password}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } });

test('site routes answer like a small shop', async () => {
  for (const p of ['/', '/pricing', '/blog/launch', '/blog/a/b', '/login', '/dashboard']) {
    const res = await get(p);
    assert.equal(res.status, 200, p);
    assert.match(res.headers.get('content-type'), /text\/html/);
    assert.match(await res.text(), /<!doctype html>/);
  }
  assert.equal((await get('/nope')).status, 404);
  assert.equal((await get('/signup', { method: 'POST', body: 'x=1' })).status, 201);
  const sub = await get('/billing/subscribe', { method: 'POST', body: '{}' });
  assert.equal(sub.status, 200);
  assert.equal((await sub.json()).ok, true);
});

test('POST /login redirects to /dashboard only with password demo', async () => {
  const ok = await login('demo');
  assert.deepEqual([ok.status, ok.headers.get('location')], [302, '/dashboard']);
  const bad = await login('x');
  assert.deepEqual([bad.status, bad.headers.get('location')], [302, '/login?error=1']);
});

test('overrides replace one route answer until cleared', async () => {
  const set = (mode) => fetch(`${origin.url}/__origin/mode`, { method: 'POST', body: JSON.stringify(mode) });
  assert.equal((await set({ path: '/login', method: 'POST', status: 200, location: null })).status, 200);
  assert.equal((await login('demo')).status, 200);
  assert.equal((await get('/login')).status, 200, 'GET /login is not overridden');
  await set({ path: '/login', method: 'POST', status: 302, location: '/elsewhere' });
  assert.equal((await login('demo')).headers.get('location'), '/elsewhere');
  await set({});
  assert.equal((await login('demo')).headers.get('location'), '/dashboard');
  assert.equal((await set({ path: '/x', status: 99 })).status, 400);
});

test('stats count site requests by path, not /__origin/*; reset clears them', async () => {
  await fetch(`${origin.url}/__origin/reset`, { method: 'POST' });
  await get('/login');
  await get('/login?error=1');
  await get('/pricing?utm_source=x');
  const stats = await (await fetch(`${origin.url}/__origin/stats`)).json();
  assert.deepEqual(stats, { total: 3, byPath: { '/login': 2, '/pricing': 1 } });
  assert.deepEqual(origin.stats(), stats);
});

test('/echo reports method, raw path, headers and body hash', async () => {
  const body = randomBytes(300_000);
  const res = await get('/echo/a%20b?x=%FF', { method: 'PATCH', body, headers: { 'x-bpm-test': 'yes' } });
  const echo = await res.json();
  assert.equal(echo.method, 'PATCH');
  assert.equal(echo.path, '/echo/a%20b?x=%FF');
  assert.equal(echo.headers['x-bpm-test'], 'yes');
  assert.equal(echo.bodyLength, body.length);
  assert.equal(echo.bodySha256, createHash('sha256').update(body).digest('hex'));
});
