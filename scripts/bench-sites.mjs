// bench-sites.mjs — what one more site costs: the shipped bpm.toml's site
// served 1, 2 and 4 times from one deployment ([[sites]] on site1.test,
// site2.test, ...), each built (scripts/build-worker.sh, BPM_BUILD_DIR
// build/bench-sites-N) and run under `wrangler dev`, reporting against the
// one-site build measured in the same run:
//  - the wasm of both workers, raw and gzip (the compiled config grows with
//    every site);
//  - the cron's scheduled handler, which ticks every site's alert object:
//    its wall time on a tick that judges a new 5-minute bucket in every
//    site and on one that does not, after 8 days of per-minute history for
//    every site (backfilled);
//  - the Durable Objects each site adds (by name: shards, salt, alerts).
// Locally every object runs in one workerd thread, so the ticks of N sites
// run one after another; deployed, each site's alert object is its own
// Durable Object and the ticks run side by side.
//
// Usage: node scripts/bench-sites.mjs [--sites 1,2,4] [--ticks 5]
// Writes bench-results/sites.json. Only 127.0.0.1 is contacted.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { ROOT, artifactDir, startOrigin, startWorker, cronTick, TEST_TOKEN } from '../tests/e2e/harness.mjs';

const MIN = 60;
const BUCKET = 300;
const DAYS = 8;
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const counts = arg('--sites', '1,2,4').split(',').map(Number);
const tickReps = Number(arg('--ticks', '5'));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const iso = (t) => new Date(t * 1000).toISOString().replace('.000Z', 'Z');

/** The shipped bpm.toml with its [site] table turned into `n` [[sites]]. */
function sitesConfig(n) {
  const shipped = fs.readFileSync(path.join(ROOT, 'bpm.toml'), 'utf8');
  const withoutSite = shipped.replace(/^\[site\]\n(?:(?!\[).*\n)*/m, '');
  let toml = withoutSite;
  for (let i = 1; i <= n; i++) {
    toml += `\n[[sites]]\nname = "site${i}"\nhosts = ["site${i}.test"]\ntimezone = "Europe/Berlin"\n`;
  }
  return toml;
}

function build(n) {
  const configPath = path.join(artifactDir(`bench-sites-config-${n}`), `sites-${n}.toml`);
  fs.writeFileSync(configPath, sitesConfig(n));
  const buildDir = `build/bench-sites-${n}`;
  const r = spawnSync('bash', ['scripts/build-worker.sh'], {
    cwd: ROOT,
    env: { ...process.env, BPM_CONFIG: configPath, BPM_BUILD_DIR: buildDir, BPM_SKIP_BUILD: '' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (r.status !== 0) throw new Error(`build of ${n} sites failed`);
  const size = (w) => {
    const bytes = fs.readFileSync(path.join(ROOT, buildDir, w, 'index_bg.wasm'));
    return { raw: bytes.length, gzip: zlib.gzipSync(bytes, { level: 9 }).length };
  };
  return { buildDir, visitor: size('visitor'), control: size('control') };
}

async function timed(fn) {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

async function measure(n, buildDir) {
  let origin;
  let worker;
  try {
    origin = await startOrigin({ port: 0 });
    worker = await startWorker({ originUrl: origin.url, label: `bench-sites-${n}`, buildDir });
    const metrics = (await (await fetch(`${worker.url}/_bpm/api/metrics?site=site1`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } })).json()).metrics;
    const counted = metrics.filter((m) => m.kind === 'metric').map((m) => m.name);
    const now = Math.floor(Date.now() / 1000);
    const t0 = Math.floor(now / BUCKET) * BUCKET;
    const end = t0 + 2 * 3600;
    for (let s = 1; s <= n; s++) {
      let lines = ['timestamp,metric,count'];
      const flush = async () => {
        const res = await fetch(`${worker.url}/_bpm/api/backfill?site=site${s}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${TEST_TOKEN}` },
          body: lines.join('\n') + '\n',
          signal: AbortSignal.timeout(300_000),
        });
        if (res.status !== 200) throw new Error(`backfill: ${res.status} ${await res.text()}`);
        lines = [];
      };
      for (let t = t0 - DAYS * 86400; t < end; t += MIN) {
        for (const [i, m] of counted.entries()) lines.push(`${iso(t)},${m},${5 + i + (Math.floor(t / 3600) % 24)}`);
        if (lines.length >= 100_000) await flush();
      }
      await flush();
    }
    // The first ticks load every site's series: left out.
    await cronTick(worker, t0 + 60);
    await cronTick(worker, t0 + 80);
    const ticks = { evaluating: [], idle: [] };
    for (let k = 1; k <= tickReps; k++) {
      const at = t0 + k * BUCKET + 60;
      ticks.evaluating.push(await timed(() => cronTick(worker, at)));
      ticks.idle.push(await timed(() => cronTick(worker, at + 20)));
    }
    return { evaluating_ms: Number(median(ticks.evaluating).toFixed(1)), idle_ms: Number(median(ticks.idle).toFixed(1)), rules: metrics.length };
  } finally {
    await worker?.stop();
    await origin?.close();
  }
}

async function main() {
  const rows = [];
  for (const n of counts) {
    console.log(`building and running ${n} site(s)...`);
    const built = build(n);
    const ticks = await measure(n, built.buildDir);
    rows.push({ sites: n, visitor: built.visitor, control: built.control, ...ticks });
    fs.rmSync(path.join(ROOT, built.buildDir), { recursive: true, force: true });
  }
  const base = rows[0];
  const shards = Number(/^shards = (\d+)/m.exec(fs.readFileSync(path.join(ROOT, 'bpm.toml'), 'utf8'))?.[1] ?? 4);
  console.log(`\n| sites | Durable Objects | visitor wasm raw / gzip | control wasm raw / gzip | cron tick, judging (ms) | cron tick, idle (ms) |`);
  console.log('|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const vs = (x, b) => (r === base ? '' : ` (${x - b >= 0 ? '+' : ''}${x - b})`);
    const times = (x, b) => (r === base ? `${x}` : `${x} (${(x / b).toFixed(2)}×)`);
    console.log(
      `| ${r.sites} | ${r.sites * (shards + 2)} | ${r.visitor.raw}${vs(r.visitor.raw, base.visitor.raw)} / ${r.visitor.gzip}${vs(r.visitor.gzip, base.visitor.gzip)} | ${r.control.raw}${vs(r.control.raw, base.control.raw)} / ${r.control.gzip}${vs(r.control.gzip, base.control.gzip)} | ${times(r.evaluating_ms, base.evaluating_ms)} | ${times(r.idle_ms, base.idle_ms)} |`,
    );
  }
  fs.mkdirSync(path.join(ROOT, 'bench-results'), { recursive: true });
  fs.writeFileSync(path.join(ROOT, 'bench-results', 'sites.json'), JSON.stringify({ shards_per_site: shards, rows }, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
