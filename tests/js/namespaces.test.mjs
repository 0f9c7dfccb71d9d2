// Property: configured namespaces (--namespace /admin) accept connections and multiplex with `/` over one Engine.IO session; an unknown namespace gets CONNECT_ERROR 'Invalid namespace'; leaving one namespace keeps the others working.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, connect, connected, client, once, waitFor, makeJwt, nowSec, tracker } from './fixture.mjs';

const SECRET = 'ns-test-secret';
const KEY = 'ns-test-api-key';
const token = makeJwt({ sub: 'ns-user', iat: nowSec(), exp: nowSec() + 3600 }, SECRET);

let srv;
const sockets = tracker();
before(async () => {
  srv = await startServer(['--jwt-secret', SECRET, '--internal-api-key', KEY, '--namespace', '/admin']);
});
after(async () => {
  sockets.closeAll();
  await srv?.stop();
});

async function apiEmit(body) {
  const res = await fetch(`${srv.url}/api/emit`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  assert.equal(res.status, 202, `POST /api/emit ${JSON.stringify(body)} -> ${res.status} ${text}`);
  return JSON.parse(text);
}

/** Prove `socket` (on namespace `nsp`) still receives server events: target its sid room. */
async function assertReceives(socket, nsp, tag) {
  const got = once(socket, 'ns:probe', 5000);
  const { recipients } = await apiEmit({ event: 'ns:probe', data: { tag }, rooms: [socket.id], namespace: nsp });
  assert.equal(recipients, 1);
  const [data] = await got;
  assert.deepEqual(data, { tag });
}

test('connect to /admin', { timeout: 15_000 }, async () => {
  const admin = sockets.add(await connect(`${srv.url}/admin`, { auth: { token }, transports: ['websocket'] }));
  assert.equal(admin.nsp, '/admin');
  assert.equal(admin.connected, true);
  await assertReceives(admin, '/admin', 'admin-alone');
});

test('unknown namespace -> connect_error "Invalid namespace"', { timeout: 15_000 }, async () => {
  const err = await connect(`${srv.url}/random`, { auth: { token }, transports: ['websocket'] }).then(
    (s) => { sockets.add(s); return null; },
    (e) => e,
  );
  assert.ok(err, 'connecting to /random must fail');
  assert.equal(err.message, 'Invalid namespace');
});

test('/ and /admin multiplexed on one Manager share one engine; unknown namespace on it fails alone', { timeout: 20_000 }, async () => {
  for (const transport of ['websocket', 'polling']) {
    const root = sockets.add(client(srv.url, { auth: { token }, transports: [transport] }));
    const admin = sockets.add(root.io.socket('/admin', { auth: { token } }));
    await Promise.all([connected(root), connected(admin)]);
    assert.equal(admin.io, root.io, 'same Manager');
    assert.equal(admin.io.engine, root.io.engine, 'single Engine.IO connection');
    assert.notEqual(admin.id, root.id, 'each namespace socket has its own id');
    await assertReceives(root, '/', `${transport}-root`);
    await assertReceives(admin, '/admin', `${transport}-admin`);

    // An unknown namespace on the same connection fails without hurting the others.
    const bogus = root.io.socket('/nope', { auth: { token } });
    const err = await connected(bogus).then(() => null, (e) => e);
    assert.ok(err, '/nope must not connect');
    assert.equal(err.message, 'Invalid namespace');
    assert.equal(root.connected, true);
    assert.equal(admin.connected, true);
    assert.equal(root.io.engine.readyState, 'open');
    await assertReceives(root, '/', `${transport}-root-after-bogus`);
    await assertReceives(admin, '/admin', `${transport}-admin-after-bogus`);
  }
});

test('disconnecting / leaves /admin working on the same engine', { timeout: 15_000 }, async () => {
  const root = sockets.add(client(srv.url, { auth: { token }, transports: ['websocket'] }));
  const admin = sockets.add(root.io.socket('/admin', { auth: { token } }));
  await Promise.all([connected(root), connected(admin)]);
  const engine = root.io.engine;
  const rootId = root.id;
  let adminDisconnected = null;
  admin.on('disconnect', (r) => { adminDisconnected = r; });

  root.disconnect();
  await assertReceives(admin, '/admin', 'admin-after-root-left');
  assert.equal(adminDisconnected, null, 'admin must not be disconnected');
  assert.equal(admin.connected, true);
  assert.equal(admin.io.engine, engine);
  assert.equal(engine.readyState, 'open');
  // The server forgets the root socket: emitting to its old sid room soon reaches nobody.
  await waitFor(async () => (await apiEmit({ event: 'ns:gone', rooms: [rootId], namespace: '/' })).recipients === 0,
    { what: 'the departed / socket to leave its sid room' });
});

test('disconnecting /admin leaves / working on the same engine', { timeout: 15_000 }, async () => {
  const root = sockets.add(client(srv.url, { auth: { token }, transports: ['polling'] }));
  const admin = sockets.add(root.io.socket('/admin', { auth: { token } }));
  await Promise.all([connected(root), connected(admin)]);
  const adminId = admin.id;
  const engine = root.io.engine;
  let rootDisconnected = null;
  root.on('disconnect', (r) => { rootDisconnected = r; });

  admin.disconnect();
  await assertReceives(root, '/', 'root-after-admin-left');
  assert.equal(rootDisconnected, null, 'root must not be disconnected');
  assert.equal(root.connected, true);
  assert.equal(engine.readyState, 'open');
  await waitFor(async () => (await apiEmit({ event: 'ns:gone', rooms: [adminId], namespace: '/admin' })).recipients === 0,
    { what: 'the departed /admin socket to leave its sid room' });

  // The same Manager can rejoin /admin afterwards.
  admin.connect();
  await connected(admin);
  await assertReceives(admin, '/admin', 'admin-rejoined');
});
