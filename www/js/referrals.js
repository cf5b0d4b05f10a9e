// referrals.js — the marketing team's view: marketing views over time with
// the comparison period, totals and unique visitors, and the tables of
// sources, UTM fields and landing pages with share and change; the range
// picker, the comparison choice and the CSV link of exactly what is shown.
// Annotations of the period are marked on the chart, and its campaign
// annotations listed under the period.

import { annotationsIn, apiHref, call, withQuery } from './api.js';
import * as f from './format.js';
import { timeChart, COLORS } from './charts.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const RANGES = { '1h': HOUR, '24h': DAY, '7d': 7 * DAY, '30d': 30 * DAY, '90d': 90 * DAY };
const TABLES = [
  ['source', 'Sources', 'Source'],
  ['utm_source', 'utm_source', 'utm_source'],
  ['utm_medium', 'utm_medium', 'utm_medium'],
  ['utm_campaign', 'utm_campaign', 'utm_campaign'],
  ['landing', 'Landing pages', 'Page'],
];
const STEP_SECS = { minute: 60, hour: 3600, day: 86400 };
const COMPARE_TEXT = { previous: 'the previous period (same weekdays)', '4w': 'the same period 4 weeks ago' };

/** [from, to) for a named range: to is the next boundary of the range's step. */
export function rangePeriod(range, now = Date.now()) {
  const span = RANGES[range];
  const unit = span <= 2 * HOUR ? 60_000 : span <= 8 * DAY ? HOUR : DAY;
  const to = Math.floor(now / unit) * unit + unit;
  return { from: new Date(to - span), to: new Date(to) };
}

const iso = (d) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

export function createReferrals({ form, period, total, totalChange, uniques, uniquesSub, chartHost, tablesHost, csvLink, ensureSite, refresh: refreshAll }) {
  const chart = timeChart(chartHost, { height: 240, series: [] });
  const tables = new Map();
  const campaigns = f.el('p', { id: 'ref-campaigns', class: 'muted' });
  campaigns.hidden = true;
  period.after(campaigns);
  const customBox = form.querySelector('.custom-range');

  function query() {
    const compare = form.compare.value;
    let p;
    if (form.range.value === 'custom') {
      const from = f.fromZoned(form.from.value);
      const to = f.fromZoned(form.to.value);
      if (!from || !to || to <= from) return null;
      p = { from, to };
    } else {
      p = rangePeriod(form.range.value);
    }
    return { metric: 'marketing_views', from: iso(p.from), to: iso(p.to), compare };
  }

  form.range.addEventListener('change', () => {
    const custom = form.range.value === 'custom';
    customBox.hidden = !custom;
    if (custom && !form.from.value) {
      const p = rangePeriod('24h');
      form.from.value = f.toZoned(p.from);
      form.to.value = f.toZoned(p.to);
    }
    if (!custom) refreshAll();
  });
  form.compare.addEventListener('change', () => refreshAll());
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    refreshAll();
  });

  function table(key, title, column) {
    if (tables.has(key)) return tables.get(key);
    const body = f.el('tbody');
    const node = f.el('table', { class: 'dims', 'data-table': key },
      f.el('caption', { text: title }),
      f.el('thead', {}, f.el('tr', {},
        f.el('th', { scope: 'col', text: column }),
        f.el('th', { scope: 'col', class: 'num', text: 'Views' }),
        f.el('th', { scope: 'col', class: 'num', text: 'Share' }),
        f.el('th', { scope: 'col', class: 'num', text: 'Previous' }),
        f.el('th', { scope: 'col', class: 'num', text: 'Change' }))),
      body);
    tablesHost.append(node);
    const entry = { node, body };
    tables.set(key, entry);
    return entry;
  }

  function rows(list) {
    if (!list?.length) return [f.el('tr', {}, f.el('td', { colspan: 5, class: 'muted', text: 'No views in this period.' }))];
    return list.map((r) =>
      f.el('tr', { 'data-value': r.value },
        f.el('th', { scope: 'row', text: r.value }),
        f.el('td', { class: 'num count', text: f.num(r.count) }),
        f.el('td', { class: 'num', text: f.share(r.share) }),
        f.el('td', { class: 'num', text: f.num(r.previous) }),
        f.el('td', { class: `num ${r.change < 0 ? 'down' : ''}`, text: f.change(r.change) })));
  }

  async function refresh() {
    await ensureSite();
    const q = query();
    if (!q) {
      period.textContent = 'Choose a start before the end.';
      return;
    }
    const data = await call(withQuery('referrals', q));
    csvLink.href = apiHref(withQuery('referrals', { ...q, format: 'csv' }));
    const cmp = data.compare && data.compare.mode !== 'none'
      ? ` · compared with ${COMPARE_TEXT[data.compare.mode] ?? data.compare.mode}: ${f.dateTime(data.compare.from)} – ${f.dateTime(data.compare.to)}`
      : '';
    period.textContent = `${f.dateTime(data.from)} – ${f.dateTime(data.to)} (${f.timeZone()}, by ${data.step})${cmp}`;
    total.textContent = f.num(data.total.count);
    totalChange.textContent = q.compare === 'none' ? '' : `${f.change(data.total.change)} vs ${f.num(data.total.previous)}`;
    if (data.uniques) {
      uniques.textContent = f.num(data.uniques.count);
      const err = data.uniques.error ? `estimate ±${f.share(data.uniques.error)}` : 'estimate';
      uniquesSub.textContent = q.compare === 'none' || data.uniques.previous === undefined ? err : `${err} · previous ${f.num(data.uniques.previous)}`;
    } else {
      uniques.textContent = '—';
      uniquesSub.textContent = 'not counted';
    }
    const withPrevious = q.compare !== 'none';
    // The step still running is left off the chart (a half-counted hour is
    // no drop); the tables and the CSV include it.
    const step = STEP_SECS[data.step] ?? 3600;
    const nowSecs = Date.now() / 1000;
    const points = data.points.filter((p) => f.secs(p.t) + step <= nowSecs);
    const series = [{ label: 'views', color: COLORS.value }];
    const data2 = [points.map((p) => f.secs(p.t)), points.map((p) => p.count ?? null)];
    if (withPrevious) {
      series.push({ label: 'comparison', color: COLORS.previous, dash: [5, 4] });
      data2.push(points.map((p) => p.previous ?? null));
    }
    const marks = await annotationsIn(q.from, q.to);
    chart.update(data2, series, marks);
    const started = marks.filter((a) => a.kind === 'campaign');
    campaigns.hidden = !started.length;
    campaigns.replaceChildren(...(started.length ? ['Campaigns in this period: ', ...started.flatMap((a, i) => [
      ...(i ? [' · '] : []),
      f.el('span', { class: 'campaign', 'data-id': a.id, text: `${a.text} (${f.dateTime(a.time)})` }),
    ])] : []));
    for (const [key, title, column] of TABLES) table(key, title, column).body.replaceChildren(...rows(data.tables?.[key]));
  }

  return { refresh };
}
