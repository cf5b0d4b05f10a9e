// banner.js — the words of Mission Control's top banner, from the overview's
// metrics: what is firing, else what is pending, else whether every BPM a
// rule watches was judged and found normal. Pure (no DOM), so it is tested
// under Node (tests/dashboard/banner.test.mjs).

import * as f from './format.js';

/** `{ level, text }`: level is firing, pending, learning or ok. */
export function bannerText(metrics) {
  const firing = metrics.filter((m) => m.alerts?.some((a) => a.state === 'firing' && !a.silenced));
  const pending = metrics.filter((m) => !firing.includes(m) && m.alerts?.some((a) => a.state === 'pending' && !a.silenced));
  const muted = metrics.filter((m) => m.alerts?.some((a) => a.state === 'firing' && a.silenced));
  const describe = (m, state) => {
    const a = m.alerts.find((x) => x.state === state && !x.silenced);
    const since = a?.since ? ` since ${f.since(a.since)}` : '';
    // A `by` rule's alert is about one value, not the total: name it.
    if (a?.by && a.value) return `${m.name} (${a.by} ${a.value})${since}`;
    const drop = m.window?.ratio !== null && m.window?.ratio !== undefined ? ` ${f.ratioChange(m.window.ratio)}` : '';
    return `${m.name}${drop}${since}`;
  };
  const mutedNote = muted.length ? ` (${muted.length} firing but muted: ${muted.map((m) => m.name).join(', ')})` : '';
  if (firing.length) {
    return { level: 'firing', text: `${firing.length} firing: ${firing.map((m) => describe(m, 'firing')).join(' · ')}` };
  }
  if (pending.length) {
    return { level: 'pending', text: `Nothing firing · ${pending.length} pending: ${pending.map((m) => describe(m, 'pending')).join(' · ')}${mutedNote}` };
  }
  // "Normal" only for what a rule has judged and found so: a BPM without
  // a rule, or whose rules are unjudged or still learning, is said apart.
  const watched = metrics.filter((m) => m.alerts?.length);
  const unwatched = metrics.length - watched.length;
  const tail = unwatched ? ` · ${unwatched} without an alert rule` : '';
  const notYet = watched.filter((m) => m.alerts.every((a) => a.evaluated === false));
  const learning = watched.filter((m) => !notYet.includes(m) && m.alerts.some((a) => a.state === 'learning'));
  const names = (list) => list.map((m) => m.name).join(', ');
  if (watched.length && notYet.length === watched.length) {
    return { level: 'learning', text: `Not judged yet: the alert rules run once a minute${tail}` };
  }
  if (notYet.length || learning.length) {
    const normal = watched.length - notYet.length - learning.length;
    const parts = [`Nothing firing · ${normal} of ${watched.length} BPMs normal`];
    if (learning.length) parts.push(`${learning.length} still learning their baseline (${names(learning)})`);
    if (notYet.length) parts.push(`${notYet.length} not judged yet (${names(notYet)})`);
    return { level: 'learning', text: `${parts.join(' · ')}${mutedNote}${tail}` };
  }
  return { level: 'ok', text: `All ${watched.length} BPMs normal${mutedNote}${tail}` };
}
