// bench-cpu.mjs — what bpm-edge costs per request on raw workerd (no wrangler
// proxy in front), against a six-line JS passthrough worker run the same way.
//
// Owns: a demo origin (child process), one `workerd serve` process per variant
// with a Cap'n Proto config generated under test-artifacts/bench-cpu-*/
// (passthrough JS worker; the built bpm-edge with BPM_COUNTING=off; with
// BPM_COUNTING=on; optionally the same two for a second build given with
// --compare DIR), a closed-loop HTTP client with a realistic mix of counted
// requests, and the report: workerd's own CPU time per request (from
// /proc/<pid>/task/*/schedstat around each batch, and over the whole run
// including background flushes and alarms), req/s and p50/p99 latency from
// the client, each also as the median of per-round ratios against the
// passthrough, plus the CPU µs added per request over the passthrough. The
// counting variants' totals are checked against the requests sent.
//
// Invariants:
// - Bounded: --rounds × variants × (--requests) requests plus --warmup per
//   variant (and a few stats calls); only 127.0.0.1 is contacted.
// - Variants are interleaved (A B C A B C …) so drift hits all alike.
// - Every process started here is stopped by its own PID in `finally` (and
//   SIGKILLed on exit if still alive); nothing is stopped by name.
// - Uses the current build/ (run scripts/build-worker.sh first, as bench.sh
//   does); builds it only when build/index.js is missing.
//
// Fresh isolates (--cold-starts N, default 5; 0 skips them): a new workerd
// per run, interleaved across variants, one request once its socket
// listens; a split build's control worker is a JS stand-in whose salt
// object is started first (a site's traffic keeps its one salt object
// running). Then one more process per variant under V8's
// --trace-wasm-compilation-times: how much WebAssembly start-up and the
// first request compile (deterministic, unlike CPU). --cold-only stops
// there; --cold-profile adds a sampling profile of each first request
// (workerd's inspector, `.cpuprofile` files); --v8-flags "..." passes V8
// flags to every workerd (e.g. --no-flush-liftoff-code).
//
// Usage: node scripts/bench-cpu.mjs [--requests 2000] [--rounds 5] [--concurrency 4]
//          [--warmup 300] [--settle-ms 1500] [--build build] [--compare DIR]
//          [--count-wait-s 30] [--cold-starts 5] [--cold-only] [--cold-profile]
//          [--v8-flags "..."]
// Writes bench-results/cpu.json (not with --cold-only).

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT, BROWSER_UA, TEST_TOKEN, freePort, artifactDir } from '../tests/e2e/harness.mjs';

const WORKERD = path.join(ROOT, 'node_modules', '@cloudflare', 'workerd-linux-64', 'bin', 'workerd');
const MAX_REQUESTS = 100_000;

function parseArgs(argv) {
  const o = { requests: 2000, rounds: 5, concurrency: 4, warmup: 300, settleMs: 1500, build: 'build', compare: null, countWaitS: 30, coldStarts: 5, coldOnly: false, coldProfile: false, v8Flags: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--requests') o.requests = Number(val());
    else if (a === '--rounds') o.rounds = Number(val());
    else if (a === '--concurrency') o.concurrency = Number(val());
    else if (a === '--warmup') o.warmup = Number(val());
    else if (a === '--settle-ms') o.settleMs = Number(val());
    else if (a === '--build') o.build = val();
    else if (a === '--compare') o.compare = val();
    else if (a === '--count-wait-s') o.countWaitS = Number(val());
    else if (a === '--cold-starts') o.coldStarts = Number(val());
    else if (a === '--cold-only') o.coldOnly = true;
    else if (a === '--cold-profile') o.coldProfile = true;
    else if (a === '--v8-flags') o.v8Flags = val().split(/\s+/).filter(Boolean);
    else throw new Error(`unknown argument ${a}`);
  }
  const int = (name, v, lo, hi) => {
    if (!(Number.isInteger(v) && v >= lo && v <= hi)) throw new Error(`--${name} must be an integer in ${lo}..${hi}`);
  };
  if (o.coldProfile && typeof WebSocket === 'undefined') {
    throw new Error('--cold-profile talks to the inspector over a WebSocket: run with `node --experimental-websocket` (Node 20) or Node 22+');
  }
  int('requests', o.requests, 10, MAX_REQUESTS);
  int('rounds', o.rounds, 1, 50);
  int('concurrency', o.concurrency, 1, 64);
  int('warmup', o.warmup, 0, MAX_REQUESTS);
  int('settle-ms', o.settleMs, 0, 30_000);
  int('count-wait-s', o.countWaitS, 0, 600);
  int('cold-starts', o.coldStarts, 0, 20);
  return o;
}

// ---- the request mix: every request is one the shipped bpm.toml counts ----

const FORM = 'user=demo&password=demo';
const MIX = [
  {
    name: 'GET / (google, utm)',
    method: 'GET',
    path: '/?utm_source=newsletter&utm_medium=email&utm_campaign=Spring%20Launch',
    headers: { referer: 'https://www.google.com/search?q=demo+shop' },
    expect: 200,
  },
  { name: 'GET /pricing (hn)', method: 'GET', path: '/pricing', headers: { referer: 'https://news.ycombinator.com/item?id=1' }, expect: 200 },
  { name: 'GET /login', method: 'GET', path: '/login', headers: { referer: 'http://127.0.0.1/pricing' }, expect: 200 },
  {
    name: 'POST /login → 302 /dashboard',
    method: 'POST',
    path: '/login',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(FORM.length), referer: 'http://127.0.0.1/login' },
    body: FORM,
    expect: 302,
  },
];

const percentile = (sorted, q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null);
const median = (xs) => {
  const s = xs.filter((x) => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return null;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Closed loop: `concurrency` lanes send `total` requests of the mix in turn. */
async function load(port, total, concurrency, seq) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies = [];
  let errors = 0;
  let unexpected = 0;
  let next = 0;
  const once = (i) =>
    new Promise((resolve) => {
      const r = MIX[i % MIX.length];
      // Distinct visitors (as CF-Connecting-IP on the edge), 200 of them.
      const ip = `198.51.100.${(seq + i) % 200}`;
      const t0 = process.hrtime.bigint();
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          method: r.method,
          path: r.path,
          agent,
          headers: { 'user-agent': BROWSER_UA, accept: 'text/html', 'cf-connecting-ip': ip, ...r.headers },
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
            if (res.statusCode !== r.expect) unexpected += 1;
            resolve();
          });
          res.on('error', () => {
            errors += 1;
            resolve();
          });
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.on('error', () => {
        errors += 1;
        resolve();
      });
      req.end(r.body);
    });
  const start = process.hrtime.bigint();
  async function lane() {
    while (next < total) await once(next++);
  }
  await Promise.all(Array.from({ length: concurrency }, lane));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    requests: total,
    errors,
    unexpected,
    seconds,
    rps: latencies.length / seconds,
    p50_ms: percentile(latencies, 0.5),
    p99_ms: percentile(latencies, 0.99),
  };
}

// ---- workerd's CPU time ----

/** Nanoseconds on CPU of all threads of `pid` (schedstat), and utime+stime in ns (stat). */
function cpuNs(pid) {
  const threads = threadCpuNs(pid);
  const sched = threads.main + threads.background;
  // Fields after the ")" of the comm: utime and stime are fields 14 and 15.
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]);
  const hz = 100; // USER_HZ on Linux
  return { sched, stat: (ticks * 1e9) / hz };
}

/**
 * CPU ns of `pid`'s threads split by name: `main` is workerd's own thread
 * (where the isolate runs a request), `background` the rest (V8's
 * compilation and GC helpers).
 */
function threadCpuNs(pid) {
  const out = { main: 0, background: 0 };
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const ns = Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      const name = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      out[name === 'workerd' ? 'main' : 'background'] += ns;
    } catch {
      /* thread gone */
    }
  }
  return out;
}

// ---- workerd configs ----

const capStr = (s) => JSON.stringify(String(s)); // Cap'n Proto text strings use C-style escapes, as JSON does
const wranglerCompatDate = () => {
  const m = fs.readFileSync(path.join(ROOT, 'wrangler.toml'), 'utf8').match(/^compatibility_date\s*=\s*"([^"]+)"/m);
  if (!m) throw new Error('wrangler.toml has no compatibility_date');
  return m[1];
};

/** storage.flush_interval_ms of bpm.toml (its default when absent). */
/** The shipped config's site name (names its salt object). */
function siteName() {
  const m = fs.readFileSync(path.join(ROOT, 'bpm.toml'), 'utf8').match(/^\[site\][^[]*?^\s*name\s*=\s*"([^"]+)"/m);
  return m ? m[1] : 'demo';
}

/** Starts the stand-in's salt object of a split build's fresh process. */
async function warmSaltObject(w) {
  if (!w.controlPort) return;
  const res = await fetch(`http://127.0.0.1:${w.controlPort}/warm?site=${encodeURIComponent(siteName())}`, { signal: AbortSignal.timeout(10_000) });
  await res.text();
  if (res.status !== 200) throw new Error(`warming the salt object answered ${res.status}`);
}

function flushIntervalMs() {
  const m = fs.readFileSync(path.join(ROOT, 'bpm.toml'), 'utf8').match(/^\s*flush_interval_ms\s*=\s*(\d+)/m);
  return m ? Number(m[1]) : 20_000;
}

const PASSTHROUGH_JS = `export default {
  async fetch(req, env) {
    const u = new URL(req.url), o = new URL(env.ORIGIN_URL);
    u.protocol = o.protocol; u.host = o.host;
    return fetch(new Request(u, req), { redirect: "manual" });
  },
};
`;

/**
 * A workerd config serving `workers` (the first is the `main` service on
 * `port`). A worker is { service, modules, vars, services: { BINDING:
 * serviceName }, doBindings: [{ binding, className, service }],
 * durableObjects: [className] }.
 */
function capnpConfig({ dir, port, workers, compatDate, v8Flags = [], controlPort = null }) {
  const rel = (p) => path.relative(dir, p);
  const worker = (w) => {
    const mods = w.modules.map((m) => `(name = ${capStr(m.name)}, ${m.kind} = embed ${capStr(rel(m.file))})`).join(',\n      ');
    const binds = [
      ...Object.entries(w.vars ?? {}).map(([k, v]) => `(name = ${capStr(k)}, text = ${capStr(v)})`),
      ...Object.entries(w.services ?? {}).map(([k, v]) => `(name = ${capStr(k)}, service = ${capStr(v)})`),
      ...(w.doBindings ?? []).map(
        (d) => `(name = ${capStr(d.binding)}, durableObjectNamespace = (className = ${capStr(d.className)}, serviceName = ${capStr(d.service)}))`,
      ),
    ].join(',\n      ');
    const classes = w.durableObjects ?? [];
    const dos = classes.length
      ? `durableObjectNamespaces = [
      ${classes.map((c) => `(className = ${capStr(c)}, uniqueKey = ${capStr(`bpm-bench-${c}`)}, enableSql = true)`).join(',\n      ')}
    ],
    durableObjectStorage = (localDisk = "do-disk"),`
      : '';
    return `(
  compatibilityDate = ${capStr(compatDate)},
  modules = [
      ${mods}
  ],
  bindings = [
      ${binds}
  ],
  ${dos}
  globalOutbound = "internet",
)`;
  };
  return `# Generated by scripts/bench-cpu.mjs; not checked in.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    ${workers.map((w) => `(name = ${capStr(w.service)}, worker = ${worker(w)})`).join(',\n    ')},
    (name = "internet", network = (allow = ["local", "private"])),
    (name = "do-disk", disk = (path = ${capStr(path.join(dir, 'do'))}, writable = true)),
  ],
  sockets = [(name = "http", address = ${capStr(`127.0.0.1:${port}`)}, http = (), service = "main")${controlPort ? `, (name = "control", address = ${capStr(`127.0.0.1:${controlPort}`)}, http = (), service = "control")` : ''}],${v8Flags.length ? `\n  v8Flags = [${v8Flags.map(capStr).join(', ')}],` : ''}
);
`;
}

const liveChildren = new Set();
process.on('exit', () => {
  for (const child of liveChildren) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => process.exit(130));

async function stopChild(child) {
  if (!liveChildren.has(child)) return;
  liveChildren.delete(child);
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  try {
    process.kill(child.pid, 'SIGTERM');
  } catch {
    return;
  }
  if ((await Promise.race([exited.then(() => true), sleep(3_000).then(() => false)])) === false) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    await Promise.race([exited, sleep(2_000)]);
  }
}

function spawnLogged(cmd, args, logFile, cwd) {
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(cmd, args, { cwd, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  liveChildren.add(child);
  return child;
}

async function waitHttp(port, p, child, logFile, what) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}):\n${fs.readFileSync(logFile, 'utf8').slice(-3000)}`);
    }
    try {
      const res = await fetch(`http://127.0.0.1:${port}${p}`, { signal: AbortSignal.timeout(2_000), redirect: 'manual' });
      await res.arrayBuffer();
      if (res.status < 500) return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error(`${what} not up after 30 s:\n${fs.readFileSync(logFile, 'utf8').slice(-3000)}`);
    await sleep(100);
  }
}

async function startOriginProcess(dir) {
  const port = await freePort();
  const logFile = path.join(dir, 'origin.log');
  const child = spawnLogged(process.execPath, [path.join(ROOT, 'scripts', 'demo-origin.mjs'), '--port', String(port)], logFile, ROOT);
  await waitHttp(port, '/__origin/stats', child, logFile, 'demo origin');
  return { url: `http://127.0.0.1:${port}`, child };
}

async function startWorkerd({ name, dir, workers, compatDate, probe = 'http', v8Flags = [], inspectorPort = null, lineBuffered = false, controlPort = null }) {
  const wdir = path.join(dir, name);
  fs.mkdirSync(path.join(wdir, 'do'), { recursive: true });
  const port = await freePort();
  const config = path.join(wdir, 'config.capnp');
  fs.writeFileSync(config, capnpConfig({ dir: wdir, port, workers, compatDate, v8Flags, controlPort }));
  const logFile = path.join(wdir, 'workerd.log');
  const args = ['serve', config, ...(inspectorPort ? [`--inspector-addr=127.0.0.1:${inspectorPort}`] : [])];
  // stdbuf: V8's tracing writes through stdio, block-buffered into a file.
  const child = lineBuffered ? spawnLogged('stdbuf', ['-oL', '-eL', WORKERD, ...args], logFile, wdir) : spawnLogged(WORKERD, args, logFile, wdir);
  if (probe === 'tcp') {
    await waitListening(port, child, logFile, `workerd (${name})`);
  } else {
    // The passthrough forwards this to the origin; bpm-edge answers it itself.
    const bpm = workers.some((w) => (w.durableObjects ?? []).length);
    await waitHttp(port, bpm ? '/_bpm/api/health' : '/__origin/stats', child, logFile, `workerd (${name})`);
  }
  return { name, port, child, pid: child.pid, logFile, inspectorPort, controlPort };
}

/** Waits until `port` accepts a TCP connection, without sending a request. */
async function waitListening(port, child, logFile, what) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}):\n${fs.readFileSync(logFile, 'utf8').slice(-3000)}`);
    }
    const open = await new Promise((resolve) => {
      const sock = net.connect({ host: '127.0.0.1', port }, () => {
        sock.destroy();
        resolve(true);
      });
      sock.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`${what} not listening after 30 s:\n${fs.readFileSync(logFile, 'utf8').slice(-3000)}`);
    await sleep(20);
  }
}

function modulesOf(dir, entry) {
  const js = path.join(dir, 'index.js');
  const wasm = path.join(dir, 'index_bg.wasm');
  for (const f of [js, wasm]) if (!fs.existsSync(f)) throw new Error(`missing ${f} (run scripts/build-worker.sh)`);
  // The first module is the entry: the visitor's entry.mjs when the build
  // has one, else worker-build's own index.js. index.js imports
  // "./index_bg.wasm" and "cloudflare:workers" (built in).
  return [
    ...(entry && fs.existsSync(path.join(dir, entry)) ? [{ name: entry, kind: 'esModule', file: path.join(dir, entry) }] : []),
    { name: 'index.js', kind: 'esModule', file: js },
    { name: 'index_bg.wasm', kind: 'wasm', file: wasm },
  ];
}

const CLASSES = ['CounterShard', 'SiteAlerts', 'DailySalt'];
const DO_BINDINGS = { CounterShard: 'BPM_COUNTER', SiteAlerts: 'BPM_ALERTS', DailySalt: 'BPM_SALT' };
const doBindings = (classes, service) => classes.map((c) => ({ binding: DO_BINDINGS[c], className: c, service }));

/** Whether `buildDir` holds the two-worker layout (visitor/ and control/). */
const isSplit = (buildDir) => fs.existsSync(path.join(buildDir, 'visitor', 'index.js'));

/**
 * The workerd services of a bpm-edge build: the visitor worker (`main`)
 * and the control worker, or the single worker of a build from before the
 * split.
 */
function bpmWorkers(buildDir, vars) {
  if (!isSplit(buildDir)) {
    return [{ service: 'main', modules: modulesOf(buildDir, 'entry.mjs'), vars, doBindings: doBindings(CLASSES, 'main'), durableObjects: CLASSES }];
  }
  return [
    {
      service: 'main',
      modules: modulesOf(path.join(buildDir, 'visitor'), 'entry.mjs'),
      vars,
      services: { BPM_CONTROL: 'control' },
      doBindings: doBindings(['CounterShard', 'DailySalt'], 'control'),
    },
    {
      service: 'control',
      modules: modulesOf(path.join(buildDir, 'control'), null),
      vars,
      doBindings: doBindings(CLASSES, 'control'),
      durableObjects: CLASSES,
    },
  ];
}

// A stand-in for the control worker in the cold-start measurement: on the
// edge its objects run in other isolates, billed apart from the visitor's
// request, so here they answer from memory (a fixed salt, an empty write).
const CONTROL_STANDIN_JS = `import { DurableObject } from 'cloudflare:workers';
const SALT = 'ab'.repeat(32);
export class DailySalt extends DurableObject {
  fetch(req) {
    const day = Number(new URL(req.url).searchParams.get('day'));
    return Response.json({ day, salt: SALT });
  }
}
export class CounterShard extends DurableObject {
  fetch() { return Response.json({}); }
}
export class SiteAlerts extends DurableObject {
  fetch() { return Response.json({}); }
}
export default {
  // GET /warm?site=NAME: starts the site's salt object, as a deployed site's
  // traffic keeps it running (one object serves all of the site's isolates).
  async fetch(req, env) {
    const url = new URL(req.url);
    if (url.pathname !== '/warm') return new Response('stand-in', { status: 404 });
    const salts = env.BPM_SALT;
    await (await salts.get(salts.idFromName(url.searchParams.get('site'))).fetch('https://daily-salt/salt?day=0')).text();
    return new Response('warm');
  },
};
`;

/** `workers` with the control worker's modules replaced by CONTROL_STANDIN_JS. */
function withControlStandin(workers, dir) {
  const standin = path.join(dir, 'control-standin.mjs');
  if (!fs.existsSync(standin)) fs.writeFileSync(standin, CONTROL_STANDIN_JS);
  const modules = [{ name: 'control-standin.mjs', kind: 'esModule', file: standin }];
  return workers.map((w) => (w.service === 'control' ? { ...w, modules } : w));
}

/**
 * A fresh workerd for `spec` as the fresh-isolate measurements want it: a
 * split build's control worker replaced by the stand-in, whose salt object
 * is started (through its own socket) before this returns. `options` go to
 * startWorkerd.
 */
async function startFresh(spec, name, dir, compatDate, options) {
  const workers = withControlStandin(spec.workers, dir);
  const controlPort = workers.some((x) => x.service === 'control') ? await freePort() : null;
  const w = await startWorkerd({ name, dir, workers, compatDate, probe: 'tcp', controlPort, ...options });
  try {
    await warmSaltObject(w);
  } catch (e) {
    await stopChild(w.child);
    throw e;
  }
  return w;
}

/** The counter shards' totals (GET /_bpm/api/stats), or null. */
async function shardTotals(port) {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/_bpm/api/stats`, {
      headers: { authorization: `Bearer ${TEST_TOKEN}` },
      signal: AbortSignal.timeout(15_000),
    });
    return (await res.json())?.totals ?? null;
  } catch {
    return null;
  }
}

/** Waits (at most `seconds`) until the shards counted `sent` requests; the last totals seen. */
async function waitCounted(port, sent, seconds) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const totals = await shardTotals(port);
    if ((totals && totals.requests >= sent) || Date.now() > deadline) return totals;
    await sleep(500);
  }
}

const fmt = (x, d = 1) => (x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : Number(x).toFixed(d));
const fmtInt = (x) => (x === null || !Number.isFinite(x) ? 'n/a' : Math.round(x).toLocaleString('en-US'));

// ---- fresh isolates ----

/** CPU ms after a response within which a first request's own work is read. */
const COLD_SETTLE_MS = 50;

/** One request of the mix on a new connection; resolves when its body ended. */
function oneRequest(port, r) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: r.method, path: r.path, agent: false, headers: { 'user-agent': BROWSER_UA, accept: 'text/html', 'cf-connecting-ip': '198.51.100.7', ...r.headers } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
        res.on('error', reject);
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(r.body);
  });
}

/**
 * What a fresh isolate costs: for each spec, `n` new workerd processes, each
 * sent one request of the mix once its socket listens. The split build's
 * control worker is replaced by CONTROL_STANDIN_JS.
 */
async function coldStarts(specs, dir, compatDate, n, v8Flags) {
  // Interleaved (every spec once, then again) so that drift in the
  // machine's load spreads evenly over the specs.
  const runsOf = specs.map(() => []);
  for (let i = 0; i < n; i++) {
    for (const [si, spec] of specs.entries()) {
      const runs = runsOf[si];
      const w = await startFresh(spec, `cold-${spec.name}-${i}`, dir, compatDate, { v8Flags });
      try {
        await sleep(300);
        const t0 = threadCpuNs(w.pid);
        const status = await oneRequest(w.port, MIX[0]);
        await sleep(COLD_SETTLE_MS);
        const t1 = threadCpuNs(w.pid);
        await sleep(1000);
        const t2 = threadCpuNs(w.pid);
        if (status !== MIX[0].expect) throw new Error(`${spec.label}: first request answered ${status}`);
        const all = (t) => t.main + t.background;
        runs.push({
          startup_ms: all(t0) / 1e6,
          first_request_ms: (all(t1) - all(t0)) / 1e6,
          first_request_main_ms: (t1.main - t0.main) / 1e6,
          first_request_and_after_ms: (all(t2) - all(t0)) / 1e6,
        });
      } finally {
        await stopChild(w.child);
        fs.rmSync(path.join(dir, w.name, 'do'), { recursive: true, force: true });
      }
    }
  }
  return specs.map((spec, si) => {
    const runs = runsOf[si];
    return {
      variant: spec.label,
      startup_ms: median(runs.map((r) => r.startup_ms)),
      first_request_ms: median(runs.map((r) => r.first_request_ms)),
      first_request_main_ms: median(runs.map((r) => r.first_request_main_ms)),
      first_request_and_after_ms: median(runs.map((r) => r.first_request_and_after_ms)),
      runs,
    };
  });
}

/** WebAssembly functions V8 compiled, and their body bytes, in `lines`. */
function compiledIn(lines) {
  let functions = 0;
  let bytes = 0;
  for (const line of lines) {
    const m = /^Compiled function .* bodysize (\d+)/.exec(line);
    if (!m) continue;
    functions += 1;
    bytes += Number(m[1]);
  }
  return { functions, bytes };
}

/**
 * How much WebAssembly each spec's fresh isolate compiles at start-up and
 * for its first request (V8's --trace-wasm-compilation-times, one process
 * per spec): V8 compiles a function when it is first called, so this is
 * the part of a first request's CPU that grows with the code it runs.
 * Deterministic, unlike the CPU figures.
 */
async function compiledByFirstRequest(specs, dir, compatDate, v8Flags) {
  const out = [];
  for (const spec of specs) {
    const flags = [...v8Flags, '--trace-wasm-compilation-times'];
    const w = await startFresh(spec, `compiles-${spec.name}`, dir, compatDate, { v8Flags: flags, lineBuffered: true });
    try {
      await sleep(300);
      const before = fs.readFileSync(w.logFile, 'utf8').split('\n');
      await oneRequest(w.port, MIX[0]);
      await sleep(COLD_SETTLE_MS + 200);
      const after = fs.readFileSync(w.logFile, 'utf8').split('\n');
      out.push({ variant: spec.label, startup: compiledIn(before), first_request: compiledIn(after.slice(before.length - 1)) });
    } finally {
      await stopChild(w.child);
      fs.rmSync(path.join(dir, w.name, 'do'), { recursive: true, force: true });
    }
  }
  return out;
}

/** The compiled-code table. */
function printCompiles(compiles) {
  if (!compiles.length) return;
  const kb = (b) => (b / 1024).toFixed(1);
  console.log('');
  console.log('| fresh isolate | WebAssembly compiled at start-up | by the first request |');
  console.log('|---|---|---|');
  for (const c of compiles) {
    console.log(`| ${c.variant} | ${c.startup.functions} functions, ${kb(c.startup.bytes)} KB | ${c.first_request.functions} functions, ${kb(c.first_request.bytes)} KB |`);
  }
  console.log('');
  console.log("Function bodies V8's baseline compiler (Liftoff) translated, from `--trace-wasm-compilation-times`, one fresh process per variant; code compiled at start-up is dropped before the first request runs (V8's Liftoff code flushing; with `--v8-flags --no-flush-liftoff-code` it is kept), so what that request calls is compiled again.");
}

/** The fresh-isolate table. */
function printCold(cold, opts) {
  if (!cold.length) return;
  console.log('');
  console.log("| fresh isolate | startup CPU ms | first request CPU ms | × passthrough | on workerd's thread | × passthrough | first request + 1 s after, CPU ms |");
  console.log('|---|---|---|---|---|---|---|');
  const coldBase = cold[0];
  for (const c of cold) {
    console.log(`| ${c.variant} | ${fmt(c.startup_ms, 1)} | ${fmt(c.first_request_ms, 2)} | ${fmt(c.first_request_ms / coldBase.first_request_ms, 1)}× | ${fmt(c.first_request_main_ms, 2)} | ${fmt(c.first_request_main_ms / coldBase.first_request_main_ms, 1)}× | ${fmt(c.first_request_and_after_ms, 2)} |`);
  }
  console.log('');
  console.log(`Medians over ${opts.coldStarts} fresh workerd processes each${opts.v8Flags.length ? ` (V8 flags: ${opts.v8Flags.join(' ')})` : ''}: startup = the process's CPU until its socket accepts a connection (no request sent); first request = CPU from sending \`${MIX[0].name}\` until ${COLD_SETTLE_MS} ms after its response, all threads and workerd's own thread (where the request runs; the rest is V8's background compilation). The split build's control worker is a JS stand-in here (its objects run in other isolates on the edge, billed apart); a single-worker build runs its own objects.`);
}

/** Sends one inspector command on `ws` and resolves with its result. */
function inspectorCall(ws, pending, method, params = {}) {
  const id = pending.next++;
  ws.send(JSON.stringify({ id, method, params }));
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}

/**
 * A sampling CPU profile (workerd's inspector, 50 µs) of each spec's first
 * request in a fresh isolate: written as `<name>.cpuprofile` (DevTools'
 * format) into the artifact directory, and the functions with the most
 * self time printed. The profiler's own overhead inflates every figure;
 * read it for shares, not for the totals the table reports.
 */
async function profileFirstRequests(specs, dir, compatDate, v8Flags) {
  for (const spec of specs) {
    const inspectorPort = await freePort();
    const w = await startFresh(spec, `profile-${spec.name}`, dir, compatDate, { v8Flags, inspectorPort });
    try {
      const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json/list`)).json();
      const target = targets.find((t) => String(t.id ?? t.title ?? '').includes('main')) ?? targets[0];
      const ws = new WebSocket(target.webSocketDebuggerUrl);
      await new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = reject;
      });
      const pending = new Map();
      pending.next = 1;
      ws.onmessage = (m) => {
        const msg = JSON.parse(m.data);
        const p = pending.get(msg.id);
        if (!p) return;
        pending.delete(msg.id);
        if (msg.error) p.reject(new Error(JSON.stringify(msg.error)));
        else p.resolve(msg.result);
      };
      await inspectorCall(ws, pending, 'Profiler.enable');
      await inspectorCall(ws, pending, 'Profiler.setSamplingInterval', { interval: 50 });
      await inspectorCall(ws, pending, 'Profiler.start');
      await oneRequest(w.port, MIX[0]);
      await sleep(COLD_SETTLE_MS);
      const { profile } = await inspectorCall(ws, pending, 'Profiler.stop');
      ws.close();
      const file = path.join(dir, `${spec.name}.cpuprofile`);
      fs.writeFileSync(file, JSON.stringify(profile));
      printProfile(spec.label, profile, path.relative(ROOT, file));
    } finally {
      await stopChild(w.child);
      fs.rmSync(path.join(dir, w.name, 'do'), { recursive: true, force: true });
    }
  }
}

/** The functions with the most self time in `profile`, and the total. */
function printProfile(label, profile, file) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const deltas = profile.timeDeltas ?? [];
  let total = 0;
  profile.samples.forEach((id, i) => {
    const us = deltas[i + 1] ?? 0;
    const f = byId.get(id)?.callFrame;
    const name = f ? f.functionName || `(anonymous ${path.basename(f.url || '')}:${f.lineNumber})` : '?';
    if (name === '(idle)') return;
    total += us;
    self.set(name, (self.get(name) ?? 0) + us);
  });
  console.log('');
  console.log(`${label}: first request, ${fmt(total / 1000, 2)} ms sampled (not idle), profile in ${file}`);
  console.log('| function | self ms | share |');
  console.log('|---|---|---|');
  for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 30)) {
    console.log(`| ${name.slice(0, 100)} | ${fmt(us / 1000, 2)} | ${fmt((100 * us) / total, 1)}% |`);
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (process.platform !== 'linux') throw new Error('bench-cpu reads /proc: Linux only');
  if (!fs.existsSync(WORKERD)) throw new Error(`missing ${WORKERD} (run scripts/install-toolchain.sh)`);
  const buildDir = path.resolve(ROOT, opts.build);
  if (opts.build === 'build' && !isSplit(buildDir)) {
    const r = spawnSync('bash', [path.join(ROOT, 'scripts', 'build-worker.sh')], { cwd: ROOT, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('build failed');
  }
  const compatDate = wranglerCompatDate();
  const dir = artifactDir('bench-cpu');
  fs.writeFileSync(path.join(dir, 'passthrough.js'), PASSTHROUGH_JS);

  const started = [];
  let origin;
  try {
    origin = await startOriginProcess(dir);
    const common = { ORIGIN_URL: origin.url, BPM_API_TOKEN: TEST_TOKEN };
    const passthrough = [{ service: 'main', modules: [{ name: 'passthrough.js', kind: 'esModule', file: path.join(dir, 'passthrough.js') }], vars: { ORIGIN_URL: origin.url } }];
    const specs = [
      { name: 'passthrough', label: 'JS passthrough (baseline)', workers: passthrough },
      { name: 'off', label: 'bpm-edge, counting off', workers: bpmWorkers(buildDir, { ...common, BPM_COUNTING: 'off' }), cold: true },
      { name: 'on', label: 'bpm-edge, counting on', workers: bpmWorkers(buildDir, { ...common, BPM_COUNTING: 'on' }), counts: true, cold: true },
    ];
    if (opts.compare) {
      const cmp = path.resolve(ROOT, opts.compare);
      const tag = opts.compare;
      specs.push(
        { name: 'off-compare', label: `bpm-edge (${tag}), counting off`, workers: bpmWorkers(cmp, { ...common, BPM_COUNTING: 'off' }) },
        { name: 'on-compare', label: `bpm-edge (${tag}), counting on`, workers: bpmWorkers(cmp, { ...common, BPM_COUNTING: 'on' }), counts: true, cold: true },
      );
    }
    const cold = opts.coldStarts > 0 ? await coldStarts(specs.filter((v) => v.name === 'passthrough' || v.cold), dir, compatDate, opts.coldStarts, opts.v8Flags) : [];
    if (opts.coldProfile) await profileFirstRequests(specs.filter((v) => v.cold), dir, compatDate, opts.v8Flags);
    const compiles = opts.coldStarts > 0 ? await compiledByFirstRequest(specs.filter((v) => v.cold), dir, compatDate, opts.v8Flags) : [];
    if (opts.coldOnly) {
      printCold(cold, opts);
      printCompiles(compiles);
      return;
    }
    const variants = [];
    for (const spec of specs) {
      const w = await startWorkerd({ ...spec, dir, compatDate, v8Flags: opts.v8Flags });
      started.push(w);
      variants.push({ ...spec, ...w, rounds: [], sent: 0 });
    }
    console.log(`workerd ${spawnSync(WORKERD, ['--version']).stdout.toString().trim()}, compatibilityDate ${compatDate}; ${opts.rounds} rounds × ${opts.requests} requests × ${variants.length} variants, concurrency ${opts.concurrency}; configs in ${path.relative(ROOT, dir)}/`);

    let seq = 0;
    if (opts.warmup > 0) {
      for (const v of variants) {
        await load(v.port, opts.warmup, opts.concurrency, seq);
        v.sent += opts.warmup;
        seq += opts.warmup;
      }
      await sleep(opts.settleMs);
    }
    for (const v of variants) v.cpuStart = cpuNs(v.pid).sched;
    for (let round = 0; round < opts.rounds; round++) {
      for (const v of variants) {
        const before = cpuNs(v.pid);
        const r = await load(v.port, opts.requests, opts.concurrency, seq);
        // Let the isolate finish what these requests scheduled (wait_until)
        // before reading the CPU again; flushes held for the window are in
        // the whole-run figure.
        await sleep(opts.settleMs);
        const after = cpuNs(v.pid);
        v.sent += opts.requests;
        seq += opts.requests;
        v.rounds.push({
          ...r,
          cpu_us_per_req: (after.sched - before.sched) / 1e3 / opts.requests,
          cpu_us_per_req_stat: (after.stat - before.stat) / 1e3 / opts.requests,
        });
      }
    }

    const base = variants[0];
    const ratio = (v, key) => median(v.rounds.map((r, i) => r[key] / base.rounds[i][key]));
    // Counts wait in the isolate for up to flush_interval_ms (bpm.toml)
    // before the last batch is sent: wait that long, then read each
    // process's CPU once more (the whole run's cost, background flushes and
    // alarms included), then check the counts.
    const tailMs = Math.min(60_000, flushIntervalMs() + 2_000);
    await sleep(tailMs);
    for (const v of variants) v.cpuEnd = cpuNs(v.pid).sched;
    const measured = opts.rounds * opts.requests;
    const whole = (v) => (v.cpuEnd - v.cpuStart) / 1e3 / measured;
    const totals = [];
    for (const v of variants) totals.push(v.counts ? await waitCounted(v.port, v.sent, opts.countWaitS) : null);
    const rows = variants.map((v, vi) => ({
      variant: v.label,
      cpu_us_per_req: median(v.rounds.map((r) => r.cpu_us_per_req)),
      cpu_us_per_req_stat: median(v.rounds.map((r) => r.cpu_us_per_req_stat)),
      cpu_ratio: ratio(v, 'cpu_us_per_req'),
      added_cpu_us_per_req: median(v.rounds.map((r, i) => r.cpu_us_per_req - base.rounds[i].cpu_us_per_req)),
      whole_run_cpu_us_per_req: whole(v),
      whole_run_added_cpu_us_per_req: whole(v) - whole(base),
      rps: median(v.rounds.map((r) => r.rps)),
      rps_ratio: ratio(v, 'rps'),
      p50_ms: median(v.rounds.map((r) => r.p50_ms)),
      p50_ratio: ratio(v, 'p50_ms'),
      p99_ms: median(v.rounds.map((r) => r.p99_ms)),
      p99_ratio: ratio(v, 'p99_ms'),
      errors: v.rounds.reduce((a, r) => a + r.errors, 0),
      unexpected_status: v.rounds.reduce((a, r) => a + r.unexpected, 0),
      sent: v.sent,
      counted: totals[vi]?.requests ?? null,
      shard_totals: totals[vi],
      rounds: v.rounds,
    }));

    console.log('');
    console.log('| variant | CPU µs/req | × passthrough | added µs/req | whole run: CPU µs/req (added) | req/s | × | p50 ms | × | p99 ms | × |');
    console.log('|---|---|---|---|---|---|---|---|---|---|---|');
    for (const r of rows) {
      const isBase = r === rows[0];
      console.log(
        `| ${r.variant} | ${fmt(r.cpu_us_per_req, 0)} | ${fmt(r.cpu_ratio, 2)}× | ${isBase ? '–' : fmt(r.added_cpu_us_per_req, 0)} | ${fmt(r.whole_run_cpu_us_per_req, 0)}${isBase ? '' : ` (+${fmt(r.whole_run_added_cpu_us_per_req, 0)})`} | ${fmtInt(r.rps)} | ${fmt(r.rps_ratio, 2)}× | ${fmt(r.p50_ms, 2)} | ${fmt(r.p50_ratio, 2)}× | ${fmt(r.p99_ms, 2)} | ${fmt(r.p99_ratio, 2)}× |`,
      );
    }
    console.log('');
    console.log(`Medians over ${opts.rounds} interleaved rounds; ratios are medians of per-round ratios against the passthrough of the same round. CPU = workerd's threads (schedstat) from the first request of a batch until ${opts.settleMs} ms after its last response; whole run = from the first measured batch until ${tailMs / 1000} s after the last (background flushes and alarms included), over the ${measured} measured requests. Mix: ${MIX.map((m) => m.name).join(', ')}; all counted by the shipped bpm.toml.`);
    for (const r of rows) {
      const notes = [];
      if (r.errors) notes.push(`${r.errors} transport errors`);
      if (r.unexpected_status) notes.push(`${r.unexpected_status} unexpected statuses`);
      if (r.shard_totals) {
        const t = r.shard_totals;
        const per = (x) => (typeof x === 'number' ? x.toFixed(4) : 'n/a');
        notes.push(`counted ${t.requests} of ${r.sent} requests sent; ${per(t.do_requests_per_request)} Durable Object requests and ${per(t.rows_written_per_request)} rows written per counted request`);
      }
      if (notes.length) console.log(`- ${r.variant}: ${notes.join(', ')}`);
    }
    printCold(cold, opts);
    printCompiles(compiles);
    fs.mkdirSync(path.join(ROOT, 'bench-results'), { recursive: true });
    const result = { workerd: WORKERD, compatibility_date: compatDate, options: opts, mix: MIX.map((m) => m.name), rows, cold, compiles };
    fs.writeFileSync(path.join(ROOT, 'bench-results', 'cpu.json'), `${JSON.stringify(result, null, 2)}\n`);
    if (rows.some((r) => r.errors > 0)) process.exitCode = 1;
  } finally {
    for (const w of started) await stopChild(w.child);
    if (origin) await stopChild(origin.child);
    // Keep the configs and logs; drop the Durable Object storage.
    for (const w of started) fs.rmSync(path.join(dir, w.name, 'do'), { recursive: true, force: true });
  }
}

await main();
