// Kafka with two sio-edge nodes (each with its own consumer group, both on one redis-server) and
// a Tansu broker: envelopes a test producer (kafkajs) puts on `realtime-events` reach the
// addressed sockets once each, on both nodes (every node consumes every event and delivers
// locally: never again through Redis); an envelope whose id was seen before is not delivered
// again; a notification for an offline user is queued once for the cluster; client events
// (`message:new`, presence transitions) are produced once to `client-events`, keyed by the
// conversation (or user), on the partition the Java client's partitioner picks.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import {
  startRedis, startTansu, startNode, connectUser, tracker, request, expectOnceEach, waitFor, uniq,
  kafkaClient, envelope,
} from './fixture.mjs';

const require = createRequire(import.meta.url);
const murmur2 = require('kafkajs/src/producer/partitioners/default/murmur2');

const TOPIC = 'realtime-events';
const CLIENT_EVENTS = 'client-events';
const PARTITIONS = 3;
const NSP = '/chat';

let redis;
let broker;
let a;
let b;
let producer;
let consumer;
const clientEvents = []; // {partition, offset, key, value (parsed)}
const sockets = tracker();

before(async () => {
  broker = await startTansu();
  redis = await startRedis();
  await broker.createTopic(TOPIC, PARTITIONS);
  await broker.createTopic(CLIENT_EVENTS, PARTITIONS);
  const kafka = { brokers: broker.brokers, topics: [TOPIC], clientEventsTopic: CLIENT_EVENTS };
  const args = ['--namespace', NSP, '--presence-grace', '300'];
  [a, b] = await Promise.all([
    startNode({ nodeId: 'kafka-a', redisUrl: redis.url, kafka, args }),
    startNode({ nodeId: 'kafka-b', redisUrl: redis.url, kafka, args }),
  ]);
  for (const n of [a, b]) {
    await waitFor(async () => {
      const r = (await n.api.ready()).json;
      return r?.redis === 'up' && r?.kafka === 'up';
    }, { timeoutMs: 30_000, what: `${n.id} /ready redis and kafka up` });
  }
  const k = kafkaClient(broker.brokers);
  producer = k.producer();
  await producer.connect();
  consumer = k.consumer({ groupId: uniq('reader-'), maxWaitTimeInMs: 100, heartbeatInterval: 1_000 });
  await consumer.connect();
  await consumer.subscribe({ topic: CLIENT_EVENTS, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      let value;
      try { value = JSON.parse(message.value.toString()); } catch { value = message.value.toString(); }
      clientEvents.push({ partition, offset: Number(message.offset), key: message.key?.toString() ?? null, value });
    },
  });
});

after(async () => {
  sockets.closeAll();
  await consumer?.disconnect().catch(() => {});
  await producer?.disconnect().catch(() => {});
  await Promise.all([a?.stop(), b?.stop()]);
  await Promise.all([broker?.stop(), redis?.stop()]);
});

/** Produces envelopes (objects) to one partition, in order. */
async function produce(partition, ...envs) {
  await producer.send({ topic: TOPIC, messages: envs.map((e) => ({ value: envelope(e), partition })) });
}

/** A marker envelope to `recs`' user rooms on `partition`; resolves its event name. */
function markerVia(partition, recs) {
  return (ev) => produce(partition, { id: uniq('marker-'), event: ev, users: recs.map((r) => r.user) });
}

test('an envelope for a room reaches its sockets on both nodes once, and nobody else', async () => {
  const room = `post:${uniq()}`;
  const [r1, r2, o1, o2] = await Promise.all([
    connectUser(a, uniq('k'), {}, { track: sockets }),
    connectUser(b, uniq('k'), {}, { track: sockets }),
    connectUser(a, uniq('out'), {}, { track: sockets }),
    connectUser(b, uniq('out'), {}, { track: sockets }),
  ]);
  for (const r of [r1, r2]) assert.deepEqual(await request(r.socket, 'room:join', { room }), { ok: true });
  const data = { n: uniq(), text: 'from kafka' };
  await produce(0, { id: uniq('evt-'), event: 'post:update', rooms: [room], data });
  const mk = await expectOnceEach([r1, r2], 'post:update', (d) => d?.n === data.n, markerVia(0, [r1, r2, o1, o2]),
    { timeoutMs: 15_000, what: 'kafka rooms envelope' });
  await Promise.all([o1, o2].map((o) => o.wait(mk)));
  for (const o of [o1, o2]) assert.equal(o.count('post:update'), 0, 'a socket outside the room got the event');
  const [got] = r2.all('post:update').find(([d]) => d?.n === data.n);
  assert.deepEqual(got, data);
});

test('an envelope for users, with except, reaches each remaining socket once', async () => {
  const shared = uniq('k');
  const [s1, s2, x] = await Promise.all([
    connectUser(a, shared, {}, { track: sockets }), // one user, a socket on each node
    connectUser(b, shared, {}, { track: sockets }),
    connectUser(b, uniq('k'), {}, { track: sockets }),
  ]);
  const extra = await connectUser(a, uniq('k'), {}, { track: sockets });
  const data = { n: uniq() };
  // `except` names one socket id (on node B).
  await produce(1, { id: uniq('evt-'), event: 'notification:new', users: [shared, x.user, extra.user], except: [x.socket.id], data });
  const mk = await expectOnceEach([s1, s2, extra], 'notification:new', (d) => d?.n === data.n, markerVia(1, [s1, x, extra]),
    { timeoutMs: 15_000, what: 'kafka users envelope' });
  await x.wait(mk);
  assert.equal(x.count('notification:new', (d) => d?.n === data.n), 0, 'the excepted socket got the event');
});

test('an envelope with a repeated id is delivered once, whatever partition repeats it', async () => {
  const [r1, r2] = await Promise.all([
    connectUser(a, uniq('k'), {}, { track: sockets }),
    connectUser(b, uniq('k'), {}, { track: sockets }),
  ]);
  const id = uniq('dup-');
  const users = [r1.user, r2.user];
  await produce(2, { id, event: 'feed:item', users, data: { copy: 1 } });
  await produce(2, { id, event: 'feed:item', users, data: { copy: 2 } });
  await produce(0, { id, event: 'feed:item', users, data: { copy: 3 } });
  // Markers after the copies on both partitions: everything before them has been consumed.
  const m2 = uniq('test:marker:');
  const m0 = uniq('test:marker:');
  await produce(2, { id: uniq('marker-'), event: m2, users });
  await produce(0, { id: uniq('marker-'), event: m0, users });
  await Promise.all([r1, r2].flatMap((r) => [r.wait(m2, () => true, { timeoutMs: 15_000 }), r.wait(m0, () => true, { timeoutMs: 15_000 })]));
  for (const r of [r1, r2]) {
    const got = r.all('feed:item').map(([d]) => d);
    // Partitions are read independently: the first copy of partition 2 or the one of partition
    // 0 may come first; the second copy on partition 2 can never win.
    assert.equal(got.length, 1, `deliveries of id ${id} on ${r.socket.id}: ${JSON.stringify(got)}`);
    assert.ok(got[0].copy === 1 || got[0].copy === 3, `delivered copy ${JSON.stringify(got[0])}`);
  }
});

test('an envelope for another namespace reaches that namespace on both nodes once', async () => {
  const [r1, r2] = await Promise.all([
    connectUser({ url: `${a.url}${NSP}` }, uniq('k'), {}, { track: sockets }),
    connectUser({ url: `${b.url}${NSP}` }, uniq('k'), {}, { track: sockets }),
  ]);
  const main = await connectUser(a, r1.user, {}, { track: sockets }); // same user, main namespace
  const data = { n: uniq() };
  await produce(0, { id: uniq('evt-'), event: 'chat:ping', namespace: NSP, users: [r1.user, r2.user], data });
  const marker = (ev) => produce(0, { id: uniq('marker-'), event: ev, namespace: NSP, users: [r1.user, r2.user] });
  await expectOnceEach([r1, r2], 'chat:ping', (d) => d?.n === data.n, marker, { timeoutMs: 15_000, what: 'namespace envelope' });
  const mk = uniq('test:marker:');
  await produce(0, { id: uniq('marker-'), event: mk, users: [r1.user] });
  await main.wait(mk, () => true, { timeoutMs: 15_000 });
  assert.equal(main.count('chat:ping'), 0, 'delivered to the main namespace too');
});

test('a Kafka notification for an offline user is queued once for the cluster', async () => {
  const user = uniq('off');
  const [w1, w2] = await Promise.all([
    connectUser(a, uniq('k'), {}, { track: sockets }),
    connectUser(b, uniq('k'), {}, { track: sockets }),
  ]);
  const data = { n: uniq(), text: 'while you were away' };
  await produce(1, { id: uniq('evt-'), event: 'notification:new', users: [user], data });
  // Both nodes consumed it once their marker (same partition, later) arrived.
  const mk = uniq('test:marker:');
  await produce(1, { id: uniq('marker-'), event: mk, users: [w1.user, w2.user] });
  await Promise.all([w1, w2].map((w) => w.wait(mk, () => true, { timeoutMs: 15_000 })));
  const u = await connectUser(a, user, {}, { track: sockets });
  await expectOnceEach([u], 'notification:new', (d) => d?.n === data.n, (ev) => a.api.emit({ event: ev, users: [user] }),
    { what: 'queued notification delivered on connect' });
  u.socket.close();
  // Not queued a second time elsewhere: a later connect on the other node gets nothing.
  const again = await connectUser(b, user, {}, { track: sockets });
  const mk2 = uniq('test:marker:');
  await b.api.emit({ event: mk2, users: [user] });
  await again.wait(mk2);
  assert.equal(again.count('notification:new', (d) => d?.n === data.n), 0, 'the notification was delivered a second time');
});

test('a client message:new is produced once to client-events, keyed by the conversation id', async () => {
  const conv = uniq('conv');
  const room = `conversation:${conv}`;
  const claims = { conversations: [conv] };
  const [sa, sb] = await Promise.all([
    connectUser(a, uniq('cs'), claims, { track: sockets }),
    connectUser(b, uniq('cs'), claims, { track: sockets }),
  ]);
  for (const s of [sa, sb]) assert.deepEqual(await request(s.socket, 'room:join', { room }), { ok: true });
  const text = `persist me ${uniq()}`;
  const ack = await request(sa.socket, 'message:new', { conversationId: conv, text, clientId: 'cid-1' });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  await sb.wait('message:new', (m) => m?.id === ack.id); // relayed to node B through Redis
  // Markers in the same conversation from both nodes (same key, same partition, after it).
  const markA = await request(sa.socket, 'message:new', { conversationId: conv, text: 'marker A' });
  const markB = await request(sb.socket, 'message:new', { conversationId: conv, text: 'marker B' });
  const ids = new Set([markA.id, markB.id]);
  await waitFor(() => clientEvents.filter((r) => ids.has(r.value?.data?.id)).length === 2,
    { timeoutMs: 15_000, what: `both marker messages on ${CLIENT_EVENTS}` });
  const recs = clientEvents.filter((r) => r.value?.data?.id === ack.id);
  assert.equal(recs.length, 1, `records of message ${ack.id} on ${CLIENT_EVENTS}: ${JSON.stringify(recs)}`);
  const [r] = recs;
  assert.equal(r.key, conv, 'record key');
  const expectedPartition = (murmur2(Buffer.from(conv)) & 0x7fffffff) % PARTITIONS;
  assert.equal(r.partition, expectedPartition, 'partition of the key (Java client murmur2)');
  assert.equal(r.value.event, 'message:new');
  assert.equal(r.value.key, conv);
  assert.equal(r.value.userId, sa.user);
  assert.equal(typeof r.value.id, 'string');
  assert.equal(typeof r.value.at, 'number');
  assert.deepEqual(r.value.data, {
    id: ack.id, conversationId: conv, senderId: sa.user, text, attachments: [], clientId: 'cid-1', createdAt: ack.createdAt,
  });
  // All three on that partition; node A's two in the order it produced them.
  const order = clientEvents.filter((x) => x.partition === expectedPartition && x.key === conv).map((x) => x.value.data.id);
  assert.deepEqual([...order].sort(), [ack.id, markA.id, markB.id].sort());
  assert.ok(order.indexOf(ack.id) < order.indexOf(markA.id), `order on the partition: ${order}`);
});

test('a user coming online on one node is produced to client-events once, keyed by the user', async () => {
  const user = uniq('on');
  const conv = uniq('conv');
  const peer = await connectUser(b, uniq('peer'), { conversations: [conv] }, { track: sockets });
  assert.deepEqual(await request(peer.socket, 'room:join', { room: `conversation:${conv}` }), { ok: true });
  await connectUser(a, user, { conversations: [conv] }, { track: sockets });
  await peer.wait('user:online', (e) => e?.userId === user);
  // Then online on the other node too: not a transition, nothing produced.
  await connectUser(b, user, { conversations: [conv] }, { track: sockets });
  const m = await request(peer.socket, 'message:new', { conversationId: conv, text: 'marker' });
  assert.equal(m.ok, true);
  // A marker produced by node B after its presence check of the second connect: a user:online
  // produced by B would have been queued before it (one producer, queue order).
  await waitFor(() => clientEvents.some((r) => r.key === user && r.value?.event === 'user:online'),
    { timeoutMs: 15_000, what: `user:online of ${user} on ${CLIENT_EVENTS}` });
  await waitFor(() => clientEvents.some((r) => r.value?.data?.id === m.id), { timeoutMs: 15_000, what: `marker message ${m.id}` });
  const mine = clientEvents.filter((r) => r.key === user && r.value?.event?.startsWith('user:'));
  assert.deepEqual(mine.map((r) => r.value.event), ['user:online'], `presence records of ${user}`);
  assert.deepEqual(mine[0].value.data, { userId: user, lastSeen: null });
});
