// Shared harness for the protocol conformance ports (engineio.test.mjs, socketio.test.mjs).
//
// - startServer(): spawns the sio-edge binary in its `--conformance` profile on an ephemeral
//   port (`--host 127.0.0.1 --port 0`), waits for the stdout line
//   `sio-edge listening on IP:PORT`, and returns { url, wsUrl, stop, describeState }.
//   Binary path: env SIO_EDGE_BIN, default ../../target/debug/sio-edge relative to this file.
// - WebSocket: the `ws` client, made to behave like the browser WebSocket the upstream suites
//   were written against (see the class comment).
// - fetch: Node's global fetch, journaled.
// - conformanceIt(): node:test `it` with mocha's per-test timeout semantics; on failure the
//   error message gets a journal of every HTTP exchange and WebSocket frame of that test.
//
// Environment:
//   SIO_EDGE_BIN      path to the binary
//   SIO_EDGE_LOG      if set, forward the server's stderr (its logs) to this process's stderr
//   CONFORMANCE_TRACE if set, print every test's journal to stderr, passing or not

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { accessSync, constants as fsConstants } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { AsyncLocalStorage } from "node:async_hooks";
import { it } from "node:test";
import WsWebSocket from "ws";

const HERE = dirname(fileURLToPath(import.meta.url));

export const SIO_EDGE_BIN =
  process.env.SIO_EDGE_BIN || resolve(HERE, "../../target/debug/sio-edge");

const READY_RE = /^sio-edge listening on (.+):(\d+)\s*$/;
const START_TIMEOUT_MS = 15000;
const STOP_TIMEOUT_MS = 6000; // CLI contract: exits within 5 s of SIGTERM
const STDERR_TAIL_BYTES = 16 * 1024;

// ---------------------------------------------------------------------------------------------
// server process

export async function startServer(extraArgs = []) {
  try {
    accessSync(SIO_EDGE_BIN, fsConstants.X_OK);
  } catch {
    throw new Error(
      `sio-edge binary not found or not executable at ${SIO_EDGE_BIN} ` +
        "(build it first, or point SIO_EDGE_BIN at it)"
    );
  }

  const args = ["--conformance", "--host", "127.0.0.1", "--port", "0", ...extraArgs];
  const child = spawn(SIO_EDGE_BIN, args, { stdio: ["ignore", "pipe", "pipe"] });

  let stderrTail = "";
  let stdoutLines = [];
  let exitInfo = null;
  const exited = new Promise((res) => {
    child.on("exit", (code, signal) => {
      exitInfo = { code, signal };
      res(exitInfo);
    });
  });

  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk) => {
    if (process.env.SIO_EDGE_LOG) process.stderr.write(chunk);
    stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_BYTES);
  });

  const describeState = () => {
    if (exitInfo) {
      return (
        `sio-edge process has EXITED (code=${exitInfo.code}, signal=${exitInfo.signal}); ` +
        `stderr tail:\n${indent(stderrTail || "(empty)")}`
      );
    }
    return "sio-edge process is running";
  };

  const ready = new Promise((res, rej) => {
    const rl = createInterface({ input: child.stdout });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      rej(
        new Error(
          `sio-edge did not print "sio-edge listening on IP:PORT" within ${START_TIMEOUT_MS} ms ` +
            `(${SIO_EDGE_BIN} ${args.join(" ")}); stdout so far: ${JSON.stringify(stdoutLines)}; ` +
            `stderr tail:\n${indent(stderrTail || "(empty)")}`
        )
      );
    }, START_TIMEOUT_MS);
    let settled = false;
    rl.on("line", (line) => {
      stdoutLines.push(line);
      if (settled) return;
      const m = READY_RE.exec(line);
      if (m) {
        settled = true;
        clearTimeout(timer);
        res({ host: m[1], port: Number(m[2]) });
      }
    });
    child.on("error", (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      rej(new Error(`failed to spawn ${SIO_EDGE_BIN}: ${err.message}`));
    });
    exited.then(({ code, signal }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // give the stderr pipe a moment to drain so the message shows why it died
      setTimeout(() => {
        rej(
          new Error(
            `sio-edge exited before it was ready (code=${code}, signal=${signal}); ` +
              `command: ${SIO_EDGE_BIN} ${args.join(" ")}; stdout: ${JSON.stringify(stdoutLines)}; ` +
              `stderr tail:\n${indent(stderrTail || "(empty)")}`
          )
        );
      }, 50);
    });
  });

  const { host, port } = await ready;
  const hostPart = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  const url = `http://${hostPart}:${port}`;
  const wsUrl = url.replace("http", "ws");

  async function stop() {
    closeAllWebSockets();
    if (exitInfo) return exitInfo;
    child.kill("SIGTERM");
    let timer;
    const timedOut = new Promise((res) => {
      timer = setTimeout(() => res(null), STOP_TIMEOUT_MS);
    });
    const result = await Promise.race([exited, timedOut]);
    clearTimeout(timer);
    if (result === null) {
      process.stderr.write(
        `[conformance] warning: sio-edge did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM; killing it\n`
      );
      child.kill("SIGKILL");
      return exited;
    }
    if (result.code !== 0) {
      process.stderr.write(
        `[conformance] warning: sio-edge exited with code=${result.code} signal=${result.signal} after SIGTERM (contract: 0)\n`
      );
    }
    return result;
  }

  return { url, wsUrl, host, port, stop, describeState, process: child };
}

// ---------------------------------------------------------------------------------------------
// per-test journal

// The journal of the running test follows its async context, so a test that was abandoned on
// timeout and keeps going cannot write into the next test's journal.
const journalStore = new AsyncLocalStorage();
const currentJournalOf = () => journalStore.getStore() || null;

class Journal {
  constructor(name) {
    this.name = name;
    this.t0 = performance.now();
    this.lines = [];
  }
  log(line) {
    const ms = Math.round(performance.now() - this.t0);
    this.lines.push(`+${String(ms).padStart(5)}ms  ${line}`);
  }
  toString() {
    return this.lines.length ? this.lines.join("\n") : "(nothing recorded)";
  }
}

function journalLog(journal, line) {
  if (journal) journal.log(line);
}

function indent(text, prefix = "    ") {
  return String(text)
    .split("\n")
    .map((l) => prefix + l)
    .join("\n");
}

/** Render a frame/body exactly: strings as JSON string literals (so \x1e shows as \u001e), binary as hex. */
export function showBytes(data) {
  if (typeof data === "string") return JSON.stringify(data);
  let bytes;
  if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
  else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  else if (Array.isArray(data)) return `[${data.map(showBytes).join(", ")}]`;
  else return String(data);
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
  return `<binary ${bytes.length} bytes: ${hex}>`;
}

function pathOf(url) {
  try {
    const u = new globalThis.URL(url);
    return u.pathname + u.search;
  } catch {
    return String(url);
  }
}

// ---------------------------------------------------------------------------------------------
// fetch (Node 20 global fetch, journaled)

export async function fetch(url, init = {}) {
  const journal = currentJournalOf();
  const method = (init.method || "GET").toUpperCase();
  const body = init.body === undefined ? "" : ` body=${showBytes(init.body)}`;
  const what = `HTTP ${method} ${pathOf(url)}${body}`;
  journalLog(journal, `${what} ...`);
  let res;
  try {
    res = await globalThis.fetch(url, init);
  } catch (err) {
    const cause = err.cause ? ` (${err.cause.code || err.cause.message || err.cause})` : "";
    journalLog(journal, `${what} -> network error: ${err.message}${cause}`);
    throw err;
  }
  journalLog(journal, `${what} -> ${res.status}`);
  if (journal) {
    res
      .clone()
      .text()
      .then(
        (text) => journalLog(journal, `   ${method} ${pathOf(url)} response body: ${showBytes(text)}`),
        (err) => journalLog(journal, `   ${method} ${pathOf(url)} response body error: ${err.message}`)
      );
  }
  return res;
}

// ---------------------------------------------------------------------------------------------
// WebSocket

const openSockets = new Set();
let wsCounter = 0;

/**
 * The `ws` client made to deliver events the way a browser WebSocket does, which is what the
 * upstream suites' waitFor() = addEventListener(type, fn, { once: true }) pattern relies on:
 *  - every "message"/"close" event is its own task: the first frame of a read is dispatched at
 *    once (so its order relative to other network events, e.g. a fetch() response, is the
 *    arrival order), and further frames that arrived in the same read are dispatched one per
 *    setImmediate turn, so the promise continuations that register the next once-listener run
 *    in between (as between two browser tasks). ws's own allowSynchronousEvents=false defers
 *    even the first frame, which reorders it after fetch() responses that arrived later.
 *  - as in a browser, a frame dispatched while no listener is registered is not seen by the test
 *    (the upstream tests depend on this, e.g. the unread "3probe" in the upgrade tests).
 *  - a no-op 'error' listener: a browser fires "error" then "close" on a refused handshake;
 *    Node's EventEmitter would instead throw on an unhandled 'error'.
 * Every frame sent/received (at arrival), open, error and close are written to the journal.
 */
export class WebSocket extends WsWebSocket {
  constructor(url) {
    super(url, { allowSynchronousEvents: true });
    const journal = currentJournalOf();
    const id = `ws#${++wsCounter}`;
    this._journal = journal;
    this._id = id;
    this._pending = [];
    this._pumping = false;
    openSockets.add(this);
    journalLog(journal, `${id} connect ${pathOf(url)}`);
    this.on("error", (err) => journalLog(journal, `${id} error: ${err.message}`));
    this.on("open", () => journalLog(journal, `${id} open`));
  }

  emit(type, ...args) {
    if (type !== "message" && type !== "close") return super.emit(type, ...args);
    if (type === "message") {
      const [data, isBinary] = args;
      journalLog(this._journal, `${this._id} <- ${isBinary ? showBytes(data) : showBytes(data.toString())}`);
    } else {
      const [code, reason] = args;
      openSockets.delete(this);
      journalLog(this._journal, `${this._id} closed (code=${code}, reason=${JSON.stringify(String(reason))})`);
    }
    this._pending.push([type, args]);
    if (!this._pumping) this._pump();
    return true;
  }

  _pump() {
    const next = this._pending.shift();
    if (!next) {
      this._pumping = false;
      return;
    }
    this._pumping = true;
    super.emit(next[0], ...next[1]);
    setImmediate(() => this._pump());
  }

  send(data, ...rest) {
    journalLog(this._journal, `${this._id} -> ${showBytes(data)}`);
    return super.send(data, ...rest);
  }
}

export function closeAllWebSockets() {
  for (const s of openSockets) {
    try {
      s.terminate();
    } catch {
      // ignore
    }
  }
  openSockets.clear();
}

// ---------------------------------------------------------------------------------------------
// tests

/**
 * Like mocha's `it` with its per-test timeout (mocha default 2000 ms; the upstream heartbeat
 * blocks use this.timeout(5000)). On failure the error message is extended with the journal
 * of the test (all HTTP exchanges and WebSocket frames, with exact bytes) and whether the
 * server process is still alive.
 */
export function conformanceIt(name, fn, { timeout = 2000, server } = {}) {
  it(name, { timeout: timeout + 2000 }, async () => {
    const journal = new Journal(name);
    let timer;
    try {
      await Promise.race([
        journalStore.run(journal, fn),
        new Promise((_, rej) => {
          timer = setTimeout(
            () => rej(new Error(`Timeout of ${timeout}ms exceeded (mocha's timeout for this upstream test)`)),
            timeout
          );
        }),
      ]);
      if (process.env.CONFORMANCE_TRACE) {
        process.stderr.write(`\n[trace] PASS ${name}\n${indent(journal.toString())}\n`);
      }
    } catch (err) {
      // let in-flight response bodies / frames land in the journal
      await new Promise((r) => setTimeout(r, 50));
      const extra =
        `\n\n  --- wire journal of this test ---\n${indent(journal.toString())}` +
        (server && server() ? `\n  --- server ---\n    ${server().describeState()}` : "");
      if (process.env.CONFORMANCE_TRACE) {
        process.stderr.write(`\n[trace] FAIL ${name}\n${indent(journal.toString())}\n`);
      }
      if (err && typeof err === "object") {
        const stackFrames =
          typeof err.stack === "string" ? err.stack.split("\n").filter((l) => /^\s+at /.test(l)) : [];
        err.message = `${err.message}${extra}`;
        err.stack = `${err.name || "Error"}: ${err.message}\n${stackFrames.join("\n")}`;
        throw err;
      }
      throw new Error(`${String(err)}${extra}`);
    } finally {
      clearTimeout(timer);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// helpers shared by both ports (chai idioms -> node:assert/strict)

export function sleep(delay) {
  return new Promise((resolve) => setTimeout(resolve, delay));
}

/** upstream waitFor(): resolves with the next event of that type (browser addEventListener once). */
export function waitFor(socket, eventType) {
  return new Promise((resolve) => {
    socket.addEventListener(
      eventType,
      (event) => {
        resolve(event);
      },
      { once: true }
    );
  });
}


/** chai-string `expect(s).to.startsWith(prefix)` */
export function assertStartsWith(actual, prefix) {
  assert.equal(typeof actual, "string", `expected a string starting with ${JSON.stringify(prefix)}, got ${showBytes(actual)}`);
  assert.ok(
    actual.startsWith(prefix),
    `expected ${JSON.stringify(actual)} to start with ${JSON.stringify(prefix)}`
  );
}

/** chai `expect(obj).to.have.all.keys(...keys)`: exactly these own keys, no more, no less */
export function assertAllKeys(obj, ...keys) {
  assert.ok(obj !== null && typeof obj === "object", `expected an object, got ${JSON.stringify(obj)}`);
  assert.deepEqual(
    Object.keys(obj).sort(),
    [...keys].sort(),
    `expected exactly the keys ${JSON.stringify(keys)}, got ${JSON.stringify(obj)}`
  );
}

/** chai `expect(x).to.be.a("string")` */
export function assertIsString(value) {
  assert.equal(typeof value, "string", `expected a string, got ${JSON.stringify(value)}`);
}

/** chai `expect(x).to.be.oneOf(list)` */
export function assertOneOf(value, list) {
  assert.ok(list.includes(value), `expected ${JSON.stringify(value)} to be one of ${JSON.stringify(list)}`);
}
