// Property: WebRTC signaling: `call:invite` puts the caller's socket in `call:<id>`, grants the
// invitees and sends them `call:invite {callId, from, kind}` on their user rooms; `call:accept`,
// `call:reject` and `call:end` send `call:update` with the state to the call room;
// `call:signal` reaches only the addressee's sockets in the call room and only when the addressee
// is a participant; after `call:end` nobody is in the call room and the grants are gone; users
// without an invite are refused; a participant who disconnects leaves the call (`left`), and a
// call down to one person ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { platformSuite, barrier, request, refused } from './fixture.mjs';

const { api, connectAs } = platformSuite('calls-secret', 'calls-key', ['--recovery-window', '0']);

test('invite, accept, signal only to the addressee in the call room, end', { timeout: 20_000 }, async () => {
  const [a1, a2, b1, b2, d] = await Promise.all(['cl-a', 'cl-a', 'cl-b', 'cl-b', 'cl-d'].map(connectAs));
  const callId = 'call-1';

  assert.deepEqual(await request(a1.socket, 'call:invite', { callId, to: 'cl-b', kind: 'video' }), { ok: true });
  for (const b of [b1, b2]) {
    assert.deepEqual(await b.wait('call:invite'), [{ callId, from: 'cl-a', kind: 'video' }]);
  }
  const m = await api.members(`call:${callId}`);
  assert.deepEqual(m.json.members, ['cl-a', 'cl-b'], 'caller and invitee hold grants');
  assert.deepEqual(m.json.connected, ['cl-a'], 'only the inviting socket is in the call room');

  // Someone without an invite can neither join, accept nor take over the call id.
  refused(await request(d.socket, 'room:join', { room: `call:${callId}` }), 'forbidden', 'join without invite');
  refused(await request(d.socket, 'call:accept', { callId }), 'forbidden', 'accept without invite');
  refused(await request(d.socket, 'call:invite', { callId, to: 'cl-d', kind: 'voice' }), 'forbidden', 'reuse of a call id');
  refused(await request(d.socket, 'call:end', { callId }), 'forbidden', 'end by an outsider');
  refused(await request(d.socket, 'call:accept', { callId: 'no-such-call' }), 'not_found', 'unknown call');

  const acc = await request(b1.socket, 'call:accept', { callId });
  assert.equal(acc.ok, true, JSON.stringify(acc));
  for (const s of [a1, b1]) {
    const [u] = await s.wait('call:update', (x) => x.state === 'active');
    assert.equal(u.callId, callId);
    assert.equal(u.userId, 'cl-b');
    assert.deepEqual([...u.participants].sort(), ['cl-a', 'cl-b']);
  }

  // Signaling: only the addressee's sockets that are in the call room.
  const sdp = { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n' };
  const sig = await request(a1.socket, 'call:signal', { callId, to: 'cl-b', payload: sdp });
  assert.equal(sig.ok, true, JSON.stringify(sig));
  assert.deepEqual(await b1.wait('call:signal'), [{ callId, from: 'cl-a', payload: sdp }]);
  const ice = { candidate: 'candidate:1 1 udp 2122260223 10.0.0.1 50000 typ host', sdpMid: '0' };
  assert.equal((await request(b1.socket, 'call:signal', { callId, to: 'cl-a', payload: ice })).ok, true);
  assert.deepEqual(await a1.wait('call:signal'), [{ callId, from: 'cl-b', payload: ice }]);

  refused(await request(a1.socket, 'call:signal', { callId, to: 'cl-d', payload: {} }), 'forbidden', 'signal to a non-participant');
  refused(await request(d.socket, 'call:signal', { callId, to: 'cl-a', payload: {} }), 'forbidden', 'signal from outside the room');
  refused(await request(a1.socket, 'call:signal', { callId, to: 'cl-b' }), 'invalid_payload', 'signal without payload');
  refused(await request(a1.socket, 'call:signal', { callId, to: 'cl-b', payload: { sdp: 'x'.repeat(64 * 1024) } }), 'invalid_payload', 'payload over 64 KiB');

  await barrier(api, [a1, a2, b1, b2, d]);
  assert.equal(b2.count('call:signal'), 0, 'the addressee\'s socket outside the call room gets no signal');
  assert.equal(a2.count('call:signal'), 0);
  assert.equal(d.count('call:signal') + d.count('call:invite') + d.count('call:update'), 0);
  assert.equal(a2.count('call:invite'), 0, 'the caller\'s own sockets get no invite');
  assert.equal(b1.count('call:signal'), 1, 'one signal, once');

  // End: everyone in the room is told, then the room and the grants are gone.
  assert.deepEqual(await request(a1.socket, 'call:end', { callId }), { ok: true });
  for (const s of [a1, b1]) {
    const [u] = await s.wait('call:update', (x) => x.state === 'ended');
    assert.equal(u.callId, callId);
    assert.equal(u.userId, 'cl-a');
  }
  refused(await request(b1.socket, 'call:signal', { callId, to: 'cl-a', payload: {} }), 'forbidden', 'signal after end');
  refused(await request(b1.socket, 'room:join', { room: `call:${callId}` }), 'forbidden', 'rejoin after end');
  const m2 = await api.members(`call:${callId}`);
  assert.deepEqual([m2.json.members, m2.json.connected], [[], []]);
});

test('invite to several users; a rejection is announced and takes the grant back', { timeout: 15_000 }, async () => {
  const [a, b, c] = await Promise.all(['cr-a', 'cr-b', 'cr-c'].map(connectAs));
  const callId = 'call-2';
  assert.deepEqual(await request(a.socket, 'call:invite', { callId, to: ['cr-b', 'cr-c'], kind: 'voice' }), { ok: true });
  assert.deepEqual(await b.wait('call:invite'), [{ callId, from: 'cr-a', kind: 'voice' }]);
  assert.deepEqual(await c.wait('call:invite'), [{ callId, from: 'cr-a', kind: 'voice' }]);

  assert.deepEqual(await request(c.socket, 'call:reject', { callId }), { ok: true });
  const [u] = await a.wait('call:update', (x) => x.state === 'rejected');
  assert.deepEqual(u, { callId, state: 'rejected', userId: 'cr-c' });
  refused(await request(c.socket, 'room:join', { room: `call:${callId}` }), 'forbidden', 'grant taken back');
  refused(await request(c.socket, 'call:accept', { callId }), 'forbidden', 'accept after reject');
  refused(await request(c.socket, 'call:reject', { callId }), 'forbidden', 'reject twice');

  // B can still accept.
  assert.equal((await request(b.socket, 'call:accept', { callId })).ok, true);
  const [act] = await a.wait('call:update', (x) => x.state === 'active');
  assert.deepEqual([...act.participants].sort(), ['cr-a', 'cr-b']);
  assert.deepEqual(await request(b.socket, 'call:end', { callId }), { ok: true });
  const [end] = await a.wait('call:update', (x) => x.state === 'ended');
  assert.equal(end.userId, 'cr-b');
});

test('call:invite validates callId, to and kind', { timeout: 15_000 }, async () => {
  const a = await connectAs('cv-a');
  const bad = [
    { to: 'x', kind: 'voice' },
    { callId: 'bad id', to: 'x', kind: 'voice' },
    { callId: 'cv1', kind: 'voice' },
    { callId: 'cv1', to: [], kind: 'voice' },
    { callId: 'cv1', to: Array.from({ length: 17 }, (_, i) => `u${i}`), kind: 'voice' },
    { callId: 'cv1', to: ['ok', {}], kind: 'voice' },
    { callId: 'cv1', to: 'x', kind: 'fax' },
    { callId: 'cv1', to: 'x' },
  ];
  for (const p of bad) refused(await request(a.socket, 'call:invite', p), 'invalid_payload', JSON.stringify(p).slice(0, 80));
  // 16 invitees is the limit, and allowed.
  assert.deepEqual(await request(a.socket, 'call:invite', { callId: 'cv2', to: Array.from({ length: 16 }, (_, i) => `u${i}`), kind: 'screen' }), { ok: true });
});

test('a participant who disconnects leaves the call; the last two becoming one ends it', { timeout: 20_000 }, async () => {
  const [a, b, c] = await Promise.all(['lv-a', 'lv-b', 'lv-c'].map(connectAs));
  const callId = 'call-leave';
  assert.deepEqual(await request(a.socket, 'call:invite', { callId, to: ['lv-b', 'lv-c'], kind: 'voice' }), { ok: true });
  await Promise.all([b.wait('call:invite'), c.wait('call:invite')]);
  for (const s of [b, c]) assert.equal((await request(s.socket, 'call:accept', { callId })).ok, true);
  await a.wait('call:update', (x) => x.state === 'active' && x.participants.length === 3);

  c.socket.disconnect();
  const [left] = await a.wait('call:update', (x) => x.state === 'left');
  assert.deepEqual(left, { callId, state: 'left', userId: 'lv-c' });

  b.socket.disconnect();
  const [ended] = await a.wait('call:update', (x) => x.state === 'ended');
  assert.equal(ended.userId, 'lv-b');
  const m = await api.members(`call:${callId}`);
  assert.deepEqual(m.json, { room: `call:${callId}`, members: [], connected: [] }, 'grants and room are gone');
});
