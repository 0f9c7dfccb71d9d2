// A Node socket.io 4.8 server with the official @socket.io/redis-adapter 8 on the same Redis as a
// sio-edge node: its fetchSockets() sees sio-edge's sockets with their rooms and data (and its
// adapter's allRooms() and sockets(rooms) their rooms and ids), its
// serverSideEmit reaches sio-edge (counted in /metrics; serverSideEmitWithAck answered), and
// its broadcasts with acks reach sio-edge's clients and bring their acks back.
//
// The adapter counts answers against PUBSUB NUMSUB of the request channel, which includes the
// sio-edge node: a request sio-edge did not answer makes the Node call time out (reject).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createRequire } from 'node:module';
import { startRedis, startNode, connectUser, tracker, request, waitFor, uniq } from './fixture.mjs';

const require = createRequire(import.meta.url);
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const { createClient } = require('redis');

const REQUEST_CHANNEL = 'socket.io-request#/#';

let redis;
let a;
let pub;
let sub;
let httpServer;
let nodeIo;
const sockets = tracker();

before(async () => {
  redis = await startRedis();
  a = await startNode({ nodeId: 'adapter-a', redisUrl: redis.url });
  await waitFor(async () => (await a.api.ready()).json?.redis === 'up', { timeoutMs: 10_000, what: 'sio-edge /ready redis up' });
  pub = createClient({ url: redis.url });
  sub = pub.duplicate();
  for (const c of [pub, sub]) {
    c.on('error', () => { /* reported by the failing call */ });
    await c.connect();
  }
  httpServer = http.createServer();
  nodeIo = new Server(httpServer, { serveClient: false, adapter: createAdapter(pub, sub, { requestsTimeout: 3_000 }) });
  await new Promise((res) => httpServer.listen(0, '127.0.0.1', res));
  // Both the sio-edge node and the Node adapter listen for requests: the Node side then waits
  // for sio-edge's answers instead of resolving with its own sockets alone.
  await waitFor(async () => {
    const [, n] = await pub.sendCommand(['PUBSUB', 'NUMSUB', REQUEST_CHANNEL]);
    return Number(n) === 2;
  }, { timeoutMs: 5_000, what: `two subscribers on ${REQUEST_CHANNEL}` });
});

after(async () => {
  sockets.closeAll();
  await new Promise((res) => (nodeIo ? nodeIo.close(() => res()) : res()));
  for (const c of [sub, pub]) {
    try { await c?.quit(); } catch { /* gone */ }
  }
  await a?.stop();
  await redis?.stop();
});

/** `n` users on sio-edge, the first `inRoom` of them joined to a fresh conversation room. */
async function usersInRoom(n, inRoom) {
  const conv = uniq('c');
  const room = `conversation:${conv}`;
  const recs = [];
  for (let i = 0; i < n; i++) {
    recs.push(await connectUser(a, uniq(`u${i}`), { conversations: [conv] }, { track: sockets }));
  }
  for (const r of recs.slice(0, inRoom)) {
    assert.deepEqual(await request(r.socket, 'room:join', { room }), { ok: true });
  }
  return { room, recs };
}

async function metric(name) {
  const r = await a.api.call('GET', '/metrics');
  assert.equal(r.status, 200);
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(r.text);
  assert.ok(m, `${name} is in /metrics`);
  return Number(m[1]);
}

test('io.fetchSockets() in the Node process sees sio-edge sockets with their ids, rooms and data', async () => {
  const { room, recs: [r1, r2] } = await usersInRoom(2, 1);
  const all = await nodeIo.fetchSockets();
  const byId = new Map(all.map((s) => [s.id, s]));
  for (const r of [r1, r2]) {
    assert.ok(byId.has(r.socket.id), `socket ${r.socket.id} of ${r.user} is in io.fetchSockets()`);
    const s = byId.get(r.socket.id);
    assert.deepEqual(s.data, { userId: r.user });
    assert.ok(s.rooms.has(r.socket.id), 'a socket is in the room named by its id');
    assert.ok(s.rooms.has(`user:${r.user}`), `the user room of ${r.user}: ${[...s.rooms]}`);
    assert.equal(s.handshake.auth && typeof s.handshake.auth, 'object');
  }
  assert.ok(byId.get(r1.socket.id).rooms.has(room), `r1 is in ${room}: ${[...byId.get(r1.socket.id).rooms]}`);
  assert.ok(!byId.get(r2.socket.id).rooms.has(room), 'r2 never joined the room');

  const inRoom = await nodeIo.in(room).fetchSockets();
  assert.deepEqual(inRoom.map((s) => s.id), [r1.socket.id]);
  const notInRoom = (await nodeIo.except(room).fetchSockets()).map((s) => s.id);
  assert.ok(notInRoom.includes(r2.socket.id) && !notInRoom.includes(r1.socket.id));
  // A socket id names the one-socket room, as on a Node server.
  assert.deepEqual((await nodeIo.in(r2.socket.id).fetchSockets()).map((s) => s.id), [r2.socket.id]);

  // The RemoteSocket works as on a Node cluster: emit reaches the client, join moves it.
  const remote = byId.get(r2.socket.id);
  const note = uniq('note');
  remote.emit('note', note);
  // (a recovery offset may follow the argument, as on every broadcast sio-edge keeps for replay)
  assert.equal((await r2.wait('note', (n) => n === note))[0], note);
  remote.join(room);
  await waitFor(async () => (await nodeIo.in(room).fetchSockets()).length === 2,
    { timeoutMs: 5_000, what: 'r2 in the room after RemoteSocket.join' });
});

test('adapter.allRooms() in the Node process includes sio-edge rooms; a SOCKETS request gets their ids', async () => {
  const { room, recs: [r1, r2] } = await usersInRoom(2, 1);
  const adapter = nodeIo.of('/').adapter;
  // Unanswered, both would reject after requestsTimeout (the adapter waits for every subscriber).
  const rooms = await adapter.allRooms();
  for (const expected of [room, r1.socket.id, r2.socket.id, `user:${r1.user}`]) {
    assert.ok(rooms.has(expected), `allRooms() has ${expected}`);
  }
  // adapter.sockets() is local in redis-adapter 8; older adapters (socket.io-redis 6) ask every
  // node with a SOCKETS request (type 0) and read `{requestId, sockets}` answers: send that.
  const answers = pub.duplicate();
  answers.on('error', () => { /* reported by the failing wait */ });
  await answers.connect();
  try {
    const got = new Map();
    await answers.subscribe('socket.io-response#/#', (msg) => {
      try {
        const m = JSON.parse(msg);
        got.set(m.requestId, [...(got.get(m.requestId) ?? []), m]);
      } catch { /* another node's MessagePack answer */ }
    });
    const ask = async (rooms) => {
      const requestId = uniq('q');
      await pub.publish(REQUEST_CHANNEL, JSON.stringify({ uid: 'old-adapter', requestId, type: 0, rooms }));
      // One answer per subscriber of the request channel: sio-edge's and the Node server's.
      await waitFor(async () => got.get(requestId)?.length === 2,
        { timeoutMs: 5_000, what: `both answers to ${requestId}` });
      return got.get(requestId).flatMap((m) => m.sockets);
    };
    assert.deepEqual(await ask([room]), [r1.socket.id]);
    const all = await ask([]);
    assert.ok(all.includes(r1.socket.id) && all.includes(r2.socket.id), `no rooms: every socket (${all})`);
  } finally {
    await answers.quit();
  }
});

test('serverSideEmit from the Node process reaches sio-edge; serverSideEmitWithAck gets its answer', async () => {
  const before = await metric('sio_remote_server_side_emits_total');
  nodeIo.serverSideEmit('maintenance', { at: 1 });
  await waitFor(async () => (await metric('sio_remote_server_side_emits_total')) === before + 1,
    { timeoutMs: 5_000, what: 'the serverSideEmit counted on sio-edge' });
  const replies = await nodeIo.serverSideEmitWithAck('health', 1);
  assert.deepEqual(replies, [{ node: 'adapter-a', handled: false }]);
  assert.equal(await metric('sio_remote_server_side_emits_total'), before + 2);
});

test('a broadcast with ack from the Node process reaches sio-edge clients and their acks come back', async () => {
  const { room, recs } = await usersInRoom(3, 2);
  for (const r of recs) r.socket.on('quiz:ask', (q, cb) => cb({ from: r.user, q }));
  const acks = await nodeIo.to(room).timeout(3_000).emitWithAck('quiz:ask', 7);
  assert.deepEqual(
    acks.map((x) => x.from).sort(),
    recs.slice(0, 2).map((r) => r.user).sort(),
  );
  assert.ok(acks.every((x) => x.q === 7));
  // The socket outside the room got nothing: a plain broadcast sent afterwards arrives first.
  const marker = uniq('marker');
  nodeIo.emit(marker);
  await recs[2].wait(marker);
  assert.equal(recs[2].count('quiz:ask'), 0);
  for (const r of recs.slice(0, 2)) assert.equal(r.count('quiz:ask'), 1);

  // No sio-edge socket addressed: sio-edge answers a count of 0 and the call resolves at once.
  assert.deepEqual(await nodeIo.to(uniq('empty-room')).timeout(3_000).emitWithAck('quiz:ask', 8), []);
  assert.equal(await metric('sio_remote_ack_requests_waiting'), 0);
});
