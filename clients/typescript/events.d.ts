// The sio-edge event contract (docs/EVENTS.md) as TypeScript declarations for socket.io-client:
//
//   import { io, Socket } from 'socket.io-client';
//   import type { ServerToClientEvents, ClientToServerEvents } from './events';
//   const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io(url, { auth: { token } });
//   const res = await socket.emitWithAck('message:new', { conversationId: 'c1', text: 'hi' });
//   if (res.ok && !('duplicate' in res)) console.log(res.id, res.createdAt);
//
// Type-check (uses the socket.io-client types installed in tests/js/node_modules; run `npm ci` in
// tests/js first; `-y` lets npx fetch the compiler without asking):
//
//   npx -y -p typescript@5 tsc --noEmit -p clients/typescript
//
// Keep this file in step with docs/EVENTS.md: every event, direction, payload and ack there.
// Conventions from the contract:
// - Every client (C→S) event accepts an ack callback. Success is `{ok: true, ...}`; a refusal is
//   `{ok: false, error, message?}`; a repeated client `eventId` is acked `{ok: true, duplicate: true}`.
//   Without an ack callback a refusal arrives as the `error` event. Refused events are relayed nowhere.
// - Ids (`conversationId`, `docId`, ...) are 1 to 128 characters of `[A-Za-z0-9_.:-]`; numbers are
//   accepted and turned into strings, so ids are `IdInput` when sent and `string` when received.
// - Text fields have control characters other than \n and \t removed and are length-capped. The
//   server never renders HTML: render every relayed string as text, never as HTML.
// - With connection state recovery on (the default), events the server broadcasts (not the ones it
//   sends to one socket, and not the volatile ones) carry the recovery offset as an extra last
//   string argument; socket.io-client uses it itself. Listeners below declare it as `offset?`.

// ---------------------------------------------------------------------------------------------
// Common types

/** Any JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Binary data as socket.io-client sends it and hands it over (ArrayBuffer in browsers, Buffer in Node). */
export type BinaryData = ArrayBuffer | ArrayBufferView;

/** An id as a client may send it: a string of 1 to 128 `[A-Za-z0-9_.:-]`, or a number (turned into a string). */
export type IdInput = string | number;

/** Milliseconds since the Unix epoch. */
export type EpochMs = number;

/** The recovery offset appended to broadcasts when connection state recovery is on. */
export type RecoveryOffset = string;

/** Refusal codes. */
export type ErrorCode =
  | 'invalid_payload' // schema
  | 'forbidden' // no grant / not in the room
  | 'rate_limited'
  | 'unknown_event'
  | 'duplicate' // seen before; the original outcome already happened
  | 'not_found'
  | 'closed'; // quiz question not open

/** `{ok: false, error, message?}`: the ack of a refused event. */
export interface Refusal {
  ok: false;
  error: ErrorCode;
  message?: string;
}

/** The ack of an event whose client `eventId` was seen before (within 5 minutes, same user). */
export interface DuplicateAck {
  ok: true;
  duplicate: true;
}

/** `{ok: true}` plus the event's own result fields. */
export type Success<T extends object = {}> = { ok: true } & T;

/** What an ack callback receives: the success, a refusal, or the duplicate notice. */
export type AckResponse<T extends object = {}> = Success<T> | Refusal | DuplicateAck;

/** An ack callback. */
export type Ack<T extends object = {}> = (response: AckResponse<T>) => void;

/** The `error` event: a refusal of an event emitted without an ack callback. */
export interface ErrorEventPayload {
  event: string;
  error: ErrorCode;
  message?: string;
}

/** Any C→S payload may carry a client event id (1 to 128 characters) for deduplication. */
export interface WithEventId {
  eventId?: string;
}

/** A payload the platform defines (delivered as is from the internal API). */
export type PlatformData = unknown;

// ---------------------------------------------------------------------------------------------
// Rooms

/**
 * Room names: `user:<id>` (own sockets only), `feed` and `post:<id>` (public), and
 * `conversation:`, `group:`, `document:`, `call:`, `quiz:`, `class:` + id (grant needed).
 */
export type RoomName =
  | 'feed'
  | `user:${string}`
  | `post:${string}`
  | `conversation:${string}`
  | `group:${string}`
  | `document:${string}`
  | `call:${string}`
  | `quiz:${string}`
  | `class:${string}`;

export interface RoomJoinPayload extends WithEventId {
  room: RoomName;
}
export interface RoomLeavePayload extends WithEventId {
  room: RoomName;
}
/** Sent to the sockets removed from a room because the user's grant was revoked. */
export interface RoomRemovedPayload {
  room: string;
  reason: 'revoked';
}

// ---------------------------------------------------------------------------------------------
// Presence

export interface UserOnlinePayload {
  userId: string;
  lastSeen: null;
}
export interface UserOfflinePayload {
  userId: string;
  lastSeen: EpochMs;
}
export interface PresenceState {
  online: boolean;
  lastSeen: EpochMs | null;
}
/** `{<userId>: {online, lastSeen}}` (also the body of `GET /api/presence?users=a,b`). */
export type PresenceMap = Record<string, PresenceState>;

export interface PresenceSubscribePayload extends WithEventId {
  /** At most 500. */
  userIds: IdInput[];
}
export interface PresenceUnsubscribePayload extends WithEventId {
  userIds: IdInput[];
}
export interface PresenceSubscribeResult {
  presence: PresenceMap;
}

// ---------------------------------------------------------------------------------------------
// Chat

export interface TypingPayload extends WithEventId {
  conversationId: IdInput;
}
export interface TypingRelay {
  conversationId: string;
  userId: string;
}

/** A file reference (attachments and `file:shared`). */
export interface FileMeta {
  /** `https://...` or a relative `/path`, at most 2048 characters. */
  url: string;
  /** 1 to 255 characters. */
  name: string;
  /** Bytes, 0 to the server's limit (default 100 MiB). */
  size: number;
  /** `type/subtype`. */
  mime: string;
}

export interface MessageNewPayload extends WithEventId {
  conversationId: IdInput;
  /** 1 to 4000 characters. */
  text: string;
  /** At most 128 characters. */
  clientId?: string;
  /** At most 10. */
  attachments?: FileMeta[];
}
export interface MessageNewResult {
  id: string;
  createdAt: EpochMs;
}
/** `message:new` as relayed from another socket. */
export interface RelayedMessage {
  id: string;
  conversationId: string;
  senderId: string;
  text: string;
  attachments: FileMeta[];
  clientId: string | null;
  createdAt: EpochMs;
}
/** `message:new` from the internal API: as the platform persisted it. */
export type PersistedMessage = { [key: string]: PlatformData };

export interface ReceiptPayload extends WithEventId {
  conversationId: IdInput;
  messageId: IdInput;
}
export interface ReceiptRelay {
  conversationId: string;
  messageId: string;
  userId: string;
  at: EpochMs;
}
export interface ReactionPayload extends WithEventId {
  conversationId: IdInput;
  messageId: IdInput;
  /** 1 to 32 characters. */
  emoji: string;
}
export interface ReactionRelay {
  conversationId: string;
  messageId: string;
  emoji: string;
  userId: string;
}

// ---------------------------------------------------------------------------------------------
// Notifications and the social feed

export type NotificationReadPayload = ({ notificationId: IdInput; all?: never } | { all: true; notificationId?: never }) &
  WithEventId;

// ---------------------------------------------------------------------------------------------
// Calls (WebRTC signaling)

export type CallKind = 'voice' | 'video' | 'screen';

export interface CallInvitePayload extends WithEventId {
  callId: IdInput;
  /** A user id or up to 16 of them. */
  to: IdInput | IdInput[];
  kind: CallKind;
}
export interface CallIdPayload extends WithEventId {
  callId: IdInput;
}
export interface CallSignalPayload extends WithEventId {
  callId: IdInput;
  /** A participant of the call. */
  to: IdInput;
  /** SDP or ICE, at most 64 KiB of JSON. */
  payload: JsonValue;
}
export interface CallInviteRelay {
  callId: string;
  from: string;
  kind: CallKind;
}
export interface CallSignalRelay {
  callId: string;
  from: string;
  payload: JsonValue;
}
export interface CallActiveUpdate {
  callId: string;
  state: 'active';
  userId: string;
  participants: string[];
}
export interface CallRejectedUpdate {
  callId: string;
  state: 'rejected';
  userId: string;
}
export interface CallEndedUpdate {
  callId: string;
  state: 'ended';
  /** Who ended it (null when it ended by itself). */
  userId: string | null;
}
export interface CallMissedUpdate {
  callId: string;
  state: 'missed';
  userId?: string;
}
/** `call:update {callId, state, ...}` (from the server or the internal API) to `call:<id>`. */
export type CallUpdate = CallActiveUpdate | CallRejectedUpdate | CallEndedUpdate | CallMissedUpdate;

// ---------------------------------------------------------------------------------------------
// Groups, documents, whiteboards, quizzes, classes, files

export interface DocumentEditPayload extends WithEventId {
  docId: IdInput;
  /** JSON, or binary such as a Yjs update; at most the server's max payload. */
  ops: JsonValue | BinaryData;
}
export interface DocumentEditResult {
  seq: number;
}
export interface DocumentEditRelay {
  docId: string;
  /** Per-document total order; relays arrive in `seq` order. */
  seq: number;
  ops: JsonValue | BinaryData;
  userId: string;
}
export interface DocumentCursorPayload extends WithEventId {
  docId: IdInput;
  /** At most 1 KiB of JSON. */
  cursor: JsonValue;
}
export interface DocumentCursorRelay {
  docId: string;
  cursor: JsonValue;
  userId: string;
}
export interface WhiteboardStrokePayload extends WithEventId {
  room: RoomName;
  stroke: JsonValue | BinaryData;
}
export interface WhiteboardStrokeRelay {
  room: string;
  stroke: JsonValue | BinaryData;
  userId: string;
}

/**
 * `quiz:update` from the internal API: opens or closes a question. Delivered as is, so it may carry
 * more fields the platform defines (question text, options, ...).
 */
export interface QuizControlUpdate {
  quizId: string | number;
  questionId: string | number;
  state: 'open' | 'closed';
}
/** `quiz:update` with the answer counts, at most every 500 ms. */
export interface QuizCountsUpdate {
  quizId: string;
  questionId: string;
  counts: Record<string, number>;
}
export type QuizUpdate = QuizControlUpdate | QuizCountsUpdate;

export interface QuizAnswerPayload extends WithEventId {
  quizId: IdInput;
  questionId: IdInput;
  /** At most 64 characters. */
  answer: string;
}

export interface ClassIdPayload extends WithEventId {
  classId: IdInput;
}
export interface ClassJoinResult {
  viewers: number;
}
export interface ClassUpdate {
  classId: string;
  viewers: number;
}
export interface ClassMessagePayload extends WithEventId {
  classId: IdInput;
  /** 1 to 2000 characters. */
  text: string;
}
export interface ClassMessageRelay {
  classId: string;
  userId: string;
  text: string;
  createdAt: EpochMs;
}

export interface FileSharedPayload extends FileMeta, WithEventId {
  room: RoomName;
}
export interface FileSharedRelay extends FileMeta {
  room: string;
  userId: string;
}

// ---------------------------------------------------------------------------------------------
// Event maps

/** Events the server emits; listen with `socket.on(name, listener)`. */
export interface ServerToClientEvents {
  // rooms
  'room:removed': (payload: RoomRemovedPayload) => void;
  // presence
  'user:online': (payload: UserOnlinePayload, offset?: RecoveryOffset) => void;
  'user:offline': (payload: UserOfflinePayload, offset?: RecoveryOffset) => void;
  'user:presence': (states: PresenceMap) => void;
  // chat
  'typing:start': (payload: TypingRelay) => void;
  'typing:stop': (payload: TypingRelay) => void;
  'message:new': (message: RelayedMessage | PersistedMessage, offset?: RecoveryOffset) => void;
  'message:delivered': (payload: ReceiptRelay, offset?: RecoveryOffset) => void;
  'message:read': (payload: ReceiptRelay, offset?: RecoveryOffset) => void;
  'reaction:add': (payload: ReactionRelay, offset?: RecoveryOffset) => void;
  'reaction:remove': (payload: ReactionRelay, offset?: RecoveryOffset) => void;
  'conversation:updated': (data: PlatformData, offset?: RecoveryOffset) => void;
  // notifications and the social feed
  'notification:new': (data: PlatformData, offset?: RecoveryOffset) => void;
  'post:update': (data: PlatformData, offset?: RecoveryOffset) => void;
  'comment:new': (data: PlatformData, offset?: RecoveryOffset) => void;
  'like:update': (data: PlatformData, offset?: RecoveryOffset) => void;
  'story:update': (data: PlatformData, offset?: RecoveryOffset) => void;
  // calls
  'call:invite': (payload: CallInviteRelay, offset?: RecoveryOffset) => void;
  'call:update': (payload: CallUpdate, offset?: RecoveryOffset) => void;
  'call:signal': (payload: CallSignalRelay) => void;
  // groups, documents, whiteboards, quizzes, classes, files
  'group:update': (data: PlatformData, offset?: RecoveryOffset) => void;
  'document:edit': (payload: DocumentEditRelay, offset?: RecoveryOffset) => void;
  'document:cursor': (payload: DocumentCursorRelay) => void;
  'whiteboard:stroke': (payload: WhiteboardStrokeRelay) => void;
  'quiz:update': (payload: QuizUpdate, offset?: RecoveryOffset) => void;
  'class:update': (payload: ClassUpdate) => void;
  'class:message': (payload: ClassMessageRelay, offset?: RecoveryOffset) => void;
  'file:shared': (payload: FileSharedRelay, offset?: RecoveryOffset) => void;
  // refusals of events emitted without an ack callback
  error: (payload: ErrorEventPayload) => void;
}

/**
 * Events a client emits, each with its ack callback (`socket.emit(name, payload, ack)`,
 * `await socket.emitWithAck(name, payload)`, `socket.timeout(ms).emit(name, payload, (err, res) => ...)`).
 * To emit without an ack (refusals then arrive as the `error` event), type the socket with
 * `WithoutAcks<ClientToServerEvents>`.
 */
export interface ClientToServerEvents {
  // rooms
  'room:join': (payload: RoomJoinPayload, ack: Ack) => void;
  'room:leave': (payload: RoomLeavePayload, ack: Ack) => void;
  // presence
  'presence:subscribe': (payload: PresenceSubscribePayload, ack: Ack<PresenceSubscribeResult>) => void;
  'presence:unsubscribe': (payload: PresenceUnsubscribePayload, ack: Ack) => void;
  // chat
  'typing:start': (payload: TypingPayload, ack: Ack) => void;
  'typing:stop': (payload: TypingPayload, ack: Ack) => void;
  'message:new': (payload: MessageNewPayload, ack: Ack<MessageNewResult>) => void;
  'message:delivered': (payload: ReceiptPayload, ack: Ack) => void;
  'message:read': (payload: ReceiptPayload, ack: Ack) => void;
  'reaction:add': (payload: ReactionPayload, ack: Ack) => void;
  'reaction:remove': (payload: ReactionPayload, ack: Ack) => void;
  // notifications
  'notification:read': (payload: NotificationReadPayload, ack: Ack) => void;
  // calls
  'call:invite': (payload: CallInvitePayload, ack: Ack) => void;
  'call:accept': (payload: CallIdPayload, ack: Ack) => void;
  'call:reject': (payload: CallIdPayload, ack: Ack) => void;
  'call:end': (payload: CallIdPayload, ack: Ack) => void;
  'call:signal': (payload: CallSignalPayload, ack: Ack) => void;
  // documents, whiteboards, quizzes, classes, files
  'document:edit': (payload: DocumentEditPayload, ack: Ack<DocumentEditResult>) => void;
  'document:cursor': (payload: DocumentCursorPayload, ack: Ack) => void;
  'whiteboard:stroke': (payload: WhiteboardStrokePayload, ack: Ack) => void;
  'quiz:answer': (payload: QuizAnswerPayload, ack: Ack) => void;
  'class:join': (payload: ClassIdPayload, ack: Ack<ClassJoinResult>) => void;
  'class:leave': (payload: ClassIdPayload, ack: Ack) => void;
  'class:message': (payload: ClassMessagePayload, ack: Ack) => void;
  'file:shared': (payload: FileSharedPayload, ack: Ack) => void;
}

/** With `--diagnostics`: `echo` acks with exactly its arguments. */
export interface DiagnosticsClientToServerEvents {
  echo: (value: JsonValue, ack: (value: JsonValue) => void) => void;
}

/** The same events without the ack callback (fire and forget; refusals arrive as `error`). */
export type WithoutAcks<E> = {
  [K in keyof E]: E[K] extends (payload: infer P, ack: any) => void ? (payload: P) => void : E[K];
};

/** Every event name of the contract. */
export type ServerEventName = keyof ServerToClientEvents;
export type ClientEventName = keyof ClientToServerEvents;
