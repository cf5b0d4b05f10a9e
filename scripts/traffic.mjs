// traffic.mjs — demo traffic generator for bpm-edge.
//
// Owns: a realistic request mix against a target (normally bpm-edge in front
// of scripts/demo-origin.mjs): marketing page views with search/social/email
// referrers and UTM links, login page views, logins (mostly right password),
// the dashboard after a successful login, occasional signups, rarer
// subscriptions and ~5% crawler traffic.
//
// Invariants:
// - Bounded: stops on SIGINT/SIGTERM, or after --duration seconds (0 = run
//   until signalled); at most MAX_IN_FLIGHT visits are outstanding, ticks
//   that find the limit reached are skipped (and reported), never queued.
// - Only talks to --target.
//
// Usage: node scripts/traffic.mjs --target http://127.0.0.1:8787 [--rps 5] [--duration 0] [--seed N]

import { pathToFileURL } from 'node:url';

const MAX_IN_FLIGHT = 64;
const REQUEST_TIMEOUT_MS = 10_000;
const REPORT_EVERY_MS = 10_000;

const BROWSER_UAS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
  'Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0',
];
const BOT_UAS = [
  'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
  'Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)',
];
export const MARKETING_PAGES = ['/', '/pricing', '/blog/launch', '/blog/pricing-update'];
// [referrer or null, weight]
export const REFERRERS = [
  ['https://www.google.com/search?q=demo+shop', 30],
  ['https://www.bing.com/search?q=demo+shop', 6],
  ['https://duckduckgo.com/', 5],
  ['https://t.co/a1b2c3', 7],
  ['https://www.facebook.com/', 5],
  ['https://www.linkedin.com/feed/', 4],
  ['https://www.reddit.com/r/webdev/', 4],
  ['https://mail.google.com/', 4],
  [null, 35],
];
export const CAMPAIGNS = [
  // [utm_source, utm_medium, utm_campaign, weight]
  ['newsletter', 'email', 'spring_launch', 5],
  ['twitter', 'social', 'spring_launch', 3],
  ['partner', 'cpc', 'partner_q2', 2],
  ['newsletter', 'email', 'pricing_update', 2],
];
// Visit kinds and their weights (per tick). Bots are decided separately.
export const VISITS = [
  ['marketing', 55],
  ['login_page', 15],
  ['login', 20], // GET /login, POST /login, then GET /dashboard on success
  ['signup', 6],
  ['subscribe', 2],
  ['utm_link', 10], // marketing view arriving from a campaign link
];
export const BOT_SHARE = 0.05;
export const WRONG_PASSWORD_SHARE = 0.12;

// Small deterministic PRNG (mulberry32) so a run can be replayed with --seed.
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const pick = (rand, xs) => xs[Math.floor(rand() * xs.length)];
function weighted(rand, items) {
  const total = items.reduce((a, it) => a + it[it.length - 1], 0);
  let r = rand() * total;
  for (const it of items) {
    r -= it[it.length - 1];
    if (r < 0) return it;
  }
  return items[items.length - 1];
}

/**
 * Plans one visit: a list of request steps { label, method, path, headers, body, after }
 * where `after` (optional) names the condition for the step to run:
 * 'login_ok' = previous response was 302 to /dashboard.
 */
export function planVisit(rand) {
  const ua = rand() < BOT_SHARE ? pick(rand, BOT_UAS) : pick(rand, BROWSER_UAS);
  const isBot = BOT_UAS.includes(ua);
  const base = { 'user-agent': ua, accept: 'text/html,application/xhtml+xml' };
  if (isBot) return [{ label: 'bot', method: 'GET', path: pick(rand, MARKETING_PAGES), headers: base }];

  const [kind] = weighted(rand, VISITS);
  switch (kind) {
    case 'marketing': {
      const [ref] = weighted(rand, REFERRERS);
      const headers = ref ? { ...base, referer: ref } : base;
      return [{ label: 'marketing', method: 'GET', path: pick(rand, MARKETING_PAGES), headers }];
    }
    case 'utm_link': {
      const [source, medium, campaign] = weighted(rand, CAMPAIGNS);
      const q = new URLSearchParams({ utm_source: source, utm_medium: medium, utm_campaign: campaign });
      const headers = source === 'twitter' ? { ...base, referer: 'https://t.co/x9y8z7' } : base;
      return [{ label: 'utm', method: 'GET', path: `${pick(rand, MARKETING_PAGES)}?${q}`, headers }];
    }
    case 'login_page':
      return [{ label: 'login_view', method: 'GET', path: '/login', headers: base }];
    case 'login': {
      const password = rand() < WRONG_PASSWORD_SHARE ? 'wrong' : 'demo';
      const form = { ...base, 'content-type': 'application/x-www-form-urlencoded' };
      return [
        { label: 'login_view', method: 'GET', path: '/login', headers: base },
        { label: 'login_post', method: 'POST', path: '/login', headers: form, body: `user=demo${Math.floor(rand() * 1000)}&password=${password}` },
        { label: 'dashboard', method: 'GET', path: '/dashboard', headers: base, after: 'login_ok' },
      ];
    }
    case 'signup':
      return [{
        label: 'signup',
        method: 'POST',
        path: '/signup',
        headers: { ...base, 'content-type': 'application/x-www-form-urlencoded' },
        body: `email=user${Math.floor(rand() * 1e6)}%40example.org&plan=starter`,
      }];
    case 'subscribe':
      return [{
        label: 'subscribe',
        method: 'POST',
        path: '/billing/subscribe',
        headers: { ...base, 'content-type': 'application/json' },
        body: JSON.stringify({ plan: 'team', period: 'monthly' }),
      }];
    default:
      throw new Error(`unknown visit kind ${kind}`);
  }
}

async function runVisit(target, steps, counters) {
  let prev = null;
  for (const step of steps) {
    if (step.after === 'login_ok') {
      const ok = prev && prev.status === 302 && prev.headers.get('location') === '/dashboard';
      if (!ok) break;
    }
    const key = step.label;
    try {
      const res = await fetch(target + step.path, {
        method: step.method,
        headers: step.headers,
        body: step.body,
        redirect: 'manual',
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      await res.arrayBuffer();
      counters.sent[key] = (counters.sent[key] ?? 0) + 1;
      const cls = `${Math.floor(res.status / 100)}xx`;
      counters.status[cls] = (counters.status[cls] ?? 0) + 1;
      prev = res;
    } catch (e) {
      counters.errors += 1;
      counters.lastError = e.cause?.code ?? e.cause?.message ?? e.message;
      break;
    }
  }
}

function parseArgs(argv) {
  const opts = { target: null, rps: 5, duration: 0, seed: Date.now() & 0xffffffff };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--target') opts.target = val().replace(/\/+$/, '');
    else if (a === '--rps') opts.rps = Number(val());
    else if (a === '--duration') opts.duration = Number(val());
    else if (a === '--seed') opts.seed = Number(val());
    else if (a === '--help' || a === '-h') opts.help = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (opts.help) return opts;
  if (!opts.target || !/^https?:\/\//.test(opts.target)) throw new Error('--target http://host:port is required');
  if (!(opts.rps > 0 && opts.rps <= 1000)) throw new Error('--rps must be in (0, 1000]');
  if (!(opts.duration >= 0)) throw new Error('--duration must be >= 0 (0 = until SIGINT/SIGTERM)');
  return opts;
}

/**
 * Sends visits at `rps` visits/second until `signal` aborts or `duration`
 * seconds pass (0 = no limit). Resolves with the counters once in-flight
 * visits are done.
 */
export async function generate({ target, rps = 5, duration = 0, seed = 1, signal, log = console.log }) {
  const rand = rng(seed);
  const counters = { sent: {}, status: {}, errors: 0, skipped: 0, lastError: null };
  const inFlight = new Set();
  const started = Date.now();
  const endAt = duration > 0 ? started + duration * 1000 : Infinity;
  const intervalMs = 1000 / rps;
  let nextTick = started;
  let nextReport = started + REPORT_EVERY_MS;
  let sentAtLastReport = 0;

  const report = (final = false) => {
    const total = Object.values(counters.sent).reduce((a, b) => a + b, 0);
    const mix = Object.entries(counters.sent).sort().map(([k, v]) => `${k}=${v}`).join(' ');
    const st = Object.entries(counters.status).sort().map(([k, v]) => `${k}=${v}`).join(' ');
    log(
      `[traffic ${final ? 'done' : Math.round((Date.now() - started) / 1000) + 's'}] ` +
        `requests=${total} (+${total - sentAtLastReport} in last window) ${mix} | ${st} | errors=${counters.errors}` +
        `${counters.lastError ? ` (last: ${counters.lastError})` : ''}${counters.skipped ? ` skipped_ticks=${counters.skipped}` : ''}`,
    );
    sentAtLastReport = total;
  };

  while (!signal?.aborted && Date.now() < endAt) {
    const now = Date.now();
    if (now >= nextReport) {
      report();
      nextReport += REPORT_EVERY_MS;
    }
    if (now >= nextTick) {
      nextTick += intervalMs;
      // Never burst to catch up after a stall: at most one visit per tick.
      if (nextTick < now - 1000) nextTick = now;
      if (inFlight.size >= MAX_IN_FLIGHT) {
        counters.skipped += 1;
      } else {
        const p = runVisit(target, planVisit(rand), counters).finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
    }
    const wait = Math.max(1, Math.min(nextTick, nextReport, endAt) - Date.now());
    await new Promise((resolve) => {
      const t = setTimeout(resolve, wait);
      signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
    });
  }
  await Promise.allSettled([...inFlight]);
  report(true);
  return counters;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`traffic: ${e.message}`);
    process.exit(2);
  }
  if (opts.help) {
    console.log('Usage: node scripts/traffic.mjs --target http://127.0.0.1:8787 [--rps 5] [--duration 0=forever] [--seed N]');
    process.exit(0);
  }
  const ac = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => ac.abort());
  console.log(`traffic: ${opts.rps} visits/s to ${opts.target} for ${opts.duration || '∞'} s (seed ${opts.seed})`);
  await generate({ ...opts, signal: ac.signal });
  process.exit(0);
}
