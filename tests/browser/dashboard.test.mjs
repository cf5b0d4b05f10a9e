// dashboard.test.mjs — the dashboard as a person uses it: Debian's headless
// Chromium (/usr/bin/chromium, driven by playwright-core, never a downloaded
// browser) against `wrangler dev` with seeded data.
//
// Seeding: four weeks of per-minute history through POST /api/backfill
// (logins stop 15 minutes before T0, everything else keeps going), cron ticks
// at T0+1m and T0+6m until logins_drop fires, and live marketing page views
// with known Referer headers and utm_* parameters sent through the worker.
// The assertions read what is on screen: the banner, every BPM card, the
// mute form, the referral tables, the range picker, the CSV download, the
// metric detail (with a deploy annotation posted by curl marked on its
// charts), the login form and the dashboard behind Cloudflare Access
// (an assertion from the stand-in team in ../e2e/access-team.mjs). Every
// request the page makes must stay on 127.0.0.1 and the console must stay
// free of errors.
//
// Screenshots go to test-artifacts/screenshots/; BPM_UPDATE_SCREENSHOTS=1
// also copies them to docs/screenshots/ (the README's pictures).

import { test, before, after } from 'node:test';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startOrigin, startWorker, waitFor, ROOT, ARTIFACTS, TEST_TOKEN, BROWSER_UA, cronTick, postBackfill } from '../e2e/harness.mjs';
import { rsaKey, sign, startTeam, userClaims } from '../e2e/access-team.mjs';
import { receiverVars } from '../e2e/webhook-sink.mjs';
import { CHROMIUM, CHROMIUM_ARGS } from './chromium.mjs';

const SHOTS = path.join(ARTIFACTS, 'screenshots');
const DOC_SHOTS = path.join(ROOT, 'docs', 'screenshots');
const MIN = 60;
const BUCKET = 300;
// Per-minute base rates of the backfilled history (shaped by time of day).
const RATES = { traffic: 100, login_views: 12, dashboard_views: 10, logins: 10, signups: 3, subscriptions: 1, marketing_views: 30 };

// Live marketing views: [count, path, referer]. Expected per table below.
const SEED = [
  [5, '/', 'https://www.google.com/search?q=demo+shop'],
  [3, '/blog/launch?utm_source=hn&utm_medium=social&utm_campaign=launch-week', 'https://news.ycombinator.com/item?id=42'],
  [4, '/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=winter-sale', null],
  [2, '/pricing?utm_campaign=partner-deal&utm_source=partner&utm_medium=referral', 'https://deals.partner-shop.example/spring'],
];
const EXPECTED = {
  source: { google: 5, hackernews: 3, 'deals.partner-shop.example': 2 },
  utm_source: { hn: 3, newsletter: 4, partner: 2 },
  utm_medium: { social: 3, email: 4, referral: 2 },
  utm_campaign: { 'launch-week': 3, 'winter-sale': 4, 'partner-deal': 2 },
  // Landing pages are the metric's matched path patterns.
  landing: { '/': 5, '/blog/**': 3, '/pricing': 6 },
};

let origin;
let sink;
let team;
const ACCESS_AUD = 'browser-e2e-application-aud';
let worker;
let context;
let page;
let userDataDir;
const T0 = Math.floor(Date.now() / 1000 / BUCKET) * BUCKET - 2 * BUCKET;
const consoleErrors = [];
const requestUrls = [];

/** A webhook receiver that accepts everything (keeps the worker's deliveries on 127.0.0.1). */
async function startSink() {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}

/** A deterministic number in [0, 1) per key. */
function unit(key) {
  let h = 2166136261;
  for (const c of key) h = Math.imul(h ^ c.charCodeAt(0), 16777619);
  return ((h >>> 0) % 10007) / 10007;
}

/** History count of `metric` in the minute at `t`: a daily shape, ±10 % per week and hour, ±15 % per minute. */
function historyCount(metric, t) {
  const dayShape = 0.65 + 0.35 * Math.sin(((t % 86400) / 86400) * 2 * Math.PI - Math.PI / 2);
  const weekly = 0.9 + 0.2 * unit(`${metric}:${Math.floor(t / 604800)}:${Math.floor((t % 604800) / 3600)}`);
  const minute = 0.85 + 0.3 * unit(`${metric}:${t}`);
  return Math.max(0, Math.round(RATES[metric] * dayShape * weekly * minute));
}

// Dimension splits of the history (hourly, as `timestamp,metric,count,dim,value`
// lines at the hour's first minute): shares that drift from week to week.
const SPLITS = {
  marketing_views: {
    source: { google: 38, direct: 22, email: 10, hackernews: 8, twitter: 7, linkedin: 6, bing: 5, 'deals.partner-shop.example': 4 },
    utm_source: { '(none)': 55, google: 13, newsletter: 15, twitter: 8, hn: 5, partner: 4 },
    utm_medium: { '(none)': 55, email: 15, social: 13, cpc: 13, referral: 4 },
    utm_campaign: { '(none)': 55, 'winter-sale': 15, 'brand-search': 13, 'launch-week': 10, 'partner-deal': 4, 'black-friday': 3 },
    landing: { '/': 50, '/pricing': 30, '/blog/**': 20 },
  },
  traffic: { status: { '2xx': 86, '3xx': 10, '4xx': 4 } },
  logins: { status: { '3xx': 100 } },
};

const stamp = (t) => new Date(t * 1000).toISOString().replace('.000Z', 'Z');

/** The CSV for `metric` over [from, to): minute counts, and hourly splits for hours ending by `splitsUntil`. */
function csv(metric, from, to, splitsUntil) {
  const lines = ['timestamp,metric,count'];
  let hour = null;
  let hourTotal = 0;
  const flushHour = () => {
    if (hour === null || hour + 3600 > splitsUntil || !SPLITS[metric]) return;
    for (const [dim, shares] of Object.entries(SPLITS[metric])) {
      const weights = Object.entries(shares).map(([v, w]) => [v, w * (0.75 + 0.5 * unit(`${dim}:${v}:${Math.floor(hour / 604800)}`))]);
      const sum = weights.reduce((a, [, w]) => a + w, 0);
      for (const [v, w] of weights) {
        const n = Math.round((hourTotal * w) / sum);
        if (n > 0) lines.push(`${stamp(hour)},${metric},${n},${dim},${v}`);
      }
    }
  };
  for (let t = from; t < to; t += MIN) {
    const h = Math.floor(t / 3600) * 3600;
    if (h !== hour) {
      flushHour();
      hour = h;
      hourTotal = 0;
    }
    const n = historyCount(metric, t);
    hourTotal += n;
    lines.push(`${stamp(t)},${metric},${n}`);
  }
  flushHour();
  return `${lines.join('\n')}\n`;
}

const backfill = (text) => postBackfill(worker, text, TEST_TOKEN, 180_000);

/** One cron tick at simulated time `t` (Unix seconds). */
const tick = (t) => cronTick(worker, t);

async function apiJson(p) {
  const r = await worker.api(p);
  assert.equal(r.status, 200, `${p}: ${r.status} ${r.text}`);
  return r.body;
}

const settled = () => page.waitForFunction(() => !document.querySelector('main').hasAttribute('aria-busy'), null, { timeout: 30_000 });

/** Waits until the page settled (no refresh under way) after refresh number `before`, and checks it succeeded. */
async function refreshedAfter(before) {
  await page.waitForFunction(
    (n) => Number(document.body.dataset.refreshes ?? 0) > n && !document.querySelector('main').hasAttribute('aria-busy'),
    before,
    { timeout: 30_000 },
  );
  const status = page.locator('#refreshed');
  assert.ok(!(await status.getAttribute('class'))?.includes('stale'), await status.textContent());
}

/** Runs `action` (a click, a choice) on a settled page and waits until the page settled after it. */
async function withRefresh(action) {
  await settled();
  const before = await refreshCount();
  await action();
  await refreshedAfter(before);
}
const refreshCount = async () => Number((await page.evaluate(() => document.body.dataset.refreshes)) ?? 0);

async function screenshot(name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if (process.env.BPM_UPDATE_SCREENSHOTS === '1') {
    fs.mkdirSync(DOC_SHOTS, { recursive: true });
    fs.copyFileSync(file, path.join(DOC_SHOTS, `${name}.png`));
  }
}

/** Minimal RFC 4180 reader: rows of fields. */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field !== '' || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

/** The rows of one referral table on screen: { value: count }. */
async function tableOnScreen(key) {
  return page.$$eval(`table[data-table="${key}"] tbody tr[data-value]`, (trs) =>
    Object.fromEntries(trs.map((tr) => [tr.dataset.value, Number(tr.querySelector('td.count').textContent.replace(/,/g, ''))])));
}

before(async () => {
  origin = await startOrigin({ port: 0 });
  sink = await startSink();
  team = await startTeam();
  team.published = [rsaKey('browser-key')];
  worker = await startWorker({
    originUrl: origin.url,
    label: 'browser',
    vars: {
      ...receiverVars(sink.url, { pagerduty: true }),
      BPM_ACCESS_TEAM_DOMAIN: team.url,
      BPM_ACCESS_AUD: ACCESS_AUD,
    },
  });

  // History: four weeks, up to a few minutes ahead of now; logins stop 15
  // minutes before T0. Splits stop two hours back, so the last hour's
  // tables hold exactly the live views sent below.
  const start = T0 - 28 * 86400;
  const nowSecs = Math.floor(Date.now() / 1000);
  const end = Math.floor(nowSecs / MIN) * MIN + 5 * MIN;
  for (const metric of Object.keys(RATES)) {
    await backfill(csv(metric, start, metric === 'logins' ? T0 - 15 * MIN : end, nowSecs - 2 * 3600));
  }
  await tick(T0 + MIN); // pending
  await tick(T0 + 6 * MIN); // held for `for`: firing
  const logins = (await apiJson('/_bpm/api/alerts')).alerts.find((a) => a.rule === 'logins_drop');
  assert.equal(logins.state, 'firing', JSON.stringify(logins));

  // Live marketing views through the worker.
  for (const [n, p, referer] of SEED) {
    for (let i = 0; i < n; i++) {
      const res = await worker.fetch(p, { headers: referer ? { referer } : {} });
      assert.equal(res.status, 200, p);
      await res.arrayBuffer();
    }
  }
  const now = Date.now();
  const window = `from=${new Date(now - 3600_000).toISOString().slice(0, 16)}:00Z&to=${new Date(now + 120_000).toISOString().slice(0, 16)}:00Z`;
  await waitFor(async () => {
    const r = await apiJson(`/_bpm/api/series?metric=marketing_views&step=hour&by=utm_campaign&${window}`);
    const got = Object.fromEntries(r.series.map((s) => [s.value, s.total]));
    return Object.entries(EXPECTED.utm_campaign).every(([v, n]) => got[v] === n);
  }, { timeoutMs: 30_000, what: 'the seeded campaigns to be counted' });

  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bpm-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    acceptDownloads: true,
    viewport: { width: 1400, height: 900 },
    userAgent: BROWSER_UA,
  });
  context.on('request', (r) => requestUrls.push(r.url()));
  // Every Content-Security-Policy violation of every page, for the last test.
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) =>
      window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`),
    );
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
});

after(async () => {
  await context?.close();
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  await worker?.stop();
  await sink?.close();
  await team?.close();
  await origin?.close();
});

test('the API refuses calls without auth (401) and the public page holds no data', async () => {
  for (const p of ['overview', 'referrals?metric=marketing_views', 'series?metric=logins', 'alerts', 'silences', 'metrics', 'session']) {
    const r = await worker.api(`/_bpm/api/${p}`, { token: null });
    assert.equal(r.status, 401, `${p} answered ${r.status}`);
  }
  const html = await (await worker.fetch('/_bpm/')).text();
  assert.doesNotMatch(html, /logins_drop|marketing_views|google/);
});

test('the login form rejects a wrong token and accepts the right one', async () => {
  await page.goto(`${worker.url}/_bpm/`);
  await page.getByLabel('API token').waitFor();
  assert.equal(await page.locator('#view-mission').isVisible(), false);
  await page.getByLabel('API token').fill('not-the-token');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByText('That token was not accepted.').waitFor();
  await page.getByLabel('API token').fill(TEST_TOKEN);
  await withRefresh(async () => {
    await page.getByRole('button', { name: 'Log in' }).click();
  });
  assert.equal(await page.locator('#login').isVisible(), false);
  assert.equal(await page.locator('#view-mission').isVisible(), true);
  // The session is an HttpOnly cookie: the page's script cannot read it.
  assert.equal(await page.evaluate(() => document.cookie), '');
  const cookies = await context.cookies(`${worker.url}/_bpm/`);
  const session = cookies.find((c) => c.httpOnly);
  assert.ok(session, JSON.stringify(cookies));
  // The cookie alone reads data but cannot write without the page's CSRF header.
  const cookie = `${session.name}=${session.value}`;
  const read = await fetch(`${worker.url}/_bpm/api/silences`, { headers: { cookie } });
  assert.equal(read.status, 200);
  await read.arrayBuffer();
  const forged = await fetch(`${worker.url}/_bpm/api/silences`, {
    method: 'POST',
    headers: { cookie, 'content-type': 'application/json' },
    body: JSON.stringify({ rule: '*', duration: '1h', reason: 'cross-site', author: 'nobody' }),
  });
  assert.ok(forged.status === 403 || forged.status === 401, `a POST without X-BPM-CSRF answered ${forged.status}`);
  await forged.arrayBuffer();
});

test('Mission Control shows every BPM with a number and a state, and the banner names the firing alert', async () => {
  const names = (await apiJson('/_bpm/api/metrics')).metrics.map((m) => m.name);
  assert.ok(names.length >= 8);
  for (const name of names) {
    const card = page.locator(`article.bpm[data-metric="${name}"]`);
    await card.waitFor();
    const value = await card.locator('.bpm-value').textContent();
    assert.match(value, /^\d[\d,.]*$/, `${name} shows ${value}`);
    const state = await card.locator('.badge.state').textContent();
    assert.ok(['ok', 'learning', 'pending', 'firing', 'silenced', 'resolved', 'no rule'].includes(state), `${name}: ${state}`);
  }
  assert.equal(await page.locator('article.bpm[data-metric="logins"] .badge.state').textContent(), 'firing');
  assert.equal(await page.locator('article.bpm[data-metric="subscriptions"] .badge.state').textContent(), 'no rule');
  // The history's source splits stop two hours back (so the referral
  // tables' last hour holds exactly the live views), so to the shipped
  // by-source rule every top source of marketing_views went dark: it
  // fires too, and the banner names the source, not the total's change.
  const banner = await page.locator('#banner').textContent();
  assert.match(banner, /^2 firing: logins −\d+% since \d\d:\d\d · marketing_views \(source [^)]+\) since \d\d:\d\d$/);
  const bySource = page.locator('article.bpm[data-metric="marketing_views"] .alert[data-rule="referral_source_dark"]');
  assert.match(await bySource.locator('.alert-head strong').textContent(), /^referral_source_dark · source \S+$/);
  // Stages group the cards.
  assert.equal(await page.locator('section.stage[data-stage="retention"] article[data-metric="logins"]').count(), 1);
  const alert = page.locator('article.bpm[data-metric="logins"] .alert[data-rule="logins_drop"]');
  assert.match(await alert.locator('.explanation').textContent(), /observed|expected/);
  await screenshot('mission-control');
});

test('a firing alert is muted through the UI and the silence is in GET /api/silences', async () => {
  const card = page.locator('article.bpm[data-metric="logins"]');
  await card.getByRole('button', { name: 'Mute…' }).click();
  const form = card.locator('form.mute-form');
  await form.getByLabel('For').selectOption('4h');
  await form.getByLabel('Reason').fill('login provider outage, vendor ticket 1234');
  await form.getByLabel('Your name').fill('on-call engineer');
  await form.getByRole('button', { name: 'Mute logins_drop' }).click();
  await page.waitForFunction(() => document.querySelector('article.bpm[data-metric="logins"] .badge.state')?.textContent === 'silenced', null, { timeout: 30_000 });
  await card.getByText(/Muted until .* by on-call engineer/).waitFor();
  const { silences } = await apiJson('/_bpm/api/silences');
  const s = silences.find((x) => x.rule === 'logins_drop' && x.author === 'on-call engineer');
  assert.ok(s, JSON.stringify(silences));
  assert.equal(s.reason, 'login provider outage, vendor ticket 1234');
  const hours = (new Date(s.until) - Date.now()) / 3600_000;
  assert.ok(hours > 3.9 && hours <= 4.01, `until ${s.until}`);
  assert.match(await page.locator('#banner').textContent(), /^1 firing: marketing_views \(source [^)]+\)/);
  // Muting the by-source rule mutes all its sources.
  const marketing = page.locator('article.bpm[data-metric="marketing_views"]');
  await marketing.getByRole('button', { name: 'Mute…' }).click();
  const form2 = marketing.locator('form.mute-form');
  await form2.getByLabel('Reason').fill('history without source splits');
  await form2.getByLabel('Your name').fill('on-call engineer');
  await form2.getByRole('button', { name: 'Mute referral_source_dark' }).click();
  await page.waitForFunction(() => document.querySelector('article.bpm[data-metric="marketing_views"] .badge.state')?.textContent === 'silenced', null, { timeout: 30_000 });
  assert.match(await page.locator('#banner').textContent(), /^All \d+ BPMs normal \(2 firing but muted: logins, marketing_views\)/);
});

test('the referral tables show the seeded sources, campaigns and landing pages with exact counts', async () => {
  await page.getByRole('link', { name: 'Referrals' }).click();
  await withRefresh(async () => {
    await page.locator('#ref-controls').getByLabel('Range').selectOption('1h');
  });
  for (const [key, expected] of Object.entries(EXPECTED)) {
    const shown = await tableOnScreen(key);
    for (const [value, count] of Object.entries(expected)) assert.equal(shown[value], count, `${key}=${value}: ${JSON.stringify(shown)}`);
  }
  // The API agrees with the screen, row for row.
  const href = await page.locator('#ref-csv').getAttribute('href');
  const q = new URL(href, `${worker.url}/_bpm/`).searchParams;
  q.delete('format');
  const api = await apiJson(`/_bpm/api/referrals?${q}`);
  for (const key of Object.keys(EXPECTED)) {
    const shown = await tableOnScreen(key);
    assert.deepEqual(shown, Object.fromEntries(api.tables[key].map((r) => [r.value, r.count])), key);
  }
  const uniques = await page.locator('#ref-uniques').textContent();
  assert.equal(uniques, api.uniques ? Number(api.uniques.count).toLocaleString('en-GB') : '—');
  // A campaign annotation of the period is listed under it after a refresh.
  const campaign = await fetch(`${worker.url}/_bpm/api/annotations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ id: 'winter-sale-start', kind: 'campaign', text: 'Winter sale', time: new Date((T0 - 3 * 60 * MIN) * 1000).toISOString() }),
  });
  assert.equal(campaign.status, 201, await campaign.text());
  await withRefresh(async () => {
    await page.locator('#ref-controls').getByLabel('Range').selectOption('24h');
  });
  assert.match(await page.locator('#ref-campaigns .campaign[data-id="winter-sale-start"]').textContent(), /^Winter sale \(/);
  assert.equal(await page.locator('#ref-chart .annotation-mark[data-kind="campaign"]').count(), 1);
  await screenshot('referrals');
});

test('the time-range picker changes the numbers', async () => {
  const total = async () => Number((await page.locator('#ref-total').textContent()).replace(/,/g, ''));
  await withRefresh(async () => {
    await page.locator('#ref-controls').getByLabel('Range').selectOption('1h');
  });
  const hour = await total();
  await withRefresh(async () => {
    await page.locator('#ref-controls').getByLabel('Range').selectOption('7d');
  });
  const week = await total();
  assert.ok(week > hour * 24, `7 d ${week} vs 1 h ${hour}`);
  // A custom range of one whole day, in the site's time zone.
  await withRefresh(async () => {
    await page.locator('#ref-controls').getByLabel('Range').selectOption('custom');
    const dayAgo = new Date(Date.now() - 2 * 86400_000);
    const local = (d) => new Intl.DateTimeFormat('sv-SE', { timeZone: 'Europe/Berlin', year: 'numeric', month: '2-digit', day: '2-digit' }).format(d);
    await page.getByLabel('From', { exact: true }).fill(`${local(dayAgo)}T00:00`);
    await page.getByLabel('To', { exact: true }).fill(`${local(new Date(dayAgo.getTime() + 86400_000))}T00:00`);
    await page.getByRole('button', { name: 'Apply' }).click();
  });
  const day = await total();
  assert.ok(day > hour && day < week, `custom day ${day}`);
  assert.match(await page.locator('#ref-period').textContent(), /00:00 – .*00:00 \(Europe\/Berlin/);
  // Comparison with four weeks ago: a second line and previous numbers.
  await withRefresh(async () => {
    await page.locator('#ref-controls').getByLabel('Compare with').selectOption('4w');
  });
  assert.match(await page.locator('#ref-total-change').textContent(), /vs [\d,]+/);
});

test('the CSV export downloads the same numbers the API returns', async () => {
  await withRefresh(async () => {
    await page.locator('#ref-controls').getByLabel('Range').selectOption('1h');
  });
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Export CSV' }).click()]);
  const url = new URL(download.url());
  assert.equal(url.host, `127.0.0.1:${worker.port}`);
  assert.match(download.suggestedFilename(), /^referrals-marketing_views-.*\.csv$/);
  const rows = parseCsv(fs.readFileSync(await download.path(), 'utf8'));
  assert.deepEqual(rows[0], ['table', 'value', 'count', 'share', 'previous', 'change']);
  url.searchParams.delete('format');
  const api = await apiJson(`/_bpm/api/referrals?${url.searchParams}`);
  const num = (s) => (s === '' ? null : Number(s));
  const close = (a, b, what) => assert.ok((a === null && b === null) || Math.abs(a - b) < 1e-3, `${what}: csv ${a} vs api ${b}`);
  const [, total, ...rest] = rows.filter((r) => r.length > 1);
  assert.equal(total[0], 'total');
  assert.equal(num(total[2]), api.total.count);
  assert.equal(num(total[4]), api.total.previous);
  close(num(total[5]), api.total.change, 'total change');
  const expected = Object.entries(api.tables).flatMap(([table, list]) => list.map((r) => ({ table, ...r })));
  assert.equal(rest.length, expected.length);
  for (const e of expected) {
    const row = rest.find((r) => r[0] === e.table && r[1] === e.value);
    assert.ok(row, `${e.table}=${e.value} missing from the CSV`);
    assert.equal(num(row[2]), e.count, `${e.table}=${e.value}`);
    close(num(row[3]), e.share, `${e.table}=${e.value} share`);
    assert.equal(num(row[4]), e.previous ?? null, `${e.table}=${e.value} previous`);
    close(num(row[5]), e.change ?? null, `${e.table}=${e.value} change`);
  }
  for (const [value, count] of Object.entries(EXPECTED.source)) {
    assert.equal(num(rest.find((r) => r[0] === 'source' && r[1] === value)?.[2]), count, value);
  }
});

test('the metric detail shows the count with its baseline, latency, status mix and alert history', async () => {
  // A deploy three hours before T0, posted with curl as a CI pipeline
  // would (the README's command), is marked on the metric's charts.
  const deploy = { id: 'deploy-2f9c1e0', kind: 'deploy', text: 'Release 42', version: '2f9c1e0', time: new Date((T0 - 3 * 60 * MIN) * 1000).toISOString() };
  const posted = spawnSync('curl', ['-fsS', '-H', `Authorization: Bearer ${TEST_TOKEN}`, '-H', 'content-type: application/json', '--data', JSON.stringify(deploy), `${worker.url}/_bpm/api/annotations`], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(posted.status, 0, posted.stderr);
  assert.equal(JSON.parse(posted.stdout).id, deploy.id);
  await page.getByRole('link', { name: 'Mission Control' }).click();
  await page.locator('article.bpm[data-metric="logins"] h3 a').click();
  await page.waitForURL(/#\/metric\/logins$/);
  await page.locator('#metric-history table.history').waitFor({ timeout: 30_000 });
  assert.equal(await page.locator('#metric-title').textContent(), 'logins');
  const history = await page.locator('#metric-history tbody').textContent();
  assert.match(history, /pending → firing/);
  assert.match(history, /logins_drop/);
  assert.equal(await page.locator('#metric-count canvas').count(), 1);
  assert.equal(await page.locator('#metric-latency canvas').count(), 1);
  assert.equal(await page.locator('#metric-status canvas').count(), 1);
  const mark = page.locator('#metric-count .annotation-mark[data-kind="deploy"]');
  await mark.waitFor({ timeout: 30_000 });
  assert.match(await mark.getAttribute('title'), /^Deploy 2f9c1e0: Release 42 \(\d{4}-\d\d-\d\dT/);
  // Simulating logins_drop, edited, on the stored history: what it would
  // have fired is marked on the count chart, and its TOML is shown to copy.
  await page.locator('#metric-simulate summary').click();
  await page.locator('#simulate-form').getByLabel('z', { exact: true }).fill('4');
  await page.locator('#simulate-form').getByRole('button', { name: 'Simulate' }).click();
  await page.locator('#simulate-toml').waitFor({ timeout: 60_000 });
  assert.match(await page.locator('#simulate-result').textContent(), /^logins_drop would have fired (once|\d+ times) in /);
  assert.match(await page.locator('#simulate-toml').textContent(), /^\[\[alert\]\]\nname = "logins_drop"\n[\s\S]*\nz = 4\n/);
  assert.ok(await page.locator('#metric-count .annotation-mark[data-kind="simulated"]').count() >= 1);
  // Who sent the hits: every kind, and which ones logins count.
  const kinds = await page.locator('#metric-bots').textContent();
  assert.match(kinds, /browsers [\d,]+ \([^)]*, counted\)/);
  assert.match(kinds, /apps and HTTP clients [\d,]+ \([^)]*, counted\)/);
  assert.match(kinds, /bots, crawlers and monitors [\d,]+ \([^)]*, not counted\)/);
  await screenshot('metric');
  // traffic is also counted through the live requests: its status mix is on screen.
  await withRefresh(async () => {
    await page.goto(`${worker.url}/_bpm/#/metric/traffic`); // same document: a hash change
  });
  await page.locator('#metric-status .u-legend').getByText(/^2xx/).waitFor();
  // A ratio metric has a value and a baseline but no latency or status mix.
  await withRefresh(async () => {
    await page.goto(`${worker.url}/_bpm/#/metric/login_success`);
  });
  assert.equal(await page.locator('#metric-title').textContent(), 'login_success');
  assert.equal(await page.locator('#metric-counted').isVisible(), false);
  assert.equal(await page.locator('#metric-count canvas').count(), 1);
});

test('the Digest view previews the latest week before any digest is sent', async () => {
  await withRefresh(async () => {
    await page.getByRole('link', { name: 'Digest' }).click();
  });
  await page.locator('#digest-title').waitFor();
  assert.match(await page.locator('#digest-title').textContent(), /^BPM digest: demo, \w{3} \d\d \w{3} \d{4} – \w{3} \d\d \w{3} \d{4}$/);
  assert.equal(await page.locator('#digest-status').getAttribute('data-sent'), 'false');
  const preview = await apiJson('/_bpm/api/digest');
  const logins = preview.metrics.find((m) => m.metric === 'logins');
  const row = page.locator('table.digest-metrics tr[data-metric="logins"]');
  const cells = await row.locator('td').allTextContents();
  assert.equal(cells[0].replace(/[^\d]/g, ''), String(Math.round(logins.value)));
  assert.equal(await page.locator('table.digest-metrics tr[data-metric]').count(), preview.metrics.length);
  await screenshot('digest');
});

test('on a phone (390 px) the header, Mission Control and the referral view fit the screen', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    const views = [
      ['#/', 'article.bpm[data-metric="logins"]', 'mission-control-phone'],
      ['#/referrals', 'table[data-table="source"] tbody tr', 'referrals-phone'],
    ];
    for (const [hash, ready, shot] of views) {
      await withRefresh(async () => {
        await page.goto(`${worker.url}/_bpm/${hash}`);
      });
      await page.locator(ready).first().waitFor();
      const fit = await page.evaluate(() => {
        const box = (id) => document.getElementById(id).getBoundingClientRect();
        return {
          width: window.innerWidth,
          page: document.documentElement.scrollWidth,
          logout: box('logout'),
          banner: box('banner'),
          nav: [...document.querySelectorAll('.topbar nav a')].map((a) => a.getBoundingClientRect().right),
        };
      });
      assert.ok(fit.page <= fit.width, `${hash}: the page is ${fit.page} px wide on a ${fit.width} px screen`);
      assert.ok(fit.logout.width > 0 && fit.logout.left >= 0 && fit.logout.right <= fit.width, `${hash}: Log out at ${JSON.stringify(fit.logout)}`);
      assert.ok(fit.nav.every((right) => right <= fit.width), `${hash}: nav links end at ${fit.nav}`);
      assert.ok(fit.banner.right <= fit.width, `${hash}: banner ${JSON.stringify(fit.banner)}`);
      await screenshot(shot);
    }
  } finally {
    await page.setViewportSize({ width: 1400, height: 900 });
  }
});

test('auto-refresh keeps the page and scroll position; a 401 and logging out show the login form', async () => {
  await page.goto(`${worker.url}/_bpm/#/referrals`);
  await page.locator('table[data-table="source"] tbody tr').first().waitFor();
  await settled();
  await page.evaluate(() => window.scrollTo(0, 400));
  const y = await page.evaluate(() => window.scrollY);
  const table = await page.$('table[data-table="source"]');
  const canvas = await page.$('#ref-chart canvas');
  // The 30 s timer, untouched: the same table and chart are updated in place.
  const before = await refreshCount();
  await page.waitForFunction((n) => Number(document.body.dataset.refreshes ?? 0) > n, before, { timeout: 40_000 });
  assert.equal(await page.evaluate(() => window.scrollY), y);
  assert.equal(await table.evaluate((t) => t.isConnected), true);
  assert.equal(await canvas.evaluate((c) => c.isConnected), true);
  // A 401 on any data call (here: the session cookie is gone) brings the login form back.
  await context.clearCookies();
  await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
  await page.getByText('Your session ended; log in again.').waitFor();
  assert.equal(await page.locator('#view-referrals').isVisible(), false);
  await withRefresh(async () => {
    await page.getByLabel('API token').fill(TEST_TOKEN);
    await page.getByRole('button', { name: 'Log in' }).click();
  });
  assert.equal(await page.locator('#view-referrals').isVisible(), true);
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByLabel('API token').waitFor();
  const status = await page.evaluate(async () => (await fetch('api/overview', { credentials: 'same-origin' })).status);
  assert.equal(status, 401);
});

test('behind Cloudflare Access the dashboard opens without the login form, and Log out ends the Access session', async () => {
  const accessPage = await context.newPage();
  accessPage.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  accessPage.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
  try {
    // What Cloudflare adds to every request that passed the Access policy.
    const jwt = sign(team.published[0], userClaims(team, ACCESS_AUD, 'oncall@example.com'));
    await accessPage.setExtraHTTPHeaders({ 'cf-access-jwt-assertion': jwt });
    await context.clearCookies();
    await accessPage.goto(`${worker.url}/_bpm/`);
    await accessPage.locator('article.bpm[data-metric="logins"] .badge.state').waitFor();
    assert.equal(await accessPage.locator('#login').isVisible(), false);
    assert.equal(await accessPage.locator('#view-mission').isVisible(), true);
    const logout = accessPage.getByRole('button', { name: 'Log out' });
    assert.match(await logout.getAttribute('title'), /oncall@example\.com through Cloudflare Access/);
    // Cloudflare's edge answers this path itself; stand in for it here.
    await accessPage.route('**/cdn-cgi/access/logout', (route) =>
      route.fulfill({ status: 200, contentType: 'text/html', body: '<p>Logged out of Cloudflare Access</p>' }));
    await Promise.all([accessPage.waitForURL(`${worker.url}/cdn-cgi/access/logout`), logout.click()]);
    await accessPage.getByText('Logged out of Cloudflare Access').waitFor();
  } finally {
    await accessPage.close();
  }
});

test('no console errors, no Content-Security-Policy violation, and no request left 127.0.0.1', async () => {
  // 401s are the login flow's own answers (a wrong token, the logged-out check).
  const unexpected = consoleErrors.filter((e) => !/status of 401/.test(e));
  assert.deepEqual(unexpected, []);
  // The dashboard runs under the strict policy it is served with.
  const shell = await fetch(`${worker.url}/_bpm/`);
  await shell.arrayBuffer();
  assert.match(shell.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  assert.deepEqual(await page.evaluate(() => window.__cspViolations), []);
  assert.ok(requestUrls.length > 10);
  for (const u of requestUrls) {
    const url = new URL(u);
    if (url.protocol === 'data:' || url.protocol === 'blob:') continue;
    assert.equal(url.hostname, '127.0.0.1', u);
  }
});
