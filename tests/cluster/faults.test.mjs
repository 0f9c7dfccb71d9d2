// Faults in the middle of a test. redis-server killed and restarted on the same port: the nodes
// keep serving (local delivery, client relays, /api/presence) while it is down, /ready says
// redis "down" then "up", and cross-node delivery, the emitter and cluster presence work again.
// The Kafka broker killed and restarted (memory storage: its topics are recreated): every event
// produced after it is back reaches each socket once, and nothing is delivered twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startRedis, startTansu, startNode, connectUser, tracker, request, expectOnceEach, waitFor, uniq,
  redisEmitter, kafkaClient, envelope, withLogs,
} from './fixture.mjs';

const readyIs = (node, dep, state) => async () => (await node.api.ready()).json?.[dep] === state;

test('redis-server killed and restarted: nodes keep serving, /ready follows, cross-node delivery resumes', async (t) => {
  const sockets = tracker();
  const redis = await startRedis();
  t.after(() => redis.stop());
  const nodes = await Promise.all([
    startNode({ nodeId: 'fault-a', redisUrl: redis.url, args: ['--presence-grace', '300'] }),
    startNode({ nodeId: 'fault-b', redisUrl: redis.url, args: ['--presence-grace', '300'] }),
  ]);
  const [a, b] = nodes;
  t.after(async () => { sockets.closeAll(); await Promise.all(nodes.map((n) => n.stop())); });
  await withLogs(nodes, async () => {
  for (const n of nodes) await waitFor(readyIs(n, 'redis', 'up'), { timeoutMs: 10_000, what: `${n.id} redis up` });

  const conv = uniq('c');
  const room = `conversation:${conv}`;
  const claims = { conversations: [conv] };
  const [r1, r2, r3] = await Promise.all([
    connectUser(a, uniq('f'), claims, { track: sockets }),
    connectUser(a, uniq('f'), claims, { track: sockets }),
    connectUser(b, uniq('f'), claims, { track: sockets }),
  ]);
  for (const r of [r1, r2, r3]) assert.deepEqual(await request(r.socket, 'room:join', { room }), { ok: true });
  const viaA = (ev) => a.api.emit({ event: ev, rooms: [room] });
  const viaB = (ev) => b.api.emit({ event: ev, rooms: [room] });
  let n = uniq();
  await a.api.emit({ event: 'conversation:updated', data: { n }, rooms: [room] });
  await expectOnceEach([r1, r2, r3], 'conversation:updated', (d) => d?.n === n, viaA, { what: 'before the outage' });

  // --- Redis down.
  await redis.kill();
  for (const nd of nodes) {
    await waitFor(readyIs(nd, 'redis', 'down'), { timeoutMs: 10_000, what: `${nd.id} /ready redis down` });
    const ready = await nd.api.ready();
    assert.equal(ready.status, 200, 'still ready (degraded) while Redis is down');
  }
  // Local delivery on A: the API and a client relay.
  n = uniq();
  await a.api.emit({ event: 'conversation:updated', data: { n }, rooms: [room] });
  await expectOnceEach([r1, r2], 'conversation:updated', (d) => d?.n === n, viaA, { what: 'local /api/emit while Redis is down' });
  const text = `offline relay ${uniq()}`;
  const ack = await request(r1.socket, 'message:new', { conversationId: conv, text });
  assert.equal(ack.ok, true, `message:new while Redis is down: ${JSON.stringify(ack)}`);
  await expectOnceEach([r2], 'message:new', (m) => m?.text === text, viaA, { what: 'local relay while Redis is down' });
  // New sockets are accepted and presence answers from memory.
  const late = await connectUser(a, uniq('late'), claims, { track: sockets });
  assert.deepEqual((await a.api.presence([late.user]))[late.user], { online: true, lastSeen: null });
  const onB = await connectUser(b, uniq('late'), {}, { track: sockets });
  assert.equal(onB.socket.connected, true);

  // --- Redis back on the same port (empty: no persistence).
  await redis.start();
  for (const nd of nodes) await waitFor(readyIs(nd, 'redis', 'up'), { timeoutMs: 20_000, what: `${nd.id} /ready redis up again` });

  for (const [node, name, marker] of [[a, 'A', viaA], [b, 'B', viaB]]) {
    n = uniq();
    await node.api.emit({ event: 'conversation:updated', data: { n }, rooms: [room] });
    await expectOnceEach([r1, r2, r3], 'conversation:updated', (d) => d?.n === n, marker, { what: `/api/emit on ${name} after the restart` });
  }
  const text2 = `after restart ${uniq()}`;
  assert.equal((await request(r3.socket, 'message:new', { conversationId: conv, text: text2 })).ok, true);
  await expectOnceEach([r1, r2], 'message:new', (m) => m?.text === text2, viaB, { what: 'relay from B after the restart' });

  const em = await redisEmitter(redis.url);
  try {
    n = uniq();
    em.emitter.to(room).emit('conversation:updated', { n });
    await expectOnceEach([r1, r2, r3], 'conversation:updated', (d) => d?.n === n, (ev) => em.emitter.to(room).emit(ev), { what: 'emitter after the restart' });
  } finally {
    await em.close();
  }
  // The nodes rewrote their presence: users connected to A are online for B.
  await waitFor(async () => {
    const p = await b.api.presence([r1.user, late.user]);
    return p[r1.user].online && p[late.user].online;
  }, { timeoutMs: 10_000, what: 'B: users of A online after the Redis restart (resync)' });
  });
});

test('Kafka broker killed and restarted: events produced after it is back arrive once, none twice', async (t) => {
  const sockets = tracker();
  const TOPIC = 'realtime-events';
  const CLIENT_EVENTS = 'client-events';
  const broker = await startTansu();
  t.after(() => broker.stop());
  await broker.createTopic(TOPIC, 3);
  await broker.createTopic(CLIENT_EVENTS, 1);
  const kafka = { brokers: broker.brokers, topics: [TOPIC], clientEventsTopic: CLIENT_EVENTS };
  const nodes = await Promise.all([
    startNode({ nodeId: 'kfault-a', kafka }),
    startNode({ nodeId: 'kfault-b', kafka }),
  ]);
  t.after(async () => { sockets.closeAll(); await Promise.all(nodes.map((nd) => nd.stop())); });
  await withLogs(nodes, async () => {
  for (const nd of nodes) await waitFor(readyIs(nd, 'kafka', 'up'), { timeoutMs: 30_000, what: `${nd.id} kafka up` });

  const conv = uniq('kc');
  const [r1, r2] = await Promise.all([
    connectUser(nodes[0], uniq('kf'), { conversations: [conv] }, { track: sockets }),
    connectUser(nodes[1], uniq('kf'), { conversations: [conv] }, { track: sockets }),
  ]);
  const users = [r1.user, r2.user];
  let producer = kafkaClient(broker.brokers).producer();
  await producer.connect();
  const send = (partition, env) => producer.send({ topic: TOPIC, messages: [{ value: envelope(env), partition }] });
  const markerOn = (partition) => (ev) => send(partition, { id: uniq('marker-'), event: ev, users });

  const beforeId = uniq('before-');
  await send(0, { id: beforeId, event: 'feed:item', users, data: { id: beforeId } });
  await expectOnceEach([r1, r2], 'feed:item', (d) => d?.id === beforeId, markerOn(0), { timeoutMs: 15_000, what: 'before the outage' });
  await producer.disconnect();

  // --- Broker down.
  await broker.kill();
  for (const nd of nodes) await waitFor(readyIs(nd, 'kafka', 'down'), { timeoutMs: 20_000, what: `${nd.id} /ready kafka down` });
  // Sockets keep being served meanwhile.
  const mk = uniq('test:marker:');
  await nodes[0].api.emit({ event: mk, users: [r1.user] });
  await r1.wait(mk);

  // --- Broker back, empty: topics recreated, then events produced right away.
  await broker.start();
  await broker.createTopic(TOPIC, 3);
  await broker.createTopic(CLIENT_EVENTS, 1);
  producer = kafkaClient(broker.brokers).producer();
  await producer.connect();
  t.after(() => producer.disconnect().catch(() => {}));
  const after = [];
  for (let i = 0; i < 9; i++) {
    const id = uniq(`after-${i}-`);
    after.push(id);
    await send(i % 3, { id, event: 'feed:item', users, data: { id } });
  }
  // Time is the subject here only through the nodes' reconnect backoff (up to 10 s) and
  // metadata refresh (5 s): wait for every event with a bound.
  for (const r of [r1, r2]) {
    for (const id of after) await r.wait('feed:item', (d) => d?.id === id, { timeoutMs: 45_000 });
  }
  const markers = [uniq('test:marker:'), uniq('test:marker:'), uniq('test:marker:')];
  for (let p = 0; p < 3; p++) await send(p, { id: uniq('marker-'), event: markers[p], users });
  await Promise.all([r1, r2].flatMap((r) => markers.map((m) => r.wait(m, () => true, { timeoutMs: 15_000 }))));
  for (const r of [r1, r2]) {
    const ids = r.all('feed:item').map(([d]) => d.id);
    assert.deepEqual([...ids].sort(), [beforeId, ...after].sort(), `feed:item deliveries on ${r.socket.id} (each id exactly once)`);
  }
  for (const nd of nodes) assert.equal((await nd.api.ready()).json.kafka, 'up');
  });
});
