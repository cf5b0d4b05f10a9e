// access.test.mjs — end to end: the dashboard's API behind Cloudflare Access.
// A stand-in for the Access team on 127.0.0.1 (access-team.mjs) publishes
// RSA keys at /cdn-cgi/access/certs; the test signs its own assertions and
// sends them the way Cloudflare does (the Cf-Access-Jwt-Assertion header,
// or the CF_Authorization cookie). Covers
// acceptance, every refusal (expiry, audience, issuer, tampering, foreign
// key, `alg`, garbage), the anti-forgery header on changes, the token still
// working beside Access, key rotation, a flood of invented key ids, and a
// team whose keys cannot be fetched.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { b64url, rsaKey, sign, startTeam, userClaims } from './access-team.mjs';
import { freePort, startOrigin, startWorker } from './harness.mjs';

const AUD = 'e2e0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e';
const USER = 'oncall@example.com';
/** The worker refetches keys for an unknown kid at most this often (KEYS_MIN_REFETCH_SECS). */
const MIN_REFETCH_MS = 5_000;

let origin;
let team;
let worker;
let current;
let lastFetchAt = 0;

const now = () => Math.floor(Date.now() / 1000);
const claims = (overrides = {}) => userClaims(team, AUD, USER, overrides);

before(async () => {
  origin = await startOrigin({ port: 0 });
  team = await startTeam();
  current = rsaKey('key-2026-10');
  team.published = [current];
  worker = await startWorker({
    originUrl: origin.url,
    label: 'access',
    vars: { BPM_ACCESS_TEAM_DOMAIN: team.url, BPM_ACCESS_AUD: `other-app, ${AUD}` },
  });
});

after(async () => {
  await worker?.stop();
  await team?.close();
  await origin?.close();
});

/** A call to `api/<path>` carrying an assertion in the header and no token. */
const asAccess = (path, jwt, { headers = {}, ...init } = {}) =>
  worker.api(`/_bpm/api/${path}`, { token: null, headers: { 'cf-access-jwt-assertion': jwt, ...headers }, ...init });

test('a valid Access assertion opens the API, from the header or the cookie', async () => {
  const before = team.fetches;
  const jwt = sign(current, claims());
  // Five at once on a fresh isolate: one fetches the keys, the others wait for it.
  const first = await Promise.all(Array.from({ length: 5 }, () => asAccess('metrics', jwt)));
  for (const metrics of first) {
    assert.equal(metrics.status, 200, metrics.text);
    assert.ok(metrics.body.metrics.some((m) => m.name === 'logins'), metrics.text);
  }
  assert.equal(team.fetches, before + 1, 'the first assertions fetched the team keys once');
  lastFetchAt = Date.now();

  const session = await asAccess('session', jwt);
  assert.equal(session.status, 200, session.text);
  assert.equal(session.body.via, 'access');
  assert.equal(session.body.name, USER);
  assert.equal(session.body.logout, '/cdn-cgi/access/logout');

  const byCookie = await fetch(`${worker.url}/_bpm/api/overview`, { headers: { cookie: `theme=dark; CF_Authorization=${jwt}` } });
  assert.equal(byCookie.status, 200, await byCookie.text());
  assert.equal(team.fetches, before + 1, 'later assertions reuse the fetched keys');
});

test('expired, early, foreign, tampered and unsigned assertions are refused', async () => {
  const stranger = rsaKey(current.kid); // same kid, key the team never published
  const valid = sign(current, claims());
  const [head, , sig] = valid.split('.');
  const tampered = `${head}.${b64url(claims({ email: 'intruder@example.com' }))}.${sig}`;
  const cases = [
    ['expired', sign(current, claims({ exp: now() - 120, iat: now() - 3720, nbf: now() - 3720 })), /expired/],
    ['not yet valid', sign(current, claims({ nbf: now() + 600 })), /not valid yet/],
    ['another application', sign(current, claims({ aud: ['someone-elses-app'] })), /another application/],
    ['another team', sign(current, claims({ iss: 'https://other-team.cloudflareaccess.com' })), /issued by/],
    ['tampered payload', tampered, /signature is invalid/],
    ['unpublished key', sign(stranger, claims()), /signature is invalid/],
    ['alg none', `${b64url({ alg: 'none', kid: current.kid })}.${b64url(claims())}.`, /not RS256/],
    ['HS256', sign(current, claims(), { alg: 'HS256' }), /not RS256/],
    ['garbage', 'not.a.jwt', /malformed/],
  ];
  for (const [what, jwt, message] of cases) {
    const r = await asAccess('overview', jwt);
    assert.equal(r.status, 401, `${what}: ${r.text}`);
    assert.match(r.body.error, message, what);
    const s = await asAccess('session', jwt);
    assert.equal(s.status, 401, `session, ${what}: ${s.text}`);
  }
});

test('a change authorised by Access needs the anti-forgery header', async () => {
  const jwt = sign(current, claims());
  const body = JSON.stringify({ rule: 'signups_drop', duration: '1h', reason: 'access e2e', author: USER });
  const forged = await asAccess('silences', jwt, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  assert.equal(forged.status, 401, forged.text);
  assert.match(forged.body.error, /X-BPM-CSRF/);

  const created = await asAccess('silences', jwt, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-bpm-csrf': '1' }, body,
  });
  assert.equal(created.status, 201, created.text);
  const listed = await asAccess('silences', jwt);
  assert.ok(listed.body.silences.some((s) => s.id === created.body.id && s.author === USER), listed.text);
  const removed = await asAccess(`silences/${created.body.id}`, jwt, { method: 'DELETE', headers: { 'x-bpm-csrf': '1' } });
  assert.equal(removed.status, 200, removed.text);
});

test('the API token still works beside Access, and a wrong token is not rescued by an assertion', async () => {
  const bearer = await worker.api(`/_bpm/api/metrics`);
  assert.equal(bearer.status, 200, bearer.text);
  const wrong = await asAccess('metrics', sign(current, claims()), { headers: { authorization: 'Bearer not-the-token-0123456789' } });
  assert.equal(wrong.status, 401, wrong.text);
  assert.match(wrong.body.error, /invalid API token/);
  const nothing = await fetch(`${worker.url}/_bpm/api/metrics`);
  assert.equal(nothing.status, 401);
  await nothing.arrayBuffer();
});

test('a rotated key is picked up, and invented key ids do not flood the team', async () => {
  const next = rsaKey('key-2026-11');
  team.published = [next, current];
  await sleep(Math.max(0, lastFetchAt + MIN_REFETCH_MS + 1_000 - Date.now()));
  const before = team.fetches;
  const rotated = await asAccess('metrics', sign(next, claims()));
  assert.equal(rotated.status, 200, rotated.text);
  assert.equal(team.fetches, before + 1, 'an unknown kid fetched the keys again');
  const old = await asAccess('metrics', sign(current, claims()));
  assert.equal(old.status, 200, 'the previous key stays valid while published');

  const bogus = await Promise.all(
    Array.from({ length: 20 }, (_, i) => asAccess('metrics', sign(rsaKey(`invented-${i}`), claims()))),
  );
  for (const r of bogus) {
    assert.equal(r.status, 401, r.text);
    assert.match(r.body.error, /unknown key/);
  }
  assert.ok(team.fetches - before <= 2, `20 invented kids cost ${team.fetches - before - 1} extra fetches`);
});

test('a team whose keys cannot be fetched gets 503, and the token still works', async () => {
  const closedPort = await freePort();
  const stranded = await startWorker({
    originUrl: origin.url,
    label: 'access-down',
    vars: { BPM_ACCESS_TEAM_DOMAIN: `http://127.0.0.1:${closedPort}`, BPM_ACCESS_AUD: AUD },
  });
  try {
    const jwt = sign(current, claims({ iss: `http://127.0.0.1:${closedPort}` }));
    const res = await fetch(`${stranded.url}/_bpm/api/metrics`, { headers: { 'cf-access-jwt-assertion': jwt } });
    const body = await res.json();
    assert.equal(res.status, 503, JSON.stringify(body));
    assert.match(body.error, /signing keys unavailable/);
    const bearer = await stranded.api(`/_bpm/api/metrics`);
    assert.equal(bearer.status, 200, bearer.text);
  } finally {
    await stranded.stop();
  }
});
