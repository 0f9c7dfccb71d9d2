// Property: sockets connect only with a valid JWT (HS256 with either configured secret, RS256/ES256 with a configured public key, via CONNECT auth or an Authorization header); anything else gets CONNECT_ERROR 'unauthorized' with a reason, counted in sio_auth_failures_total.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, connect, makeJwt, nowSec, fetchMetrics, metricSum, hasMetric, waitFor, tracker } from './fixture.mjs';

const S = 'auth-test-jwt-secret';
const S2 = 'auth-test-nextauth-secret';
const claims = (extra = {}) => ({ sub: 'auth-user', iat: nowSec(), exp: nowSec() + 3600, ...extra });

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const tmp = mkdtempSync(join(tmpdir(), 'sio-edge-auth-'));
const rsaPubFile = join(tmp, 'rsa-public.pem');
const ecPubFile = join(tmp, 'ec-public.pem');
writeFileSync(rsaPubFile, rsa.publicKey.export({ type: 'spki', format: 'pem' }));
writeFileSync(ecPubFile, ec.publicKey.export({ type: 'spki', format: 'pem' }));

let hs; // --jwt-secret S --nextauth-secret S2
let rs; // --jwt-public-key rsa.pem
let es; // --jwt-public-key ec.pem
const sockets = tracker();

before(async () => {
  [hs, rs, es] = await Promise.all([
    startServer(['--jwt-secret', S, '--nextauth-secret', S2]),
    startServer(['--jwt-public-key', rsaPubFile]),
    startServer(['--jwt-public-key', ecPubFile]),
  ]);
});
after(async () => {
  sockets.closeAll();
  await Promise.all([hs?.stop(), rs?.stop(), es?.stop()]);
  rmSync(tmp, { recursive: true, force: true });
});

async function accepted(url, opts) {
  const socket = sockets.add(await connect(url, { transports: ['websocket'], ...opts }));
  assert.equal(socket.connected, true);
  assert.ok(socket.id, 'connected socket has an id');
  return socket;
}

/** Connect must fail with CONNECT_ERROR {message:'unauthorized', data:{reason}}; returns reason. */
async function rejected(url, opts) {
  let socket;
  const err = await connect(url, { transports: ['websocket'], ...opts }).then(
    (s) => { socket = sockets.add(s); return null; },
    (e) => e,
  );
  assert.ok(err, `expected connect_error, but the socket connected (id ${socket?.id})`);
  assert.equal(err.message, 'unauthorized', `connect_error message (data: ${JSON.stringify(err.data)})`);
  assert.ok(err.data && typeof err.data === 'object', 'connect_error carries data');
  assert.equal(typeof err.data.reason, 'string');
  assert.ok(err.data.reason.length > 0, 'reason is not empty');
  return err.data.reason;
}

test('HS256 token signed with --jwt-secret is accepted', { timeout: 15_000 }, async () => {
  await accepted(hs.url, { auth: { token: makeJwt(claims(), S) } });
});

test('HS256 token signed with --nextauth-secret is accepted', { timeout: 15_000 }, async () => {
  await accepted(hs.url, { auth: { token: makeJwt(claims(), S2) } });
});

test('user id may come from the `id` or `userId` claim instead of `sub`', { timeout: 15_000 }, async () => {
  const now = nowSec();
  await accepted(hs.url, { auth: { token: makeJwt({ id: 'by-id', iat: now, exp: now + 3600 }, S) } });
  await accepted(hs.url, { auth: { token: makeJwt({ userId: 'by-user-id', iat: now, exp: now + 3600 }, S) } });
});

test('missing token -> unauthorized / missing token', { timeout: 15_000 }, async () => {
  assert.equal(await rejected(hs.url, {}), 'missing token');
  assert.equal(await rejected(hs.url, { auth: {} }), 'missing token');
});

// The contract names the reasons `missing token` and `token expired` literally; other failures only
// need a non-empty reason (the contract's list ends with "...").
test('expired token -> unauthorized / token expired', { timeout: 15_000 }, async () => {
  const now = nowSec();
  const token = makeJwt({ sub: 'auth-user', iat: now - 7200, exp: now - 3600 }, S);
  assert.equal(await rejected(hs.url, { auth: { token } }), 'token expired');
});

test('token signed with an unknown key -> unauthorized', { timeout: 15_000 }, async () => {
  const reason = await rejected(hs.url, { auth: { token: makeJwt(claims(), 'not-the-secret') } });
  assert.notEqual(reason, 'missing token');
});

test('garbage token -> unauthorized', { timeout: 15_000 }, async () => {
  await rejected(hs.url, { auth: { token: 'not.a.jwt' } });
  await rejected(hs.url, { auth: { token: 'garbage' } });
});

test('alg:none token -> unauthorized', { timeout: 15_000 }, async () => {
  const token = makeJwt(claims(), null, { alg: 'none' });
  assert.ok(token.endsWith('.'), 'unsigned token');
  const reason = await rejected(hs.url, { auth: { token } });
  assert.notEqual(reason, 'missing token');
});

test('RS256 token on a server configured with HS secrets only -> unauthorized', { timeout: 15_000 }, async () => {
  const token = makeJwt(claims(), rsa.privateKey);
  const reason = await rejected(hs.url, { auth: { token } });
  assert.notEqual(reason, 'missing token');
});

test('Authorization: Bearer header on the polling handshake is accepted', { timeout: 15_000 }, async () => {
  const token = makeJwt(claims({ sub: 'header-user' }), S);
  const socket = await accepted(hs.url, {
    transports: ['polling'],
    extraHeaders: { Authorization: `Bearer ${token}` },
  });
  assert.equal(socket.io.engine.transport.name, 'polling');
});

test('--jwt-public-key (RSA): RS256 token accepted, HS256 and alg:none rejected', { timeout: 15_000 }, async () => {
  await accepted(rs.url, { auth: { token: makeJwt(claims(), rsa.privateKey) } });
  // signed by another RSA key
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
  await rejected(rs.url, { auth: { token: makeJwt(claims(), other.privateKey) } });
  // HS256 using the public key PEM text as the HMAC secret (classic algorithm-confusion attack)
  const pem = rsa.publicKey.export({ type: 'spki', format: 'pem' });
  await rejected(rs.url, { auth: { token: makeJwt(claims(), pem) } });
  await rejected(rs.url, { auth: { token: makeJwt(claims(), null, { alg: 'none' }) } });
});

test('--jwt-public-key (EC P-256): ES256 token accepted', { timeout: 15_000 }, async () => {
  await accepted(es.url, { auth: { token: makeJwt(claims(), ec.privateKey) } });
  await rejected(es.url, { auth: { token: makeJwt(claims(), rsa.privateKey) } });
});

test('each auth failure increments sio_auth_failures_total', { timeout: 15_000 }, async () => {
  const before = await fetchMetrics(hs.url);
  assert.ok(hasMetric(before, 'sio_auth_failures_total'), 'sio_auth_failures_total is exposed');
  const base = metricSum(before, 'sio_auth_failures_total');
  await rejected(hs.url, {});
  await rejected(hs.url, { auth: { token: makeJwt(claims(), 'wrong') } });
  // The counter may be bumped just after CONNECT_ERROR is written: poll /metrics briefly.
  const after = await waitFor(async () => {
    const m = await fetchMetrics(hs.url);
    return metricSum(m, 'sio_auth_failures_total') >= base + 2 ? m : null;
  }, { what: 'sio_auth_failures_total to grow by 2' }).catch(async (e) => {
    const m = await fetchMetrics(hs.url);
    assert.fail(`${e.message}: before ${base}, now ${metricSum(m, 'sio_auth_failures_total')}`);
  });
  assert.equal(metricSum(after, 'sio_auth_failures_total'), base + 2);
});
