// Property: an echo round trip (emit + ack with exactly the sent args) works over websocket-only, polling-only and the default polling-then-upgrade transport path.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, client, connected, connect, once, emitAck, makeJwt, nowSec, tracker, fetchMetrics, metric, waitFor } from './fixture.mjs';

const SECRET = 'transports-test-secret';
const token = makeJwt({ sub: 'transport-user', iat: nowSec(), exp: nowSec() + 3600 }, SECRET);
const ARGS = ['hello', 42, { nested: { list: [1, 'two', null, true] } }];

let srv;
const sockets = tracker();
before(async () => {
  srv = await startServer(['--jwt-secret', SECRET, '--diagnostics']);
});
after(async () => {
  sockets.closeAll();
  await srv?.stop();
});

async function assertEcho(socket) {
  // single argument through emitWithAck (resolves with the ack's first argument)
  const single = await socket.timeout(5000).emitWithAck('echo', { ping: 'pong' });
  assert.deepEqual(single, { ping: 'pong' });
  // several arguments: the ack carries exactly the same list
  const all = await emitAck(socket, 'echo', ARGS);
  assert.deepEqual(all, ARGS);
}

test('websocket only: connects over websocket and echoes', { timeout: 15_000 }, async () => {
  const socket = sockets.add(await connect(srv.url, { transports: ['websocket'], auth: { token } }));
  assert.equal(socket.io.engine.transport.name, 'websocket');
  await assertEcho(socket);
  assert.equal(socket.io.engine.transport.name, 'websocket');
});

test('polling only: connects over polling, echoes, never upgrades', { timeout: 15_000 }, async () => {
  const socket = sockets.add(await connect(srv.url, { transports: ['polling'], auth: { token } }));
  assert.equal(socket.io.engine.transport.name, 'polling');
  await assertEcho(socket);
  assert.equal(socket.io.engine.transport.name, 'polling');
});

test('default: starts on polling, upgrades to websocket, then echoes', { timeout: 15_000 }, async () => {
  const socket = sockets.add(client(srv.url, { auth: { token } }));
  // The Manager opens its engine synchronously, so the listener is attached before any probe.
  const engine = socket.io.engine;
  assert.equal(engine.transport.name, 'polling', 'the default path must start on polling');
  const upgraded = once(engine, 'upgrade', 10_000);
  await connected(socket);
  const [transport] = await upgraded;
  assert.equal(transport.name, 'websocket');
  assert.equal(socket.io.engine.transport.name, 'websocket');
  assert.equal(socket.io.engine, engine, 'the upgrade must keep the same Engine.IO session');
  await assertEcho(socket);
  assert.equal(socket.io.engine.transport.name, 'websocket');
  // Once upgraded, the session no longer accepts polling requests.
  const res = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling&sid=${engine.id}`, { signal: AbortSignal.timeout(5000) });
  const body = await res.text();
  assert.equal(res.status, 400, `polling GET on an upgraded sid -> ${res.status} ${body}`);
  assert.equal(socket.connected, true, 'the stray polling request does not hurt the websocket session');
  await assertEcho(socket);
});

test('metrics count the open connections per transport and the sockets on /', { timeout: 15_000 }, async () => {
  // The three sockets above are still open: websocket-only, polling-only, and the upgraded one.
  const want = { ws: 2, polling: 1, sockets: 3 };
  let last;
  await waitFor(async () => {
    last = await fetchMetrics(srv.url);
    return metric(last, 'sio_connections', { transport: 'websocket' }) === want.ws
      && metric(last, 'sio_connections', { transport: 'polling' }) === want.polling
      && metric(last, 'sio_sockets', { namespace: '/' }) === want.sockets;
  }, { what: 'connection gauges to settle' }).catch((e) => {
    const got = Object.fromEntries(Object.entries(last ?? {}).filter(([k]) => /^sio_(connections|sockets)\b/.test(k)));
    assert.fail(`${e.message}: want ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
  });
});
