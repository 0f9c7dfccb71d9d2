// Property: `typing:start`/`typing:stop` from a socket in `conversation:<id>` are relayed as
// `{conversationId, userId}` to the room except the typing user's own sockets; starts are relayed
// at most once per user and conversation every 2 s; an indicator stops by itself (relayed
// `typing:stop`) 6 s after its last refresh and when its socket disconnects; a socket outside the
// room is refused `forbidden`.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { platformSuite, barrier, request, once, delay } from './fixture.mjs';

const { api, connectAs } = platformSuite('typing-secret', 'typing-key', ['--recovery-window', '0']);

/** Sockets of users `a` (two) and `b` (two) joined to conversation:<conv>, plus an outsider. */
async function setup(conv, prefix) {
  const claims = { conversations: [conv] };
  const [a1, a2, b1, b2] = await Promise.all(['a', 'a', 'b', 'b'].map((u) => connectAs(`${prefix}-${u}`, claims)));
  for (const s of [a1, a2, b1, b2]) assert.deepEqual(await request(s.socket, 'room:join', { room: `conversation:${conv}` }), { ok: true });
  const outsider = await connectAs(`${prefix}-x`, {});
  return { a1, a2, b1, b2, outsider, ua: `${prefix}-a`, ub: `${prefix}-b` };
}

describe('typing indicators', { concurrency: true }, () => {
  it('relays start/stop to the room except the user\'s own sockets, at most one start per 2 s', { timeout: 15_000 }, async () => {
    const { a1, a2, b1, b2, ua } = await setup('ty1', 'ty1');
    assert.deepEqual(await request(a1.socket, 'typing:start', { conversationId: 'ty1' }), { ok: true });
    for (const b of [b1, b2]) {
      const [ev] = await b.wait('typing:start');
      assert.deepEqual(ev, { conversationId: 'ty1', userId: ua });
    }
    // A refresh within 2 s (from either of A's sockets) is acked but not relayed again.
    assert.deepEqual(await request(a1.socket, 'typing:start', { conversationId: 'ty1' }), { ok: true });
    assert.deepEqual(await request(a2.socket, 'typing:start', { conversationId: 'ty1' }), { ok: true });
    assert.deepEqual(await request(a1.socket, 'typing:stop', { conversationId: 'ty1' }), { ok: true });
    for (const b of [b1, b2]) {
      const [ev] = await b.wait('typing:stop');
      assert.deepEqual(ev, { conversationId: 'ty1', userId: ua });
    }
    await barrier(api, [a1, a2, b1, b2]);
    assert.equal(b1.count('typing:start'), 1, 'throttled to one relay');
    assert.equal(b2.count('typing:start'), 1);
    assert.equal(b1.count('typing:stop'), 1);
    for (const a of [a1, a2]) {
      assert.equal(a.count('typing:start') + a.count('typing:stop'), 0, 'the typing user\'s own sockets are not told');
    }
    // A stop without a running indicator relays nothing.
    assert.deepEqual(await request(a1.socket, 'typing:stop', { conversationId: 'ty1' }), { ok: true });
    await barrier(api, [b1]);
    assert.equal(b1.count('typing:stop'), 1);
  });

  it('a start after the 2 s throttle window is relayed again', { timeout: 15_000 }, async () => {
    const { a1, b1, ua } = await setup('ty2', 'ty2');
    await request(a1.socket, 'typing:start', { conversationId: 'ty2' });
    await b1.wait('typing:start');
    await delay(2100); // time is the subject
    const from = b1.mark();
    assert.deepEqual(await request(a1.socket, 'typing:start', { conversationId: 'ty2' }), { ok: true });
    const [ev] = await b1.wait('typing:start', () => true, { from });
    assert.deepEqual(ev, { conversationId: 'ty2', userId: ua });
    await request(a1.socket, 'typing:stop', { conversationId: 'ty2' });
    await b1.wait('typing:stop');
  });

  it('stops by itself 6 s after the last start', { timeout: 15_000 }, async () => {
    const { a1, b1, ua } = await setup('ty3', 'ty3');
    const t0 = Date.now();
    await request(a1.socket, 'typing:start', { conversationId: 'ty3' });
    await b1.wait('typing:start');
    const [ev] = await b1.wait('typing:stop', () => true, { timeoutMs: 7_500 });
    const elapsed = Date.now() - t0;
    assert.deepEqual(ev, { conversationId: 'ty3', userId: ua });
    assert.ok(elapsed >= 5_800 && elapsed <= 7_500, `auto-stop after ${elapsed} ms (want ~6000)`);
  });

  it('stops when the typing socket disconnects', { timeout: 15_000 }, async () => {
    const { a1, b1, b2, ua } = await setup('ty4', 'ty4');
    await request(a1.socket, 'typing:start', { conversationId: 'ty4' });
    await b1.wait('typing:start');
    const gone = once(a1.socket, 'disconnect');
    a1.socket.close();
    await gone;
    for (const b of [b1, b2]) {
      const [ev] = await b.wait('typing:stop', () => true, { timeoutMs: 3_000 });
      assert.deepEqual(ev, { conversationId: 'ty4', userId: ua });
    }
  });

  it('refuses sockets outside the conversation and bad payloads; nothing is relayed', { timeout: 15_000 }, async () => {
    const { b1, outsider } = await setup('ty5', 'ty5');
    let r = await request(outsider.socket, 'typing:start', { conversationId: 'ty5' });
    assert.deepEqual([r.ok, r.error], [false, 'forbidden'], JSON.stringify(r));
    r = await request(outsider.socket, 'typing:stop', { conversationId: 'ty5' });
    assert.deepEqual([r.ok, r.error], [false, 'forbidden']);
    for (const bad of [{}, { conversationId: '' }, { conversationId: 'a b' }, { conversationId: {} }, { conversationId: 'x'.repeat(129) }]) {
      r = await request(b1.socket, 'typing:start', bad);
      assert.deepEqual([r.ok, r.error], [false, 'invalid_payload'], `${JSON.stringify(bad)}: ${JSON.stringify(r)}`);
    }
    await barrier(api, [b1]);
    assert.equal(b1.count('typing:start'), 0);
  });
});
