// demo-origin.mjs — a small demo website origin for bpm-edge (demo, tests, bench).
//
// Owns: the demo site's routes (marketing pages, login, dashboard, signup,
// billing), an /echo/ endpoint that reports exactly what arrived, and the
// test/bench controls under /__origin/ (stats, reset, per-route overrides).
//
// Invariants:
// - Listens on 127.0.0.1 only.
// - Every request outside /__origin/ is counted once in stats (by pathname,
//   without the query string) before it is answered.
// - An override set with POST /__origin/mode replaces the answer of exactly
//   one (method, pathname) pair until cleared with `{}` or /__origin/reset.
//
// Run: node scripts/demo-origin.mjs --port 8788   (or PORT=8788; 0 = any free port)
// Use in-process: const o = await startOrigin({ port: 0 }); ...; await o.close();

import http from 'node:http';
import { createHash } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { Webhook } from 'standardwebhooks';

/** The demo's webhook signing secret (the same as in .dev.vars.example). */
const DEMO_WEBHOOK_SECRET = process.env.OPS_WEBHOOK_SECRET ?? 'whsec_ZGVtby1vbmx5LXNpZ25pbmcta2V5LTAxMjM0NQ==';

const HOST = '127.0.0.1';
// Bodies beyond this are drained and counted but not kept in memory.
const MAX_FORM_BYTES = 64 * 1024;

const page = (title, body) =>
  `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="generator" content="bpm-edge-demo-origin"><title>${title} · Demo Shop</title></head>
<body>
<nav><a href="/">Home</a> <a href="/pricing">Pricing</a> <a href="/blog/launch">Blog</a> <a href="/login">Log in</a></nav>
<main>
${body}
</main>
</body>
</html>
`;

const escapeHtml = (s) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

const PAGES = {
  '/': page('Home', '<h1>Demo Shop</h1><p>The shop that bpm-edge watches.</p>'),
  '/pricing': page('Pricing', '<h1>Pricing</h1><p>Starter 9 €/month, Team 29 €/month.</p>'),
  '/dashboard': page('Dashboard', '<h1>Your dashboard</h1><p>Welcome back.</p>'),
};

const loginPage = (error) =>
  page(
    'Log in',
    `<h1>Log in</h1>${error ? '<p class="error">Wrong user or password.</p>' : ''}
<form method="post" action="/login">
<label>User <input name="user"></label>
<label>Password <input name="password" type="password"></label>
<button>Log in</button>
</form>`,
  );

function send(res, status, body, headers = {}) {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body ?? '');
  res.writeHead(status, { 'content-length': buf.length, ...headers });
  res.end(buf);
}

const sendHtml = (res, status, html, headers = {}) =>
  send(res, status, html, { 'content-type': 'text/html; charset=utf-8', ...headers });
const sendJson = (res, status, value, headers = {}) =>
  send(res, status, JSON.stringify(value), { 'content-type': 'application/json', ...headers });

// Reads the whole body, hashing every byte; keeps at most MAX_FORM_BYTES.
function readBody(req) {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    const kept = [];
    let length = 0;
    req.on('data', (chunk) => {
      hash.update(chunk);
      if (length < MAX_FORM_BYTES) kept.push(chunk.subarray(0, MAX_FORM_BYTES - length));
      length += chunk.length;
    });
    req.on('end', () => resolve({ length, sha256: hash.digest('hex'), bytes: Buffer.concat(kept) }));
    req.on('error', reject);
  });
}

function pathnameOf(rawUrl) {
  const q = rawUrl.indexOf('?');
  return q === -1 ? rawUrl : rawUrl.slice(0, q);
}

export async function startOrigin({ port = 0, host = HOST, quiet = true } = {}) {
  // Stats: requests seen outside /__origin/ (by pathname).
  let total = 0;
  let byPath = new Map();
  // Overrides: "METHOD pathname" -> { status, location, body }.
  let overrides = new Map();

  const stats = () => ({ total, byPath: Object.fromEntries(byPath) });
  const reset = () => {
    total = 0;
    byPath = new Map();
    overrides = new Map();
  };
  const setMode = (mode = {}) => {
    if (!mode || mode.path === undefined) {
      overrides = new Map();
      return;
    }
    const method = String(mode.method ?? 'GET').toUpperCase();
    const status = Number(mode.status ?? 200);
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new Error('status must be 200..599');
    overrides.set(`${method} ${mode.path}`, {
      status,
      location: mode.location ?? null,
      body: mode.body ?? `override ${status}\n`,
    });
  };

  async function control(req, res, pathname) {
    if (req.method === 'GET' && pathname === '/__origin/stats') return sendJson(res, 200, stats());
    if (req.method === 'POST' && pathname === '/__origin/reset') {
      await readBody(req);
      reset();
      return sendJson(res, 200, { ok: true });
    }
    if (req.method === 'POST' && pathname === '/__origin/mode') {
      const { bytes } = await readBody(req);
      try {
        setMode(bytes.length ? JSON.parse(bytes.toString('utf8')) : {});
      } catch (e) {
        return sendJson(res, 400, { error: String(e.message ?? e) });
      }
      return sendJson(res, 200, { ok: true, overrides: Object.fromEntries(overrides) });
    }
    return sendJson(res, 404, { error: 'unknown control endpoint' });
  }

  // The demo's webhook receiver: verifies the Standard Webhooks signature
  // and prints one line per alert event.
  async function hook(req, res) {
    const { bytes } = await readBody(req);
    const body = bytes.toString('utf8');
    let verdict;
    try {
      const event = new Webhook(DEMO_WEBHOOK_SECRET).verify(body, req.headers);
      verdict = `verified ${event.type} ${event.rule}: ${event.metric?.name} observed ${event.observed} vs expected ${event.expected} (${event.window})`;
    } catch (e) {
      verdict = `REJECTED (${e.message})`;
    }
    if (!quiet) console.log(`webhook ${req.headers['webhook-id']}: ${verdict}`);
    return send(res, 204, '', {});
  }

  async function site(req, res, pathname) {
    const { method } = req;
    if (method === 'POST' && pathname.startsWith('/_hooks/')) return hook(req, res);
    total += 1;
    byPath.set(pathname, (byPath.get(pathname) ?? 0) + 1);

    const override = overrides.get(`${method} ${pathname}`);
    if (override) {
      await readBody(req);
      const headers = { 'content-type': 'text/plain; charset=utf-8', 'x-demo-origin': 'override' };
      if (override.location) headers.location = override.location;
      return send(res, override.status, override.body, headers);
    }

    if (pathname.startsWith('/echo/') || pathname === '/echo') {
      const body = await readBody(req);
      return sendJson(res, 200, {
        method,
        path: req.url, // raw request target, exactly as received
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        bodyLength: body.length,
        bodySha256: body.sha256,
      });
    }

    if (method === 'GET' || method === 'HEAD') {
      if (PAGES[pathname]) return sendHtml(res, 200, PAGES[pathname]);
      if (pathname.startsWith('/blog/')) {
        // Echo at most a short slug so an 8 KB path does not produce an 8 KB page.
        const slug = escapeHtml(decodeSafe(pathname.slice('/blog/'.length)).slice(0, 80));
        return sendHtml(res, 200, page('Blog', `<h1>Blog: ${slug}</h1><p>News from the demo shop.</p>`));
      }
      if (pathname === '/login') {
        const error = new URLSearchParams(req.url.slice(pathname.length)).has('error');
        return sendHtml(res, 200, loginPage(error));
      }
    }

    if (method === 'POST' && pathname === '/login') {
      const form = new URLSearchParams((await readBody(req)).bytes.toString('utf8'));
      if (form.get('password') === 'demo') {
        return send(res, 302, 'Found\n', {
          location: '/dashboard',
          'set-cookie': 'demo_session=1; Path=/; HttpOnly; SameSite=Lax',
          'content-type': 'text/plain; charset=utf-8',
        });
      }
      return send(res, 302, 'Found\n', { location: '/login?error=1', 'content-type': 'text/plain; charset=utf-8' });
    }
    if (method === 'POST' && pathname === '/signup') {
      await readBody(req);
      return sendJson(res, 201, { ok: true, account: 'created' });
    }
    if (method === 'POST' && pathname === '/billing/subscribe') {
      await readBody(req);
      return sendJson(res, 200, { ok: true, plan: 'team', status: 'active' });
    }

    await readBody(req);
    return sendHtml(res, 404, page('Not found', '<h1>Not found</h1>'));
  }

  const server = http.createServer(
    // Hostile-input tests send 8 KB paths and 1,000 query parameters.
    { maxHeaderSize: 256 * 1024, keepAliveTimeout: 30_000 },
    (req, res) => {
      const pathname = pathnameOf(req.url);
      const handler = pathname.startsWith('/__origin/') ? control : site;
      handler(req, res, pathname).catch((err) => {
        if (!quiet) console.error('demo-origin:', err);
        if (!res.headersSent) send(res, 500, 'origin error\n', { 'content-type': 'text/plain' });
        else res.destroy();
      });
    },
  );
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const actualPort = server.address().port;

  return {
    port: actualPort,
    url: `http://${host}:${actualPort}`,
    stats,
    reset,
    setMode,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function decodeSafe(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function parsePort(argv, env) {
  const i = argv.indexOf('--port');
  const raw = i !== -1 ? argv[i + 1] : env.PORT;
  const port = raw === undefined ? 8788 : Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad port: ${raw}`);
  return port;
}

// CLI entry point (only when run directly, not when imported).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const origin = await startOrigin({ port: parsePort(process.argv.slice(2), process.env), quiet: false });
  console.log(`demo-origin listening on ${origin.url}`);
  const stop = async (signal) => {
    await origin.close();
    console.log(`demo-origin stopped (${signal}); ${origin.stats().total} requests served`);
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
