// metric.js — one BPM in detail: count over time against its baseline band,
// p50/p95/p99 latency, who sent its hits (browser / client / bot, and which
// kinds the metric counts), the status-class mix, and the alert
// history of its rules with every transition and the window that caused it.

import { call, withQuery } from './api.js';
import * as f from './format.js';
import { timeChart, COLORS, colorFor } from './charts.js';
import { baselineData, BASELINE_SERIES, headline, shownState, stateLabel } from './mission.js';
import { alertList, historyNotice, muteForm, windowText } from './alerts.js';

export function createMetric({ title, about, form, stateBox, countHost, countedBox, bots, latencyHost, latencyEmpty, statusHost, statusEmpty, historyBox, onOverview, refresh: refreshAll }) {
  const countChart = timeChart(countHost, { height: 240, series: BASELINE_SERIES });
  const latencyChart = timeChart(latencyHost, {
    height: 200,
    series: [
      { label: 'p50', color: COLORS.p50 },
      { label: 'p95', color: COLORS.p95 },
      { label: 'p99', color: COLORS.p99 },
    ],
  });
  const statusChart = timeChart(statusHost, { height: 200, series: [] });
  let name = null;
  let alertsKey = '';
  const muteSlot = f.el('div', { class: 'mute-slot' });
  const alertsBox = f.el('div', { class: 'alerts' });
  const numbers = f.el('p', { class: 'numbers' });
  const badge = f.el('span', { class: 'badge state' });

  form.range.addEventListener('change', () => refreshAll());

  function show(metric) {
    if (metric !== name) {
      name = metric;
      alertsKey = '';
      title.textContent = metric;
      about.textContent = '';
      historyBox.replaceChildren(f.el('p', { class: 'muted', text: 'Loading…' }));
      stateBox.replaceChildren(f.el('p', {}, badge, ' ', numbers), alertsBox, muteSlot);
      muteSlot.replaceChildren();
    }
  }

  function renderAbout(m) {
    const runbook = m.runbook ? f.el('a', { href: m.runbook, rel: 'noopener noreferrer', target: '_blank', text: 'runbook' }) : null;
    const kind = m.kind === 'ratio' ? 'ratio' : 'counted';
    about.replaceChildren(`${m.description} · stage ${m.stage} · ${kind} · owner ${m.owner}`, runbook ? ' · ' : '', runbook ?? '');
  }

  async function renderHistory(m) {
    const rules = (m.alerts ?? []).map((a) => a.rule);
    if (!rules.length) {
      historyBox.replaceChildren(f.el('p', { class: 'muted', text: 'No alert rule watches this metric.' }));
      return;
    }
    const answers = await Promise.all(rules.map((r) => call(withQuery('alerts/history', { rule: r, limit: 50 }))));
    // A silence of all rules ("*") is in every rule's answer: list it once.
    const seen = new Set();
    const entries = answers
      .flatMap((a) => a.history ?? [])
      .filter((h) => {
        if (!h.silence) return true;
        const key = `${h.silence.id} ${h.notice}`;
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
      })
      .sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
    if (!entries.length) {
      historyBox.replaceChildren(f.el('p', { class: 'muted', text: `No transitions yet for ${rules.join(', ')}.` }));
      return;
    }
    const body = f.el('tbody', {}, ...entries.map((h) =>
      f.el('tr', {},
        f.el('td', { text: f.dateTime(h.at) }),
        f.el('td', { text: h.value ? `${h.rule} · ${h.value}` : h.rule }),
        f.el('td', { text: h.from || h.to ? `${h.from ?? '—'} → ${h.to ?? '—'}` : historyNotice(h) }),
        f.el('td', { text: h.from || h.to ? historyNotice(h) : '' }),
        f.el('td', { class: 'muted', text: windowText(h.window) }))));
    historyBox.replaceChildren(f.el('table', { class: 'history' },
      f.el('thead', {}, f.el('tr', {}, ...['When', 'Rule', 'Transition', 'Notice', 'Why'].map((t) => f.el('th', { scope: 'col', text: t })))),
      body));
  }

  async function renderCounted(m, ov) {
    countedBox.hidden = m.kind === 'ratio';
    if (m.kind === 'ratio') return;
    const range = { metric: m.name, from: ov.from, to: ov.to, step: 'hour' };
    const [plain, status] = await Promise.all([call(withQuery('series', range)), call(withQuery('series', { ...range, by: 'status' }))]);
    const xs = plain.points.map((p) => f.secs(p.t));
    latencyChart.update([xs, plain.points.map((p) => p.p50_ms ?? null), plain.points.map((p) => p.p95_ms ?? null), plain.points.map((p) => p.p99_ms ?? null)]);
    latencyEmpty.hidden = plain.points.some((p) => p.p50_ms !== null && p.p50_ms !== undefined);
    bots.replaceChildren(...kindBreakdown(plain));
    const sx = status.series[0]?.points.map((p) => f.secs(p.t)) ?? xs;
    const statusSeries = status.series.map((s, i) => ({ label: `${s.value} (${f.num(s.total)})`, color: colorFor(s.value, i) }));
    statusChart.update([sx, ...status.series.map((s) => s.points.map((p) => p.count ?? null))], statusSeries);
    statusEmpty.hidden = status.series.some((s) => s.total > 0);
  }

  async function refresh() {
    if (!name) return;
    const ov = await call(withQuery('overview', { range: form.range.value, metric: name }));
    onOverview(ov);
    const m = ov.metrics.find((x) => x.name === name);
    if (!m) {
      stateBox.replaceChildren(f.el('p', { class: 'error', text: `There is no metric named “${name}” in this site's configuration.` }));
      return;
    }
    renderAbout(m);
    const state = shownState(m);
    badge.textContent = stateLabel(state);
    badge.className = `badge state state-${state}`;
    const h = headline(m);
    numbers.textContent = `${h.value} ${h.label} · ${h.vs} ${h.change}`;
    const key = JSON.stringify(m.alerts ?? []);
    if (key !== alertsKey) {
      alertsKey = key;
      alertsBox.replaceChildren(...alertList(m.alerts ?? [], {
        onMute: (a) => muteSlot.replaceChildren(muteForm(a.rule, { done: () => { muteSlot.replaceChildren(); refreshAll(); } })),
        onUnmuted: refreshAll,
      }));
    }
    countChart.update(baselineData(m.points ?? []));
    await Promise.all([renderCounted(m, ov), renderHistory(m)]);
  }

  return { show, refresh };
}

const KIND_LABELS = { browser: 'browsers', client: 'apps and HTTP clients', bot: 'bots, crawlers and monitors' };

/** "Who sent it": every hit of the range by agent kind, counted or not. */
export function kindBreakdown(series) {
  const counted = new Set(series.count ?? ['browser', 'client']);
  const sum = (kind) => series.points.reduce((a, p) => a + (p.kinds?.[kind] ?? (kind === 'bot' ? p.bots ?? 0 : 0)), 0);
  const kinds = ['browser', 'client', 'bot'].map((kind) => ({ kind, n: sum(kind) }));
  const all = kinds.reduce((a, k) => a + k.n, 0);
  const total = series.points.reduce((a, p) => a + (p.count ?? 0), 0);
  const parts = kinds.map(({ kind, n }) => f.el('span', { class: `kind kind-${kind}`, 'data-kind': kind },
    `${KIND_LABELS[kind]} ${f.num(n)} (${f.share(all ? n / all : null)}, ${counted.has(kind) ? 'counted' : 'not counted'})`));
  const joined = parts.flatMap((el, i) => (i ? [' · ', el] : [el]));
  return [`${f.num(total)} counted. Who sent its hits: `, ...joined, '.'];
}
