// webhook-sink.mjs — a webhook receiver on 127.0.0.1 for the alert e2e
// tests, the test receivers' signing secrets, and Alertmanager's
// fingerprint to check payloads against.
//
// Invariant: every request is recorded, in arrival order, with its Standard
// Webhooks headers, whether the path's verifier (if any) accepted it, its
// JSON payload, and the status it was answered with.

import http from 'node:http';

/** Signing secrets and the PagerDuty routing key the alert tests configure. */
export const OPS_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
export const AM_SECRET = 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD';
export const ROUTING_KEY = 'e2e0123456789abcdef0123456789abc';

/**
 * The worker vars that send the shipped config's receivers to the sink at
 * `url` with the secrets above: ops (/ops) and alertmanager (/am), and on
 * request marketing's Slack (/slack) and on-call's PagerDuty (/pd).
 */
export function receiverVars(url, { slack = false, pagerduty = false } = {}) {
  return {
    OPS_WEBHOOK_URL: `${url}/ops`,
    OPS_WEBHOOK_SECRET: OPS_SECRET,
    ALERTMANAGER_WEBHOOK_URL: `${url}/am`,
    ALERTMANAGER_WEBHOOK_SECRET: AM_SECRET,
    ...(slack ? { MARKETING_SLACK_URL: `${url}/slack` } : {}),
    ...(pagerduty ? { ONCALL_PAGERDUTY_URL: `${url}/pd`, ONCALL_PAGERDUTY_ROUTING_KEY: ROUTING_KEY } : {}),
  };
}

/**
 * Starts a receiver. `verifiers` maps a path to a `standardwebhooks`
 * Webhook; `answer(path)` gives the status for the next request to a path
 * (200 by default). Returns { url, got, to(path), delivered(path), close() }.
 */
export async function startWebhookSink({ verifiers = {}, answer = () => 200 } = {}) {
  const got = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = {
        'webhook-id': req.headers['webhook-id'],
        'webhook-timestamp': req.headers['webhook-timestamp'],
        'webhook-signature': req.headers['webhook-signature'],
      };
      let verified = false;
      let payload;
      const verifier = verifiers[req.url];
      if (verifier) {
        try {
          payload = verifier.verify(body, headers);
          verified = true;
        } catch {
          verified = false;
        }
      }
      if (payload === undefined) {
        try {
          payload = JSON.parse(body);
        } catch {
          payload = undefined;
        }
      }
      const status = answer(req.url);
      got.push({
        path: req.url,
        id: headers['webhook-id'],
        timestamp: headers['webhook-timestamp'],
        signature: headers['webhook-signature'],
        verified,
        payload,
        status,
        failed: status !== 200,
        at: Date.now(),
      });
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(status === 200 ? 'ok' : 'no');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    got,
    to: (path) => got.filter((g) => g.path === path),
    delivered: (path) => got.filter((g) => g.path === path && !g.failed),
    close: () => new Promise((r) => server.close(r)),
  };
}

/**
 * Alertmanager's fingerprint of a label set, as prometheus/common's
 * LabelSet.Fingerprint(): FNV-1a 64 over the names in byte order (ASCII
 * here, so JS's sort is that order), each name and value followed by 0xff.
 */
export function amFingerprint(labels) {
  let h = 0xcbf29ce484222325n;
  const add = (bytes) => {
    for (const b of bytes) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  };
  for (const name of Object.keys(labels).sort()) {
    add(Buffer.from(name, 'utf8'));
    add([0xff]);
    add(Buffer.from(labels[name], 'utf8'));
    add([0xff]);
  }
  return h.toString(16).padStart(16, '0');
}
