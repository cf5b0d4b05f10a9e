// access-team.mjs — a stand-in for a Cloudflare Access team, for tests: RSA
// signing keys made with node:crypto, assertions signed with them, and an
// HTTP server on 127.0.0.1 that publishes the keys at
// /cdn-cgi/access/certs in the shape Cloudflare serves.
//
// Invariant: only 127.0.0.1; the team's URL is the `iss` of its assertions
// and the value to give the worker as BPM_ACCESS_TEAM_DOMAIN.

import http from 'node:http';
import { createSign, generateKeyPairSync } from 'node:crypto';

export const b64url = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** A fresh 2048-bit RSA key: { kid, privateKey, jwk } (jwk: the public half). */
export function rsaKey(kid) {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' } };
}

/** A JWS over `claims` signed by `key` (RS256 unless `header` says otherwise). */
export function sign(key, claims, header = {}) {
  const signingInput = `${b64url({ alg: 'RS256', kid: key.kid, typ: 'JWT', ...header })}.${b64url(claims)}`;
  const signer = createSign('RSA-SHA256');
  signer.update(signingInput);
  return `${signingInput}.${signer.sign(key.privateKey).toString('base64url')}`;
}

/** The claims of a user's Access assertion for `team` and audience `aud`. */
export function userClaims(team, aud, email, overrides = {}) {
  const now = Math.floor(Date.now() / 1000);
  return {
    aud: [aud], email, exp: now + 3600, iat: now, nbf: now, iss: team.url,
    type: 'app', sub: '7335d417-61da-459d-899c-0a01c76a2f94', ...overrides,
  };
}

/**
 * Starts the team. Returns { url, published, fetches, close() }: assign
 * `published` (keys from rsaKey) to change what it serves; `fetches` counts
 * requests for the certs.
 */
export async function startTeam() {
  const team = { published: [], fetches: 0 };
  const server = http.createServer((req, res) => {
    if (req.url !== '/cdn-cgi/access/certs') {
      res.writeHead(404).end();
      return;
    }
    team.fetches += 1;
    const keys = team.published.map((k) => k.jwk);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys, public_cert: { kid: keys[0]?.kid, cert: '' }, public_certs: [] }));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  team.url = `http://127.0.0.1:${server.address().port}`;
  team.close = () => new Promise((resolve) => server.close(resolve));
  return team;
}
