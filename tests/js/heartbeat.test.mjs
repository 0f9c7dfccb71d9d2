// Property: with --ping-interval 200 --ping-timeout 150 the server pings every interval, keeps answering clients alive across many cycles, and drops a session that never answers a ping at interval+timeout (its sid then gets 400).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, connect, once, delay, makeJwt, nowSec, tracker } from './fixture.mjs';

const SECRET = 'heartbeat-secret';
const PING_INTERVAL = 200;
const PING_TIMEOUT = 150;
const token = makeJwt({ sub: 'hb-user', iat: nowSec(), exp: nowSec() + 3600 }, SECRET);

let srv;
const sockets = tracker();
before(async () => {
  srv = await startServer([
    '--jwt-secret', SECRET,
    '--ping-interval', String(PING_INTERVAL),
    '--ping-timeout', String(PING_TIMEOUT),
  ]);
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
  assert.ok(body.startsWith('0{'), `OPEN packet: ${body}`);
  const open = JSON.parse(body.slice(1));
  assert.equal(open.pingInterval, PING_INTERVAL);
  assert.equal(open.pingTimeout, PING_TIMEOUT);
  return open.sid;
}

for (const transport of ['websocket', 'polling']) {
  test(`a ${transport} client stays connected across several ping cycles`, { timeout: 15_000 }, async () => {
    const N = 6;
    const socket = sockets.add(await connect(srv.url, { transports: [transport], auth: { token } }));
    const engine = socket.io.engine;
    assert.equal(engine.transport.name, transport);
    let disconnectReason = null;
    socket.on('disconnect', (r) => { disconnectReason = r; });

    const t0 = Date.now();
    for (let i = 0; i < N; i++) {
      await once(engine, 'ping', PING_INTERVAL * 5);
    }
    const elapsed = Date.now() - t0;
    assert.equal(disconnectReason, null, 'no disconnect while answering pings');
    assert.equal(socket.connected, true);
    assert.equal(engine.readyState, 'open');
    // N pings need at least N-1 intervals between them: the server must not ping faster.
    assert.ok(elapsed >= (N - 1) * PING_INTERVAL * 0.8, `${N} pings took only ${elapsed} ms`);
  });
}

for (const transport of ['websocket', 'polling']) {
  test(`a ${transport} client that stops answering pings is dropped by the server`, { timeout: 15_000 }, async () => {
    const socket = sockets.add(await connect(srv.url, { transports: [transport], auth: { token } }));
    const engine = socket.io.engine;
    await once(engine, 'ping', PING_INTERVAL * 5);
    // From now on the client swallows its pongs (it keeps resetting its own ping timer on each
    // ping, so any close now comes from the server's heartbeat check).
    const send = engine._sendPacket.bind(engine);
    engine._sendPacket = (type, ...rest) => (type === 'pong' ? undefined : send(type, ...rest));
    const t0 = Date.now();
    const [reason] = await once(socket, 'disconnect', 3000);
    const elapsed = Date.now() - t0;
    assert.ok(['transport close', 'transport error'].includes(reason), `reason: ${reason}`);
    // next ping at <= PING_INTERVAL, then PING_TIMEOUT without a pong (plus slack)
    assert.ok(elapsed <= PING_INTERVAL + PING_TIMEOUT + 500, `dropped only after ${elapsed} ms`);
    assert.ok(elapsed >= PING_TIMEOUT * 0.8, `dropped too early (${elapsed} ms), before the ping timeout`);
  });
}

test('a raw polling session that answers pings stays alive', { timeout: 15_000 }, async () => {
  const sid = await handshake();
  for (let i = 0; i < 4; i++) {
    const res = await fetch(eio(`&sid=${sid}`), { signal: AbortSignal.timeout(PING_INTERVAL * 5) });
    const body = await res.text();
    assert.equal(res.status, 200, `poll ${i} -> ${res.status} ${body}`);
    assert.equal(body, '2', `poll ${i} carries a ping`);
    const pong = await fetch(eio(`&sid=${sid}`), { method: 'POST', body: '3', signal: AbortSignal.timeout(5000) });
    assert.equal(pong.status, 200);
    assert.equal(await pong.text(), 'ok');
  }
  // still a valid session: closing it explicitly works
  const close = await fetch(eio(`&sid=${sid}`), { method: 'POST', body: '1', signal: AbortSignal.timeout(5000) });
  assert.equal(close.status, 200);
  await close.text();
});

test('a raw polling session that never polls or pongs is gone after interval+timeout', { timeout: 15_000 }, async () => {
  const sid = await handshake();
  // The server's timers started before its handshake answer arrived here.
  const t0 = Date.now();
  // Time is the subject here: stay silent past pingInterval + pingTimeout (+ some slack).
  const SLACK_MS = 100;
  await delay(PING_INTERVAL + PING_TIMEOUT + SLACK_MS);
  const HARD_LIMIT_MS = 3000;
  const seen = [];
  for (;;) {
    const left = HARD_LIMIT_MS - (Date.now() - t0);
    if (left <= 0) assert.fail(`sid still valid ${HARD_LIMIT_MS} ms after the handshake; responses: ${seen.join(' | ')}`);
    let res;
    try {
      res = await fetch(eio(`&sid=${sid}`), { signal: AbortSignal.timeout(left) });
    } catch (e) {
      seen.push(`fetch error ${e.name}`);
      continue;
    }
    const body = await res.text();
    seen.push(`${Date.now() - t0}ms ${res.status} ${JSON.stringify(body.slice(0, 60))}`);
    if (res.status === 400) {
      const err = JSON.parse(body);
      assert.equal(err.code, 1, `unknown sid error code (body ${body})`);
      break;
    }
    // A 200 may be the queued ping or a close packet; keep asking until the sid is rejected.
  }
  // The first request, sent SLACK_MS after the deadline, should already get the 400.
  assert.equal(seen.length, 1, `session outlived interval+timeout (+${SLACK_MS} ms): ${seen.join(' | ')}`);
});
