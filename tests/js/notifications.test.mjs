// Property: `notification:new` from the API goes to `user:<id>`; a user with no connected socket
// gets it queued (bounded per user, expiring after the TTL) and delivered on the next connect,
// oldest first, exactly once (not to a second socket, not again on a later connect); social feed
// events (`post:update`, `comment:new`, `like:update`, `story:update`) arrive as is in the rooms the
// API call names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { platformSuite, barrier, request, closeAndWait, delay } from './fixture.mjs';

const MAILBOX = 3;
const { api, connectAs, startAnother } = platformSuite('notif-secret', 'notif-key', ['--recovery-window', '0', '--mailbox-size', String(MAILBOX)]);
const notif = (i) => ({ id: `n${i}`, title: `notification ${i}`, at: 1700000000000 + i });

test('queued while offline, delivered on the next connect oldest first, exactly once', { timeout: 15_000 }, async () => {
  for (let i = 1; i <= 3; i++) {
    assert.equal(await api.emit({ event: 'notification:new', data: notif(i), users: ['nt-off'] }), 0, 'nobody connected');
  }
  const s1 = await connectAs('nt-off');
  await s1.wait('notification:new', (n) => n.id === 'n3');
  await barrier(api, [s1]);
  assert.deepEqual(s1.all('notification:new'), [[notif(1)], [notif(2)], [notif(3)]], 'each once, oldest first, as is');
  // The events came right after the CONNECT: nothing before it.
  assert.equal(s1.events[0].event, 'notification:new');

  // A second socket and a later reconnect do not get them again.
  const s2 = await connectAs('nt-off');
  await barrier(api, [s1, s2]);
  assert.equal(s2.count('notification:new'), 0, 'second socket gets no replay');
  await closeAndWait(s1);
  await closeAndWait(s2);
  const s3 = await connectAs('nt-off');
  await barrier(api, [s3]);
  assert.equal(s3.count('notification:new'), 0, 'reconnect gets no replay');
});

test('an online user gets it live on every socket and nothing is queued', { timeout: 15_000 }, async () => {
  const a1 = await connectAs('nt-on');
  const a2 = await connectAs('nt-on');
  const other = await connectAs('nt-other');
  const data = { id: 'live-1', body: { html: '<i>x</i>' } };
  assert.equal(await api.emit({ event: 'notification:new', data, users: ['nt-on'] }), 2);
  for (const s of [a1, a2]) assert.deepEqual(await s.wait('notification:new'), [data]);
  await barrier(api, [a1, a2, other]);
  assert.equal(other.count('notification:new'), 0);
  await closeAndWait(a1);
  await closeAndWait(a2);
  const a3 = await connectAs('nt-on');
  await barrier(api, [a3]);
  assert.equal(a3.count('notification:new'), 0, 'delivered notifications are not queued');
});

test('one emit to an online and an offline user: live for one, queued for the other', { timeout: 15_000 }, async () => {
  const on = await connectAs('nt-mix-on');
  const data = { id: 'mix-1' };
  assert.equal(await api.emit({ event: 'notification:new', data, users: ['nt-mix-on', 'nt-mix-off'] }), 1);
  assert.deepEqual(await on.wait('notification:new'), [data]);
  // A user room named in `rooms` counts as well.
  assert.equal(await api.emit({ event: 'notification:new', data: { id: 'mix-2' }, rooms: ['user:nt-mix-off'] }), 0);
  const off = await connectAs('nt-mix-off');
  await off.wait('notification:new', (n) => n.id === 'mix-2');
  await barrier(api, [off]);
  assert.deepEqual(off.all('notification:new'), [[data], [{ id: 'mix-2' }]]);
});

test('a user excluded by `except` gets nothing queued either', { timeout: 15_000 }, async () => {
  // E.g. "tell everyone in the thread except the author": the offline author must not find it later.
  assert.equal(await api.emit({ event: 'notification:new', data: { id: 'ex-1' }, users: ['nt-ex-author', 'nt-ex-reader'], except: ['user:nt-ex-author'] }), 0);
  const author = await connectAs('nt-ex-author');
  const reader = await connectAs('nt-ex-reader');
  await reader.wait('notification:new', (n) => n.id === 'ex-1');
  await barrier(api, [author, reader]);
  assert.equal(author.count('notification:new'), 0, 'excluded user got the queued notification');
});

test(`the mailbox keeps the newest ${MAILBOX} per user`, { timeout: 15_000 }, async () => {
  for (let i = 1; i <= 5; i++) await api.emit({ event: 'notification:new', data: notif(i), users: ['nt-full'] });
  const s = await connectAs('nt-full');
  await s.wait('notification:new', (n) => n.id === 'n5');
  await barrier(api, [s]);
  assert.deepEqual(s.all('notification:new'), [[notif(3)], [notif(4)], [notif(5)]]);
});

test('queued notifications expire after the TTL', { timeout: 15_000 }, async () => {
  const { srv: short, api: shortApi } = await startAnother(['--recovery-window', '0', '--mailbox-ttl', '1']);
  try {
    await shortApi.emit({ event: 'notification:new', data: notif(1), users: ['nt-ttl'] });
    await delay(1300); // time is the subject
    await shortApi.emit({ event: 'notification:new', data: notif(2), users: ['nt-ttl'] });
    const s = await connectAs('nt-ttl', {}, { url: short.url });
    await s.wait('notification:new', (n) => n.id === 'n2');
    await barrier(shortApi, [s]);
    assert.deepEqual(s.all('notification:new'), [[notif(2)]], 'the expired one is dropped');
    s.socket.close();
  } finally {
    await short.stop();
  }
});

test('social feed events arrive as is in the rooms the API call names', { timeout: 15_000 }, async () => {
  const reader = await connectAs('nt-reader');
  const author = await connectAs('nt-author');
  const bystander = await connectAs('nt-bystander');
  assert.deepEqual(await request(reader.socket, 'room:join', { room: 'feed' }), { ok: true });
  assert.deepEqual(await request(reader.socket, 'room:join', { room: 'post:p1' }), { ok: true });
  assert.deepEqual(await request(bystander.socket, 'room:join', { room: 'post:p2' }), { ok: true });

  const post = { postId: 'p1', likes: 3 };
  assert.equal(await api.emit({ event: 'post:update', data: post, rooms: ['post:p1', 'feed'] }), 1, 'once per socket');
  assert.deepEqual(await reader.wait('post:update'), [post]);
  const comment = { postId: 'p1', id: 'c1', text: 'nice' };
  assert.equal(await api.emit({ event: 'comment:new', data: comment, rooms: ['post:p1'], users: ['nt-author'] }), 2);
  assert.deepEqual(await reader.wait('comment:new'), [comment]);
  assert.deepEqual(await author.wait('comment:new'), [comment]);
  const like = { postId: 'p1', count: 4 };
  assert.equal(await api.emit({ event: 'like:update', data: like, rooms: ['post:p1'] }), 1);
  assert.deepEqual(await reader.wait('like:update'), [like]);
  const story = { userId: 'nt-author', stories: 2 };
  assert.equal(await api.emit({ event: 'story:update', data: story, rooms: ['feed'] }), 1);
  assert.deepEqual(await reader.wait('story:update'), [story]);

  await barrier(api, [reader, author, bystander]);
  assert.equal(reader.count('post:update'), 1);
  for (const ev of ['post:update', 'comment:new', 'like:update', 'story:update']) {
    assert.equal(bystander.count(ev), 0, `${ev} reached a socket in none of the named rooms`);
  }
  assert.equal(author.count('post:update'), 0);
});
