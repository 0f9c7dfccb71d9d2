// Prints the exact bytes the official packages publish, one JSON line per case:
// {"name", "channel", "hex"}. No Redis needed: the emitter and the adapter get a fake client
// that records publish(channel, message). The hex strings are pasted into the Rust unit tests
// in src/adapter/ (run: node vectors.mjs).
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Emitter } = require("@socket.io/redis-emitter");
const { RedisAdapter } = require("@socket.io/redis-adapter");
const { Encoder } = require("socket.io-parser");
const msgpack = require("notepack.io");

const published = [];
const fakeClient = {
  publish(channel, message) {
    published.push({ channel, message });
    return Promise.resolve(0);
  },
  // redis v4 shape, so the adapter takes its pSubscribe/subscribe branch
  pSubscribe() {},
  subscribe() {},
  on() {},
  off() {},
};

function take(name) {
  if (published.length !== 1) {
    throw new Error(`${name}: expected one publish, got ${published.length}`);
  }
  const { channel, message } = published.pop();
  const buf = Buffer.isBuffer(message) ? message : Buffer.from(message, "utf8");
  console.log(JSON.stringify({ name, channel, hex: buf.toString("hex") }));
}

// ---- @socket.io/redis-emitter 5.1.0
const emitter = new Emitter(fakeClient);
emitter.emit("hello", "world", 1);
take("emitter_all");
emitter.to("room1").emit("msg", { a: 1 });
take("emitter_one_room");
emitter.to(["r1", "r2"]).except("r3").emit("multi", [1, 2], null, true);
take("emitter_two_rooms_except");
emitter.to("files").emit("file", "name.bin", Buffer.from([0xde, 0xad, 0xbe, 0xef]));
take("emitter_binary");
emitter.of("chat").volatile.compress(false).emit("vol", -5, 3.5);
take("emitter_nsp_flags");
emitter.to("room1").socketsJoin(["room2", "room3"]);
take("emitter_sockets_join");
emitter.in("room1").except("room9").socketsLeave("room2");
take("emitter_sockets_leave");
emitter.to("room1").disconnectSockets(true);
take("emitter_disconnect");
emitter.serverSideEmit("ping", { x: 1 });
take("emitter_server_side_emit");

// ---- @socket.io/redis-adapter 8.3.0 (what a Node socket.io server publishes)
const nsp = {
  name: "/",
  server: { encoder: new Encoder() },
  sockets: new Map(),
  _ids: 0,
};
const adapter = new RedisAdapter(nsp, fakeClient, fakeClient);
adapter.uid = "abc123"; // uid2(6) is random; fix it for a stable vector
adapter.broadcast(
  { type: 2, data: ["chat", { text: "hi", n: 300, big: 70000, neg: -200 }, Buffer.from("xyz")] },
  { rooms: new Set(["room1"]), except: new Set(["sid1"]), flags: {} },
);
take("adapter_binary_one_room");
adapter.broadcast(
  { type: 2, data: ["when", new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678)), undefined, 1.25] },
  { rooms: new Set(), except: new Set(), flags: { volatile: true } },
);
take("adapter_date_all");
adapter.broadcastWithAck(
  { type: 2, data: ["ask", 1] },
  { rooms: new Set(["r"]), except: new Set(), flags: { timeout: 1000 } },
  () => {},
  () => {},
);
take("adapter_broadcast_with_ack");
adapter.addSockets({ rooms: new Set(["a"]), except: new Set(["b"]), flags: {} }, ["c"]);
take("adapter_add_sockets");

// A message this crate's encoder must reproduce byte for byte (adapter key order).
console.log(
  JSON.stringify({
    name: "notepack_reference",
    channel: "socket.io#/#",
    hex: msgpack
      .encode([
        "node-1",
        { type: 2, data: ["ev", "s", 1, -1, 1.5, true, null, Buffer.from([1, 2])], nsp: "/" },
        { rooms: ["a", "b"], except: ["c"], flags: {} },
      ])
      .toString("hex"),
  }),
);
for (const t of Object.values(adapter.ackRequests ?? {})) clearTimeout(t);
process.exit(0);
