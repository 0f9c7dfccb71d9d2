// Regressions found while splitting the loop into parts (issue 9), on one node with a private
// redis-server: a broadcast to everyone from @socket.io/redis-emitter is replayed to a socket
// that recovers after missing it; a private room:join answered after a Redis grant lookup obeys
// the per-socket room limit; call:invite mirrors the initiator's grant and leaves nothing behind
// when its join is refused; call:accept that cannot join is refused and the invite stays.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import {
  startRedis, startNode, connectUser, tracker, request, waitFor, uniq, redisEmitter, redisCommand,
} from './fixture.mjs';

/** Rooms one socket may be in (src/server/sockets.rs), its user room included. */
const MAX_ROOMS = 1000;
let redis;
let node;
const sockets = tracker();

before(async () => {
  redis = await startRedis();
  // Joins are rate limited (50 at once): scaled up so a socket can fill its rooms quickly.
  node = await startNode({ nodeId: 'regress', redisUrl: redis.url, args: ['--rate-limit-scale', '1000'] });
  await waitFor(async () => (await node.api.ready()).json?.redis === 'up', { timeoutMs: 10_000, what: '/ready redis up' });
});

after(async () => {
  sockets.closeAll();
  await node?.stop();
  await redis?.stop();
});

/** Fills a socket's rooms up to the limit with public post rooms. */
async function fillRooms(rec) {
  const acks = await Promise.all(Array.from({ length: MAX_ROOMS - 1 }, (_, i) => request(rec.socket, 'room:join', { room: `post:fill${i}` })));
  assert.ok(acks.every((a) => a.ok === true), 'every filler join acked');
  const over = await request(rec.socket, 'room:join', { room: 'post:one-too-many' });
  assert.equal(over.error, 'too_many_rooms', `the socket is full: ${JSON.stringify(over)}`);
}

async function sismember(key, member) {
  const reply = await redisCommand(redis.port, `SISMEMBER ${key} ${member}`);
  return reply.trim() === ':1';
}

test('a broadcast to everyone from the emitter is replayed to a socket that recovers', { timeout: 20_000 }, async () => {
  const user = uniq('all');
  const room = `post:${uniq('seen')}`;
  const a = await connectUser(node, user, {}, { track: sockets, reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200 });
  assert.deepEqual(await request(a.socket, 'room:join', { room }), { ok: true });
  const em = await redisEmitter(redis.url);
  try {
    em.emitter.emit('all:news', { n: 0 });
    await a.wait('all:news', (d) => d.n === 0);
    const oldId = a.socket.id;
    const reconnected = once(a.socket, 'connect');
    const gone = once(a.socket, 'disconnect');
    a.socket.io.engine.close();
    await gone;
    // The node noticed: the user is no longer a connected member of its room.
    await waitFor(async () => !(await node.api.members(room)).json.connected.includes(user), { what: 'node noticed the dropped transport' });
    em.emitter.emit('all:news', { n: 1 });
    em.emitter.to(room).emit('all:news', { n: 2 });
    await reconnected;
    assert.equal(a.socket.recovered, true, 'socket.recovered');
    assert.equal(a.socket.id, oldId);
    await a.wait('all:news', (d) => d.n === 2);
    em.emitter.emit('all:news', { n: 3 });
    await a.wait('all:news', (d) => d.n === 3);
    const got = a.all('all:news').map(([d]) => d.n);
    assert.deepEqual(got, [0, 1, 2, 3], 'the broadcast to everyone sent while away arrives once, in order');
  } finally {
    await em.close();
  }
});

test('a private room:join answered after a Redis grant lookup obeys the room limit', { timeout: 30_000 }, async () => {
  const user = uniq('full');
  const conv = uniq('c');
  const a = await connectUser(node, user, {}, { track: sockets });
  // The grant exists only in Redis (written by the platform or another node).
  await redisCommand(redis.port, `SADD socket.io:grants:conversation:${conv} ${user}`);
  await fillRooms(a);
  const ack = await request(a.socket, 'room:join', { room: `conversation:${conv}` });
  assert.equal(ack.ok, false, `refused: ${JSON.stringify(ack)}`);
  assert.equal(ack.error, 'too_many_rooms');
  const m = await node.api.members(`conversation:${conv}`);
  assert.ok(!m.json.connected.includes(user), 'and it did not join');
  // With room to spare the same lookup joins.
  assert.deepEqual(await request(a.socket, 'room:leave', { room: 'post:fill0' }), { ok: true });
  assert.deepEqual(await request(a.socket, 'room:join', { room: `conversation:${conv}` }), { ok: true });
});

test('call:invite mirrors the initiator grant; a refused invite leaves no call and no grant', { timeout: 30_000 }, async () => {
  const caller = uniq('caller');
  const callee = uniq('callee');
  const a = await connectUser(node, caller, {}, { track: sockets });
  const call = uniq('call');
  assert.deepEqual(await request(a.socket, 'call:invite', { callId: call, kind: 'voice', to: callee }), { ok: true });
  // Mirror writes are asynchronous (the ack does not wait for them): wait, bounded, for both.
  await waitFor(() => sismember(`socket.io:grants:call:${call}`, caller), { what: 'initiator grant mirrored to Redis' });
  await waitFor(() => sismember(`socket.io:grants:call:${call}`, callee), { what: 'invitee grant mirrored to Redis' });

  const full = await connectUser(node, uniq('fullcaller'), {}, { track: sockets });
  await fillRooms(full);
  const refused = uniq('call');
  const ack = await request(full.socket, 'call:invite', { callId: refused, kind: 'video', to: callee });
  assert.equal(ack.error, 'too_many_rooms', JSON.stringify(ack));
  // A marker write queued after the refused invite's (possible) writes: once it is in Redis,
  // anything the invite wrote would be too (one queue, in order).
  await node.api.grant(`conversation:${uniq('marker')}`, full.user);
  assert.ok(!(await sismember(`socket.io:grants:call:${refused}`, full.user)), 'no grant left behind');
  // No call left behind either: the id is free for someone else.
  const other = await connectUser(node, uniq('other'), {}, { track: sockets });
  assert.deepEqual(await request(other.socket, 'call:invite', { callId: refused, kind: 'voice', to: callee }), { ok: true });
});

test('call:accept that cannot join is refused and the invite stays', { timeout: 30_000 }, async () => {
  const caller = uniq('caller');
  const callee = uniq('callee');
  const a = await connectUser(node, caller, {}, { track: sockets });
  const full = await connectUser(node, callee, {}, { track: sockets });
  await fillRooms(full);
  const call = uniq('call');
  assert.deepEqual(await request(a.socket, 'call:invite', { callId: call, kind: 'voice', to: callee }), { ok: true });
  await full.wait('call:invite', (d) => d.callId === call);
  const ack = await request(full.socket, 'call:accept', { callId: call });
  assert.equal(ack.error, 'too_many_rooms', JSON.stringify(ack));
  // The same user on another socket can still accept: the invite was not consumed.
  const spare = await connectUser(node, callee, {}, { track: sockets });
  const ok = await request(spare.socket, 'call:accept', { callId: call });
  assert.equal(ok.ok, true, JSON.stringify(ok));
  assert.deepEqual([...ok.participants].sort(), [callee, caller].sort());
});
