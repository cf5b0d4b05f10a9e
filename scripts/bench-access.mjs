// bench-access.mjs — what verifying a Cloudflare Access JWT costs an API
// call, under `wrangler dev` on 127.0.0.1, against the bearer token measured
// in the same run.
//
// Owns: a stand-in Access team (tests/e2e/access-team.mjs), a worker with
// the Access vars pointing at it, and three timings from outside (workerd
// freezes the clock inside a request): `GET /api/metrics` with the bearer
// token (baseline: constant-time compare), with a valid Access JWT once the
// team's keys are cached (parse, claims, WebCrypto RSA verify), and the
// first JWT of a fresh isolate (adds fetching and importing the keys).
//
// Invariants: bounded (fixed repetitions, 127.0.0.1 only); everything started
// is stopped in `finally`. Uses the current build/ (run scripts/build-worker.sh
// first, as bench.sh does).
//
// Usage: node scripts/bench-access.mjs [--reps 200]
// Writes bench-results/access.json.

import fs from 'node:fs';
import path from 'node:path';
import { ROOT, startOrigin, startWorker, TEST_TOKEN } from '../tests/e2e/harness.mjs';
import { rsaKey, sign, startTeam, userClaims } from '../tests/e2e/access-team.mjs';

const AUD = 'bench-application-aud';
const reps = Number(process.argv[process.argv.indexOf('--reps') + 1]) || 200;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function timedGet(url, headers) {
  const t = performance.now();
  const res = await fetch(url, { headers });
  await res.arrayBuffer();
  const ms = performance.now() - t;
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
  return ms;
}

const origin = await startOrigin({ port: 0 });
const team = await startTeam();
team.published = [rsaKey('bench-key')];
const vars = { BPM_ACCESS_TEAM_DOMAIN: team.url, BPM_ACCESS_AUD: AUD };
let worker;
try {
  worker = await startWorker({ originUrl: origin.url, label: 'bench-access', vars });
  const url = `${worker.url}/_bpm/api/metrics`;
  const jwt = sign(team.published[0], userClaims(team, AUD, 'bench@example.com'));
  const bearer = { authorization: `Bearer ${TEST_TOKEN}` };
  const access = { 'cf-access-jwt-assertion': jwt };

  const coldMs = await timedGet(url, access); // first JWT: fetches and imports the keys
  for (let i = 0; i < 20; i++) {
    await timedGet(url, bearer);
    await timedGet(url, access);
  }
  const byToken = [];
  const byAccess = [];
  for (let i = 0; i < reps; i++) {
    byToken.push(await timedGet(url, bearer));
    byAccess.push(await timedGet(url, access));
  }
  const result = {
    reps,
    bearer_median_ms: median(byToken),
    access_median_ms: median(byAccess),
    access_over_bearer: median(byAccess) / median(byToken),
    access_first_request_ms: coldMs,
    certs_fetches: team.fetches,
  };
  console.log(`| GET /api/metrics, bearer token (baseline) | ${result.bearer_median_ms.toFixed(2)} ms median |`);
  console.log(`| same, Access JWT (keys cached) | ${result.access_median_ms.toFixed(2)} ms median | ${result.access_over_bearer.toFixed(2)}x |`);
  console.log(`| first Access JWT of the isolate (fetch + import keys) | ${coldMs.toFixed(1)} ms | certs fetched ${team.fetches}x over ${2 * reps + 41} requests |`);
  fs.mkdirSync(path.join(ROOT, 'bench-results'), { recursive: true });
  fs.writeFileSync(path.join(ROOT, 'bench-results', 'access.json'), `${JSON.stringify(result, null, 2)}\n`);
} finally {
  await worker?.stop();
  await team.close();
  await origin.close();
}
