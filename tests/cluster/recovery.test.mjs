// Connection state recovery through Redis (issue 12): sessions and the replay log live in
// Redis, so a client recovers after its node is SIGKILLed (on another node) or restarted with
// SIGTERM (on the same port, reconnecting by itself): same id, its rooms, every broadcast
// addressed to it meanwhile once, in order. After the window it is not recovered; with Redis
// down recovery falls back to the node's memory (and is counted) and uses Redis again once it
// is back; another user's private id is refused. Every node delivers logged broadcasts in log
// order, whichever node or the emitter published them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import {
  startRedis, startNode, connectUser, tracker, request, waitFor, delay, uniq, redisEmitter,
  redisCommand, userToken, withLogs,
} from './fixture.mjs';

const readyIs = (node, dep, state) => async () => (await node.api.ready()).json?.[dep] === state;
const STREAM = 'socket.io:recovery-log:/';

/** A counter or gauge from the node's /metrics. */
async function metric(node, name) {
  const r = await node.api.call('GET', '/metrics');
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(r.text);
  return m ? Number(m[1]) : NaN;
}

/** One command whose reply is a bulk string; resolves the string (null for nil). */
function redisBulk(port, line) {
  return new Promise((res, rej) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => { sock.destroy(); rej(new Error(`redis ${line}: no reply`)); }, 2_000);
    sock.on('connect', () => sock.write(`${line}\r\n`));
    sock.on('data', (d) => {
      data = Buffer.concat([data, d]);
      const head = /^\$(-?\d+)\r\n/.exec(data.toString('latin1'));
      if (!head) return;
      const len = Number(head[1]);
      if (len < 0) { clearTimeout(timer); sock.end(); return res(null); }
      const start = head[0].length;
      if (data.length < start + len + 2) return;
      clearTimeout(timer);
      sock.end();
      res(data.subarray(start, start + len).toString('utf8'));
    });
    sock.on('error', (e) => { clearTimeout(timer); rej(e); });
  });
}

const xlen = async (redis) => Number(/^:(\d+)/.exec(await redisCommand(redis.port, `XLEN ${STREAM}`))?.[1] ?? -1);

/** Waits until the socket's recovery session in Redis lists `rooms` (written before a crash). */
async function sessionHasRooms(redis, pid, rooms) {
  await waitFor(async () => {
    const r = await redisBulk(redis.port, `HGET socket.io:recovery:${pid} r`);
    return r !== null && rooms.every((room) => JSON.parse(r).includes(room));
  }, { what: `recovery session ${pid} with rooms ${rooms}` });
}

/** `ms-seq` ids in strictly increasing order. */
function assertIncreasing(offsets) {
  const key = (o) => o.split('-').map(BigInt);
  for (let i = 1; i < offsets.length; i++) {
    const [a, b] = [key(offsets[i - 1]), key(offsets[i])];
    assert.ok(a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]), `offsets increase: ${offsets.join(' ')}`);
  }
}

/** The `n` of every `news` event, and their offsets (the last argument). */
const news = (rec) => rec.all('news').map(([d]) => d.n);
const offsets = (rec, ev = 'news') => rec.all(ev).map((args) => args[args.length - 1]);

/** `p`, or a rejection naming `what` after `ms`. */
function within(p, ms, what) {
  let timer;
  const t = new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms); });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Drops the client's transport (no DISCONNECT: the server keeps it for recovery). */
async function dropTransport(rec) {
  const gone = once(rec.socket, 'disconnect');
  rec.socket.io.engine.close();
  await gone;
}

/** Reconnects a socket whose manager does not reconnect by itself, to `node`. */
async function reconnectTo(rec, node) {
  rec.socket.io.uri = node.url;
  const connected = new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`no reconnect to ${node.url} within 10 s`)), 10_000);
    rec.socket.once('connect', () => { clearTimeout(timer); res(); });
    rec.socket.once('connect_error', (e) => { clearTimeout(timer); rej(new Error(`connect_error: ${e.message}`)); });
    rec.socket.io.once('error', (e) => { clearTimeout(timer); rej(new Error(`manager error: ${e.message}`)); });
  });
  rec.socket.connect();
  await connected;
}

async function cluster(t, n) {
  const sockets = tracker();
  const redis = await startRedis();
  const nodes = [];
  t.after(async () => { sockets.closeAll(); await Promise.all(nodes.map((x) => x.kill())); await redis.stop(); });
  for (let i = 0; i < n; i++) {
    const node = await startNode({ nodeId: `rec-${i}-${uniq('')}`, redisUrl: redis.url });
    nodes.push(node);
    await waitFor(readyIs(node, 'redis', 'up'), { timeoutMs: 10_000, what: `${node.id} redis up` });
    // The first node takes the logger lease before the others start.
    if (i === 0) await waitFor(async () => (await metric(node, 'sio_recovery_logger')) === 1, { timeoutMs: 10_000, what: 'first node holds the logger lease' });
  }
  return { sockets, redis, nodes };
}

test('(a) node SIGKILLed: the client recovers on another node with id, rooms and the emitter broadcasts it missed, once, in order', { timeout: 60_000 }, async (t) => {
  const { sockets, redis, nodes: [a, b] } = await cluster(t, 2);
  const em = await redisEmitter(redis.url);
  t.after(() => em.client.disconnect().catch(() => {}));
  await withLogs([a, b], async () => {
    const [r1, r2, other] = [`post:${uniq('r')}`, `post:${uniq('r')}`, `post:${uniq('o')}`];
    const x = await connectUser(a, uniq('k'), {}, { track: sockets });
    for (const room of [r1, r2]) assert.deepEqual(await request(x.socket, 'room:join', { room }), { ok: true });
    em.emitter.to(r1).emit('news', { n: 0 });
    const [, off0] = await x.wait('news', (d) => d.n === 0);
    assert.match(off0, /^\d+-\d+$/, 'the offset is a recovery log id');
    const { id: oldId, _pid: pid } = x.socket;
    await sessionHasRooms(redis, pid, [r1, r2]);

    const gone = once(x.socket, 'disconnect');
    await a.kill('SIGKILL');
    await gone;
    em.emitter.to(r1).emit('news', { n: 1 });
    em.emitter.to(r2).emit('news', { n: 2 });
    em.emitter.to(other).emit('news', { n: -1 });
    em.emitter.to(r1).except(r2).emit('news', { n: -2 });
    em.emitter.emit('news', { n: 3 });
    em.emitter.to([r1, r2]).emit('news', { n: 4 });
    // A held the logger lease: B takes it over and logs what it buffered.
    await waitFor(async () => (await metric(b, 'sio_recovery_logged_total')) >= 6, { timeoutMs: 15_000, what: 'the six broadcasts logged by B' });

    await reconnectTo(x, b);
    assert.equal(x.socket.recovered, true, 'socket.recovered');
    assert.equal(x.socket.id, oldId, 'same socket id');
    await x.wait('news', (d) => d.n === 4);
    em.emitter.to(r2).emit('news', { n: 5 });
    await x.wait('news', (d) => d.n === 5);
    assert.deepEqual(news(x), [0, 1, 2, 3, 4, 5], 'missed broadcasts once, in order, then live ones');
    assertIncreasing(offsets(x));
    const members = (await b.api.members(r2)).json.connected;
    assert.ok(members.includes(x.user), `rooms restored on B: ${JSON.stringify(members)}`);
    assert.equal(await metric(b, 'sio_recovery_redis_restored_total'), 1);
  });
});

test('(b) node restarted with SIGTERM on the same port: the client reconnects by itself and recovers', { timeout: 60_000 }, async (t) => {
  const { sockets, redis, nodes: [b, a] } = await cluster(t, 2);
  const em = await redisEmitter(redis.url);
  t.after(() => em.client.disconnect().catch(() => {}));
  let a2;
  t.after(() => a2?.kill());
  await withLogs([a, b], async () => {
    const room = `post:${uniq('r')}`;
    const x = await connectUser(a, uniq('t'), {}, {
      track: sockets, reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 500,
    });
    assert.deepEqual(await request(x.socket, 'room:join', { room }), { ok: true });
    await b.api.emit({ event: 'news', data: { n: 0 }, rooms: [room] });
    await x.wait('news', (d) => d.n === 0);
    const { id: oldId, _pid: pid } = x.socket;
    await sessionHasRooms(redis, pid, [room]);
    const trail = [];
    for (const ev of ['reconnect_attempt', 'reconnect_error', 'error', 'close', 'open', 'reconnect']) {
      x.socket.io.on(ev, (e) => trail.push(`${new Date().toISOString()} ${ev} ${e?.message ?? e ?? ''}`));
    }
    x.socket.on('connect_error', (e) => trail.push(`connect_error ${e.message}`));

    const gone = within(once(x.socket, 'disconnect'), 10_000, 'disconnect at shutdown');
    const exit = await a.stop();
    assert.equal(exit.signal ?? 'exit', 'exit', `A exited by itself after SIGTERM: ${JSON.stringify(exit)}`);
    const [reason] = await gone;
    assert.equal(reason, 'transport close', 'shutdown closes transports without a DISCONNECT');
    const loggedByB = await metric(b, 'sio_recovery_logged_total');
    await b.api.emit({ event: 'news', data: { n: 1 }, rooms: [room] });
    em.emitter.to(room).emit('news', { n: 2 });
    await waitFor(async () => (await metric(b, 'sio_recovery_logged_total')) >= loggedByB + 2, { timeoutMs: 10_000, what: 'both logged by B' });

    const back = within(once(x.socket, 'connect'), 20_000, 'the client reconnecting by itself');
    a2 = await startNode({ nodeId: a.id, redisUrl: redis.url, port: a.port });
    await back.catch((e) => { e.message += `\n--- client: ${trail.join('\n')}\n--- restarted A:\n${a2.log().slice(-6000)}`; throw e; });
    assert.equal(x.socket.recovered, true, 'socket.recovered');
    assert.equal(x.socket.id, oldId);
    await x.wait('news', (d) => d.n === 2);
    await a2.api.emit({ event: 'news', data: { n: 3 }, rooms: [room] });
    await x.wait('news', (d) => d.n === 3);
    assert.deepEqual(news(x), [0, 1, 2, 3]);
    assertIncreasing(offsets(x));
  });
});

test('(c) reconnecting after the window: not recovered, new id', { timeout: 30_000 }, async (t) => {
  const sockets = tracker();
  const redis = await startRedis();
  const node = await startNode({ nodeId: uniq('win'), redisUrl: redis.url, args: ['--recovery-window', '1500'] });
  t.after(async () => { sockets.closeAll(); await node.stop(); await redis.stop(); });
  await waitFor(readyIs(node, 'redis', 'up'), { timeoutMs: 10_000, what: 'redis up' });
  const room = `post:${uniq('r')}`;
  const x = await connectUser(node, uniq('w'), {}, { track: sockets });
  assert.deepEqual(await request(x.socket, 'room:join', { room }), { ok: true });
  const oldId = x.socket.id;
  // Within the window it is recovered...
  await dropTransport(x);
  await reconnectTo(x, node);
  assert.equal(x.socket.recovered, true, 'recovered within the window');
  assert.equal(x.socket.id, oldId);
  // ...after it, not.
  await dropTransport(x);
  await delay(2_500); // time is the subject: the window is 1.5 s
  await reconnectTo(x, node);
  assert.equal(x.socket.recovered, false, 'not recovered after the window');
  assert.notEqual(x.socket.id, oldId, 'a new id');
  const members = (await node.api.members(room)).json.connected;
  assert.ok(!members.includes(x.user), 'and not back in its room');
});

test('(d) Redis down: in-process recovery, counted; through Redis again once it is back', { timeout: 60_000 }, async (t) => {
  const sockets = tracker();
  const redis = await startRedis();
  const node = await startNode({ nodeId: uniq('down'), redisUrl: redis.url });
  t.after(async () => { sockets.closeAll(); await node.stop(); await redis.stop(); });
  await withLogs([node], async () => {
    await waitFor(readyIs(node, 'redis', 'up'), { timeoutMs: 10_000, what: 'redis up' });
    const room = `post:${uniq('r')}`;
    const x = await connectUser(node, uniq('d'), {}, { track: sockets });
    assert.deepEqual(await request(x.socket, 'room:join', { room }), { ok: true });
    const oldId = x.socket.id;
    const emit = (n) => node.api.emit({ event: 'news', data: { n }, rooms: [room] });
    await emit(0);
    await x.wait('news', (d) => d.n === 0);

    await redis.kill();
    await waitFor(readyIs(node, 'redis', 'down'), { timeoutMs: 10_000, what: 'redis down' });
    const fallbacks = await metric(node, 'sio_recovery_fallbacks_total');
    await emit(1);
    await x.wait('news', (d) => d.n === 1);
    await dropTransport(x);
    await emit(2);
    await reconnectTo(x, node);
    assert.equal(x.socket.recovered, true, 'recovered in-process while Redis is down');
    assert.equal(x.socket.id, oldId);
    await x.wait('news', (d) => d.n === 2);
    assert.equal(await metric(node, 'sio_recovery_fallbacks_total'), fallbacks + 1, 'the fallback is counted');

    await redis.start();
    await waitFor(readyIs(node, 'redis', 'up'), { timeoutMs: 20_000, what: 'redis up again' });
    await emit(3);
    const [, off3] = await x.wait('news', (d) => d.n === 3);
    assert.match(off3, /^\d+-\d+$/, 'logged in Redis again');
    const restored = await metric(node, 'sio_recovery_redis_restored_total');
    await dropTransport(x);
    await emit(4);
    await reconnectTo(x, node);
    assert.equal(x.socket.recovered, true, 'recovered through Redis once it is back');
    await x.wait('news', (d) => d.n === 4);
    assert.equal(await metric(node, 'sio_recovery_redis_restored_total'), restored + 1);
    assert.deepEqual(news(x), [0, 1, 2, 3, 4], 'each once, in order');
  });
});

test('(e) another user presenting a private id is refused; the owner still recovers', { timeout: 30_000 }, async (t) => {
  const { sockets, redis, nodes: [a, b] } = await cluster(t, 2);
  await withLogs([a, b], async () => {
    const room = `post:${uniq('r')}`;
    const x = await connectUser(a, uniq('owner'), {}, { track: sockets });
    assert.deepEqual(await request(x.socket, 'room:join', { room }), { ok: true });
    await a.api.emit({ event: 'news', data: { n: 0 }, rooms: [room] });
    await x.wait('news', (d) => d.n === 0);
    const { id: oldId, _pid: pid, _lastOffset: offset } = x.socket;
    await sessionHasRooms(redis, pid, [room]);
    await dropTransport(x);

    const thief = uniq('thief');
    const y = await connectUser(b, thief, {}, { track: sockets, auth: { token: userToken(thief), pid, offset } });
    assert.notEqual(y.socket.id, oldId, "never the other user's socket");
    assert.equal(await metric(b, 'sio_recovery_refused_total'), 1);
    const members = (await b.api.members(room)).json.connected;
    assert.ok(!members.includes(thief), 'not in its rooms');
    const loggedByA = await metric(a, 'sio_recovery_logged_total');
    await a.api.emit({ event: 'news', data: { n: 1 }, rooms: [room] });
    await waitFor(async () => (await xlen(redis)) > 0 && (await metric(a, 'sio_recovery_logged_total')) > loggedByA, { what: 'n=1 logged' });
    assert.equal(y.count('news'), 0, 'nothing of the owner is replayed to it');

    await reconnectTo(x, b);
    assert.equal(x.socket.recovered, true, 'the owner recovers');
    assert.equal(x.socket.id, oldId);
    await x.wait('news', (d) => d.n === 1);
  });
});

test('ordering: every node delivers logged broadcasts in one order; each publisher keeps its own', { timeout: 60_000 }, async (t) => {
  const { sockets, redis, nodes: [a, b] } = await cluster(t, 2);
  const em = await redisEmitter(redis.url);
  t.after(() => em.client.disconnect().catch(() => {}));
  await withLogs([a, b], async () => {
    const room = `post:${uniq('r')}`;
    const xa = await connectUser(a, uniq('oa'), {}, { track: sockets });
    const xb = await connectUser(b, uniq('ob'), {}, { track: sockets });
    for (const x of [xa, xb]) assert.deepEqual(await request(x.socket, 'room:join', { room }), { ok: true });
    const N = 25;
    const viaApi = (node, src) => (async () => {
      for (let i = 0; i < N; i++) await node.api.emit({ event: 'seq', data: { src, i }, rooms: [room] });
    })();
    const viaEmitter = (async () => {
      for (let i = 0; i < N; i++) {
        em.emitter.to(room).emit('seq', { src: 'e', i });
        if (i % 5 === 4) await delay(1);
      }
    })();
    await Promise.all([viaApi(a, 'a'), viaApi(b, 'b'), viaEmitter]);
    for (const x of [xa, xb]) await waitFor(() => x.count('seq') >= 3 * N, { timeoutMs: 15_000, what: `${3 * N} seq events` });
    const order = (x) => x.all('seq').map(([d]) => `${d.src}${d.i}`);
    assert.equal(xa.count('seq'), 3 * N, 'each once');
    assert.deepEqual(order(xa), order(xb), 'the same order on both nodes');
    assertIncreasing(offsets(xa, 'seq'));
    assert.deepEqual(offsets(xa, 'seq'), offsets(xb, 'seq'), 'the same offsets on both nodes');
    for (const src of ['a', 'b', 'e']) {
      const is = xa.all('seq').map(([d]) => d).filter((d) => d.src === src).map((d) => d.i);
      assert.deepEqual(is, [...Array(N).keys()], `publisher ${src} keeps its order`);
    }
  });
});

test('replay and live deliveries racing the reconnect: each broadcast once, in log order', { timeout: 60_000 }, async (t) => {
  const sockets = tracker();
  const redis = await startRedis();
  const node = await startNode({ nodeId: uniq('race'), redisUrl: redis.url });
  t.after(async () => { sockets.closeAll(); await node.stop(); await redis.stop(); });
  await waitFor(readyIs(node, 'redis', 'up'), { timeoutMs: 10_000, what: 'redis up' });
  const room = `post:${uniq('r')}`;
  const x = await connectUser(node, uniq('race'), {}, { track: sockets });
  assert.deepEqual(await request(x.socket, 'room:join', { room }), { ok: true });
  const N = 40;
  for (let r = 0; r < 12; r++) {
    await dropTransport(x);
    const base = x.count('news');
    // Broadcasts logged before, during and after the session is read: some come back in the
    // replay, some were delivered while it was read, some arrive after the socket is back.
    const emits = Array.from({ length: N }, (_, i) => node.api.emit({ event: 'news', data: { n: r * N + i }, rooms: [room] }));
    await reconnectTo(x, node);
    assert.equal(x.socket.recovered, true, `round ${r}: recovered`);
    await Promise.all(emits);
    await waitFor(() => x.count('news') >= base + N, { what: `round ${r}: ${N} broadcasts` });
    const marker = uniq('m');
    await node.api.emit({ event: 'marker', data: { marker }, rooms: [room] });
    await x.wait('marker', (d) => d.marker === marker);
    const got = news(x).slice(base).sort((p, q) => p - q);
    assert.deepEqual(got, Array.from({ length: N }, (_, i) => r * N + i), `round ${r}: each once`);
  }
  assertIncreasing(offsets(x));
});
