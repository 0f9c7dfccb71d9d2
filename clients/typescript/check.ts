// Compile-time check of events.d.ts with socket.io-client's types (never run):
//   npx -y -p typescript@5 tsc --noEmit -p clients/typescript
// Each `@ts-expect-error` line must fail to type-check; tsc reports an unused one as an error.
import { io, Socket } from 'socket.io-client';
import type {
  ClientToServerEvents,
  ServerToClientEvents,
  WithoutAcks,
  AckResponse,
  MessageNewResult,
  RelayedMessage,
  CallUpdate,
  QuizUpdate,
  DiagnosticsClientToServerEvents,
} from './events';

declare const token: string;
const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io('http://localhost:3001', {
  transports: ['websocket'],
  auth: { token },
});

// --- listening ----------------------------------------------------------------------------
socket.on('message:new', (m, offset) => {
  const o: string | undefined = offset;
  if ('senderId' in m) {
    const relayed = m as RelayedMessage;
    const text: string = relayed.text;
    const created: number = relayed.createdAt;
    const client: string | null = relayed.clientId;
    void text; void created; void client;
  }
  void o;
});
socket.on('user:online', (p) => { const n: null = p.lastSeen; void n; });
socket.on('user:offline', (p) => { const t: number = p.lastSeen; void t; });
socket.on('user:presence', (states) => {
  for (const [id, s] of Object.entries(states)) { const online: boolean = s.online; void id; void online; }
});
socket.on('room:removed', ({ room, reason }) => { const r: 'revoked' = reason; void room; void r; });
socket.on('typing:start', ({ conversationId, userId }) => { void conversationId; void userId; });
socket.on('call:update', (u: CallUpdate) => {
  switch (u.state) {
    case 'active': { const who: string[] = u.participants; void who; break; }
    case 'ended': { const by: string | null = u.userId; void by; break; }
    case 'rejected':
    case 'missed':
      break;
    default: { const never: never = u; void never; }
  }
});
socket.on('quiz:update', (u: QuizUpdate) => {
  if ('counts' in u) { const c: Record<string, number> = u.counts; void c; } else { const s: 'open' | 'closed' = u.state; void s; }
});
socket.on('document:edit', (e) => {
  const seq: number = e.seq;
  if (e.ops instanceof ArrayBuffer || ArrayBuffer.isView(e.ops)) { /* a binary update, e.g. Yjs */ }
  void seq;
});
socket.on('call:signal', ({ from, payload }) => { void from; void payload; });
socket.on('error', ({ event, error, message }) => { void event; void error; void message; });
socket.on('class:update', ({ viewers }) => { const n: number = viewers; void n; });
socket.on('file:shared', (f) => { const size: number = f.size; const mime: string = f.mime; void size; void mime; });
// @ts-expect-error not an event of the contract
socket.on('message:nope', () => {});
// @ts-expect-error wrong payload shape for the listener
socket.on('typing:stop', (p: { nope: number }) => { void p; });

// --- emitting with acks --------------------------------------------------------------------
socket.emit('room:join', { room: 'conversation:c1' }, (res) => {
  if (!res.ok) { const code = res.error; void code; }
});
socket.emit('message:new', { conversationId: 'c1', text: 'hi', clientId: 'local-1', eventId: 'e-1' }, (res: AckResponse<MessageNewResult>) => {
  if (res.ok && !('duplicate' in res)) { const id: string = res.id; const at: number = res.createdAt; void id; void at; }
});
socket.timeout(5000).emit('document:edit', { docId: 'd1', ops: new Uint8Array([1, 2, 3]) }, (err, res) => {
  if (err) return;
  if (res.ok && 'seq' in res) { const seq: number = res.seq; void seq; }
});

async function withAcks(): Promise<void> {
  const sub = await socket.emitWithAck('presence:subscribe', { userIds: ['u1', 2] });
  if (sub.ok && 'presence' in sub) { const s = sub.presence['u1']; void s; }
  const joined = await socket.emitWithAck('class:join', { classId: 'k1' });
  if (joined.ok && 'viewers' in joined) { const v: number = joined.viewers; void v; }
  await socket.emitWithAck('call:invite', { callId: 'call-1', to: ['u2', 'u3'], kind: 'video' });
  await socket.emitWithAck('call:signal', { callId: 'call-1', to: 'u2', payload: { type: 'offer', sdp: 'v=0' } });
  await socket.emitWithAck('file:shared', { room: 'group:g1', url: 'https://cdn/x.png', name: 'x.png', size: 10, mime: 'image/png' });
  await socket.emitWithAck('notification:read', { all: true });
  await socket.emitWithAck('notification:read', { notificationId: 'n1' });
  await socket.emitWithAck('quiz:answer', { quizId: 'q', questionId: 1, answer: 'A' });
  await socket.emitWithAck('reaction:add', { conversationId: 7, messageId: 'm', emoji: '👍' });
  // @ts-expect-error `kind` must be voice, video or screen
  await socket.emitWithAck('call:invite', { callId: 'c', to: 'u2', kind: 'fax' });
  // @ts-expect-error `text` is required
  await socket.emitWithAck('message:new', { conversationId: 'c1' });
  // @ts-expect-error not a room kind of the contract
  await socket.emitWithAck('room:join', { room: 'admin:1' });
  // @ts-expect-error `{all: true}` or a notificationId, not both
  await socket.emitWithAck('notification:read', { all: true, notificationId: 'n1' });
  // @ts-expect-error unknown client event
  await socket.emitWithAck('message:nope', {});
}
void withAcks;

// --- fire and forget -----------------------------------------------------------------------
const fast = socket as unknown as Socket<ServerToClientEvents, WithoutAcks<ClientToServerEvents>>;
fast.volatile.emit('document:cursor', { docId: 'd1', cursor: { anchor: 1, head: 2 } });
fast.emit('typing:start', { conversationId: 'c1' });
// @ts-expect-error no ack callback in this map
fast.emit('typing:stop', { conversationId: 'c1' }, () => {});

// --- diagnostics ---------------------------------------------------------------------------
const diag: Socket<ServerToClientEvents, DiagnosticsClientToServerEvents> = io('http://localhost:3001');
diag.emit('echo', { hello: ['world'] }, (v) => { void v; });
