// mission.js — Mission Control, the landing view: every BPM grouped by RARR
// stage with its window vs. baseline, a 24 h sparkline with the baseline
// band, its alert state and the mute form; the top banner that answers
// "can I go back to sleep?"; and, above the cards, a notice per webhook
// receiver that is disabled, with its Re-enable button (the banner's words
// are banner.js's). Cards are built once and updated in place.

import { annotationsIn, call } from './api.js';
import * as f from './format.js';
import { timeChart, COLORS } from './charts.js';
import { muteForm, alertList, receiverNotices } from './alerts.js';
import { bannerText } from './banner.js';

const STAGE_TITLES = {
  acquisition: 'Acquisition',
  activation: 'Activation',
  retention: 'Retention',
  revenue: 'Revenue',
  referral: 'Referral',
  other: 'Other',
};

/** The state a person should see: silenced wins, "none" reads "no rule". */
export const shownState = (m) => (m.silenced && m.state !== 'none' ? 'silenced' : m.state);
export const stateLabel = (s) => (s === 'none' ? 'no rule' : s);

/** The headline numbers of a metric: its window, or the 24 h total without a baseline. */
export function headline(m) {
  if (m.window) {
    return {
      value: f.num(m.window.observed),
      label: `last ${m.window.label}`,
      vs: m.window.expected === null || m.window.expected === undefined ? 'no baseline yet' : `vs ${f.num(m.window.expected)} expected`,
      change: f.ratioChange(m.window.ratio),
      ratio: m.window.ratio,
    };
  }
  const values = (m.points ?? []).map((p) => p.value).filter((v) => v !== null && v !== undefined);
  const value = m.kind === 'ratio' ? values.at(-1) ?? null : values.reduce((a, v) => a + v, 0);
  return { value: f.num(value), label: m.kind === 'ratio' ? 'latest' : 'last 24 h', vs: 'not enough history for a baseline', change: '', ratio: null };
}

/**
 * Chart data from overview points. The last point may be partial (a step
 * still running): it is left out, so a half-finished step never reads as a drop.
 */
export function baselineData(all) {
  const points = all.filter((p) => !p.partial);
  return [
    points.map((p) => f.secs(p.t)),
    points.map((p) => p.value ?? null),
    points.map((p) => p.expected ?? null),
    points.map((p) => p.high ?? null),
    points.map((p) => p.low ?? null),
  ];
}
export const BASELINE_SERIES = [
  { label: 'count', color: COLORS.value },
  { label: 'expected', color: COLORS.expected, dash: [4, 3] },
  { label: 'baseline max', band: 'high' },
  { label: 'baseline min', band: 'low' },
];

export function createMission({ root, banner, onOverview, refresh: refreshAll }) {
  const cards = new Map();
  let layoutKey = '';
  const receiversBox = f.el('div', { class: 'receivers', 'aria-live': 'polite' });
  root.before(receiversBox);
  let receiversKey = '';

  // Disabled receivers, from GET /api/alerts. A failed read keeps what is
  // shown (the overview's refresh already reports a broken connection).
  async function refreshReceivers() {
    let data;
    try {
      data = await call('alerts');
    } catch {
      return;
    }
    const off = (data?.receivers ?? []).filter((r) => !r.enabled);
    const key = JSON.stringify(off);
    if (key === receiversKey) return;
    receiversKey = key;
    receiversBox.replaceChildren(...receiverNotices(off, { onEnabled: refreshAll }));
  }

  function buildCard(m) {
    const refs = {};
    const card = f.el('article', { class: 'bpm', 'data-metric': m.name, 'aria-labelledby': `bpm-${m.name}` });
    refs.state = f.el('span', { class: 'badge state' });
    refs.desc = f.el('p', { class: 'desc muted' });
    refs.value = f.el('span', { class: 'bpm-value' });
    refs.label = f.el('span', { class: 'bpm-window muted' });
    refs.vs = f.el('span', { class: 'bpm-vs muted' });
    refs.change = f.el('span', { class: 'bpm-change' });
    refs.spark = f.el('div', { class: 'spark', 'aria-hidden': 'true' });
    refs.alerts = f.el('div', { class: 'alerts' });
    refs.mute = f.el('div', { class: 'mute-slot' });
    card.append(
      f.el('header', {}, f.el('h3', { id: `bpm-${m.name}` }, f.el('a', { href: `#/metric/${encodeURIComponent(m.name)}`, text: m.name })), refs.state),
      refs.desc,
      f.el('p', { class: 'numbers' }, refs.value, ' ', refs.label, f.el('br'), refs.vs, ' ', refs.change),
      refs.spark,
      refs.alerts,
      refs.mute,
    );
    const chart = timeChart(refs.spark, { height: 56, compact: true, series: BASELINE_SERIES });
    return { card, refs, chart, alertsKey: '' };
  }

  function updateCard(entry, m, marks) {
    const { refs } = entry;
    const state = shownState(m);
    entry.card.dataset.state = state;
    entry.card.className = `bpm state-${state}`;
    refs.state.textContent = stateLabel(state);
    refs.state.className = `badge state state-${state}`;
    refs.desc.textContent = m.description;
    const h = headline(m);
    refs.value.textContent = h.value;
    refs.label.textContent = h.label;
    refs.vs.textContent = h.vs;
    refs.change.textContent = h.change;
    refs.change.className = `bpm-change${h.ratio !== null && h.ratio < 0.85 ? ' down' : ''}`;
    entry.chart.update(baselineData(m.points ?? []), undefined, marks);
    const key = JSON.stringify(m.alerts ?? []);
    if (key !== entry.alertsKey) {
      entry.alertsKey = key;
      refs.alerts.replaceChildren(
        ...alertList(m.alerts ?? [], {
          brief: true,
          onMute: (alert) => refs.mute.replaceChildren(muteForm(alert.rule, { done: () => { refs.mute.replaceChildren(); refreshAll(); } })),
          onUnmuted: refreshAll,
        }),
      );
    }
  }

  function layout(data) {
    const stages = [...data.stages];
    for (const m of data.metrics) if (!stages.includes(m.stage)) stages.push(m.stage);
    const key = JSON.stringify(stages.map((s) => [s, data.metrics.filter((m) => m.stage === s).map((m) => m.name)]));
    if (key === layoutKey) return;
    layoutKey = key;
    const sections = [];
    for (const stage of stages) {
      const list = data.metrics.filter((m) => m.stage === stage);
      if (!list.length) continue;
      const grid = f.el('div', { class: 'cards' });
      for (const m of list) {
        if (!cards.has(m.name)) cards.set(m.name, buildCard(m));
        grid.append(cards.get(m.name).card);
      }
      const section = f.el('section', { class: 'stage', 'data-stage': stage }, f.el('h2', { text: STAGE_TITLES[stage] ?? stage }), grid);
      section.style.setProperty('--cards', String(list.length));
      sections.push(section);
    }
    root.replaceChildren(...sections);
  }

  async function refresh() {
    const data = await call('overview?range=24h');
    onOverview(data);
    const b = bannerText(data.metrics);
    banner.className = `banner banner-${b.level}`;
    banner.textContent = b.text;
    banner.hidden = false;
    layout(data);
    const marks = await annotationsIn(data.from, data.to);
    for (const m of data.metrics) updateCard(cards.get(m.name), m, marks);
    await refreshReceivers();
  }

  return { refresh, leave: () => { banner.hidden = true; } };
}
