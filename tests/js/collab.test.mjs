// Property: collaboration events need the socket to be in the room: `document:edit` (JSON or
// binary `ops`) is acked with a per-document sequence number and relayed as
// `{docId, seq, ops, userId}` to the other sockets of `document:<id>` in `seq` order, binary ops
// byte for byte; `document:cursor` (≤1 KiB) and `whiteboard:stroke` (JSON or binary) are relayed
// with `userId` to the others; `file:shared` is validated (https:// or /relative url, name,
// size limit, type/subtype mime), relayed with `userId` and forwarded keyed by the room id.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { platformSuite, barrier, request, refused } from './fixture.mjs';

const MAX_FILE = 1000;
const suite = platformSuite('collab-secret', 'collab-key', ['--recovery-window', '0', '--max-file-size', String(MAX_FILE)]);
const { api, connectAs } = suite;
let a1; let a2; let b1; let c1; let x;

before(async () => {
  await suite.ready();
  const claims = { documents: ['d1', 'd2', 'd3'], groups: ['wb'] };
  const con = (u, c = claims) => connectAs(u, c);
  [a1, a2, b1, c1, x] = await Promise.all([con('co-a'), con('co-a'), con('co-b'), con('co-c'), con('co-x', {})]);
  for (const s of [a1, a2, b1, c1]) {
    for (const room of ['document:d1', 'document:d2', 'document:d3', 'group:wb']) {
      assert.deepEqual(await request(s.socket, 'room:join', { room }), { ok: true }, room);
    }
  }
});
const bytes = (v) => (v instanceof ArrayBuffer ? Buffer.from(v) : Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength));
const isBinary = (v) => Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v);

test('document:edit with binary ops round-trips byte for byte; JSON ops as is', { timeout: 15_000 }, async () => {
  const update = Buffer.from([0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff, 0x00, 0x42]);
  const ack = await request(a1.socket, 'document:edit', { docId: 'd1', ops: update });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  assert.equal(ack.seq, 1);
  for (const s of [a2, b1, c1]) {
    const [ev] = await s.wait('document:edit', (e) => e.docId === 'd1' && e.seq === 1);
    assert.deepEqual(Object.keys(ev).sort(), ['docId', 'ops', 'seq', 'userId']);
    assert.equal(ev.userId, 'co-a');
    assert.ok(isBinary(ev.ops), `ops arrived as binary, got ${typeof ev.ops} ${JSON.stringify(ev.ops)}`);
    assert.ok(bytes(ev.ops).equals(update), `bytes differ: ${bytes(ev.ops).toString('hex')}`);
  }
  const json = [{ insert: 'Hello <script>', attributes: { bold: true } }, { retain: 5 }];
  const ack2 = await request(b1.socket, 'document:edit', { docId: 'd1', ops: json });
  assert.deepEqual(ack2, { ok: true, seq: 2 });
  assert.deepEqual(await a1.wait('document:edit', (e) => e.seq === 2), [{ docId: 'd1', seq: 2, ops: json, userId: 'co-b' }]);
  await barrier(api, [a1, b1, x]);
  assert.equal(a1.count('document:edit', (e) => e.seq === 1), 0, 'not echoed to the sending socket');
  assert.equal(b1.count('document:edit', (e) => e.seq === 2), 0);
  assert.equal(x.count('document:edit'), 0);
});

test('edits get one sequence per document and every socket sees them in seq order', { timeout: 20_000 }, async () => {
  const N = 30;
  const sends = [];
  for (let i = 0; i < N; i++) {
    // Interleave two writers on d2 and one on d3, without waiting for acks.
    sends.push(request(a1.socket, 'document:edit', { docId: 'd2', ops: { i, by: 'a' } }).then((r) => ['a1', 'd2', r]));
    sends.push(request(b1.socket, 'document:edit', { docId: 'd2', ops: Buffer.from([i, 1]) }).then((r) => ['b1', 'd2', r]));
    sends.push(request(c1.socket, 'document:edit', { docId: 'd3', ops: { i, by: 'c' } }).then((r) => ['c1', 'd3', r]));
  }
  const acks = await Promise.all(sends);
  for (const [, , r] of acks) assert.equal(r.ok, true, JSON.stringify(r));
  const seqs = (doc) => acks.filter(([, d]) => d === doc).map(([, , r]) => r.seq).sort((p, q) => p - q);
  assert.deepEqual(seqs('d2'), Array.from({ length: 2 * N }, (_, i) => i + 1), 'd2 seqs are 1..2N, each once');
  assert.deepEqual(seqs('d3'), Array.from({ length: N }, (_, i) => i + 1), 'd3 has its own sequence');
  const ownSeqs = (who, doc) => new Set(acks.filter(([w, d]) => w === who && d === doc).map(([, , r]) => r.seq));

  await barrier(api, [a1, a2, b1, c1]);
  for (const [name, s] of [['a1', a1], ['a2', a2], ['b1', b1], ['c1', c1]]) {
    for (const doc of ['d2', 'd3']) {
      const got = s.all('document:edit').map(([e]) => e).filter((e) => e.docId === doc).map((e) => e.seq);
      const own = ownSeqs(name, doc);
      const total = doc === 'd2' ? 2 * N : N;
      const want = Array.from({ length: total }, (_, i) => i + 1).filter((q) => !own.has(q));
      assert.deepEqual(got, want, `${name} sees ${doc} in seq order, all but its own edits`);
    }
  }
  // Binary and JSON ops stay attached to the right seq.
  for (const [e] of a2.all('document:edit').filter(([e]) => e.docId === 'd2')) {
    if (ownSeqs('b1', 'd2').has(e.seq)) assert.ok(isBinary(e.ops), `seq ${e.seq} from b1 is binary`);
    else assert.equal(e.ops.by, 'a');
  }
});

test('document:edit and document:cursor refusals', { timeout: 15_000 }, async () => {
  refused(await request(x.socket, 'document:edit', { docId: 'd1', ops: [1] }), 'forbidden', 'edit outside the room');
  refused(await request(a1.socket, 'document:edit', { docId: 'd1' }), 'invalid_payload', 'no ops');
  refused(await request(a1.socket, 'document:edit', { docId: 'd1', ops: null }), 'invalid_payload', 'null ops');
  refused(await request(a1.socket, 'document:edit', { docId: 'bad id', ops: [1] }), 'invalid_payload', 'bad docId');
  refused(await request(x.socket, 'document:cursor', { docId: 'd1', cursor: { line: 1 } }), 'forbidden', 'cursor outside the room');
  refused(await request(a1.socket, 'document:cursor', { docId: 'd1', cursor: { blob: 'x'.repeat(1100) } }), 'invalid_payload', 'cursor over 1 KiB');
  await barrier(api, [b1]);
  assert.equal(b1.count('document:cursor'), 0);
});

test('document:cursor is relayed with userId to the other sockets', { timeout: 15_000 }, async () => {
  const cursor = { anchor: 3, head: 7, name: 'A' };
  assert.deepEqual(await request(a1.socket, 'document:cursor', { docId: 'd1', cursor }), { ok: true });
  for (const s of [a2, b1, c1]) {
    assert.deepEqual(await s.wait('document:cursor'), [{ docId: 'd1', cursor, userId: 'co-a' }]);
  }
  await barrier(api, [a1]);
  assert.equal(a1.count('document:cursor'), 0);
});

test('whiteboard:stroke relays JSON and binary strokes to the room except the sender', { timeout: 15_000 }, async () => {
  const stroke = { points: [[0, 0], [10, 12]], color: '#f00', width: 2 };
  assert.deepEqual(await request(b1.socket, 'whiteboard:stroke', { room: 'group:wb', stroke }), { ok: true });
  for (const s of [a1, a2, c1]) assert.deepEqual(await s.wait('whiteboard:stroke'), [{ room: 'group:wb', stroke, userId: 'co-b' }]);
  const bin = Buffer.from(Float32Array.from([1.5, -2.25, 3]).buffer);
  assert.deepEqual(await request(b1.socket, 'whiteboard:stroke', { room: 'document:d1', stroke: bin }), { ok: true });
  const [ev] = await c1.wait('whiteboard:stroke', (e) => e.room === 'document:d1');
  assert.ok(isBinary(ev.stroke));
  assert.ok(bytes(ev.stroke).equals(bin));
  refused(await request(x.socket, 'whiteboard:stroke', { room: 'group:wb', stroke }), 'forbidden', 'stroke outside the room');
  refused(await request(a1.socket, 'whiteboard:stroke', { room: 'nowhere', stroke }), 'invalid_payload', 'unknown room kind');
  refused(await request(a1.socket, 'whiteboard:stroke', { room: 'group:wb' }), 'invalid_payload', 'no stroke');
  await barrier(api, [b1, a1]);
  assert.equal(b1.count('whiteboard:stroke'), 0, 'not echoed to the sender');
  assert.equal(a1.count('whiteboard:stroke'), 2);
});

test('file:shared: valid files are relayed with userId and forwarded keyed by the room id', { timeout: 15_000 }, async () => {
  const start = (await api.outbox(0, 10000)).json.next;
  const file = { url: 'https://files.example.com/a/report.pdf?sig=1', name: 'report <1>.pdf', size: MAX_FILE, mime: 'application/pdf' };
  assert.deepEqual(await request(a1.socket, 'file:shared', { room: 'document:d1', ...file }), { ok: true });
  const expected = { ...file, room: 'document:d1', userId: 'co-a' };
  for (const s of [a2, b1, c1]) assert.deepEqual(await s.wait('file:shared'), [expected]);
  const rel = { url: '/uploads/x.png', name: 'x.png', size: 0, mime: 'image/png' };
  assert.deepEqual(await request(b1.socket, 'file:shared', { room: 'group:wb', ...rel }), { ok: true });
  await a1.wait('file:shared', (f) => f.url === rel.url);
  await barrier(api, [a1]);
  assert.equal(a1.count('file:shared', (f) => f.url === file.url), 0, 'not echoed to the sending socket');
  const ob = (await api.outbox(start, 10000)).json.events.filter((e) => e.event === 'file:shared');
  assert.deepEqual(ob.map((e) => [e.key, e.userId]), [['d1', 'co-a'], ['wb', 'co-b']]);
  assert.deepEqual(ob[0].data, expected);
});

test('file:shared validation: url scheme, name, size limit, mime, room', { timeout: 15_000 }, async () => {
  const ok = { room: 'document:d1', url: 'https://x.example/f', name: 'f', size: 1, mime: 'text/plain' };
  const bad = [
    ['http url', { url: 'http://x.example/f' }],
    ['javascript url', { url: 'javascript:alert(1)' }],
    ['data url', { url: 'data:text/html,<script>alert(1)</script>' }],
    ['protocol-relative url', { url: '//evil.example/f' }],
    ['url with spaces', { url: 'https://x.example/a b' }],
    ['url too long', { url: `https://x.example/${'a'.repeat(2048)}` }],
    ['no url', { url: undefined }],
    ['empty name', { name: '' }],
    ['name too long', { name: 'n'.repeat(256) }],
    ['negative size', { size: -1 }],
    ['fractional size', { size: 1.5 }],
    ['size as string', { size: '1' }],
    ['size over the limit', { size: MAX_FILE + 1 }],
    ['mime without subtype', { mime: 'text' }],
    ['mime with parameters', { mime: 'text/html; charset=utf-8' }],
    ['mime empty type', { mime: '/plain' }],
    ['unknown room kind', { room: 'nowhere:1' }],
  ];
  for (const [what, patch] of bad) {
    const p = { ...ok, ...patch };
    refused(await request(a1.socket, 'file:shared', p), 'invalid_payload', what);
  }
  refused(await request(x.socket, 'file:shared', ok), 'forbidden', 'not in the room');
  await barrier(api, [b1]);
  assert.equal(b1.count('file:shared', (f) => f.url.startsWith('https://x.example')), 0);
});

test('file:shared refuses a /\\host url (browsers resolve it like //host, i.e. off-site)', { timeout: 15_000 }, async () => {
  // WHATWG URL parsing treats "\" as "/" in http(s) URLs: new URL('/\\evil.example/x', 'https://app/')
  // is https://evil.example/x, so this is not a relative /path of the platform.
  assert.equal(new URL('/\\evil.example/x', 'https://app.example/').host, 'evil.example');
  const r = await request(a1.socket, 'file:shared', { room: 'document:d1', url: '/\\evil.example/x', name: 'x', size: 1, mime: 'text/plain' });
  refused(r, 'invalid_payload', 'backslash host url');
});
