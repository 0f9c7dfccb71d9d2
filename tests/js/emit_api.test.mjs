// Property: POST /api/emit delivers an event exactly once to every socket selected by users/rooms minus except, answers 202 {recipients}, rejects bad keys (401), bad bodies (400 naming the field) and oversized bodies (413), and encodes one broadcast once for all websocket recipients.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, connect, once, rawHttp, makeJwt, nowSec, fetchMetrics, metricSum, hasMetric, tracker } from './fixture.mjs';

const SECRET = 'emit-api-secret';
const KEY = 'emit-api-internal-key';
const USER_A = 'user-a';
const USER_B = 'user-b';
const tokenFor = (sub) => makeJwt({ sub, iat: nowSec(), exp: nowSec() + 3600 }, SECRET);

let srv;
let a1; let a2; let b1;
const counts = new Map(); // socket -> Map(event -> [args...])
const sockets = tracker();

function record(socket) {
  const m = new Map();
  counts.set(socket, m);
  socket.onAny((event, ...args) => {
    if (!m.has(event)) m.set(event, []);
    m.get(event).push(args);
  });
}
const received = (socket, event) => counts.get(socket).get(event) ?? [];

before(async () => {
  // Recovery off: these tests pin the exact arguments; with recovery on, broadcasts carry an
  // offset as an extra last argument (see recovery.test.mjs).
  srv = await startServer(['--jwt-secret', SECRET, '--internal-api-key', KEY, '--recovery-window', '0']);
  const opts = (sub) => ({ transports: ['websocket'], auth: { token: tokenFor(sub) } });
  [a1, a2, b1] = await Promise.all([
    connect(srv.url, opts(USER_A)),
    connect(srv.url, opts(USER_A)),
    connect(srv.url, opts(USER_B)),
  ]);
  for (const s of [a1, a2, b1]) { sockets.add(s); record(s); }
});
after(async () => {
  sockets.closeAll();
  await srv?.stop();
});

async function post(body, { headers = { authorization: `Bearer ${KEY}` }, raw = false } = {}) {
  const res = await fetch(`${srv.url}/api/emit`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: raw ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, text, json };
}

async function emit202(body, opts) {
  const r = await post(body, opts);
  assert.equal(r.status, 202, `expected 202 for ${JSON.stringify(body)}, got ${r.status} ${r.text}`);
  assert.ok(r.json && Number.isInteger(r.json.recipients), `body has integer recipients: ${r.text}`);
  return r.json.recipients;
}

let markerSeq = 0;
/**
 * Send a distinct marker event to `targets` and wait until each got it. Delivery on one
 * connection is ordered, so anything an earlier emit would have delivered has arrived by then.
 */
async function barrier(targets) {
  const tag = `m${++markerSeq}`;
  const waits = targets.map((s) => once(s, `marker:${tag}`, 5000));
  const n = await emit202({ event: `marker:${tag}`, rooms: targets.map((s) => s.id) });
  assert.equal(n, targets.length);
  await Promise.all(waits);
}

test('users:[A] reaches both of A\'s sockets and not B', { timeout: 15_000 }, async () => {
  const data = { id: 1, title: 'Hello', nested: { list: [1, 2, 3] } };
  const w1 = once(a1, 'notification:new', 5000);
  const w2 = once(a2, 'notification:new', 5000);
  assert.equal(await emit202({ event: 'notification:new', data, users: [USER_A] }), 2);
  assert.deepEqual(await w1, [data], 'data is delivered as exactly one argument');
  assert.deepEqual(await w2, [data]);
  await barrier([a1, a2, b1]);
  assert.equal(received(a1, 'notification:new').length, 1);
  assert.equal(received(a2, 'notification:new').length, 1);
  assert.equal(received(b1, 'notification:new').length, 0, 'B must not get A\'s notification');
});

test('rooms:[socket.id] targets exactly that socket', { timeout: 15_000 }, async () => {
  const w = once(a2, 'one:socket', 5000);
  assert.equal(await emit202({ event: 'one:socket', data: 'only-a2', rooms: [a2.id] }), 1);
  assert.deepEqual(await w, ['only-a2']);
  await barrier([a1, a2, b1]);
  assert.equal(received(a1, 'one:socket').length, 0);
  assert.equal(received(a2, 'one:socket').length, 1);
  assert.equal(received(b1, 'one:socket').length, 0);
});

test('rooms and users overlapping deliver once per socket', { timeout: 15_000 }, async () => {
  const ev = 'overlap:test';
  const waits = [a1, a2, b1].map((s) => once(s, ev, 5000));
  // a1 is named by its sid room and by its user room; b1 by its sid room and by user:B's room.
  const n = await emit202({ event: ev, data: { x: 1 }, rooms: [a1.id, b1.id, a2.id], users: [USER_A, USER_B] });
  assert.equal(n, 3, 'recipients counts sockets, not (room, socket) pairs');
  await Promise.all(waits);
  await barrier([a1, a2, b1]);
  for (const s of [a1, a2, b1]) assert.equal(received(s, ev).length, 1, `socket ${s.id} got it once`);
});

test('users listed twice still deliver once', { timeout: 15_000 }, async () => {
  const ev = 'dup:user';
  const waits = [a1, a2].map((s) => once(s, ev, 5000));
  assert.equal(await emit202({ event: ev, data: 1, users: [USER_A, USER_A] }), 2);
  await Promise.all(waits);
  await barrier([a1, a2, b1]);
  assert.equal(received(a1, ev).length, 1);
  assert.equal(received(a2, ev).length, 1);
  assert.equal(received(b1, ev).length, 0);
});

test('except removes sockets from the selection', { timeout: 15_000 }, async () => {
  const ev = 'except:test';
  const w = once(a2, ev, 5000);
  assert.equal(await emit202({ event: ev, data: 'x', users: [USER_A], except: [a1.id] }), 1);
  await w;
  await barrier([a1, a2, b1]);
  assert.equal(received(a1, ev).length, 0, 'excepted socket must not receive');
  assert.equal(received(a2, ev).length, 1);
  assert.equal(received(b1, ev).length, 0);
});

test('absent data -> event with no argument; null data -> one null argument', { timeout: 15_000 }, async () => {
  const w = once(b1, 'no:data', 5000);
  assert.equal(await emit202({ event: 'no:data', rooms: [b1.id] }), 1);
  assert.deepEqual(await w, []);
  const w2 = once(b1, 'null:data', 5000);
  assert.equal(await emit202({ event: 'null:data', data: null, rooms: [b1.id] }), 1);
  assert.deepEqual(await w2, [null]);
});

test('no matching socket -> 202 recipients 0', { timeout: 15_000 }, async () => {
  assert.equal(await emit202({ event: 'nobody', data: 1, users: ['no-such-user'] }), 0);
  assert.equal(await emit202({ event: 'nobody', data: 1, rooms: ['no-such-room'] }), 0);
});

test('x-api-key header is accepted', { timeout: 15_000 }, async () => {
  const w = once(b1, 'via:x-api-key', 5000);
  assert.equal(await emit202({ event: 'via:x-api-key', data: 7, users: [USER_B] }, { headers: { 'x-api-key': KEY } }), 1);
  assert.deepEqual(await w, [7]);
});

test('wrong key -> 401, no key -> 401, nothing delivered', { timeout: 15_000 }, async () => {
  const body = { event: 'unauth:emit', data: 1, users: [USER_A, USER_B] };
  for (const headers of [
    { authorization: 'Bearer wrong-key' },
    { 'x-api-key': 'wrong-key' },
    { authorization: `Bearer ${KEY}x` },
    {},
  ]) {
    const r = await post(body, { headers });
    assert.equal(r.status, 401, `headers ${JSON.stringify(headers)} -> ${r.status} ${r.text}`);
  }
  await barrier([a1, a2, b1]);
  for (const s of [a1, a2, b1]) assert.equal(received(s, 'unauth:emit').length, 0);
});

test('no target -> 400', { timeout: 15_000 }, async () => {
  for (const body of [
    { event: 'no:target', data: 1 },
    { event: 'no:target', data: 1, rooms: [], users: [] },
  ]) {
    const r = await post(body);
    assert.equal(r.status, 400, `${JSON.stringify(body)} -> ${r.status} ${r.text}`);
    assert.equal(typeof r.json?.error, 'string', `400 body is {"error":"..."}: ${r.text}`);
  }
});

test('malformed JSON -> 400', { timeout: 15_000 }, async () => {
  for (const raw of ['{"event": "x", "users": ["a"]', 'not json', '', '[]', '"str"']) {
    const r = await post(raw, { raw: true });
    assert.equal(r.status, 400, `${JSON.stringify(raw)} -> ${r.status} ${r.text}`);
    assert.equal(typeof r.json?.error, 'string', `400 body is {"error":"..."}: ${r.text}`);
  }
});

test('missing or invalid event -> 400 naming `event`', { timeout: 15_000 }, async () => {
  for (const body of [
    { data: 1, users: [USER_A] },
    { event: 5, data: 1, users: [USER_A] },
  ]) {
    const r = await post(body);
    assert.equal(r.status, 400, `${JSON.stringify(body)} -> ${r.status} ${r.text}`);
    assert.equal(typeof r.json?.error, 'string', `400 body is {"error":"..."}: ${r.text}`);
    assert.match(r.json.error, /event/, 'the error names the `event` field');
  }
});

test('body larger than max payload -> 413', { timeout: 20_000 }, async () => {
  // default --max-payload is 1 000 000 bytes; send ~1.5 MB of valid JSON on its own connection
  const body = JSON.stringify({ event: 'too:big', data: 'x'.repeat(1_500_000), users: [USER_B] });
  const r = await rawHttp(`${srv.url}/api/emit`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, 'content-length': Buffer.byteLength(body) },
    body,
  });
  assert.equal(r.status, 413, `-> ${r.status} ${r.body.slice(0, 200)}`);
  await barrier([b1]);
  assert.equal(received(b1, 'too:big').length, 0);
});

test('one broadcast to several websocket sockets is encoded once', { timeout: 15_000 }, async () => {
  const m0 = await fetchMetrics(srv.url);
  assert.ok(hasMetric(m0, 'sio_broadcast_encodes_total'), 'sio_broadcast_encodes_total is exposed');
  assert.ok(hasMetric(m0, 'sio_broadcasts_total'), 'sio_broadcasts_total is exposed');
  const ev = 'encode:once';
  const waits = [a1, a2, b1].map((s) => once(s, ev, 5000));
  assert.equal(await emit202({ event: ev, data: { payload: 'same for all', n: [1, 2, 3] }, users: [USER_A, USER_B] }), 3);
  await Promise.all(waits);
  const m1 = await fetchMetrics(srv.url);
  assert.equal(metricSum(m1, 'sio_broadcasts_total') - metricSum(m0, 'sio_broadcasts_total'), 1, 'one broadcast');
  assert.equal(
    metricSum(m1, 'sio_broadcast_encodes_total') - metricSum(m0, 'sio_broadcast_encodes_total'),
    1,
    'one encode for three websocket recipients',
  );
});
