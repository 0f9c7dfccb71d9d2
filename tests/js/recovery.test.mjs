// Property: connection state recovery: broadcasts carry an offset string as an extra last
// argument; a socket whose transport drops (the client closes `socket.io.engine`) and that
// reconnects within the recovery window gets `socket.recovered === true`, the same `socket.id`, its
// rooms back, and every broadcast addressed to it while it was down exactly once, in order; a
// deliberate disconnect, an expired window or a grant revoked while down is not recovered into.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { platformSuite, barrier, request, once, waitFor, delay, fetchMetrics, metricSum } from './fixture.mjs';

// A short presence grace so that a dropped user goes offline (and back online) within a test.
const { api, connectAs, startAnother } = platformSuite('recovery-secret', 'recovery-key', ['--recovery-window', '30000', '--presence-grace', '100']);

// Automatic reconnection, one attempt after a fixed second: long enough to emit while it is down.
const RECONNECT = { reconnection: true, reconnectionDelay: 1000, reconnectionDelayMax: 1000, randomizationFactor: 0 };
const data = (rec, event) => rec.all(event).map((args) => args[0]);

/** Wait until the server has dropped every socket of `user` from `room` (it noticed the close). */
async function serverNoticed(room, user, theApi = api) {
  await waitFor(async () => {
    const m = await theApi.members(room);
    return m.status === 200 && !m.json.connected.includes(user);
  }, { timeoutMs: 5000, what: `${user} gone from ${room}` });
}

/** Drop the transport from the client side (no Engine.IO close packet: a lost connection). */
async function dropTransport(rec) {
  const gone = once(rec.socket, 'disconnect', 5000);
  rec.socket.io.engine.close();
  const [reason] = await gone;
  return reason;
}

test('broadcasts carry an offset; a dropped transport is recovered with id, rooms and missed broadcasts exactly once', { timeout: 20_000 }, async () => {
  const claims = { conversations: ['rc1'] };
  const a = await connectAs('rc-a', claims, RECONNECT);
  const [b1, b2] = await Promise.all([connectAs('rc-b', claims), connectAs('rc-b', claims)]);
  for (const s of [a, b1, b2]) assert.deepEqual(await request(s.socket, 'room:join', { room: 'conversation:rc1' }), { ok: true });
  assert.deepEqual(await request(a.socket, 'room:join', { room: 'post:rp1' }), { ok: true });
  assert.equal(a.socket.recovered, false, 'a first connect is not a recovery');

  assert.equal(await api.emit({ event: 'rc:news', data: { n: 0 }, rooms: ['conversation:rc1'] }), 3);
  const [first, offset0] = await a.wait('rc:news', (d) => d.n === 0);
  assert.deepEqual(first, { n: 0 });
  assert.equal(typeof offset0, 'string', 'the offset is an extra last argument');
  assert.ok(offset0.length > 0);
  const [, offsetB] = await b1.wait('rc:news', (d) => d.n === 0);
  assert.equal(offsetB, offset0, 'one broadcast, one offset');

  const oldId = a.socket.id;
  const reconnected = once(a.socket, 'connect', 10_000);
  await dropTransport(a);
  await serverNoticed('conversation:rc1', 'rc-a');

  // While it is down: room broadcasts (API and a relayed chat message), one to its sid room, one
  // to a public room it joined, and one to a room it is not in.
  await api.emit({ event: 'rc:news', data: { n: 1 }, rooms: ['conversation:rc1'] });
  await api.emit({ event: 'rc:news', data: { n: 2 }, rooms: ['conversation:rc1'] });
  await api.emit({ event: 'rc:direct', data: { to: 'sid' }, rooms: [oldId] });
  await api.emit({ event: 'rc:post', data: { p: 1 }, rooms: ['post:rp1'] });
  await api.emit({ event: 'rc:elsewhere', data: {}, rooms: ['conversation:zz', 'post:other'] });
  const msg = await request(b1.socket, 'message:new', { conversationId: 'rc1', text: 'while you were away' });
  assert.equal(msg.ok, true);
  assert.equal(a.socket.connected, false, 'all of that happened while the socket was down');

  await reconnected;
  assert.equal(a.socket.recovered, true, 'socket.recovered');
  assert.equal(a.socket.id, oldId, 'same socket id');

  await barrier(api, [a, b1, b2]);
  assert.deepEqual(data(a, 'rc:news'), [{ n: 0 }, { n: 1 }, { n: 2 }], 'missed room broadcasts once each, in order');
  assert.deepEqual(data(a, 'rc:direct'), [{ to: 'sid' }]);
  assert.deepEqual(data(a, 'rc:post'), [{ p: 1 }]);
  assert.deepEqual(data(a, 'message:new').map((m) => m.id), [msg.id], 'the relayed chat message once');
  assert.equal(a.count('rc:elsewhere'), 0, 'nothing addressed elsewhere');
  // Offsets keep increasing across the gap.
  const offs = a.all('rc:news').map((args) => BigInt(args.at(-1)));
  assert.ok(offs[0] < offs[1] && offs[1] < offs[2], `increasing offsets ${offs}`);
  for (const b of [b1, b2]) assert.deepEqual(data(b, 'rc:news'), [{ n: 0 }, { n: 1 }, { n: 2 }], 'others unaffected');

  // Rooms were kept without a new room:join: live room traffic reaches it, and the server lists it.
  await api.emit({ event: 'rc:news', data: { n: 3 }, rooms: ['conversation:rc1'] });
  await a.wait('rc:news', (d) => d.n === 3);
  const m = await api.members('conversation:rc1');
  assert.ok(m.json.connected.includes('rc-a'));
  const m2 = await request(b2.socket, 'message:new', { conversationId: 'rc1', text: 'welcome back' });
  assert.deepEqual((await a.wait('message:new', (x) => x.id === m2.id))[0].text, 'welcome back');
  // And it can emit into the room again.
  const m3 = await request(a.socket, 'message:new', { conversationId: 'rc1', text: 'back' });
  assert.equal(m3.ok, true, JSON.stringify(m3));
  await b1.wait('message:new', (x) => x.id === m3.id);
  await barrier(api, [a]);
  assert.equal(a.count('rc:news', (d) => d.n === 3), 1);
});

test('broadcasts to the user room missed while down are replayed once (offline notifications too)', { timeout: 20_000 }, async () => {
  const a = await connectAs('rc-u', {}, RECONNECT);
  const oldId = a.socket.id;
  const reconnected = once(a.socket, 'connect', 10_000);
  await dropTransport(a);
  // The server noticed once a probe to the user room reaches nobody.
  await waitFor(async () => (await api.emit({ event: 'rc:probe', data: null, users: ['rc-u'] })) === 0, { timeoutMs: 5000, what: 'server noticed the drop' });
  await api.emit({ event: 'call:invite', data: { callId: 'x', from: 'someone', kind: 'voice' }, users: ['rc-u'] });
  await api.emit({ event: 'notification:new', data: { id: 'rc-n1' }, users: ['rc-u'] });
  await api.emit({ event: 'rc:for-user', data: { k: 1 }, users: ['rc-u'] });
  await reconnected;
  assert.equal(a.socket.recovered, true);
  assert.equal(a.socket.id, oldId);
  await barrier(api, [a]);
  assert.deepEqual(data(a, 'notification:new'), [{ id: 'rc-n1' }], 'the notification exactly once');
  assert.deepEqual(data(a, 'call:invite'), [{ callId: 'x', from: 'someone', kind: 'voice' }], 'the user-room event missed while down is replayed');
  assert.deepEqual(data(a, 'rc:for-user'), [{ k: 1 }]);
});

test('replay keeps the `except` of a broadcast: a recovered socket is not told its own user went offline', { timeout: 15_000 }, async () => {
  const claims = { conversations: ['rc5'] };
  const x = await connectAs('rc-x', claims);
  const y = await connectAs('rc-y', claims);
  for (const s of [x, y]) assert.deepEqual(await request(s.socket, 'room:join', { room: 'conversation:rc5' }), { ok: true });
  await api.emit({ event: 'rc:hello', data: 1, rooms: ['conversation:rc5'] });
  await x.wait('rc:hello');
  await dropTransport(x);
  // rc-x's only socket is gone: after the grace period its room mates are told (except rc-x's own sockets).
  await y.wait('user:offline', (u) => u.userId === 'rc-x');
  const back = once(x.socket, 'connect');
  x.socket.connect();
  await back;
  assert.equal(x.socket.recovered, true);
  await barrier(api, [x]);
  assert.equal(x.count('user:offline', (u) => u.userId === 'rc-x'), 0, 'its own user:offline was replayed to it');
});

test('a recovered class viewer is counted again (class:update follows the change)', { timeout: 15_000 }, async () => {
  const claims = { classes: ['rck'] };
  const t = await connectAs('rc-t', claims);
  const u = await connectAs('rc-v', claims);
  assert.deepEqual(await request(t.socket, 'class:join', { classId: 'rck' }), { ok: true, viewers: 1 });
  assert.deepEqual(await request(u.socket, 'class:join', { classId: 'rck' }), { ok: true, viewers: 2 });
  await t.wait('class:update', (x) => x.viewers === 2, { timeoutMs: 3000 });
  await api.emit({ event: 'rc:class', data: 1, rooms: ['class:rck'] });
  await u.wait('rc:class');
  await dropTransport(u);
  const from = t.mark();
  await t.wait('class:update', (x) => x.viewers === 1, { timeoutMs: 3000, from });
  const back = once(u.socket, 'connect');
  u.socket.connect();
  await back;
  assert.equal(u.socket.recovered, true);
  // The viewer is back in class:rck: the count changed from 1 to 2 and must be told.
  const from2 = t.mark();
  const [upd] = await t.wait('class:update', () => true, { timeoutMs: 3000, from: from2 });
  assert.deepEqual(upd, { classId: 'rck', viewers: 2 });
});

test('a deliberate disconnect is not recovered', { timeout: 15_000 }, async () => {
  const a = await connectAs('rc-d', { conversations: ['rc2'] });
  assert.deepEqual(await request(a.socket, 'room:join', { room: 'conversation:rc2' }), { ok: true });
  await api.emit({ event: 'rc:x', data: 1, rooms: ['conversation:rc2'] });
  await a.wait('rc:x');
  const oldId = a.socket.id;
  const gone = once(a.socket, 'disconnect');
  a.socket.disconnect();
  await gone;
  await serverNoticed('conversation:rc2', 'rc-d');
  await api.emit({ event: 'rc:x', data: 2, rooms: ['conversation:rc2'] });
  const back = once(a.socket, 'connect');
  a.socket.connect();
  await back;
  assert.equal(a.socket.recovered, false);
  assert.notEqual(a.socket.id, oldId);
  await barrier(api, [a]);
  assert.deepEqual(data(a, 'rc:x'), [1], 'nothing replayed');
  await api.emit({ event: 'rc:x', data: 3, rooms: ['conversation:rc2'] });
  await barrier(api, [a]);
  assert.deepEqual(data(a, 'rc:x'), [1], 'rooms were not kept');
});

test('a reconnect after the recovery window is a fresh socket', { timeout: 15_000 }, async () => {
  const { srv: short, api: shortApi } = await startAnother(['--recovery-window', '300']);
  try {
    const a = await connectAs('rc-w', { conversations: ['rc3'] }, { url: short.url });
    assert.deepEqual(await request(a.socket, 'room:join', { room: 'conversation:rc3' }), { ok: true });
    await shortApi.emit({ event: 'rc:y', data: 1, rooms: ['conversation:rc3'] });
    await a.wait('rc:y');
    const oldId = a.socket.id;
    await dropTransport(a);
    await serverNoticed('conversation:rc3', 'rc-w', shortApi);
    await delay(600); // time is the subject: let the 300 ms window pass
    const back = once(a.socket, 'connect');
    a.socket.connect();
    await back;
    assert.equal(a.socket.recovered, false);
    assert.notEqual(a.socket.id, oldId);
    a.socket.close();
  } finally {
    await short.stop();
  }
});

test('a grant revoked while the socket was down is not restored, and the room\'s later traffic is not replayed', { timeout: 20_000 }, async () => {
  const room = 'conversation:rc4';
  assert.equal((await api.grant(room, 'rc-r')).status, 200);
  const a = await connectAs('rc-r', {}, RECONNECT);
  const b = await connectAs('rc-s', { conversations: ['rc4'] });
  for (const s of [a, b]) assert.deepEqual(await request(s.socket, 'room:join', { room }), { ok: true });
  await api.emit({ event: 'rc:z', data: 0, rooms: [room] });
  await a.wait('rc:z');
  const reconnected = once(a.socket, 'connect', 10_000);
  await dropTransport(a);
  await serverNoticed(room, 'rc-r');
  assert.equal((await api.revoke(room, 'rc-r')).status, 200);
  await api.emit({ event: 'rc:z', data: 1, rooms: [room] });
  const secret = await request(b.socket, 'message:new', { conversationId: 'rc4', text: 'after the revocation' });
  await reconnected;
  await barrier(api, [a]);
  assert.deepEqual(data(a, 'rc:z'), [0], 'room traffic sent after the revocation must not be replayed');
  assert.equal(a.count('message:new', (m) => m.id === secret.id), 0, 'chat sent after the revocation must not be replayed');
  await api.emit({ event: 'rc:z', data: 2, rooms: [room] });
  await barrier(api, [a]);
  assert.equal(a.count('rc:z', (d) => d === 2), 0, 'the room is not restored');
  const r = await request(a.socket, 'message:new', { conversationId: 'rc4', text: 'x' });
  assert.deepEqual([r.ok, r.error], [false, 'forbidden']);
});

test('a broadcast nobody could be owed is not kept for replay; one a saved socket could be owed is', { timeout: 20_000 }, async () => {
  // A server of its own: no other test's sockets or presence changes move its counters.
  const { srv, api: own } = await startAnother(['--recovery-window', '30000', '--presence-grace', '100']);
  try {
    const kept = async () => {
      const m = await fetchMetrics(srv.url);
      return { unowed: metricSum(m, 'sio_recovery_unowed_total'), packets: metricSum(m, 'sio_recovery_packets') };
    };
    // No socket in this room and no saved socket was ever in it: nothing to keep.
    assert.deepEqual(await kept(), { unowed: 0, packets: 0 });
    assert.equal(await own.emit({ event: 'rc:nobody', data: 1, rooms: ['rc-nobody-room'] }), 0);
    assert.deepEqual(await kept(), { unowed: 1, packets: 0 }, 'counted, and the log did not grow');
    // A socket whose transport dropped is saved with its user room: a broadcast to it while
    // it is away selects nobody here, and is kept (and replayed) all the same.
    const a = await connectAs('rc-owed', {}, { url: srv.url, ...RECONNECT });
    const reconnected = once(a.socket, 'connect', 10_000);
    await dropTransport(a);
    await waitFor(async () => (await own.emit({ event: 'rc:probe', data: null, users: ['rc-owed'] })) === 0, { timeoutMs: 5000, what: 'server noticed the drop' });
    const mid = await kept();
    assert.equal(await own.emit({ event: 'rc:owed', data: { n: 1 }, users: ['rc-owed'] }), 0);
    assert.equal((await kept()).packets, mid.packets + 1, 'a saved socket could be owed it: kept');
    await reconnected;
    assert.equal(a.socket.recovered, true);
    await barrier(own, [a]);
    assert.deepEqual(data(a, 'rc:owed'), [{ n: 1 }], 'replayed once');
    a.socket.disconnect();
  } finally {
    await srv.stop();
  }
});
