// Presence and grants across two sio-edge nodes sharing a private redis-server: a user online on
// node A is online for node B's /api/presence and for a presence:subscribe subscriber on B, who
// gets user:online and user:offline exactly once (also when the user has sockets on both
// nodes); a grant PUT on A lets the user room:join on B, a DELETE on A removes their socket on B
// with room:removed; a node killed with SIGKILL leaves cluster presence within the TTL; room
// memberships on one node are visible through the members API of the other.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startRedis, startNode, connectUser, tracker, request, waitFor, delay, uniq,
} from './fixture.mjs';

const GRACE_MS = 300;
let redis;
let a;
let b;
const sockets = tracker();
const extraNodes = [];

before(async () => {
  redis = await startRedis();
  const args = ['--presence-grace', String(GRACE_MS)];
  [a, b] = await Promise.all([
    startNode({ nodeId: 'presence-a', redisUrl: redis.url, args }),
    startNode({ nodeId: 'presence-b', redisUrl: redis.url, args }),
  ]);
  for (const n of [a, b]) {
    await waitFor(async () => (await n.api.ready()).json?.redis === 'up', { timeoutMs: 10_000, what: `${n.id} /ready redis up` });
  }
});

after(async () => {
  sockets.closeAll();
  await Promise.all([a?.stop(), b?.stop(), ...extraNodes.map((n) => n.kill('SIGKILL'))]);
  await redis?.stop();
});

/** A subscriber on `node` watching `users`; resolves its recorder after the ack. */
async function watcher(node, users) {
  const w = await connectUser(node, uniq('watch'), {}, { track: sockets });
  const ack = await request(w.socket, 'presence:subscribe', { userIds: users });
  assert.equal(ack.ok, true, `presence:subscribe ack ${JSON.stringify(ack)}`);
  return w;
}

/** Sends a marker to the watcher through node `via` (published like a presence announcement). */
async function markerThrough(via, w) {
  const ev = uniq('test:marker:');
  await via.api.emit({ event: ev, users: [w.user] });
  await w.wait(ev);
}

test('a user online on A is online for /api/presence on B; subscriber on B gets user:online and user:offline once', async () => {
  const user = uniq('p');
  const w = await watcher(b, [user]);
  assert.deepEqual(await b.api.presence([user]), { [user]: { online: false, lastSeen: null } });

  const u = await connectUser(a, user, {}, { track: sockets });
  await w.wait('user:online', (e) => e?.userId === user);

  await waitFor(async () => (await b.api.presence([user]))[user].online === true, { what: 'B: user online' });
  assert.deepEqual((await a.api.presence([user]))[user], { online: true, lastSeen: null });

  await markerThrough(a, w);
  assert.equal(w.count('user:online', (e) => e?.userId === user), 1, 'user:online count on the subscriber');
  const [online] = w.all('user:online').find(([e]) => e?.userId === user);
  assert.equal(online.lastSeen, null);

  const before = Date.now();
  u.socket.close();
  const [offline] = await w.wait('user:offline', (e) => e?.userId === user, { timeoutMs: GRACE_MS + 5_000 });
  assert.equal(typeof offline.lastSeen, 'number', `user:offline payload ${JSON.stringify(offline)}`);
  assert.ok(offline.lastSeen >= before - 1_000 && offline.lastSeen <= Date.now() + 1_000, `lastSeen ${offline.lastSeen}`);
  const p = await waitFor(async () => {
    const r = (await b.api.presence([user]))[user];
    return r.online === false && r;
  }, { what: 'B: user offline' });
  assert.equal(p.lastSeen, offline.lastSeen, 'lastSeen on B matches the announcement');
  await markerThrough(a, w);
  assert.equal(w.count('user:offline', (e) => e?.userId === user), 1, 'user:offline count on the subscriber');
  assert.equal(w.count('user:online', (e) => e?.userId === user), 1, 'user:online count on the subscriber');
});

test('presence:subscribe on B answers the cluster state of a user online on A (ack and user:presence)', async () => {
  const user = uniq('p');
  await connectUser(a, user, {}, { track: sockets });
  await waitFor(async () => (await b.api.presence([user]))[user].online === true, { what: 'B /api/presence: user on A online' });
  const w = await connectUser(b, uniq('watch'), {}, { track: sockets });
  const from = w.mark();
  const ack = await request(w.socket, 'presence:subscribe', { userIds: [user] });
  const [states] = await w.wait('user:presence', () => true, { from });
  // /api/presence on the same node says online; the subscriber must not be told otherwise
  // (it would never hear user:online: the user is not going to come online again).
  assert.deepEqual({ ack, states }, {
    ack: { ok: true, presence: { [user]: { online: true, lastSeen: null } } },
    states: { [user]: { online: true, lastSeen: null } },
  }, 'presence:subscribe on node B for a user connected to node A');
});

test('a user with sockets on both nodes is announced online once and offline once, when the last one leaves', async () => {
  const user = uniq('p');
  const wa = await watcher(a, [user]);
  const wb = await watcher(b, [user]);
  const onA = await connectUser(a, user, {}, { track: sockets });
  await Promise.all([wa, wb].map((w) => w.wait('user:online', (e) => e?.userId === user)));
  const onB = await connectUser(b, user, {}, { track: sockets });
  // B saw the user on A: no second announcement, from either node.
  await Promise.all([markerThrough(a, wa), markerThrough(b, wa), markerThrough(a, wb), markerThrough(b, wb)]);
  for (const w of [wa, wb]) assert.equal(w.count('user:online', (e) => e?.userId === user), 1, 'user:online announced twice');

  onA.socket.close();
  // Time is the subject: the grace period on A passes while the user is still on B.
  await delay(GRACE_MS + 1_000);
  assert.equal((await a.api.presence([user]))[user].online, true, 'A: still online (socket on B)');
  assert.equal((await b.api.presence([user]))[user].online, true, 'B: still online (socket on B)');
  await Promise.all([markerThrough(a, wa), markerThrough(a, wb)]);
  for (const w of [wa, wb]) assert.equal(w.count('user:offline', (e) => e?.userId === user), 0, 'offline while a socket on B remains');

  onB.socket.close();
  await Promise.all([wa, wb].map((w) => w.wait('user:offline', (e) => e?.userId === user, { timeoutMs: GRACE_MS + 5_000 })));
  await Promise.all([markerThrough(a, wa), markerThrough(b, wa), markerThrough(a, wb), markerThrough(b, wb)]);
  for (const w of [wa, wb]) {
    assert.equal(w.count('user:offline', (e) => e?.userId === user), 1, 'user:offline count');
    assert.equal(w.count('user:online', (e) => e?.userId === user), 1, 'user:online count');
  }
  assert.equal((await a.api.presence([user]))[user].online, false);
});

test('a user sharing a conversation hears user:online from the other node', async () => {
  const conv = uniq('c');
  const user = uniq('p');
  const peer = await connectUser(b, uniq('peer'), { conversations: [conv] }, { track: sockets });
  assert.deepEqual(await request(peer.socket, 'room:join', { room: `conversation:${conv}` }), { ok: true });
  await connectUser(a, user, { conversations: [conv] }, { track: sockets });
  await peer.wait('user:online', (e) => e?.userId === user);
  await markerThrough(a, peer);
  assert.equal(peer.count('user:online', (e) => e?.userId === user), 1);
});

test('a grant PUT on A lets the user join on B; a DELETE on A removes the socket on B with room:removed', async () => {
  const room = `group:${uniq('g')}`;
  const user = uniq('g');
  const onB = await connectUser(b, user, {}, { track: sockets });
  const other = await connectUser(a, uniq('o'), { groups: [room.slice('group:'.length)] }, { track: sockets });
  assert.deepEqual(await request(other.socket, 'room:join', { room }), { ok: true });

  const refused = await request(onB.socket, 'room:join', { room });
  assert.equal(refused.ok, false, `join before the grant: ${JSON.stringify(refused)}`);
  assert.equal(refused.error, 'forbidden');

  const put = await a.api.grant(room, user);
  assert.ok(put.status >= 200 && put.status < 300, `PUT grant on A -> ${put.status} ${put.text}`);
  assert.deepEqual(await request(onB.socket, 'room:join', { room }), { ok: true }, 'room:join on B after a grant on A');

  // The member on B gets what is sent to the room from A.
  const n = uniq();
  await a.api.emit({ event: 'group:update', data: { n }, rooms: [room] });
  await onB.wait('group:update', (d) => d?.n === n);

  const del = await a.api.revoke(room, user);
  assert.ok(del.status >= 200 && del.status < 300, `DELETE grant on A -> ${del.status} ${del.text}`);
  const [removed] = await onB.wait('room:removed', (d) => d?.room === room);
  assert.deepEqual(removed, { room, reason: 'revoked' });

  // Out of the room on B: a later broadcast from A reaches the remaining member only.
  const m = uniq();
  await a.api.emit({ event: 'group:update', data: { m }, rooms: [room] });
  const mk = uniq('test:marker:');
  await a.api.emit({ event: mk, users: [user, other.user] });
  await Promise.all([onB.wait(mk), other.wait(mk)]);
  assert.equal(onB.count('group:update', (d) => d?.m === m), 0, 'revoked socket on B still got room broadcasts');
  assert.equal(other.count('group:update', (d) => d?.m === m), 1);
  assert.equal(onB.count('room:removed', (d) => d?.room === room), 1, 'room:removed count');
  // And it may not join again.
  const again = await request(onB.socket, 'room:join', { room });
  assert.equal(again.ok, false, `join after the revoke: ${JSON.stringify(again)}`);
});

test('a node killed with SIGKILL disappears from cluster presence within the TTL', async (t) => {
  const c = await startNode({ nodeId: uniq('presence-c-'), redisUrl: redis.url, args: ['--presence-grace', String(GRACE_MS)] });
  extraNodes.push(c);
  await waitFor(async () => (await c.api.ready()).json?.redis === 'up', { timeoutMs: 10_000, what: 'C /ready redis up' });
  const user = uniq('k');
  await connectUser(c, user, {}, { track: sockets });
  await waitFor(async () => (await b.api.presence([user]))[user].online === true, { what: 'B: user on C online' });

  const killedAt = Date.now();
  await c.kill('SIGKILL');
  // Time is the subject: presence must drop within the TTL (node key 15 s, presence hash 30 s).
  await waitFor(async () => (await b.api.presence([user]))[user].online === false, {
    timeoutMs: 45_000, intervalMs: 250, what: 'B: the user of the SIGKILLed node C offline',
  });
  const took = Date.now() - killedAt;
  t.diagnostic(`offline on B ${took} ms after the SIGKILL`);
  assert.ok(took <= 45_000, `took ${took} ms`);
  assert.equal((await a.api.presence([user]))[user].online, false, 'A agrees');
});

test('room memberships are mirrored: GET /api/rooms/<room>/members on A lists a user connected on B', async () => {
  const user = uniq('m');
  const room = `group:${uniq('g')}`;
  const u = await connectUser(b, user, { rooms: [room] }, { track: sockets });
  const ack = await request(u.socket, 'room:join', { room });
  assert.equal(ack.ok, true, `room:join ack ${JSON.stringify(ack)}`);
  await waitFor(async () => (await a.api.members(room)).json?.connected?.includes(user), { what: `A lists ${user} in ${room}` });
  await request(u.socket, 'room:leave', { room });
  await waitFor(async () => !(await a.api.members(room)).json?.connected?.includes(user), { what: `A drops ${user} from ${room}` });
});
