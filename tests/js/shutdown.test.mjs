// Property: on SIGTERM the server sends a Socket.IO DISCONNECT to connected clients (reason 'io server disconnect' over websocket and polling) and the process exits 0 within 5 s.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, connect, once, makeJwt, nowSec, tracker } from './fixture.mjs';

const SECRET = 'shutdown-secret';
const token = makeJwt({ sub: 'shutdown-user', iat: nowSec(), exp: nowSec() + 3600 }, SECRET);
const sockets = tracker();
const servers = [];
after(async () => {
  sockets.closeAll();
  await Promise.all(servers.map((s) => s.stop()));
});

async function withTimeout(promise, ms, what) {
  let timer;
  try {
    return await Promise.race([
      promise,
      new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`${what} did not happen within ${ms} ms`)), ms); }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

test('SIGTERM: clients get "io server disconnect" and the process exits 0 within 5 s', { timeout: 20_000 }, async () => {
  const srv = await startServer(['--jwt-secret', SECRET, '--namespace', '/admin']);
  servers.push(srv);
  const ws = sockets.add(await connect(srv.url, { transports: ['websocket'], auth: { token } }));
  const poll = sockets.add(await connect(srv.url, { transports: ['polling'], auth: { token } }));
  const admin = sockets.add(await connect(`${srv.url}/admin`, { transports: ['websocket'], auth: { token } }));
  const waits = [ws, poll, admin].map((s) => once(s, 'disconnect', 5000));

  const t0 = Date.now();
  assert.ok(srv.proc.kill('SIGTERM'), 'signal delivered');
  const reasons = (await Promise.all(waits)).map(([reason]) => reason);
  assert.deepEqual(reasons, ['io server disconnect', 'io server disconnect', 'io server disconnect']);

  const { code, signal } = await withTimeout(srv.exited, 5000 - (Date.now() - t0), 'process exit');
  assert.equal(signal, null, 'exited by itself, not killed by the signal');
  assert.equal(code, 0);
  assert.ok(Date.now() - t0 <= 5000);
});

test('SIGTERM with no clients exits 0 promptly', { timeout: 15_000 }, async () => {
  const srv = await startServer(['--jwt-secret', SECRET]);
  servers.push(srv);
  srv.proc.kill('SIGTERM');
  const { code, signal } = await withTimeout(srv.exited, 5000, 'process exit');
  assert.equal(signal, null);
  assert.equal(code, 0);
});

test('SIGINT behaves like SIGTERM', { timeout: 15_000 }, async () => {
  const srv = await startServer(['--jwt-secret', SECRET]);
  servers.push(srv);
  const ws = sockets.add(await connect(srv.url, { transports: ['websocket'], auth: { token } }));
  const w = once(ws, 'disconnect', 5000);
  srv.proc.kill('SIGINT');
  const [reason] = await w;
  assert.equal(reason, 'io server disconnect');
  const { code } = await withTimeout(srv.exited, 5000, 'process exit');
  assert.equal(code, 0);
});
