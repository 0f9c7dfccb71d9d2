// Property: with SOCKET_IO_ADMIN_USERNAME / SOCKET_IO_ADMIN_PASSWORD_HASH set, the `/admin`
// namespace speaks the protocol of `@socket.io/admin-ui`'s `instrument()`: a bad login is
// refused with the reference's exact "invalid credentials", a good one (no client token
// needed) gets `session` and `config` after its CONNECT, then `all_sockets` and `server_stats`;
// connects, room joins and disconnects are reported in the order the UI relies on
// (socket_connected before room_joined, never a room twice, room_left for each room after a
// disconnect); the commands act; read-only advertises none and ignores them; and without the
// settings the namespace does not exist.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import bcrypt from 'bcryptjs';
import { startServer, client, connected, connect, once, emitAck, userToken, tracker } from './fixture.mjs';

const SECRET = 'admin-test-secret';
const PASSWORD = 's3cret-pass';
const HASH = bcrypt.hashSync(PASSWORD, 4);
const ADMIN_ENV = {
  JWT_SECRET: SECRET,
  SOCKET_IO_ADMIN_USERNAME: 'admin',
  SOCKET_IO_ADMIN_PASSWORD_HASH: HASH,
};

const sockets = tracker();
let server;
let readOnly;
let plain;

before(async () => {
  [server, readOnly, plain] = await Promise.all([
    startServer([], ADMIN_ENV),
    startServer(['--admin-read-only'], ADMIN_ENV),
    startServer([], { JWT_SECRET: SECRET }),
  ]);
});

after(async () => {
  sockets.closeAll();
  await Promise.all([server?.stop(), readOnly?.stop(), plain?.stop()]);
});

/** A client socket on `/` for user `sub`. */
async function user(url, sub) {
  return sockets.add(await connect(url, { auth: { token: userToken(SECRET, sub) } }));
}

/**
 * An admin socket that, like the UI, attaches its listeners only on `connect`, and records
 * every event as [name, ...args] in order.
 */
function admin(url, auth = { username: 'admin', password: PASSWORD }) {
  const socket = sockets.add(client(`${url}/admin`, { auth, withCredentials: true }));
  const events = [];
  const waiters = [];
  socket.once('connect', () => {
    socket.onAny((name, ...args) => {
      events.push([name, ...args]);
      for (const w of [...waiters]) {
        if (w.pred([name, ...args])) {
          waiters.splice(waiters.indexOf(w), 1);
          w.res([name, ...args]);
        }
      }
    });
  });
  /** Resolves with the first recorded event (past or future) matching `pred`. */
  function wait(pred, timeoutMs = 6_000) {
    const seen = events.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((res, rej) => {
      const w = { pred, res };
      waiters.push(w);
      setTimeout(() => {
        const i = waiters.indexOf(w);
        if (i >= 0) {
          waiters.splice(i, 1);
          rej(new Error(`no matching admin event; got ${JSON.stringify(events.map((e) => e[0]))}`));
        }
      }, timeoutMs);
    });
  }
  return { socket, events, wait };
}

/**
 * A barrier on the admin's own Engine.IO session: a `/` socket on the same Manager emits with
 * an ack; packets of one session are handled in order, so every command the admin sent before
 * has been handled once the ack arrives.
 */
async function settle(adminSocket) {
  const probe = sockets.add(adminSocket.io.socket('/', { auth: { token: userToken(SECRET, 'probe') } }));
  if (!probe.connected) {
    probe.connect();
    await connected(probe);
  }
  await emitAck(probe, 'admin-test:barrier', [{}]);
}

test('a wrong password or a client token is refused with the exact "invalid credentials"', async () => {
  for (const auth of [
    { username: 'admin', password: 'wrong' },
    { username: 'other', password: PASSWORD },
    { token: userToken(SECRET, 'u-admin') },
    {},
  ]) {
    const s = sockets.add(client(`${server.url}/admin`, { auth }));
    const [err] = await once(s, 'connect_error');
    assert.equal(err.message, 'invalid credentials', JSON.stringify(auth));
    assert.equal(s.connected, false);
  }
});

test('without the admin settings the namespace does not exist', async () => {
  const s = sockets.add(client(`${plain.url}/admin`, { auth: { username: 'admin', password: PASSWORD } }));
  const [err] = await once(s, 'connect_error');
  assert.equal(err.message, 'Invalid namespace');
});

test('login: session and config follow the CONNECT, then all_sockets with the reference shape', async () => {
  const a = await user(server.url, 'shape-a');
  const adm = admin(server.url);
  await connected(adm.socket);
  const [, sessionId] = await adm.wait((e) => e[0] === 'session');
  assert.match(sessionId, /^\S{8,}$/);
  const [, config] = await adm.wait((e) => e[0] === 'config');
  assert.deepEqual(config.supportedFeatures, [
    'EMIT', 'JOIN', 'LEAVE', 'DISCONNECT', 'MJOIN', 'MLEAVE', 'MDISCONNECT', 'AGGREGATED_EVENTS', 'ALL_EVENTS',
  ]);
  const names = adm.events.map((e) => e[0]);
  assert.deepEqual(names.slice(0, 3), ['session', 'config', 'all_sockets']);

  const [, all] = await adm.wait((e) => e[0] === 'all_sockets');
  const mine = all.find((s) => s.id === a.id);
  assert.ok(mine, 'the connected client is listed');
  assert.equal(mine.nsp, '/');
  assert.equal(typeof mine.clientId, 'string');
  assert.equal(mine.clientId.length, 12);
  assert.ok(['polling', 'websocket'].includes(mine.transport), mine.transport);
  assert.equal(typeof mine.handshake, 'object');
  assert.deepEqual(mine.data, { user: 'shape-a' });
  assert.equal(mine.rooms[0], a.id, 'own id room first');
  assert.ok(mine.rooms.includes('user:shape-a'));
  // The admin socket itself is listed in its namespace, as the reference does.
  assert.ok(all.some((s) => s.nsp === '/admin' && s.id === adm.socket.id));

  // The session id logs in again without the password (the UI's reconnect).
  const again = admin(server.url, { sessionId });
  await connected(again.socket);
  await again.wait((e) => e[0] === 'config');
  assert.equal(again.events.some((e) => e[0] === 'session'), false);
});

test('server_stats: now and every 2 s, with a stable serverId, counts and aggregated events', { timeout: 15_000 }, async () => {
  await user(server.url, 'stats-a');
  const adm = admin(server.url);
  await connected(adm.socket);
  const [, first] = await adm.wait((e) => e[0] === 'server_stats');
  for (const k of ['serverId', 'hostname']) assert.equal(typeof first[k], 'string', k);
  assert.equal(typeof first.pid, 'number');
  assert.equal(typeof first.uptime, 'number');
  assert.ok(first.clientsCount >= 2, `clientsCount ${first.clientsCount}`);
  assert.equal(typeof first.pollingClientsCount, 'number');
  const root = first.namespaces.find((n) => n.name === '/');
  assert.ok(root && root.socketsCount >= 1, JSON.stringify(first.namespaces));
  assert.ok(first.namespaces.some((n) => n.name === '/admin' && n.socketsCount >= 1));

  const [, second] = await adm.wait((e) => e[0] === 'server_stats' && e[1] !== first);
  assert.equal(second.serverId, first.serverId);
  assert.ok(Array.isArray(second.aggregatedEvents));
  const types = new Set(second.aggregatedEvents.map((e) => e.type));
  // The admin's own traffic (config, all_sockets, stats) went out since the first report.
  assert.ok(types.has('packetsOut') && types.has('bytesOut'), JSON.stringify(second.aggregatedEvents));
  for (const e of second.aggregatedEvents) {
    assert.equal(e.timestamp % 1000, 0);
    assert.ok(e.count > 0);
  }
});

test('socket_connected comes before room_joined, rooms are never repeated, a disconnect leaves each room', { timeout: 15_000 }, async () => {
  const adm = admin(server.url);
  await connected(adm.socket);
  await adm.wait((e) => e[0] === 'all_sockets');

  const b = await user(server.url, 'order-b');
  const [, announced, at] = await adm.wait((e) => e[0] === 'socket_connected' && e[1].id === b.id);
  assert.equal(announced.nsp, '/');
  assert.equal(announced.rooms[0], b.id);
  assert.ok(!Number.isNaN(Date.parse(at)), `timestamp ${at}`);
  const iConnected = adm.events.findIndex((e) => e[0] === 'socket_connected' && e[1].id === b.id);

  // The admin makes b join a room, twice: one room_joined.
  adm.socket.emit('join', '/', 'lobby', b.id);
  adm.socket.emit('join', '/', 'lobby', b.id);
  await settle(adm.socket);
  const joined = await adm.wait((e) => e[0] === 'room_joined' && e[3] === b.id && e[2] === 'lobby');
  assert.equal(joined[1], '/');
  const joinedB = adm.events
    .map((e, i) => [e, i])
    .filter(([e]) => e[0] === 'room_joined' && e[3] === b.id);
  for (const [e, i] of joinedB) {
    assert.ok(i > iConnected, 'room_joined after socket_connected');
    assert.ok(!announced.rooms.includes(e[2]), `room ${e[2]} was already listed`);
  }
  assert.equal(joinedB.filter(([e]) => e[2] === 'lobby').length, 1);

  const bid = b.id; // the client forgets its id on disconnect
  b.disconnect();
  const [, nsp, id, reason] = await adm.wait((e) => e[0] === 'socket_disconnected' && e[2] === bid);
  assert.equal(nsp, '/');
  assert.equal(id, bid);
  assert.equal(reason, 'client namespace disconnect');
  const rooms = [bid, 'user:order-b', 'lobby'];
  for (const room of rooms) {
    await adm.wait((e) => e[0] === 'room_left' && e[2] === room && e[3] === bid);
  }
  const iGone = adm.events.findIndex((e) => e[0] === 'socket_disconnected' && e[2] === bid);
  const left = adm.events.filter((e, i) => e[0] === 'room_left' && e[3] === bid && i > iGone);
  assert.deepEqual(left.map((e) => e[2]).sort(), [...rooms].sort());
});

test('commands: emit reaches the filtered socket and _disconnect ends it with "io server disconnect"', async () => {
  const c = await user(server.url, 'cmd-c');
  const adm = admin(server.url);
  await connected(adm.socket);
  await adm.wait((e) => e[0] === 'config');

  const got = once(c, 'admin:hello');
  adm.socket.emit('emit', '/', c.id, 'admin:hello', { n: 1 });
  // A broadcast like any other: with recovery on its offset is the last argument.
  const [data] = await got;
  assert.deepEqual(data, { n: 1 });

  const cid = c.id;
  const gone = once(c, 'disconnect');
  adm.socket.emit('_disconnect', '/', false, cid);
  const [reason] = await gone;
  assert.equal(reason, 'io server disconnect');
  const [, , , why] = await adm.wait((e) => e[0] === 'socket_disconnected' && e[2] === cid);
  assert.equal(why, 'server namespace disconnect');
});

test('read-only: no command is advertised and commands are ignored', async () => {
  const d = await user(readOnly.url, 'ro-d');
  const adm = admin(readOnly.url);
  await connected(adm.socket);
  const [, config] = await adm.wait((e) => e[0] === 'config');
  assert.deepEqual(config.supportedFeatures, ['AGGREGATED_EVENTS', 'ALL_EVENTS']);
  adm.socket.emit('_disconnect', '/', false, d.id);
  adm.socket.emit('join', '/', 'ro-room', d.id);
  await settle(adm.socket);
  assert.equal(d.connected, true);
  assert.equal(adm.events.some((e) => e[0] === 'room_joined' && e[2] === 'ro-room'), false);
});

test('a slow password check runs off the loop: packets behind the admin CONNECT are served first', { timeout: 30_000 }, async () => {
  // Cost 12: a few hundred ms per check. The admin CONNECT and a client event travel in this
  // order on one Engine.IO session, which the server reads in order: the event's ack comes
  // back first only if the check did not hold the loop.
  const slow = await startServer([], { ...ADMIN_ENV, SOCKET_IO_ADMIN_PASSWORD_HASH: bcrypt.hashSync(PASSWORD, 12) });
  try {
    const u = await user(slow.url, 'slow-u');
    const order = [];
    const adm = sockets.add(u.io.socket('/admin', { auth: { username: 'admin', password: PASSWORD } }));
    const loggedIn = connected(adm).then(() => order.push('admin'));
    await emitAck(u, 'admin-test:ping', [{}]).then(() => order.push('client'));
    await loggedIn;
    assert.deepEqual(order, ['client', 'admin']);
  } finally {
    await slow.stop();
  }
});

test('--admin-no-auth (development): any CONNECT gets config, and no session id', async () => {
  const open = await startServer(['--admin-no-auth', '--admin-namespace', '/ops'], { JWT_SECRET: SECRET });
  try {
    const adm = sockets.add(client(`${open.url}/ops`));
    const events = [];
    adm.once('connect', () => adm.onAny((name) => events.push(name)));
    const all = once(adm, 'all_sockets');
    await connected(adm);
    await all;
    assert.deepEqual(events.slice(0, 2), ['config', 'all_sockets']);
  } finally {
    await open.stop();
  }
});
