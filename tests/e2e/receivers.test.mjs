// receivers.test.mjs — end to end: what happens to a webhook receiver that
// answers 410 Gone, a PagerDuty receiver that answers 400, and Alertmanager
// grouping across ticks, against receivers on 127.0.0.1.
//
// Four weeks of history are backfilled; logins stop 15 minutes before T0
// (the current 5-minute bucket) and stay down, signups stop 10 minutes
// after it. The "ops" receiver answers 410 to its first message and 200
// after that; "oncall" (PagerDuty) always answers 400; "alertmanager"
// verifies every message with the official `standardwebhooks` library.
// Evaluations are driven through the cron test endpoint at simulated times
// around T0; delivery runs on real time, as in production. The dashboard
// check drives Debian's headless Chromium (playwright-core, never a
// downloaded browser) and is skipped, saying so, when /usr/bin/chromium is
// missing; the API then re-enables the receiver instead.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Webhook } from 'standardwebhooks';
import { chromium } from 'playwright-core';
import { startOrigin, startWorker, waitFor, TEST_TOKEN, postBackfill, minuteCsv, cronTick, alertsOf } from './harness.mjs';
import { startWebhookSink, amFingerprint, receiverVars, OPS_SECRET, AM_SECRET } from './webhook-sink.mjs';
import { CHROMIUM, CHROMIUM_ARGS } from '../browser/chromium.mjs';

const MIN = 60;
const BUCKET = 300;
const RATES = { logins: 10, traffic: 100, login_views: 12, dashboard_views: 10, signups: 3, marketing_views: 30 };


let origin;
let worker;
let receiver;
// Shared by the receiver tests, in order: the session cookie, the message
// that got the 410, and whether the dashboard's button re-enabled "ops".
let cookie;
let firstOps;
let enabledByDashboard = false;
const T0 = Math.floor(Date.now() / 1000 / BUCKET) * BUCKET;

/** Receivers: /ops answers 410 once then 200, /pd always 400, /am 200. */
async function startReceiver() {
  let opsGone = 1;
  return startWebhookSink({
    verifiers: { '/ops': new Webhook(OPS_SECRET), '/am': new Webhook(AM_SECRET) },
    answer: (path) => {
      if (path === '/pd') return 400;
      if (path === '/ops' && opsGone > 0) {
        opsGone -= 1;
        return 410;
      }
      return 200;
    },
  });
}

const csv = (metrics, from, to) => minuteCsv(RATES, metrics, from, to);

const backfill = (text) => postBackfill(worker, text);

const tick = (t) => cronTick(worker, t);

const alerts = () => alertsOf(worker);

const enable = (name, { token = TEST_TOKEN, headers = {} } = {}) =>
  worker.api(`/_bpm/api/receivers/${name}/enable`, { method: 'POST', token, headers });

before(async () => {
  origin = await startOrigin({ port: 0 });
  receiver = await startReceiver();
  worker = await startWorker({
    originUrl: origin.url,
    label: 'receivers',
    vars: receiverVars(receiver.url, { pagerduty: true }),
  });
  const steady = ['traffic', 'login_views', 'dashboard_views', 'marketing_views'];
  const weeks = T0 - 28 * 86400;
  await backfill(csv(steady, weeks, T0 + 3 * 3600));
  await backfill(csv(['logins'], weeks, T0 - 15 * MIN));
  await backfill(csv(['signups'], weeks, T0 + 10 * MIN));
});

after(async () => {
  await worker?.stop();
  await receiver?.close();
  await origin?.close();
});

test('regression: one 410 disabled a receiver for good', async () => {
  await tick(T0 + 60);
  await tick(T0 + 360);
  await tick(T0 + 420); // logins_drop firing, group wait over: queued
  const gone = await waitFor(() => receiver.to('/ops')[0], { timeoutMs: 30_000, what: 'the ops message' });
  assert.equal(gone.status, 410);
  assert.ok(gone.verified);
  assert.equal(gone.payload.rule, 'logins_drop');

  // Disabled, since when, why, and what it holds.
  const a = await waitFor(async () => {
    const body = await alerts();
    return body.receivers.find((r) => r.name === 'ops' && !r.enabled) && body;
  }, { timeoutMs: 15_000, what: 'ops to be shown disabled' });
  const ops = a.receivers.find((r) => r.name === 'ops');
  assert.equal(ops.format, 'json');
  assert.match(ops.disabled_since, /^\d{4}-\d\d-\d\dT/);
  assert.equal(ops.disabled_reason, `the endpoint answered 410 Gone to ${gone.id}`);
  assert.equal(ops.held, 1);
  assert.equal(ops.queued, 0);
  assert.deepEqual(a.disabled_receivers.map((d) => d.receiver), ['ops']);
  assert.ok(a.receivers.filter((r) => r.name !== 'ops').every((r) => r.enabled));

  // Signups stop at T0+10m: a second alert fires while ops is disabled.
  for (let m = 15; m <= 60; m += 5) {
    await tick(T0 + m * MIN + 50);
    const s = (await alerts()).alerts.find((x) => x.rule === 'signups_drop');
    if (s.state === 'firing') {
      await tick(T0 + m * MIN + 110); // group wait over: queued
      break;
    }
  }
  assert.equal((await alerts()).alerts.find((x) => x.rule === 'signups_drop').state, 'firing');
  // Alertmanager got it; nothing was queued for ops.
  await waitFor(() => receiver.to('/am').find((g) => g.payload.alerts.some((x) => x.labels.alertname === 'signups_drop')), {
    timeoutMs: 30_000,
    what: 'the Alertmanager message about signups',
  });
  await sleep(2000);
  assert.equal(receiver.to('/ops').length, 1, 'nothing was sent to the disabled receiver');
  const still = (await alerts()).receivers.find((r) => r.name === 'ops');
  assert.equal(still.enabled, false);
  assert.equal(still.held, 1, 'nothing new was queued for it');

  // Re-enabling takes the API token, or a session plus the anti-forgery
  // header; a receiver that does not exist is a 404.
  assert.equal((await enable('ops', { token: null })).status, 401);
  const login = await fetch(`${worker.url}/_bpm/api/session`, { method: 'POST', body: JSON.stringify({ token: TEST_TOKEN }) });
  assert.equal(login.status, 204);
  cookie = login.headers.get('set-cookie').split(';')[0];
  const forged = await enable('ops', { token: null, headers: { cookie } });
  assert.equal(forged.status, 401);
  assert.match(forged.body.error, /X-BPM-CSRF/);
  assert.equal((await enable('nope', {})).status, 404);
  assert.equal((await enable('Bad%20Name', {})).status, 404);
  assert.equal((await alerts()).receivers.find((r) => r.name === 'ops').enabled, false, 'refused calls changed nothing');
  firstOps = gone;
});

test('the dashboard shows the disabled receiver and re-enables it', { skip: !fs.existsSync(CHROMIUM) && `no ${CHROMIUM} (bash scripts/ensure-debian-packages.sh)` }, async () => {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bpm-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1400, height: 900 },
  });
  const errors = [];
  const offsite = [];
  try {
    context.on('request', (r) => {
      if (!r.url().startsWith('http://127.0.0.1:')) offsite.push(r.url());
    });
    await context.addCookies([{ name: 'bpm_session', value: cookie.split('=')[1], url: `${worker.url}/_bpm/` }]);
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    await page.goto(`${worker.url}/_bpm/`);
    const notice = page.locator('.receiver-disabled[data-receiver="ops"]');
    await notice.waitFor({ timeout: 30_000 });
    const text = await notice.textContent();
    assert.match(text, /Webhook receiver ops is disabled since /);
    assert.ok(text.includes(`the endpoint answered 410 Gone to ${firstOps.id}`), text);
    assert.match(text, /1 message held for it/);
    assert.equal(await page.locator('.receiver-disabled').count(), 1, 'only the disabled receiver has a notice');
    // The dashboard names its site in every call (`?site=demo`).
    const answered = page.waitForResponse((r) => new URL(r.url()).pathname.endsWith('/_bpm/api/receivers/ops/enable'));
    await notice.getByRole('button', { name: 'Re-enable ops' }).click();
    const res = await answered;
    assert.equal(res.status(), 200);
    assert.deepEqual(await res.json(), { receiver: 'ops', enabled: true, was_disabled: true, requeued: 1, given_up: 0 });
    await notice.waitFor({ state: 'detached', timeout: 30_000 });
    assert.deepEqual(errors, []);
    assert.deepEqual(offsite, []);
    enabledByDashboard = true;
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
});

test('re-enabled, the receiver gets its held message again, under the same webhook-id', async () => {
  const ok = await enable('ops', { token: null, headers: { cookie, 'x-bpm-csrf': '1' } });
  assert.equal(ok.status, 200, ok.text);
  // Without the browser the API re-enables it here; otherwise it is a no-op.
  const expected = enabledByDashboard
    ? { receiver: 'ops', enabled: true, was_disabled: false, requeued: 0, given_up: 0 }
    : { receiver: 'ops', enabled: true, was_disabled: true, requeued: 1, given_up: 0 };
  assert.deepEqual(ok.body, expected);
  const resent = await waitFor(() => receiver.to('/ops').find((g) => g.status === 200), { timeoutMs: 30_000, what: 'the held message after re-enabling' });
  assert.equal(resent.id, firstOps.id);
  assert.ok(resent.verified);
  assert.deepEqual(resent.payload, firstOps.payload);
  const after = await alerts();
  const ops = after.receivers.find((r) => r.name === 'ops');
  assert.deepEqual([ops.enabled, ops.disabled_since, ops.held], [true, null, 0]);
  assert.deepEqual(after.disabled_receivers, []);
  // Notifications skipped while it was disabled are not sent afterwards.
  await sleep(2000);
  assert.deepEqual(receiver.to('/ops').map((g) => g.payload.rule), ['logins_drop', 'logins_drop']);
});

test('regression: a PagerDuty 400 was retried for 16 hours', async () => {
  const first = receiver.to('/pd')[0];
  assert.ok(first, 'PagerDuty got the trigger');
  assert.equal(first.payload.event_action, 'trigger');
  assert.equal(first.signature, undefined, 'PagerDuty messages are never signed');
  await sleep(6000); // past the 5 s retry
  const ids = receiver.to('/pd').map((g) => g.id);
  assert.equal(ids.filter((id) => id === first.id).length, 1, 'not retried');
  const d = (await alerts()).deliveries.find((x) => x.message_id === first.id && x.receiver === 'oncall');
  assert.equal(d.state, 'dead');
  assert.equal(d.attempts, 1);
  assert.equal(d.last_status, 400);
});

test('regression: the second Alertmanager message of a group dropped the first alert', async () => {
  const messages = receiver.to('/am').filter((g) => g.verified);
  assert.equal(messages.length, 2, JSON.stringify(messages.map((m) => m.payload.alerts.map((a) => a.labels.alertname))));
  const [one, two] = messages.map((m) => m.payload);
  assert.equal(one.groupKey, two.groupKey);
  assert.deepEqual(one.alerts.map((a) => [a.labels.alertname, a.status]), [['logins_drop', 'firing']]);
  // Logins still fire: the second message lists both, and the group fires.
  assert.equal(two.status, 'firing');
  assert.deepEqual(two.alerts.map((a) => [a.labels.alertname, a.status]).sort(), [['logins_drop', 'firing'], ['signups_drop', 'firing']]);
  for (const a of [...one.alerts, ...two.alerts]) {
    assert.equal(a.fingerprint, amFingerprint(a.labels));
    assert.equal(a.endsAt, '0001-01-01T00:00:00Z');
  }
  const logins = two.alerts.find((a) => a.labels.alertname === 'logins_drop');
  assert.equal(logins.startsAt, one.alerts[0].startsAt);
  assert.equal(logins.fingerprint, one.alerts[0].fingerprint);
});
