// alerts.js — an alert as the on-call person reads it (rule, severity,
// state, since when, the detector's explanation, where a firing drop
// happened, who muted it until when),
// the mute form that creates a silence through POST /api/silences, and the
// notice of a webhook receiver a 410 disabled, with its Re-enable button
// (POST /api/receivers/NAME/enable).

import { call } from './api.js';
import * as f from './format.js';

const AUTHOR_KEY = 'bpm-edge.author';
const DURATIONS = ['30m', '1h', '2h', '4h', '8h', '24h', '3d', '7d'];
// The mute form's author when this browser has not typed one yet: the
// Cloudflare Access identity, if the page came through Access.
let defaultAuthor = '';

/** Sets the author the mute form starts with (see defaultAuthor). */
export function setDefaultAuthor(name) {
  defaultAuthor = name ?? '';
}

/**
 * One element per alert; mute offered while it is pending or firing. brief:
 * the detector's explanation only where the state is not plain ok/learning.
 */
export function alertList(alerts, { onMute, onUnmuted, brief = false }) {
  return alerts.map((a) => {
    const box = f.el('div', { class: `alert alert-${a.silenced ? 'silenced' : a.state}`, 'data-rule': a.rule });
    const since = a.since && a.state !== 'ok' && a.state !== 'learning' ? ` since ${f.since(a.since)}` : '';
    box.append(
      f.el('p', { class: 'alert-head' },
        // A `by` rule names the value its most urgent instance watches.
        f.el('strong', { text: a.value ? `${a.rule} · ${a.by ? `${a.by} ` : ''}${a.value}` : a.rule }),
        ` (${a.severity}) · `,
        f.el('span', { class: 'alert-state', text: a.state }),
        since),
    );
    const quiet = brief && (a.state === 'ok' || a.state === 'learning') && !a.silenced;
    if (a.explanation && !quiet) box.append(f.el('p', { class: 'explanation', text: a.explanation }));
    // Where a firing drop happened (the dimension values that lost most).
    if (a.drop_explanation?.text && a.state === 'firing') {
      box.append(f.el('p', { class: 'where' }, f.el('strong', { text: 'Where: ' }), a.drop_explanation.text));
    }
    for (const s of a.silences ?? []) {
      const unmute = f.el('button', { type: 'button', class: 'quiet unmute', text: 'Unmute' });
      unmute.addEventListener('click', async () => {
        unmute.disabled = true;
        try {
          await call(`silences/${encodeURIComponent(s.id)}`, { method: 'DELETE' });
          onUnmuted();
        } catch (e) {
          unmute.disabled = false;
          unmute.title = e.message;
        }
      });
      box.append(f.el('p', { class: 'silence' }, `Muted until ${f.since(s.until)} by ${s.author}: “${s.reason}” `, unmute));
    }
    if ((a.state === 'firing' || a.state === 'pending') && !a.silenced) {
      const mute = f.el('button', { type: 'button', class: 'mute', text: 'Mute…' });
      mute.addEventListener('click', () => onMute(a));
      box.append(mute);
    }
    return box;
  });
}

/** The form that mutes `rule`; calls done() once the silence exists (or on cancel). */
export function muteForm(rule, { done }) {
  const id = `mute-${rule}-${Math.random().toString(36).slice(2, 8)}`;
  const form = f.el('form', { class: 'mute-form', 'aria-label': `Mute ${rule}` });
  const duration = f.el('select', { id: `${id}-d`, name: 'duration' }, ...DURATIONS.map((d) => f.el('option', { value: d, selected: d === '2h', text: d })));
  const reason = f.el('input', { id: `${id}-r`, name: 'reason', required: true, maxlength: 500, placeholder: 'e.g. known, fix deploying' });
  const author = f.el('input', { id: `${id}-a`, name: 'author', required: true, maxlength: 100, autocomplete: 'name' });
  author.value = localStorage.getItem(AUTHOR_KEY) ?? defaultAuthor;
  const error = f.el('p', { class: 'error', role: 'alert', hidden: true });
  const submit = f.el('button', { type: 'submit', text: `Mute ${rule}` });
  const cancel = f.el('button', { type: 'button', class: 'quiet', text: 'Cancel' });
  form.append(
    f.el('p', { class: 'mute-title', text: `Mute ${rule} (no notifications while muted)` }),
    f.el('label', { for: duration.id, text: 'For' }), duration,
    f.el('label', { for: reason.id, text: 'Reason' }), reason,
    f.el('label', { for: author.id, text: 'Your name' }), author,
    f.el('span', { class: 'actions' }, submit, ' ', cancel),
    error,
  );
  cancel.addEventListener('click', done);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    error.hidden = true;
    try {
      await call('silences', {
        method: 'POST',
        body: { rule, duration: duration.value, reason: reason.value.trim(), author: author.value.trim() },
      });
      localStorage.setItem(AUTHOR_KEY, author.value.trim());
      done();
    } catch (e) {
      error.textContent = `Not muted: ${e.message}`;
      error.hidden = false;
      submit.disabled = false;
    }
  });
  queueMicrotask(() => reason.focus());
  return form;
}

/**
 * One notice per disabled webhook receiver (from GET /api/alerts
 * `receivers`): since when, why, how many messages it holds, and a
 * Re-enable button; onEnabled() runs once the worker re-enabled it. Enabled
 * receivers give nothing, so a healthy site shows no panel at all.
 */
export function receiverNotices(receivers, { onEnabled }) {
  return (receivers ?? []).filter((r) => !r.enabled).map((r) => {
    const box = f.el('div', { class: 'receiver-disabled', 'data-receiver': r.name });
    const button = f.el('button', { type: 'button', class: 'enable', text: `Re-enable ${r.name}` });
    const error = f.el('span', { class: 'error', role: 'alert', hidden: true });
    button.addEventListener('click', async () => {
      button.disabled = true;
      error.hidden = true;
      try {
        await call(`receivers/${encodeURIComponent(r.name)}/enable`, { method: 'POST' });
        onEnabled();
      } catch (e) {
        button.disabled = false;
        error.textContent = `Not re-enabled: ${e.message}`;
        error.hidden = false;
      }
    });
    const since = r.disabled_since ? ` since ${f.since(r.disabled_since)}` : '';
    const held = r.held ? ` ${r.held} message${r.held === 1 ? '' : 's'} held for it (sent on re-enabling if under 16 h old).` : '';
    box.append(
      f.el('p', {},
        f.el('strong', { text: `Webhook receiver ${r.name} is disabled${since}` }),
        `: ${r.disabled_reason || 'no reason recorded'}. Nothing is sent to it until it is re-enabled.${held} `,
        button, ' ', error),
    );
    return box;
  });
}

/**
 * The notice of a history line as a person reads it. A silence's lines carry
 * the silence (the history keeps it after the silence list drops it):
 * "Muted until Mon 24 Nov, 08:00 by ana: “deploy”" and "Unmuted (sil_…)".
 */
export function historyNotice(h) {
  const s = h.silence;
  if (!s) return h.notice ?? '';
  const scope = s.rule === '*' ? ' (all rules)' : '';
  if (h.notice === 'silence deleted') return `Unmuted${scope}: silence ${s.id} deleted`;
  return `Muted${scope} until ${f.dateTime(s.until)} by ${s.author}: “${s.reason}”`;
}

/** "1h window: 12 observed vs 130.5 expected (−91%), z = −9.8" from a detector window. */
export function windowText(w) {
  if (!w) return '';
  const len = w.window >= 3600 && w.window % 3600 === 0 ? `${w.window / 3600}h` : `${Math.round(w.window / 60)}m`;
  const expected = w.expected === null || w.expected === undefined ? 'no baseline' : `${f.num(w.expected)} expected (${f.ratioChange(w.ratio)})`;
  const z = w.z === null || w.z === undefined ? '' : `, z = ${f.num(w.z).replace('-', '−')}`;
  return `${len} window: ${f.num(w.observed)} observed vs ${expected}${z}`;
}
