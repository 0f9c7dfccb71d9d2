// Two sio-edge nodes with the Admin UI namespace on one private redis-server: an admin
// connected to either node gets the `server_stats` of both, each with its own stable
// serverId (its node id), as the UI needs to list every server of the cluster.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { startRedis, startNode, tracker, waitFor } from './fixture.mjs';

// bcrypt (cost 4) of "cluster-admin-pw".
const HASH = '$2a$04$raSMSP4iAYmPSrg0NjEJIOcuWhDJhWH/ZxJX.xYSFmiaux/PIcmVK';
const ADMIN = ['--admin-username', 'admin', '--admin-password-hash', HASH];

let redis;
let a;
let b;
const sockets = tracker();

before(async () => {
  redis = await startRedis();
  [a, b] = await Promise.all([
    startNode({ nodeId: 'admin-a', redisUrl: redis.url, args: ADMIN }),
    startNode({ nodeId: 'admin-b', redisUrl: redis.url, args: ADMIN }),
  ]);
  for (const n of [a, b]) {
    await waitFor(async () => (await n.api.ready()).json?.redis === 'up', { timeoutMs: 10_000, what: `${n.id} /ready redis up` });
  }
});

after(async () => {
  sockets.closeAll();
  await Promise.all([a?.stop(), b?.stop()]);
  await redis?.stop();
});

test('an admin on either node sees the server_stats of both nodes', { timeout: 30_000 }, async () => {
  for (const node of [a, b]) {
    const adm = sockets.add(io(`${node.url}/admin`, {
      forceNew: true, reconnection: false, auth: { username: 'admin', password: 'cluster-admin-pw' },
    }));
    const seen = new Map();
    adm.on('server_stats', (s) => seen.set(s.serverId, s));
    await waitFor(() => seen.has('admin-a') && seen.has('admin-b'), {
      timeoutMs: 10_000, what: `server_stats of both nodes on ${node.id} (got ${[...seen.keys()]})`,
    });
    for (const [id, s] of seen) {
      assert.equal(typeof s.clientsCount, 'number', id);
      assert.ok(Array.isArray(s.namespaces), id);
      assert.ok(Array.isArray(s.aggregatedEvents), id);
    }
    adm.close();
  }
});
