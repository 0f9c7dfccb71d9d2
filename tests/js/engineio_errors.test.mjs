// Property: the Engine.IO endpoint answers malformed requests with HTTP 400 and the reference {"code","message"} JSON (0 transport, 1 sid, 2 handshake method, 5 protocol version), and a valid polling handshake returns `0{...}` with exactly sid/upgrades/pingInterval/pingTimeout/maxPayload.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, waitFor } from './fixture.mjs';

const SECRET = 'eio-errors-secret';
let srv;
before(async () => {
  srv = await startServer(['--jwt-secret', SECRET]);
});
after(async () => {
  await srv?.stop();
});

async function req(query, init = {}) {
  const res = await fetch(`${srv.url}/socket.io/${query}`, { signal: AbortSignal.timeout(5000), ...init });
  const body = await res.text();
  return { res, body };
}

async function expectError(query, code, init = {}) {
  const { res, body } = await req(query, init);
  assert.equal(res.status, 400, `${init.method || 'GET'} ${query} -> ${res.status} ${body}`);
  let json;
  try { json = JSON.parse(body); } catch { assert.fail(`${query}: 400 body is not JSON: ${JSON.stringify(body)}`); }
  assert.equal(json.code, code, `${init.method || 'GET'} ${query}: code (body ${body})`);
  assert.equal(typeof json.message, 'string');
  return json;
}

async function handshake() {
  const { res, body } = await req('?EIO=4&transport=polling');
  assert.equal(res.status, 200, body);
  return { res, body, open: JSON.parse(body.slice(1)) };
}

test('missing EIO -> 400 code 5', { timeout: 10_000 }, async () => {
  const j = await expectError('?transport=polling', 5);
  assert.equal(j.message, 'Unsupported protocol version');
});

test('EIO=3, EIO=5 and non-numeric EIO -> 400 code 5', { timeout: 10_000 }, async () => {
  await expectError('?EIO=3&transport=polling', 5);
  await expectError('?EIO=5&transport=polling', 5);
  await expectError('?EIO=abc&transport=polling', 5);
});

test('unknown or missing transport -> 400 code 0', { timeout: 10_000 }, async () => {
  const j = await expectError('?EIO=4&transport=carrier-pigeon', 0);
  assert.equal(j.message, 'Transport unknown');
  await expectError('?EIO=4', 0);
});

test('unknown sid -> 400 code 1 (GET and POST)', { timeout: 10_000 }, async () => {
  const j = await expectError('?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA', 1);
  assert.equal(j.message, 'Session ID unknown');
  await expectError('?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA', 1, { method: 'POST', body: '4hello' });
});

test('POST without sid -> 400 code 2 (bad handshake method)', { timeout: 10_000 }, async () => {
  const j = await expectError('?EIO=4&transport=polling', 2, { method: 'POST', body: '4hello' });
  assert.equal(j.message, 'Bad handshake method');
});

test('polling handshake: 0{...} with exactly the five keys', { timeout: 10_000 }, async () => {
  const { body, open } = await handshake();
  assert.ok(body.startsWith('0{'), `body starts with 0{: ${JSON.stringify(body.slice(0, 40))}`);
  assert.deepEqual(Object.keys(open).sort(), ['maxPayload', 'pingInterval', 'pingTimeout', 'sid', 'upgrades']);
  assert.deepEqual(open.upgrades, ['websocket']);
  assert.equal(open.pingInterval, 25000, 'default --ping-interval');
  assert.equal(open.pingTimeout, 20000, 'default --ping-timeout');
  assert.equal(open.maxPayload, 1000000, 'default --max-payload');
  assert.equal(typeof open.sid, 'string');
  assert.match(open.sid, /^[A-Za-z0-9_-]{20,}$/, 'sid is >= 20 chars of base64url');
});

test('handshakes get distinct sids', { timeout: 10_000 }, async () => {
  const sids = new Set();
  for (let i = 0; i < 10; i++) sids.add((await handshake()).open.sid);
  assert.equal(sids.size, 10);
});

test('a session closed by the client (POST "1") is then unknown', { timeout: 10_000 }, async () => {
  const { open } = await handshake();
  const q = `?EIO=4&transport=polling&sid=${open.sid}`;
  const { res, body } = await req(q, { method: 'POST', body: '1' });
  assert.equal(res.status, 200, body);
  assert.equal(body, 'ok');
  await waitFor(async () => {
    try {
      const r = await req(q, { signal: AbortSignal.timeout(1000) });
      return r.res.status === 400 && JSON.parse(r.body).code === 1;
    } catch {
      return false;
    }
  }, { timeoutMs: 2500, what: 'the closed sid to get 400 code 1' });
});

test('an invalid Engine.IO packet ends the session', { timeout: 10_000 }, async () => {
  const { open } = await handshake();
  const q = `?EIO=4&transport=polling&sid=${open.sid}`;
  const r = await req(q, { method: 'POST', body: 'abc' });
  assert.ok([200, 400].includes(r.res.status), `POST of an invalid packet -> ${r.res.status} ${r.body}`);
  await waitFor(async () => {
    try {
      const g = await req(q, { signal: AbortSignal.timeout(1000) });
      return g.res.status === 400;
    } catch {
      return false;
    }
  }, { timeoutMs: 2500, what: 'the sid to be rejected after an invalid packet' });
});

test('two concurrent GETs on one sid: one answers close (1), the other 400, session gone', { timeout: 15_000 }, async () => {
  const { open } = await handshake();
  const q = `?EIO=4&transport=polling&sid=${open.sid}`;
  // Whichever GET the server sees first is the pending long poll; the second is the offender.
  const [r1, r2] = await Promise.all([
    req(q, { signal: AbortSignal.timeout(5000) }),
    req(q, { signal: AbortSignal.timeout(5000) }),
  ]);
  const got = [r1, r2].map((r) => `${r.res.status} ${r.body}`).sort();
  assert.equal(got.length, 2);
  assert.ok(got[0].startsWith('200 ') && got[0].slice(4) === '1', `one GET answers the close packet: ${JSON.stringify(got)}`);
  assert.ok(got[1].startsWith('400 '), `the other GET gets 400: ${JSON.stringify(got)}`);
  const after = await req(q, { signal: AbortSignal.timeout(2000) });
  assert.equal(after.res.status, 400, `the session is closed: ${after.body}`);
});

test('the server is still healthy after all these errors', { timeout: 10_000 }, async () => {
  const res = await fetch(`${srv.url}/health`, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: 'ok' });
  const ready = await fetch(`${srv.url}/ready`, { signal: AbortSignal.timeout(5000) });
  assert.equal(ready.status, 200);
  assert.deepEqual(await ready.json(), { status: 'ready', redis: 'off', kafka: 'off' });
  await handshake();
});
