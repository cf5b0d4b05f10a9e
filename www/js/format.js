// format.js — how numbers and times read on screen: counts, ratios and
// changes, and every time in the site's own time zone (site.timezone from
// the overview) through Intl.DateTimeFormat.

let zone = 'UTC';
const cache = new Map();

/** Sets the IANA zone every time below is shown in (falls back to UTC). */
export function setTimeZone(tz) {
  try {
    new Intl.DateTimeFormat('en-GB', { timeZone: tz });
    zone = tz;
  } catch {
    zone = 'UTC';
  }
  cache.clear();
}

export const timeZone = () => zone;

function formatter(key, options) {
  let f = cache.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', { timeZone: zone, ...options });
    cache.set(key, f);
  }
  return f;
}

const toDate = (t) => (t instanceof Date ? t : new Date(t));

/** "06:40" */
export const clock = (t) => formatter('clock', { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(toDate(t));
/** "06:40:12" */
export const clockSeconds = (t) =>
  formatter('clocks', { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(toDate(t));
/** "Mon 24 Nov, 06:40" */
export const dateTime = (t) =>
  formatter('dt', { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(toDate(t));
/** "06:40" today, else "Mon 24 Nov, 06:40". */
export function since(t) {
  const day = formatter('day', { year: 'numeric', month: '2-digit', day: '2-digit' });
  return day.format(toDate(t)) === day.format(new Date()) ? clock(t) : dateTime(t);
}

/** The zone's offset from UTC at instant `ms`, in ms. */
function offsetAt(ms) {
  const parts = formatter('parts', {
    year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
  }).formatToParts(new Date(ms));
  const p = Object.fromEntries(parts.map((x) => [x.type, Number(x.value)]));
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - Math.floor(ms / 1000) * 1000;
}

/** "2026-11-24T07:00" (wall clock in the site's zone) → Date. */
export function fromZoned(local) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(local ?? '');
  if (!m) return null;
  const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
  let t = wall - offsetAt(wall);
  t = wall - offsetAt(t); // once more across a DST change
  return new Date(t);
}

/** Date → "2026-11-24T07:00" wall clock in the site's zone (for datetime-local). */
export function toZoned(t) {
  const ms = toDate(t).getTime();
  return new Date(ms + offsetAt(ms)).toISOString().slice(0, 16);
}

const whole = new Intl.NumberFormat('en-GB', { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat('en-GB', { maximumFractionDigits: 1 });

/** A count or value: "1,234", "12.5"; "—" when missing. */
export function num(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  return Math.abs(v) >= 100 || Number.isInteger(v) ? whole.format(v) : oneDecimal.format(v);
}

/** A change as a signed percentage with a real minus: "+9%", "−91%"; "—" when unknown. */
export function change(c) {
  if (c === null || c === undefined || !Number.isFinite(c)) return '—';
  const pct = Math.round(c * 100);
  if (pct === 0) return '±0%';
  return `${pct > 0 ? '+' : '−'}${Math.abs(pct)}%`;
}

/** observed/expected as a change: ratio 0.09 → "−91%". */
export const ratioChange = (ratio) => change(ratio === null || ratio === undefined ? null : ratio - 1);

/** A share 0..1 as "41.7%". */
export function share(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '—';
  return `${oneDecimal.format(s * 100)}%`;
}

/** RFC 3339 → Unix seconds (uPlot's x values). */
export const secs = (t) => Math.floor(new Date(t).getTime() / 1000);

/** An element with text (never HTML: referrers and UTM values are visitor input). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

/** A span of seconds for people: "45m", "2h 05m", "3d 4h". */
export function duration(s) {
  const m = Math.max(0, Math.round(s / 60));
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}
