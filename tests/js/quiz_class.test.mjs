// Property: live quizzes: `quiz:update` from the API is delivered as is and opens/closes a
// question; `quiz:answer` is accepted once per user per open question (refused `closed` when no
// such question is open), forwarded keyed by the quiz id, and the answer counts are broadcast as
// `quiz:update {quizId, questionId, counts}` to `quiz:<id>` at most every 500 ms. Live classes:
// `class:join` needs a grant and acks the viewer count, `class:update {classId, viewers}` follows
// changes at most once a second, `class:message` is relayed to the class and forwarded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { platformSuite, barrier, request, refused } from './fixture.mjs';

const { api, connectAs } = platformSuite('quiz-secret', 'quiz-key', ['--recovery-window', '0']);
const sum = (counts) => Object.values(counts).reduce((p, q) => p + q, 0);

async function students(quizId, n, prefix) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const s = await connectAs(`${prefix}-${i}`, { quizzes: [quizId] });
    assert.deepEqual(await request(s.socket, 'room:join', { room: `quiz:${quizId}` }), { ok: true });
    out.push(s);
  }
  return out;
}

test('quiz: answers only while a question is open, once per user; counts batched; forwarded', { timeout: 20_000 }, async () => {
  const [s0, s1, s2] = await students('qz1', 3, 'qz1');
  const s0b = await connectAs('qz1-0', { quizzes: ['qz1'] }); // a second socket of s0's user
  assert.deepEqual(await request(s0b.socket, 'room:join', { room: 'quiz:qz1' }), { ok: true });
  const outsider = await connectAs('qz1-x', {});

  refused(await request(s0.socket, 'quiz:answer', { quizId: 'qz1', questionId: 'q1', answer: 'A' }), 'closed', 'before the question opens');

  const open = { quizId: 'qz1', questionId: 'q1', state: 'open', text: 'Pick one', options: ['A', 'B'] };
  assert.equal(await api.emit({ event: 'quiz:update', data: open, rooms: ['quiz:qz1'] }), 4);
  for (const s of [s0, s1, s2]) assert.deepEqual(await s.wait('quiz:update', (u) => u.state === 'open'), [open], 'delivered as is');

  const start = (await api.outbox(0, 10000)).json.next;
  refused(await request(s0.socket, 'quiz:answer', { quizId: 'qz1', questionId: 'q-other', answer: 'A' }), 'closed', 'another question');
  assert.deepEqual(await request(s0.socket, 'quiz:answer', { quizId: 'qz1', questionId: 'q1', answer: 'A' }), { ok: true });
  assert.deepEqual(await request(s1.socket, 'quiz:answer', { quizId: 'qz1', questionId: 'q1', answer: 'A' }), { ok: true });
  assert.deepEqual(await request(s2.socket, 'quiz:answer', { quizId: 'qz1', questionId: 'q1', answer: 'B' }), { ok: true });
  const again = await request(s0b.socket, 'quiz:answer', { quizId: 'qz1', questionId: 'q1', answer: 'B' });
  assert.equal(again.ok, false, `a second answer of the same user is refused: ${JSON.stringify(again)}`);
  refused(await request(outsider.socket, 'quiz:answer', { quizId: 'qz1', questionId: 'q1', answer: 'A' }), 'forbidden', 'not in the quiz room');
  refused(await request(s1.socket, 'quiz:answer', { quizId: 'qz1', questionId: 'q1', answer: 'x'.repeat(65) }), 'invalid_payload', 'answer over 64');
  refused(await request(s1.socket, 'quiz:answer', { quizId: 'qz1', questionId: 'q1' }), 'invalid_payload', 'no answer');

  // Counts: {quizId, questionId, counts}, everything answered within the window in few updates.
  const [final] = await s2.wait('quiz:update', (u) => u.counts !== undefined && sum(u.counts) === 3, { timeoutMs: 3000 });
  assert.deepEqual(final, { quizId: 'qz1', questionId: 'q1', counts: { A: 2, B: 1 } });
  for (const s of [s0, s1, s0b]) await s.wait('quiz:update', (u) => u.counts && sum(u.counts) === 3);

  const fwd = (await api.outbox(start, 10000)).json.events.filter((e) => e.event === 'quiz:answer');
  assert.deepEqual(fwd.map((e) => [e.key, e.userId, e.data.answer]), [['qz1', 'qz1-0', 'A'], ['qz1', 'qz1-1', 'A'], ['qz1', 'qz1-2', 'B']]);
  assert.deepEqual(fwd[0].data, { quizId: 'qz1', questionId: 'q1', answer: 'A', userId: 'qz1-0' });

  // Closing the question: answers are refused `closed`.
  const close = { quizId: 'qz1', questionId: 'q1', state: 'closed' };
  assert.equal(await api.emit({ event: 'quiz:update', data: close, rooms: ['quiz:qz1'] }), 4);
  await s0.wait('quiz:update', (u) => u.state === 'closed');
  refused(await request(s0b.socket, 'quiz:answer', { quizId: 'qz1', questionId: 'q1', answer: 'A' }), 'closed', 'after close');
  await barrier(api, [outsider]);
  assert.equal(outsider.count('quiz:update'), 0);
});

test('quiz: count broadcasts are at least 500 ms apart', { timeout: 20_000 }, async () => {
  const ss = await students('qz2', 4, 'qz2');
  await api.emit({ event: 'quiz:update', data: { quizId: 'qz2', questionId: 'q1', state: 'open' }, rooms: ['quiz:qz2'] });
  await ss[0].wait('quiz:update', (u) => u.state === 'open');
  const arrivals = [];
  ss[0].socket.on('quiz:update', (u) => { if (u.counts) arrivals.push([Date.now(), sum(u.counts)]); });
  for (const s of ss) {
    assert.deepEqual(await request(s.socket, 'quiz:answer', { quizId: 'qz2', questionId: 'q1', answer: 'C' }), { ok: true });
  }
  await ss[0].wait('quiz:update', (u) => u.counts && sum(u.counts) === 4, { timeoutMs: 5000 });
  for (let i = 1; i < arrivals.length; i++) {
    const gap = arrivals[i][0] - arrivals[i - 1][0];
    assert.ok(gap >= 450, `count updates ${gap} ms apart (want >= 500)`);
  }
  assert.ok(arrivals.length <= 4);
});

test('quiz: the counts flushed after a question closes still name that question', { timeout: 15_000 }, async () => {
  const [s] = await students('qz3', 1, 'qz3');
  await api.emit({ event: 'quiz:update', data: { quizId: 'qz3', questionId: 'q7', state: 'open' }, rooms: ['quiz:qz3'] });
  await s.wait('quiz:update', (u) => u.state === 'open');
  assert.deepEqual(await request(s.socket, 'quiz:answer', { quizId: 'qz3', questionId: 'q7', answer: 'yes' }), { ok: true });
  // Closed before the 500 ms flush: the pending counts still go out, for question q7.
  await api.emit({ event: 'quiz:update', data: { quizId: 'qz3', questionId: 'q7', state: 'closed' }, rooms: ['quiz:qz3'] });
  const [u] = await s.wait('quiz:update', (x) => x.counts !== undefined, { timeoutMs: 3000 });
  assert.deepEqual(u, { quizId: 'qz3', questionId: 'q7', counts: { yes: 1 } });
});

test('quiz: opening the next question does not lose the pending counts of the previous one', { timeout: 15_000 }, async () => {
  const [s] = await students('qz4', 1, 'qz4');
  await api.emit({ event: 'quiz:update', data: { quizId: 'qz4', questionId: 'q1', state: 'open' }, rooms: ['quiz:qz4'] });
  await s.wait('quiz:update', (u) => u.state === 'open' && u.questionId === 'q1');
  assert.deepEqual(await request(s.socket, 'quiz:answer', { quizId: 'qz4', questionId: 'q1', answer: 'first' }), { ok: true });
  // The host moves on before the 500 ms flush.
  await api.emit({ event: 'quiz:update', data: { quizId: 'qz4', questionId: 'q2', state: 'open' }, rooms: ['quiz:qz4'] });
  assert.deepEqual(await request(s.socket, 'quiz:answer', { quizId: 'qz4', questionId: 'q2', answer: 'second' }), { ok: true });
  const [q2] = await s.wait('quiz:update', (x) => x.counts !== undefined && x.questionId === 'q2', { timeoutMs: 3000 });
  assert.deepEqual(q2.counts, { second: 1 });
  await barrier(api, [s]);
  const q1 = s.all('quiz:update').map(([x]) => x).filter((x) => x.counts !== undefined && x.questionId === 'q1');
  assert.deepEqual(q1, [{ quizId: 'qz4', questionId: 'q1', counts: { first: 1 } }], 'the answer to q1 is counted and broadcast for q1');
});

test('class: join needs a grant, acks viewers; class:update follows at most once a second', { timeout: 20_000 }, async () => {
  const claims = { classes: ['k1'] };
  const t1 = await connectAs('cls-t', claims);
  const u1 = await connectAs('cls-u', claims);
  const u2 = await connectAs('cls-u', claims);
  const nogrant = await connectAs('cls-x', {});

  refused(await request(nogrant.socket, 'class:join', { classId: 'k1' }), 'forbidden', 'class without grant');
  refused(await request(t1.socket, 'class:join', {}), 'invalid_payload', 'no classId');
  assert.deepEqual(await request(t1.socket, 'class:join', { classId: 'k1' }), { ok: true, viewers: 1 });
  assert.deepEqual(await request(u1.socket, 'class:join', { classId: 'k1' }), { ok: true, viewers: 2 });
  // room:join is another way in.
  assert.deepEqual(await request(u2.socket, 'room:join', { room: 'class:k1' }), { ok: true });

  const [upd] = await t1.wait('class:update', (x) => x.viewers === 3, { timeoutMs: 3000 });
  assert.deepEqual(upd, { classId: 'k1', viewers: 3 });
  await barrier(api, [t1]);
  const updates = t1.all('class:update');
  assert.ok(updates.length <= 2, `three joins within a second are batched: ${JSON.stringify(updates)}`);

  // class:message to the class, forwarded.
  const start = (await api.outbox(0, 10000)).json.next;
  const t0 = Date.now();
  const ack = await request(t1.socket, 'class:message', { classId: 'k1', text: 'Welcome\u0007 all' });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  for (const s of [u1, u2]) {
    const [m] = await s.wait('class:message');
    assert.equal(m.classId, 'k1');
    assert.equal(m.userId, 'cls-t');
    assert.equal(m.text, 'Welcome all', 'control characters removed');
    assert.equal(typeof m.createdAt, 'number');
    assert.ok(Math.abs(m.createdAt - t0) < 60_000);
  }
  refused(await request(t1.socket, 'class:message', { classId: 'k1', text: 'x'.repeat(2001) }), 'invalid_payload', 'text over 2000');
  refused(await request(t1.socket, 'class:message', { classId: 'k1', text: '' }), 'invalid_payload', 'empty text');
  refused(await request(nogrant.socket, 'class:message', { classId: 'k1', text: 'hi' }), 'forbidden', 'not in the class');
  const fwd = (await api.outbox(start, 10000)).json.events.filter((e) => e.event === 'class:message');
  assert.deepEqual(fwd.map((e) => [e.key, e.userId, e.data.text]), [['k1', 'cls-t', 'Welcome all']]);

  // Leaving: the ack, then a viewer count update a second later at most.
  const from = t1.mark();
  const tLeave = Date.now();
  assert.deepEqual(await request(u1.socket, 'class:leave', { classId: 'k1' }), { ok: true });
  const [after1] = await t1.wait('class:update', () => true, { from, timeoutMs: 3000 });
  assert.deepEqual(after1, { classId: 'k1', viewers: 2 });
  assert.ok(Date.now() - tLeave <= 2500, 'the count follows within about a second');
  // A disconnect counts as leaving.
  const from2 = t1.mark();
  u2.socket.close();
  const [after2] = await t1.wait('class:update', () => true, { from: from2, timeoutMs: 3000 });
  assert.deepEqual(after2, { classId: 'k1', viewers: 1 });
  await barrier(api, [nogrant, u1]);
  assert.equal(nogrant.count('class:update') + nogrant.count('class:message'), 0);
  assert.equal(u1.count('class:update', (x) => x.viewers === 1), 0, 'a socket that left gets no more updates');
});
