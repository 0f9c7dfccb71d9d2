// Fixture of the multi-node black-box tests: a private redis-server and a Tansu Kafka broker on
// ephemeral loopback ports, sio-edge nodes wired to them, official socket.io-client sockets,
// HS256 tokens, the internal API, the official @socket.io/redis-emitter and kafkajs.
//
// Every process started here is stopped by the test's after() hooks (and SIGKILLed on exit as
// a last resort). A missing redis-server or tansu makes the test FAIL with an install hint.
import { spawn, execFile } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import net from 'node:net';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { io } from 'socket.io-client';

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));

/** Path of the binary under test: env SIO_EDGE_BIN or <repo>/target/debug/sio-edge. */
export const BIN = process.env.SIO_EDGE_BIN
  ? resolve(process.env.SIO_EDGE_BIN)
  : resolve(here, '../../target/debug/sio-edge');

export const JWT_SECRET = 'cluster-test-secret';
export const API_KEY = 'cluster-test-key';

export const REDIS_INSTALL_HINT =
  'redis-server is not installed. The multi-node tests start their own redis-server on an ' +
  'ephemeral loopback port; install it with:\n    apt-get install -y redis-server\n' +
  '(or set REDIS_SERVER_BIN to its path).';

export const TANSU_INSTALL_HINT =
  'tansu is not installed. The Kafka tests need the Tansu broker (a Kafka-protocol broker in ' +
  'Rust); install it with:\n    cargo install tansu --version 0.6.0 --features dynostore --locked\n' +
  '(it lands in ~/.cargo/bin/tansu; or set TANSU_BIN to its path).';

const STARTUP_TIMEOUT_MS = Number(process.env.SIO_EDGE_STARTUP_TIMEOUT_MS || 15_000);
const STOP_TIMEOUT_MS = 8_000;
const LISTEN_RE = /^sio-edge listening on (\S+):(\d+)\s*$/;
// Configuration variables sio-edge reads: never inherited, every node sees only its flags.
const CONFIG_ENV_RE =
  /^(SOCKET_IO_.*|JWT_SECRET|NEXTAUTH_SECRET|JWT_PUBLIC_KEY_FILE|JWT_ISSUER|JWT_AUDIENCE|INTERNAL_API_KEY|SOCKETIO_API_KEY|REDIS_URL|KAFKA_.*|NODE_ID|RUST_LOG)$/;

// ---------------------------------------------------------------------------------------------
// Processes

const live = new Set();
function killAll() {
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch { /* gone */ }
  }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => { killAll(); process.kill(process.pid, sig); });
}
// A closed stdout (e.g. piped into `head`) must not leave brokers behind.
process.stdout.on('error', () => { killAll(); });

/** A free loopback TCP port (bound and released; the caller's process binds it right after). */
export function freePort() {
  return new Promise((res, rej) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

function isFile(p) {
  try { return statSync(p).isFile(); } catch { return false; }
}

/** `$envVar`, then `name` on PATH, then the extra candidates; null when nowhere. */
export function findExecutable(name, envVar, extra = []) {
  if (process.env[envVar]) {
    const p = resolve(process.env[envVar]);
    return isFile(p) ? p : null;
  }
  for (const dir of (process.env.PATH || '').split(delimiter)) {
    if (dir && isFile(join(dir, name))) return join(dir, name);
  }
  return extra.find(isFile) ?? null;
}

/** The redis-server binary; throws the install hint when missing (tests fail, never skip). */
export function redisServerBin() {
  const bin = findExecutable('redis-server', 'REDIS_SERVER_BIN', ['/usr/bin/redis-server', '/usr/local/bin/redis-server']);
  if (!bin) throw new Error(REDIS_INSTALL_HINT);
  return bin;
}

/** The tansu binary; throws the install hint when missing (tests fail, never skip). */
export function tansuBin() {
  const home = process.env.HOME || '';
  const bin = findExecutable('tansu', 'TANSU_BIN', [join(home, '.cargo/bin/tansu')]);
  if (!bin) throw new Error(TANSU_INSTALL_HINT);
  return bin;
}

/**
 * A child process with its output kept (last 64 KiB), `exited` promise and kill helpers.
 * @returns {{proc, exited:Promise<{code,signal}>, output:()=>string, alive:()=>boolean,
 *   kill:(sig?:string)=>Promise<{code,signal}>, stop:()=>Promise<{code,signal}>}}
 */
function launch(bin, args, { env = process.env, onLine } = {}) {
  const proc = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let output = '';
  const CAP = 64 * 1024;
  let spawnError = null;
  const exited = new Promise((res) => {
    proc.once('exit', (code, signal) => { live.delete(proc); res({ code, signal }); });
    proc.once('error', (err) => { spawnError = err; live.delete(proc); res({ code: null, signal: null, error: err }); });
  });
  for (const stream of [proc.stdout, proc.stderr]) {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (d) => {
      output += d;
      if (output.length > CAP) output = output.slice(-CAP);
      if (!onLine) return;
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        onLine(line);
      }
    });
  }
  const alive = () => proc.exitCode === null && proc.signalCode === null && !spawnError;
  return {
    proc,
    exited,
    output: () => output,
    alive,
    spawnError: () => spawnError,
    async kill(sig = 'SIGKILL') {
      if (alive()) { try { proc.kill(sig); } catch { /* gone */ } }
      return exited;
    },
    async stop() {
      if (!alive()) return exited;
      try { proc.kill('SIGTERM'); } catch { /* gone */ }
      let timer;
      const res = await Promise.race([exited, new Promise((r) => { timer = setTimeout(() => r(null), STOP_TIMEOUT_MS); })]);
      clearTimeout(timer);
      if (res) return res;
      try { proc.kill('SIGKILL'); } catch { /* gone */ }
      return exited;
    },
  };
}

/** Resolves once `fn()` resolves truthy; polls every `intervalMs`, rejects after `timeoutMs`. */
export async function waitFor(fn, { timeoutMs = 5_000, intervalMs = 25, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastErr;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { lastErr = e; }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${lastErr.message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A timer: only where time itself is the subject of the test. */
export function delay(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** One inline-protocol command to a Redis server; resolves the raw reply text. */
export function redisCommand(port, line, timeoutMs = 1_000) {
  return new Promise((res, rej) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let data = '';
    const timer = setTimeout(() => { sock.destroy(); rej(new Error(`redis ${line}: no reply within ${timeoutMs} ms`)); }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${line}\r\n`));
    sock.on('data', (d) => {
      data += d;
      if (data.includes('\r\n')) { clearTimeout(timer); sock.end(); res(data); }
    });
    sock.on('error', (e) => { clearTimeout(timer); rej(e); });
  });
}

/**
 * A private redis-server on a free loopback port (no persistence).
 * `kill()` SIGKILLs it, `restart()` starts a fresh one on the same port.
 */
export async function startRedis() {
  const bin = redisServerBin();
  const port = await freePort();
  const r = {
    port,
    url: `redis://127.0.0.1:${port}`,
    p: null,
    async start() {
      this.p = launch(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
        '--protected-mode', 'no', '--loglevel', 'warning']);
      await waitFor(async () => {
        if (!this.p.alive()) throw new Error(`redis-server exited: ${this.p.output()}`);
        return (await redisCommand(port, 'PING').catch(() => '')).startsWith('+PONG');
      }, { timeoutMs: 10_000, what: `redis-server on port ${port} to answer PING` });
      return this;
    },
    async kill() { if (this.p) await this.p.kill('SIGKILL'); },
    async stop() { if (this.p) await this.p.stop(); },
    async restart() { await this.kill(); return this.start(); },
  };
  return r.start();
}

/** Runs a command; resolves {code, stdout, stderr}. */
function run(bin, args, timeoutMs = 20_000) {
  return new Promise((res) => {
    execFile(bin, args, { timeout: timeoutMs, env: { ...process.env, RUST_LOG: 'warn' } }, (err, stdout, stderr) => {
      res({ code: err ? (err.code ?? 1) : 0, stdout, stderr });
    });
  });
}

/**
 * A Tansu broker (memory storage) on a free loopback port. `createTopic(name, partitions)` uses
 * the tansu CLI; `kill()` / `restart()` (same port; memory storage: topics are lost).
 */
export async function startTansu() {
  const bin = tansuBin();
  const port = await freePort();
  const t = {
    port,
    brokers: [`127.0.0.1:${port}`],
    p: null,
    async start() {
      this.p = launch(bin, ['broker', '--listener-url', `tcp://127.0.0.1:${port}`,
        '--advertised-listener-url', `tcp://127.0.0.1:${port}`, '--storage-engine', 'memory://tansu/'],
      { env: { ...process.env, RUST_LOG: 'warn' } });
      await waitFor(async () => {
        if (!this.p.alive()) throw new Error(`tansu exited at start: ${this.p.spawnError()?.message ?? ''}${this.p.output()}`);
        return tcpOpen(port);
      }, { timeoutMs: 30_000, what: `tansu to listen on ${port}` });
      return this;
    },
    async createTopic(name, partitions = 1) {
      let last;
      await waitFor(async () => {
        last = await run(bin, ['topic', 'create', name, '--partitions', String(partitions), '--broker', `tcp://127.0.0.1:${port}`]);
        return last.code === 0;
      }, { timeoutMs: 30_000, intervalMs: 200, what: `tansu topic create ${name}` }).catch((e) => {
        throw new Error(`${e.message}: ${last?.stdout}${last?.stderr}`);
      });
    },
    async kill() { if (this.p) await this.p.kill('SIGKILL'); },
    async stop() { if (this.p) await this.p.kill('SIGKILL'); },
    async restart() { await this.kill(); return this.start(); },
  };
  return t.start();
}

function tcpOpen(port) {
  return new Promise((res) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('connect', () => { s.destroy(); res(true); });
    s.on('error', () => res(false));
  });
}

/**
 * Starts a sio-edge node (`--host 127.0.0.1 --port 0`, JWT secret and API key of this fixture,
 * `--node-id`; `port` to reuse a port after a restart), plus `redisUrl`, `kafka` ({brokers, topics, groupId, clientEventsTopic, start})
 * and extra args. Resolves once it printed `sio-edge listening on IP:PORT`.
 */
export function startNode({ nodeId, redisUrl, kafka, args = [], log = 'info', port = 0 } = {}) {
  if (!existsSync(BIN)) {
    return Promise.reject(new Error(`sio-edge binary not found at ${BIN} (set SIO_EDGE_BIN or run cargo build)`));
  }
  const id = nodeId ?? `node-${randomBytes(3).toString('hex')}`;
  const full = ['--host', '127.0.0.1', '--port', String(port), '--jwt-secret', JWT_SECRET, '--internal-api-key', API_KEY,
    '--node-id', id, '--log', log];
  if (redisUrl) full.push('--redis-url', redisUrl);
  if (kafka) {
    full.push('--kafka-brokers', kafka.brokers.join(','), '--kafka-topics', (kafka.topics ?? ['realtime-events']).join(','),
      '--kafka-group-id', kafka.groupId ?? `sio-edge-${id}`,
      '--kafka-client-events-topic', kafka.clientEventsTopic ?? 'client-events');
    if (kafka.start) full.push('--kafka-start', kafka.start);
  }
  full.push(...args);
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!CONFIG_ENV_RE.test(k)) env[k] = v;

  return new Promise((resolvePromise, reject) => {
    let settled = false;
    let p;
    const fail = (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      p.kill('SIGKILL');
      reject(err);
    };
    p = launch(BIN, full, {
      env,
      onLine(line) {
        if (settled) return;
        const m = LISTEN_RE.exec(line);
        if (!m) return;
        settled = true;
        clearTimeout(timer);
        const host = m[1];
        const port = Number(m[2]);
        const url = `http://${host}:${port}`;
        resolvePromise({
          id,
          url,
          port,
          proc: p.proc,
          exited: p.exited,
          log: p.output,
          api: apiClient(url, API_KEY),
          kill: (sig = 'SIGKILL') => p.kill(sig),
          stop: () => p.stop(),
        });
      },
    });
    const describe = () => `\n  command: ${BIN} ${full.join(' ')}\n  output:\n${p.output().slice(-8000)}`;
    const timer = setTimeout(() => fail(new Error(`sio-edge did not print its listening line within ${STARTUP_TIMEOUT_MS} ms${describe()}`)), STARTUP_TIMEOUT_MS);
    p.exited.then(({ code, signal, error }) => fail(new Error(`sio-edge exited (code ${code}, signal ${signal}${error ? `, ${error.message}` : ''}) before listening${describe()}`)));
  });
}

// ---------------------------------------------------------------------------------------------
// HTTP API

/** Client for the internal HTTP API; every call resolves {status, json, text}. */
export function apiClient(url, key) {
  async function call(method, path, body) {
    const res = await fetch(`${url}${path}`, {
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
    /** POST /api/emit; throws unless 202; resolves the (local) recipient count. */
    async emit(body) {
      const r = await call('POST', '/api/emit', body);
      if (r.status !== 202) throw new Error(`POST /api/emit ${JSON.stringify(body)} -> ${r.status} ${r.text}`);
      return r.json.recipients;
    },
    grant: (room, user) => call('PUT', member(room, user)),
    revoke: (room, user) => call('DELETE', member(room, user)),
    members: (room) => call('GET', member(room)),
    /** GET /api/presence; resolves the JSON body (throws unless 200). */
    async presence(users) {
      const r = await call('GET', `/api/presence?users=${users.map(encodeURIComponent).join(',')}`);
      if (r.status !== 200) throw new Error(`GET /api/presence -> ${r.status} ${r.text}`);
      return r.json;
    },
    /** GET /ready; resolves {status, json}. */
    async ready() {
      const r = await call('GET', '/ready');
      return { status: r.status, json: r.json };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Tokens and sockets

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** HS256 token for user `sub` with extra claims (e.g. `{conversations: ['c1']}`), valid 1 h. */
export function userToken(sub, claims = {}, secret = JWT_SECRET) {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify({ sub, iat: now, exp: now + 3600, ...claims }));
  const sig = b64url(createHmac('sha256', secret).update(`${header}.${payload}`).digest());
  return `${header}.${payload}.${sig}`;
}

/** Closes every socket handed to it; for after() hooks. */
export function tracker() {
  const set = new Set();
  return {
    add(s) { set.add(s); return s; },
    closeAll() {
      for (const s of set) {
        try { s.close(); } catch { /* ignore */ }
      }
      set.clear();
    },
  };
}

/**
 * Records every event a socket receives. `wait(event, pred)` resolves the args of the first
 * matching event (from index `from`); `count(event, pred)` counts them.
 */
export function recorder(socket) {
  const events = [];
  const waiters = new Set();
  const disconnects = [];
  socket.onAny((event, ...args) => {
    events.push({ event, args });
    for (const w of [...waiters]) w();
  });
  socket.on('disconnect', (reason) => {
    disconnects.push(reason);
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
    disconnects,
    all: (event) => events.filter((e) => e.event === event).map((e) => e.args),
    count: (event, pred = () => true) => events.filter((e) => e.event === event && pred(...e.args)).length,
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
    /** Resolves the reason of the next (or a past) disconnect. */
    waitDisconnect(timeoutMs = 5_000) {
      if (disconnects.length) return Promise.resolve(disconnects[0]);
      return new Promise((res, rej) => {
        const check = () => { if (disconnects.length) { waiters.delete(check); clearTimeout(timer); res(disconnects[0]); } };
        const timer = setTimeout(() => { waiters.delete(check); rej(new Error(`socket ${socket.id} was not disconnected within ${timeoutMs} ms`)); }, timeoutMs);
        waiters.add(check);
      });
    },
  };
}

/**
 * Connects a websocket socket.io-client socket for `user` (claims in the token) to `node`,
 * recording its events from before the CONNECT. Resolves the recorder (`rec.socket`).
 */
export function connectUser(node, user, claims = {}, { track, ...opts } = {}) {
  const socket = io(node.url, {
    forceNew: true,
    reconnection: false,
    timeout: 10_000,
    transports: ['websocket'],
    auth: { token: userToken(user, claims) },
    ...opts,
  });
  track?.add(socket);
  const rec = recorder(socket);
  rec.user = user;
  return new Promise((res, rej) => {
    const timer = setTimeout(() => { socket.close(); rej(new Error(`${user} did not connect to ${node.url} within 10 s`)); }, 10_000);
    // Only the first connect: a later connect_error (a reconnection attempt) must not close
    // a socket that reconnects by itself.
    const failed = (err) => { clearTimeout(timer); socket.close(); rej(err); };
    socket.once('connect', () => { clearTimeout(timer); socket.off('connect_error', failed); res(rec); });
    socket.once('connect_error', failed);
  });
}

/** emit with an ack; resolves the first ack argument. */
export function request(socket, event, payload, timeoutMs = 5_000) {
  return new Promise((res, rej) => {
    socket.timeout(timeoutMs).emit(event, payload, (err, ack) => {
      if (err) rej(new Error(`no ack for '${event}' within ${timeoutMs} ms`));
      else res(ack);
    });
  });
}

/**
 * Exactly-once check: waits until every recorder got `event` (matching `pred`) once, then sends
 * a distinct marker through `sendMarker(markerEvent)` (the same path as the event under test),
 * waits for the marker on every recorder and asserts that each got the event exactly once and
 * the marker exactly once.
 */
export async function expectOnceEach(recs, event, pred, sendMarker, { timeoutMs = 8_000, what = event } = {}) {
  await Promise.all(recs.map((r) => r.wait(event, pred, { timeoutMs })));
  const marker = `test:marker:${randomBytes(4).toString('hex')}`;
  await sendMarker(marker);
  await Promise.all(recs.map((r) => r.wait(marker, () => true, { timeoutMs })));
  const counts = recs.map((r) => r.count(event, pred));
  const markers = recs.map((r) => r.count(marker));
  if (counts.some((n) => n !== 1) || markers.some((n) => n !== 1)) {
    throw new Error(`${what}: expected exactly one delivery per socket; got ${JSON.stringify(counts)} ` +
      `(markers ${JSON.stringify(markers)}); events seen: ${recs.map((r) => `[${r.events.map((e) => e.event).join(',')}]`).join(' ')}`);
  }
  return marker;
}

// ---------------------------------------------------------------------------------------------
// Redis emitter (@socket.io/redis-emitter 5 on a redis 4 client)

/** An emitter on `redisUrl`; `close()` quits its client (after every queued PUBLISH). */
export async function redisEmitter(redisUrl) {
  const { Emitter } = require('@socket.io/redis-emitter');
  const { createClient } = require('redis');
  const client = createClient({ url: redisUrl });
  client.on('error', () => { /* reported by the failing command */ });
  await client.connect();
  const emitter = new Emitter(client);
  return {
    emitter,
    client,
    async close() { try { await client.quit(); } catch { /* gone */ } },
  };
}

// ---------------------------------------------------------------------------------------------
// Kafka (kafkajs)

/** A kafkajs client for the broker(s); quiet logs. */
export function kafkaClient(brokers, clientId = 'cluster-tests') {
  const { Kafka, logLevel } = require('kafkajs');
  return new Kafka({
    clientId,
    brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3_000,
    requestTimeout: 10_000,
    retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 2_000 },
  });
}

/** An envelope `{id, event, rooms?, users?, except?, namespace?, data}` as a JSON string. */
export function envelope(fields) {
  return JSON.stringify(fields);
}

/** Unique-ish suffix for rooms, users and ids of one test. */
export function uniq(prefix = 't') {
  return `${prefix}${randomBytes(4).toString('hex')}`;
}

/**
 * Runs `fn`; a failure gets the tail of each node's log appended (what the server said about
 * its dependencies is usually the explanation).
 */
export async function withLogs(nodes, fn) {
  try {
    return await fn();
  } catch (e) {
    const logs = nodes.filter(Boolean).map((n) => `--- ${n.id} log (tail):\n${n.log().slice(-4000)}`).join('\n');
    if (e && typeof e === 'object') {
      try { e.message = `${e.message}\n${logs}`; } catch { /* read-only */ }
    }
    throw e;
  }
}
