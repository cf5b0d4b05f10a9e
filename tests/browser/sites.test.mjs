// sites.test.mjs — the dashboard of a deployment with two sites
// (tests/e2e/sites.toml, built into build/sites/), as a person uses it:
// Debian's headless Chromium, with shop.test and blog.test resolved to
// 127.0.0.1, against `wrangler dev`. The admin opens the shop's dashboard
// on the shop's host, switches to the blog with the site switcher, and
// reads both sites' banners in the All sites view (the shop firing, the
// blog normal); at 1400 px and at 390 px nothing is cut off. A token
// scoped to the shop logs in through the same form and sees no switcher,
// no All sites link, and nothing of the blog.
//
// Seeding: four weeks of per-minute history for each site through
// POST /api/backfill?site= (the shop's logins stop 15 minutes before T0),
// then cron ticks until the shop's logins_drop fires.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS } from './chromium.mjs';
import { startOrigin, startWorker, ARTIFACTS, TEST_TOKEN, BROWSER_UA, cronTick, minuteCsv } from '../e2e/harness.mjs';

const SHOTS = path.join(ARTIFACTS, 'screenshots');
const MIN = 60;
const SHOP_READER = 'shop-reader-0123456789';
const TOKENS = { 'shop-marketing': { token: SHOP_READER, sites: ['shop'], role: 'read' } };

let origin;
let worker;
let userDataDir;
let context;
let page;
const consoleErrors = [];
const requestHosts = new Set();

const apiJson = async (p, init = {}) => {
  const res = await fetch(`${worker.url}${p}`, {
    ...init,
    headers: { authorization: `Bearer ${TEST_TOKEN}`, ...(init.headers ?? {}) },
    signal: AbortSignal.timeout(120_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${p}: ${res.status} ${text}`);
  return JSON.parse(text);
};

/** The dashboard on `host` (resolved to 127.0.0.1 by Chromium). */
const dashboard = (host, rest = '') => `http://${host}:${worker.port}/_bpm/${rest}`;

async function screenshot(name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** Nothing wider than the screen; Log out, the nav and the switcher on it. */
async function assertFits(what) {
  const fit = await page.evaluate(() => {
    const box = (el) => el.getBoundingClientRect();
    const visible = (el) => el && !el.closest('[hidden]') && box(el).width > 0;
    return {
      width: window.innerWidth,
      page: document.documentElement.scrollWidth,
      logout: box(document.getElementById('logout')),
      nav: [...document.querySelectorAll('.topbar nav a')].filter(visible).map((a) => box(a).right),
      switcher: visible(document.getElementById('site-switch')) ? box(document.getElementById('site-switch')).right : 0,
    };
  });
  assert.ok(fit.page <= fit.width, `${what}: the page is ${fit.page} px wide on a ${fit.width} px screen`);
  assert.ok(fit.logout.width > 0 && fit.logout.left >= 0 && fit.logout.right <= fit.width, `${what}: Log out at ${JSON.stringify(fit.logout)}`);
  assert.ok(fit.nav.every((right) => right <= fit.width), `${what}: nav links end at ${fit.nav}`);
  assert.ok(fit.switcher <= fit.width, `${what}: the site switcher ends at ${fit.switcher}`);
}

async function logIn(token) {
  await page.getByLabel('API token').waitFor();
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('#login').waitFor({ state: 'hidden' });
}

before(async () => {
  origin = await startOrigin({ port: 0 });
  worker = await startWorker({
    originUrl: origin.url,
    label: 'browser-sites',
    buildDir: 'build/sites',
    vars: { BPM_API_TOKENS: JSON.stringify(TOKENS) },
  });
  // Four weeks of history a minute, for each site's metrics; the shop's
  // logins stop 15 minutes before T0.
  const T0 = Math.floor(Date.now() / 1000 / 300) * 300 - 300;
  const start = T0 - 28 * 24 * 3600;
  const shop = minuteCsv({ logins: 10, page_views: 30, subscriptions: 1 }, ['page_views', 'subscriptions'], start, T0 + 5 * MIN)
    + minuteCsv({ logins: 10 }, ['logins'], start, T0 - 15 * MIN).split('\n').slice(1).join('\n');
  const blog = minuteCsv({ page_views: 20 }, ['page_views'], start, T0 + 5 * MIN);
  for (const [site, csv] of [['shop', shop], ['blog', blog]]) {
    await apiJson(`/_bpm/api/backfill?site=${site}`, { method: 'POST', headers: { 'content-type': 'text/csv' }, body: csv });
  }
  for (const t of [T0 + MIN, T0 + 6 * MIN, T0 + 11 * MIN]) {
    await cronTick(worker, t);
    const rules = (await apiJson('/_bpm/api/alerts?site=shop')).alerts;
    if (rules.find((a) => a.rule === 'logins_drop')?.state === 'firing') break;
  }
  const logins = (await apiJson('/_bpm/api/alerts?site=shop')).alerts.find((a) => a.rule === 'logins_drop');
  assert.equal(logins.state, 'firing', JSON.stringify(logins));
  const views = (await apiJson('/_bpm/api/alerts?site=blog')).alerts.find((a) => a.rule === 'page_views_drop');
  assert.ok(views && views.state !== 'firing', JSON.stringify(views));

  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bpm-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    // The two sites' hosts, on this machine only.
    args: [...CHROMIUM_ARGS, '--host-resolver-rules=MAP shop.test 127.0.0.1, MAP blog.test 127.0.0.1'],
    viewport: { width: 1400, height: 900 },
    userAgent: BROWSER_UA,
  });
  context.on('request', (r) => requestHosts.add(new URL(r.url()).hostname));
  page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => {
    // A logged-out page's session check answers 401: its cue to show the
    // login form, not an error.
    if (m.type() === 'error' && !/status of 401/.test(m.text())) consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
});

after(async () => {
  await context?.close();
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  await worker?.stop();
  await origin?.close();
});

test("on the shop's host the admin sees the shop, and switches to the blog", async () => {
  await page.goto(dashboard('shop.test'));
  await logIn(TEST_TOKEN);
  await page.waitForFunction(() => document.getElementById('site-name')?.textContent === 'shop');
  await page.locator('article.bpm[data-metric="subscriptions"]').waitFor();
  assert.match(await page.locator('#banner').textContent(), /^1 firing: logins/);
  const options = await page.locator('#site-switch option').allTextContents();
  assert.deepEqual(options.map((o) => o.trim()), ['shop', 'blog']);
  assert.equal(await page.locator('#site-switch').isVisible(), true);

  await page.locator('#site-switch').selectOption('blog');
  await page.waitForURL(/[?&]site=blog/);
  await page.waitForFunction(() => document.getElementById('site-name')?.textContent === 'blog');
  await page.locator('article.bpm[data-metric="page_views"]').waitFor();
  // The blog's own metrics only, and its own (normal) banner.
  assert.equal(await page.locator('article.bpm[data-metric="logins"]').count(), 0);
  assert.equal(await page.locator('article.bpm[data-metric="subscriptions"]').count(), 0);
  assert.doesNotMatch(await page.locator('#banner').textContent(), /firing/);
  await screenshot('sites-blog-mission-control');
});

test('All sites shows each site with its own banner, at 1400 px and at 390 px', async () => {
  // The session cookie is the shop's host's: the blog's host asks again.
  await page.goto(dashboard('blog.test', '#/sites'));
  await logIn(TEST_TOKEN);
  await page.locator('[data-site="shop"] .site-banner[data-level="firing"]').waitFor();
  await page.locator('[data-site="blog"] .site-banner:not([data-level="loading"])').waitFor();
  assert.match(await page.locator('[data-site="shop"] .site-banner').textContent(), /^1 firing: logins/);
  const blog = page.locator('[data-site="blog"] .site-banner');
  assert.notEqual(await blog.getAttribute('data-level'), 'firing');
  assert.notEqual(await blog.getAttribute('data-level'), 'error');
  // On the blog's host without `?site=`, the blog is the one shown.
  assert.equal(await page.locator('#site-name').textContent(), 'blog');
  await assertFits('All sites at 1400 px');
  await screenshot('sites');
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    await page.reload();
    await page.locator('[data-site="shop"] .site-banner[data-level="firing"]').waitFor();
    await assertFits('All sites at 390 px');
    await screenshot('sites-phone');
    await page.goto(dashboard('shop.test', '?site=shop#/'));
    await page.locator('article.bpm[data-metric="logins"]').waitFor();
    await assertFits('the shop at 390 px');
  } finally {
    await page.setViewportSize({ width: 1400, height: 900 });
  }
  // Following the shop's row opens the shop's Mission Control.
  await page.goto(dashboard('blog.test', '#/sites'));
  await page.locator('[data-site="shop"] h2 a').click();
  await page.waitForURL(/[?&]site=shop/);
  await page.waitForFunction(() => document.getElementById('site-name')?.textContent === 'shop');
});

test("a token scoped to the shop logs in and sees nothing of the blog", async () => {
  await context.clearCookies();
  await page.goto(dashboard('blog.test', '?site=blog#/'));
  await logIn(SHOP_READER);
  await page.waitForFunction(() => document.getElementById('site-name')?.textContent === 'shop');
  await page.locator('article.bpm[data-metric="logins"]').waitFor();
  assert.equal(await page.locator('#site-switch').isVisible(), false);
  assert.equal(await page.locator('a[data-nav="sites"]').isVisible(), false);
  assert.doesNotMatch(await page.locator('body').innerText(), /blog/i);
});

test('every request stayed on this machine and the console stayed clean', async () => {
  for (const host of requestHosts) assert.ok(['shop.test', 'blog.test', '127.0.0.1'].includes(host), host);
  assert.deepEqual(consoleErrors, []);
});
