// The bench contract (bench/CONTRACT.md) on the reference Node socket.io server:
// every socket joins room `bench`; `bench:publish` is relayed as `bench:msg` to room
// `bench` (or to the payload's `room`); `bench:join` joins a room and acks;
// `POST /api/emit` emits to rooms (a socket id is a room in socket.io).
// Environment: PORT (default 3003, 0 = ephemeral), HOST (default 127.0.0.1),
// BENCH_API_KEY (default `bench`).
"use strict";
const http = require("node:http");
const { Server } = require("socket.io");

const port = Number(process.env.PORT ?? 3003);
const host = process.env.HOST ?? "127.0.0.1";
const apiKey = process.env.BENCH_API_KEY ?? "bench";
const MAX_BODY = 1 << 20;

const httpServer = http.createServer((req, res) => {
  if (req.url !== "/api/emit") return; // socket.io answers its own path; others 404 below
  if (req.method !== "POST") {
    res.writeHead(405).end();
    return;
  }
  if (req.headers["x-api-key"] !== apiKey) {
    res.writeHead(401, { "content-type": "application/json" }).end('{"error":"unauthorized"}');
    req.resume();
    return;
  }
  const chunks = [];
  let size = 0;
  req.on("data", (c) => {
    size += c.length;
    if (size > MAX_BODY) req.destroy();
    else chunks.push(c);
  });
  req.on("end", () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      res.writeHead(400).end('{"error":"body is not JSON"}');
      return;
    }
    const rooms = Array.isArray(body.rooms) ? body.rooms.filter((r) => typeof r === "string") : [];
    if (typeof body.event !== "string" || rooms.length === 0) {
      res.writeHead(400).end('{"error":"event and rooms are required"}');
      return;
    }
    io.to(rooms).emit(body.event, body.data);
    res.writeHead(202, { "content-type": "application/json" }).end("{}");
  });
});

const io = new Server(httpServer, { serveClient: false });
io.on("connection", (socket) => {
  socket.join("bench");
  socket.on("bench:publish", (payload) => {
    const room = payload && typeof payload.room === "string" ? payload.room : "bench";
    io.to(room).emit("bench:msg", payload);
  });
  socket.on("bench:join", (room, ack) => {
    if (typeof room === "string") socket.join(room);
    if (typeof ack === "function") ack();
  });
});

// socket.io leaves other paths unanswered when an http handler exists; 404 them.
httpServer.on("request", (req, res) => {
  if (req.url !== "/api/emit" && !req.url.startsWith("/socket.io/")) res.writeHead(404).end();
});

httpServer.listen(port, host, () => {
  const a = httpServer.address();
  console.log(`node socket.io ${require("socket.io/package.json").version} listening on ${a.address}:${a.port}`);
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
