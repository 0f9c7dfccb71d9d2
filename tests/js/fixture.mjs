// Shared fixture for the sio-edge black-box tests: spawns the binary, connects official
// socket.io-client sockets, makes JWTs with node:crypto and reads /metrics.
import { spawn } from 'node:child_process';
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHmac, createSign, KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';

const here = dirname(fileURLToPath(import.meta.url));

/** Path of the binary under test: env SIO_EDGE_BIN or <repo>/target/debug/sio-edge. */
export const BIN = process.env.SIO_EDGE_BIN
  ? resolve(process.env.SIO_EDGE_BIN)
  : resolve(here, '../../target/debug/sio-edge');

const STARTUP_TIMEOUT_MS = Number(process.env.SIO_EDGE_STARTUP_TIMEOUT_MS || 10_000);
const STOP_TIMEOUT_MS = 8_000;
const LISTEN_RE = /^sio-edge listening on (\S+):(\d+)\s*$/;

// Configuration variables the binary reads: never inherited from the caller's environment, so
// that every test sees only the flags/env it passes itself.
const CONFIG_ENV_RE =
  /^(SOCKET_IO_.*|JWT_SECRET|NEXTAUTH_SECRET|AUTH_SECRET(_[0-9]+)?|JWT_PUBLIC_KEY_FILE|JWT_ISSUER|JWT_AUDIENCE|INTERNAL_API_KEY|SOCKETIO_API_KEY)$/;

// Last-resort cleanup if a test file crashes before its after() hooks ran.
const live = new Set();
process.on('exit', () => {
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

/**
 * Spawn sio-edge with `args` (always plus `--host 127.0.0.1 --port 0`) and the extra `env`.
 * Resolves once stdout printed `sio-edge listening on IP:PORT`.
 * @returns {Promise<{url:string, port:number, host:string, proc:import('node:child_process').ChildProcess,
 *   exited:Promise<{code:number|null, signal:string|null}>, stderr:()=>string,
 *   stop:()=>Promise<{code:number|null, signal:string|null}>}>}
 */
export function startServer(args = [], env = {}) {
  const childEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!CONFIG_ENV_RE.test(k)) childEnv[k] = v;
  }
  Object.assign(childEnv, env);
  const fullArgs = [...args, '--host', '127.0.0.1', ...(args.includes('--port') ? [] : ['--port', '0']), '--public-metrics'];

  return new Promise((resolvePromise, reject) => {
    if (!existsSync(BIN)) {
      reject(new Error(`sio-edge binary not found at ${BIN} (set SIO_EDGE_BIN or build it)`));
      return;
    }
    const proc = spawn(BIN, fullArgs, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(proc);
    let stderr = '';
    let stdout = '';
    let settled = false;
    const STDERR_CAP = 64 * 1024;

    const exited = new Promise((res) => {
      proc.once('exit', (code, signal) => {
        live.delete(proc);
        res({ code, signal });
      });
    });
    // 'error' (e.g. ENOENT/EACCES) may fire without 'exit'.
    proc.once('error', (err) => {
      live.delete(proc);
      fail(new Error(`failed to spawn ${BIN}: ${err.message}`));
    });

    const describe = () =>
      `\n  command: ${BIN} ${fullArgs.join(' ')}\n  stdout: ${JSON.stringify(stdout.slice(-2000))}` +
      `\n  stderr:\n${stderr.slice(-8000)}`;

    function fail(err) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try { proc.kill('SIGKILL'); } catch { /* gone */ }
      reject(err);
    }

    const timer = setTimeout(() => {
      fail(new Error(`sio-edge did not print its listening line within ${STARTUP_TIMEOUT_MS} ms${describe()}`));
    }, STARTUP_TIMEOUT_MS);

    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      stderr += d;
      if (stderr.length > STDERR_CAP) stderr = stderr.slice(-STDERR_CAP);
    });

    let lineBuf = '';
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (d) => {
      if (stdout.length < 16 * 1024) stdout += d;
      if (settled) return;
      lineBuf += d;
      let nl;
      while ((nl = lineBuf.indexOf('\n')) >= 0) {
        const line = lineBuf.slice(0, nl).replace(/\r$/, '');
        lineBuf = lineBuf.slice(nl + 1);
        const m = LISTEN_RE.exec(line);
        if (m) {
          settled = true;
          clearTimeout(timer);
          const host = m[1].replace(/^\[|\]$/g, '');
          const port = Number(m[2]);
          const urlHost = host.includes(':') ? `[${host}]` : host;
          const server = {
            url: `http://${urlHost}:${port}`,
            host,
            port,
            proc,
            exited,
            stderr: () => stderr,
            stop: () => stopProc(proc, exited),
          };
          resolvePromise(server);
          return;
        }
      }
    });

    exited.then(({ code, signal }) => {
      fail(new Error(`sio-edge exited (code ${code}, signal ${signal}) before printing its listening line${describe()}`));
    });
  });
}

async function stopProc(proc, exited) {
  if (proc.exitCode !== null || proc.signalCode !== null) return exited;
  try { proc.kill('SIGTERM'); } catch { /* gone */ }
  let timer;
  const res = await Promise.race([
    exited,
    new Promise((r) => { timer = setTimeout(() => r(null), STOP_TIMEOUT_MS); }),
  ]);
  clearTimeout(timer);
  if (res) return res;
  try { proc.kill('SIGKILL'); } catch { /* gone */ }
  return exited;
}

/**
 * Create (but do not await) a socket.io-client socket. Defaults: a fresh Manager per socket
 * (forceNew) and no reconnection, so that tests stay deterministic.
 */
export function client(url, opts = {}) {
  return io(url, { forceNew: true, reconnection: false, timeout: 10_000, ...opts });
}

/** Resolve with `socket` once it emits 'connect'; reject with the connect_error's error. */
export function connected(socket, timeoutMs = 10_000) {
  if (socket.connected) return Promise.resolve(socket);
  return new Promise((res, rej) => {
    const timer = setTimeout(() => {
      cleanup();
      socket.close();
      rej(new Error(`socket did not connect within ${timeoutMs} ms`));
    }, timeoutMs);
    const onConnect = () => { cleanup(); res(socket); };
    const onError = (err) => {
      cleanup();
      socket.close();
      rej(err);
    };
    function cleanup() {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('connect_error', onError);
    }
    socket.on('connect', onConnect);
    socket.on('connect_error', onError);
  });
}

/** Promise of a connected socket.io-client socket; rejects with the connect_error's error. */
export function connect(url, opts = {}, timeoutMs = 10_000) {
  return connected(client(url, opts), timeoutMs);
}

/**
 * Wait for one `event` on a Node EventEmitter or a socket.io component-emitter.
 * Resolves with the array of the event's arguments.
 */
export function once(emitter, event, timeoutMs = 5_000) {
  return new Promise((res, rej) => {
    const handler = (...args) => {
      clearTimeout(timer);
      res(args);
    };
    const timer = setTimeout(() => {
      emitter.off(event, handler);
      rej(new Error(`timed out after ${timeoutMs} ms waiting for '${event}'`));
    }, timeoutMs);
    emitter.once(event, handler);
  });
}

/** emit with an acknowledgement; resolves with ALL the ack's arguments (an array). */
export function emitAck(socket, event, args = [], timeoutMs = 5_000) {
  return new Promise((res, rej) => {
    socket.timeout(timeoutMs).emit(event, ...args, (err, ...ackArgs) => {
      if (err) rej(new Error(`no ack for '${event}' within ${timeoutMs} ms (${err.message})`));
      else res(ackArgs);
    });
  });
}

/**
 * Poll `fn` (may be async) until it returns a truthy value; returns that value.
 * For waiting on state observable only by polling (e.g. a metric), never as a bare sleep.
 */
export async function waitFor(fn, { timeoutMs = 3_000, intervalMs = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(intervalMs);
  }
}

/**
 * One HTTP request on a fresh, unpooled connection (node:http, agent:false), so that a server
 * answering early (e.g. 413 before reading the body) cannot disturb other requests.
 * Resolves {status, headers, body}; a response that arrived wins over a later write error.
 */
export function rawHttp(url, { method = 'GET', headers = {}, body, timeoutMs = 10_000 } = {}) {
  return new Promise((res, rej) => {
    let response = null;
    const req = http.request(url, { method, headers, agent: false, timeout: timeoutMs }, (r) => {
      response = r;
      const chunks = [];
      r.on('data', (c) => chunks.push(c));
      r.on('end', () => res({ status: r.statusCode, headers: r.headers, body: Buffer.concat(chunks).toString('utf8') }));
      r.on('error', rej);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no response within ${timeoutMs} ms`)));
    req.on('error', (e) => { if (!response) rej(e); });
    if (body !== undefined) req.end(body); else req.end();
  });
}

/** A timer; use only where time itself is the subject of the test. */
export function delay(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/**
 * Make a compact JWS.
 * - `secret` a string/Buffer: HS256.
 * - `secret` a private KeyObject: RS256 (RSA) or ES256 (EC P-256), or opts.alg.
 * - opts.alg === 'none': unsigned token `header.payload.` (secret ignored).
 * opts.header adds/overrides header fields.
 */
export function makeJwt(payload, secret, opts = {}) {
  let alg = opts.alg;
  if (!alg) {
    if (secret instanceof KeyObject && secret.type === 'private') {
      alg = secret.asymmetricKeyType === 'ec' ? 'ES256' : 'RS256';
    } else {
      alg = 'HS256';
    }
  }
  const header = { alg, typ: 'JWT', ...(opts.header || {}) };
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  let sig;
  switch (alg) {
    case 'none':
      sig = '';
      break;
    case 'HS256':
      sig = b64url(createHmac('sha256', secret).update(signingInput).digest());
      break;
    case 'RS256':
      sig = b64url(createSign('RSA-SHA256').update(signingInput).sign(secret));
      break;
    case 'ES256':
      sig = b64url(createSign('SHA256').update(signingInput).sign({ key: secret, dsaEncoding: 'ieee-p1363' }));
      break;
    default:
      throw new Error(`makeJwt: unsupported alg ${alg}`);
  }
  return `${signingInput}.${sig}`;
}

/** Seconds since the epoch, for JWT exp/iat. */
export const nowSec = () => Math.floor(Date.now() / 1000);

function normalizeLabels(body) {
  // body: the text between { and } of a sample line.
  const labels = [];
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/g;
  let m;
  while ((m = re.exec(body))) labels.push([m[1], m[2]]);
  labels.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return labels.map(([k, v]) => `${k}="${v}"`).join(',');
}

function parseValue(s) {
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  return Number(s);
}

/** Parse Prometheus text exposition into { 'name' | 'name{k="v",...}' (labels sorted): number }. */
export function parseMetrics(text) {
  const out = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    let name;
    let rest;
    const brace = line.indexOf('{');
    const space = line.search(/\s/);
    if (brace >= 0 && (space < 0 || brace < space)) {
      const close = line.lastIndexOf('}');
      name = line.slice(0, brace);
      const labels = normalizeLabels(line.slice(brace + 1, close));
      name = labels ? `${name}{${labels}}` : name;
      rest = line.slice(close + 1).trim();
    } else {
      name = line.slice(0, space);
      rest = line.slice(space + 1).trim();
    }
    out[name] = parseValue(rest.split(/\s+/)[0]);
  }
  return out;
}

/** GET <url>/metrics and parse it (see parseMetrics). */
export async function fetchMetrics(url) {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET /metrics -> ${res.status}: ${text.slice(0, 500)}`);
  return parseMetrics(text);
}

/** Value of one series (labels as an object), 0 when absent. */
export function metric(metrics, name, labels = null) {
  let key = name;
  if (labels && Object.keys(labels).length) {
    key = `${name}{${Object.keys(labels).sort().map((k) => `${k}="${labels[k]}"`).join(',')}}`;
  }
  return metrics[key] ?? 0;
}

/** Sum of every series of metric `name` whatever its labels (0 when absent). */
export function metricSum(metrics, name) {
  let sum = 0;
  for (const [k, v] of Object.entries(metrics)) {
    if (k === name || k.startsWith(`${name}{`)) sum += v;
  }
  return sum;
}

/** Was metric `name` exposed at all (any labels)? */
export function hasMetric(metrics, name) {
  return Object.keys(metrics).some((k) => k === name || k.startsWith(`${name}{`));
}

/**
 * Close every socket (and its Manager) handed to it; for after() hooks.
 * Usage: const sockets = tracker(); const s = sockets.add(await connect(...)); after(sockets.closeAll)
 */
export function tracker() {
  const set = new Set();
  return {
    add(s) { set.add(s); return s; },
    closeAll() {
      for (const s of set) {
        try { s.close(); } catch { /* ignore */ }
        try { s.io?._close?.(); } catch { /* ignore */ }
      }
      set.clear();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Platform-feature helpers (rooms, chat, calls, ... tests): HS256 tokens with claims, an
// internal-API client, an event recorder and a delivery barrier.

/** HS256 token for user `sub` with extra claims (e.g. `{conversations: ['c1']}`), valid 1 h. */
export function userToken(secret, sub, claims = {}) {
  return makeJwt({ sub, iat: nowSec(), exp: nowSec() + 3600, ...claims }, secret);
}

/**
 * Client for the internal HTTP API of `url` with key `key`. Every call resolves
 * `{status, json, text}` (json null when the body is not JSON). `url` may be a function returning
 * the url, read at each call (for a client made before its server started).
 */
export function apiClient(url, key) {
  const baseUrl = typeof url === 'function' ? url : () => url;
  async function call(method, path, body) {
    const res = await fetch(`${baseUrl()}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, json, text };
  }
  const member = (room, user) =>
    `/api/rooms/${encodeURIComponent(room)}/members${user === undefined ? '' : `/${encodeURIComponent(user)}`}`;
  return {
    call,
    /** POST /api/emit; throws unless 202; resolves the recipient count. */
    async emit(body) {
      const r = await call('POST', '/api/emit', body);
      if (r.status !== 202) throw new Error(`POST /api/emit ${JSON.stringify(body)} -> ${r.status} ${r.text}`);
      return r.json.recipients;
    },
    grant: (room, user) => call('PUT', member(room, user)),
    revoke: (room, user) => call('DELETE', member(room, user)),
    members: (room) => call('GET', member(room)),
    presence: (users) => call('GET', `/api/presence?users=${users.map(encodeURIComponent).join(',')}`),
    outbox: (after = 0, limit = 1000) => call('GET', `/api/outbox?after=${after}&limit=${limit}`),
  };
}

/**
 * Record every event a socket receives (register before it connects to catch events sent right
 * after the CONNECT). `wait(event, pred)` resolves the args of the first recorded event (past or
 * future, from index `from`) matching the name and predicate.
 */
export function recorder(socket) {
  const events = []; // {event, args}
  const waiters = new Set();
  socket.onAny((event, ...args) => {
    events.push({ event, args });
    for (const w of [...waiters]) w();
  });
  const find = (event, pred, from) => {
    for (let i = from; i < events.length; i++) {
      const e = events[i];
      if (e.event === event && pred(...e.args)) return { index: i, args: e.args };
    }
    return null;
  };
  return {
    socket,
    events,
    /** Arrays of args of every recorded `event`. */
    all: (event) => events.filter((e) => e.event === event).map((e) => e.args),
    count: (event, pred = () => true) => events.filter((e) => e.event === event && pred(...e.args)).length,
    /** Index to pass as `from` to only look at events recorded later. */
    mark: () => events.length,
    wait(event, pred = () => true, { timeoutMs = 5_000, from = 0 } = {}) {
      const hit = find(event, pred, from);
      if (hit) return Promise.resolve(hit.args);
      return new Promise((res, rej) => {
        const check = () => {
          const h = find(event, pred, from);
          if (h) { waiters.delete(check); clearTimeout(timer); res(h.args); }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          const seen = events.slice(from).map((e) => e.event).join(', ');
          rej(new Error(`timed out after ${timeoutMs} ms waiting for '${event}' on socket ${socket.id} (seen since: ${seen || 'nothing'})`));
        }, timeoutMs);
        waiters.add(check);
      });
    },
  };
}

let barrierSeq = 0;
/**
 * Delivery barrier: emit a distinct event through the internal API to each recorder's socket (by
 * sid room) and wait until every one got it. Delivery on one connection is ordered, so anything
 * sent to those sockets before has arrived once this resolves. Call it after the acks of the
 * client events being checked. Resolves the barrier event name.
 */
export async function barrier(api, recorders, timeoutMs = 5_000) {
  const event = `test:barrier:${process.pid}:${++barrierSeq}`;
  const waits = recorders.map((r) => r.wait(event, () => true, { timeoutMs }));
  const n = await api.emit({ event, data: barrierSeq, rooms: recorders.map((r) => r.socket.id) });
  if (n !== recorders.length) throw new Error(`barrier reached ${n} of ${recorders.length} sockets`);
  await Promise.all(waits);
  return event;
}

/** emitAck resolving only the first ack argument (the `{ok, ...}` object of the platform events). */
export async function request(socket, event, payload, timeoutMs = 5_000) {
  const [res] = await emitAck(socket, event, [payload], timeoutMs);
  return res;
}

/**
 * Connect a websocket socket.io-client socket with `auth.token = token`, recording its events
 * from before the CONNECT (see recorder). Resolves the recorder; `rec.socket` is the socket.
 * Pass a tracker as opts.track to have it closed in after().
 */
export async function connectRecorded(url, token, { track, ...opts } = {}) {
  const socket = client(url, { transports: ['websocket'], auth: { token }, ...opts });
  track?.add(socket);
  const rec = recorder(socket);
  await connected(socket);
  return rec;
}

/** Assert that the ack `r` refused the request with error `code` (`what` names the case). */
export function refused(r, code, what) {
  assert.deepEqual([r.ok, r.error], [false, code], `${what}: ${JSON.stringify(r)}`);
}

/** Close the socket of recorder `rec` and wait for its 'disconnect'. */
export async function closeAndWait(rec) {
  const gone = once(rec.socket, 'disconnect', 5000);
  rec.socket.close();
  await gone;
}

/**
 * One platform server per test file: `--jwt-secret secret --internal-api-key key` plus `args`.
 * Registers a before() hook that starts it and an after() hook that closes every tracked socket
 * and stops it. Returns:
 * - `srv`: the server (set once before() ran);
 * - `api`: its internal-API client (usable right away: the url is read at each call);
 * - `sockets`: the tracker closed in after();
 * - `connectAs(sub, claims = {}, {url = srv.url, ...opts} = {})`: a recorded websocket socket
 *   of user `sub` with those token claims (see connectRecorded), tracked;
 * - `ready()`: resolves the server once started. Top-level before() hooks may run concurrently,
 *   so a test file's own before() hook that needs the server awaits this first;
 * - `startAnother(args)`: start another server with the same secret and key plus `args`
 *   (`{srv, api}`; the caller stops it).
 */
export function platformSuite(secret, key, args = []) {
  const sockets = tracker();
  const base = ['--jwt-secret', secret, '--internal-api-key', key];
  let starting;
  const suite = {
    srv: undefined,
    ready: () => (starting ??= startServer([...base, ...args]).then((srv) => { suite.srv = srv; return srv; })),
    api: apiClient(() => suite.srv.url, key),
    sockets,
    connectAs: (sub, claims = {}, { url = suite.srv.url, ...opts } = {}) =>
      connectRecorded(url, userToken(secret, sub, claims), { track: sockets, ...opts }),
    async startAnother(extra = []) {
      const srv = await startServer([...base, ...extra]);
      return { srv, api: apiClient(srv.url, key) };
    },
  };
  before(suite.ready);
  after(async () => {
    sockets.closeAll();
    await suite.srv?.stop();
  });
  return suite;
}
