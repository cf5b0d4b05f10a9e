// app.js — the dashboard's entry point: hash routing between Mission
// Control (#/), Referrals (#/referrals), the Digest (#/digest) and a
// metric's detail (#/metric/NAME); login and logout through /_bpm/api/session (an HttpOnly
// cookie, or a Cloudflare Access identity the worker verified); and the
// 30 s auto-refresh that updates the shown view in place.

import { call, onUnauthorized } from './api.js';
import * as f from './format.js';
import { createMission } from './mission.js';
import { createReferrals } from './referrals.js';
import { createMetric } from './metric.js';
import { createDigest } from './digest.js';
import { setDefaultAuthor } from './alerts.js';

const REFRESH_MS = 30_000;
const $ = (id) => document.getElementById(id);

let loggedIn = false;
// Where "Log out" goes when the page came through Cloudflare Access (its
// own logout path); null for a token login, which ends the cookie session.
let accessLogout = null;
let site = null;
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
const TITLES = { mission: 'Mission Control', referrals: 'Referrals', digest: 'Digest', metric: 'Metric' };

function route() {
  const hash = location.hash || '#/';
  if (hash.startsWith('#/referrals')) return { view: 'referrals' };
  if (hash.startsWith('#/digest')) return { view: 'digest' };
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
    showDashboard();
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
    showDashboard();
  })
  .catch(() => showLogin());
