// Property: with --max-payload 1000 a websocket message or a polling POST body over the limit closes that connection (POST answered 413/400, sid then unknown), messages under the limit still work, and the server keeps serving new clients.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, connect, once, emitAck, waitFor, makeJwt, nowSec, tracker } from './fixture.mjs';

const SECRET = 'payload-secret';
const MAX = 1000;
const token = makeJwt({ sub: 'payload-user', iat: nowSec(), exp: nowSec() + 3600 }, SECRET);

let srv;
const sockets = tracker();
before(async () => {
  srv = await startServer(['--jwt-secret', SECRET, '--diagnostics', '--max-payload', String(MAX)]);
});
after(async () => {
  sockets.closeAll();
  await srv?.stop();
});

const eio = (query = '') => `${srv.url}/socket.io/?EIO=4&transport=polling${query}`;

async function handshake() {
  const res = await fetch(eio(), { signal: AbortSignal.timeout(5000) });
  const body = await res.text();
  assert.equal(res.status, 200, `handshake -> ${res.status} ${body}`);
  const open = JSON.parse(body.slice(1));
  assert.equal(open.maxPayload, MAX, 'handshake advertises --max-payload');
  return open.sid;
}

test('websocket: a message under the limit is echoed, a 5 KB message disconnects', { timeout: 15_000 }, async () => {
  const socket = sockets.add(await connect(srv.url, { transports: ['websocket'], auth: { token } }));
  const small = 's'.repeat(500);
  assert.deepEqual(await emitAck(socket, 'echo', [small]), [small]);

  const disconnected = once(socket, 'disconnect', 5000);
  socket.emit('echo', 'x'.repeat(5 * 1024), () => {
    assert.fail('an oversized message must not be acknowledged');
  });
  const [reason] = await disconnected;
  assert.ok(['transport close', 'transport error', 'io server disconnect'].includes(reason), `reason: ${reason}`);
  assert.equal(socket.connected, false);
});

test('polling client: a 5 KB message disconnects', { timeout: 15_000 }, async () => {
  const socket = sockets.add(await connect(srv.url, { transports: ['polling'], auth: { token } }));
  const small = 'p'.repeat(500);
  assert.deepEqual(await emitAck(socket, 'echo', [small]), [small]);
  const disconnected = once(socket, 'disconnect', 5000);
  socket.emit('echo', 'y'.repeat(5 * 1024));
  const [reason] = await disconnected;
  assert.ok(['transport close', 'transport error', 'io server disconnect'].includes(reason), `reason: ${reason}`);
});

test('raw polling: a POST under the limit is ok, a POST over it is refused and ends the session', { timeout: 15_000 }, async () => {
  const sid = await handshake();
  const okRes = await fetch(eio(`&sid=${sid}`), { method: 'POST', body: '4' + 'a'.repeat(500), signal: AbortSignal.timeout(5000) });
  assert.equal(okRes.status, 200);
  assert.equal(await okRes.text(), 'ok');

  const big = await fetch(eio(`&sid=${sid}`), { method: 'POST', body: '4' + 'b'.repeat(5 * 1024), signal: AbortSignal.timeout(5000) });
  const bigBody = await big.text();
  assert.ok([413, 400].includes(big.status), `oversized POST -> ${big.status} ${bigBody}`);

  // The session is closed: its sid is rejected (allow the close a moment to land).
  // A still-open session would hold this GET as a long poll, hence the per-request timeout.
  await waitFor(async () => {
    try {
      const r = await fetch(eio(`&sid=${sid}`), { signal: AbortSignal.timeout(1000) });
      await r.text();
      return r.status === 400;
    } catch {
      return false;
    }
  }, { timeoutMs: 2500, what: 'the sid to be rejected after an oversized POST' });
});

test('the server still serves new clients afterwards', { timeout: 15_000 }, async () => {
  for (const transport of ['websocket', 'polling']) {
    const socket = sockets.add(await connect(srv.url, { transports: [transport], auth: { token } }));
    assert.deepEqual(await emitAck(socket, 'echo', ['still', 'here']), ['still', 'here']);
  }
  await handshake();
});
