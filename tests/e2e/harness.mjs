// harness.mjs — shared helpers for the bpm-edge end-to-end tests and bench.
//
// Owns: starting/stopping `wrangler dev` (real workerd + local Durable
// Objects) in its own process group, free-port discovery, authenticated API
// calls, polling (`waitFor`), a bounded-concurrency runner and UTC time
// helpers. Re-exports the in-process demo origin.
//
// Invariants:
// - Every wrangler started here runs in its own process group (detached) and
//   is stopped by signalling that group only (never by name). Groups still
//   alive when this process exits are SIGKILLed synchronously.
// - `startWorker` resolves only once GET /_bpm/api/health answered 200; on
//   failure the wrangler group is already stopped and the error carries the
//   log tail.
// - Nothing here talks to anything but 127.0.0.1.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export { startOrigin } from '../../scripts/demo-origin.mjs';

/** Repository root, derived from this file's location (tests/e2e/harness.mjs). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ARTIFACTS = path.join(ROOT, 'test-artifacts');
export const TEST_TOKEN = 'test-token-0123456789';
export const BROWSER_UA =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';
export const GOOGLEBOT_UA = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
/** Top-K bound for dimension values in the shipped bpm.toml (the extra series is `other`). */
export const SHIPPED_TOP_K = 50;

const HEALTH_TIMEOUT_MS = 90_000;
const STOP_GRACE_MS = 10_000;

// Process groups started here and not yet known to have exited.
const liveGroups = new Set();
process.on('exit', () => {
  for (const pgid of liveGroups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

/** A TCP port on 127.0.0.1 that was free a moment ago (bind 0, read, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A fresh directory under test-artifacts/ (for --persist-to, logs, ...). */
export function artifactDir(prefix) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return fs.mkdtempSync(path.join(ARTIFACTS, `${prefix}-`));
}

function tail(file, lines = 60) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** A wrangler configuration's text without its [build] table (the bundles are built). */
export function withoutBuild(toml) {
  return toml.replace(/^\[build\]\n(?:(?!\[).*\n)*/m, '');
}

/**
 * The control worker's configuration for one run, written into `outDir`:
 * `dir`'s `wrangler.toml` with absolute paths, without its [build] (the
 * suite builds once) and with `vars` as its [vars] table. wrangler hands
 * `--var` to the first configuration (the visitor worker's) only, and a
 * generated file outside the checkout reads no `.dev.vars`.
 */
export function writeControlConfig(dir, outDir, vars, buildDir = 'build') {
  let toml = fs.readFileSync(path.join(dir, 'wrangler.toml'), 'utf8');
  const varsAt = toml.search(/^\[vars\]$/m);
  if (varsAt < 0) throw new Error(`${dir}/wrangler.toml: no [vars] table`);
  toml = toml.slice(0, varsAt);
  const absolute = (key) => {
    const re = new RegExp(`^${key} = "(.*)"$`, 'm');
    if (!re.test(toml)) throw new Error(`${dir}/wrangler.toml: no \`${key} = "..."\``);
    toml = toml.replace(re, (_, p) => `${key} = ${JSON.stringify(path.resolve(dir, p))}`);
  };
  absolute('main');
  absolute('directory');
  if (buildDir !== 'build') {
    toml = toml.replace(/^main = .*$/m, `main = ${JSON.stringify(path.join(ROOT, buildDir, 'control', 'index.js'))}`);
  }
  toml = withoutBuild(toml);
  toml += '[vars]\n';
  for (const [k, v] of Object.entries(vars)) toml += `${k} = ${JSON.stringify(String(v))}\n`;
  const file = path.join(outDir, 'wrangler.toml');
  fs.writeFileSync(file, toml);
  return file;
}

/**
 * The visitor worker's configuration for a build in `buildDir` (another
 * configuration than bpm.toml, see scripts/build-worker.sh), written into
 * `outDir`: its wrangler.toml with `main` in that build, without [build].
 */
function writeVisitorConfig(dir, outDir, buildDir) {
  let toml = fs.readFileSync(path.join(dir, 'workers', 'visitor', 'wrangler.toml'), 'utf8');
  if (!/^main = .*$/m.test(toml)) throw new Error('workers/visitor/wrangler.toml: no main');
  toml = toml.replace(/^main = .*$/m, `main = ${JSON.stringify(path.join(ROOT, buildDir, 'visitor', 'entry.mjs'))}`);
  const file = path.join(outDir, 'visitor.toml');
  fs.writeFileSync(file, withoutBuild(toml));
  return file;
}

/**
 * Starts `wrangler dev` in front of `originUrl`: the visitor worker (first
 * configuration, on `port`) and the control worker (second, reached through
 * the visitor's bindings), in one workerd.
 * Returns { url, port, inspectorPort, persistDir, logFile, pid, api(path, opts), fetch(path, init), logTail(n), reloads(), stop() }.
 */
export async function startWorker({
  originUrl,
  vars = {},
  persistDir,
  port,
  inspectorPort,
  token = TEST_TOKEN,
  label = 'worker',
  // Where the workers were built: `build` (bpm.toml), or another build
  // directory of scripts/build-worker.sh (BPM_BUILD_DIR).
  buildDir = 'build',
  // The directory holding wrangler.toml. BPM_E2E_WORKER_DIR lets the suite
  // run against another worker (e.g. a stand-in while the Rust one builds).
  cwd = process.env.BPM_E2E_WORKER_DIR ?? ROOT,
} = {}) {
  if (!originUrl) throw new Error('startWorker: originUrl is required');
  port ??= await freePort();
  inspectorPort ??= await freePort();
  // A state directory made here is deleted by stop() (miniflare keeps a
  // per-request trace store there: ~20 MB after 10,000 requests) unless
  // BPM_E2E_KEEP_STATE=1; a directory passed in belongs to the caller.
  const ownsPersistDir = !persistDir && process.env.BPM_E2E_KEEP_STATE !== '1';
  persistDir ??= artifactDir(`persist-${label}`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const logFile = path.join(ARTIFACTS, `wrangler-${label}-${port}-${Date.now()}.log`);

  // Counts reach storage within a second in tests, unless a test asks for
  // the shipped 20 s window (BPM_FLUSH_INTERVAL_MS: ''). Both workers get
  // every var.
  const allVars = Object.fromEntries(
    Object.entries({ ORIGIN_URL: originUrl, BPM_API_TOKEN: token, BPM_FLUSH_INTERVAL_MS: '1000', ...vars }).filter(
      ([, v]) => v !== '',
    ),
  );
  const controlConfig = writeControlConfig(cwd, artifactDir(`control-${label}`), allVars, buildDir);
  const visitorConfig =
    buildDir === 'build'
      ? path.join(cwd, 'workers', 'visitor', 'wrangler.toml')
      : writeVisitorConfig(cwd, path.dirname(controlConfig), buildDir);
  const args = [
    'dev',
    '--config', visitorConfig,
    '--config', controlConfig,
    '--ip', '127.0.0.1',
    '--port', String(port),
    '--inspector-port', String(inspectorPort),
    '--persist-to', persistDir,
    // Lets the visitor worker pass wrangler's scheduled-event endpoint on
    // to the control worker's cron (see workers/visitor/entry.mjs).
    '--compatibility-flags', 'service_binding_extra_handlers',
  ];
  for (const [k, v] of Object.entries(allVars)) args.push('--var', `${k}:${v}`);

  const bin = path.join(ROOT, 'node_modules', '.bin');
  const env = {
    ...process.env,
    PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}`,
    CI: 'true',
    WRANGLER_SEND_METRICS: 'false',
    CLOUDFLARE_CF_FETCH_ENABLED: 'false',
    BPM_SKIP_BUILD: '1',
    NO_COLOR: '1',
  };
  const logFd = fs.openSync(logFile, 'a');
  fs.writeSync(logFd, `$ wrangler ${args.join(' ')}\n`);
  const child = spawn(path.join(bin, 'wrangler'), args, {
    cwd,
    env,
    detached: true, // own process group: stop() signals -pid
    stdio: ['ignore', logFd, logFd],
  });
  fs.closeSync(logFd);
  const pid = child.pid;
  liveGroups.add(pid);

  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
  });
  child.once('error', (err) => {
    exited = { code: null, signal: null, error: err };
  });

  const url = `http://127.0.0.1:${port}`;

  // wrangler watches [build] watch_dir (src/) and reloads the worker when a
  // file there changes, even with BPM_SKIP_BUILD=1; a reload drops counts not
  // yet flushed. Count reloads so a surprising failure can be explained.
  const reloads = () => {
    try {
      return (fs.readFileSync(logFile, 'utf8').match(/Reloading local server/g) ?? []).length;
    } catch {
      return 0;
    }
  };

  async function stop() {
    if (!liveGroups.has(pid)) return exited;
    const n = reloads();
    if (n > 0) console.error(`harness: wrangler (${label}) reloaded the worker ${n} time(s) because files under src/ changed during the run; see ${logFile}`);
    const signalGroup = (sig) => {
      try {
        process.kill(-pid, sig);
      } catch {
        /* group already gone */
      }
    };
    signalGroup('SIGINT');
    const done = await Promise.race([exitPromise, sleep(STOP_GRACE_MS).then(() => null)]);
    // wrangler may exit before its workerd children: always sweep the group.
    signalGroup('SIGKILL');
    if (!done) await Promise.race([exitPromise, sleep(2_000)]);
    liveGroups.delete(pid);
    if (ownsPersistDir) fs.rmSync(persistDir, { recursive: true, force: true });
    fs.rmSync(path.dirname(controlConfig), { recursive: true, force: true });
    return exited;
  }

  const deadline = Date.now() + HEALTH_TIMEOUT_MS;
  let lastProblem = 'not started';
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`wrangler exited before becoming healthy (${JSON.stringify(exited)})\n--- ${logFile}\n${tail(logFile)}`);
    }
    try {
      const res = await fetch(`${url}/_bpm/api/health`, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
      lastProblem = `health answered ${res.status}`;
    } catch (e) {
      lastProblem = e.cause?.code ?? e.message;
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`wrangler not healthy after ${HEALTH_TIMEOUT_MS / 1000}s (${lastProblem})\n--- ${logFile}\n${tail(logFile)}`);
    }
    await sleep(250);
  }

  return {
    url,
    port,
    inspectorPort,
    persistDir,
    logFile,
    pid,
    /** GET url+path with the bearer token (token: null = no Authorization header). */
    api: (p, opts = {}) => api(`${url}${p}`, { token, ...opts }),
    /** fetch(url+path) with a browser UA, manual redirects and a 30 s timeout unless overridden. */
    fetch: (p, init = {}) =>
      fetch(`${url}${p}`, {
        redirect: 'manual',
        signal: AbortSignal.timeout(30_000),
        ...init,
        headers: { 'user-agent': BROWSER_UA, ...(init.headers ?? {}) },
      }),
    logTail: (lines) => tail(logFile, lines),
    reloads,
    stop,
  };
}

/**
 * A request to `url` (on 127.0.0.1) sent with `Host: host` (fetch cannot
 * set Host): how a deployment with several sites is reached under
 * `wrangler dev`. Resolves with { status, headers, text, body } (body: the
 * parsed JSON, if it is).
 */
export function hostRequest(url, host, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method, headers: { 'user-agent': BROWSER_UA, ...headers, host }, timeout: 15_000 },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode, headers: res.headers, text, body: json });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} (Host: ${host}) timed out`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/**
 * An API call (GET unless `method` says otherwise). `url` is absolute. token: string (default TEST_TOKEN) or
 * null for no Authorization header. Returns { status, headers, body, text }
 * where body is the parsed JSON (or undefined when the body is not JSON).
 */
export async function api(url, { token = TEST_TOKEN, headers = {}, method = 'GET', body } = {}) {
  const h = { accept: 'application/json', ...headers };
  if (token !== null) h.authorization = `Bearer ${token}`;
  const res = await fetch(url, { method, headers: h, body, signal: AbortSignal.timeout(15_000) });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, body: json, text };
}

/**
 * Polls `fn` until it returns a truthy value (which is returned). Thrown
 * errors count as "not yet". On timeout, throws with the last value/error.
 */
export async function waitFor(fn, { timeoutMs = 15_000, intervalMs = 200, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`waitFor(${what}) timed out after ${timeoutMs} ms; last: ${detail}`);
    }
    await sleep(intervalMs);
  }
}

/**
 * Runs fn(i) for i in [0, total) with at most `concurrency` in flight.
 * Resolves with the results in index order. On the first error no new
 * calls start; in-flight ones finish, then the first error is thrown.
 */
export async function runConcurrent(total, concurrency, fn) {
  const results = new Array(total);
  let next = 0;
  let firstError = null;
  async function lane() {
    while (firstError === null && next < total) {
      const i = next++;
      try {
        results[i] = await fn(i);
      } catch (e) {
        firstError ??= e;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, lane));
  if (firstError) throw firstError;
  return results;
}

// ---- UTC time helpers (RFC 3339, second precision, "Z") ----

const STEP_MS = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };

/** Floors `date` to the start of its UTC step (minute|hour|day). */
export function floorTo(date, step) {
  const ms = STEP_MS[step];
  if (!ms) throw new Error(`unknown step ${step}`);
  return new Date(Math.floor(new Date(date).getTime() / ms) * ms);
}
/** "2026-11-24T07:03:00Z" */
/** `Mon 09:05`: weekday, hour and minute of `t` (Unix seconds) in `timeZone`. */
export function wallClock(t, timeZone) {
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone,
    weekday: 'short',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(new Date(t * 1000));
  const get = (type) => parts.find((p) => p.type === type)?.value;
  return `${get('weekday')} ${get('hour')}:${get('minute')}`;
}

export const iso = (date) => new Date(date).toISOString().replace(/\.\d{3}Z$/, 'Z');
export const isoMinute = (date = new Date()) => iso(floorTo(date, 'minute'));
export const isoHour = (date = new Date()) => iso(floorTo(date, 'hour'));
export const isoDay = (date = new Date()) => iso(floorTo(date, 'day'));
export const addMs = (date, ms) => new Date(new Date(date).getTime() + ms);
export { STEP_MS };

/**
 * A [from, to) window that covers `since` up to now plus one extra step, for
 * `step`. Query strings built from it stay well under the 10,080-point cap.
 */
export function windowSince(since, step = 'minute') {
  return {
    from: iso(floorTo(since, step)),
    to: iso(addMs(floorTo(new Date(), step), 2 * STEP_MS[step])),
    step,
  };
}

/** Builds /_bpm/api/series?... from an object (undefined values skipped). */
export function seriesPath(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
  return `/_bpm/api/series?${q}`;
}

/** Sum of `count` over a no-`by` series answer. */
export const sumCount = (body) => body.points.reduce((a, p) => a + p.count, 0);
/** Sum of `bots` over a no-`by` series answer. */
export const sumBots = (body) => body.points.reduce((a, p) => a + (p.bots ?? 0), 0);
/** Sum of `total` over a `by=` series answer. */
export const sumSeries = (body) => body.series.reduce((a, s) => a + s.total, 0);

/**
 * Total count of `metric` since `since` (minute step), via the worker's API.
 * Throws if the API does not answer 200.
 */
export async function metricTotal(worker, metric, since) {
  const r = await worker.api(seriesPath({ metric, ...windowSince(since, 'minute') }));
  if (r.status !== 200) throw new Error(`series ${metric}: ${r.status} ${r.text}`);
  return { total: sumCount(r.body), bots: sumBots(r.body), body: r.body };
}

// ---- History for the alert tests ----

/**
 * Minute counts for `metrics` over [from, to) (Unix seconds) as the CSV
 * `bpm-edge replay` writes, each metric at its `rates` count a minute.
 */
export function minuteCsv(rates, metrics, from, to) {
  const lines = ['timestamp,metric,count'];
  for (let t = from; t < to; t += 60) {
    const ts = new Date(t * 1000).toISOString().replace('.000Z', 'Z');
    for (const m of metrics) lines.push(`${ts},${m},${rates[m]}`);
  }
  return lines.join('\n') + '\n';
}

/** POSTs a backfill CSV to `worker`; returns the answer, which must be 200. */
export async function postBackfill(worker, text, token = TEST_TOKEN, timeoutMs = 120_000) {
  const res = await fetch(`${worker.url}/_bpm/api/backfill`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'text/csv' },
    body: text,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const answer = await res.text();
  if (res.status !== 200) throw new Error(`backfill answered ${res.status}: ${answer}`);
  return JSON.parse(answer);
}

/**
 * One cron tick of `worker` at simulated time `t` (Unix seconds), through
 * wrangler's scheduled-event test endpoint; throws unless it ran cleanly.
 */
export async function cronTick(worker, t) {
  const res = await fetch(`${worker.url}/cdn-cgi/handler/scheduled?cron=*+*+*+*+*&time=${t * 1000}&format=json`, {
    signal: AbortSignal.timeout(60_000),
  });
  const body = await res.json();
  if (body.outcome !== 'ok') throw new Error(`cron tick at ${t}: ${JSON.stringify(body)}`);
}

/** GET /_bpm/api/alerts of `worker` (rules, deliveries, receivers); throws unless 200. */
export async function alertsOf(worker) {
  const r = await worker.api('/_bpm/api/alerts');
  if (r.status !== 200) throw new Error(`GET /api/alerts answered ${r.status}: ${r.text}`);
  return r.body;
}
