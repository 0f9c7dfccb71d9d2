// Property: on SIGTERM (or SIGINT) the server closes every transport without a Socket.IO
// DISCONNECT, so the official socket.io-client sees a lost connection ('transport close'), not
// a deliberate kick ('io server disconnect'), and reconnects by itself, with no app code, to the
// server restarted on the same port; the process exits 0 within 5 s.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, client, connected, once, makeJwt, nowSec, tracker } from './fixture.mjs';

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

/** A client with socket.io-client's own reconnection on (short delays keep the test quick). */
function reconnecting(url, opts) {
  return sockets.add(client(url, {
    reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 500, auth: { token }, ...opts,
  }));
}

test('SIGTERM: transports close without DISCONNECT, the process exits 0, clients reconnect to the restarted server', { timeout: 30_000 }, async () => {
  const srv = await startServer(['--jwt-secret', SECRET, '--namespace', '/admin']);
  servers.push(srv);
  const ws = reconnecting(srv.url, { transports: ['websocket'] });
  const poll = reconnecting(srv.url, { transports: ['polling'] });
  const admin = reconnecting(`${srv.url}/admin`, { transports: ['websocket'] });
  await Promise.all([ws, poll, admin].map((s) => connected(s)));
  const lost = [ws, poll, admin].map((s) => once(s, 'disconnect', 5000));

  const t0 = Date.now();
  assert.ok(srv.proc.kill('SIGTERM'), 'signal delivered');
  const reasons = (await Promise.all(lost)).map(([reason]) => reason);
  for (const r of reasons) {
    assert.ok(['transport close', 'transport error'].includes(r), `a lost transport, not a kick: ${reasons}`);
  }
  const { code, signal } = await withTimeout(srv.exited, 5000 - (Date.now() - t0), 'process exit');
  assert.equal(signal, null, 'exited by itself, not killed by the signal');
  assert.equal(code, 0);

  // The same port again, as a deploy would: the clients come back on their own.
  const back = [ws, poll, admin].map((s) => once(s, 'connect', 15_000));
  const next = await startServer(['--jwt-secret', SECRET, '--namespace', '/admin', '--port', String(srv.port)]);
  servers.push(next);
  assert.equal(next.port, srv.port);
  await Promise.all(back);
  for (const s of [ws, poll, admin]) assert.equal(s.connected, true);
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
  const ws = reconnecting(srv.url, { transports: ['websocket'], reconnection: false });
  await connected(ws);
  const w = once(ws, 'disconnect', 5000);
  srv.proc.kill('SIGINT');
  const [reason] = await w;
  assert.equal(reason, 'transport close');
  const { code } = await withTimeout(srv.exited, 5000, 'process exit');
  assert.equal(code, 0);
});
