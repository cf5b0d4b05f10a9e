// demo-history.mjs — gives the demo weeks of history, so Mission Control has
// baselines and the referral dashboard has 30 and 90 days to show.
//
// Owns: synthetic per-minute counts of every counted metric of the shipped
// bpm.toml, shaped like the live demo traffic (scripts/traffic.mjs: the same
// visit mix, referrers and campaigns, at --rps visits per second at the busy
// hours of a Berlin day, quieter at night and at weekends), with hourly
// splits of marketing views by source, campaign fields and landing page,
// imported through `POST /_bpm/api/backfill`.
//
// Invariants:
// - Deterministic per minute: the same minute always gets the same counts.
// - Never imports a minute twice: the end of what was imported is kept in
//   --state (default .wrangler/state/demo-history.json); a later run imports
//   only from there (the demo's own traffic fills the time while it runs:
//   scripts/demo.sh records when it stopped).
// - Only talks to --target.
//
// 70 days: a 30-day range has its previous period (5 weeks back) too.
//
// Usage: node scripts/demo-history.mjs --target http://127.0.0.1:8787 --token T
//          [--days 70] [--rps 5] [--state FILE] [--mark-end]

import fs from 'node:fs';
import path from 'node:path';
import { CAMPAIGNS, MARKETING_PAGES, REFERRERS, VISITS, BOT_SHARE, WRONG_PASSWORD_SHARE, rng } from './traffic.mjs';

const MIN = 60;
const LINES_PER_REQUEST = 100_000;
// Referrer URL → the source name bpm-edge gives it (see src/count/referral.rs).
const SOURCE_OF = (ref) => {
  if (!ref) return 'direct';
  const host = new URL(ref).hostname;
  if (host === 'mail.google.com') return 'email';
  if (host === 't.co') return 'twitter';
  return host.replace(/^www\./, '').split('.')[0];
};

function parseArgs(argv) {
  const opts = { target: null, token: null, days: 70, rps: 5, state: '.wrangler/state/demo-history.json', markEnd: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => argv[++i];
    if (a === '--target') opts.target = val().replace(/\/+$/, '');
    else if (a === '--token') opts.token = val();
    else if (a === '--days') opts.days = Number(val());
    else if (a === '--rps') opts.rps = Number(val());
    else if (a === '--state') opts.state = val();
    else if (a === '--mark-end') opts.markEnd = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!opts.markEnd && (!opts.target || !opts.token)) throw new Error('--target and --token are required');
  return opts;
}

/** Per-minute rates per visit/second, from the live traffic's visit mix. */
function ratesPerVisit() {
  const total = VISITS.reduce((a, v) => a + v[1], 0);
  const w = Object.fromEntries(VISITS.map(([k, n]) => [k, n / total]));
  const human = 1 - BOT_SHARE;
  const ok = 1 - WRONG_PASSWORD_SHARE;
  const logins = w.login * ok;
  return {
    marketing_views: human * (w.marketing + w.utm_link),
    login_views: human * (w.login_page + w.login),
    logins: human * logins,
    dashboard_views: human * logins,
    signups: human * w.signup,
    subscriptions: human * w.subscribe,
    traffic: human * (w.marketing + w.utm_link + w.login_page + w.signup + w.subscribe + w.login * 2 + logins),
  };
}

/** The share of the peak rate at a UTC instant: a Berlin day, quieter weekends. */
function shape(t) {
  const local = new Date((t + 3600) * 1000); // CET; the demo does not need DST here
  const h = local.getUTCHours() + local.getUTCMinutes() / 60;
  const day = 0.2 + 0.8 * Math.max(0, Math.sin(((h - 6) / 18) * Math.PI)) ** 1.5;
  const weekend = [0, 6].includes(local.getUTCDay()) ? 0.65 : 1;
  return day * weekend;
}

/** A Poisson-like draw around `mean` (normal approximation, ≥ 0). */
function draw(rand, mean) {
  if (mean <= 0) return 0;
  const u = Math.max(rand(), 1e-12);
  const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  return Math.max(0, Math.round(mean + z * Math.sqrt(mean)));
}

/** Splits `n` by weights, largest remainders first, so the parts sum to n. */
function split(n, items) {
  const total = items.reduce((a, it) => a + it[1], 0);
  const parts = items.map(([k, w]) => [k, (n * w) / total]);
  const out = parts.map(([k, x]) => [k, Math.floor(x)]);
  let left = n - out.reduce((a, o) => a + o[1], 0);
  const order = parts.map(([, x], i) => [x - Math.floor(x), i]).sort((a, b) => b[0] - a[0]);
  for (const [, i] of order) {
    if (left-- <= 0) break;
    out[i][1] += 1;
  }
  return out.filter(([, c]) => c > 0);
}

/** Source, campaign and landing weights of one marketing view. */
function splitWeights() {
  const visits = VISITS.reduce((a, v) => a + v[1], 0);
  const plain = VISITS.find((v) => v[0] === 'marketing')[1] / visits;
  const utm = VISITS.find((v) => v[0] === 'utm_link')[1] / visits;
  const refTotal = REFERRERS.reduce((a, r) => a + r[1], 0);
  const campTotal = CAMPAIGNS.reduce((a, c) => a + c[3], 0);
  const add = (m, k, w) => m.set(k, (m.get(k) ?? 0) + w);
  const dims = { source: new Map(), utm_source: new Map(), utm_medium: new Map(), utm_campaign: new Map(), landing: new Map() };
  for (const [ref, w] of REFERRERS) add(dims.source, SOURCE_OF(ref), (plain * w) / refTotal);
  for (const [s, m, c, w] of CAMPAIGNS) {
    const share = (utm * w) / campTotal;
    add(dims.source, s === 'twitter' ? 'twitter' : 'direct', share);
    add(dims.utm_source, s, share);
    add(dims.utm_medium, m, share);
    add(dims.utm_campaign, c, share);
  }
  for (const d of ['utm_source', 'utm_medium', 'utm_campaign']) add(dims[d], '(none)', plain);
  // Landing pages are the metric's path patterns (bounded), not raw paths.
  for (const p of MARKETING_PAGES) add(dims.landing, p.startsWith('/blog/') ? '/blog/**' : p, 1 / MARKETING_PAGES.length);
  return Object.fromEntries(Object.entries(dims).map(([k, m]) => [k, [...m.entries()]]));
}

function* lines(from, to, rps) {
  const perVisit = ratesPerVisit();
  const weights = splitWeights();
  const iso = (t) => new Date(t * 1000).toISOString().replace('.000Z', 'Z');
  let hourViews = 0;
  for (let t = from; t < to; t += MIN) {
    const rand = rng(t / MIN);
    const s = shape(t);
    for (const [metric, r] of Object.entries(perVisit)) {
      const n = draw(rand, r * rps * MIN * s);
      if (metric === 'marketing_views') hourViews += n;
      if (n > 0) yield `${iso(t)},${metric},${n}`;
    }
    if ((t + MIN) % 3600 === 0 || t + MIN >= to) {
      const at = iso(Math.floor(t / 3600) * 3600 >= from ? Math.floor(t / 3600) * 3600 : from);
      for (const [dim, items] of Object.entries(weights)) {
        for (const [value, c] of split(hourViews, items)) yield `${at},marketing_views,${c},${dim},${value}`;
      }
      hourViews = 0;
    }
  }
}

async function post(target, token, body) {
  const res = await fetch(`${target}/_bpm/api/backfill`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'text/csv' },
    body,
    signal: AbortSignal.timeout(300_000),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`backfill answered ${res.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text);
}

function readState(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return {};
  }
}

function writeState(file, state) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(state) + '\n');
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const now = Math.floor(Date.now() / 1000 / MIN) * MIN;
  const state = readState(opts.state);
  if (opts.markEnd) {
    // The demo stops: its live traffic covered the time up to now.
    if (state.end) writeState(opts.state, { ...state, end: Math.max(state.end, now) });
    return;
  }
  const from = Math.max(state.end ?? 0, now - opts.days * 86400);
  if (from >= now) {
    console.log('demo-history: history is up to date');
    return;
  }
  let batch = ['timestamp,metric,count'];
  let sent = 0;
  const flush = async () => {
    if (batch.length > 1) {
      await post(opts.target, opts.token, batch.join('\n') + '\n');
      sent += batch.length - 1;
    }
    batch = [];
  };
  for (const line of lines(from, now, opts.rps)) {
    batch.push(line);
    if (batch.length >= LINES_PER_REQUEST) await flush();
  }
  await flush();
  writeState(opts.state, { end: now });
  console.log(`demo-history: imported ${sent} lines, ${((now - from) / 86400).toFixed(1)} days up to ${new Date(now * 1000).toISOString()}`);
}

main().catch((e) => {
  console.error(`demo-history: ${e.message}`);
  process.exit(1);
});
