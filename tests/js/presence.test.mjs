// Property: a user is online from its first socket's connect until its last socket's disconnect
// plus the grace period; `user:online {userId, lastSeen:null}` / `user:offline {userId, lastSeen}`
// go once per transition to sockets in the user's conversation/group rooms and to presence
// subscribers (never to the user's own sockets), `presence:subscribe` answers the states in its
// ack and in `user:presence`, GET /api/presence agrees, and transitions are forwarded to the outbox.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { platformSuite, barrier, request, closeAndWait, waitFor, delay } from './fixture.mjs';

const GRACE = 200;
const { api, connectAs, startAnother } = platformSuite('presence-secret', 'presence-key', ['--recovery-window', '0', '--presence-grace', String(GRACE)]);

test('online/offline transitions reach room mates once, with the grace period, never the user itself', { timeout: 20_000 }, async () => {
  const claims = { conversations: ['pres1'] };
  const b1 = await connectAs('pr-b', claims);
  const b2 = await connectAs('pr-b', claims);
  const outsider = await connectAs('pr-x', { conversations: ['other'] });
  for (const s of [b1, b2]) assert.deepEqual(await request(s.socket, 'room:join', { room: 'conversation:pres1' }), { ok: true });
  assert.deepEqual(await request(outsider.socket, 'room:join', { room: 'conversation:other' }), { ok: true });

  const a1 = await connectAs('pr-a', claims);
  for (const s of [b1, b2]) {
    const [ev] = await s.wait('user:online', (x) => x.userId === 'pr-a');
    assert.deepEqual(ev, { userId: 'pr-a', lastSeen: null });
  }
  let p = await api.presence(['pr-a', 'pr-nobody']);
  assert.equal(p.status, 200, p.text);
  assert.deepEqual(p.json, { 'pr-a': { online: true, lastSeen: null }, 'pr-nobody': { online: false, lastSeen: null } });

  // A second socket is not a new transition; closing one of two is not offline.
  const a2 = await connectAs('pr-a', claims);
  assert.deepEqual(await request(a2.socket, 'room:join', { room: 'conversation:pres1' }), { ok: true });
  await closeAndWait(a1);
  await barrier(api, [b1, b2, a2, outsider]);
  assert.equal(b1.count('user:online', (x) => x.userId === 'pr-a'), 1);
  assert.equal(b1.count('user:offline', (x) => x.userId === 'pr-a'), 0);
  assert.equal(outsider.count('user:online'), 0, 'a user sharing no room is not told');
  assert.equal(a2.count('user:online', (x) => x.userId === 'pr-a'), 0, 'own sockets are not told');

  // The last socket goes: offline after the grace period, with lastSeen.
  const t0 = Date.now();
  await closeAndWait(a2);
  p = await api.presence(['pr-a']);
  assert.equal(p.json['pr-a'].online, true, 'still online during the grace period');
  const [off] = await b1.wait('user:offline', (x) => x.userId === 'pr-a', { timeoutMs: 5000 });
  const elapsed = Date.now() - t0;
  assert.ok(elapsed >= GRACE - 20, `offline after the grace period (${elapsed} ms)`);
  assert.equal(off.userId, 'pr-a');
  assert.equal(typeof off.lastSeen, 'number');
  assert.ok(off.lastSeen >= t0 - 1000 && off.lastSeen <= Date.now() + 1000, `lastSeen ${off.lastSeen} is a ms epoch`);
  await b2.wait('user:offline', (x) => x.userId === 'pr-a');
  p = await api.presence(['pr-a']);
  assert.deepEqual(p.json['pr-a'], { online: false, lastSeen: off.lastSeen });

  await barrier(api, [b1, b2, outsider]);
  assert.equal(b1.count('user:offline', (x) => x.userId === 'pr-a'), 1, 'one offline transition');
  assert.equal(outsider.count('user:offline'), 0);

  // The outbox has both transitions, keyed by the user.
  const ob = await api.outbox(0, 10000);
  assert.equal(ob.status, 200, ob.text);
  const mine = ob.json.events.filter((e) => e.key === 'pr-a' && e.event.startsWith('user:'));
  assert.deepEqual(mine.map((e) => e.event), ['user:online', 'user:offline']);
  assert.equal(mine[0].userId, 'pr-a');
  assert.deepEqual(mine[1].data, { userId: 'pr-a', lastSeen: off.lastSeen });
});

test('presence:subscribe answers states (ack and user:presence) and streams transitions until unsubscribe', { timeout: 20_000 }, async () => {
  const watcher = await connectAs('pr-w'); // shares no room with anyone
  const from = watcher.mark();
  const ack = await request(watcher.socket, 'presence:subscribe', { userIds: ['pr-s', 'pr-never'] });
  const expected = { 'pr-s': { online: false, lastSeen: null }, 'pr-never': { online: false, lastSeen: null } };
  assert.deepEqual(ack, { ok: true, presence: expected });
  const [states] = await watcher.wait('user:presence', () => true, { from });
  assert.deepEqual(states, expected);

  const s1 = await connectAs('pr-s');
  assert.deepEqual((await watcher.wait('user:online', (x) => x.userId === 'pr-s'))[0], { userId: 'pr-s', lastSeen: null });
  const ack2 = await request(watcher.socket, 'presence:subscribe', { userIds: ['pr-s'] });
  assert.deepEqual(ack2.presence, { 'pr-s': { online: true, lastSeen: null } });

  await closeAndWait(s1);
  const [off] = await watcher.wait('user:offline', (x) => x.userId === 'pr-s');
  assert.equal(typeof off.lastSeen, 'number');

  assert.deepEqual(await request(watcher.socket, 'presence:unsubscribe', { userIds: ['pr-s'] }), { ok: true });
  const s2 = await connectAs('pr-s');
  await closeAndWait(s2);
  // Wait past the grace period (time is the subject), then make sure nothing came.
  await waitFor(async () => (await api.presence(['pr-s'])).json['pr-s'].online === false, { timeoutMs: 5000, what: 'pr-s offline' });
  await barrier(api, [watcher]);
  assert.equal(watcher.count('user:online', (x) => x.userId === 'pr-s'), 1, 'no transition after unsubscribe');
  assert.equal(watcher.count('user:offline', (x) => x.userId === 'pr-s'), 1);
});

test('presence:subscribe validates userIds (array, at most 500)', { timeout: 10_000 }, async () => {
  const w = await connectAs('pr-v');
  for (const bad of [{}, { userIds: 'pr-a' }, { userIds: [{}] }, { userIds: ['a b'] }, { userIds: Array.from({ length: 501 }, (_, i) => `u${i}`) }]) {
    const r = await request(w.socket, 'presence:subscribe', bad);
    assert.deepEqual([r.ok, r.error], [false, 'invalid_payload'], `${JSON.stringify(bad).slice(0, 60)}: ${JSON.stringify(r)}`);
  }
  const ok = await request(w.socket, 'presence:subscribe', { userIds: Array.from({ length: 500 }, (_, i) => `u${i}`) });
  assert.equal(ok.ok, true);
  assert.equal(Object.keys(ok.presence).length, 500);
});

test('a reconnect within the grace period is not an offline transition', { timeout: 20_000 }, async () => {
  // A longer grace on its own server: the reconnect must land inside it even on a busy machine.
  const { srv: slow, api: slowApi } = await startAnother(['--recovery-window', '0', '--presence-grace', '1500']);
  try {
    const watcher = await connectAs('pr-w2', {}, { url: slow.url });
    await request(watcher.socket, 'presence:subscribe', { userIds: ['pr-r'] });
    const r1 = await connectAs('pr-r', {}, { url: slow.url });
    await watcher.wait('user:online', (x) => x.userId === 'pr-r');
    await closeAndWait(r1);
    const r2 = await connectAs('pr-r', {}, { url: slow.url }); // the page reload
    // Time is the subject: let the grace period of the first disconnect pass.
    await delay(1800);
    await barrier(slowApi, [watcher, r2]);
    assert.equal(watcher.count('user:offline'), 0, 'no offline for a reload within the grace period');
    assert.equal(watcher.count('user:online'), 1, 'no second online either');
    assert.equal((await slowApi.presence(['pr-r'])).json['pr-r'].online, true);
    r2.socket.close();
  } finally {
    await slow.stop();
  }
});
