// Property: with --diagnostics, `echo` acks exactly its arguments, byte-for-byte for binary (Buffers nested anywhere, several attachments), JSON of any shape and unicode, over both websocket and polling.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, connect, emitAck, makeJwt, nowSec, tracker } from './fixture.mjs';

const SECRET = 'echo-test-secret';
const token = makeJwt({ sub: 'echo-user', iat: nowSec(), exp: nowSec() + 3600 }, SECRET);

let srv;
const sockets = tracker();
before(async () => {
  srv = await startServer(['--jwt-secret', SECRET, '--diagnostics']);
});
after(async () => {
  sockets.closeAll();
  await srv?.stop();
});

/** Deep copy turning any ArrayBuffer / typed array into a Buffer, so comparisons are on bytes. */
function normalize(v) {
  if (Buffer.isBuffer(v)) return Buffer.from(v);
  if (v instanceof ArrayBuffer) return Buffer.from(new Uint8Array(v));
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) return v.map(normalize);
  if (v && typeof v === 'object') {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = normalize(x);
    return o;
  }
  return v;
}

async function echo(socket, args) {
  const res = await emitAck(socket, 'echo', args, 10_000);
  assert.deepEqual(normalize(res), normalize(args));
  return res;
}

for (const transport of ['websocket', 'polling']) {
  describe(`echo over ${transport}`, { timeout: 30_000 }, () => {
    let socket;
    before(async () => {
      socket = sockets.add(await connect(srv.url, { transports: [transport], auth: { token } }));
    });

    test('nested JSON', async () => {
      await echo(socket, [{
        a: { b: [1, 2, { c: null, d: [[], {}] }] },
        s: 'x', t: true, f: false, n: -1.5, z: 0,
        big: 9007199254740991, small: 1e-7, exp: 1e21, frac: 0.1,
        keyOrder: { zeta: 1, alpha: 2, mid: 3 },
      }]);
    });

    test('key order of objects is preserved', async () => {
      const [obj] = await echo(socket, [{ zeta: 1, alpha: 2, mid: { y: 1, b: 2 } }]);
      assert.deepEqual(Object.keys(obj), ['zeta', 'alpha', 'mid']);
      assert.deepEqual(Object.keys(obj.mid), ['y', 'b']);
    });

    test('many arguments of mixed types', async () => {
      const args = [];
      for (let i = 0; i < 40; i++) {
        args.push(i % 4 === 0 ? i : i % 4 === 1 ? `s${i}` : i % 4 === 2 ? [i, { i }] : i % 8 === 3);
      }
      args.push(null);
      await echo(socket, args);
    });

    test('no arguments: ack with no arguments', async () => {
      await echo(socket, []);
    });

    test('unicode and control characters', async () => {
      await echo(socket, [
        'héllo wörld 世界 🎉👩‍👩‍👧 \u{1F600}',
        { 'ключ': 'значение', '🔑': '🗝', 'emoji🎈': ['∑', 'ℵ'] },
        'quotes " and \\ backslash / slash',
        'ctrl \u0000 \u0001 \u001e record-separator \u001f \n\r\t \u2028 \u2029',
        'ab\uFFFDcd',
        'long ' + 'ü'.repeat(5000),
      ]);
    });

    test('single Buffer argument', async () => {
      const [buf] = await echo(socket, [Buffer.from([0, 1, 2, 3, 254, 255])]);
      assert.ok(Buffer.isBuffer(buf) || buf instanceof ArrayBuffer, 'binary comes back as binary');
    });

    test('Buffers nested in objects and arrays, several attachments in order', async () => {
      const a = randomBytes(17);
      const b = randomBytes(300);
      const c = Buffer.from('third attachment');
      await echo(socket, [
        'label',
        { file: a, meta: { parts: [b, { inner: c }], name: 'x' } },
        [c, a, 1, 'str'],
        b,
      ]);
    });

    test('binary in several args plus plain JSON args', async () => {
      await echo(socket, [Buffer.from('one'), 2, { three: Buffer.from([3]) }, [Buffer.from('four')], null]);
    });

    test('large Buffer (100 KiB)', async () => {
      await echo(socket, [{ blob: randomBytes(100 * 1024) }]);
    });

    test('empty Buffer', async () => {
      await echo(socket, [Buffer.alloc(0), { e: Buffer.alloc(0) }]);
    });

    test('object that looks like a placeholder is not confused with binary', async () => {
      // A non-binary EVENT (type 2) whose JSON happens to contain {_placeholder, num} is plain
      // data: the reference parser only resolves placeholders in BINARY_EVENT/BINARY_ACK.
      // Own connection, so that a failure here cannot take the other tests' socket down.
      const own = sockets.add(await connect(srv.url, { transports: [transport], auth: { token } }));
      await echo(own, [{ _placeholder: true, num: 0 }, [{ _placeholder: true, num: 3 }]]);
      own.close();
    });

    test('interleaved concurrent acks each get their own args', async () => {
      const jobs = [];
      for (let i = 0; i < 20; i++) {
        const args = i % 2 ? [i, Buffer.from(`bin-${i}`)] : [i, `text-${i}`];
        jobs.push(echo(socket, args));
      }
      await Promise.all(jobs);
    });
  });
}
