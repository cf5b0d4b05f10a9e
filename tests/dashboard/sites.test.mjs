// Several sites from one deployment (www/js/sites.js and www/js/api.js):
// which site the page shows, the address that switches site, the All sites
// view's rows (each site's Mission Control banner line from its overview
// answer, or why it could not be read) and `site=NAME` on API calls.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pickSite, siteLink, siteRows, sitesSummary, siteUrl } from '../../www/js/sites.js';
import { ApiError, withQuery, withSite } from '../../www/js/api.js';
import { bannerText } from '../../www/js/banner.js';
import * as f from '../../www/js/format.js';

const SITES = [
  { name: 'shop', url: 'https://shop.example.com', timezone: 'Europe/Berlin', role: 'admin' },
  { name: 'blog', url: 'https://blog.example.com', timezone: 'UTC', role: 'read' },
  { name: 'docs', url: 'https://docs.example.com', timezone: 'UTC', role: 'write' },
];
const rule = (name, state, extra = {}) => ({ rule: name, severity: 'critical', state, evaluated: true, silenced: false, ...extra });
const metric = (name, alerts) => ({ name, window: { ratio: 0.5 }, alerts });
const overview = (metrics) => ({ site: { name: 'x', timezone: 'UTC' }, metrics });
const ok = (value) => ({ status: 'fulfilled', value });
const failed = (reason) => ({ status: 'rejected', reason });

test('the page shows its ?site= when listed, else the first listed; without one, the worker\'s current', () => {
  assert.equal(pickSite(SITES, 'shop', 'blog'), 'blog');
  assert.equal(pickSite(SITES, 'docs', 'nope'), 'shop');
  assert.equal(pickSite(SITES, 'docs', null), 'docs');
  assert.equal(pickSite(SITES, 'elsewhere', ''), 'shop');
  assert.equal(pickSite([SITES[1]], 'blog', null), 'blog');
  assert.equal(pickSite([], 'shop', 'shop'), null);
  assert.equal(pickSite(undefined, undefined, undefined), null);
});

test('switching site keeps the path, the other parameters and the hash', () => {
  assert.equal(siteUrl('https://shop.example.com/_bpm/#/referrals', 'blog'), 'https://shop.example.com/_bpm/?site=blog#/referrals');
  assert.equal(siteUrl('https://shop.example.com/_bpm/?site=shop&x=1#/metric/logins', 'b&g'), 'https://shop.example.com/_bpm/?site=b%26g&x=1#/metric/logins');
  assert.equal(siteLink('blog'), '?site=blog#/');
  assert.equal(siteLink('a b&c'), '?site=a%20b%26c#/');
});

test('a firing site, a normal site and a site that cannot be read each get their own row', () => {
  const firing = overview([metric('logins', [rule('logins_drop', 'firing')]), metric('signups', [rule('signups_drop', 'ok')])]);
  const normal = overview([metric('views', [rule('views_drop', 'ok')]), metric('comments', [])]);
  const rows = siteRows(SITES, [ok(firing), ok(normal), failed(new ApiError(500, 'storage unavailable'))], 'blog');
  assert.equal(rows.length, 3);
  assert.deepEqual(rows.map((r) => [r.name, r.level]), [['shop', 'firing'], ['blog', 'ok'], ['docs', 'error']]);
  assert.equal(rows[0].text, '1 firing: logins −50%');
  assert.equal(rows[0].text, bannerText(firing.metrics).text);
  assert.equal(rows[1].text, 'All 1 BPMs normal · 1 without an alert rule');
  assert.equal(rows[2].text, 'Could not read this site: storage unavailable');
  assert.deepEqual(rows.map((r) => r.current), [false, true, false]);
  assert.deepEqual(rows.map((r) => r.href), ['?site=shop#/', '?site=blog#/', '?site=docs#/']);
  assert.deepEqual(rows.map((r) => r.role), ['admin', 'read', 'write']);
  assert.equal(rows[0].url, 'https://shop.example.com');
  assert.equal(sitesSummary(rows), '3 sites · 1 firing · 1 normal · 1 unreadable');
});

test('a site gone from this login reads as not found; an answer without metrics is no crash', () => {
  const rows = siteRows(SITES.slice(0, 2), [failed(new ApiError(404, 'no such site')), ok(null)]);
  assert.equal(rows[0].level, 'error');
  assert.match(rows[0].text, /^Could not read this site: not found/);
  assert.equal(rows[1].level, 'ok');
  const network = siteRows([SITES[0]], [failed(new TypeError('Failed to fetch'))]);
  assert.equal(network[0].text, 'Could not read this site: Failed to fetch');
});

test('a one-site list gives one row; rows not read yet say so', () => {
  const pending = overview([metric('logins', [rule('logins_drop', 'pending')])]);
  const one = siteRows([SITES[0]], [ok(pending)], 'shop');
  assert.equal(one.length, 1);
  assert.deepEqual(
    { name: one[0].name, level: one[0].level, current: one[0].current },
    { name: 'shop', level: 'pending', current: true },
  );
  assert.equal(one[0].text, 'Nothing firing · 1 pending: logins −50%');
  assert.equal(sitesSummary(one), '1 site · 1 pending');
  const loading = siteRows(SITES.slice(0, 2));
  assert.deepEqual(loading.map((r) => r.level), ['loading', 'loading']);
  assert.deepEqual(siteRows([], []), []);
});

test('API calls carry site=NAME after ? or &, never twice, and not on the session or the site list', () => {
  assert.equal(withSite('overview?range=24h', 'blog'), 'overview?range=24h&site=blog');
  assert.equal(withSite('alerts', 'blog'), 'alerts?site=blog');
  assert.equal(withSite('receivers/slack/enable', 'a b'), 'receivers/slack/enable?site=a%20b');
  assert.equal(withSite(withQuery('referrals', { from: 'x', to: 'y' }), 'blog'), 'referrals?from=x&to=y&site=blog');
  assert.equal(withSite(withQuery('overview', { range: '24h', site: 'docs' }), 'blog'), 'overview?range=24h&site=docs');
  assert.equal(withSite('overview?', 'blog'), 'overview?site=blog');
  assert.equal(withSite('session', 'blog'), 'session');
  assert.equal(withSite('sites', 'blog'), 'sites');
  assert.equal(withSite('silences/abc', 'blog'), 'silences/abc?site=blog');
  assert.equal(withSite('overview?range=24h', null), 'overview?range=24h');
});

test('each row reads its times in its own site\'s zone, and the page\'s zone is kept', () => {
  const since = new Date(Date.now() - 10 * 60_000).toISOString();
  const firing = overview([metric('logins', [rule('logins_drop', 'firing', { since })])]);
  f.setTimeZone('UTC');
  const rows = siteRows([SITES[0], SITES[1]], [ok(firing), ok(firing)]);
  assert.equal(f.timeZone(), 'UTC');
  assert.equal(rows[1].text, bannerText(firing.metrics).text);
  f.setTimeZone('Europe/Berlin');
  const berlin = bannerText(firing.metrics).text;
  f.setTimeZone('UTC');
  assert.equal(rows[0].text, berlin);
  assert.notEqual(rows[0].text, rows[1].text);
});
