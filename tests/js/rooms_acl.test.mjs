// Property: a socket joins only rooms it may join (its own user room, public feed/post rooms, and
// private rooms for which its user holds a grant from the token's claims or the internal API);
// revoking a grant through the API removes every socket of that user from the room at once with
// `room:removed {room, reason:"revoked"}`, and no room traffic reaches them afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { platformSuite, barrier, request, rawHttp } from './fixture.mjs';

// Recovery off: relayed payloads are compared exactly (no trailing offset argument).
const suite = platformSuite('rooms-acl-secret', 'rooms-acl-key', ['--recovery-window', '0']);
const { api, connectAs } = suite;

test('own user room and public rooms are open; other users\' rooms and unknown kinds are not', { timeout: 15_000 }, async () => {
  const a = await connectAs('acl-a');
  assert.deepEqual(await request(a.socket, 'room:join', { room: 'user:acl-a' }), { ok: true });
  assert.deepEqual(await request(a.socket, 'room:join', { room: 'feed' }), { ok: true });
  assert.deepEqual(await request(a.socket, 'room:join', { room: 'post:42' }), { ok: true });

  let r = await request(a.socket, 'room:join', { room: 'user:acl-b' });
  assert.equal(r.ok, false);
  assert.equal(r.error, 'forbidden', JSON.stringify(r));

  for (const room of ['admin:1', 'nothing', 'conversation:', 'conversation:a b', 'presence:acl-b']) {
    r = await request(a.socket, 'room:join', { room });
    assert.deepEqual([r.ok, r.error], [false, 'invalid_payload'], `room ${JSON.stringify(room)}: ${JSON.stringify(r)}`);
  }
  r = await request(a.socket, 'room:join', { nope: 1 });
  assert.deepEqual([r.ok, r.error], [false, 'invalid_payload'], JSON.stringify(r));

  r = await request(a.socket, 'room:leave', { room: 'user:acl-a' });
  assert.deepEqual([r.ok, r.error], [false, 'forbidden'], 'the user room cannot be left');
});

test('private rooms need a grant: claims grant them, others are refused (ack or error event)', { timeout: 15_000 }, async () => {
  const a = await connectAs('acl-c', {
    conversations: ['c1', 7],
    groups: ['g1'],
    documents: ['d1'],
    quizzes: ['q1'],
    classes: ['k1'],
    calls: ['call1'],
    rooms: ['conversation:viaRooms'],
  });
  for (const room of ['conversation:c1', 'conversation:7', 'group:g1', 'document:d1', 'quiz:q1', 'class:k1', 'call:call1', 'conversation:viaRooms']) {
    assert.deepEqual(await request(a.socket, 'room:join', { room }), { ok: true }, room);
  }
  for (const room of ['conversation:c2', 'group:g2', 'document:d2', 'quiz:q2', 'class:k2', 'call:call2']) {
    const r = await request(a.socket, 'room:join', { room });
    assert.deepEqual([r.ok, r.error], [false, 'forbidden'], `${room}: ${JSON.stringify(r)}`);
  }
  // Without an ack callback the refusal arrives as an `error` event.
  const from = a.mark();
  a.socket.emit('room:join', { room: 'conversation:c2' });
  const [err] = await a.wait('error', () => true, { from });
  assert.equal(err.event, 'room:join');
  assert.equal(err.error, 'forbidden');
  // Emitting into a room the socket is not in is refused too.
  const r = await request(a.socket, 'message:new', { conversationId: 'c2', text: 'hi' });
  assert.deepEqual([r.ok, r.error], [false, 'forbidden'], JSON.stringify(r));
});

test('API grant opens a room; API revoke removes every socket of the user at once', { timeout: 20_000 }, async () => {
  const room = 'conversation:granted1';
  const a1 = await connectAs('acl-d');
  const a2 = await connectAs('acl-d');
  const b = await connectAs('acl-e', { conversations: ['granted1'] });
  assert.deepEqual(await request(b.socket, 'room:join', { room }), { ok: true });

  // No grant yet.
  let r = await request(a1.socket, 'room:join', { room });
  assert.deepEqual([r.ok, r.error], [false, 'forbidden']);

  const g = await api.grant(room, 'acl-d');
  assert.equal(g.status, 200, g.text);
  assert.equal(g.json.granted, true);
  assert.deepEqual(await request(a1.socket, 'room:join', { room }), { ok: true });
  assert.deepEqual(await request(a2.socket, 'room:join', { room }), { ok: true });

  const m = await api.members(room);
  assert.equal(m.status, 200, m.text);
  assert.deepEqual(m.json.members, ['acl-d'], 'API grants are listed (claims are not)');
  assert.deepEqual([...m.json.connected].sort(), ['acl-d', 'acl-e']);

  // Room traffic reaches both of A's sockets.
  let ack = await request(b.socket, 'message:new', { conversationId: 'granted1', text: 'before revoke' });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  for (const s of [a1, a2]) {
    const [msg] = await s.wait('message:new', (x) => x.text === 'before revoke');
    assert.equal(msg.senderId, 'acl-e');
  }

  const from1 = a1.mark();
  const from2 = a2.mark();
  const d = await api.revoke(room, 'acl-d');
  assert.equal(d.status, 200, d.text);
  assert.equal(d.json.granted, false);
  assert.equal(d.json.removedSockets, 2);
  for (const s of [a1, a2]) {
    const [removed] = await s.wait('room:removed', () => true, { from: s === a1 ? from1 : from2 });
    assert.deepEqual(removed, { room, reason: 'revoked' });
  }
  const m2 = await api.members(room);
  assert.deepEqual(m2.json.members, []);
  assert.deepEqual(m2.json.connected, ['acl-e']);

  // Further room traffic no longer reaches A.
  ack = await request(b.socket, 'message:new', { conversationId: 'granted1', text: 'after revoke' });
  assert.equal(ack.ok, true);
  await barrier(api, [a1, a2, b]);
  assert.equal(a1.count('message:new', (x) => x.text === 'after revoke'), 0, 'revoked socket a1 got room traffic');
  assert.equal(a2.count('message:new', (x) => x.text === 'after revoke'), 0, 'revoked socket a2 got room traffic');
  assert.equal(a1.count('room:removed'), 1, 'room:removed once per socket');

  // And A can neither emit into the room nor join it again.
  r = await request(a1.socket, 'message:new', { conversationId: 'granted1', text: 'sneaky' });
  assert.deepEqual([r.ok, r.error], [false, 'forbidden']);
  r = await request(a2.socket, 'room:join', { room });
  assert.deepEqual([r.ok, r.error], [false, 'forbidden']);
  await barrier(api, [b]);
  assert.equal(b.count('message:new', (x) => x.text === 'sneaky'), 0);
});

test('revoking a grant that came from the token claims removes the socket too', { timeout: 15_000 }, async () => {
  const a = await connectAs('acl-f', { groups: ['gx'] });
  const b = await connectAs('acl-g', { groups: ['gx'] });
  for (const s of [a, b]) assert.deepEqual(await request(s.socket, 'room:join', { room: 'group:gx' }), { ok: true });
  const d = await api.revoke('group:gx', 'acl-f');
  assert.equal(d.status, 200, d.text);
  const [removed] = await a.wait('room:removed');
  assert.deepEqual(removed, { room: 'group:gx', reason: 'revoked' });
  const r = await request(a.socket, 'room:join', { room: 'group:gx' });
  assert.deepEqual([r.ok, r.error], [false, 'forbidden'], 'the claim no longer counts for this socket');
  // B keeps its membership: group broadcasts reach B and not A.
  assert.equal(await api.emit({ event: 'group:update', data: { groupId: 'gx', name: 'n' }, rooms: ['group:gx'] }), 1);
  const [upd] = await b.wait('group:update');
  assert.deepEqual(upd, { groupId: 'gx', name: 'n' });
  await barrier(api, [a]);
  assert.equal(a.count('group:update'), 0);
});

test('room:leave stops room traffic', { timeout: 15_000 }, async () => {
  const a = await connectAs('acl-h', { conversations: ['lv'] });
  const b = await connectAs('acl-i', { conversations: ['lv'] });
  for (const s of [a, b]) assert.deepEqual(await request(s.socket, 'room:join', { room: 'conversation:lv' }), { ok: true });
  assert.deepEqual(await request(a.socket, 'room:leave', { room: 'conversation:lv' }), { ok: true });
  assert.equal((await request(b.socket, 'message:new', { conversationId: 'lv', text: 'gone?' })).ok, true);
  await barrier(api, [a, b]);
  assert.equal(a.count('message:new'), 0);
});

test('grant API validates room kind, user id and key', { timeout: 15_000 }, async () => {
  for (const [room, user] of [['feed', 'u'], ['post:1', 'u'], ['user:u', 'u'], ['admin:1', 'u'], ['conversation:ok', 'bad user']]) {
    const r = await api.grant(room, user);
    assert.equal(r.status, 400, `PUT ${room} ${user}: ${r.status} ${r.text}`);
  }
  const noKey = await rawHttp(`${suite.srv.url}/api/rooms/conversation%3Ax/members/u`, { method: 'PUT' });
  assert.equal(noKey.status, 401);
  const wrong = await rawHttp(`${suite.srv.url}/api/rooms/conversation%3Ax/members/u`, { method: 'PUT', headers: { authorization: 'Bearer nope' } });
  assert.equal(wrong.status, 401);
});
