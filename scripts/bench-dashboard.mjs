// bench-dashboard.mjs — what the dashboard and the alert tick cost inside the
// worker, under `wrangler dev` on 127.0.0.1, each against a baseline
// measured in the same run.
//
// Owns: building a worker whose config is the shipped bpm.toml plus 12 more
// counted metrics (20 BPMs), backfilling 35 days of minute data for all of
// them, then timing from outside (workerd freezes the clock inside a
// request, so in-worker timers read 0):
//  - Mission Control's data (`GET /api/overview`, 24 h of 20 BPMs with their
//    baseline bands) against `GET /api/metrics` (same auth and routing, no
//    storage);
//  - the 30-day referral report against the same baseline;
//  - an alert tick that evaluates every rule (a new 5-minute bucket) against
//    a tick that does not (same bucket: refresh and notify only), so the
//    difference is one full evaluation of the shipped rules.
//
// Invariants: bounded (fixed repetitions, 127.0.0.1 only); everything started
// is stopped in `finally`; the normal build/ is rebuilt at the end.
//
// Usage: node scripts/bench-dashboard.mjs [--reps 15]
// Writes bench-results/dashboard.json.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, artifactDir, startOrigin, startWorker, TEST_TOKEN, withoutBuild } from '../tests/e2e/harness.mjs';

const MIN = 60;
const BUCKET = 300;
const EXTRA = 12;
const DAYS = 35;

const reps = Number(process.argv[process.argv.indexOf('--reps') + 1]) || 15;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const iso = (t) => new Date(t * 1000).toISOString().replace('.000Z', 'Z');

function build(configPath) {
  const env = { ...process.env, BPM_CONFIG: configPath ?? '' };
  if (!configPath) delete env.BPM_CONFIG;
  const r = spawnSync('bash', ['scripts/build-worker.sh'], { cwd: ROOT, env: { ...env, BPM_SKIP_BUILD: '' }, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('build failed');
}

/**
 * A worker directory for the 20-BPM build: its bundles and both workers'
 * wrangler configurations, without their [build] (the bundles are built).
 */
function benchWorkerDir() {
  const dir = artifactDir('bench-dashboard-worker');
  fs.cpSync(path.join(ROOT, 'build'), path.join(dir, 'build'), { recursive: true });
  const control = withoutBuild(fs.readFileSync(path.join(ROOT, 'wrangler.toml'), 'utf8')).replace(
    /directory = "www"/,
    `directory = ${JSON.stringify(path.join(ROOT, 'www'))}`,
  );
  fs.writeFileSync(path.join(dir, 'wrangler.toml'), control);
  const visitorDir = path.join(dir, 'workers', 'visitor');
  fs.mkdirSync(visitorDir, { recursive: true });
  const visitor = withoutBuild(fs.readFileSync(path.join(ROOT, 'workers', 'visitor', 'wrangler.toml'), 'utf8'));
  fs.writeFileSync(path.join(visitorDir, 'wrangler.toml'), visitor);
  return dir;
}

async function timed(fn) {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

async function get(url) {
  const res = await fetch(url, { headers: { authorization: `Bearer ${TEST_TOKEN}` }, signal: AbortSignal.timeout(60_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${text.slice(0, 300)}`);
  return text;
}

async function main() {
  const configPath = path.join(artifactDir('bench-dashboard-config'), 'bpm-20.toml');
  let toml = fs.readFileSync(path.join(ROOT, 'bpm.toml'), 'utf8');
  const stages = ['retention', 'activation', 'revenue', 'referral'];
  const extra = [];
  for (let i = 1; i <= EXTRA; i++) {
    extra.push(`bench_${i}`);
    toml += `\n[[metric]]\nname = "bench_${i}"\nstage = "${stages[i % 4]}"\ndescription = "Benchmark metric ${i}."\nowner = "bench"\nrunbook = "https://example.com/runbooks/bench"\nmatch = { method = "GET", path = "/bench/${i}" }\n`;
  }
  fs.writeFileSync(configPath, toml);
  console.log('building the 20-BPM worker...');
  build(configPath);
  const dir = benchWorkerDir();
  let origin;
  let worker;
  try {
    origin = await startOrigin({ port: 0 });
    worker = await startWorker({ originUrl: origin.url, label: 'bench-dashboard', cwd: dir });
    const metrics = JSON.parse(await get(`${worker.url}/_bpm/api/metrics`)).metrics;
    const counted = metrics.filter((m) => m.kind === 'metric').map((m) => m.name);
    const now = Math.floor(Date.now() / 1000);
    const t0 = Math.floor(now / BUCKET) * BUCKET;
    // History until well past the ticks below, so every evaluation sees
    // steady data and the rules stay ok.
    const end = t0 + 3 * 3600;
    let lines = ['timestamp,metric,count'];
    let total = 0;
    const flush = async () => {
      const res = await fetch(`${worker.url}/_bpm/api/backfill`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_TOKEN}` },
        body: lines.join('\n') + '\n',
        signal: AbortSignal.timeout(300_000),
      });
      if (res.status !== 200) throw new Error(`backfill: ${res.status} ${await res.text()}`);
      total += lines.length - 1;
      lines = [];
    };
    const started = performance.now();
    for (let t = t0 - DAYS * 86400; t < end; t += MIN) {
      for (const [i, m] of counted.entries()) lines.push(`${iso(t)},${m},${5 + i + (Math.floor(t / 3600) % 24)}`);
      if (lines.length >= 100_000) await flush();
    }
    await flush();
    const backfillS = (performance.now() - started) / 1000;
    console.log(`backfilled ${total} minute counts of ${metrics.length} BPMs in ${backfillS.toFixed(1)} s`);

    const base = `${worker.url}/_bpm/api`;
    const from30 = iso(Math.floor(now / 3600) * 3600 - 30 * 86400);
    const to30 = iso(Math.floor(now / 3600) * 3600 + 3600);
    const overviewBody = await get(`${base}/overview`);
    const bpms = JSON.parse(overviewBody).metrics.length;
    await get(`${base}/referrals?from=${from30}&to=${to30}`);
    const samples = { metrics: [], overview: [], referrals30d: [] };
    for (let i = 0; i < reps; i++) {
      samples.metrics.push(await timed(() => get(`${base}/metrics`)));
      samples.overview.push(await timed(() => get(`${base}/overview`)));
      samples.referrals30d.push(await timed(() => get(`${base}/referrals?from=${from30}&to=${to30}`)));
    }

    // Ticks: at t0 + k·5 min + 60 s a new bucket is judged; 20 s later the
    // same bucket is not. The first tick loads the series and is left out.
    const tick = async (t) => {
      const res = await fetch(`${worker.url}/cdn-cgi/handler/scheduled?cron=*+*+*+*+*&time=${t * 1000}&format=json`, { signal: AbortSignal.timeout(60_000) });
      const body = await res.json();
      if (body.outcome !== 'ok') throw new Error(`tick: ${JSON.stringify(body)}`);
    };
    await tick(t0 + 60);
    await tick(t0 + 80);
    const ticks = { evaluating: [], idle: [] };
    for (let k = 1; k <= reps; k++) {
      const at = t0 + k * BUCKET + 60;
      ticks.evaluating.push(await timed(() => tick(at)));
      ticks.idle.push(await timed(() => tick(at + 20)));
    }
    const alerts = JSON.parse(await get(`${base}/alerts`));
    const states = alerts.alerts.map((a) => `${a.rule}=${a.state}`).join(' ');

    const m = Object.fromEntries(Object.entries({ ...samples, ...ticks }).map(([k, v]) => [k, Number(median(v).toFixed(2))]));
    const out = {
      bpms,
      days_of_minute_data: DAYS,
      backfilled_minute_counts: total,
      backfill_seconds: Number(backfillS.toFixed(1)),
      overview_bytes: overviewBody.length,
      median_ms: m,
      overview_vs_metrics: Number((m.overview / m.metrics).toFixed(2)),
      referrals30d_vs_metrics: Number((m.referrals30d / m.metrics).toFixed(2)),
      evaluating_tick_vs_idle_tick: Number((m.evaluating / m.idle).toFixed(2)),
      evaluation_ms_estimate: Number((m.evaluating - m.idle).toFixed(2)),
      rule_states_after: states,
      reps,
    };
    console.log(`| request (median of ${reps}, ${bpms} BPMs, ${DAYS} d of minute data) | ms | vs /api/metrics |`);
    console.log('|---|---|---|');
    console.log(`| GET /api/metrics (baseline) | ${m.metrics} | 1.00 |`);
    console.log(`| GET /api/overview (Mission Control, 24 h) | ${m.overview} | ${out.overview_vs_metrics} |`);
    console.log(`| GET /api/referrals (30 d, compared) | ${m.referrals30d} | ${out.referrals30d_vs_metrics} |`);
    console.log(`| alert tick without evaluation (baseline) | ${m.idle} | — |`);
    console.log(`| alert tick evaluating ${alerts.alerts.length} rules | ${m.evaluating} | ${out.evaluating_tick_vs_idle_tick}× the idle tick; one evaluation ≈ ${out.evaluation_ms_estimate} ms |`);
    console.log(`rules after the ticks: ${states}`);
    fs.mkdirSync(path.join(ROOT, 'bench-results'), { recursive: true });
    fs.writeFileSync(path.join(ROOT, 'bench-results', 'dashboard.json'), `${JSON.stringify(out, null, 2)}\n`);
    console.log('wrote bench-results/dashboard.json');
  } finally {
    await worker?.stop();
    await origin?.close();
    console.log('rebuilding the normal worker...');
    build(null);
  }
}

main().catch((e) => {
  console.error(`bench-dashboard: ${e.stack ?? e.message}`);
  process.exit(1);
});
