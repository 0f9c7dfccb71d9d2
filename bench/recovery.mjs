// Figures for docs/REDIS.md: recovery latency (transport dropped -> CONNECT answered with
// `recovered`, through Redis and in-process) and Redis memory per recovery session and per
// logged broadcast. Uses the cluster tests' fixture (a private redis-server, sio-edge nodes,
// the official client):
//
//   cd tests/cluster && npm ci && cd ../..
//   SIO_EDGE_BIN=target/release/sio-edge node bench/recovery.mjs [rounds=30] [missed=100]
//
// Prints one JSON object. Latency: median and p90 over `rounds` reconnects of one client that
// missed `missed` broadcasts each time (time from socket.connect() until the last missed
// broadcast arrived). Memory: MEMORY USAGE of a session hash, and INFO used_memory before and
// after logging 10,000 broadcasts (~120-byte messages), divided by 10,000.
import { once } from 'node:events';
import {
  startRedis, startNode, connectUser, request, waitFor, redisCommand,
} from '../tests/cluster/fixture.mjs';

const rounds = Number(process.argv[2] ?? 30);
const missed = Number(process.argv[3] ?? 100);

const usedMemory = async (port) => Number(/used_memory:(\d+)/.exec(await redisCommand(port, 'INFO memory', 2_000))[1]);
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];

async function latency(node, label) {
  const room = `post:lat${label}`;
  const x = await connectUser(node, `lat-${label}`, {});
  await request(x.socket, 'room:join', { room });
  const times = [];
  for (let r = 0; r < rounds; r++) {
    const gone = once(x.socket, 'disconnect');
    x.socket.io.engine.close();
    await gone;
    const base = x.count('m');
    for (let i = 0; i < missed; i++) await node.api.emit({ event: 'm', data: { r, i, pad: 'x'.repeat(60) }, rooms: [room] });
    const t0 = performance.now();
    const back = once(x.socket, 'connect');
    x.socket.connect();
    await back;
    if (!x.socket.recovered) throw new Error(`${label}: round ${r} not recovered`);
    await waitFor(() => x.count('m') === base + missed, { timeoutMs: 10_000, intervalMs: 1, what: 'missed broadcasts' }).catch((e) => { const got = x.all('m').slice(base).map(([d]) => d.i); throw new Error(`${e.message}: round ${r} got ${got.length}: ${got.join(',')}`); });
    times.push(performance.now() - t0);
  }
  x.socket.close();
  return { median_ms: +pct(times, 0.5).toFixed(2), p90_ms: +pct(times, 0.9).toFixed(2) };
}

const redis = await startRedis();
const node = await startNode({ nodeId: 'measure', redisUrl: redis.url, log: 'warn' });
await waitFor(async () => (await node.api.ready()).json?.redis === 'up', { timeoutMs: 10_000 });
const out = { rounds, missed };
try {
  out.redis_recovery = await latency(node, 'redis');
  // Memory per session: a socket of an authenticated user in 3 rooms (user room + 2).
  const y = await connectUser(node, 'mem-user-0001', {});
  for (const room of ['post:alpha', 'feed']) await request(y.socket, 'room:join', { room });
  const key = `socket.io:recovery:${y.socket._pid}`;
  await waitFor(async () => (await redisCommand(redis.port, `EXISTS ${key}`)).startsWith(':1'));
  out.session_bytes = Number(/^:(\d+)/.exec(await redisCommand(redis.port, `MEMORY USAGE ${key}`))[1]);
  // Memory per logged broadcast: 10,000 broadcasts of ~120 bytes to one room.
  const n = 10_000;
  const before = await usedMemory(redis.port);
  const len0 = Number(/^:(\d+)/.exec(await redisCommand(redis.port, 'XLEN socket.io:recovery-log:/'))[1]);
  for (let i = 0; i < n; i++) await node.api.emit({ event: 'chat', data: { i, text: 'hello there, this is a message' }, rooms: ['post:alpha'] });
  await waitFor(async () => Number(/^:(\d+)/.exec(await redisCommand(redis.port, 'XLEN socket.io:recovery-log:/'))[1]) >= len0 + n, { timeoutMs: 30_000 });
  const after = await usedMemory(redis.port);
  out.broadcast_bytes = Math.round((after - before) / n);
  out.stream_usage_bytes = Number(/^:(\d+)/.exec(await redisCommand(redis.port, 'MEMORY USAGE socket.io:recovery-log:/ SAMPLES 0', 5_000))[1]);
  y.socket.close();
} finally {
  await node.stop();
  await redis.stop();
}
// In-process, for comparison: the same node without Redis.
const local = await startNode({ nodeId: 'measure-local', log: 'warn' });
try {
  out.in_process_recovery = await latency(local, 'local');
} finally {
  await local.stop();
}
console.log(JSON.stringify(out));
