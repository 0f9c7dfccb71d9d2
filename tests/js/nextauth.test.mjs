// Property: NextAuth v4 and Auth.js v5 session tokens minted by the real packages (@auth/core as
// next-auth@5 pins it, next-auth@4's jwt module) authenticate a socket as `auth.token` and as
// every session cookie form (plain and __Secure-, chunked, over polling and WebSocket); broken
// ones are refused with a reason naming what is wrong; AUTH_SECRET rotation works; a session
// cookie counts only from an origin allowed by name (cross-site WebSocket hijacking is refused).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  mintAuthjs, mintNextAuthV4, mintJose, cookieHeader, tamper,
  AUTHJS_COOKIE, AUTHJS_SECURE_COOKIE, NEXTAUTH_COOKIE, NEXTAUTH_SECURE_COOKIE,
} from '../auth_tokens/mint.mjs';
import { startServer, client, connected, connect, request, tracker, fetchMetrics, metric } from './fixture.mjs';

const SECRET = 'nextauth-blackbox-secret-current';
const OLD = 'nextauth-blackbox-secret-rotated-out';
const OTHER = 'nextauth-blackbox-secret-another-app';
const APP = 'http://app.example';
const EVIL = 'http://evil.example';

const user = (sub) => ({ sub, name: 'Ada Lovelace', email: 'ada@example.test', picture: 'https://example.test/a.png' });

let srv; // AUTH_SECRET, --cors-origin APP
let rotated; // AUTH_SECRET=new, AUTH_SECRET_1=old
let any; // --cors-origin '*'
const sockets = tracker();

before(async () => {
  [srv, rotated, any] = await Promise.all([
    startServer(['--cors-origin', APP], { AUTH_SECRET: SECRET }),
    startServer([], { AUTH_SECRET: SECRET, AUTH_SECRET_1: OLD }),
    startServer(['--cors-origin', '*'], { AUTH_SECRET: SECRET }),
  ]);
});
after(async () => {
  sockets.closeAll();
  await Promise.all([srv?.stop(), rotated?.stop(), any?.stop()]);
});

/** Connects and checks the socket is user `sub`: its own user room may be joined, another's not. */
async function connectsAs(url, sub, opts) {
  const socket = sockets.add(await connect(url, opts));
  const own = await request(socket, 'room:join', { room: `user:${sub}` });
  assert.equal(own.ok, true, `joining user:${sub}: ${JSON.stringify(own)}`);
  const other = await request(socket, 'room:join', { room: `user:not-${sub}` });
  assert.equal(other.ok, false, `another user's room: ${JSON.stringify(other)}`);
  socket.close();
  return socket;
}

/** The connect_error reason of a refused CONNECT. */
async function reason(url, opts) {
  const err = await connect(url, opts).then(
    (s) => { sockets.add(s); return null; },
    (e) => e,
  );
  assert.ok(err, 'expected a connect_error, but the socket connected');
  assert.equal(err.message, 'unauthorized', `connect_error ${err.message} ${JSON.stringify(err.data)}`);
  return err.data.reason;
}

const withCookie = (header, transport, extra = {}) => ({
  transports: [transport],
  extraHeaders: { cookie: header, ...extra },
});

test('Auth.js v5 and NextAuth v4 tokens are accepted as auth.token', { timeout: 30_000 }, async () => {
  for (const transport of ['polling', 'websocket']) {
    const v5 = await mintAuthjs({ secret: SECRET, claims: user('v5-token') });
    await connectsAs(srv.url, 'v5-token', { transports: [transport], auth: { token: v5 } });
    // Minted for the __Secure- cookie but sent without it: both default salts are tried.
    const secure = await mintAuthjs({ secret: SECRET, salt: AUTHJS_SECURE_COOKIE, claims: user('v5-secure') });
    await connectsAs(srv.url, 'v5-secure', { transports: [transport], auth: { token: secure } });
    const gcm = await mintJose({ secret: SECRET, claims: user('v5-gcm') });
    await connectsAs(srv.url, 'v5-gcm', { transports: [transport], auth: { token: gcm } });
    const v4 = await mintNextAuthV4({ secret: SECRET, claims: user('v4-token') });
    await connectsAs(srv.url, 'v4-token', { transports: [transport], auth: { token: v4 } });
  }
});

test('every session cookie form authenticates, over polling and WebSocket', { timeout: 60_000 }, async () => {
  for (const transport of ['polling', 'websocket']) {
    for (const name of [AUTHJS_COOKIE, AUTHJS_SECURE_COOKIE, NEXTAUTH_COOKIE, NEXTAUTH_SECURE_COOKIE]) {
      const v4 = name.includes('next-auth');
      for (const pad of [0, 6000]) {
        const sub = `${transport}-${v4 ? 'v4' : 'v5'}-${name.startsWith('__Secure-') ? 'secure' : 'plain'}-${pad}`;
        const claims = pad ? { ...user(sub), padding: 'x'.repeat(pad) } : user(sub);
        const token = v4
          ? await mintNextAuthV4({ secret: SECRET, claims })
          : await mintAuthjs({ secret: SECRET, salt: name, claims });
        const { header, chunks } = cookieHeader(name, token);
        if (pad) assert.ok(chunks >= 2, `${sub}: the long token is chunked (${chunks} chunks)`);
        else assert.equal(chunks, 1, `${sub}: one cookie`);
        await connectsAs(srv.url, sub, withCookie(header, transport));
      }
    }
  }
});

test('a bearer header carries a session token too', { timeout: 15_000 }, async () => {
  const token = await mintAuthjs({ secret: SECRET, claims: user('bearer-v5') });
  await connectsAs(srv.url, 'bearer-v5', { transports: ['polling'], extraHeaders: { authorization: `Bearer ${token}` } });
});

test('broken tokens are refused with a reason naming the fault', { timeout: 60_000 }, async () => {
  const valid = await mintAuthjs({ secret: SECRET, claims: user('broken') });
  const v4 = await mintNextAuthV4({ secret: SECRET, claims: user('broken-v4') });
  const cases = [
    ['wrong secret (v5, kid names another key)', await mintAuthjs({ secret: OTHER, claims: user('x') }), 'wrong secret or cookie name'],
    ['wrong secret (v4, no kid)', await mintNextAuthV4({ secret: OTHER, claims: user('x') }), 'cannot decrypt token'],
    ['expired (v5)', await mintAuthjs({ secret: SECRET, claims: user('x'), maxAge: -3600 }), 'token expired'],
    ['expired (v4)', await mintNextAuthV4({ secret: SECRET, claims: user('x'), maxAge: -3600 }), 'token expired'],
    ['tampered ciphertext (v5)', tamper(valid, 3), 'token tampered'],
    ['tampered tag (v5)', tamper(valid, 4), 'token tampered'],
    ['tampered ciphertext (v4)', tamper(v4, 3), 'cannot decrypt token'],
    ['tampered tag (v4)', tamper(v4, 4), 'cannot decrypt token'],
    ['unknown enc', await mintJose({ secret: SECRET, claims: user('x'), enc: 'A128CBC-HS256' }), 'encryption not allowed'],
    ['unknown alg', await mintJose({ secret: SECRET, claims: user('x'), alg: 'A256KW', kid: false }), 'algorithm not allowed'],
  ];
  for (const [what, token, expected] of cases) {
    assert.equal(await reason(srv.url, { transports: ['websocket'], auth: { token } }), expected, `${what} as auth.token`);
    const name = what.includes('v4') ? NEXTAUTH_COOKIE : AUTHJS_COOKIE;
    const { header } = cookieHeader(name, token);
    assert.equal(await reason(srv.url, withCookie(header, 'polling')), expected, `${what} as cookie ${name}`);
  }
});

test('the cookie name is the salt: a v5 token under the other name is refused', { timeout: 15_000 }, async () => {
  const plain = await mintAuthjs({ secret: SECRET, salt: AUTHJS_COOKIE, claims: user('salted') });
  for (const transport of ['polling', 'websocket']) {
    const { header } = cookieHeader(AUTHJS_SECURE_COOKIE, plain);
    assert.equal(await reason(srv.url, withCookie(header, transport)), 'wrong secret or cookie name');
  }
});

test('AUTH_SECRET rotation: tokens of the current and the previous secret are accepted', { timeout: 20_000 }, async () => {
  const oldToken = await mintAuthjs({ secret: OLD, claims: user('rot-old') });
  const newToken = await mintAuthjs({ secret: SECRET, claims: user('rot-new') });
  const oldV4 = await mintNextAuthV4({ secret: OLD, claims: user('rot-old-v4') });
  await connectsAs(rotated.url, 'rot-old', { transports: ['websocket'], auth: { token: oldToken } });
  await connectsAs(rotated.url, 'rot-new', { transports: ['websocket'], auth: { token: newToken } });
  await connectsAs(rotated.url, 'rot-old-v4', withCookie(cookieHeader(NEXTAUTH_COOKIE, oldV4).header, 'websocket'));
  // The server without the old secret refuses the same token.
  assert.equal(await reason(srv.url, { transports: ['websocket'], auth: { token: oldToken } }), 'wrong secret or cookie name');
});

test('a cross-site WebSocket carrying a valid session cookie is refused; the allowed origin connects', { timeout: 20_000 }, async () => {
  const token = await mintAuthjs({ secret: SECRET, claims: user('cswsh') });
  const { header } = cookieHeader(AUTHJS_COOKIE, token);
  const before = metric(await fetchMetrics(srv.url), 'sio_origin_refused_total');
  const hijack = sockets.add(client(srv.url, withCookie(header, 'websocket', { origin: EVIL })));
  const err = await connected(hijack).then(() => null, (e) => e);
  assert.ok(err, 'the cross-site WebSocket must not connect');
  assert.notEqual(err.message, 'unauthorized', 'refused at the handshake, before any CONNECT');
  const after = metric(await fetchMetrics(srv.url), 'sio_origin_refused_total');
  assert.ok(after > before, `the refusal was for the origin (${before} -> ${after})`);
  await connectsAs(srv.url, 'cswsh', withCookie(header, 'websocket', { origin: APP }));
});

test("with --cors-origin '*' a foreign page connects but its cookie does not authenticate", { timeout: 20_000 }, async () => {
  const token = await mintAuthjs({ secret: SECRET, claims: user('star') });
  const { header } = cookieHeader(AUTHJS_COOKIE, token);
  for (const transport of ['polling', 'websocket']) {
    assert.equal(await reason(any.url, withCookie(header, transport, { origin: EVIL })), 'missing token', transport);
  }
  // Without a browser Origin the same cookie is the client's own: it authenticates.
  await connectsAs(any.url, 'star', withCookie(header, 'websocket'));
  // An explicit token still works from any origin: it is not ambient.
  await connectsAs(any.url, 'star', { transports: ['websocket'], auth: { token }, extraHeaders: { origin: EVIL } });
});
