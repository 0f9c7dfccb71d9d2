// Property: CORS on the Engine.IO endpoint allows exactly the configured origins (default http://localhost:3000, with credentials), omits Access-Control-Allow-Origin for others, answers OPTIONS preflights with 204 and allowed methods, and `--cors-origin '*'` allows any origin.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './fixture.mjs';

const SECRET = 'cors-secret';
const GOOD = 'http://localhost:3000';
const EVIL = 'http://evil.example';

let dflt; // default --cors-origin
let star; // --cors-origin '*'
let list; // --cors-origin http://a.example,http://b.example
before(async () => {
  [dflt, star, list] = await Promise.all([
    startServer(['--jwt-secret', SECRET]),
    startServer(['--jwt-secret', SECRET, '--cors-origin', '*']),
    startServer(['--jwt-secret', SECRET, '--cors-origin', 'http://a.example,http://b.example']),
  ]);
});
after(async () => {
  await Promise.all([dflt?.stop(), star?.stop(), list?.stop()]);
});

const path = '/socket.io/?EIO=4&transport=polling';

async function handshake(srv, origin) {
  const headers = origin ? { Origin: origin } : {};
  const res = await fetch(srv.url + path, { headers, signal: AbortSignal.timeout(5000) });
  const body = await res.text();
  return { res, body };
}

async function preflight(srv, origin, method = 'POST') {
  const res = await fetch(srv.url + path, {
    method: 'OPTIONS',
    headers: {
      Origin: origin,
      'Access-Control-Request-Method': method,
      'Access-Control-Request-Headers': 'content-type',
    },
    signal: AbortSignal.timeout(5000),
  });
  const body = await res.text();
  return { res, body };
}

const methodsOf = (res) =>
  (res.headers.get('access-control-allow-methods') || '').split(',').map((m) => m.trim().toUpperCase()).filter(Boolean);

test('default: handshake from http://localhost:3000 is allowed with credentials', { timeout: 10_000 }, async () => {
  const { res, body } = await handshake(dflt, GOOD);
  assert.equal(res.status, 200, body);
  assert.ok(body.startsWith('0{'), body);
  assert.equal(res.headers.get('access-control-allow-origin'), GOOD);
  assert.equal(res.headers.get('access-control-allow-credentials'), 'true');
});

test('default: handshake from another origin gets no Access-Control-Allow-Origin', { timeout: 10_000 }, async () => {
  for (const origin of [EVIL, 'http://localhost:3001', 'https://localhost:3000', 'http://localhost:3000.evil.example']) {
    const { res } = await handshake(dflt, origin);
    assert.equal(res.headers.get('access-control-allow-origin'), null, `origin ${origin} must not be allowed`);
  }
});

test('default: OPTIONS preflight from the allowed origin -> 204 with allowed methods', { timeout: 10_000 }, async () => {
  const { res } = await preflight(dflt, GOOD);
  assert.equal(res.status, 204);
  assert.equal(res.headers.get('access-control-allow-origin'), GOOD);
  assert.equal(res.headers.get('access-control-allow-credentials'), 'true');
  const methods = methodsOf(res);
  for (const m of ['GET', 'POST']) assert.ok(methods.includes(m), `allow-methods ${JSON.stringify(methods)} includes ${m}`);
  const allowHeaders = (res.headers.get('access-control-allow-headers') || '').toLowerCase();
  assert.ok(allowHeaders === '*' || allowHeaders.includes('content-type'), `allow-headers: ${allowHeaders}`);
});

test('default: OPTIONS preflight from another origin is not allowed', { timeout: 10_000 }, async () => {
  const { res } = await preflight(dflt, EVIL);
  assert.equal(res.headers.get('access-control-allow-origin'), null);
});

test("--cors-origin '*' allows any origin", { timeout: 10_000 }, async () => {
  for (const origin of [EVIL, GOOD, 'http://127.0.0.1:9999']) {
    const { res, body } = await handshake(star, origin);
    assert.equal(res.status, 200, body);
    const acao = res.headers.get('access-control-allow-origin');
    assert.ok(acao === '*' || acao === origin, `origin ${origin}: allow-origin ${acao}`);
    const pf = await preflight(star, origin);
    assert.equal(pf.res.status, 204);
    const pfAcao = pf.res.headers.get('access-control-allow-origin');
    assert.ok(pfAcao === '*' || pfAcao === origin, `preflight origin ${origin}: allow-origin ${pfAcao}`);
    assert.ok(methodsOf(pf.res).includes('POST'));
  }
});

test('--cors-origin with a comma list allows each listed origin and nothing else', { timeout: 10_000 }, async () => {
  for (const origin of ['http://a.example', 'http://b.example']) {
    const { res } = await handshake(list, origin);
    assert.equal(res.headers.get('access-control-allow-origin'), origin);
  }
  for (const origin of [GOOD, EVIL]) {
    const { res } = await handshake(list, origin);
    assert.equal(res.headers.get('access-control-allow-origin'), null, `origin ${origin} must not be allowed`);
  }
});
