// sites.js — several sites from one deployment: which site the page shows
// (its `?site=NAME`, else the worker's `current` from GET /api/sites), the
// address that switches to another (same hash, full page load), and the
// All sites view (#/sites): one row per site the caller may see with its
// Mission Control banner line (banner.js) from that site's 24 h overview,
// read concurrently; a site that cannot be read says so in its own row.
// The rows' words are pure functions, tested under Node
// (tests/dashboard/sites.test.mjs).

import { call, withQuery } from './api.js';
import * as f from './format.js';
import { bannerText } from './banner.js';

/**
 * The site to show: `wanted` (the page's `?site=`) when the caller sees it;
 * a name the caller does not see falls back to the first listed site; no
 * `wanted` means `current` (the page host's site) or, failing that, the
 * first listed. Null for an empty list.
 */
export function pickSite(sites, current, wanted) {
  const names = (sites ?? []).map((s) => s.name);
  if (!names.length) return null;
  if (wanted) return names.includes(wanted) ? wanted : names[0];
  return names.includes(current) ? current : names[0];
}

/** `href` (the page's address) switched to site `name`, keeping its path, other parameters and hash. */
export function siteUrl(href, name) {
  const u = new URL(href);
  u.searchParams.set('site', name);
  return u.href;
}

/** The page-relative link to a site's Mission Control. */
export const siteLink = (name) => `?site=${encodeURIComponent(name)}#/`;

const reasonText = (reason) => {
  if (reason?.status === 404) return 'not found (no such site, or not visible to this login)';
  return reason?.message || String(reason ?? 'unknown error');
};

/** `fn()` with times shown in `tz` (a site's own zone), then the zone shown before. */
function inZone(tz, fn) {
  if (typeof tz !== 'string' || !tz || tz === f.timeZone()) return fn();
  const before = f.timeZone();
  f.setTimeZone(tz);
  try {
    return fn();
  } finally {
    f.setTimeZone(before);
  }
}

/**
 * One row per site, in the listed order: `{ name, url, role, href, current,
 * level, text }`. `results[i]` is the Promise.allSettled outcome of site i's
 * `overview?range=24h` (undefined while it is still read): the banner line
 * of its metrics, its times in the site's own zone as on its Mission Control
 * (level firing, pending, learning or ok), or `error` and
 * why it could not be read, or `loading`.
 */
export function siteRows(sites, results = [], current = null) {
  return (sites ?? []).map((s, i) => {
    const r = results[i];
    const row = { name: s.name, url: s.url ?? '', role: s.role ?? '', href: siteLink(s.name), current: s.name === current };
    if (!r) return { ...row, level: 'loading', text: 'Loading…' };
    if (r.status === 'rejected') return { ...row, level: 'error', text: `Could not read this site: ${reasonText(r.reason)}` };
    const b = inZone(s.timezone, () => bannerText(r.value?.metrics ?? []));
    return { ...row, level: b.level, text: b.text };
  });
}

const SUMMARY = [
  ['firing', 'firing'],
  ['pending', 'pending'],
  ['learning', 'learning or not judged yet'],
  ['ok', 'normal'],
  ['error', 'unreadable'],
  ['loading', 'loading'],
];

/** "3 sites · 1 firing · 2 normal": how many sites are at each level, worst first. */
export function sitesSummary(rows) {
  const parts = [`${rows.length} site${rows.length === 1 ? '' : 's'}`];
  for (const [level, label] of SUMMARY) {
    const n = rows.filter((r) => r.level === level).length;
    if (n) parts.push(`${n} ${label}`);
  }
  return parts.join(' · ');
}

const ROLE_TEXT = { admin: 'admin', write: 'can write', read: 'read only' };

/**
 * The All sites view in `host`, with its summary line in `summary`. `getSites`
 * answers the list (empty when the worker does not list sites) and the
 * shown site's name. Rows are built once per site and updated in place.
 */
export function createSites({ host, summary, getSites }) {
  const rows = new Map();
  let listKey = '';

  function buildRow(r) {
    const refs = {};
    refs.link = f.el('a', { href: r.href, text: r.name });
    refs.current = f.el('span', { class: 'badge', text: 'shown' });
    refs.role = f.el('span', { class: 'badge role' });
    refs.url = f.el('p', { class: 'site-url muted' });
    refs.banner = f.el('p', { class: 'site-banner' });
    const node = f.el('article', { class: 'site', 'data-site': r.name },
      f.el('header', {}, f.el('h2', {}, refs.link), refs.current, refs.role),
      refs.url,
      refs.banner);
    return { node, refs };
  }

  function update(entry, r) {
    const { node, refs } = entry;
    node.className = `site site-${r.level}`;
    refs.current.hidden = !r.current;
    refs.role.textContent = ROLE_TEXT[r.role] ?? r.role;
    refs.role.hidden = !r.role;
    refs.url.textContent = r.url;
    refs.url.hidden = !r.url;
    refs.banner.className = `site-banner banner-${r.level}`;
    refs.banner.dataset.level = r.level;
    if (refs.banner.textContent !== r.text) refs.banner.textContent = r.text;
  }

  function show(list) {
    const key = JSON.stringify(list.map((r) => r.name));
    if (key !== listKey) {
      listKey = key;
      for (const r of list) if (!rows.has(r.name)) rows.set(r.name, buildRow(r));
      host.replaceChildren(...list.map((r) => rows.get(r.name).node));
    }
    for (const r of list) update(rows.get(r.name), r);
  }

  async function refresh() {
    const { sites, current } = getSites();
    if (!sites.length) {
      listKey = '';
      summary.textContent = 'This worker does not list its sites (an older version): Mission Control shows the one this address serves.';
      host.replaceChildren();
      return;
    }
    if (!listKey) show(siteRows(sites, [], current));
    const results = await Promise.allSettled(sites.map((s) => call(withQuery('overview', { range: '24h', site: s.name }))));
    const list = siteRows(sites, results, current);
    show(list);
    const words = sitesSummary(list);
    if (summary.textContent !== words) summary.textContent = words;
  }

  return { refresh };
}
