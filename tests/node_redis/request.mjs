// Publishes one inter-node request with the official @socket.io/redis-emitter and exits.
//
//   node request.mjs <redisPort> <nsp> <rooms|-> join <room...>
//   node request.mjs <redisPort> <nsp> <rooms|-> leave <room...>
//   node request.mjs <redisPort> <nsp> <rooms|-> disconnect <true|false>
//
// <rooms> selects the sockets (comma separated, "-" for all). Used by
// tests/redis_emitter_codec.rs.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Emitter } = require("@socket.io/redis-emitter");
const { createClient } = require("redis");

const [port, nsp, rooms, op, ...rest] = process.argv.slice(2);
if (!port || !nsp || rooms === undefined || !["join", "leave", "disconnect"].includes(op)) {
  console.error("usage: node request.mjs <redisPort> <nsp> <rooms|-> join|leave|disconnect ...");
  process.exit(2);
}
const client = createClient({ url: `redis://127.0.0.1:${port}` });
client.on("error", (err) => {
  console.error("redis error:", err.message);
  process.exit(1);
});
await client.connect();
const emitter = new Emitter(client).of(nsp);
const roomList = rooms === "-" || rooms === "" ? [] : rooms.split(",");
const target = roomList.length ? emitter.to(roomList) : emitter;
if (op === "join") target.socketsJoin(rest);
else if (op === "leave") target.socketsLeave(rest);
else target.disconnectSockets(rest[0] === "true");
await client.quit();
