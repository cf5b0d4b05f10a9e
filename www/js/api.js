// api.js — the dashboard's only door to the worker's JSON API: same-origin
// calls that carry the session cookie, the CSRF header on writes, the site
// the page shows (`site=NAME` on every call but the session's and the site
// list's, once app.js has chosen it with setSite), and one hook for "not
// logged in" (any 401) that the app turns into the login form.

/** The API answered with an error status (message from its `{"error"}`). */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let unauthorized = () => {};
let site = null;

/** Sets the site every later call is about (null: the worker picks the page host's). */
export function setSite(name) {
  site = name || null;
}

/** The site set with setSite, or null. */
export const currentSite = () => site;

/**
 * `path` with `site=NAME` added to its query (after `?` or `&`), unless no
 * site is set, the path already names one (the All sites view asks about
 * each site in turn), or it is the session or the site list, which are
 * about the caller rather than one site.
 */
export function withSite(path, name = site) {
  if (!name || /^(session|sites)(?:[/?]|$)/.test(path)) return path;
  const at = path.indexOf('?');
  if (at >= 0 && new URLSearchParams(path.slice(at + 1)).has('site')) return path;
  const sep = at < 0 ? '?' : at === path.length - 1 || path.endsWith('&') ? '' : '&';
  return `${path}${sep}site=${encodeURIComponent(name)}`;
}

/** The page-relative address of `api/<path>` for a link (a CSV download), with the site. */
export const apiHref = (path) => `api/${withSite(path)}`;

/** Registers what happens when any call answers 401. */
export function onUnauthorized(fn) {
  unauthorized = fn;
}

/**
 * Calls `api/<path>` (relative to the dashboard, i.e. /_bpm/api/...), about
 * the site set with setSite (see withSite).
 * Resolves with the parsed JSON (null for an empty body); rejects with
 * ApiError. A 401 also calls the onUnauthorized hook, except for the session
 * endpoint itself, whose 401 is the login form's own answer.
 */
export async function call(path, { method = 'GET', body } = {}) {
  const headers = { accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['x-bpm-csrf'] = '1';
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(apiHref(path), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (res.status === 401 && !path.startsWith('session')) unauthorized();
  if (!res.ok) throw new ApiError(res.status, data?.error ?? `HTTP ${res.status}`);
  return data;
}

/** Builds `name?k=v&...` skipping undefined and null values. */
export function withQuery(name, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) q.set(k, String(v));
  const s = q.toString();
  return s ? `${name}?${s}` : name;
}

/**
 * The annotations dated in [from, to) (RFC 3339), oldest first. Marks are
 * extras on a chart: if they cannot be read the chart shows without them
 * (a 401 still reaches the login hook through `call`).
 */
export async function annotationsIn(from, to) {
  try {
    return (await call(withQuery('annotations', { from, to })))?.annotations ?? [];
  } catch {
    return [];
  }
}
