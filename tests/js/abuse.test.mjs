// Property: abusive or broken client input is refused and relayed nowhere: malformed payloads get
// `{ok:false, error:"invalid_payload"}` (or an `error` event `{event, error, message}` without an
// ack callback), unknown events `unknown_event`; per-socket token buckets per event class refuse
// excess with `rate_limited` and a socket refused 100 times within a minute is disconnected; a
// repeated client `eventId` is acked `{ok:true, duplicate:true}` and not relayed twice; control
// characters other than \n and \t are removed from relayed text.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { platformSuite, barrier, request, refused, emitAck, once, delay } from './fixture.mjs';

// The suite's server has the default limits.
const suite = platformSuite('abuse-secret', 'abuse-key', ['--recovery-window', '0']);
const { api, connectAs } = suite;
let limited; // --rate-limit-scale 0.1: chat burst 2 at 0.5/s, typing burst 1
let lapi;

before(async () => {
  ({ srv: limited, api: lapi } = await suite.startAnother(['--recovery-window', '0', '--rate-limit-scale', '0.1']));
});
after(async () => {
  await limited?.stop();
});

async function pair(url, conv, prefix) {
  const claims = { conversations: [conv] };
  const [a1, a2, b] = await Promise.all([connectAs(`${prefix}-a`, claims, { url }), connectAs(`${prefix}-a`, claims, { url }), connectAs(`${prefix}-b`, claims, { url })]);
  for (const s of [a1, a2, b]) assert.deepEqual(await request(s.socket, 'room:join', { room: `conversation:${conv}` }), { ok: true });
  return { a1, a2, b };
}

test('malformed payloads: invalid_payload ack, or an error event without ack; nothing relayed', { timeout: 15_000 }, async () => {
  const { a1, b } = await pair(suite.srv.url, 'ab1', 'ab1');
  for (const args of [[], ['ab1'], [42], [null], [['ab1', 'text']], ['ab1', 'text'], [true]]) {
    const [res] = await emitAck(a1.socket, 'message:new', args);
    refused(res, 'invalid_payload', `message:new ${JSON.stringify(args)}`);
    assert.equal(typeof res.message, 'string');
  }
  const from = a1.mark();
  a1.socket.emit('message:new', 'not an object');
  a1.socket.emit('document:edit', { docId: 'bad id', ops: [] });
  const [e1] = await a1.wait('error', (e) => e.event === 'message:new', { from });
  assert.equal(e1.error, 'invalid_payload');
  assert.equal(typeof e1.message, 'string');
  const [e2] = await a1.wait('error', (e) => e.event === 'document:edit', { from });
  assert.equal(e2.error, 'invalid_payload');
  await barrier(api, [a1, b]);
  assert.equal(b.count('message:new'), 0);
  assert.equal(b.count('error'), 0, 'refusals go to the offending socket only');
});

test('unknown events: unknown_event ack or error event', { timeout: 15_000 }, async () => {
  const a = await connectAs('ab2-a');
  const [res] = await emitAck(a.socket, 'no:such:event', [{ x: 1 }]);
  refused(res, 'unknown_event', 'unknown with ack');
  const [res2] = await emitAck(a.socket, 'echo', ['hi']); // diagnostics off: not a platform event
  refused(res2, 'unknown_event', 'echo without --diagnostics');
  const from = a.mark();
  a.socket.emit('totally:unknown', 1, 2, 3);
  const [e] = await a.wait('error', () => true, { from });
  assert.equal(e.event, 'totally:unknown');
  assert.equal(e.error, 'unknown_event');
});

test('rate limits per event class: excess refused rate_limited and not relayed; buckets refill', { timeout: 20_000 }, async () => {
  const { a1, a2, b } = await pair(limited.url, 'ab3', 'ab3');
  const acks = [];
  for (let i = 0; i < 5; i++) acks.push(await request(a1.socket, 'message:new', { conversationId: 'ab3', text: `burst ${i}` }));
  assert.deepEqual(acks.map((r) => r.ok), [true, true, false, false, false], JSON.stringify(acks));
  for (const r of acks.slice(2)) refused(r, 'rate_limited', 'over the chat burst');
  // Without an ack: an error event.
  const from = a1.mark();
  a1.socket.emit('message:new', { conversationId: 'ab3', text: 'burst 5' });
  const [e] = await a1.wait('error', () => true, { from });
  assert.deepEqual([e.event, e.error], ['message:new', 'rate_limited']);
  // Buckets are per socket (a2 has its own) and per class (typing still has its token).
  assert.equal((await request(a2.socket, 'message:new', { conversationId: 'ab3', text: 'other socket' })).ok, true);
  assert.deepEqual(await request(a1.socket, 'typing:start', { conversationId: 'ab3' }), { ok: true });
  refused(await request(a1.socket, 'typing:start', { conversationId: 'ab3' }), 'rate_limited', 'typing burst of 1');

  await barrier(lapi, [b]);
  const texts = b.all('message:new').map(([m]) => m.text);
  assert.deepEqual(texts, ['burst 0', 'burst 1', 'other socket'], 'refused messages are relayed nowhere');

  await delay(2200); // time is the subject: 0.5 token/s refills one chat token in 2 s
  assert.equal((await request(a1.socket, 'message:new', { conversationId: 'ab3', text: 'refilled' })).ok, true);
  await b.wait('message:new', (m) => m.text === 'refilled');
});

test('a socket refused 100 times is disconnected; the user\'s other sockets stay', { timeout: 20_000 }, async () => {
  const { a1, a2, b } = await pair(limited.url, 'ab4', 'ab4');
  const gone = once(a1.socket, 'disconnect', 10_000);
  for (let i = 0; i < 120; i++) a1.socket.emit('message:new', { conversationId: 'ab4', text: `flood ${i}` });
  const [reason] = await gone;
  assert.equal(reason, 'io server disconnect');
  const refusals = a1.count('error', (e) => e.error === 'rate_limited');
  assert.ok(refusals >= 90 && refusals <= 100, `disconnected at about the 100th refusal (${refusals} error events)`);
  assert.equal(a2.socket.connected, true);
  await barrier(lapi, [a2, b]);
  assert.equal(b.count('message:new'), 2, 'only the burst got through');
  assert.equal((await request(a2.socket, 'message:new', { conversationId: 'ab4', text: 'still here' })).ok, true);
  await b.wait('message:new', (m) => m.text === 'still here');
});

test('client eventId: a repeat from the same user is acked duplicate and not relayed again', { timeout: 15_000 }, async () => {
  const { a1, a2, b } = await pair(suite.srv.url, 'ab5', 'ab5');
  const first = await request(a1.socket, 'message:new', { conversationId: 'ab5', text: 'once', eventId: 'evt-1' });
  assert.equal(first.ok, true);
  assert.equal(first.duplicate, undefined);
  assert.deepEqual(await request(a1.socket, 'message:new', { conversationId: 'ab5', text: 'once', eventId: 'evt-1' }), { ok: true, duplicate: true });
  assert.deepEqual(await request(a2.socket, 'message:new', { conversationId: 'ab5', text: 'once', eventId: 'evt-1' }), { ok: true, duplicate: true }, 'ids are per user, across sockets');
  // Another user may use the same id.
  const other = await request(b.socket, 'message:new', { conversationId: 'ab5', text: 'mine', eventId: 'evt-1' });
  assert.equal(other.ok, true);
  assert.equal(other.duplicate, undefined);
  for (const bad of ['', 'x'.repeat(129)]) {
    refused(await request(a1.socket, 'message:new', { conversationId: 'ab5', text: 'x', eventId: bad }), 'invalid_payload', `eventId ${bad.length} chars`);
  }
  await barrier(api, [a1, a2, b]);
  assert.equal(b.count('message:new', (m) => m.text === 'once'), 1, 'relayed once');
  assert.equal(a2.count('message:new', (m) => m.text === 'once'), 1);
  assert.equal(a1.count('message:new', (m) => m.text === 'mine'), 1);
  // The event id is not part of the relayed message.
  assert.equal(b.all('message:new')[0][0].eventId, undefined);
});

test('client eventId: a retry of a refused event is processed, not acked as a duplicate', { timeout: 15_000 }, async () => {
  const claims = { conversations: ['ab6'] };
  const a = await connectAs('ab6-a', claims);
  const b = await connectAs('ab6-b', claims);
  assert.deepEqual(await request(b.socket, 'room:join', { room: 'conversation:ab6' }), { ok: true });
  // Sent before the join finished: refused, nothing happened.
  refused(await request(a.socket, 'message:new', { conversationId: 'ab6', text: 'retry me', eventId: 'evt-r' }), 'forbidden', 'not joined yet');
  assert.deepEqual(await request(a.socket, 'room:join', { room: 'conversation:ab6' }), { ok: true });
  const retry = await request(a.socket, 'message:new', { conversationId: 'ab6', text: 'retry me', eventId: 'evt-r' });
  assert.equal(retry.ok, true);
  assert.notEqual(retry.duplicate, true, `the first attempt was refused, so the retry is not a duplicate: ${JSON.stringify(retry)}`);
  await b.wait('message:new', (m) => m.text === 'retry me');
});

test('control characters other than \\n and \\t are removed from relayed text', { timeout: 15_000 }, async () => {
  const { a1, b } = await pair(suite.srv.url, 'ab7', 'ab7');
  const dirty = 'a\u0000b\u0001c\u0007d\u001be[31m\u007ff\u0085g\r\nh\ti\u009bj';
  const ack = await request(a1.socket, 'message:new', { conversationId: 'ab7', text: dirty, clientId: 'id\u0000x' });
  assert.equal(ack.ok, true);
  const [m] = await b.wait('message:new', (x) => x.id === ack.id);
  assert.equal(m.text, 'abcde[31mfg\nh\tij');
  assert.equal(m.clientId, 'idx');
  const r = await request(a1.socket, 'reaction:add', { conversationId: 'ab7', messageId: ack.id, emoji: '\u0000👍\u0008' });
  assert.deepEqual(r, { ok: true });
  assert.equal((await b.wait('reaction:add'))[0].emoji, '👍');
});
