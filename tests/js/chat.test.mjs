// Property: chat events from a socket in `conversation:<id>` (`message:new`, `message:delivered`,
// `message:read`, `reaction:add`, `reaction:remove`) are validated, acked, relayed with the
// documented shape to every other socket in the room (the sender's other sockets included, the
// sending socket excluded) and forwarded to the outbox keyed by the conversation id; refused
// events are relayed and forwarded nowhere; `message:new`/`conversation:updated` from the API
// arrive as is; `notification:read` is acked and forwarded keyed by the user.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { platformSuite, barrier, request } from './fixture.mjs';

const suite = platformSuite('chat-secret', 'chat-key', ['--recovery-window', '0']);
const { api, connectAs } = suite;
let a1; let a2; let b1; let b2; let x;

before(async () => {
  await suite.ready();
  const claims = { conversations: ['ch1', 5] };
  [a1, a2, b1, b2, x] = await Promise.all([connectAs('ch-a', claims), connectAs('ch-a', claims), connectAs('ch-b', claims), connectAs('ch-b', claims), connectAs('ch-x', {})]);
  for (const s of [a1, a2, b1, b2]) {
    assert.deepEqual(await request(s.socket, 'room:join', { room: 'conversation:ch1' }), { ok: true });
    assert.deepEqual(await request(s.socket, 'room:join', { room: 'conversation:5' }), { ok: true });
  }
});

async function outboxAfter(after) {
  const r = await api.outbox(after, 10000);
  assert.equal(r.status, 200, r.text);
  return r.json;
}
const outboxNext = async () => (await outboxAfter(0)).next;

test('message:new is acked, relayed to the room except the sending socket, and forwarded', { timeout: 15_000 }, async () => {
  const start = await outboxNext();
  const t0 = Date.now();
  const ack = await request(a1.socket, 'message:new', { conversationId: 'ch1', text: 'hello\tworld\nline 2', clientId: 'local-1' });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  assert.equal(typeof ack.id, 'string');
  assert.ok(ack.id.length > 0);
  assert.equal(typeof ack.createdAt, 'number');
  assert.ok(Math.abs(ack.createdAt - t0) < 60_000, 'createdAt is a ms epoch');
  const expected = {
    id: ack.id, conversationId: 'ch1', senderId: 'ch-a', text: 'hello\tworld\nline 2',
    attachments: [], clientId: 'local-1', createdAt: ack.createdAt,
  };
  for (const s of [a2, b1, b2]) {
    const [msg] = await s.wait('message:new', (m) => m.id === ack.id);
    assert.deepEqual(msg, expected);
  }
  await barrier(api, [a1, a2, b1, b2, x]);
  assert.equal(a1.count('message:new', (m) => m.id === ack.id), 0, 'not echoed to the sending socket');
  assert.equal(x.count('message:new'), 0, 'not to sockets outside the room');
  for (const s of [a2, b1, b2]) assert.equal(s.count('message:new', (m) => m.id === ack.id), 1, 'exactly once');

  const ob = await outboxAfter(start);
  const fwd = ob.events.filter((e) => e.event === 'message:new');
  assert.equal(fwd.length, 1, JSON.stringify(ob.events));
  assert.equal(fwd[0].key, 'ch1', 'keyed by the conversation id');
  assert.equal(fwd[0].userId, 'ch-a');
  assert.deepEqual(fwd[0].data, expected);
  assert.equal(typeof fwd[0].id, 'number');
  assert.equal(typeof fwd[0].at, 'number');
  assert.equal(ob.next, ob.events.at(-1).id);
  assert.equal(ob.dropped, 0);
});

test('numeric conversation ids are turned into strings; attachments are validated and relayed', { timeout: 15_000 }, async () => {
  const attachments = [
    { url: 'https://cdn.example.com/a.png', name: 'a.png', size: 1234, mime: 'image/png' },
    { url: '/files/b.pdf', name: 'b.pdf', size: 0, mime: 'application/pdf' },
  ];
  const ack = await request(b1.socket, 'message:new', { conversationId: 5, text: 'files', attachments });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  const [msg] = await a1.wait('message:new', (m) => m.id === ack.id);
  assert.equal(msg.conversationId, '5');
  assert.deepEqual(msg.attachments, attachments);
  assert.equal(msg.clientId, null);

  const bad = [
    { attachments: 'nope' },
    { attachments: Array.from({ length: 11 }, (_, i) => ({ url: `/f/${i}`, name: `${i}`, size: 1, mime: 'text/plain' })) },
    { attachments: [{ url: 'javascript:alert(1)', name: 'x', size: 1, mime: 'text/plain' }] },
    { attachments: [{ url: 'https://x/y', name: '', size: 1, mime: 'text/plain' }] },
    { attachments: [{ url: 'https://x/y', name: 'n', size: -1, mime: 'text/plain' }] },
    { attachments: [{ url: 'https://x/y', name: 'n', size: 1, mime: 'text' }] },
    { attachments: [42] },
  ];
  for (const extra of bad) {
    const r = await request(b1.socket, 'message:new', { conversationId: 5, text: 'bad attachments', ...extra });
    assert.deepEqual([r.ok, r.error], [false, 'invalid_payload'], `${JSON.stringify(extra).slice(0, 80)}: ${JSON.stringify(r)}`);
  }
  await barrier(api, [a1]);
  assert.equal(a1.count('message:new', (m) => m.text === 'bad attachments'), 0);
});

test('message:new limits: text 1..4000 characters, clientId at most 128, conversationId an id', { timeout: 15_000 }, async () => {
  const start = await outboxNext();
  const max = 'é'.repeat(4000); // characters, not bytes
  const ok = await request(a2.socket, 'message:new', { conversationId: 'ch1', text: max, clientId: 'c'.repeat(128) });
  assert.equal(ok.ok, true, JSON.stringify(ok));
  const [msg] = await b1.wait('message:new', (m) => m.id === ok.id);
  assert.equal(msg.text, max);
  const bad = [
    { conversationId: 'ch1' },
    { conversationId: 'ch1', text: '' },
    { conversationId: 'ch1', text: 'x'.repeat(4001) },
    { conversationId: 'ch1', text: 42 },
    { conversationId: 'ch1', text: '\u0000\u0007' }, // empty once control characters are removed
    { conversationId: 'ch1', text: 'x', clientId: 'c'.repeat(129) },
    { conversationId: 'bad id!', text: 'x' },
    { text: 'x' },
  ];
  for (const p of bad) {
    const r = await request(a2.socket, 'message:new', p);
    assert.deepEqual([r.ok, r.error], [false, 'invalid_payload'], `${JSON.stringify(p).slice(0, 80)}: ${JSON.stringify(r)}`);
  }
  // Not in the room: forbidden, relayed nowhere, not forwarded.
  const r = await request(x.socket, 'message:new', { conversationId: 'ch1', text: 'intruder' });
  assert.deepEqual([r.ok, r.error], [false, 'forbidden']);
  await barrier(api, [a1, b1]);
  assert.equal(b1.count('message:new', (m) => m.text === 'intruder'), 0);
  const ob = await outboxAfter(start);
  assert.deepEqual(ob.events.map((e) => e.data.id), [ok.id], 'only the accepted message is forwarded');
});

test('receipts and reactions are relayed with userId and forwarded', { timeout: 15_000 }, async () => {
  const start = await outboxNext();
  for (const ev of ['message:delivered', 'message:read']) {
    const t0 = Date.now();
    assert.deepEqual(await request(b2.socket, ev, { conversationId: 'ch1', messageId: 'm-1' }), { ok: true });
    for (const s of [a1, a2, b1]) {
      const [r] = await s.wait(ev, (m) => m.messageId === 'm-1');
      assert.deepEqual(Object.keys(r).sort(), ['at', 'conversationId', 'messageId', 'userId']);
      assert.equal(r.conversationId, 'ch1');
      assert.equal(r.userId, 'ch-b');
      assert.equal(typeof r.at, 'number');
      assert.ok(Math.abs(r.at - t0) < 60_000);
    }
  }
  for (const ev of ['reaction:add', 'reaction:remove']) {
    assert.deepEqual(await request(a1.socket, ev, { conversationId: 'ch1', messageId: 'm-1', emoji: '👍🏽' }), { ok: true });
    for (const s of [a2, b1, b2]) {
      const [r] = await s.wait(ev);
      assert.deepEqual(r, { conversationId: 'ch1', messageId: 'm-1', emoji: '👍🏽', userId: 'ch-a' });
    }
  }
  for (const [ev, p] of [
    ['message:read', { conversationId: 'ch1' }],
    ['message:read', { conversationId: 'ch1', messageId: 'a b' }],
    ['reaction:add', { conversationId: 'ch1', messageId: 'm-1', emoji: '' }],
    ['reaction:add', { conversationId: 'ch1', messageId: 'm-1', emoji: 'x'.repeat(33) }],
  ]) {
    const r = await request(a1.socket, ev, p);
    assert.deepEqual([r.ok, r.error], [false, 'invalid_payload'], `${ev} ${JSON.stringify(p)}: ${JSON.stringify(r)}`);
  }
  await barrier(api, [a1, a2, b1, b2]);
  assert.equal(b2.count('message:read'), 0, 'not echoed to the sending socket');
  assert.equal(a1.count('reaction:add'), 0, 'not echoed to the sending socket');
  assert.equal(b1.count('reaction:add'), 1);
  const ob = await outboxAfter(start);
  assert.deepEqual(ob.events.map((e) => e.event), ['message:delivered', 'message:read', 'reaction:add', 'reaction:remove']);
  for (const e of ob.events) assert.equal(e.key, 'ch1');
});

test('notification:read is acked and forwarded keyed by the user', { timeout: 15_000 }, async () => {
  const start = await outboxNext();
  assert.deepEqual(await request(a1.socket, 'notification:read', { notificationId: 'n-9' }), { ok: true });
  assert.deepEqual(await request(a1.socket, 'notification:read', { all: true }), { ok: true });
  const r = await request(a1.socket, 'notification:read', {});
  assert.deepEqual([r.ok, r.error], [false, 'invalid_payload']);
  const ob = await outboxAfter(start);
  assert.deepEqual(ob.events.map((e) => [e.event, e.key, e.userId]), [
    ['notification:read', 'ch-a', 'ch-a'],
    ['notification:read', 'ch-a', 'ch-a'],
  ]);
  assert.equal(ob.events[0].data.notificationId, 'n-9');
  assert.equal(ob.events[1].data.all, true);
});

test('message:new and conversation:updated from the API are delivered as is', { timeout: 15_000 }, async () => {
  const persisted = { id: 'srv-1', conversationId: 'ch1', senderId: 'system', text: '<b>hi</b>', extra: { nested: [1, 2] } };
  assert.equal(await api.emit({ event: 'message:new', data: persisted, rooms: ['conversation:ch1'] }), 4);
  const upd = { conversationId: 'ch1', title: 'renamed' };
  assert.equal(await api.emit({ event: 'conversation:updated', data: upd, rooms: ['conversation:ch1'] }), 4);
  for (const s of [a1, a2, b1, b2]) {
    assert.deepEqual(await s.wait('message:new', (m) => m.id === 'srv-1'), [persisted]);
    assert.deepEqual(await s.wait('conversation:updated'), [upd]);
  }
});

test('outbox paging: after/limit/next', { timeout: 15_000 }, async () => {
  const start = await outboxNext();
  for (let i = 0; i < 3; i++) {
    assert.equal((await request(a1.socket, 'message:new', { conversationId: 'ch1', text: `page ${i}` })).ok, true);
  }
  const p1 = await api.outbox(start, 2);
  assert.equal(p1.status, 200);
  assert.deepEqual(p1.json.events.map((e) => e.data.text), ['page 0', 'page 1']);
  assert.equal(p1.json.next, p1.json.events[1].id);
  const p2 = await api.outbox(p1.json.next, 2);
  assert.deepEqual(p2.json.events.map((e) => e.data.text), ['page 2']);
  const p3 = await api.outbox(p2.json.next, 2);
  assert.deepEqual(p3.json.events, []);
  assert.equal(p3.json.next, p2.json.next, 'next stays put when nothing is new');
  for (const q of ['after=x', 'limit=0', 'limit=10001']) {
    const r = await api.call('GET', `/api/outbox?${q}`);
    assert.equal(r.status, 400, `${q}: ${r.text}`);
  }
});
