// metric.js — one BPM in detail: count over time against its baseline band,
// p50/p95/p99 latency, who sent its hits (browser / client / bot, and which
// kinds the metric counts), the status-class mix, the alert
// history of its rules with every transition and the window that caused it,
// and a panel that simulates one of its rules, edited, on the stored
// history (POST /api/simulate): what it would have fired is marked on the
// count chart, and the rule's TOML can be copied.

import { annotationsIn, call, withQuery } from './api.js';
import * as f from './format.js';
import { timeChart, COLORS, colorFor } from './charts.js';
import { baselineData, BASELINE_SERIES, headline, shownState, stateLabel } from './mission.js';
import { alertList, historyNotice, muteForm, windowText } from './alerts.js';

export function createMetric({ title, about, form, stateBox, countHost, countedBox, bots, latencyHost, latencyEmpty, statusHost, statusEmpty, historyBox, simulate, onOverview, refresh: refreshAll }) {
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
  let annotationMarks = [];
  let simulatedMarks = [];
  let lastCount = null;
  const redrawCount = () => lastCount && countChart.update(lastCount, undefined, [...annotationMarks, ...simulatedMarks]);
  simulate.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    runSimulation();
  });
  simulate.copy.addEventListener('click', () => {
    navigator.clipboard?.writeText(simulate.toml.textContent).catch(() => {});
  });

  /** The simulation request of the form: the rule and the fields filled in. */
  function simulationBody() {
    const v = (k) => simulate.form.elements[k].value.trim();
    const body = { rule: v('rule') };
    for (const k of ['delta', 'z']) if (v(k)) body[k] = Number(v(k));
    for (const k of ['for', 'days']) if (v(k)) body[k] = Math.round(Number(v(k)));
    if (v('windows')) body.windows = v('windows').split(/[\s,]+/).filter(Boolean);
    return body;
  }

  async function runSimulation() {
    const button = simulate.form.querySelector('button[type="submit"]');
    button.disabled = true;
    simulate.result.textContent = 'Simulating…';
    try {
      const sim = await call('simulate', { method: 'POST', body: simulationBody() });
      simulatedMarks = sim.episodes.map((e, i) => ({
        id: `simulated-${i}`,
        kind: 'simulated',
        at: e.fired,
        text: e.resolved ? `would have fired for ${f.duration(e.resolved - e.fired)}` : 'would have fired, still firing',
      }));
      redrawCount();
      const episodes = sim.episodes.map((e) => `${f.dateTime(e.fired * 1000)} (${e.resolved ? f.duration(e.resolved - e.fired) : 'still firing'}, lowest ${e.lowest_ratio === null ? '—' : f.share(e.lowest_ratio)})`);
      simulate.result.textContent = sim.episodes.length
        ? `${sim.rule} would have fired ${sim.episodes.length === 1 ? 'once' : `${sim.episodes.length} times`} in ${f.dateTime(sim.from * 1000)} – ${f.dateTime(sim.to * 1000)}: ${episodes.join(' · ')}`
        : `${sim.rule} would not have fired in ${f.dateTime(sim.from * 1000)} – ${f.dateTime(sim.to * 1000)}.`;
      simulate.toml.textContent = sim.toml;
      simulate.toml.hidden = false;
      simulate.copy.hidden = false;
    } catch (e) {
      simulate.result.textContent = `Not simulated: ${e.message}`;
    } finally {
      button.disabled = false;
    }
  }

  /** The rules the panel offers: this metric's rules on its total. */
  function fillRules(m) {
    const rules = [...new Set((m.alerts ?? []).filter((a) => !a.by).map((a) => a.rule))];
    const select = simulate.form.elements.rule;
    if (JSON.stringify(rules) === select.dataset.rules) return;
    select.dataset.rules = JSON.stringify(rules);
    select.replaceChildren(...rules.map((r) => f.el('option', { value: r, text: r })));
    simulate.form.querySelector('button[type="submit"]').disabled = !rules.length;
  }
  const muteSlot = f.el('div', { class: 'mute-slot' });
  const alertsBox = f.el('div', { class: 'alerts' });
  const numbers = f.el('p', { class: 'numbers' });
  const badge = f.el('span', { class: 'badge state' });

  form.range.addEventListener('change', () => refreshAll());

  function show(metric) {
    if (metric !== name) {
      name = metric;
      alertsKey = '';
      simulatedMarks = [];
      lastCount = null;
      simulate.toml.hidden = true;
      simulate.copy.hidden = true;
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

  async function renderCounted(m, ov, marks) {
    countedBox.hidden = m.kind === 'ratio';
    if (m.kind === 'ratio') return;
    const range = { metric: m.name, from: ov.from, to: ov.to, step: 'hour' };
    const [plain, status] = await Promise.all([call(withQuery('series', range)), call(withQuery('series', { ...range, by: 'status' }))]);
    const xs = plain.points.map((p) => f.secs(p.t));
    latencyChart.update([xs, plain.points.map((p) => p.p50_ms ?? null), plain.points.map((p) => p.p95_ms ?? null), plain.points.map((p) => p.p99_ms ?? null)], undefined, marks);
    latencyEmpty.hidden = plain.points.some((p) => p.p50_ms !== null && p.p50_ms !== undefined);
    bots.replaceChildren(...kindBreakdown(plain));
    const sx = status.series[0]?.points.map((p) => f.secs(p.t)) ?? xs;
    const statusSeries = status.series.map((s, i) => ({ label: `${s.value} (${f.num(s.total)})`, color: colorFor(s.value, i) }));
    statusChart.update([sx, ...status.series.map((s) => s.points.map((p) => p.count ?? null))], statusSeries, marks);
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
    fillRules(m);
    annotationMarks = await annotationsIn(ov.from, ov.to);
    lastCount = baselineData(m.points ?? []);
    redrawCount();
    await Promise.all([renderCounted(m, ov, annotationMarks), renderHistory(m)]);
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
