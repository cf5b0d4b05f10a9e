// The words of Mission Control's banner (www/js/banner.js), from overview
// metrics shaped as GET /_bpm/api/overview answers them: it says "normal"
// only of BPMs a rule has judged and found so.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bannerText } from '../../www/js/banner.js';

const rule = (name, state, extra = {}) => ({ rule: name, severity: 'critical', state, evaluated: true, silenced: false, ...extra });
const metric = (name, alerts) => ({ name, window: { ratio: 0.5 }, alerts });

test('every watched BPM judged ok reads all normal, and BPMs without a rule are counted apart', () => {
  const b = bannerText([metric('logins', [rule('logins_drop', 'ok')]), metric('signups', [rule('signups_drop', 'resolved')]), metric('subscriptions', [])]);
  assert.deepEqual(b, { level: 'ok', text: 'All 2 BPMs normal · 1 without an alert rule' });
});

test('rules still learning or never judged are not called normal', () => {
  const b = bannerText([
    metric('logins', [rule('logins_drop', 'ok')]),
    metric('signups', [rule('signups_drop', 'learning')]),
    metric('traffic', [rule('site_down', 'learning', { evaluated: false })]),
  ]);
  assert.equal(b.level, 'learning');
  assert.equal(b.text, 'Nothing firing · 1 of 3 BPMs normal · 1 still learning their baseline (signups) · 1 not judged yet (traffic)');
});

test('before the first tick the banner says nothing is judged yet', () => {
  const b = bannerText([metric('logins', [rule('logins_drop', 'learning', { evaluated: false })]), metric('subscriptions', [])]);
  assert.deepEqual(b, { level: 'learning', text: 'Not judged yet: the alert rules run once a minute · 1 without an alert rule' });
});

test('firing wins, then pending; a muted firing alert is named as muted', () => {
  const firing = bannerText([metric('logins', [rule('logins_drop', 'firing')]), metric('signups', [rule('signups_drop', 'learning')])]);
  assert.equal(firing.level, 'firing');
  assert.match(firing.text, /^1 firing: logins −50%$/);
  const pending = bannerText([metric('logins', [rule('logins_drop', 'pending')])]);
  assert.match(pending.text, /^Nothing firing · 1 pending: logins −50%$/);
  const muted = bannerText([metric('logins', [rule('logins_drop', 'firing', { silenced: true })]), metric('signups', [rule('signups_drop', 'ok')])]);
  assert.deepEqual(muted, { level: 'ok', text: 'All 2 BPMs normal (1 firing but muted: logins)' });
});
