// bench-e2e.mjs — end-to-end benchmark of bpm-edge on 127.0.0.1.
//
// Owns: starting the demo origin (child process) and two `wrangler dev`
// workers (counting on / BPM_COUNTING=off), driving a bounded closed-loop
// load of `GET /login` against (i) the origin directly, (ii) bpm-edge with
// counting, (iii) bpm-edge with counting off, and reporting req/s, p50/p99
// latency, the ratios measured in the same run, and Durable Object flushes /
// storage row-writes per 1,000 requests (from GET /_bpm/api/stats).
//
// Invariants:
// - Every load run is bounded in time (--duration, --warmup) and count
//   (MAX_REQUESTS_PER_RUN); only 127.0.0.1 is contacted.
// - Everything started here is stopped in `finally` (wrangler by process
//   group, the origin by pid), also on SIGINT/SIGTERM.
// - wrk is used when it is on PATH (or installed with --install-wrk, which
//   runs `apt-get install -y wrk`); otherwise the Node load generator below.
//
// Usage: node scripts/bench-e2e.mjs [--duration 10] [--warmup 2] [--concurrency 4]
//          [--path /login] [--tool auto|wrk|node] [--install-wrk]
// Writes bench-results/e2e.json.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT, BROWSER_UA, freePort, startWorker, waitFor, metricTotal, artifactDir } from '../tests/e2e/harness.mjs';

const MAX_REQUESTS_PER_RUN = 2_000_000;
const FLUSH_SETTLE_MS = 4_000;

function parseArgs(argv) {
  const o = { duration: 10, warmup: 2, concurrency: 4, path: '/login', tool: 'auto', installWrk: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => argv[++i];
    if (a === '--duration') o.duration = Number(val());
    else if (a === '--warmup') o.warmup = Number(val());
    else if (a === '--concurrency') o.concurrency = Number(val());
    else if (a === '--path') o.path = val();
    else if (a === '--tool') o.tool = val();
    else if (a === '--install-wrk') o.installWrk = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!(o.duration > 0 && o.duration <= 600)) throw new Error('--duration must be in (0, 600]');
  if (!(o.warmup >= 0 && o.warmup <= 60)) throw new Error('--warmup must be in [0, 60]');
  if (!(Number.isInteger(o.concurrency) && o.concurrency >= 1 && o.concurrency <= 256)) throw new Error('--concurrency must be 1..256');
  if (!['auto', 'wrk', 'node'].includes(o.tool)) throw new Error('--tool must be auto, wrk or node');
  return o;
}

function findWrk() {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const p = path.join(dir, 'wrk');
    if (fs.existsSync(p)) return p;
  }
  return fs.existsSync('/usr/bin/wrk') ? '/usr/bin/wrk' : null;
}

function pickTool(opts) {
  if (opts.tool === 'node') return { name: 'node' };
  let wrk = findWrk();
  if (!wrk && opts.installWrk) {
    console.log('installing wrk: apt-get install -y wrk');
    spawnSync('apt-get', ['install', '-y', 'wrk'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    wrk = findWrk();
  }
  if (wrk) return { name: 'wrk', bin: wrk };
  if (opts.tool === 'wrk') throw new Error('wrk not found (try --install-wrk)');
  return { name: 'node' };
}

// ---- load generators: both return { requests, errors, non2xx, seconds, rps, p50_ms, p90_ms, p99_ms } ----

const percentile = (sorted, q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null);

/** Closed loop: `concurrency` lanes, each sends the next request when the previous one is done. */
async function nodeLoad(url, { seconds, concurrency }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const target = new URL(url);
  const latencies = [];
  let errors = 0;
  let non2xx = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(seconds * 1e9));
  const once = () =>
    new Promise((resolve) => {
      const t0 = process.hrtime.bigint();
      const req = http.get(
        { host: target.hostname, port: target.port, path: target.pathname + target.search, agent, headers: { 'user-agent': BROWSER_UA } },
        (res) => {
          res.resume();
          res.on('end', () => {
            latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
            if (res.statusCode < 200 || res.statusCode >= 400) non2xx += 1;
            resolve();
          });
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.on('error', () => {
        errors += 1;
        resolve();
      });
    });
  async function lane() {
    while (process.hrtime.bigint() < end && latencies.length + errors < MAX_REQUESTS_PER_RUN) await once();
  }
  await Promise.all(Array.from({ length: concurrency }, lane));
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    errors,
    non2xx,
    seconds: elapsed,
    rps: latencies.length / elapsed,
    p50_ms: percentile(latencies, 0.5),
    p90_ms: percentile(latencies, 0.9),
    p99_ms: percentile(latencies, 0.99),
  };
}

function wrkUnit(v, unit) {
  const n = Number(v);
  return unit === 'us' ? n / 1000 : unit === 's' ? n * 1000 : unit === 'm' ? n * 60_000 : n;
}

async function wrkLoad(bin, url, { seconds, concurrency }) {
  const threads = Math.min(2, concurrency);
  const args = [`-t${threads}`, `-c${concurrency}`, `-d${Math.max(1, Math.round(seconds))}s`, '--latency', '-H', `User-Agent: ${BROWSER_UA}`, url];
  const out = await new Promise((resolve, reject) => {
    const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let s = '';
    p.stdout.on('data', (d) => (s += d));
    p.stderr.on('data', (d) => (s += d));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(s) : reject(new Error(`wrk exited ${code}:\n${s}`))));
  });
  const lat = (q) => {
    const m = out.match(new RegExp(`^\\s*${q}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm'));
    return m ? wrkUnit(m[1], m[2]) : null;
  };
  const total = out.match(/(\d+) requests in ([\d.]+)(us|ms|s|m)/);
  const sock = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const requests = total ? Number(total[1]) : 0;
  const secs = total ? wrkUnit(total[2], total[3]) / 1000 : seconds;
  return {
    requests,
    errors: sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
    non2xx: Number(out.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0),
    seconds: secs,
    rps: Number(out.match(/Requests\/sec:\s+([\d.]+)/)?.[1] ?? requests / secs),
    p50_ms: lat(50),
    p90_ms: lat(90),
    p99_ms: lat(99),
  };
}

// ---- processes ----

async function startOriginProcess(port) {
  const logFile = path.join(artifactDir('bench'), 'origin.log');
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, [path.join(ROOT, 'scripts', 'demo-origin.mjs'), '--port', String(port)], {
    stdio: ['ignore', fd, fd],
  });
  fs.closeSync(fd);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/__origin/stats`)).ok, { timeoutMs: 10_000, what: 'demo origin up' });
  return {
    url,
    pid: child.pid,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(3_000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

async function stats(worker) {
  const r = await worker.api('/_bpm/api/stats');
  if (r.status !== 200 || !r.body?.totals) return null;
  const t = r.body.totals;
  return { flushes: t.flushes, rows_written: t.rows_written, counted: t.requests };
}

const fmt = (x, d = 2) => (x === null || x === undefined || Number.isNaN(x) ? 'n/a' : Number(x).toFixed(d));

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const tool = pickTool(opts);
  const load = (url, seconds) =>
    tool.name === 'wrk' ? wrkLoad(tool.bin, url, { seconds, concurrency: opts.concurrency }) : nodeLoad(url, { seconds, concurrency: opts.concurrency });

  const cleanup = [];
  const onSignal = async () => {
    for (const f of [...cleanup].reverse()) await f().catch(() => {});
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const origin = await startOriginProcess(await freePort());
    cleanup.push(origin.stop);
    console.log(`origin ${origin.url}; starting workers (tool: ${tool.name})`);
    const counting = await startWorker({ originUrl: origin.url, label: 'bench-counting' });
    cleanup.push(counting.stop);
    const off = await startWorker({ originUrl: origin.url, vars: { BPM_COUNTING: 'off' }, label: 'bench-off' });
    cleanup.push(off.stop);

    const since = new Date();
    const targets = [
      { key: 'origin', label: '(i) origin direct', base: origin.url },
      { key: 'counting', label: '(ii) bpm-edge, counting', base: counting.url, worker: counting },
      { key: 'off', label: '(iii) bpm-edge, counting off', base: off.url },
    ];
    const results = {};
    let countingSent = 0;
    let statsBefore = null;
    let statsAfter = null;
    // The origin's own count of the path: wrk stops with requests in flight
    // that it does not count but the worker forwarded (and counted), so the
    // exactness check compares with what the origin received through (ii).
    const originSeen = async () => (await (await fetch(`${origin.url}/__origin/stats`)).json()).byPath?.[opts.path] ?? 0;
    let forwarded = 0;
    for (const t of targets) {
      const seenBefore = await originSeen();
      if (t.worker) statsBefore = await stats(t.worker);
      const url = `${t.base}${opts.path}`;
      let warm = { requests: 0 };
      if (opts.warmup > 0) warm = await load(url, opts.warmup);
      console.log(`${t.label}: warmed up (${warm.requests} requests), measuring ${opts.duration} s at concurrency ${opts.concurrency}`);
      const r = await load(url, opts.duration);
      results[t.key] = { label: t.label, url, warmup_requests: warm.requests, ...r };
      if (t.worker) {
        await sleep(FLUSH_SETTLE_MS);
        forwarded = (await originSeen()) - seenBefore;
        countingSent = forwarded;
        statsAfter = await stats(t.worker);
      }
    }

    // Durable Object cost of counting, per 1,000 requests through (ii).
    let storage = null;
    if (statsBefore && statsAfter && countingSent > 0) {
      const d = (k) => statsAfter[k] - statsBefore[k];
      storage = {
        requests: countingSent,
        flushes: d('flushes'),
        counted_by_shards: d('counted'),
        rows_written: d('rows_written'),
        flushes_per_1000_requests: (d('flushes') / countingSent) * 1000,
        rows_written_per_1000_requests: (d('rows_written') / countingSent) * 1000,
      };
    }
    // Exactness under load: every GET /login through (ii) counted once.
    let counted = null;
    if (opts.path === '/login') {
      counted = await waitFor(async () => {
        const n = (await metricTotal(counting, 'login_views', since)).total;
        return n >= countingSent ? n : false;
      }, { timeoutMs: 20_000, what: 'login_views reaches requests sent' }).catch(async () => (await metricTotal(counting, 'login_views', since)).total);
    }

    const base = results.origin;
    const ratios = {
      rps_counting_vs_origin: results.counting.rps / base.rps,
      rps_off_vs_origin: results.off.rps / base.rps,
      p50_counting_vs_origin: results.counting.p50_ms / base.p50_ms,
      p50_off_vs_origin: results.off.p50_ms / base.p50_ms,
      p99_counting_vs_origin: results.counting.p99_ms / base.p99_ms,
      p99_off_vs_origin: results.off.p99_ms / base.p99_ms,
      // The cost of counting alone: both sides pay wrangler dev's proxy overhead.
      rps_counting_vs_off: results.counting.rps / results.off.rps,
      p50_counting_vs_off: results.counting.p50_ms / results.off.p50_ms,
    };

    const lines = [
      `## bpm-edge end-to-end bench — GET ${opts.path}, ${opts.duration} s, concurrency ${opts.concurrency}, ${tool.name}`,
      '',
      '| target | requests | req/s | p50 ms | p90 ms | p99 ms | errors | non-2xx/3xx |',
      '|---|---:|---:|---:|---:|---:|---:|---:|',
      ...targets.map(({ key }) => {
        const r = results[key];
        return `| ${r.label} | ${r.requests} | ${fmt(r.rps, 0)} | ${fmt(r.p50_ms)} | ${fmt(r.p90_ms)} | ${fmt(r.p99_ms)} | ${r.errors} | ${r.non2xx} |`;
      }),
      '',
      `- req/s ratio (ii)/(i): ${fmt(ratios.rps_counting_vs_origin, 3)}; (iii)/(i): ${fmt(ratios.rps_off_vs_origin, 3)}`,
      `- p50 ratio (ii)/(i): ${fmt(ratios.p50_counting_vs_origin, 3)}; (iii)/(i): ${fmt(ratios.p50_off_vs_origin, 3)}`,
      `- p99 ratio (ii)/(i): ${fmt(ratios.p99_counting_vs_origin, 3)}; (iii)/(i): ${fmt(ratios.p99_off_vs_origin, 3)}`,
      `- counting on vs off, (ii)/(iii): req/s ${fmt(ratios.rps_counting_vs_off, 3)}, p50 ${fmt(ratios.p50_counting_vs_off, 3)}`,
      storage
        ? `- Durable Object flushes per 1,000 requests: ${fmt(storage.flushes_per_1000_requests)}; storage rows written per 1,000 requests: ${fmt(storage.rows_written_per_1000_requests)} (${storage.requests} requests, ${storage.flushes} flushes, ${storage.rows_written} rows)`
        : '- /_bpm/api/stats unavailable: no storage figures',
    ];
    if (counted !== null) {
      lines.push(`- login_views counted through (ii): ${counted} of ${countingSent} requests the origin received through it${counted === countingSent ? ' (exact)' : ' (MISMATCH)'}`);
    }
    console.log(`\n${lines.join('\n')}\n`);

    const out = {
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? null, node: process.version, platform: `${os.platform()} ${os.release()}` },
      params: { path: opts.path, duration_s: opts.duration, warmup_s: opts.warmup, concurrency: opts.concurrency, tool: tool.name },
      results,
      ratios,
      storage,
      counted_login_views: counted,
      requests_through_counting: countingSent,
    };
    fs.mkdirSync(path.join(ROOT, 'bench-results'), { recursive: true });
    fs.writeFileSync(path.join(ROOT, 'bench-results', 'e2e.json'), `${JSON.stringify(out, null, 2)}\n`);
    console.log('wrote bench-results/e2e.json');
  } finally {
    for (const f of [...cleanup].reverse()) await f().catch(() => {});
  }
}

main().catch((e) => {
  console.error(`bench-e2e: ${e.stack ?? e}`);
  process.exit(1);
});
