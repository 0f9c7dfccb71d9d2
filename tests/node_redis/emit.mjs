// Publishes one broadcast with the official @socket.io/redis-emitter (redis 4 client) and exits.
//
//   node emit.mjs <redisPort> <nsp> <rooms> <event> [args...]
//
// <rooms>: one room, several joined by commas, or "-" for every socket of the namespace.
// Each arg is JSON, except "bin:<hex>", which is sent as a binary Buffer.
// Used by tests/redis_emitter_codec.rs.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Emitter } = require("@socket.io/redis-emitter");
const { createClient } = require("redis");

const [port, nsp, rooms, event, ...rawArgs] = process.argv.slice(2);
if (!port || !nsp || rooms === undefined || !event) {
  console.error("usage: node emit.mjs <redisPort> <nsp> <rooms|-> <event> [args...]");
  process.exit(2);
}
const args = rawArgs.map((a) => (a.startsWith("bin:") ? Buffer.from(a.slice(4), "hex") : JSON.parse(a)));

const client = createClient({ url: `redis://127.0.0.1:${port}` });
client.on("error", (err) => {
  console.error("redis error:", err.message);
  process.exit(1);
});
await client.connect();
let emitter = new Emitter(client).of(nsp);
const roomList = rooms === "-" || rooms === "" ? [] : rooms.split(",");
const target = roomList.length ? emitter.to(roomList) : emitter;
target.emit(event, ...args);
// quit() is queued after the PUBLISH, so the message has reached Redis when it resolves.
await client.quit();
