// Property: with --session-url, a database session (an opaque session cookie, as Auth.js writes
// with an adapter) is checked by the app's session endpoint over real HTTP: a signed-in answer
// connects the socket as `user.id`, an unauthenticated answer is refused with `no session`, a
// user without `id` with `session has no user id`, and an endpoint that is slow or failing with
// `session check failed`; answers are cached briefly, CONNECTs with the same cookie share one
// request, only the session cookie is forwarded, and the cookie never appears in the log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mintAuthjs, cookieHeader, AUTHJS_COOKIE, AUTHJS_SECURE_COOKIE, NEXTAUTH_COOKIE } from '../auth_tokens/mint.mjs';
import { startServer, client, connect, connected, request, tracker, apiClient, once, waitFor } from './fixture.mjs';

const SECRET = 'session-url-blackbox-secret';
const KEY = 'session-url-blackbox-internal-key';
const APP = 'http://app.example';
const TIMEOUT_MS = 500;

// The stand-in for the Next.js app's /api/auth/session: session id -> how it answers.
const SESSIONS = {
  'sess-ada-6c1f': { body: { user: { id: 'db-ada', name: 'Ada Lovelace', email: 'ada@example.test', image: null }, expires: '2099-01-01T00:00:00.000Z' }, chunked: true },
  'sess-grace-02': { body: { user: { id: 42, name: 'Grace' }, expires: '2099-01-01T00:00:00.000Z' } },
  'sess-cached-7': { body: { user: { id: 'db-cached' }, expires: '2099-01-01T00:00:00.000Z' } },
  'sess-shared-9': { body: { user: { id: 'db-shared' }, expires: '2099-01-01T00:00:00.000Z' }, delayMs: 150 },
  'sess-noid-33': { body: { user: { name: 'No Id', email: 'noid@example.test' }, expires: '2099-01-01T00:00:00.000Z' } },
  'sess-v4-empty': { body: {} },
  'sess-broken-5': { status: 500, body: { error: 'database down' } },
  'sess-slow-404': { hang: true },
  'sess-held-77': { held: true },
};
// Responses held until the test releases them: session id -> [send(body)].
const held = new Map();
const seen = []; // {path, cookie, sessionId}
let app;
let appUrl;
let srv;
let api;
const sockets = tracker();

function sessionIdOf(cookie = '') {
  const m = /(?:^|;\s*)(?:__Secure-)?(?:authjs|next-auth)\.session-token=([^;]*)/.exec(cookie);
  return m?.[1];
}

before(async () => {
  app = http.createServer((req, res) => {
    const id = sessionIdOf(req.headers.cookie);
    seen.push({ path: req.url, cookie: req.headers.cookie, sessionId: id });
    const s = SESSIONS[id];
    if (s?.hang) return; // never answers: the check must time out
    if (s?.held) {
      const list = held.get(id) ?? [];
      list.push((body) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body)));
      held.set(id, list);
      return;
    }
    const send = () => {
      const body = JSON.stringify(s ? s.body : null);
      res.statusCode = s?.status ?? 200;
      res.setHeader('content-type', 'application/json');
      if (s?.chunked) {
        // No Content-Length: Node sends Transfer-Encoding: chunked, as Next.js often does.
        res.write(body.slice(0, 10));
        res.end(body.slice(10));
      } else {
        res.setHeader('content-length', Buffer.byteLength(body));
        res.end(body);
      }
    };
    if (s?.delayMs) setTimeout(send, s.delayMs);
    else send();
  });
  await new Promise((r) => app.listen(0, '127.0.0.1', r));
  appUrl = `http://127.0.0.1:${app.address().port}/api/auth/session`;
  srv = await startServer(
    ['--cors-origin', APP, '--session-url', appUrl, '--session-timeout', String(TIMEOUT_MS),
      '--internal-api-key', KEY, '--log', 'sio_edge=debug,info'],
    { AUTH_SECRET: SECRET },
  );
  api = apiClient(srv.url, KEY);
});
after(async () => {
  sockets.closeAll();
  await srv?.stop();
  app?.closeAllConnections();
  await new Promise((r) => (app ? app.close(r) : r()));
});

const cookieOpts = (header, transport = 'websocket', extra = {}) => ({
  transports: [transport],
  extraHeaders: { cookie: header, ...extra },
});
const requestsFor = (id) => seen.filter((r) => r.sessionId === id).length;

/** The connect_error reason of a refused CONNECT. */
async function reason(opts) {
  const err = await connect(srv.url, opts).then((s) => { sockets.add(s); return null; }, (e) => e);
  assert.ok(err, 'expected a connect_error, but the socket connected');
  assert.equal(err.message, 'unauthorized', `connect_error ${err.message} ${JSON.stringify(err.data)}`);
  return err.data.reason;
}

/**
 * The socket is user `id`: its own user room may be joined, another's not, and the API reaches it
 * by user (with `count` sockets of that user connected).
 */
async function isUser(socket, id, count = 1) {
  const own = await request(socket, 'room:join', { room: `user:${id}` });
  assert.equal(own.ok, true, `joining user:${id}: ${JSON.stringify(own)}`);
  const other = await request(socket, 'room:join', { room: `user:not-${id}` });
  assert.equal(other.ok, false, `another user's room: ${JSON.stringify(other)}`);
  const got = once(socket, 'test:hello');
  assert.equal(await api.emit({ event: 'test:hello', users: [String(id)], data: { to: id } }), count);
  assert.deepEqual((await got)[0], { to: id });
}

test('a database session cookie connects as the endpoint\'s user.id, over polling and WebSocket', { timeout: 30_000 }, async () => {
  const cases = [
    ['polling', AUTHJS_COOKIE, 'sess-ada-6c1f', 'db-ada'],
    ['websocket', AUTHJS_SECURE_COOKIE, 'sess-ada-6c1f', 'db-ada'],
    ['websocket', NEXTAUTH_COOKIE, 'sess-grace-02', '42'],
  ];
  for (const [transport, name, sid, user] of cases) {
    const { header } = cookieHeader(name, sid);
    const socket = sockets.add(await connect(srv.url, cookieOpts(header, transport)));
    await isUser(socket, user);
    socket.close();
  }
  const asked = seen.find((r) => r.sessionId === 'sess-ada-6c1f');
  assert.equal(asked.path, '/api/auth/session');
  // Only the session cookie is forwarded, not the page's other cookies.
  assert.equal(asked.cookie, `${AUTHJS_COOKIE}=sess-ada-6c1f`);
});

test('an unauthenticated answer is refused with "no session"', { timeout: 15_000 }, async () => {
  assert.equal(await reason(cookieOpts(cookieHeader(AUTHJS_COOKIE, 'sess-unknown-1').header)), 'no session');
  assert.equal(await reason(cookieOpts(cookieHeader(NEXTAUTH_COOKIE, 'sess-v4-empty').header, 'polling')), 'no session');
  assert.equal(await reason(cookieOpts(cookieHeader(AUTHJS_COOKIE, 'sess-noid-33').header)), 'session has no user id');
});

test('a slow or failing endpoint refuses with "session check failed"', { timeout: 15_000 }, async () => {
  assert.equal(await reason(cookieOpts(cookieHeader(AUTHJS_COOKIE, 'sess-slow-404').header)), 'session check failed');
  assert.equal(requestsFor('sess-slow-404'), 1, 'the slow endpoint was asked');
  assert.equal(await reason(cookieOpts(cookieHeader(AUTHJS_COOKIE, 'sess-broken-5').header)), 'session check failed');
});

test('the loop serves others while a session check waits', { timeout: 20_000 }, async () => {
  // A server that waits long for the endpoint; the endpoint holds the request until released.
  const patient = await startServer(
    ['--session-url', appUrl, '--session-timeout', '15000', '--internal-api-key', KEY],
    { AUTH_SECRET: SECRET },
  );
  try {
    const waiting = connect(patient.url, cookieOpts(cookieHeader(AUTHJS_COOKIE, 'sess-held-77').header));
    await waitFor(() => held.get('sess-held-77')?.length === 1, { what: 'the session request' });
    // The CONNECT above is parked; a token client connects meanwhile.
    const token = await mintAuthjs({ secret: SECRET, claims: { sub: 'meanwhile' } });
    const other = sockets.add(await connect(patient.url, { transports: ['websocket'], auth: { token } }));
    assert.equal(other.connected, true);
    held.get('sess-held-77').shift()({ user: { id: 'db-held' } });
    const socket = sockets.add(await waiting);
    const own = await request(socket, 'room:join', { room: 'user:db-held' });
    assert.equal(own.ok, true, JSON.stringify(own));
  } finally {
    sockets.closeAll();
    await patient.stop();
  }
});

test('answers are cached and concurrent CONNECTs with one cookie share one request', { timeout: 15_000 }, async () => {
  const { header } = cookieHeader(AUTHJS_COOKIE, 'sess-cached-7');
  for (let i = 0; i < 3; i++) {
    const s = sockets.add(await connect(srv.url, cookieOpts(header)));
    await isUser(s, 'db-cached');
    s.close();
  }
  assert.equal(requestsFor('sess-cached-7'), 1, 'one request for three CONNECTs in a row');
  const shared = cookieHeader(AUTHJS_COOKIE, 'sess-shared-9').header;
  const all = await Promise.all([0, 1, 2].map(() => connect(srv.url, cookieOpts(shared))));
  for (const s of all) sockets.add(s);
  await isUser(all[2], 'db-shared', 3);
  assert.equal(requestsFor('sess-shared-9'), 1, 'one request for three concurrent CONNECTs');
});

test('the session cookie from a foreign origin is never forwarded; an encrypted cookie is not either', { timeout: 15_000 }, async () => {
  const { header } = cookieHeader(AUTHJS_COOKIE, 'sess-ada-6c1f');
  const before = seen.length;
  const hijack = sockets.add(client(srv.url, cookieOpts(header, 'websocket', { origin: 'http://evil.example' })));
  assert.ok(await connected(hijack).then(() => false, () => true), 'the cross-site WebSocket is refused');
  const fromApp = sockets.add(await connect(srv.url, cookieOpts(cookieHeader(AUTHJS_COOKIE, 'sess-grace-02').header, 'websocket', { origin: APP })));
  await isUser(fromApp, '42');
  const jwe = await mintAuthjs({ secret: SECRET, claims: { sub: 'jwt-user' } });
  const local = sockets.add(await connect(srv.url, cookieOpts(cookieHeader(AUTHJS_COOKIE, jwe).header)));
  await isUser(local, 'jwt-user');
  const asked = seen.slice(before).map((r) => r.sessionId);
  assert.deepEqual(asked.filter((id) => id !== 'sess-grace-02'), [], `the endpoint was asked about ${asked}`);
});

test('session ids never reach the log', { timeout: 15_000 }, async () => {
  const log = srv.stderr();
  assert.match(log, /session check failed/, 'the failures above were logged (at debug level too)');
  for (const id of Object.keys(SESSIONS)) assert.ok(!log.includes(id), `the log contains ${id}`);
});
