// app.js — the dashboard's entry point: hash routing between Mission
// Control (#/), Referrals (#/referrals), the Digest (#/digest), a metric's
// detail (#/metric/NAME) and All sites (#/sites); login and logout through
// /_bpm/api/session (an HttpOnly cookie, or a Cloudflare Access identity the
// worker verified); after a login, the site the page shows (its `?site=NAME`,
// else the worker's choice from /_bpm/api/sites; sites.js) and the header's
// site switcher and All sites link for a login that sees two or more; and
// the 30 s auto-refresh that updates the shown view in place.

import { call, currentSite, onUnauthorized, setSite } from './api.js';
import * as f from './format.js';
import { createMission } from './mission.js';
import { createReferrals } from './referrals.js';
import { createMetric } from './metric.js';
import { createDigest } from './digest.js';
import { setDefaultAuthor } from './alerts.js';
import { createSites, pickSite, siteUrl } from './sites.js';

const REFRESH_MS = 30_000;
const $ = (id) => document.getElementById(id);

let loggedIn = false;
// Where "Log out" goes when the page came through Cloudflare Access (its
// own logout path); null for a token login, which ends the cookie session.
let accessLogout = null;
let site = null;
// The sites this login may see (GET /api/sites; empty for an older worker
// without it) and the one the page shows.
let sites = [];
let active = null;
let running = null;
let again = false;
let refreshes = 0;

function onOverview(ov) {
  if (!ov?.site) return;
  if (site?.timezone !== ov.site.timezone) f.setTimeZone(ov.site.timezone || 'UTC');
  site = ov.site;
  $('site-name').textContent = site.name;
}

async function ensureSite() {
  if (!site) onOverview(await call('overview?range=24h'));
}

const views = {
  mission: createMission({ root: $('stages'), banner: $('banner'), onOverview, refresh }),
  referrals: createReferrals({
    form: $('ref-controls'),
    period: $('ref-period'),
    total: $('ref-total'),
    totalChange: $('ref-total-change'),
    uniques: $('ref-uniques'),
    uniquesSub: $('ref-uniques-sub'),
    chartHost: $('ref-chart'),
    tablesHost: $('ref-tables'),
    csvLink: $('ref-csv'),
    ensureSite,
    refresh,
  }),
  digest: createDigest({ status: $('digest-status'), host: $('digest-body') }),
  sites: createSites({ host: $('sites-list'), summary: $('sites-summary'), getSites: () => ({ sites, current: currentSite() }) }),
  metric: createMetric({
    title: $('metric-title'),
    about: $('metric-about'),
    form: $('metric-controls'),
    stateBox: $('metric-state'),
    countHost: $('metric-count'),
    countedBox: $('metric-counted'),
    bots: $('metric-bots'),
    latencyHost: $('metric-latency'),
    latencyEmpty: $('metric-latency-empty'),
    statusHost: $('metric-status'),
    statusEmpty: $('metric-status-empty'),
    historyBox: $('metric-history'),
    simulate: { form: $('simulate-form'), result: $('simulate-result'), toml: $('simulate-toml'), copy: $('simulate-copy') },
    onOverview,
    refresh,
  }),
};
const TITLES = { mission: 'Mission Control', referrals: 'Referrals', digest: 'Digest', metric: 'Metric', sites: 'All sites' };

function route() {
  const hash = location.hash || '#/';
  if (hash.startsWith('#/referrals')) return { view: 'referrals' };
  if (hash.startsWith('#/digest')) return { view: 'digest' };
  if (hash.startsWith('#/sites')) return { view: 'sites' };
  const m = /^#\/metric\/([^/?]+)/.exec(hash);
  if (m) return { view: 'metric', name: decodeURIComponent(m[1]) };
  return { view: 'mission' };
}

function showView() {
  const r = route();
  if (active !== r.view) views[active]?.leave?.();
  active = r.view;
  if (r.view === 'metric') views.metric.show(r.name);
  for (const name of Object.keys(views)) $(`view-${name}`).hidden = !loggedIn || name !== active;
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === active) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `bpm-edge · ${r.view === 'metric' ? r.name : TITLES[r.view]}`;
}

/** One refresh of the shown view; a failure keeps the data already on screen. */
async function refreshOnce() {
  try {
    await views[active].refresh();
    $('refreshed').textContent = `Updated ${f.clockSeconds(new Date())}`;
    $('refreshed').classList.remove('stale');
  } catch (e) {
    if (e.status !== 401 && loggedIn) {
      $('refreshed').textContent = `Refresh failed (${e.message}); showing earlier data`;
      $('refreshed').classList.add('stale');
    }
  }
}

/**
 * Refreshes the shown view. A call while one runs asks for one more run
 * (so the latest choice is always shown); body[data-refreshes] counts the
 * times the page settled, and main[aria-busy] marks a refresh under way.
 */
async function refresh() {
  if (!loggedIn) return;
  if (running) {
    again = true;
    return running;
  }
  const main = document.querySelector('main');
  main.setAttribute('aria-busy', 'true');
  running = (async () => {
    do {
      again = false;
      await refreshOnce();
    } while (again && loggedIn);
  })();
  try {
    await running;
  } finally {
    running = null;
    main.removeAttribute('aria-busy');
    refreshes += 1;
    document.body.dataset.refreshes = String(refreshes);
  }
}

function showLogin(message) {
  loggedIn = false;
  $('banner').hidden = true;
  $('logout').hidden = true;
  $('refreshed').textContent = '';
  $('login').hidden = false;
  showView();
  const error = $('login-error');
  error.textContent = message ?? '';
  error.hidden = !message;
  $('login-token').focus();
}

/**
 * Reads the sites this login may see and picks the one to show (see
 * sites.js pickSite). A page already showing another site (a new login
 * with a token for other sites) loads again on the right one; a `?site=`
 * this login cannot see is replaced in the address. An older worker
 * without /api/sites (404) leaves one site, the host's, and no switcher.
 * Resolves false when the page is being replaced.
 */
async function chooseSite() {
  const wanted = new URLSearchParams(location.search).get('site');
  let answer;
  try {
    answer = await call('sites');
  } catch (e) {
    if (e.status === 401) throw e;
    sites = [];
    // A worker that lists no sites (404) knows no `site=`; any other
    // failure keeps the address's choice, which the worker then judges.
    if (e.status !== 404 && wanted && !currentSite()) setSite(wanted);
    showSites();
    return true;
  }
  sites = Array.isArray(answer?.sites) ? answer.sites.filter((s) => typeof s?.name === 'string' && s.name) : [];
  const name = pickSite(sites, answer?.current, wanted);
  const before = currentSite();
  if (before && name && before !== name) {
    location.replace(siteUrl(location.href, name));
    return false;
  }
  if (wanted && name && wanted !== name) history.replaceState(history.state, '', siteUrl(location.href, name));
  setSite(name);
  const chosen = sites.find((s) => s.name === name);
  if (chosen && !site) {
    $('site-name').textContent = chosen.name;
    if (typeof chosen.timezone === 'string' && chosen.timezone) {
      f.setTimeZone(chosen.timezone);
      site = { name: chosen.name, timezone: chosen.timezone };
    }
  }
  showSites();
  return true;
}

/** The switcher and the All sites link: only for two sites or more. */
function showSites() {
  const many = sites.length >= 2;
  const select = $('site-switch');
  if (many) {
    const key = JSON.stringify(sites.map((s) => s.name));
    if (select.dataset.sites !== key) {
      select.dataset.sites = key;
      select.replaceChildren(...sites.map((s) => f.el('option', { value: s.name, text: s.name })));
    }
    select.value = currentSite() ?? '';
  }
  $('site-switch-box').hidden = !many;
  document.querySelector('a[data-nav="sites"]').hidden = !many;
}

$('site-switch').addEventListener('change', (ev) => {
  const name = ev.target.value;
  if (name && name !== currentSite()) location.assign(siteUrl(location.href, name));
});

/** After the session is accepted: the site first, then the view. */
async function enterDashboard() {
  try {
    if (!(await chooseSite())) return;
  } catch (e) {
    showLogin(e.status === 401 ? undefined : `Could not read the sites: ${e.message}`);
    return;
  }
  showDashboard();
}

function showDashboard() {
  loggedIn = true;
  $('login').hidden = true;
  $('logout').hidden = false;
  showView();
  refresh();
}

onUnauthorized(() => {
  if (loggedIn) showLogin('Your session ended; log in again.');
});

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const input = $('login-token');
  const button = ev.target.querySelector('button');
  button.disabled = true;
  try {
    await call('session', { method: 'POST', body: { token: input.value } });
    input.value = '';
    $('login-error').hidden = true;
    await enterDashboard();
  } catch (e) {
    showLogin(e.status === 401 ? 'That token was not accepted.' : `Could not log in: ${e.message}`);
    input.select();
  } finally {
    button.disabled = false;
  }
});

$('logout').addEventListener('click', async () => {
  if (accessLogout) {
    window.location.assign(accessLogout);
    return;
  }
  try {
    await call('session', { method: 'DELETE' });
  } finally {
    showLogin();
  }
});

window.addEventListener('hashchange', () => {
  showView();
  refresh();
});
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) refresh();
});
setInterval(() => {
  if (!document.hidden) refresh();
}, REFRESH_MS);

call('session')
  .then((who) => {
    accessLogout = who?.via === 'access' ? who.logout : null;
    if (who?.via === 'access') setDefaultAuthor(who.name);
    $('logout').title = who?.via === 'access' ? `Signed in as ${who.name} through Cloudflare Access` : '';
    return enterDashboard();
  })
  .catch(() => showLogin());
