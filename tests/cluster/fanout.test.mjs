// Two sio-edge nodes on one private redis-server: a broadcast from either node (a client relay,
// POST /api/emit) and from the official @socket.io/redis-emitter (emit, binary emit,
// socketsJoin/socketsLeave, disconnectSockets) reaches every addressed socket on both nodes
// exactly once. Each check counts deliveries, then sends a distinct marker through the same
// path and waits for it, so a late duplicate would have arrived before the marker.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startRedis, startNode, connectUser, tracker, request, expectOnceEach, redisEmitter, waitFor, uniq,
} from './fixture.mjs';

let redis;
let a;
let b;
let em;
const sockets = tracker();

before(async () => {
  redis = await startRedis();
  [a, b] = await Promise.all([
    startNode({ nodeId: 'fanout-a', redisUrl: redis.url }),
    startNode({ nodeId: 'fanout-b', redisUrl: redis.url }),
  ]);
  for (const n of [a, b]) {
    await waitFor(async () => (await n.api.ready()).json?.redis === 'up', { timeoutMs: 10_000, what: `${n.id} /ready redis up` });
  }
  em = await redisEmitter(redis.url);
});

after(async () => {
  sockets.closeAll();
  await em?.close();
  await Promise.all([a?.stop(), b?.stop()]);
  await redis?.stop();
});

/** Two users granted conversation `conv` by claims, one on each node, both joined to it. */
async function pairInConversation(conv) {
  const claims = { conversations: [conv] };
  const [r1, r2] = await Promise.all([
    connectUser(a, uniq('ua'), claims, { track: sockets }),
    connectUser(b, uniq('ub'), claims, { track: sockets }),
  ]);
  for (const r of [r1, r2]) {
    assert.deepEqual(await request(r.socket, 'room:join', { room: `conversation:${conv}` }), { ok: true });
  }
  return [r1, r2];
}

test('a client message:new relayed on either node reaches the room on both nodes once', async () => {
  const conv = uniq('c');
  const room = `conversation:${conv}`;
  const [r1, r2] = await pairInConversation(conv);
  for (const [node, name] of [[a, 'A'], [b, 'B']]) {
    const sender = await connectUser(node, uniq('us'), { conversations: [conv] }, { track: sockets });
    assert.deepEqual(await request(sender.socket, 'room:join', { room }), { ok: true });
    const text = `hello from ${name} ${uniq()}`;
    const ack = await request(sender.socket, 'message:new', { conversationId: conv, text });
    assert.equal(ack.ok, true, `message:new ack: ${JSON.stringify(ack)}`);
    const pred = (m) => m?.text === text;
    const mk = await expectOnceEach([r1, r2], 'message:new', pred,
      (marker) => node.api.emit({ event: marker, rooms: [room] }),
      { what: `message:new sent on node ${name}` });
    const [msg] = r2.all('message:new').find(([m]) => pred(m));
    assert.equal(msg.id, ack.id);
    assert.equal(msg.conversationId, conv);
    assert.equal(msg.createdAt, ack.createdAt);
    // The marker went to the sender too: it never got its own message back.
    await sender.wait(mk);
    assert.equal(sender.count('message:new', pred), 0, 'the sending socket got its own message');
  }
});

test('POST /api/emit on either node reaches rooms and users on both nodes once', async () => {
  const conv = uniq('c');
  const room = `conversation:${conv}`;
  const [r1, r2] = await pairInConversation(conv);
  const users = [r1.user, r2.user];
  for (const [node, name] of [[a, 'A'], [b, 'B']]) {
    // By room.
    let data = { n: uniq(), via: name };
    await node.api.emit({ event: 'conversation:updated', data, rooms: [room] });
    await expectOnceEach([r1, r2], 'conversation:updated', (d) => d?.n === data.n,
      (marker) => node.api.emit({ event: marker, rooms: [room] }), { what: `/api/emit rooms on ${name}` });
    // By user ids.
    data = { n: uniq(), via: name };
    await node.api.emit({ event: 'notification:new', data, users });
    await expectOnceEach([r1, r2], 'notification:new', (d) => d?.n === data.n,
      (marker) => node.api.emit({ event: marker, users }), { what: `/api/emit users on ${name}` });
    // Rooms and users naming the same sockets: the union, still once each.
    data = { n: uniq(), via: name };
    await node.api.emit({ event: 'group:update', data, rooms: [room, 'feed'], users });
    await expectOnceEach([r1, r2], 'group:update', (d) => d?.n === data.n,
      (marker) => node.api.emit({ event: marker, rooms: [room] }), { what: `/api/emit rooms+users on ${name}` });
  }
});

test('POST /api/emit except on one node excludes sockets of the other node', async () => {
  const conv = uniq('c');
  const room = `conversation:${conv}`;
  const [r1, r2] = await pairInConversation(conv);
  const data = { n: uniq() };
  await a.api.emit({ event: 'conversation:updated', data, rooms: [room], except: [r2.socket.id] });
  const mk = await expectOnceEach([r1], 'conversation:updated', (d) => d?.n === data.n,
    (marker) => a.api.emit({ event: marker, rooms: [room] }), { what: 'except' });
  await r2.wait(mk);
  assert.equal(r2.count('conversation:updated', (d) => d?.n === data.n), 0, 'the excepted socket on node B got the event');
});

test('@socket.io/redis-emitter to(room).emit reaches both nodes once, JSON and binary', async () => {
  const conv = uniq('c');
  const room = `conversation:${conv}`;
  const [r1, r2] = await pairInConversation(conv);
  const marker = (ev) => em.emitter.to(room).emit(ev);

  const n = uniq();
  em.emitter.to(room).emit('conversation:updated', { n, nested: { list: [1, 2.5, -3, true, null, 'x'] } });
  await expectOnceEach([r1, r2], 'conversation:updated', (d) => d?.n === n, marker, { what: 'emitter JSON' });
  for (const r of [r1, r2]) {
    const [d] = r.all('conversation:updated').find(([x]) => x?.n === n);
    assert.deepEqual(d, { n, nested: { list: [1, 2.5, -3, true, null, 'x'] } });
  }

  const bytes = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0xff]);
  const name = `${uniq()}.bin`;
  em.emitter.to(room).emit('file', name, bytes, { meta: bytes.subarray(0, 2) });
  await expectOnceEach([r1, r2], 'file', (nm) => nm === name, marker, { what: 'emitter binary' });
  for (const r of [r1, r2]) {
    const [nm, blob, obj] = r.all('file').find(([x]) => x === name);
    assert.equal(nm, name);
    assert.ok(Buffer.isBuffer(blob) || blob instanceof ArrayBuffer, `binary argument arrived as ${typeof blob}: ${JSON.stringify(blob)}`);
    assert.deepEqual([...Buffer.from(blob)], [...bytes]);
    assert.deepEqual([...Buffer.from(obj.meta)], [0xde, 0xad]);
  }

  // The namespace-wide form (no room) reaches both too.
  const all = uniq();
  em.emitter.emit('feed:tick', all);
  await expectOnceEach([r1, r2], 'feed:tick', (x) => x === all, (ev) => em.emitter.emit(ev), { what: 'emitter to everyone' });
});

test('@socket.io/redis-emitter socketsJoin / socketsLeave act on both nodes', async () => {
  const conv = uniq('c');
  const room = `conversation:${conv}`;
  const extra = `post:${uniq()}`;
  const [r1, r2] = await pairInConversation(conv);
  em.emitter.in(room).socketsJoin(extra);
  // Requests and broadcasts travel in publish order over the same connection.
  const n = uniq();
  em.emitter.to(extra).emit('post:update', { n });
  await expectOnceEach([r1, r2], 'post:update', (d) => d?.n === n, (ev) => em.emitter.to(extra).emit(ev), { what: 'after socketsJoin' });
  // An /api/emit from either node now reaches the joined room on both.
  const m = uniq();
  await b.api.emit({ event: 'post:update', data: { n: m }, rooms: [extra] });
  await expectOnceEach([r1, r2], 'post:update', (d) => d?.n === m, (ev) => b.api.emit({ event: ev, rooms: [extra] }), { what: '/api/emit to the joined room' });

  em.emitter.in(room).socketsLeave(extra);
  const gone = uniq();
  em.emitter.to(extra).emit('post:update', { n: gone });
  const endMarker = uniq('end');
  em.emitter.to(room).emit(endMarker);
  await Promise.all([r1, r2].map((r) => r.wait(endMarker)));
  for (const r of [r1, r2]) {
    assert.equal(r.count('post:update', (d) => d?.n === gone), 0, 'delivered to a room the socket left by socketsLeave');
  }
});

test('@socket.io/redis-emitter disconnectSockets disconnects the room on both nodes', async () => {
  const conv = uniq('c');
  const room = `conversation:${conv}`;
  const [r1, r2] = await pairInConversation(conv);
  // A bystander on each node, not in the room, stays connected.
  const [s1, s2] = await Promise.all([
    connectUser(a, uniq('bystander'), {}, { track: sockets }),
    connectUser(b, uniq('bystander'), {}, { track: sockets }),
  ]);
  em.emitter.in(room).disconnectSockets();
  const reasons = await Promise.all([r1, r2].map((r) => r.waitDisconnect(5_000)));
  assert.deepEqual(reasons, ['io server disconnect', 'io server disconnect']);
  for (const s of [s1, s2]) {
    const ack = await request(s.socket, 'room:join', { room: 'feed' });
    assert.deepEqual(ack, { ok: true });
    assert.equal(s.socket.connected, true);
  }
});
