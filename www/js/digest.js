// digest.js — the Digest view (#/digest): the last digest sent to the
// receivers (GET /api/digest?period=sent) or, before the first, a preview
// of the latest period's; each BPM by stage (with its unique visitors)
// against the period before and its usual value, the period's alerts, referral sources and campaigns,
// and annotations. Built from the JSON (text only, never its HTML body).

import { call } from './api.js';
import * as f from './format.js';

const STAGES = { retention: 'Retention', activation: 'Activation', revenue: 'Revenue', referral: 'Referral', other: 'Other' };

function metricsTable(metrics) {
  const body = f.el('tbody');
  let stage = null;
  for (const m of metrics) {
    if (m.stage !== stage) {
      stage = m.stage;
      body.append(f.el('tr', { class: 'stage-row' }, f.el('th', { colspan: 5, scope: 'rowgroup', text: STAGES[stage] ?? stage })));
    }
    body.append(
      f.el(
        'tr',
        { 'data-metric': m.metric },
        f.el('th', { scope: 'row', text: m.metric }),
        f.el('td', { class: 'num', text: f.num(m.value) }),
        // Unique visitors (an estimate); empty when unknown (a ratio, or
        // history without visitor sketches).
        f.el('td', { class: 'num', text: m.visitors === null || m.visitors === undefined ? '' : f.num(m.visitors) }),
        f.el('td', { class: 'num', text: f.change(m.vs_previous) }),
        f.el('td', { class: 'num', text: f.change(m.vs_baseline) }),
      ),
    );
  }
  const head = f.el(
    'thead',
    {},
    f.el('tr', {}, f.el('th', { text: 'BPM' }), f.el('th', { class: 'num', text: 'This period' }), f.el('th', { class: 'num', text: 'Visitors' }), f.el('th', { class: 'num', text: 'vs before' }), f.el('th', { class: 'num', text: 'vs usual' })),
  );
  return f.el('table', { class: 'digest-metrics' }, head, body);
}

function list(title, items) {
  const box = f.el('section', { class: 'digest-part' }, f.el('h2', { text: title }));
  if (!items.length) box.append(f.el('p', { class: 'muted', text: 'None.' }));
  else box.append(f.el('ul', {}, ...items.map((t) => f.el('li', { text: t }))));
  return box;
}

const mover = (m) => `${m.value} ${f.num(m.now)} (${m.before ? f.change(m.now / m.before - 1) : 'new'})`;

export function createDigest({ status, host }) {
  async function refresh() {
    // `null` until a digest was sent: then the latest period's preview.
    let d = await call('digest?period=sent');
    const sent = d !== null;
    if (!sent) d = await call('digest');
    status.textContent = sent
      ? 'The last digest sent to the receivers.'
      : 'A preview of the latest period: no digest has been sent yet (see [digest] receivers in bpm.toml).';
    status.dataset.sent = String(sent);
    const alerts = d.alerts.map((a) => {
      const lasted = a.resolved ? `lasted ${f.duration(a.resolved - a.fired)}` : 'still firing';
      const name = a.value ? `${a.rule} (${a.value})` : a.rule;
      return `${name} on ${a.metric}: fired ${f.since(new Date(a.fired * 1000).toISOString())}, ${lasted}`;
    });
    const referrals = [];
    if (d.referrals.sources.length) referrals.push(`Top sources: ${d.referrals.sources.map(mover).join(', ')}`);
    if (d.referrals.campaigns.length) referrals.push(`Top campaigns: ${d.referrals.campaigns.map(mover).join(', ')}`);
    if (d.referrals.moved.length) referrals.push(`Moved most: ${d.referrals.moved.map((m) => `${m.dimension} ${m.value}: ${m.before} → ${m.now}`).join(', ')}`);
    const notes = d.annotations.map((a) => `${a.kind}: ${a.version ?? a.text}`);
    host.replaceChildren(
      f.el('h2', { id: 'digest-title', text: d.text }),
      metricsTable(d.metrics),
      list('Alerts', alerts),
      list('Referrals', referrals),
      list('Annotations', notes),
    );
  }
  return { refresh };
}
